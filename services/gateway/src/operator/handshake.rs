//! The `connect` handshake, after the gateway sent `connect.challenge`:
//!
//! 1. protocol range, role, scopes, client fields parse;
//! 2. the client address is not locked out for this credential class (nor for device
//!    signatures);
//! 3. the device's signature over the challenge verifies (single-use nonce, 120 s skew,
//!    id = sha256(key));
//! 4. the credential: a device token (bound to device, role and scopes), or the gateway
//!    token/password — then the device must be paired: an approved device gets its
//!    approved scopes, an unknown one becomes a pairing request (approved at once only
//!    from this host with no forwarding header and no browser `Origin`, when
//!    `gateway.devices.autoApproveLocal` is on);
//! 5. granted scopes are the approved ones intersected with those asked for — never more.
//!
//! Every refusal is one [`Refusal`] naming what to do; failed credentials and signatures
//! count towards the client address's lockout. Being local never skips a step.

use std::sync::Arc;

use pincer_identity::{ClientId, ClientMode, ConnectClaims, ConnectToken, Nonce, SignedConnect};
use serde_json::{Value, json};

use super::auth::Presented;
use super::frames::{ConnectParams, ErrorCode, PROTOCOL_VERSION};
use super::http::OperatorState;
use crate::access::pairing::{DeviceState, RequestOutcome};
use crate::access::{AuthCheck, ClientAddr, CredentialClass, DeviceId, Role, ScopeSet};
use crate::operator::devices::DevicesError;
use crate::store::db::now_ms;

/// Where a connection comes from, decided before the WebSocket upgrade.
#[derive(Debug, Clone, Copy)]
pub struct ClientContext {
    /// The client address and whether it is local.
    pub addr: ClientAddr,
    /// The request carried an `Origin` (a browser).
    pub browser: bool,
}

/// What an authenticated connection may do.
#[derive(Debug, Clone)]
pub struct Session {
    /// The device.
    pub device_id: DeviceId,
    /// Its role.
    pub role: Role,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// The device-token generation used, when the connection authenticated with one.
    pub token_generation: Option<u32>,
}

/// A refused `connect`.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Error code.
    pub code: ErrorCode,
    /// What went wrong and what to do.
    pub message: String,
    /// Whether trying again may help.
    pub retryable: bool,
    /// Specifics.
    pub details: Option<Value>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retryable: false,
            details: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
}

