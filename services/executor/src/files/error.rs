//! What can go wrong when a file tool touches the workspace. The gRPC mapping lives in
//! `crate::error` with the rest.

use nix::errno::Errno;

use crate::files::patch::HunkError;
use crate::files::path::WorkspacePath;
use crate::files::text::EditError;

/// A file tool failed on the workspace (the request itself was well-formed).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Nothing at the path.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The path.
        path: String,
    },
    /// Resolving the path would leave the workspace.
    #[error(
        "{path}: refused: it leads outside the workspace (through a symbolic link or a mount point); file tools only act inside the workspace"
    )]
    Escapes {
        /// The path.
        path: String,
    },
    /// A symbolic link the file tools will not follow.
    #[error(
        "{path}: refused: it passes through a symbolic link the file tools do not follow (a link loop, a /proc magic link, or any link on kernels without openat2)"
    )]
    LinkRefused {
        /// The path.
        path: String,
    },
    /// The target itself is a symbolic link.
    #[error(
        "{path} is a symbolic link; file tools do not write or edit through links: act on the file it points to (list_dir shows the target)"
    )]
    Symlink {
        /// The path.
        path: String,
    },
    /// The file has other hard links, which could lead outside the workspace.
    #[error(
        "{path} has {links} hard links; file tools refuse files with more than one link (another link may be outside the workspace): copy it to a new file with exec and use that"
    )]
    Hardlinked {
        /// The path.
        path: String,
        /// `st_nlink`.
        links: u64,
    },
    /// A directory where a file is needed.
    #[error("{path} is a directory; use list_dir to see its entries")]
    IsDirectory {
        /// The path.
        path: String,
    },
    /// A non-directory where a directory is needed.
    #[error("{path}: a component of the path is not a directory")]
    NotDirectory {
        /// The path.
        path: String,
    },
    /// A socket, pipe or device.
    #[error("{path} is not a regular file (a socket, pipe or device)")]
    NotRegular {
        /// The path.
        path: String,
    },
    /// The file is larger than the tool handles.
    #[error("{path} is {size} bytes; this tool handles files up to {limit} bytes")]
    TooLarge {
        /// The path.
        path: String,
        /// Its size (or the size it would have).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Text tools need UTF-8.
    #[error("{path} is not UTF-8 text; edit_file and apply_patch change text files only")]
    NotUtf8 {
        /// The path.
        path: String,
    },
    /// A patch adds a file that exists.
    #[error("{path} already exists; use \"*** Update File\" or write_file to change it")]
    AlreadyExists {
        /// The path.
        path: String,
    },
    /// The file changed between checking and acting on it.
    #[error("{path} changed while the call was running; read it again and retry")]
    Changed {
        /// The path.
        path: String,
    },
    /// The executor may not open or change the path.
    #[error("{path}: permission denied ({op})")]
    Denied {
        /// The path.
        path: String,
        /// What was being done.
        op: &'static str,
    },
    /// `edit_file` found no or several occurrences.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// A patch hunk does not apply.
    #[error("the patch does not apply, no file was changed: {0}")]
    Hunk(#[from] HunkError),
    /// A new entry could not be given to the sandbox user.
    #[error("cannot give {path} to the sandbox user {user}: {source}")]
    Ownership {
        /// The path.
        path: String,
        /// `uid:gid`.
        user: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A patch failed after some files were already changed.
    #[error(
        "the patch failed at {failed} after changing {applied:?}; those changes stay: {source}"
    )]
    PartiallyApplied {
        /// Files already changed.
        applied: Vec<String>,
        /// The file that failed.
        failed: String,
        /// Why.
        #[source]
        source: Box<FileError>,
    },
    /// Any other I/O failure.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// What was being done.
        op: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl FileError {
    /// The error for `errno` while doing `op` on `path`.
    pub fn from_errno(errno: Errno, path: &WorkspacePath, op: &'static str) -> Self {
        let path = path.to_string();
        match errno {
            Errno::ENOENT => Self::NotFound { path },
            Errno::EXDEV => Self::Escapes { path },
            Errno::ELOOP => Self::LinkRefused { path },
            Errno::ENOTDIR => Self::NotDirectory { path },
            Errno::EISDIR => Self::IsDirectory { path },
            // open(2) on a socket.
            Errno::ENXIO => Self::NotRegular { path },
            Errno::EACCES | Errno::EPERM => Self::Denied { path, op },
            other => Self::Io {
                path,
                op,
                source: other.into(),
            },
        }
    }

    /// An I/O failure while doing `op` on `path`.
    pub fn io(path: &WorkspacePath, op: &'static str, errno: Errno) -> Self {
        Self::Io {
            path: path.to_string(),
            op,
            source: errno.into(),
        }
    }
}
