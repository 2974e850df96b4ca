//! Every error this crate returns, in one place so the gateway maps them to the wire once.
//!
//! - [`ClaimError`]: a connect field or encoded value that does not parse.
//! - [`KeyFileError`]: the device key file cannot be saved or loaded safely.
//! - [`ChallengeError`]: why a signed connect was refused.
//! - [`NonceCollision`]: the random bytes given to `issue` repeat a remembered nonce.
//!
//! No message includes a token, a key or the signed payload (which contains the token).

use std::path::PathBuf;

/// A connect field or an encoded value (device id, nonce, key, signature) that is invalid.
///
/// Messages name the field and the rule, never the rejected value (it may be a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// A text field contains `|`, the payload separator.
    #[error("{field} must not contain '|' (it separates the signed payload's fields)")]
    ContainsPipe {
        /// The field.
        field: &'static str,
    },
    /// A text field contains a control character.
    #[error("{field} must not contain control characters")]
    ControlChar {
        /// The field.
        field: &'static str,
    },
    /// A required text field is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// A text field is longer than allowed.
    #[error("{field} is longer than {max} bytes")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The limit in bytes.
        max: usize,
    },
    /// Not a known role.
    #[error("unknown role; expected one of: operator, node")]
    UnknownRole,
    /// Not a known scope.
    #[error("unknown scope; expected one of: admin, approvals, pairing, read, write")]
    UnknownScope,
    /// Not a known client mode.
    #[error("unknown client mode; expected one of: cli, ui, node, probe")]
    UnknownClientMode,
    /// A device id that is not 64 lowercase hex characters.
    #[error("device id must be 64 lowercase hex characters (hex of sha256 of the public key)")]
    DeviceId,
    /// A nonce that is not base64url (no padding) of 32 bytes.
    #[error("nonce must be 43 base64url characters without padding (32 bytes)")]
    Nonce,
    /// A public key that is not base64url of 32 bytes, or not a valid Ed25519 point.
    #[error("public key must be base64url without padding of a valid 32-byte Ed25519 key")]
    PublicKey,
    /// A signature that is not base64url (no padding) of 64 bytes.
    #[error("signature must be base64url without padding of 64 bytes")]
    Signature,
    /// A signed-at time that is not a decimal number of milliseconds.
    #[error("signedAt must be unix time in milliseconds (decimal digits)")]
    SignedAt,
    /// A scope list that is not sorted, deduplicated and comma-joined.
    #[error("scopes in the payload must be sorted, deduplicated and comma-joined")]
    ScopeList,
    /// A payload without the expected version or number of fields.
    #[error("payload must be 'v1' followed by 8 '|'-separated fields")]
    PayloadShape,
}

/// Why the device key file could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The path is a symbolic link.
    #[error(
        "{path} is a symbolic link; refusing to use it as the device key. Replace the link \
         with the key file itself (mode 0600) or remove it to create a new identity"
    )]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The path is not a regular file.
    #[error("{path} is not a regular file; remove it to create a new device identity")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Group or others may access the file.
    #[error(
        "{path} has mode {mode:04o}, so other users may read the device key; run \
         `chmod 600 {path}` (and consider the key leaked if others could read it)"
    )]
    TooOpen {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file changed between the permission check and the read.
    #[error("{path} was replaced while it was being opened; try again")]
    Raced {
        /// The path.
        path: PathBuf,
    },
    /// The contents are not a Pincer device key.
    #[error(
        "{path} is not a valid Pincer device key ({reason}); remove it to create a new \
         identity (the device must then be paired again)"
    )]
    Malformed {
        /// The path.
        path: PathBuf,
        /// What is wrong (never the contents).
        reason: &'static str,
    },
    /// A key file already exists where a new one was to be saved.
    #[error("{path} already exists; refusing to overwrite a device key")]
    AlreadyExists {
        /// The path.
        path: PathBuf,
    },
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Why a signed connect was refused.
///
/// Checked in this order: the challenge nonce (issued, unused, fresh), the signed nonce
/// equals the challenge's, clock skew, device id against the key, the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The nonce was never issued here, or was evicted or forgotten.
    #[error(
        "the connect nonce was not issued by this gateway or is no longer known; \
         request a new connect.challenge"
    )]
    UnknownNonce,
    /// The nonce was already presented once (nonces are single-use).
    #[error(
        "the connect nonce was already used; nonces are single-use, request a new connect.challenge"
    )]
    ReplayedNonce,
    /// The nonce is older than its time to live.
    #[error(
        "the connect nonce expired ({age_ms} ms old, limit {ttl_ms} ms); request a new connect.challenge"
    )]
    ExpiredNonce {
        /// How old the nonce was.
        age_ms: u64,
        /// The time to live.
        ttl_ms: u64,
    },
    /// The signed nonce is not the one this connection was challenged with.
    #[error("the signed nonce is not the nonce of this connection's connect.challenge")]
    NonceMismatch,
    /// `signedAt` is too far from the gateway's clock.
    #[error(
        "signedAt is {skew_ms} ms away from the gateway clock (limit {max_ms} ms); \
         fix the client's clock (NTP) and reconnect"
    )]
    ClockSkew {
        /// The absolute difference.
        skew_ms: u64,
        /// The limit.
        max_ms: u64,
    },
    /// The device id is not the hex sha256 of the public key.
    #[error("the device id is not the hex sha256 of the presented public key")]
    DeviceIdMismatch,
    /// The signature does not verify (strictly) for this key and payload.
    #[error("the device signature does not verify for this public key and connect payload")]
    BadSignature,
    /// A field, the public key or the signature does not parse.
    #[error("malformed connect: {0}")]
    Malformed(#[from] ClaimError),
}

/// The random bytes given to `Challenges::issue` equal a nonce that is still remembered.
///
/// With 32 bytes from a CSPRNG this never happens; it means the random source is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the new nonce repeats a remembered one; the random source is broken")]
pub struct NonceCollision;
