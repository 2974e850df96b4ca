//! The listening socket: a Unix socket (mode 0660, a stale socket file replaced) or TCP.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::GuardError;
use crate::config::ListenAddr;

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// On a Unix socket.
    Unix(UnixListener, std::path::PathBuf),
    /// On TCP.
    Tcp(TcpListener),
}

impl Drop for Listener {
    /// Removes the Unix socket file, so nothing looks like a live guard after shutdown.
    fn drop(&mut self) {
        if let Self::Unix(_, path) = self
            && let Err(e) = std::fs::remove_file(path.as_path())
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the socket file");
        }
    }
}

/// An accepted connection.
#[derive(Debug)]
pub enum Accepted {
    /// From the Unix socket.
    Unix(UnixStream),
    /// From TCP.
    Tcp(TcpStream),
}

impl Listener {
    /// Binds `addr`. A Unix socket path that holds a socket already (left by a previous run)
    /// is replaced; any other file there is an error.
    pub async fn bind(addr: &ListenAddr) -> Result<Self, GuardError> {
        let failed = |source| GuardError::Listen {
            addr: addr.to_string(),
            source,
        };
        match addr {
            ListenAddr::Unix(path) => {
                match std::fs::symlink_metadata(path) {
                    Ok(meta) if meta.file_type().is_socket() => {
                        std::fs::remove_file(path).map_err(failed)?
                    }
                    Ok(_) => {
                        return Err(failed(std::io::Error::new(
                            std::io::ErrorKind::AlreadyExists,
                            "a file that is not a socket is in the way",
                        )));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(failed(e)),
                }
                let listener = UnixListener::bind(path).map_err(failed)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                    .map_err(failed)?;
                Ok(Self::Unix(listener, path.clone()))
            }
            ListenAddr::Tcp(sock) => Ok(Self::Tcp(TcpListener::bind(sock).await.map_err(failed)?)),
        }
    }

    /// The bound address, for logs (a TCP port 0 shows the port chosen).
    pub fn describe(&self) -> String {
        match self {
            Self::Unix(_, path) => format!("unix:{}", path.display()),
            Self::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp:{a}"),
                Err(_) => "tcp:?".to_owned(),
            },
        }
    }

    /// The bound TCP address, if any.
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().ok(),
            Self::Unix(..) => None,
        }
    }

    /// Accepts one connection.
    pub async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Self::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
            Self::Tcp(l) => l.accept().await.map(|(s, _)| Accepted::Tcp(s)),
        }
    }
}
