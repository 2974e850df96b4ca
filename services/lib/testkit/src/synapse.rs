//! A real Synapse homeserver on loopback, for the Matrix adapter's tests (TESTING.md: real
//! peers where they can run locally). `scripts/setup-peers.sh` installs Synapse into a venv
//! under `${PINCER_PEERS_DIR:-/var/tmp/pincer-peers}/synapse-venv`.
//!
//! [`Synapse::start`] generates a config in the given directory (`--generate-config` for the
//! signing key and secrets), replaces everything else with a test config (one plain-HTTP
//! client listener on `127.0.0.1:<free port>`, SQLite, no federation, no rate limits, no
//! registration except through the shared-secret admin API) and runs the server in the
//! foreground, waiting until `GET /_matrix/client/versions` answers.
//!
//! # No leaked servers
//!
//! A test binary may keep one server in a `static` that is never dropped, so the server
//! does not run as our direct child: a small `sh` watchdog starts it and holds the read end
//! of a pipe (its stdin) that only this process writes to. When the [`Synapse`] is dropped
//! or the test process exits for any reason, the pipe closes, and the watchdog stops the
//! server (SIGTERM, then SIGKILL after 10 s). Registration of users goes through
//! [`Synapse::register`] (HMAC-SHA1 over the nonce, per Synapse's admin API).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The server name every test server uses (user ids are `@name:test.local`).
pub const SERVER_NAME: &str = "test.local";
/// How long the server may take to answer after it was started.
const STARTUP: Duration = Duration::from_secs(60);
/// How long [`Drop`] waits for the watchdog to stop the server.
const SHUTDOWN: Duration = Duration::from_secs(15);

/// A running Synapse.
#[derive(Debug)]
pub struct Synapse {
    watchdog: Child,
    /// Closing this tells the watchdog to stop the server.
    lifeline: Option<ChildStdin>,
    dir: PathBuf,
    shared_secret: String,
    http: reqwest::Client,
    /// Where clients connect.
    pub addr: SocketAddr,
}

/// Why Synapse could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum SynapseError {
    /// Not installed.
    #[error("Synapse is not installed (looked for {0}); run scripts/setup-peers.sh")]
    Missing(String),
    /// Could not prepare or run it.
    #[error("cannot run Synapse: {0}")]
    Io(#[from] std::io::Error),
    /// `--generate-config` failed.
    #[error("Synapse could not generate its config: {0}")]
    Generate(String),
    /// It did not answer in time or exited.
    #[error("Synapse did not start on {addr}: {reason}; its log ends with: {log}")]
    NotStarted {
        /// Where it should listen.
        addr: SocketAddr,
        /// What was observed.
        reason: String,
        /// The tail of its log.
        log: String,
    },
    /// An admin API call failed.
    #[error("Synapse admin API: {0}")]
    Admin(String),
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The full user id, `@name:test.local`.
    pub user_id: String,
    /// An access token for the user.
    pub access_token: String,
}

fn venv() -> PathBuf {
    let peers = std::env::var_os("PINCER_PEERS_DIR")
        .map_or_else(|| PathBuf::from("/var/tmp/pincer-peers"), PathBuf::from);
    peers.join("synapse-venv")
}

fn python() -> Result<PathBuf, SynapseError> {
    let python = venv().join("bin").join("python");
    if python.exists() {
        Ok(python)
    } else {
        Err(SynapseError::Missing(python.display().to_string()))
    }
}

/// The watchdog: runs Synapse in the background, stops it when its stdin closes, and exits
/// when Synapse exits (so the test side can tell that the server died).
const WATCHDOG: &str = r#"
exec 3<&0
"$1" -m synapse.app.homeserver --config-path "$2" </dev/null >"$3" 2>&1 &
server=$!
(
    while read -r _ <&3; do :; done
    kill -TERM "$server" 2>/dev/null
    i=0
    while kill -0 "$server" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
    kill -KILL "$server" 2>/dev/null
) &
wait "$server"
"#;

