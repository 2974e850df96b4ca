//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use pincer_identity::{
    Challenge, ClientId, ClientMode, ConnectClaims, ConnectToken, DeviceKey, Nonce, Role, Scope,
    ScopeSet,
};

pub const NOW: u64 = 1_700_000_000_000;
pub const TOKEN: &str = "canary-token-3f9a";

/// Claims of `key` answering `nonce`, signed at `signed_at_ms`.
pub fn claims(key: &DeviceKey, nonce: Nonce, signed_at_ms: u64) -> ConnectClaims {
    ConnectClaims {
        device_id: key.device_id(),
        client_id: ClientId::new("pincer-cli").unwrap(),
        client_mode: ClientMode::Cli,
        role: Role::Operator,
        scopes: [Scope::Read, Scope::Write]
            .into_iter()
            .collect::<ScopeSet>(),
        signed_at_ms,
        token: ConnectToken::new(TOKEN).unwrap(),
        nonce,
    }
}

/// Claims of `key` answering `challenge`, signed now.
pub fn answer(key: &DeviceKey, challenge: &Challenge) -> ConnectClaims {
    claims(key, challenge.nonce, NOW)
}
