//! Device identity and the gateway connect challenge, as sans-IO code shared by the
//! gateway (which verifies) and the CLI and nodes (which sign).
//!
//! A device holds an Ed25519 [`DeviceKey`]; its [`DeviceId`] is the lowercase hex sha256
//! of the raw public key. To connect, the gateway issues a [`Challenge`] from
//! [`Challenges::issue`]; the client builds [`ConnectClaims`] for that nonce and
//! [`sign`]s them; the gateway checks the [`SignedConnect`] with [`Challenges::verify`]
//! (single-use nonce, TTL, clock skew, id matches key, strict signature). Time and
//! randomness are passed in; the only I/O is the key file.
//!
//! # Module map
//!
//! | Module | What is there |
//! |---|---|
//! | `device_key` | [`DeviceKey`]: generate, public key, device id, sign; secret never printed |
//! | `key_file` | [`DeviceKey::save`] / [`DeviceKey::load`]: 0600, no symlinks, no overwrite |
//! | `device_id` | [`PublicKey`] (base64url) and [`DeviceId`] (hex sha256 of the key) |
//! | `vocab` | [`Role`], [`Scope`], [`ScopeSet`], [`ClientMode`] and their wire names |
//! | `fields` | [`ClientId`], [`ConnectToken`] (secret), [`Nonce`]: validated, no `\|` |
//! | `payload` | [`ConnectClaims`] and the exact `v1\|…` payload (and its inverse) |
//! | `signing` | [`sign`], [`SignedConnect`], [`Signature`]; [`verify_device`] and [`verify_payload`] (stateless halves of verify) |
//! | `challenge` | [`Challenges`]: issue and verify, bounded nonce memory |
//! | `nonce_table` | the ordered nonce table behind `Challenges` |
//! | `error` | [`ClaimError`], [`KeyFileError`], [`ChallengeError`], [`NonceCollision`] |
//! | `grant` | [`sign_grant`] / [`verify_grant`]: signatures over turn-grant claims (domain-separated) |
//! | `b64` | strict base64url without padding |
//!
//! The challenge protocol is model-checked with stateright in `tests/challenge_model.rs`.

mod b64;
mod challenge;
mod device_id;
mod device_key;
mod error;
mod fields;
mod grant;
mod key_file;
mod nonce_table;
mod payload;
mod signing;
mod vocab;

pub use challenge::{
    Challenge, ChallengeLimits, Challenges, DEFAULT_MAX_OUTSTANDING, DEFAULT_NONCE_TTL_MS,
    MAX_CLOCK_SKEW_MS, VerifiedDevice,
};
pub use device_id::{DeviceId, PublicKey};
pub use device_key::DeviceKey;
pub use error::{ChallengeError, ClaimError, KeyFileError, NonceCollision};
pub use fields::{ClientId, ConnectToken, MAX_CLIENT_ID_BYTES, MAX_TOKEN_BYTES, Nonce};
pub use grant::{GRANT_DOMAIN, sign_grant, verify_grant};
pub use key_file::KeyOrigin;
pub use payload::{ConnectClaims, PAYLOAD_VERSION};
pub use signing::{Signature, SignedConnect, sign, verify_device, verify_payload};
pub use vocab::{ClientMode, Role, Scope, ScopeIter, ScopeSet};