/// Checks a `connect` against the challenge sent on this connection. On success returns the
/// session and the `hello-ok` payload.
pub async fn connect(
    state: &Arc<OperatorState>,
    ctx: ClientContext,
    challenge: &pincer_identity::Challenge,
    params: ConnectParams,
) -> Result<(Session, Value), Refusal> {
    let ParsedConnect {
        role,
        claimed,
        client_mode,
        client_id,
        device_id,
        nonce,
    } = parse_connect(&params)?;
    let auth = params.auth;
    let (class, signed_token) = match (&auth.device_token, &auth.token, &auth.password) {
        (Some(t), _, _) => (CredentialClass::DeviceSignature, t.as_str()),
        (None, Some(t), _) => (CredentialClass::Token, t.as_str()),
        (None, None, Some(_)) => (CredentialClass::Password, ""),
        (None, None, None) => (CredentialClass::Token, ""),
    };
    let ip = ctx.addr.ip;
    let now = now_ms();
    check_lockout(state, ip, class, now)?;
    check_lockout(state, ip, CredentialClass::DeviceSignature, now)?;

    let token = if signed_token.is_empty() {
        ConnectToken::none()
    } else {
        ConnectToken::new(signed_token).map_err(|e| Refusal::invalid(format!("auth: {e}")))?
    };
    let signed = SignedConnect {
        claims: ConnectClaims {
            device_id,
            client_id,
            client_mode,
            role,
            scopes: claimed,
            signed_at_ms: params.device.signed_at,
            token,
            nonce,
        },
        public_key: params.device.public_key,
        signature: params.device.signature,
    };
    let verified = {
        let mut challenges = state.challenges.lock().map_err(|_| unavailable())?;
        challenges.verify(u64::try_from(now).unwrap_or(0), &signed, challenge)
    };
    if let Err(e) = verified {
        fail(state, ip, CredentialClass::DeviceSignature, now);
        return Err(Refusal::new(
            ErrorCode::Unauthorized,
            format!("device signature refused: {e}"),
        ));
    }

    let mut issued_token = None;
    let session = if let Some(device_token) = auth.device_token {
        match state
            .devices
            .authenticate(&device_id, &device_token, role, claimed)
            .await
        {
            Ok(granted) => {
                let generation = match state.devices.state(&device_id).await {
                    Some(DeviceState::Approved {
                        token_generation, ..
                    }) => Some(token_generation),
                    _ => None,
                };
                Session {
                    device_id,
                    role: granted.role,
                    scopes: granted.scopes,
                    token_generation: generation,
                }
            }
            Err(e) => {
                fail(state, ip, class, now);
                return Err(Refusal::new(
                    ErrorCode::Unauthorized,
                    format!(
                        "device token refused: {e}; ask the owner to approve or rotate this device (`pincer devices list`)"
                    ),
                ));
            }
        }
    } else {
        let presented = Presented {
            token: auth.token,
            password: auth.password,
        };
        let checker = state.auth.clone();
        match tokio::task::spawn_blocking(move || checker.check(&presented)).await {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => {
                fail(state, ip, class, now);
                return Err(Refusal::new(ErrorCode::Unauthorized, failure.to_string()));
            }
            Err(_) => return Err(unavailable()),
        }
        match state.devices.state(&device_id).await {
            Some(DeviceState::Approved {
                role: paired_role,
                scopes,
                ..
            }) => {
                if paired_role != role {
                    return Err(Refusal::new(
                        ErrorCode::Unauthorized,
                        format!(
                            "this device is paired as {}; connect with that role",
                            paired_role.as_str()
                        ),
                    ));
                }
                // The device proved its key and the gateway credential but holds no
                // (or a lost) device token: issue a fresh one with the approved scopes.
                let issued = state
                    .devices
                    .rotate(&device_id, Some(scopes), now)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "cannot issue a device token");
                        unavailable()
                    })?;
                let session = Session {
                    device_id,
                    role,
                    scopes: scopes.intersection(claimed),
                    token_generation: Some(issued.generation),
                };
                issued_token = Some(issued);
                session
            }
            _ => {
                let same_host = state.auto_approve_local && ctx.addr.local && !ctx.browser;
                match state
                    .devices
                    .request(device_id, role, claimed, same_host, now)
                    .await
                {
                    Ok(RequestOutcome::AutoApproved(issued)) => {
                        let session = Session {
                            device_id,
                            role,
                            scopes: issued.scopes,
                            token_generation: Some(issued.generation),
                        };
                        issued_token = Some(issued);
                        session
                    }
                    Ok(RequestOutcome::Pending) => {
                        touch(state, device_id, &params.client.id, client_mode, ip, now).await;
                        return Err(pairing_required(
                            device_id,
                            format!(
                                "device {device_id} is waiting for the owner's approval; on the gateway host run `pincer devices approve {device_id}`"
                            ),
                        ));
                    }
                    Err(DevicesError::Pairing(e)) => {
                        return Err(pairing_required(device_id, e.to_string()));
                    }
                    Err(DevicesError::Store(e)) => {
                        tracing::error!(error = %e, "cannot record a pairing request");
                        return Err(unavailable());
                    }
                }
            }
        }
    };
    if let Ok(mut limiter) = state.limiter.lock() {
        limiter.record_success(ip, class);
    }
    touch(state, device_id, &params.client.id, client_mode, ip, now).await;
    let mut hello = json!({
        "type": "hello-ok",
        "protocol": PROTOCOL_VERSION,
        "server": { "name": "pincer-gateway", "version": env!("CARGO_PKG_VERSION") },
        "device": { "id": device_id.to_string(), "role": session.role.as_str(), "scopes": session.scopes.names() },
        "policy": {
            "maxPayloadBytes": super::ws::MAX_FRAME_BYTES,
            "tickIntervalMs": super::ws::TICK_EVERY.as_millis() as u64,
        },
    });
    if let Some(issued) = issued_token {
        hello["auth"] = json!({
            "deviceToken": issued.token(),
            "role": issued.role.as_str(),
            "scopes": issued.scopes.names(),
        });
    }
    Ok((session, hello))
}

