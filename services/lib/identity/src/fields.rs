//! The free-form fields of a connect, each validated when built: [`ClientId`],
//! [`ConnectToken`] (a secret) and [`Nonce`].
//!
//! Text fields refuse `|` (the payload separator) and control characters, so a valid
//! field can never shift the payload's field boundaries.

use std::fmt;
use std::str::FromStr;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::b64;
use crate::error::ClaimError;

/// Longest accepted client id, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 128;
/// Longest accepted token, in bytes.
pub const MAX_TOKEN_BYTES: usize = 1024;

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), ClaimError> {
    if text.len() > max {
        return Err(ClaimError::TooLong { field, max });
    }
    if text.contains('|') {
        return Err(ClaimError::ContainsPipe { field });
    }
    if text.chars().any(char::is_control) {
        return Err(ClaimError::ControlChar { field });
    }
    Ok(())
}

/// The client's self-chosen name (e.g. `pincer-cli`): informational, never trusted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// Non-empty, at most [`MAX_CLIENT_ID_BYTES`], no `|`, no control characters.
    pub fn new(text: impl Into<String>) -> Result<Self, ClaimError> {
        let text = text.into();
        if text.is_empty() {
            return Err(ClaimError::Empty { field: "client id" });
        }
        check_text("client id", &text, MAX_CLIENT_ID_BYTES)?;
        Ok(Self(text))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ClientId {
    type Err = ClaimError;

    fn from_str(text: &str) -> Result<Self, ClaimError> {
        Self::new(text)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The gateway or device token a client presents; empty when it has none yet.
///
/// A secret: `Debug` is redacted, there is no `Display`, equality is constant-time and
/// the text is zeroized on drop.
#[derive(Clone, Default)]
pub struct ConnectToken(String);

impl ConnectToken {
    /// At most [`MAX_TOKEN_BYTES`], no `|`, no control characters. Errors never include
    /// the token.
    pub fn new(text: impl Into<String>) -> Result<Self, ClaimError> {
        let token = Self(text.into());
        check_text("token", &token.0, MAX_TOKEN_BYTES)?;
        Ok(token)
    }

    /// No token (a device that is not paired yet).
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether no token is presented.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The token text. Only for building the payload and for constant-time comparison.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl PartialEq for ConnectToken {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for ConnectToken {}

impl std::hash::Hash for ConnectToken {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Drop for ConnectToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for ConnectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = if self.0.is_empty() {
            "<none>"
        } else {
            "<redacted>"
        };
        write!(f, "ConnectToken({shown})")
    }
}

/// A challenge nonce: 32 random bytes, written as base64url without padding (43 chars).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nonce([u8; 32]);

impl Nonce {
    /// The nonce made of `bytes` (which must come from a CSPRNG).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Nonce {
    type Err = ClaimError;

    /// Parses canonical base64url without padding of exactly 32 bytes.
    fn from_str(text: &str) -> Result<Self, ClaimError> {
        b64::decode_exact::<32>(text)
            .map(Self)
            .ok_or(ClaimError::Nonce)
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&b64::encode(&self.0))
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_refuse_pipes_controls_and_overlong() {
        assert!(ClientId::new("pincer-cli").is_ok());
        assert_eq!(
            ClientId::new("a|b"),
            Err(ClaimError::ContainsPipe { field: "client id" })
        );
        assert_eq!(
            ClientId::new(""),
            Err(ClaimError::Empty { field: "client id" })
        );
        assert_eq!(
            ClientId::new("a\nb"),
            Err(ClaimError::ControlChar { field: "client id" })
        );
        assert!(matches!(
            ClientId::new("x".repeat(MAX_CLIENT_ID_BYTES + 1)),
            Err(ClaimError::TooLong { .. })
        ));
        assert!(ConnectToken::new("").is_ok());
        assert_eq!(
            ConnectToken::new("sec|ret").err(),
            Some(ClaimError::ContainsPipe { field: "token" })
        );
    }

    #[test]
    fn token_debug_and_errors_hide_the_secret() {
        let token = ConnectToken::new("s3cr3t-token").unwrap();
        assert_eq!(format!("{token:?}"), "ConnectToken(<redacted>)");
        let err = ConnectToken::new("s3cr3t|token").err().unwrap();
        assert!(!err.to_string().contains("s3cr3t"));
        assert_eq!(token, ConnectToken::new("s3cr3t-token").unwrap());
        assert_ne!(token, ConnectToken::none());
    }

    #[test]
    fn nonces_round_trip_canonically() {
        let nonce = Nonce::from_bytes([9; 32]);
        let text = nonce.to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(text.parse::<Nonce>(), Ok(nonce));
        assert_eq!(format!("{text}=").parse::<Nonce>(), Err(ClaimError::Nonce));
        assert_eq!("a|b".parse::<Nonce>(), Err(ClaimError::Nonce));
    }
}
