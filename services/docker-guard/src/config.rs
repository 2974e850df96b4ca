//! Command-line flags (each also an environment variable) → a checked [`GuardConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::GuardError;
use crate::rules::bind::verify_root_on_disk;
use crate::rules::{BindCheck, Policy, WorkspaceRoot};

/// `pincer-docker-guard`: a proxy in front of the Docker socket that lets the executor
/// create, run and remove sandbox containers with the sandbox posture, and nothing else.
#[derive(Debug, Parser)]
#[command(name = "pincer-docker-guard", version)]
pub struct Args {
    /// Where to listen: `unix:/path/guard.sock`, or `tcp:127.0.0.1:2375` (`tcp:0.0.0.0:2375`
    /// only on a private network that holds nothing but the executor).
    #[arg(long, env = "PINCER_GUARD_LISTEN")]
    pub listen: String,
    /// The Docker engine's socket.
    #[arg(
        long,
        env = "PINCER_GUARD_DOCKER",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker: String,
    /// The only image that may be inspected and run.
    #[arg(
        long,
        env = "PINCER_GUARD_IMAGE",
        default_value = "pincer-sandbox:latest"
    )]
    pub image: String,
    /// The workspace root as the engine sees it; bind sources must be `<root>/<agent-id>`.
    #[arg(long, env = "PINCER_GUARD_WORKSPACE_ROOT")]
    pub workspace_root: String,
    /// `fs`: also check on disk that each bind source is a real directory (the guard must
    /// see the workspace root at the engine's path); `text`: only textually.
    #[arg(long, env = "PINCER_GUARD_BIND_CHECK", value_enum, default_value_t = BindCheckArg::Fs)]
    pub bind_check: BindCheckArg,
    /// Log format.
    #[arg(long, env = "PINCER_GUARD_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
}

/// `--bind-check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BindCheckArg {
    /// Textually and on disk.
    Fs,
    /// Textually only.
    Text,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where the guard listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A Unix socket at this path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

impl ListenAddr {
    /// Parses `unix:/path`, `unix:///path` or `tcp:HOST:PORT` (an IP address, not a name).
    pub fn parse(raw: &str) -> Result<Self, GuardError> {
        let bad = |why: &str| GuardError::BadFlag {
            flag: "--listen",
            value: raw.to_owned(),
            why: why.to_owned(),
        };
        if let Some(path) = raw.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.starts_with('/') {
                return Err(bad("a Unix socket needs an absolute path (unix:/path)"));
            }
            Ok(Self::Unix(PathBuf::from(path)))
        } else if let Some(addr) = raw.strip_prefix("tcp:") {
            let addr = addr.strip_prefix("//").unwrap_or(addr);
            addr.parse()
                .map(Self::Tcp)
                .map_err(|_| bad("expected tcp:IP:PORT, e.g. tcp:127.0.0.1:2375"))
        } else {
            Err(bad("expected unix:/path or tcp:IP:PORT"))
        }
    }
}

/// Everything the guard needs, checked.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Where to listen.
    pub listen: ListenAddr,
    /// The engine's Unix socket.
    pub docker_socket: PathBuf,
    /// What passes.
    pub policy: Policy,
}

impl GuardConfig {
    /// Checks the flags; with `--bind-check fs`, also that the workspace root is visible here.
    pub fn from_args(args: &Args) -> Result<Self, GuardError> {
        let listen = ListenAddr::parse(&args.listen)?;
        let docker_socket = parse_docker(&args.docker)?;
        let bad_image = |why: &str| GuardError::BadFlag {
            flag: "--image",
            value: args.image.clone(),
            why: why.to_owned(),
        };
        check_image_name(&args.image).map_err(bad_image)?;
        let workspace_root =
            WorkspaceRoot::parse(&args.workspace_root).map_err(|why| GuardError::BadFlag {
                flag: "--workspace-root",
                value: args.workspace_root.clone(),
                why: why.to_owned(),
            })?;
        let bind_check = match args.bind_check {
            BindCheckArg::Fs => {
                verify_root_on_disk(&workspace_root).map_err(|why| GuardError::BadFlag {
                    flag: "--workspace-root",
                    value: args.workspace_root.clone(),
                    why: format!(
                        "{why} (with --bind-check fs the guard must see the workspace root at \
                         the path the engine uses: mount it there read-only, or pass --bind-check text)"
                    ),
                })?;
                BindCheck::Filesystem
            }
            BindCheckArg::Text => BindCheck::Text,
        };
        Ok(Self {
            listen,
            docker_socket,
            policy: Policy {
                image: args.image.clone(),
                workspace_root,
                bind_check,
            },
        })
    }
}

/// `unix:///path`, `unix:/path` or `/path`.
fn parse_docker(raw: &str) -> Result<PathBuf, GuardError> {
    let path = raw
        .strip_prefix("unix://")
        .or_else(|| raw.strip_prefix("unix:"))
        .unwrap_or(raw);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(GuardError::BadFlag {
            flag: "--docker",
            value: raw.to_owned(),
            why: "only the engine's Unix socket is supported (unix:///var/run/docker.sock)"
                .to_owned(),
        })
    }
}

/// An image reference as it may appear in a path: `[a-z0-9._/:@-]`, no `..`, no leading `/`.
fn check_image_name(image: &str) -> Result<(), &'static str> {
    let ok = !image.is_empty()
        && image.len() <= 255
        && !image.starts_with('/')
        && !image.ends_with('/')
        && !image.contains("//")
        && !image.contains("..")
        && image.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'_' | b'/' | b':' | b'@' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err("expected an image reference such as pincer-sandbox:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            ListenAddr::parse("unix:/run/g.sock").unwrap(),
            ListenAddr::Unix("/run/g.sock".into())
        );
        assert_eq!(
            ListenAddr::parse("unix:///run/g.sock").unwrap(),
            ListenAddr::Unix("/run/g.sock".into())
        );
        assert_eq!(
            ListenAddr::parse("tcp:0.0.0.0:2375").unwrap(),
            ListenAddr::Tcp("0.0.0.0:2375".parse().unwrap())
        );
        for bad in ["unix:g.sock", "tcp:docker:2375", "/run/g.sock", "http://x"] {
            assert!(ListenAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_endpoints_and_images() {
        assert_eq!(
            parse_docker("unix:///var/run/docker.sock").unwrap(),
            PathBuf::from("/var/run/docker.sock")
        );
        assert!(parse_docker("tcp://1.2.3.4:2375").is_err());
        assert!(check_image_name("pincer-sandbox:latest").is_ok());
        assert!(check_image_name("registry.local/pincer/sandbox:1").is_ok());
        for bad in ["", "../x", "a//b", "Upper", "a b", "a%2fb", "/x"] {
            assert!(check_image_name(bad).is_err(), "{bad}");
        }
    }
}
