//! Commands that talk to a running gateway: `pincer gateway probe`, `pincer status`,
//! `pincer health`, `pincer devices …`, `pincer approvals …`. Each connects with this client's device identity
//! (see [`crate::device`]) and the credential from the config.

use std::process::ExitCode;
use std::time::Duration;

use pincer_identity::ClientMode;
use serde_json::{Value, json};

use crate::CliError;
use crate::chat::{gateway_addr, gateway_ws_url};
use crate::cli::{ApprovalsCommand, DevicesCommand, OperatorArgs};
use crate::context::Context;
use crate::device::DeviceIdentity;
use crate::gateway_client::{ClientAuth, GatewayClient, Hello};

const WAIT: Duration = Duration::from_secs(15);

async fn connect(
    ctx: &Context,
    op: &OperatorArgs,
    mode: ClientMode,
) -> Result<(GatewayClient, Hello, String), CliError> {
    let config = pincer_runtime::config::load_config(&ctx.config_path)?;
    let auth = ClientAuth::from_config(&config)?;
    let url = match &op.url {
        Some(u) => u.clone(),
        None => gateway_ws_url(&gateway_addr(&config)?),
    };
    let mut identity = DeviceIdentity::load(&ctx.state_dir)?;
    let (client, hello) = GatewayClient::connect(&url, &auth, &mut identity, mode).await?;
    Ok((client, hello, url))
}

