//! Signatures over turn grants: the gateway signs the encoded grant claims with its grant
//! key; the executor verifies them with the gateway's public key before reading a field.
//!
//! The signed message is a fixed domain prefix, a zero byte, then the claim bytes exactly
//! as carried, so no re-encoding can change what was signed and a grant signature can
//! never be mistaken for a connect signature (which signs a `v1|…` text payload).

use crate::device_id::PublicKey;
use crate::device_key::DeviceKey;
use crate::error::ChallengeError;
use crate::signing::{Signature, verify_payload};

/// The domain prefix of grant signatures.
pub const GRANT_DOMAIN: &[u8] = b"pincer-grant-v1";

fn message(claims: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(GRANT_DOMAIN.len() + 1 + claims.len());
    m.extend_from_slice(GRANT_DOMAIN);
    m.push(0);
    m.extend_from_slice(claims);
    m
}

/// Signs encoded grant claims.
pub fn sign_grant(key: &DeviceKey, claims: &[u8]) -> Signature {
    key.sign_bytes(&message(claims))
}

/// Verifies a grant signature (strict Ed25519). `signature` must be exactly 64 bytes.
pub fn verify_grant(
    key: &PublicKey,
    claims: &[u8],
    signature: &[u8],
) -> Result<(), ChallengeError> {
    let bytes: [u8; 64] = signature
        .try_into()
        .map_err(|_wrong_length| ChallengeError::BadSignature)?;
    verify_payload(key, &message(claims), &Signature::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_signatures_verify_only_for_their_bytes_and_key() {
        let key = DeviceKey::from_seed([3; 32]);
        let other = DeviceKey::from_seed([4; 32]);
        let sig = sign_grant(&key, b"claims");
        assert!(verify_grant(&key.public_key(), b"claims", sig.as_bytes()).is_ok());
        assert!(verify_grant(&key.public_key(), b"claimz", sig.as_bytes()).is_err());
        assert!(verify_grant(&other.public_key(), b"claims", sig.as_bytes()).is_err());
        assert!(verify_grant(&key.public_key(), b"claims", &sig.as_bytes()[..63]).is_err());
        // A signature over the bare bytes (no domain) is not a grant signature.
        let bare = key.sign_bytes(b"claims");
        assert!(verify_grant(&key.public_key(), b"claims", bare.as_bytes()).is_err());
    }
}
