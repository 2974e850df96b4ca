//! The closed vocabularies of a connect: [`Role`], [`Scope`], [`ScopeSet`], [`ClientMode`].
//!
//! Each has one lowercase wire name (`as_str`, `Display`, `FromStr`); none contains `|`
//! or `,`, which keeps the signed payload unambiguous.

use std::fmt;
use std::str::FromStr;

use crate::error::ClaimError;

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident, $err:ident, { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in `Ord` order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ClaimError;

            fn from_str(text: &str) -> Result<Self, ClaimError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ClaimError::$err),
                }
            }
        }
    };
}

wire_enum!(
    /// What a connecting device is.
    Role, UnknownRole, {
        /// A person's client (CLI, web UI): sends commands, reads state.
        Operator => "operator",
        /// A node: a device that offers capabilities to the gateway.
        Node => "node",
    }
);

wire_enum!(
    /// An operator permission. Declared in name order, so `Ord` is the payload's sort order.
    Scope, UnknownScope, {
        /// Configuration, tokens, gateway control.
        Admin => "admin",
        /// Resolve exec and action approvals.
        Approvals => "approvals",
        /// Approve or reject devices and chat senders.
        Pairing => "pairing",
        /// Read state: status, sessions, logs.
        Read => "read",
        /// Side effects: send messages, run agents.
        Write => "write",
    }
);

wire_enum!(
    /// Which kind of client connects.
    ClientMode, UnknownClientMode, {
        /// The `pincer` command line.
        Cli => "cli",
        /// The web control UI.
        Ui => "ui",
        /// A node process.
        Node => "node",
        /// A short-lived health or latency probe (`pincer gateway probe`).
        Probe => "probe",
    }
);

/// A set of scopes: a bit set, iterated (and printed) in name order, without duplicates.
/// Scopes do not imply one another: `admin` does not include `read`.
///
/// Requested scopes are only a request: pairing decides what a device is granted.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeSet(u8);

impl Scope {
    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl ScopeSet {
    /// No scopes.
    pub const EMPTY: Self = Self(0);
    /// Every scope.
    pub const ALL: Self = Self((1 << Scope::ALL.len()) - 1);

    /// The empty set.
    pub const fn new() -> Self {
        Self::EMPTY
    }

    /// The set of `scopes`.
    pub fn of(scopes: &[Scope]) -> Self {
        scopes.iter().copied().collect()
    }

    /// Adds `scope`; returns whether it was new.
    pub fn insert(&mut self, scope: Scope) -> bool {
        let new = !self.contains(scope);
        self.0 |= scope.bit();
        new
    }

    /// Whether `scope` is in the set.
    pub const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope here is also in `other`.
    pub const fn is_subset_of(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    /// The scopes in both.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The scopes in either.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in name order.
    pub fn iter(self) -> ScopeIter {
        self.into_iter()
    }

    /// The wire names in name order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }

    /// Parses a list of scope names (duplicates are merged; unknown names are refused).
    pub fn parse_names<I, S>(names: I) -> Result<Self, ClaimError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        names
            .into_iter()
            .map(|n| n.as_ref().parse::<Scope>())
            .collect()
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

/// The scopes of a [`ScopeSet`], in name order.
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
        f.debug_set().entries(self.names()).finish()
    }
}

impl fmt::Display for ScopeSet {
    /// Comma-joined names in sorted order (the payload form); empty for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for ScopeSet {
    type Err = ClaimError;

    /// Parses the canonical payload form only: sorted, deduplicated, comma-joined.
    fn from_str(text: &str) -> Result<Self, ClaimError> {
        if text.is_empty() {
            return Ok(Self::new());
        }
        let set = Self::parse_names(text.split(','))?;
        if set.to_string() != text {
            return Err(ClaimError::ScopeList);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_order_is_name_order() {
        let mut by_name = Scope::ALL.to_vec();
        by_name.sort_by_key(|s| s.as_str());
        assert_eq!(by_name, Scope::ALL);
    }

    #[test]
    fn names_round_trip_and_unknowns_fail() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(*s));
        }
        for r in Role::ALL {
            assert_eq!(r.to_string().parse::<Role>(), Ok(*r));
        }
        for m in ClientMode::ALL {
            assert_eq!(m.to_string().parse::<ClientMode>(), Ok(*m));
        }
        assert_eq!("Admin".parse::<Scope>(), Err(ClaimError::UnknownScope));
        assert_eq!("root".parse::<Role>(), Err(ClaimError::UnknownRole));
        assert_eq!("".parse::<ClientMode>(), Err(ClaimError::UnknownClientMode));
    }

    #[test]
    fn scope_sets_are_sorted_deduplicated_and_canonical() {
        let set = ScopeSet::parse_names(["write", "read", "write", "admin"]).unwrap();
        assert_eq!(set.to_string(), "admin,read,write");
        assert_eq!("admin,read,write".parse::<ScopeSet>(), Ok(set));
        assert_eq!("read,admin".parse::<ScopeSet>(), Err(ClaimError::ScopeList));
        assert_eq!("read,read".parse::<ScopeSet>(), Err(ClaimError::ScopeList));
        assert_eq!("read,".parse::<ScopeSet>(), Err(ClaimError::UnknownScope));
        assert_eq!("".parse::<ScopeSet>(), Ok(ScopeSet::new()));
        let read: ScopeSet = [Scope::Read].into_iter().collect();
        assert!(read.is_subset_of(set));
        assert!(!set.is_subset_of(read));
        assert!(ScopeSet::new().is_subset_of(read));
    }
}
