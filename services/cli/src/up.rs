//! `pincer up`: runs the four services as local processes from one config.
//!
//! Each service gets a fresh per-run credential and only the secrets it uses: the child
//! environment is cleared and refilled with `PATH`, `HOME`, logging variables and the
//! variables its own secret references name. The gateway starts after the executor and
//! the agent, the bridge last; on Ctrl-C/SIGTERM they stop in the reverse order, each
//! draining its work (SIGTERM, then SIGKILL after a grace period).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pincer_runtime::config::validate::GatewayAuth;
use pincer_runtime::config::validate::{
    ENV_AGENT_CREDENTIAL, ENV_BRIDGE_CREDENTIAL, ENV_EXECUTOR_CREDENTIAL, ENV_GATEWAY_CREDENTIAL,
};
use pincer_runtime::secret::SecretKind;
use pincer_runtime::{Config, ProcessSecrets, SecretRef};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::CliError;
use crate::chat::{gateway_addr, gateway_ws_url};
use crate::cli::UpArgs;
use crate::context::Context;
use crate::onboard::{
    DEMO_BOT_TOKEN, DEMO_LLM_PORT, DEMO_TELEGRAM_PORT, ensure_config, random_token,
};

const GRACE: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(60);

struct Service {
    name: &'static str,
    spec: Spec,
    child: Child,
    restarts: Vec<tokio::time::Instant>,
}

/// How to (re)start a service.
#[derive(Clone)]
struct Spec {
    path: PathBuf,
    args: Vec<String>,
    secrets: BTreeMap<String, String>,
    pid_file: PathBuf,
}

/// Restarts allowed within [`RESTART_WINDOW`] before `pincer up` gives up.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Runs `pincer up`.
pub async fn run(ctx: &Context, args: &UpArgs) -> Result<ExitCode, CliError> {
    pincer_runtime::paths::ensure_private_dir(&ctx.state_dir)?;
    if ensure_config(&ctx.config_path, ctx.demo)? {
        eprintln!(
            "pincer: wrote a new config to {}",
            ctx.config_path.display()
        );
    }
    let config = pincer_runtime::config::load_config(&ctx.config_path)?;
    check_secrets(&config)?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let credentials: BTreeMap<&str, String> = [
        ENV_GATEWAY_CREDENTIAL,
        ENV_BRIDGE_CREDENTIAL,
        ENV_AGENT_CREDENTIAL,
        ENV_EXECUTOR_CREDENTIAL,
    ]
    .into_iter()
    .map(|name| (name, random_token()))
    .collect();

    let mut running: Vec<Service> = Vec::new();
    let result = start_all(ctx, &config, &bin_dir, &credentials, &mut running).await;
    let code = match result {
        Ok(()) => {
            print_banner(ctx, &config);
            wait_for_stop(&mut running).await
        }
        Err(e) => {
            eprintln!("pincer: {e}");
            ExitCode::FAILURE
        }
    };
    stop_all(&mut running).await;
    eprintln!("pincer: stopped");
    Ok(code)
}

