//! The owner's sender-pairing methods (scope `pairing`): `pairing.list`,
//! `pairing.approve {channel, code}`, `pairing.reject {channel, code}` and
//! `pairing.revoke {channel, senderId}`. `pincer pairing …` calls them.

use serde::Deserialize;
use serde_json::{Value, json};

use super::frames::ErrorCode;
use super::http::OperatorState;
use crate::senders::PairingError;
use crate::senders::codes::CodeError;

type Answer = Result<Value, (ErrorCode, String, Option<Value>)>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CodeParams {
    channel: String,
    code: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RevokeParams {
    channel: String,
    sender_id: String,
}

/// Whether `method` is one of these.
pub fn handles(method: &str) -> bool {
    matches!(
        method,
        "pairing.list" | "pairing.approve" | "pairing.reject" | "pairing.revoke"
    )
}

/// Runs one pairing method.
pub async fn call(state: &OperatorState, method: &str, params: Value) -> Answer {
    let refused = |e: PairingError| match e {
        PairingError::Code(c) => {
            let code = match c {
                CodeError::Malformed => "malformed",
                CodeError::NotFound { .. } => "not_found",
                CodeError::Expired => "expired",
                CodeError::NotPaired { .. } => "not_paired",
            };
            (
                ErrorCode::InvalidRequest,
                c.to_string(),
                Some(json!({ "reason": code })),
            )
        }
        PairingError::Store(s) => (ErrorCode::Unavailable, s.to_string(), None),
    };
    match method {
        "pairing.list" => state
            .senders
            .list()
            .await
            .map_err(|e| (ErrorCode::Unavailable, e.to_string(), None)),
        "pairing.approve" => {
            let p: CodeParams = parse(method, params)?;
            let paired = state
                .senders
                .approve(&p.channel, &p.code)
                .await
                .map_err(refused)?;
            Ok(json!({
                "channel": paired.channel,
                "senderId": paired.sender_id,
                "accountId": paired.account_id,
                "status": "approved",
            }))
        }
        "pairing.reject" => {
            let p: CodeParams = parse(method, params)?;
            let r = state
                .senders
                .reject(&p.channel, &p.code)
                .await
                .map_err(refused)?;
            Ok(json!({
                "channel": r.key.channel,
                "senderId": r.key.sender_id,
                "accountId": r.key.account_id,
                "status": "rejected",
            }))
        }
        "pairing.revoke" => {
            let p: RevokeParams = parse(method, params)?;
            let paired = state
                .senders
                .unpair(&p.channel, &p.sender_id)
                .await
                .map_err(refused)?;
            Ok(json!({
                "channel": paired.channel,
                "senderId": paired.sender_id,
                "status": "revoked",
            }))
        }
        other => Err((
            ErrorCode::UnknownMethod,
            format!("{other} is not a pairing method"),
            None,
        )),
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    method: &str,
    params: Value,
) -> Result<T, (ErrorCode, String, Option<Value>)> {
    serde_json::from_value(params).map_err(|e| {
        (
            ErrorCode::InvalidRequest,
            format!("bad {method} params: {e}"),
            None,
        )
    })
}