impl Synapse {
    /// Generates a config in `dir` and starts the server (takes several seconds).
    pub async fn start(dir: &Path) -> Result<Self, SynapseError> {
        let python = python()?;
        let config_path = dir.join("homeserver.yaml");
        let generated = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "--server-name", SERVER_NAME])
            .arg("--config-path")
            .arg(&config_path)
            .arg("--data-directory")
            .arg(dir)
            .args(["--generate-config", "--report-stats=no"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()?;
        if !generated.status.success() {
            return Err(SynapseError::Generate(
                String::from_utf8_lossy(&generated.stderr).into_owned(),
            ));
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let shared_secret = format!("pincer-test-{}", std::process::id());
        let generated_config = std::fs::read_to_string(&config_path)?;
        std::fs::write(
            &config_path,
            test_config(dir, port, &shared_secret, &generated_config),
        )?;
        let log = dir.join("synapse.log");
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("synapse-watchdog")
            .arg(&python)
            .arg(&config_path)
            .arg(&log)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let lifeline = watchdog.stdin.take();
        // No pooled connections: a server shared by several tests outlives the runtime of
        // the test that started it, and pooled connections die with their runtime.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| SynapseError::Admin(e.to_string()))?;
        let mut synapse = Self {
            watchdog,
            lifeline,
            dir: dir.to_path_buf(),
            shared_secret,
            http,
            addr,
        };
        synapse.wait_ready().await?;
        Ok(synapse)
    }

    /// The homeserver URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn wait_ready(&mut self) -> Result<(), SynapseError> {
        let deadline = Instant::now() + STARTUP;
        let versions = format!("{}/_matrix/client/versions", self.url());
        loop {
            let answered = self
                .http
                .get(&versions)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if answered {
                return Ok(());
            }
            let reason = if self.exited() {
                Some("the server exited")
            } else if Instant::now() >= deadline {
                Some("no answer within 60 s")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(SynapseError::NotStarted {
                    addr: self.addr,
                    reason: reason.to_owned(),
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// True once the watchdog exited, which it does when the server did.
    fn exited(&mut self) -> bool {
        !matches!(self.watchdog.try_wait(), Ok(None))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("synapse.log")).unwrap_or_default();
        let start = log.len().saturating_sub(2000);
        let start = (start..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(log.len());
        log[start..].to_owned()
    }

    /// Registers `user` through the shared-secret admin API and returns its access token.
    pub async fn register(
        &self,
        user: &str,
        password: &str,
        admin: bool,
    ) -> Result<Registered, SynapseError> {
        let url = format!("{}/_synapse/admin/v1/register", self.url());
        let admin_err = |e: reqwest::Error| SynapseError::Admin(e.to_string());
        let nonce: serde_json::Value = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(admin_err)?
            .json()
            .await
            .map_err(admin_err)?;
        let nonce = nonce
            .get("nonce")
            .and_then(|n| n.as_str())
            .ok_or_else(|| SynapseError::Admin("no nonce in the answer".to_owned()))?;
        let mac = registration_mac(&self.shared_secret, nonce, user, password, admin)?;
        let body = serde_json::json!({
            "nonce": nonce,
            "username": user,
            "password": password,
            "admin": admin,
            "mac": mac,
        });
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(admin_err)?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.map_err(admin_err)?;
        if !status.is_success() {
            return Err(SynapseError::Admin(format!(
                "registering {user}: {status} {answer}"
            )));
        }
        let field = |name: &str| {
            answer
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| SynapseError::Admin(format!("no {name} in {answer}")))
        };
        Ok(Registered {
            user_id: field("user_id")?,
            access_token: field("access_token")?,
        })
    }
}

/// The admin API's MAC: HMAC-SHA1 over `nonce\0user\0password\0admin|notadmin`, hex.
fn registration_mac(
    secret: &str,
    nonce: &str,
    user: &str,
    password: &str,
    admin: bool,
) -> Result<String, SynapseError> {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes())
        .map_err(|e| SynapseError::Admin(e.to_string()))?;
    for (i, part) in [nonce, user, password].into_iter().enumerate() {
        if i > 0 {
            mac.update(b"\0");
        }
        mac.update(part.as_bytes());
    }
    mac.update(b"\0");
    mac.update(if admin { b"admin" } else { b"notadmin" });
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// The test config: the generated secrets and signing key, everything else ours.
fn test_config(dir: &Path, port: u16, shared_secret: &str, generated: &str) -> String {
    let kept: Vec<&str> = generated
        .lines()
        .filter(|line| {
            ["macaroon_secret_key:", "form_secret:", "signing_key_path:"]
                .iter()
                .any(|key| line.starts_with(key))
        })
        .collect();
    let d = dir.display();
    let unlimited = "{per_second: 10000, burst_count: 100000}";
    format!(
        r#"{kept}
server_name: "{SERVER_NAME}"
pid_file: "{d}/homeserver.pid"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{d}/homeserver.db"
media_store_path: "{d}/media_store"
registration_shared_secret: "{shared_secret}"
enable_registration: false
report_stats: false
suppress_key_server_warning: true
trusted_key_servers: []
presence:
  enabled: false
rc_message: {unlimited}
rc_registration: {unlimited}
rc_login:
  address: {unlimited}
  account: {unlimited}
  failed_attempts: {unlimited}
rc_joins:
  local: {unlimited}
  remote: {unlimited}
rc_joins_per_room: {unlimited}
rc_invites:
  per_room: {unlimited}
  per_user: {unlimited}
  per_issuer: {unlimited}
rc_admin_redaction: {unlimited}
"#,
        kept = kept.join("\n"),
    )
}

impl Drop for Synapse {
    fn drop(&mut self) {
        // Closing the pipe makes the watchdog stop the server; then it exits itself.
        drop(self.lifeline.take());
        let deadline = Instant::now() + SHUTDOWN;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_covers_every_field() {
        let a = registration_mac("s", "n", "u", "p", false).unwrap_or_default();
        let b = registration_mac("s", "n", "u", "p", true).unwrap_or_default();
        let c = registration_mac("s", "n", "u", "q", false).unwrap_or_default();
        assert_eq!(a.len(), 40);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }
}
