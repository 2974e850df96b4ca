//! `pincer pairing list | approve <channel> <CODE> | reject <channel> <CODE> | revoke
//! <channel> <SENDER>`: strangers who messaged the bot get a one-time code; the owner
//! approves (or rejects) it here. Approved senders are added to the gateway's persisted
//! allow list for that channel (the config's `allowFrom` stays as written).
//!
//! Connects like every operator command, with this client's device identity and the
//! gateway credential from the config; the methods need the `pairing` scope.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use pincer_identity::ClientMode;
use serde_json::{Value, json};

use crate::CliError;
use crate::chat::{gateway_addr, gateway_ws_url};
use crate::cli::OperatorArgs;
use crate::context::Context;
use crate::device::DeviceIdentity;
use crate::gateway_client::{ClientAuth, GatewayClient};

const WAIT: Duration = Duration::from_secs(15);

/// `pincer pairing`.
#[derive(Debug, Clone, Subcommand)]
pub enum PairingCommand {
    /// Pending pairing requests (with their codes) and paired senders.
    List(OperatorArgs),
    /// Approve a stranger's code: they may talk to the assistant from now on.
    Approve(CodeArgs),
    /// Reject a stranger's code: they get nothing more for the rest of the hour.
    Reject(CodeArgs),
    /// Remove a paired sender (ids in the config's `allowFrom` stay allowed).
    Revoke {
        /// The channel, e.g. `telegram`.
        channel: String,
        /// The sender's platform id (from `pincer pairing list`).
        sender_id: String,
        /// Connection options.
        #[command(flatten)]
        op: OperatorArgs,
    },
}

/// `pincer pairing approve|reject`.
#[derive(Debug, Clone, Args)]
pub struct CodeArgs {
    /// The channel the code was sent on, e.g. `telegram`.
    pub channel: String,
    /// The 8-character code the sender received.
    pub code: String,
    /// Connection options.
    #[command(flatten)]
    pub op: OperatorArgs,
}

/// Runs `pincer pairing …`.
pub async fn run(ctx: &Context, command: &PairingCommand) -> Result<ExitCode, CliError> {
    let (op, method, params) = match command {
        PairingCommand::List(op) => (op, "pairing.list", json!({})),
        PairingCommand::Approve(a) => (
            &a.op,
            "pairing.approve",
            json!({ "channel": a.channel, "code": a.code }),
        ),
        PairingCommand::Reject(a) => (
            &a.op,
            "pairing.reject",
            json!({ "channel": a.channel, "code": a.code }),
        ),
        PairingCommand::Revoke {
            channel,
            sender_id,
            op,
        } => (
            op,
            "pairing.revoke",
            json!({ "channel": channel, "senderId": sender_id }),
        ),
    };
    let config = pincer_runtime::config::load_config(&ctx.config_path)?;
    let auth = ClientAuth::from_config(&config)?;
    let url = match &op.url {
        Some(u) => u.clone(),
        None => gateway_ws_url(&gateway_addr(&config)?),
    };
    let mut identity = DeviceIdentity::load(&ctx.state_dir)?;
    let (mut client, _) =
        GatewayClient::connect(&url, &auth, &mut identity, ClientMode::Cli).await?;
    let result = client.request(method, params, WAIT).await;
    client.close().await;
    let result = result?;
    if op.json {
        println!("{result}");
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        PairingCommand::List(_) => print_list(&result),
        _ => println!(
            "{} {}: {}",
            text(&result["channel"]),
            text(&result["senderId"]),
            text(&result["status"])
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(result: &Value) {
    let empty = Vec::new();
    let requests = result["requests"].as_array().unwrap_or(&empty);
    let paired = result["paired"].as_array().unwrap_or(&empty);
    if requests.is_empty() {
        println!("no pairing requests");
    } else {
        println!(
            "{:<10} {:<10} {:<10} {:<24} {:<9} EXPIRES IN",
            "CHANNEL", "CODE", "STATE", "SENDER", "ACCOUNT"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        for r in requests {
            let left = r["expiresAtMs"].as_i64().unwrap_or(0).saturating_sub(now);
            let expires = if left > 0 {
                format!("{} min", left / 60_000)
            } else {
                "expired".to_owned()
            };
            println!(
                "{:<10} {:<10} {:<10} {:<24} {:<9} {expires}",
                text(&r["channel"]),
                text(&r["code"]),
                text(&r["state"]),
                text(&r["senderId"]),
                text(&r["accountId"]),
            );
        }
        println!("approve one with: pincer pairing approve <channel> <CODE>");
    }
    if paired.is_empty() {
        println!("no paired senders");
    } else {
        println!("paired senders:");
        for p in paired {
            println!(
                "  {} {} (via account {})",
                text(&p["channel"]),
                text(&p["senderId"]),
                text(&p["accountId"])
            );
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