async fn start_all(
    ctx: &Context,
    config: &Config,
    bin_dir: &Path,
    credentials: &BTreeMap<&str, String>,
    running: &mut Vec<Service>,
) -> Result<(), CliError> {
    if ctx.demo {
        let llm_addr = format!("127.0.0.1:{DEMO_LLM_PORT}");
        let tg_addr = format!("127.0.0.1:{DEMO_TELEGRAM_PORT}");
        running.push(spawn(
            ctx,
            bin_dir,
            "fake-llm",
            "pincer-fake-llm",
            &["--listen", &llm_addr],
            BTreeMap::new(),
        )?);
        running.push(spawn(
            ctx,
            bin_dir,
            "fake-telegram",
            "pincer-fake-telegram",
            &[
                "--listen",
                &tg_addr,
                "--token",
                DEMO_BOT_TOKEN,
                "--bot-username",
                "pincer_demo_bot",
            ],
            BTreeMap::new(),
        )?);
        wait_for_port(&llm_addr, "fake-llm").await?;
        wait_for_port(&tg_addr, "fake-telegram").await?;
    }
    let cfg = ctx.config_path.display().to_string();
    let state = ctx.state_dir.display().to_string();
    let service_args = ["--config", cfg.as_str(), "--state-dir", state.as_str()];
    let creds = &config.services.credentials;
    let env_for = |refs: Vec<&SecretRef>| secret_env(&refs, credentials);

    running.push(spawn(
        ctx,
        bin_dir,
        "executor",
        "pincer-executor",
        &service_args,
        env_for(vec![&creds.agent, &creds.executor]),
    )?);
    running.push(spawn(
        ctx,
        bin_dir,
        "agent",
        "pincer-agent",
        &service_args,
        {
            let mut refs = vec![&creds.gateway, &creds.agent];
            refs.extend(config.providers.values().filter_map(|p| p.api_key.as_ref()));
            env_for(refs)
        },
    )?);
    running.push(spawn(
        ctx,
        bin_dir,
        "gateway",
        "pincer-gateway",
        &service_args,
        env_for({
            let mut refs = vec![&creds.gateway, &creds.bridge, &creds.agent, &creds.executor];
            if let GatewayAuth::Token(token) = &config.gateway.auth {
                refs.push(token);
            }
            refs
        }),
    )?);
    wait_ready(gateway_addr(config)?).await?;
    if config.has_channels() {
        running.push(spawn(
            ctx,
            bin_dir,
            "bridge",
            "pincer-bridge",
            &service_args,
            env_for({
                let mut refs: Vec<&SecretRef> = config
                    .channel_secrets()
                    .into_iter()
                    .map(|(_, r)| r)
                    .collect();
                refs.push(&creds.bridge);
                refs
            }),
        )?);
    }
    Ok(())
}

/// Fails early, naming the key, when a secret the services need is not available.
fn check_secrets(config: &Config) -> Result<(), CliError> {
    for (what, reference) in crate::config_cmd::secret_refs(config) {
        let generated = matches!(reference.kind(), SecretKind::Env(n) if [ENV_GATEWAY_CREDENTIAL, ENV_BRIDGE_CREDENTIAL, ENV_AGENT_CREDENTIAL, ENV_EXECUTOR_CREDENTIAL].contains(&n));
        if generated {
            continue;
        }
        if what.starts_with("models.providers.")
            && !what.starts_with(&format!(
                "models.providers.{}.",
                config.agent.model.provider
            ))
        {
            continue;
        }
        reference
            .resolve(&ProcessSecrets)
            .map_err(|source| CliError::Secret { what, source })?;
    }
    Ok(())
}

/// The environment variables a service's secret references name, with their values.
fn secret_env(refs: &[&SecretRef], generated: &BTreeMap<&str, String>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for r in refs {
        if let SecretKind::Env(name) = r.kind() {
            let value = generated
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok());
            if let Some(value) = value {
                env.insert(name.to_owned(), value);
            }
        }
    }
    env
}

fn spawn(
    ctx: &Context,
    bin_dir: &Path,
    name: &'static str,
    binary: &str,
    args: &[&str],
    secrets: BTreeMap<String, String>,
) -> Result<Service, CliError> {
    let path: PathBuf = bin_dir.join(binary);
    if !path.is_file() {
        return Err(CliError::Up(format!(
            "{} not found; build the service binaries first (`cargo build --release --workspace --bins`) or pass --bin-dir",
            path.display()
        )));
    }
    let run_dir = ctx.state_dir.join("run");
    pincer_runtime::paths::ensure_private_dir(&run_dir)?;
    let spec = Spec {
        path,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        secrets,
        pid_file: run_dir.join(format!("{name}.pid")),
    };
    let child = start_child(name, &spec)?;
    Ok(Service {
        name,
        spec,
        child,
        restarts: Vec::new(),
    })
}

fn start_child(name: &'static str, spec: &Spec) -> Result<Child, CliError> {
    let mut cmd = Command::new(&spec.path);
    cmd.args(&spec.args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in [
        "PATH",
        "HOME",
        "RUST_LOG",
        "LANG",
        "TZ",
        "DOCKER_HOST",
        "PINCER_SKIP_DOCKER",
    ] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd.envs(&spec.secrets);
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::Up(format!("cannot start {}: {e}", spec.path.display())))?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(prefix_lines(name, out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(prefix_lines(name, err));
    }
    if let Some(pid) = child.id() {
        pincer_runtime::paths::write_private_file(&spec.pid_file, format!("{pid}\n").as_bytes())?;
    }
    Ok(child)
}

async fn prefix_lines(name: &'static str, stream: impl tokio::io::AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{name:>13}] {line}");
    }
}

