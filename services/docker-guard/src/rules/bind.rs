//! The workspace root and the only bind source allowed under it.
//!
//! The engine resolves symbolic links in a bind source on the host. A source deep inside an
//! agent's workspace could be a link the sandbox itself planted (`/workspace/x -> /`), so
//! the only source accepted is **one level** below the root: `<root>/<agent-id>`, with the
//! agent id in the executor's alphabet (`[a-z0-9_-]{1,64}`). Sandboxes never see the root
//! itself, so they cannot plant a link there. Whoever can write the root (the executor)
//! could; with [`BindCheck::Filesystem`] the guard also checks on disk that the source is a
//! real directory, not a link (see `verify_on_disk`).
//!
//! One other source exists: the executor's guarded egress proxy, `<root>/.egress/proxy.sock`
//! (a directory sandboxes never see either), mounted **read-only** at exactly
//! [`EGRESS_TARGET`] for sandboxes granted network egress; on disk it must be a socket,
//! not a link.

use std::path::Path;

/// How bind sources are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindCheck {
    /// Textually, and on the file system: the guard sees the workspace root at the same
    /// path as the engine (same host, or the same directory mounted at the same path).
    Filesystem,
    /// Textually only (the guard cannot see the workspace root).
    Text,
}

/// Where a sandbox granted egress finds the proxy's socket (the executor's
/// `posture::EGRESS_SOCKET_MOUNT`).
pub const EGRESS_TARGET: &str = "/run/pincer-egress.sock";
/// The proxy's socket under the workspace root.
const EGRESS_SOCKET: &str = ".egress/proxy.sock";

/// What an accepted bind source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindKind {
    /// `<root>/<agent-id>`: a workspace directory.
    Workspace,
    /// `<root>/.egress/proxy.sock`: the guarded proxy's socket.
    EgressSocket,
}

/// The longest agent id (the executor's `AgentId`).
const MAX_AGENT_ID_LEN: usize = 64;

/// A normalised absolute directory: no `.`/`..`/empty components, no trailing `/`, not `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceRoot(String);

impl WorkspaceRoot {
    /// Validates `raw` (a trailing `/` is dropped).
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.strip_suffix('/').unwrap_or(raw);
        if trimmed.is_empty() {
            return Err("must not be the file system root");
        }
        check_normal_absolute(trimmed)?;
        Ok(Self(trimmed.to_owned()))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The guarded proxy's socket, `<root>/.egress/proxy.sock`.
    pub fn egress_socket(&self) -> String {
        format!("{}/{EGRESS_SOCKET}", self.0)
    }

    /// Checks `source` textually: exactly `<root>/<agent-id>`.
    pub fn check_source(&self, source: &str) -> Result<(), String> {
        let rest = source
            .strip_prefix(self.0.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| format!("{source:?} is not under the workspace root {}", self.0))?;
        let ok = !rest.is_empty()
            && rest.len() <= MAX_AGENT_ID_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{source:?} must be exactly {}/<agent-id> (agent id: [a-z0-9_-], at most {MAX_AGENT_ID_LEN})",
                self.0
            ))
        }
    }
}

