//! Device ids and device tokens.
//!
//! A device id ([`DeviceId`], from `pincer-identity`) is `hex(sha256(ed25519 public key))`. A device
//! token is `pdt_` + hex of 32 random bytes supplied by the caller; the gateway keeps only
//! its SHA-256 ([`TokenHash`]) and compares presented tokens in constant time. Token text
//! is never printed by `Debug`.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::scope_set::{Role, ScopeSet};

/// The prefix of every device token, so log redaction can recognise them.
pub const DEVICE_TOKEN_PREFIX: &str = "pdt_";

pub use pincer_identity::DeviceId;

/// 32 random bytes for a new token, from a CSPRNG.
#[derive(Clone)]
pub struct TokenSecret([u8; 32]);

impl TokenSecret {
    /// Wraps bytes the caller drew from a CSPRNG.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Draws fresh bytes from the thread's CSPRNG.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub(crate) fn token_text(&self) -> String {
        format!("{DEVICE_TOKEN_PREFIX}{}", hex::encode(self.0))
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(…)")
    }
}

/// The SHA-256 of a device token: what the store keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of a presented token.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// From stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `token` hashes to this, in constant time.
    pub fn matches(&self, token: &str) -> bool {
        Self::of(token).0.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// A freshly issued device token: hand it to the device once, then drop it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IssuedToken {
    /// The device it belongs to.
    pub device_id: DeviceId,
    /// The role it is bound to.
    pub role: Role,
    /// The scopes it is bound to.
    pub scopes: ScopeSet,
    /// Counts issues for this device; a new one invalidates all before it.
    pub generation: u32,
    token: String,
}

impl IssuedToken {
    pub(crate) fn new(
        device_id: DeviceId,
        role: Role,
        scopes: ScopeSet,
        generation: u32,
        secret: &TokenSecret,
    ) -> (Self, TokenHash) {
        let token = secret.token_text();
        let hash = TokenHash::of(&token);
        let issued = Self {
            device_id,
            role,
            scopes,
            generation,
            token,
        };
        (issued, hash)
    }

    /// The token text, to send to the device. Never log it.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("device_id", &self.device_id)
            .field("role", &self.role)
            .field("scopes", &self.scopes)
            .field("generation", &self.generation)
            .field("token", &"pdt_…")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hashed_and_never_printed() {
        let secret = TokenSecret::from_bytes([9; 32]);
        let (issued, hash) = IssuedToken::new(
            "a".repeat(64).parse::<DeviceId>().unwrap(),
            Role::Operator,
            ScopeSet::EMPTY,
            1,
            &secret,
        );
        assert!(issued.token().starts_with(DEVICE_TOKEN_PREFIX));
        assert_eq!(issued.token().len(), 4 + 64);
        assert!(hash.matches(issued.token()));
        assert!(!hash.matches(&issued.token()[..67]));
        let shown = format!("{issued:?} {secret:?} {hash:?}");
        assert!(!shown.contains(&hex::encode([9u8; 32])));
        assert!(!shown.contains(&hex::encode(hash.as_bytes())));
        assert_ne!(
            TokenSecret::generate().token_text(),
            TokenSecret::generate().token_text()
        );
    }
}
