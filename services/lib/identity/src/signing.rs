//! The client side: [`sign`] turns [`ConnectClaims`] into a [`SignedConnect`]; and the
//! raw check [`verify_payload`] (Ed25519 `verify_strict`) that the verifier builds on.

use std::fmt;

use ed25519_dalek::Signature as DalekSignature;

use crate::b64;
use crate::challenge::VerifiedDevice;
use crate::device_id::{DeviceId, PublicKey};
use crate::device_key::DeviceKey;
use crate::error::{ChallengeError, ClaimError};
use crate::payload::ConnectClaims;

/// An Ed25519 signature (64 bytes), written as base64url without padding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

impl Signature {
    /// The signature made of these bytes.
    pub const fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// Base64url without padding (86 characters), as sent on the wire.
    pub fn to_base64url(&self) -> String {
        b64::encode(&self.0)
    }

    /// Parses base64url without padding of 64 bytes.
    pub fn from_base64url(text: &str) -> Result<Self, ClaimError> {
        b64::decode_exact::<64>(text)
            .map(Self)
            .ok_or(ClaimError::Signature)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_base64url())
    }
}

/// A connect as the client sends it: the claims plus the device's public key and its
/// signature over [`ConnectClaims::payload`], both base64url without padding.
///
/// The key and signature stay text so the gateway can pass what it received unchanged;
/// [`crate::Challenges::verify`] parses them (a bad one is `Malformed`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignedConnect {
    /// The signed claims.
    pub claims: ConnectClaims,
    /// The device's public key, base64url (`device.publicKey` on the wire).
    pub public_key: String,
    /// The signature over the payload, base64url (`device.signature` on the wire).
    pub signature: String,
}

impl SignedConnect {
    /// When the client signed, unix milliseconds (`device.signedAt` on the wire).
    pub fn signed_at_ms(&self) -> u64 {
        self.claims.signed_at_ms
    }
}

/// Signs `claims` with `key`.
///
/// Does not check that `claims.device_id` is `key`'s id: the verifier refuses a mismatch
/// (use [`DeviceKey::device_id`] when building the claims).
pub fn sign(key: &DeviceKey, claims: &ConnectClaims) -> SignedConnect {
    let signature = key.sign_bytes(claims.payload().as_bytes());
    SignedConnect {
        claims: claims.clone(),
        public_key: key.public_key().to_base64url(),
        signature: signature.to_base64url(),
    }
}

/// Checks `signature` over `payload` with `verify_strict` (which refuses non-canonical
/// signatures and small-order keys).
pub fn verify_payload(
    key: &PublicKey,
    payload: &[u8],
    signature: &Signature,
) -> Result<(), ChallengeError> {
    let signature = DalekSignature::from_bytes(signature.as_bytes());
    key.verifying_key()
        .verify_strict(payload, &signature)
        .map_err(|_invalid| ChallengeError::BadSignature)
}

/// The stateless second half of [`crate::Challenges::verify`]: the device id is the sha256
/// of the public key, then the signature over the payload verifies strictly.
///
/// Does not look at the nonce or the time: on its own it accepts replays. Gateways call
/// [`crate::Challenges::verify`].
pub fn verify_device(signed: &SignedConnect) -> Result<VerifiedDevice, ChallengeError> {
    let key_bytes = b64::decode_exact::<32>(&signed.public_key).ok_or(ClaimError::PublicKey)?;
    if DeviceId::from_public_key_bytes(&key_bytes) != signed.claims.device_id {
        return Err(ChallengeError::DeviceIdMismatch);
    }
    let public_key = PublicKey::from_bytes(&key_bytes)?;
    let signature = Signature::from_base64url(&signed.signature)?;
    verify_payload(&public_key, signed.claims.payload().as_bytes(), &signature)?;
    Ok(VerifiedDevice {
        device_id: signed.claims.device_id,
        public_key,
        claims: signed.claims.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{ClientId, ConnectToken, Nonce};
    use crate::vocab::{ClientMode, Role, ScopeSet};

    #[test]
    fn signature_over_payload_verifies_and_round_trips() {
        let key = DeviceKey::from_seed([1; 32]);
        let claims = ConnectClaims {
            device_id: key.device_id(),
            client_id: ClientId::new("pincer-cli").unwrap(),
            client_mode: ClientMode::Probe,
            role: Role::Operator,
            scopes: ScopeSet::new(),
            signed_at_ms: 5,
            token: ConnectToken::none(),
            nonce: Nonce::from_bytes([2; 32]),
        };
        let signed = sign(&key, &claims);
        assert_eq!(signed.signed_at_ms(), 5);
        let public = PublicKey::from_base64url(&signed.public_key).unwrap();
        let signature = Signature::from_base64url(&signed.signature).unwrap();
        assert_eq!(signed.signature.len(), 86);
        verify_payload(&public, claims.payload().as_bytes(), &signature).unwrap();
        assert_eq!(
            verify_payload(&public, b"other", &signature),
            Err(ChallengeError::BadSignature)
        );
    }
}
