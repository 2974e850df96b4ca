//! `pincer chat`: send one message (`-m`) and print the reply, or chat interactively.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use pincer_identity::ClientMode;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::CliError;
use crate::cli::ChatArgs;
use crate::context::Context;
use crate::device::DeviceIdentity;
use crate::gateway_client::{ClientAuth, ClientError, GatewayClient, Incoming};

/// Runs `pincer chat`.
pub async fn run(ctx: &Context, args: &ChatArgs) -> Result<ExitCode, CliError> {
    let config = pincer_runtime::config::load_config(&ctx.config_path)?;
    let auth = ClientAuth::from_config(&config)?;
    let url = match &args.url {
        Some(url) => url.clone(),
        None => gateway_ws_url(&gateway_addr(&config)?),
    };
    let mut identity = DeviceIdentity::load(&ctx.state_dir)?;
    let (mut client, _) =
        GatewayClient::connect(&url, &auth, &mut identity, ClientMode::Cli).await?;
    let timeout = Duration::from_secs(args.timeout);
    if let Some(text) = &args.message {
        let reply = send_and_wait(&mut client, &args.session, text, timeout, false).await?;
        println!("{reply}");
        client.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("Connected to {url}. Type a message and press Enter; Ctrl-D to quit.");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        eprint!("> ");
        let Some(line) = lines.next_line().await? else {
            break;
        };
        if line.trim().is_empty() {
            continue;
        }
        send_and_wait(&mut client, &args.session, &line, timeout, true).await?;
        println!();
    }
    client.close().await;
    Ok(ExitCode::SUCCESS)
}

/// The gateway's operator address on this host (resolving `tailnet` from the interfaces).
pub fn gateway_addr(config: &pincer_runtime::Config) -> Result<std::net::SocketAddr, CliError> {
    let interfaces = pincer_runtime::net::interface_addrs()?;
    config
        .gateway
        .listen_addr(&interfaces)
        .map_err(|e| CliError::Up(e.to_string()))
}

/// The operator WebSocket URL for a listen address (0.0.0.0 → 127.0.0.1).
pub fn gateway_ws_url(listen: &std::net::SocketAddr) -> String {
    let host = match listen.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    };
    format!("ws://{host}:{}/ws", listen.port())
}

/// Sends one message and waits for the final reply; with `live`, prints text as it streams.
pub async fn send_and_wait(
    client: &mut GatewayClient,
    session: &str,
    text: &str,
    timeout: Duration,
    live: bool,
) -> Result<String, CliError> {
    let key = uuid::Uuid::new_v4().to_string();
    let id = client
        .send(
            "chat.send",
            json!({ "text": text, "session": session, "idempotencyKey": key }),
        )
        .await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut streamed = false;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let incoming = tokio::time::timeout(remaining, client.next())
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        match incoming {
            Incoming::Res {
                id: rid,
                result: Err(err),
            } if rid == id => {
                return Err(ClientError::Refused {
                    method: "chat.send".into(),
                    code: err
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                        .into(),
                    message: err
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                }
                .into());
            }
            Incoming::Event { event, payload }
                if event == "chat"
                    && payload.get("runId").and_then(Value::as_str) == Some(&key) =>
            {
                let field = |k: &str| {
                    payload
                        .get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                match field("state").as_str() {
                    "delta" if live => {
                        print!("{}", field("text"));
                        streamed = true;
                        let _ = std::io::stdout().flush();
                    }
                    "tool_call" if live => {
                        eprintln!("\n[tool {}: {}]", field("tool"), field("arguments"))
                    }
                    "final" => {
                        let text = field("text");
                        if live && !streamed {
                            print!("{text}");
                        }
                        return Ok(text);
                    }
                    "error" => {
                        return Err(CliError::Up(format!(
                            "the turn failed: {}",
                            field("message")
                        )));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}
