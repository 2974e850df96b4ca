//! Which scope each operator method and event needs.
//!
//! The table is the contract: a method that is not listed has no policy and is refused;
//! an event that is not listed is not delivered. Scopes are matched by wire name through
//! [`ScopeName`], so any scope type (the local [`Scope`], a shared identity crate's, plain
//! strings) can be checked. Scopes do not imply one another.

use super::scope_set::{Role, Scope};

/// A scope, by its wire name.
pub trait ScopeName {
    /// `read`, `write`, `admin`, `approvals` or `pairing`.
    fn scope_name(&self) -> &str;
}

impl ScopeName for Scope {
    fn scope_name(&self) -> &str {
        self.as_str()
    }
}

impl ScopeName for &str {
    fn scope_name(&self) -> &str {
        self
    }
}

impl ScopeName for String {
    fn scope_name(&self) -> &str {
        self
    }
}

/// Operator methods and the scope each requires.
const OPERATOR_METHODS: &[(&str, &str)] = &[
    ("health", "read"),
    ("status", "read"),
    ("devices.self", "read"),
    ("channels.status", "read"),
    ("chat.send", "write"),
    ("devices.list", "pairing"),
    ("devices.approve", "pairing"),
    ("devices.reject", "pairing"),
    ("devices.revoke", "pairing"),
    ("devices.rotate", "pairing"),
    ("pairing.list", "pairing"),
    ("pairing.approve", "pairing"),
    ("pairing.reject", "pairing"),
    ("pairing.revoke", "pairing"),
    ("approvals.list", "approvals"),
    ("approvals.resolve", "approvals"),
    ("config.get", "admin"),
];

/// Operator events and the scope each requires (`None`: any authenticated operator).
const OPERATOR_EVENTS: &[(&str, Option<&str>)] = &[
    ("tick", None),
    ("chat", Some("read")),
    ("health", Some("read")),
    ("device.pair.requested", Some("pairing")),
    ("device.pair.resolved", Some("pairing")),
    ("sender.pair.requested", Some("pairing")),
    ("sender.pair.resolved", Some("pairing")),
    ("approval.requested", Some("approvals")),
    ("approval.resolved", Some("approvals")),
];

/// Why a method call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MethodDenied {
    /// The method has no policy for this role.
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    /// The caller lacks the required scope.
    #[error("method {method:?} requires scope {scope:?}")]
    MissingScope {
        /// The method.
        method: &'static str,
        /// The scope it needs.
        scope: &'static str,
    },
}

/// The method and event table of one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodPolicy {
    methods: &'static [(&'static str, &'static str)],
    events: &'static [(&'static str, Option<&'static str>)],
}

impl MethodPolicy {
    /// The table for `role`. Nodes have no operator methods or events.
    pub fn for_role(role: Role) -> Self {
        match role {
            Role::Operator => Self {
                methods: OPERATOR_METHODS,
                events: OPERATOR_EVENTS,
            },
            Role::Node => Self {
                methods: &[],
                events: &[],
            },
        }
    }

    /// The scope `method` requires; `None` if the method has no policy (refuse it).
    pub fn required_scope(&self, method: &str) -> Option<&'static str> {
        self.methods
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, scope)| *scope)
    }

    /// Whether a caller holding `granted` may call `method`.
    pub fn authorize<S: ScopeName>(
        &self,
        method: &str,
        granted: impl IntoIterator<Item = S>,
    ) -> Result<(), MethodDenied> {
        let Some(&(method, scope)) = self.methods.iter().find(|(m, _)| *m == method) else {
            return Err(MethodDenied::UnknownMethod(
                method.chars().take(64).collect(),
            ));
        };
        if granted.into_iter().any(|g| g.scope_name() == scope) {
            Ok(())
        } else {
            Err(MethodDenied::MissingScope { method, scope })
        }
    }

    /// Whether a subscriber holding `granted` may receive `event`.
    pub fn event_visible<S: ScopeName>(
        &self,
        event: &str,
        granted: impl IntoIterator<Item = S>,
    ) -> bool {
        match self.events.iter().find(|(e, _)| *e == event) {
            None => false,
            Some((_, None)) => true,
            Some((_, Some(scope))) => granted.into_iter().any(|g| g.scope_name() == *scope),
        }
    }

    /// Every method with a policy, in table order.
    pub fn methods(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.methods.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::scope_set::ScopeSet;

    #[test]
    fn methods_need_their_scope() {
        let p = MethodPolicy::for_role(Role::Operator);
        let read = ScopeSet::of(&[Scope::Read]);
        assert_eq!(p.authorize("health", read), Ok(()));
        assert_eq!(
            p.authorize("config.get", read),
            Err(MethodDenied::MissingScope {
                method: "config.get",
                scope: "admin"
            })
        );
        assert!(
            p.authorize("config.get", ScopeSet::of(&[Scope::Admin]))
                .is_ok()
        );
        // Admin is not a superset.
        assert!(
            p.authorize("health", ScopeSet::of(&[Scope::Admin]))
                .is_err()
        );
        assert!(p.authorize("devices.rotate", ["pairing"]).is_ok());
        assert!(p.authorize("chat.send", vec!["read".to_owned()]).is_err());
    }

    #[test]
    fn unknown_methods_and_nodes_are_refused() {
        let p = MethodPolicy::for_role(Role::Operator);
        assert_eq!(
            p.authorize("exec.run", ScopeSet::ALL),
            Err(MethodDenied::UnknownMethod("exec.run".into()))
        );
        assert_eq!(p.required_scope("connect"), None);
        let node = MethodPolicy::for_role(Role::Node);
        assert!(node.authorize("health", ScopeSet::ALL).is_err());
        assert!(!node.event_visible("tick", ScopeSet::ALL));
    }

    #[test]
    fn every_listed_scope_exists() {
        let p = MethodPolicy::for_role(Role::Operator);
        for (method, scope) in p.methods() {
            assert!(scope.parse::<Scope>().is_ok(), "{method}: {scope}");
        }
        for (event, scope) in OPERATOR_EVENTS {
            assert!(scope.is_none_or(|s| s.parse::<Scope>().is_ok()), "{event}");
        }
    }

    #[test]
    fn events_are_filtered() {
        let p = MethodPolicy::for_role(Role::Operator);
        let read = ScopeSet::of(&[Scope::Read]);
        assert!(p.event_visible("tick", ScopeSet::EMPTY));
        assert!(p.event_visible("chat", read));
        assert!(!p.event_visible("approval.requested", read));
        assert!(p.event_visible("approval.requested", ["approvals"]));
        assert!(!p.event_visible("secret.event", ScopeSet::ALL));
    }
}
