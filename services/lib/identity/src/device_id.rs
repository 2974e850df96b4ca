//! A device's public identity: its Ed25519 [`PublicKey`] and the [`DeviceId`] derived from it.
//!
//! Device id = lowercase hex of sha256 of the raw 32-byte public key. A `DeviceId` can only
//! come from a public key or from parsing exactly 64 lowercase hex characters.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use crate::b64;
use crate::error::ClaimError;

/// An Ed25519 public key (a valid curve point), written as base64url without padding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub(crate) fn from_verifying_key(key: VerifyingKey) -> Self {
        Self(key)
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// Parses the raw 32 bytes of a public key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, ClaimError> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_invalid_point| ClaimError::PublicKey)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The key as base64url without padding (43 characters), as sent on the wire.
    pub fn to_base64url(&self) -> String {
        b64::encode(self.as_bytes())
    }

    /// Parses base64url without padding of a 32-byte public key.
    pub fn from_base64url(text: &str) -> Result<Self, ClaimError> {
        let bytes = b64::decode_exact::<32>(text).ok_or(ClaimError::PublicKey)?;
        Self::from_bytes(&bytes)
    }

    /// The device id of this key.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_public_key(self)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64url())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

/// A device id: sha256 of the device's raw public key, shown as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId([u8; 32]);

impl DeviceId {
    /// The id of `key`: sha256 of its raw 32 bytes.
    pub fn from_public_key(key: &PublicKey) -> Self {
        Self::from_public_key_bytes(key.as_bytes())
    }

    /// The id for raw public key bytes (whether or not they are a valid point).
    pub(crate) fn from_public_key_bytes(bytes: &[u8; 32]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Whether this is the id of `key`.
    pub fn matches(&self, key: &PublicKey) -> bool {
        *self == Self::from_public_key(key)
    }
}

impl FromStr for DeviceId {
    type Err = ClaimError;

    /// Accepts exactly 64 lowercase hex characters.
    fn from_str(text: &str) -> Result<Self, ClaimError> {
        fn nibble(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            }
        }
        let text = text.as_bytes();
        if text.len() != 64 {
            return Err(ClaimError::DeviceId);
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let (hi, lo) = (nibble(pair[0]), nibble(pair[1]));
            *byte = (hi.ok_or(ClaimError::DeviceId)? << 4) | lo.ok_or(ClaimError::DeviceId)?;
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_lowercase_hex_of_64() {
        let id: DeviceId = "ab".repeat(32).parse().unwrap();
        assert_eq!(id.to_string(), "ab".repeat(32));
        for bad in [
            "AB".repeat(32),
            "ab".repeat(31),
            "ab".repeat(33),
            format!("{}zz", "ab".repeat(31)),
            format!("{}|a", "ab".repeat(31)),
            String::new(),
        ] {
            assert_eq!(bad.parse::<DeviceId>(), Err(ClaimError::DeviceId), "{bad}");
        }
    }

    #[test]
    fn id_is_sha256_of_raw_key() {
        // RFC 8032 test 1 public key.
        let raw: [u8; 32] =
            hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap()
                .try_into()
                .unwrap();
        let key = PublicKey::from_bytes(&raw).unwrap();
        let expected = hex::encode(Sha256::digest(raw));
        assert_eq!(key.device_id().to_string(), expected);
        assert!(key.device_id().matches(&key));
        assert_eq!(PublicKey::from_base64url(&key.to_base64url()).unwrap(), key);
    }

    #[test]
    fn rejects_bad_public_keys() {
        assert_eq!(PublicKey::from_base64url("abc"), Err(ClaimError::PublicKey));
        assert_eq!(PublicKey::from_base64url(""), Err(ClaimError::PublicKey));
    }
}
