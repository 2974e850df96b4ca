//! The guarded proxy sandboxed commands reach the web through, when their grant's
//! `sandbox.network` is `EGRESS`: `pincer_egress::GuardedProxy` (the SSRF guard of
//! `web_fetch`, with `tools.webFetch.allowNetworks`, to `tools.exec.egressPorts`) on a
//! UNIX socket in
//! `<workspace root>/.egress/` (0700, the executor's own; the socket 0666 inside it). The
//! jail's helper relays the command's `HTTP(S)_PROXY` connections to it
//! (`pincer_jail::Network::Egress`); a Docker sandbox gets the socket bind-mounted
//! read-only and a relay of the sandbox image carries them (docs/sandbox.md).
//!
//! Agent ids never start with a dot, so no workspace can be that directory.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pincer_egress::{Dialer, GuardedProxy};
use pincer_runtime::config::validate::WebFetchToolConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ExecutorError;

/// The directory under the workspace root that holds the proxy's socket.
pub const EGRESS_DIR: &str = ".egress";
/// The socket's file name.
pub const SOCKET_NAME: &str = "proxy.sock";
/// The longest path a UNIX socket may have (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where sandboxed commands' egress goes, or why there is none.
#[derive(Debug, Clone)]
pub enum SandboxEgress {
    /// The proxy listens at this socket.
    Ready(PathBuf),
    /// It could not be started; calls that need it are refused with this reason.
    Unavailable(String),
}

impl SandboxEgress {
    /// The socket, or the refusal for a call whose grant gives egress.
    pub fn socket(&self) -> Result<&Path, ExecutorError> {
        match self {
            Self::Ready(path) => Ok(path),
            Self::Unavailable(why) => Err(ExecutorError::SandboxEgressUnavailable(why.clone())),
        }
    }

    /// Starts the proxy on `<workspace_root>/.egress/proxy.sock` (replacing a stale
    /// socket of an earlier run) until `shutdown`; a failure is logged and kept as the
    /// reason later egress calls are refused.
    pub fn start(
        workspace_root: &Path,
        web: &WebFetchToolConfig,
        ports: &[u16],
        dialer: Option<Arc<dyn Dialer>>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        match bind(workspace_root) {
            Ok((path, listener)) => {
                let mut builder = GuardedProxy::builder().ports(ports.iter().copied());
                for net in &web.allow_networks {
                    builder = builder.allow_network(*net);
                }
                if let Some(dialer) = dialer {
                    builder = builder.dialer(dialer);
                }
                let proxy = builder.build();
                tasks.spawn(async move {
                    if let Err(e) = proxy.serve_unix(listener, shutdown.cancelled()).await {
                        tracing::error!(error = %e, "the sandbox egress proxy stopped");
                    }
                });
                tracing::info!(socket = %path.display(), "sandbox egress proxy ready");
                Self::Ready(path)
            }
            Err(why) => {
                tracing::warn!(reason = %why, "no sandbox egress proxy; commands granted egress will be refused");
                Self::Unavailable(why)
            }
        }
    }
}

fn bind(workspace_root: &Path) -> Result<(PathBuf, tokio::net::UnixListener), String> {
    let dir = workspace_root.join(EGRESS_DIR);
    let path = dir.join(SOCKET_NAME);
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(format!(
            "the socket path {} is longer than 107 bytes; use a shorter executor.workspaceRoot",
            path.display()
        ));
    }
    // The root as the workspaces make it (0711: the sandbox user may pass through to its
    // own workspace only).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(workspace_root)
        .map_err(|e| format!("{}: {e}", workspace_root.display()))?;
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(&path)
            .map_err(|e| format!("removing the stale {}: {e}", path.display()))?,
        Ok(_) => {
            return Err(format!(
                "{} exists and is not a socket; remove it",
                path.display()
            ));
        }
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| format!("listening on {}: {e}", path.display()))?;
    // Connecting needs write permission on the socket. The directory (0700) keeps
    // everyone on this host out; a Docker sandbox gets the socket itself bind-mounted and
    // connects as the sandbox user.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((path, listener))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_root_is_refused_with_the_fix() {
        let root = PathBuf::from(format!("/{}", "r".repeat(100)));
        let e = bind(&root).unwrap_err();
        assert!(e.contains("shorter executor.workspaceRoot"), "{e}");
    }

    #[tokio::test]
    async fn binds_privately_and_replaces_a_stale_socket() {
        let root = tempfile::tempdir().unwrap();
        let (path, first) = bind(root.path()).unwrap();
        drop(first);
        // The socket file of the dropped listener is still there: stale.
        assert!(path.exists());
        let (again, _listener) = bind(root.path()).unwrap();
        assert_eq!(again, path);
        let mode = std::fs::metadata(root.path().join(EGRESS_DIR))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(
            SandboxEgress::Unavailable("x".into())
                .socket()
                .unwrap_err()
                .to_string()
                .contains("not available here: x")
        );
    }

    #[test]
    fn a_non_socket_in_the_way_is_named() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(EGRESS_DIR)).unwrap();
        std::fs::write(root.path().join(EGRESS_DIR).join(SOCKET_NAME), "x").unwrap();
        let e = bind(root.path()).unwrap_err();
        assert!(e.contains("is not a socket"), "{e}");
    }
}