/// Checks `path` is absolute with no `.`, `..` or empty components and no trailing `/`.
pub fn check_normal_absolute(path: &str) -> Result<(), &'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("must be an absolute path");
    };
    if rest.is_empty() {
        return Ok(());
    }
    for part in rest.split('/') {
        match part {
            "" => return Err("must not contain empty components (`//` or a trailing `/`)"),
            "." | ".." => return Err("must not contain `.` or `..` components"),
            _ if part.contains('\0') => return Err("must not contain NUL"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a mount target inside the container: normalised, absolute, not `/` and not in
/// the kernel file systems (`/proc`, `/sys`, `/dev`) whose masking protects the host.
pub fn check_target(target: &str) -> Result<(), String> {
    check_normal_absolute(target).map_err(|why| format!("{target:?} {why}"))?;
    let in_dir = |dir: &str| {
        target == dir
            || target
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if target == "/" || ["/proc", "/sys", "/dev"].into_iter().any(in_dir) {
        return Err(format!(
            "{target:?} is not a place a sandbox mount may go (/, /proc, /sys, /dev)"
        ));
    }
    Ok(())
}

/// The file-system half of [`BindCheck::Filesystem`]: `source` (already textually checked)
/// must be a directory that is not a symbolic link, and resolve to itself.
pub fn verify_on_disk(source: &str) -> Result<(), String> {
    let path = Path::new(source);
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("{source:?} cannot be inspected: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err(format!("{source:?} is a symbolic link"));
    }
    if !meta.is_dir() {
        return Err(format!("{source:?} is not a directory"));
    }
    let canonical =
        std::fs::canonicalize(path).map_err(|e| format!("{source:?} cannot be resolved: {e}"))?;
    if canonical != path {
        return Err(format!(
            "{source:?} resolves to {} (a symbolic link on the way)",
            canonical.display()
        ));
    }
    Ok(())
}

/// The file-system half of [`BindCheck::Filesystem`] for the proxy's socket: a socket,
/// not a link, at its canonical path.
pub fn verify_socket_on_disk(source: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let path = Path::new(source);
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("{source:?} cannot be inspected: {e}"))?;
    if !meta.file_type().is_socket() {
        return Err(format!("{source:?} is not a socket"));
    }
    let canonical =
        std::fs::canonicalize(path).map_err(|e| format!("{source:?} cannot be resolved: {e}"))?;
    if canonical != path {
        return Err(format!(
            "{source:?} resolves to {} (a symbolic link on the way)",
            canonical.display()
        ));
    }
    Ok(())
}

/// At start with [`BindCheck::Filesystem`]: the root must exist here, as a directory, at
/// its canonical path.
pub fn verify_root_on_disk(root: &WorkspaceRoot) -> Result<(), String> {
    let canonical = std::fs::canonicalize(root.as_str()).map_err(|e| e.to_string())?;
    if canonical != Path::new(root.as_str()) {
        return Err(format!(
            "it resolves to {}; pass the canonical path",
            canonical.display()
        ));
    }
    if !canonical.is_dir() {
        return Err("it is not a directory".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_normalised_absolute() {
        assert_eq!(
            WorkspaceRoot::parse("/srv/ws/").unwrap().as_str(),
            "/srv/ws"
        );
        for bad in ["", "/", "srv/ws", "/srv/../ws", "/srv/./ws", "/srv//ws"] {
            assert!(WorkspaceRoot::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_one_level_below_the_root() {
        let root = WorkspaceRoot::parse("/srv/ws").unwrap();
        assert!(root.check_source("/srv/ws/main").is_ok());
        assert!(root.check_source("/srv/ws/agent_2-b").is_ok());
        for bad in [
            "/srv/ws",
            "/srv/ws/",
            "/srv/ws/main/",
            "/srv/ws/main/sub",
            "/srv/ws/..",
            "/srv/ws/.",
            "/srv/wsx/main",
            "/srv/ws//main",
            "/srv/ws/Main",
            "/srv/ws/a.b",
            "/srv/ws/../etc",
            "/etc",
            "srv/ws/main",
            "/",
        ] {
            assert!(root.check_source(bad).is_err(), "{bad:?}");
        }
        assert!(
            root.check_source(&format!("/srv/ws/{}", "a".repeat(65)))
                .is_err()
        );
    }

    #[test]
    fn targets() {
        assert!(check_target("/workspace").is_ok());
        assert!(check_target("/tmp").is_ok());
        assert!(check_target("/devices").is_ok());
        for bad in [
            "/",
            "/proc",
            "/proc/sys",
            "/sys/fs",
            "/dev",
            "tmp",
            "/a/../b",
        ] {
            assert!(check_target(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_egress_socket_must_be_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let socket = base.join("proxy.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert_eq!(verify_socket_on_disk(socket.to_str().unwrap()), Ok(()));
        let link = base.join("link.sock");
        std::os::unix::fs::symlink(&socket, &link).unwrap();
        let file = base.join("file.sock");
        std::fs::write(&file, "x").unwrap();
        for (path, why) in [
            (&link, "is not a socket"),
            (&file, "is not a socket"),
            (&base, "is not a socket"),
        ] {
            let e = verify_socket_on_disk(path.to_str().unwrap()).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert!(
            verify_socket_on_disk(base.join("absent").to_str().unwrap())
                .unwrap_err()
                .contains("cannot be inspected")
        );
    }
}
