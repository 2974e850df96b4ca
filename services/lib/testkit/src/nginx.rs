//! A real nginx on loopback as a reverse proxy, for the gateway's "behind a proxy" tests
//! (TESTING.md: real peers where they can run locally). `scripts/setup-peers.sh` installs
//! nginx; the proxy runs in the foreground as a child process with its own config, logs
//! and temp directories, and is killed when dropped.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    /// Where clients connect.
    pub addr: SocketAddr,
}

/// Why nginx could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    /// Not installed.
    #[error("nginx is not installed (looked for {0}); run scripts/setup-peers.sh")]
    Missing(String),
    /// Could not prepare or run it.
    #[error("cannot run nginx: {0}")]
    Io(#[from] std::io::Error),
    /// It did not start listening.
    #[error("nginx did not start listening on {addr}; its error log says: {log}")]
    NotListening {
        /// Where it should listen.
        addr: SocketAddr,
        /// The error log.
        log: String,
    },
}

fn binary() -> Result<PathBuf, NginxError> {
    let candidates = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| NginxError::Missing(candidates.join(", ")))
}

impl Nginx {
    /// Proxies `127.0.0.1:<free port>` to `upstream` (HTTP and WebSocket upgrades), setting
    /// `X-Forwarded-For` the way a typical deployment does (`$proxy_add_x_forwarded_for`).
    /// With `from`, nginx connects to the upstream from that loopback address, so the
    /// upstream can tell the proxy apart from direct clients.
    pub fn reverse_proxy(
        dir: &Path,
        upstream: SocketAddr,
        from: Option<IpAddr>,
    ) -> Result<Self, NginxError> {
        let bin = binary()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let d = dir.display();
        let bind = from.map_or_else(String::new, |ip| format!("proxy_bind {ip};"));
        let config = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen {addr};
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 300s;
            {bind}
        }}
    }}
}}
"#
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config)?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let nginx = Self {
            child,
            dir: dir.to_path_buf(),
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(addr).is_ok() {
                return Ok(nginx);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(NginxError::NotListening {
            addr,
            log: std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default(),
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
