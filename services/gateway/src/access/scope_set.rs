//! Roles and operator scopes as plain values: [`Role`], [`Scope`] and the bit set
//! [`ScopeSet`].
//!
//! Stand-ins until the shared identity types exist; names on the wire (`operator`, `node`,
//! `read`, `write`, `admin`, `approvals`, `pairing`) are the contract, so converting is by
//! name. Scopes do not imply one another: `admin` does not include `read`.

use std::fmt;
use std::str::FromStr;

/// What kind of client a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// An operator client: the CLI, the web UI.
    Operator,
    /// A node: a device that offers capabilities to the assistant.
    Node,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Node => "node",
        }
    }
}

impl FromStr for Role {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s {
            "operator" => Ok(Self::Operator),
            "node" => Ok(Self::Node),
            other => Err(UnknownName(other.chars().take(64).collect())),
        }
    }
}

/// One operator permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read state: health, status, transcripts.
    Read,
    /// Act: send chat messages.
    Write,
    /// Change and read configuration.
    Admin,
    /// Resolve exec approvals.
    Approvals,
    /// Manage devices.
    Pairing,
}

impl Scope {
    /// Every scope, in bit order.
    pub const ALL: [Self; 5] = [
        Self::Read,
        Self::Write,
        Self::Admin,
        Self::Approvals,
        Self::Pairing,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
            Self::Approvals => "approvals",
            Self::Pairing => "pairing",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::Read => 1,
            Self::Write => 2,
            Self::Admin => 4,
            Self::Approvals => 8,
            Self::Pairing => 16,
        }
    }
}

impl FromStr for Scope {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownName(s.chars().take(64).collect()))
    }
}

/// A role or scope name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role or scope {0:?}")]
pub struct UnknownName(pub String);

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// No scopes.
    pub const EMPTY: Self = Self(0);
    /// Every scope.
    pub const ALL: Self = Self(31);

    /// The set of `scopes`.
    pub fn of(scopes: &[Scope]) -> Self {
        scopes.iter().copied().collect()
    }

    /// Parses wire names; an unknown name is an error, not ignored.
    pub fn parse_names<S: AsRef<str>>(names: &[S]) -> Result<Self, UnknownName> {
        names.iter().map(|n| n.as_ref().parse::<Scope>()).collect()
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset_of(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    /// The scopes in both.
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The scopes in either.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes, in a fixed order.
    pub fn iter(self) -> ScopeIter {
        self.into_iter()
    }

    /// The wire names, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

impl IntoIterator for ScopeSet {
    type Item = Scope;
    type IntoIter = ScopeIter;

    fn into_iter(self) -> ScopeIter {
        ScopeIter { set: self, next: 0 }
    }
}

/// The scopes of a [`ScopeSet`], in a fixed order.
#[derive(Debug, Clone)]
pub struct ScopeIter {
    set: ScopeSet,
    next: usize,
}

impl Iterator for ScopeIter {
    type Item = Scope;

    fn next(&mut self) -> Option<Scope> {
        while let Some(scope) = Scope::ALL.get(self.next).copied() {
            self.next += 1;
            if self.set.contains(scope) {
                return Some(scope);
            }
        }
        None
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(s));
        }
        assert_eq!("node".parse::<Role>(), Ok(Role::Node));
        assert!("root".parse::<Role>().is_err());
        assert!(ScopeSet::parse_names(&["read", "sudo"]).is_err());
        assert_eq!(
            ScopeSet::parse_names(&["write", "read"])
                .unwrap()
                .to_string(),
            "read,write"
        );
        assert_eq!(ScopeSet::ALL.iter().count(), 5);
    }

    proptest! {
        #[test]
        fn set_algebra(a in 0u8..32, b in 0u8..32) {
            let (a, b) = (ScopeSet(a), ScopeSet(b));
            prop_assert!(a.intersection(b).is_subset_of(a));
            prop_assert!(a.intersection(b).is_subset_of(b));
            prop_assert!(a.is_subset_of(a.union(b)));
            prop_assert_eq!(a.into_iter().collect::<ScopeSet>(), a);
            prop_assert_eq!(a.is_subset_of(b), a.iter().all(|s| b.contains(s)));
        }
    }
}
