//! [`ConnectClaims`]: what a device signs to connect, and its exact byte form.
//!
//! ```text
//! v1|<deviceId>|<clientId>|<clientMode>|<role>|<scopes>|<signedAtMs>|<token>|<nonce>
//! ```
//!
//! `scopes` is comma-joined, sorted and deduplicated (empty for none); `signedAtMs` is
//! decimal unix milliseconds; `token` is empty when the device has none; `nonce` is the
//! challenge nonce in base64url. No field can contain `|`, so the join is injective:
//! [`ConnectClaims::parse_payload`] recovers the claims from the payload.

use zeroize::Zeroizing;

use crate::device_id::DeviceId;
use crate::error::ClaimError;
use crate::fields::{ClientId, ConnectToken, Nonce};
use crate::vocab::{ClientMode, Role, ScopeSet};

/// The payload version this crate signs and verifies.
pub const PAYLOAD_VERSION: &str = "v1";

/// The signed claims of a connect. Every field is validated by its type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectClaims {
    /// The device's id (must be the hex sha256 of the key that signs).
    pub device_id: DeviceId,
    /// The client's self-chosen name.
    pub client_id: ClientId,
    /// The kind of client.
    pub client_mode: ClientMode,
    /// The requested role.
    pub role: Role,
    /// The requested scopes (a request only; pairing decides what is granted).
    pub scopes: ScopeSet,
    /// When the client signed, unix milliseconds.
    pub signed_at_ms: u64,
    /// The presented token (empty when the device has none yet).
    pub token: ConnectToken,
    /// The nonce of the `connect.challenge` being answered.
    pub nonce: Nonce,
}

impl ConnectClaims {
    /// The exact bytes that are signed. Contains the token: never log it.
    pub fn payload(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{PAYLOAD_VERSION}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.device_id,
            self.client_id,
            self.client_mode,
            self.role,
            self.scopes,
            self.signed_at_ms,
            self.token.expose_secret(),
            self.nonce,
        ))
    }

    /// Parses a payload made by [`ConnectClaims::payload`]; the exact inverse.
    ///
    /// Accepts only the canonical form (e.g. sorted scopes, no leading zeros), so
    /// `parse_payload(p)?.payload() == p`.
    pub fn parse_payload(payload: &str) -> Result<Self, ClaimError> {
        let parts: Vec<&str> = payload.split('|').collect();
        let [
            version,
            device_id,
            client_id,
            client_mode,
            role,
            scopes,
            signed_at,
            token,
            nonce,
        ] = parts.as_slice()
        else {
            return Err(ClaimError::PayloadShape);
        };
        if *version != PAYLOAD_VERSION {
            return Err(ClaimError::PayloadShape);
        }
        Ok(Self {
            device_id: device_id.parse()?,
            client_id: client_id.parse()?,
            client_mode: client_mode.parse()?,
            role: role.parse()?,
            scopes: scopes.parse()?,
            signed_at_ms: parse_millis(signed_at)?,
            token: ConnectToken::new(*token)?,
            nonce: nonce.parse()?,
        })
    }
}

fn parse_millis(text: &str) -> Result<u64, ClaimError> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(ClaimError::SignedAt);
    }
    text.parse().map_err(|_overflow| ClaimError::SignedAt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Scope;

    fn claims() -> ConnectClaims {
        ConnectClaims {
            device_id: "0f".repeat(32).parse().unwrap(),
            client_id: ClientId::new("pincer-cli").unwrap(),
            client_mode: ClientMode::Cli,
            role: Role::Operator,
            scopes: [Scope::Write, Scope::Read, Scope::Admin]
                .into_iter()
                .collect(),
            signed_at_ms: 1_700_000_000_123,
            token: ConnectToken::new("tok").unwrap(),
            nonce: Nonce::from_bytes([0; 32]),
        }
    }

    #[test]
    fn exact_payload_format() {
        let expected = format!(
            "v1|{}|pincer-cli|cli|operator|admin,read,write|1700000000123|tok|{}",
            "0f".repeat(32),
            "A".repeat(43)
        );
        assert_eq!(*claims().payload(), expected);
        assert_eq!(ConnectClaims::parse_payload(&expected), Ok(claims()));
    }

    #[test]
    fn empty_scopes_and_token() {
        let mut c = claims();
        c.scopes = ScopeSet::new();
        c.token = ConnectToken::none();
        let p = c.payload();
        assert!(p.contains("|operator||1700000000123||"), "{}", *p);
        assert_eq!(ConnectClaims::parse_payload(&p), Ok(c));
    }

    #[test]
    fn non_canonical_payloads_are_refused() {
        let good = claims().payload();
        for bad in [
            good.replacen("v1|", "v2|", 1),
            good.replacen("|1700000000123|", "|01700000000123|", 1),
            good.replacen("|1700000000123|", "|+1700000000123|", 1),
            good.replacen("admin,read,write", "read,admin,write", 1),
            format!("{}|", *good),
            good.replacen("|tok|", "|", 1),
        ] {
            assert!(ConnectClaims::parse_payload(&bad).is_err(), "{bad}");
        }
    }
}
