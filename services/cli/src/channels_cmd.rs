//! `pincer channels status`: per channel account, which bridge replica holds its lease,
//! whether it is served (holder connected, lease live), the last inbound and outbound
//! traffic and the last delivery error. Calls the gateway's `channels.status` method
//! (scope `read`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use pincer_identity::ClientMode;
use serde_json::{Value, json};

use crate::CliError;
use crate::chat::{gateway_addr, gateway_ws_url};
use crate::cli::OperatorArgs;
use crate::context::Context;
use crate::device::DeviceIdentity;
use crate::gateway_client::{ClientAuth, GatewayClient};

const WAIT: Duration = Duration::from_secs(15);

/// `pincer channels`.
#[derive(Debug, Clone, Subcommand)]
pub enum ChannelsCommand {
    /// Per account: the replica holding it, connected, last inbound/outbound, errors.
    Status(OperatorArgs),
}

/// Runs `pincer channels …`.
pub async fn run(ctx: &Context, command: &ChannelsCommand) -> Result<ExitCode, CliError> {
    let ChannelsCommand::Status(op) = command;
    let config = pincer_runtime::config::load_config(&ctx.config_path)?;
    let auth = ClientAuth::from_config(&config)?;
    let url = match &op.url {
        Some(u) => u.clone(),
        None => gateway_ws_url(&gateway_addr(&config)?),
    };
    let mut identity = DeviceIdentity::load(&ctx.state_dir)?;
    let (mut client, _) =
        GatewayClient::connect(&url, &auth, &mut identity, ClientMode::Cli).await?;
    let result = client.request("channels.status", json!({}), WAIT).await;
    client.close().await;
    let result = result?;
    if op.json {
        println!("{result}");
    } else {
        print!("{}", render(&result));
    }
    Ok(ExitCode::SUCCESS)
}

/// The table printed for a `channels.status` answer.
pub fn render(result: &Value) -> String {
    let empty = Vec::new();
    let accounts = result["accounts"].as_array().unwrap_or(&empty);
    let now = result["atMs"].as_i64().unwrap_or(0);
    let mut out = format!(
        "{} bridge replica(s) connected\n",
        result["bridges"].as_u64().unwrap_or(0)
    );
    if accounts.is_empty() {
        out.push_str("no channel accounts (no bridge has connected yet)\n");
        return out;
    }
    out.push_str(&format!(
        "{:<24} {:<42} {:<9} {:<6} {:<12} {:<12} LAST ERROR\n",
        "ACCOUNT", "REPLICA", "CONNECTED", "TOKEN", "INBOUND", "OUTBOUND"
    ));
    for a in accounts {
        let error = match (a["lastError"].as_str(), a["lastErrorAtMs"].as_i64()) {
            (Some(e), Some(at)) => format!("{} ({e})", ago(now, Some(at))),
            _ => "-".to_owned(),
        };
        let replica = a["replica"]
            .as_str()
            .filter(|r| !r.is_empty())
            .unwrap_or("-");
        out.push_str(&format!(
            "{:<24} {:<42} {:<9} {:<6} {:<12} {:<12} {error}\n",
            format!(
                "{}/{}",
                a["channel"].as_str().unwrap_or("?"),
                a["accountId"].as_str().unwrap_or("?")
            ),
            replica,
            if a["connected"].as_bool() == Some(true) {
                "yes"
            } else {
                "NO"
            },
            a["fencingToken"].as_u64().unwrap_or(0),
            ago(now, a["lastInboundAtMs"].as_i64()),
            ago(now, a["lastOutboundAtMs"].as_i64()),
        ));
    }
    out
}

fn ago(now: i64, at: Option<i64>) -> String {
    match at {
        None => "never".to_owned(),
        Some(at) => {
            let s = now.saturating_sub(at).max(0) / 1000;
            if s < 120 {
                format!("{s}s ago")
            } else if s < 7200 {
                format!("{}m ago", s / 60)
            } else {
                format!("{}h ago", s / 3600)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_holder_connection_and_traffic() {
        let answer = json!({
            "bridges": 2,
            "atMs": 100_000,
            "accounts": [
                { "channel": "telegram", "accountId": "a", "replica": "bridge-1", "fencingToken": 3,
                  "connected": true, "lastInboundAtMs": 95_000, "lastOutboundAtMs": null,
                  "lastError": null, "lastErrorAtMs": null },
                { "channel": "telegram", "accountId": "b", "replica": "", "fencingToken": 0,
                  "connected": false, "lastInboundAtMs": null, "lastOutboundAtMs": null,
                  "lastError": "rate limited", "lastErrorAtMs": 40_000 }
            ]
        });
        let text = render(&answer);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "2 bridge replica(s) connected");
        assert!(lines[2].starts_with("telegram/a"));
        assert!(lines[2].contains("bridge-1") && lines[2].contains(" yes "));
        assert!(lines[2].contains("5s ago") && lines[2].contains("never"));
        assert!(lines[3].contains(" NO ") && lines[3].contains("60s ago (rate limited)"));
        assert_eq!(
            render(&json!({"accounts": []})).lines().nth(1),
            Some("no channel accounts (no bridge has connected yet)")
        );
    }
}