/// The typed fields of a `connect`.
#[derive(Debug)]
pub struct ParsedConnect {
    /// Role asked for.
    pub role: Role,
    /// Scopes asked for.
    pub claimed: ScopeSet,
    /// Client mode.
    pub client_mode: ClientMode,
    /// Client id.
    pub client_id: ClientId,
    /// Device id.
    pub device_id: DeviceId,
    /// The nonce the client signed.
    pub nonce: Nonce,
}

/// Checks the protocol range and parses the fields of a `connect` (pure; fuzzed).
pub fn parse_connect(params: &ConnectParams) -> Result<ParsedConnect, Refusal> {
    if params.min_protocol > PROTOCOL_VERSION || params.max_protocol < PROTOCOL_VERSION {
        return Err(Refusal::new(
            ErrorCode::UnsupportedProtocol,
            format!(
                "the client speaks protocol {}..={}, this gateway speaks {PROTOCOL_VERSION}; upgrade the older side",
                params.min_protocol, params.max_protocol
            ),
        ));
    }
    let role: Role = params
        .role
        .parse()
        .map_err(|e| Refusal::invalid(format!("role: {e}")))?;
    let claimed = ScopeSet::parse_names(&params.scopes)
        .map_err(|e| Refusal::invalid(format!("scopes: {e}")))?;
    let client_mode: ClientMode = params
        .client
        .mode
        .parse()
        .map_err(|e| Refusal::invalid(format!("client.mode: {e}")))?;
    let client_id = ClientId::new(params.client.id.as_str())
        .map_err(|e| Refusal::invalid(format!("client.id: {e}")))?;
    let device_id: DeviceId = params
        .device
        .id
        .parse()
        .map_err(|e| Refusal::invalid(format!("device.id: {e}")))?;
    let nonce: Nonce = params
        .device
        .nonce
        .parse()
        .map_err(|e| Refusal::invalid(format!("device.nonce: {e}")))?;

    Ok(ParsedConnect {
        role,
        claimed,
        client_mode,
        client_id,
        device_id,
        nonce,
    })
}

/// Records the client and address of a device's latest connect attempt (best effort).
async fn touch(
    state: &OperatorState,
    device_id: DeviceId,
    client_id: &str,
    mode: ClientMode,
    ip: std::net::IpAddr,
    now: i64,
) {
    let client = format!("{client_id}/{mode}");
    if let Err(e) = state
        .devices
        .touch(device_id, client, ip.to_string(), now)
        .await
    {
        tracing::warn!(error = %e, "cannot record device metadata");
    }
}

fn pairing_required(device_id: DeviceId, message: String) -> Refusal {
    Refusal {
        code: ErrorCode::PairingRequired,
        message,
        retryable: true,
        details: Some(json!({ "deviceId": device_id.to_string() })),
    }
}

fn check_lockout(
    state: &OperatorState,
    ip: std::net::IpAddr,
    class: CredentialClass,
    now: i64,
) -> Result<(), Refusal> {
    let check = state
        .limiter
        .lock()
        .map_err(|_| unavailable())?
        .check(ip, class, now);
    match check {
        AuthCheck::Allowed => Ok(()),
        AuthCheck::LockedOut { retry_after } => Err(locked_out(retry_after)),
    }
}

fn fail(state: &OperatorState, ip: std::net::IpAddr, class: CredentialClass, now: i64) {
    if let Ok(mut limiter) = state.limiter.lock()
        && let AuthCheck::LockedOut { retry_after } = limiter.record_failure(ip, class, now)
    {
        tracing::warn!(%ip, ?class, ?retry_after, "too many failed attempts; locked out");
    }
}

/// The refusal for a locked-out client.
pub fn locked_out(retry_after: std::time::Duration) -> Refusal {
    Refusal {
        code: ErrorCode::RateLimited,
        message: format!(
            "too many failed attempts from this address; try again in {} s",
            retry_after.as_secs().max(1)
        ),
        retryable: true,
        details: Some(json!({ "retryAfterMs": retry_after.as_millis() as u64 })),
    }
}

fn unavailable() -> Refusal {
    Refusal {
        code: ErrorCode::Unavailable,
        message: "the gateway cannot check credentials right now".into(),
        retryable: true,
        details: None,
    }
}
