//! A real ngircd on loopback, for the bridge's IRC adapter tests (TESTING.md: real peers
//! where they can run locally). `scripts/setup-peers.sh` installs ngircd; the server runs
//! in the foreground (`ngircd -n`) as a child process with its own config in a temp
//! directory, listens on `127.0.0.1:<free port>` (plain, or TLS with a given certificate),
//! and is killed when dropped.
//!
//! ngircd drops root privileges to `nobody` when started as root, so the files it reads
//! after that (the PID file's directory) are made accessible to it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running ngircd.
#[derive(Debug)]
pub struct Ngircd {
    child: Child,
    /// Where clients connect (plain text or TLS, as configured).
    pub addr: SocketAddr,
    /// The server name (`irc.test`), the prefix of its numeric replies.
    pub name: &'static str,
}

/// How to start ngircd (see [`Ngircd::start_with`]).
#[derive(Debug, Clone, Default)]
pub struct NgircdOptions {
    /// Listen on this loopback port instead of a free one (to restart a server in place).
    pub port: Option<u16>,
    /// Serve TLS (only) with this PEM certificate chain and private key.
    pub tls: Option<NgircdTls>,
    /// Channels that exist from the start (none by default).
    pub channels: Vec<NgircdChannel>,
}

/// A channel ngircd creates at start-up (mode `+n`, plus `+k` with a key).
#[derive(Debug, Clone)]
pub struct NgircdChannel {
    /// The name, e.g. `#pincer`.
    pub name: String,
    /// The channel key clients must give to join, if any.
    pub key: Option<String>,
}

/// A TLS certificate and key for ngircd, as PEM files.
#[derive(Debug, Clone)]
pub struct NgircdTls {
    /// The certificate chain (PEM).
    pub cert_file: PathBuf,
    /// The private key (PEM).
    pub key_file: PathBuf,
}

/// Why ngircd could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NgircdError {
    /// Not installed.
    #[error("ngircd is not installed (looked for {0}); run scripts/setup-peers.sh")]
    Missing(String),
    /// Could not prepare or run it.
    #[error("cannot run ngircd: {0}")]
    Io(#[from] std::io::Error),
    /// The generated configuration was refused (`ngircd -t`).
    #[error("ngircd refused its configuration: {0}")]
    BadConfig(String),
    /// It did not start listening.
    #[error("ngircd did not start listening on {addr}; its output says: {log}")]
    NotListening {
        /// Where it should listen.
        addr: SocketAddr,
        /// Its stdout/stderr.
        log: String,
    },
}

/// The server name in the generated configuration.
pub const SERVER_NAME: &str = "irc.test";

fn binary() -> Result<PathBuf, NgircdError> {
    let candidates = [
        "/usr/sbin/ngircd",
        "/usr/local/sbin/ngircd",
        "/usr/bin/ngircd",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| NgircdError::Missing(candidates.join(", ")))
}

/// The numeric uid and gid of this process (from `/proc/self/status`), 0 when unknown.
fn current_ids() -> (u32, u32) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Uid:"), field("Gid:"))
}

#[cfg(unix)]
fn open_permissions(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn open_permissions(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

impl Ngircd {
    /// Starts ngircd on `127.0.0.1:<free port>`, plain text, with its files in `dir`.
    pub fn start(dir: &Path) -> Result<Self, NgircdError> {
        Self::start_with(dir, NgircdOptions::default())
    }

    /// Starts ngircd with `options`, its files in `dir`.
    pub fn start_with(dir: &Path, options: NgircdOptions) -> Result<Self, NgircdError> {
        let bin = binary()?;
        let port = match options.port {
            Some(port) => port,
            None => TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // ngircd refuses to keep root and runs as `nobody`: let it reach its run directory.
        open_permissions(dir, 0o755)?;
        let run = dir.join("run");
        std::fs::create_dir_all(&run)?;
        open_permissions(&run, 0o777)?;
        let (uid, gid) = current_ids();
        let (plain_ports, ssl) = match &options.tls {
            None => (port.to_string(), String::new()),
            Some(tls) => {
                for file in [&tls.cert_file, &tls.key_file] {
                    open_permissions(file, 0o644)?;
                }
                (
                    String::new(),
                    format!(
                        "[SSL]\n\tCertFile = {}\n\tKeyFile = {}\n\tPorts = {port}\n",
                        tls.cert_file.display(),
                        tls.key_file.display()
                    ),
                )
            }
        };
        let channels: String = options
            .channels
            .iter()
            .map(|c| match &c.key {
                Some(key) => format!("[Channel]\n\tName = {}\n\tModes = +nk {key}\n", c.name),
                None => format!("[Channel]\n\tName = {}\n\tModes = +n\n", c.name),
            })
            .collect();
        let config = format!(
            "[Global]
\tName = {SERVER_NAME}
\tInfo = Pincer test server
\tAdminInfo1 = Pincer tests
\tAdminInfo2 = loopback only
\tAdminEMail = tests@irc.test
\tListen = 127.0.0.1
\tPorts = {plain_ports}
\tServerUID = {uid}
\tServerGID = {gid}
\tPidFile = {pid}
\tMotdPhrase = Pincer test server
[Limits]
\tMaxNickLength = 30
\tMaxJoins = 50
\tMaxConnectionsIP = 0
\tMaxPenaltyTime = 1
\tPingTimeout = 120
\tPongTimeout = 20
[Options]
\tPAM = no
\tIdent = no
\tDNS = no
\tMorePrivacy = no
{ssl}{channels}",
            pid = run.join("ngircd.pid").display(),
        );
        let conf = dir.join("ngircd.conf");
        std::fs::write(&conf, config)?;
        open_permissions(&conf, 0o644)?;
        let check = Command::new(&bin)
            .arg("-t")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .output()?;
        if !check.status.success() {
            return Err(NgircdError::BadConfig(
                String::from_utf8_lossy(&check.stdout).into_owned()
                    + &String::from_utf8_lossy(&check.stderr),
            ));
        }
        let log_path = dir.join("ngircd.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut server = Self {
            child,
            addr,
            name: SERVER_NAME,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(addr).is_ok() {
                return Ok(server);
            }
            if let Ok(Some(_)) = server.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(NgircdError::NotListening {
            addr,
            log: std::fs::read_to_string(&log_path).unwrap_or_default(),
        })
    }

    /// Kills the server now (as [`Drop`] does), e.g. to test a client's reconnect.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        self.kill();
    }
}
