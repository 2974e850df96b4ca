//! [`DeviceKey`]: a device's Ed25519 signing key. Generated once, kept in the state dir
//! (see [`crate::key_file`]), never printed.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey};
use rand::RngCore;
use zeroize::Zeroize;

use crate::device_id::{DeviceId, PublicKey};
use crate::signing::Signature;

/// An Ed25519 signing key that identifies one device (an operator client or a node).
///
/// `Debug` shows only the device id; the secret is zeroized on drop.
pub struct DeviceKey {
    signing: SigningKey,
}

impl DeviceKey {
    /// A new key from 32 bytes of the thread-local CSPRNG.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        Self::from_seed(seed)
    }

    /// The key for a 32-byte secret seed (RFC 8032 private key). The copy passed in is
    /// zeroized; use this for deterministic keys in tests and when loading a key file.
    pub fn from_seed(mut seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        seed.zeroize();
        Self { signing }
    }

    /// The 32-byte secret seed, for writing the key file.
    pub(crate) fn seed(&self) -> &[u8; 32] {
        self.signing.as_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_verifying_key(self.signing.verifying_key())
    }

    /// The device id: lowercase hex of sha256 of the raw public key.
    pub fn device_id(&self) -> DeviceId {
        self.public_key().device_id()
    }

    /// Signs `message` (Ed25519, deterministic).
    pub fn sign_bytes(&self, message: &[u8]) -> Signature {
        Signature::from_bytes(self.signing.sign(message).to_bytes())
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKey")
            .field("device_id", &self.device_id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_vector_1() {
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = DeviceKey::from_seed(seed);
        assert_eq!(
            hex::encode(key.public_key().as_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(key.sign_bytes(b"").as_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn generated_keys_differ_and_debug_hides_the_secret() {
        let a = DeviceKey::generate();
        let b = DeviceKey::generate();
        assert_ne!(a.device_id(), b.device_id());
        let shown = format!("{a:?}");
        assert!(shown.contains(&a.device_id().to_string()));
        assert!(!shown.contains(&hex::encode(a.seed())));
        assert!(!shown.contains(&crate::b64::encode(a.seed())));
    }
}