async fn wait_for_port(addr: &str, name: &str) -> Result<(), CliError> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(CliError::Up(format!(
        "{name} did not start listening on {addr}"
    )))
}

/// Polls the gateway's `/readyz` until it answers 200.
async fn wait_ready(listen: SocketAddr) -> Result<(), CliError> {
    let addr = if listen.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], listen.port()))
    } else {
        listen
    };
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if readyz(addr).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    Err(CliError::Up(format!(
        "the gateway did not become ready on {addr} within {READY_TIMEOUT:?}"
    )))
}

async fn readyz(addr: SocketAddr) -> bool {
    let Ok(Ok(mut stream)) =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await
    else {
        return false;
    };
    let request = format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut response)).await;
    matches!(read, Ok(Ok(_))) && response.starts_with(b"HTTP/1.0 200")
        || response.starts_with(b"HTTP/1.1 200")
}

fn print_banner(ctx: &Context, config: &Config) {
    let profile = if ctx.demo { " --demo" } else { "" };
    eprintln!();
    eprintln!("Pincer is up.");
    eprintln!(
        "  gateway:  {}  (token in {})",
        gateway_addr(config)
            .map(|a| gateway_ws_url(&a))
            .unwrap_or_default(),
        ctx.config_path.display()
    );
    eprintln!(
        "  chat:     pincer chat{profile} -m \"hello\"   (or `pincer chat{profile}` for a conversation)"
    );
    if ctx.demo {
        eprintln!(
            "  telegram: curl -s -X POST http://127.0.0.1:{DEMO_TELEGRAM_PORT}/_fake/messages -H 'content-type: application/json' \\\n            -d '{{\"chat_id\":1001,\"chat_type\":\"private\",\"from_id\":1001,\"text\":\"run: echo hi\"}}'"
        );
        eprintln!("            then: curl -s http://127.0.0.1:{DEMO_TELEGRAM_PORT}/_fake/sent");
    }
    eprintln!("Press Ctrl-C to stop.");
}

/// Waits for Ctrl-C/SIGTERM. A service that exits on its own is restarted (its queued work
/// is durable); one that keeps crashing stops the stack.
async fn wait_for_stop(running: &mut [Service]) -> ExitCode {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pincer: cannot listen for SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => { eprintln!("pincer: interrupt; stopping"); return ExitCode::SUCCESS; }
            _ = term.recv() => { eprintln!("pincer: SIGTERM; stopping"); return ExitCode::SUCCESS; }
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                for s in running.iter_mut() {
                    let Ok(Some(status)) = s.child.try_wait() else { continue };
                    let now = tokio::time::Instant::now();
                    s.restarts.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
                    if s.restarts.len() >= MAX_RESTARTS {
                        eprintln!("pincer: {} exited ({status}) {MAX_RESTARTS} times within {RESTART_WINDOW:?}; stopping the stack", s.name);
                        return ExitCode::FAILURE;
                    }
                    s.restarts.push(now);
                    eprintln!("pincer: {} exited unexpectedly ({status}); restarting it", s.name);
                    match start_child(s.name, &s.spec) {
                        Ok(child) => s.child = child,
                        Err(e) => {
                            eprintln!("pincer: cannot restart {}: {e}", s.name);
                            return ExitCode::FAILURE;
                        }
                    }
                }
            }
        }
    }
}

/// Stops services in reverse start order: SIGTERM, wait for the drain, SIGKILL after the grace.
async fn stop_all(running: &mut Vec<Service>) {
    while let Some(mut s) = running.pop() {
        if let Ok(Some(_)) = s.child.try_wait() {
            continue;
        }
        if let Some(pid) = s.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        match tokio::time::timeout(GRACE, s.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => eprintln!("pincer: {} stopped with {status}", s.name),
            Ok(Err(e)) => eprintln!("pincer: waiting for {} failed: {e}", s.name),
            Err(_) => {
                eprintln!(
                    "pincer: {} did not stop within {GRACE:?}; killing it",
                    s.name
                );
                let _ = s.child.kill().await;
            }
        }
    }
}