/// `pincer gateway probe`.
pub async fn probe(ctx: &Context, op: &OperatorArgs) -> Result<ExitCode, CliError> {
    let (mut client, hello, url) = connect(ctx, op, ClientMode::Probe).await?;
    let rtt_start = std::time::Instant::now();
    client.request("health", json!({}), WAIT).await?;
    let rtt = rtt_start.elapsed();
    client.close().await;
    if op.json {
        println!(
            "{}",
            json!({
                "url": url,
                "protocol": hello.protocol,
                "serverVersion": hello.server_version,
                "deviceId": hello.device_id,
                "scopes": hello.scopes,
                "connectMs": ms(hello.latency),
                "requestMs": ms(rtt),
            })
        );
    } else {
        println!("gateway   {url}");
        println!(
            "version   {} (protocol {})",
            hello.server_version, hello.protocol
        );
        println!("device    {}", hello.device_id);
        println!("scopes    {}", hello.scopes.join(", "));
        println!(
            "connect   {:.1} ms (socket, challenge, signature, auth)",
            ms(hello.latency)
        );
        println!("request   {:.1} ms (health round trip)", ms(rtt));
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `pincer status`.
pub async fn status(ctx: &Context, op: &OperatorArgs) -> Result<ExitCode, CliError> {
    let (mut client, _, url) = connect(ctx, op, ClientMode::Cli).await?;
    let s = client.request("status", json!({}), WAIT).await?;
    client.close().await;
    if op.json {
        println!("{s}");
        return Ok(ExitCode::SUCCESS);
    }
    let get = |p: &str| s.pointer(p).cloned().unwrap_or(Value::Null);
    println!("gateway   {url}");
    println!(
        "version   {} (protocol {})",
        text(&get("/version")),
        get("/protocol")
    );
    println!(
        "uptime    {} s",
        get("/uptimeMs").as_u64().unwrap_or(0) / 1000
    );
    println!("agent     {}", text(&get("/agent")));
    println!("sessions  {}", get("/sessions"));
    println!("bridges   {} connected", get("/bridges"));
    println!(
        "devices   {} approved, {} pending",
        get("/devices/approved"),
        get("/devices/pending")
    );
    Ok(ExitCode::SUCCESS)
}

/// `pincer health`: exit 0 when the gateway answers healthy.
pub async fn health(ctx: &Context, op: &OperatorArgs) -> Result<ExitCode, CliError> {
    let (mut client, _, _) = connect(ctx, op, ClientMode::Probe).await?;
    let h = client.request("health", json!({}), WAIT).await?;
    client.close().await;
    let ok = h.get("ok").and_then(Value::as_bool) == Some(true);
    if op.json {
        println!("{h}");
    } else {
        println!("{}", if ok { "healthy" } else { "unhealthy" });
        println!(
            "inbound   {} pending of {}",
            h.pointer("/inbound/pending").unwrap_or(&Value::Null),
            h.pointer("/inbound/total").unwrap_or(&Value::Null)
        );
        println!(
            "outbox    {} pending, {} sent",
            h.pointer("/outbox/pending").unwrap_or(&Value::Null),
            h.pointer("/outbox/sent").unwrap_or(&Value::Null)
        );
        println!("bridges   {}", h.get("bridges").unwrap_or(&Value::Null));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `pincer devices …`.
pub async fn devices(ctx: &Context, command: &DevicesCommand) -> Result<ExitCode, CliError> {
    let (op, method, params) = match command {
        DevicesCommand::List(op) => (op, "devices.list", json!({})),
        DevicesCommand::Approve {
            device_id,
            scopes,
            op,
        } => (
            op,
            "devices.approve",
            json!({ "deviceId": device_id, "scopes": scopes }),
        ),
        DevicesCommand::Reject { device_id, op } => {
            (op, "devices.reject", json!({ "deviceId": device_id }))
        }
        DevicesCommand::Revoke { device_id, op } => {
            (op, "devices.revoke", json!({ "deviceId": device_id }))
        }
        DevicesCommand::Rotate {
            device_id,
            scopes,
            op,
        } => (
            op,
            "devices.rotate",
            json!({ "deviceId": device_id, "scopes": scopes }),
        ),
    };
    let (mut client, hello, _) = connect(ctx, op, ClientMode::Cli).await?;
    let result = client.request(method, params, WAIT).await?;
    client.close().await;
    if op.json {
        println!("{result}");
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        DevicesCommand::List(_) => print_devices(&result, &hello.device_id),
        _ => {
            let id = text(&result["deviceId"]);
            let status = text(&result["status"]);
            let scopes: Vec<String> = result["scopes"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            if scopes.is_empty() {
                println!("{id}: {status}");
            } else {
                println!("{id}: {status} ({})", scopes.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pincer approvals …`.
pub async fn approvals(ctx: &Context, command: &ApprovalsCommand) -> Result<ExitCode, CliError> {
    let (op, method, params) = match command {
        ApprovalsCommand::List(op) => (op, "approvals.list", json!({})),
        ApprovalsCommand::Resolve { id, decision, op } => (
            op,
            "approvals.resolve",
            json!({ "id": id, "decision": decision.as_str() }),
        ),
    };
    let (mut client, _, _) = connect(ctx, op, ClientMode::Cli).await?;
    let result = client.request(method, params, WAIT).await?;
    client.close().await;
    if op.json {
        println!("{result}");
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        ApprovalsCommand::List(_) => print_approvals(&result),
        ApprovalsCommand::Resolve { .. } => {
            println!("{}: {}", text(&result["id"]), text(&result["state"]));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_approvals(result: &Value) {
    let empty = Vec::new();
    let approvals = result["approvals"].as_array().unwrap_or(&empty);
    if approvals.is_empty() {
        println!("no approval requests");
        return;
    }
    for a in approvals {
        println!(
            "{}  {}  agent {}  session {}",
            text(&a["id"]),
            text(&a["state"]),
            text(&a["agentId"]),
            text(&a["sessionKey"])
        );
        println!("    command      {}", text(&a["command"]));
        let cwd = text(&a["cwd"]);
        println!(
            "    cwd          {}",
            if cwd.is_empty() {
                "(workspace root)"
            } else {
                &cwd
            }
        );
        if let Some(env) = a["env"].as_object().filter(|e| !e.is_empty()) {
            let pairs: Vec<String> = env
                .iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect();
            println!("    env          {}", pairs.join(" "));
        }
        let exes: Vec<String> = a["executables"]
            .as_array()
            .map(|x| x.iter().map(text).collect())
            .unwrap_or_default();
        if !exes.is_empty() {
            println!("    executables  {}", exes.join(", "));
        }
        println!("    reason       {}", text(&a["reason"]));
    }
}

fn print_devices(result: &Value, me: &str) {
    let empty = Vec::new();
    let devices = result["devices"].as_array().unwrap_or(&empty);
    if devices.is_empty() {
        println!("no devices");
        return;
    }
    println!(
        "{:<66} {:<9} {:<9} {:<32} {:<16} CLIENT",
        "DEVICE", "STATUS", "ROLE", "SCOPES", "ADDRESS"
    );
    for d in devices {
        let id = text(&d["deviceId"]);
        let marker = if id == me { " (this device)" } else { "" };
        let scopes: Vec<String> = d["scopes"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default();
        println!(
            "{:<66} {:<9} {:<9} {:<32} {:<16} {}{marker}",
            id,
            text(&d["status"]),
            text(&d["role"]),
            scopes.join(","),
            text(&d["remote"]),
            text(&d["client"]),
        );
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
