//! File system access confined to one agent's workspace directory.
//!
//! Everything starts from an fd of `<root>/<agent_id>` ([`AgentDir`]). Paths are opened
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`: the kernel
//! refuses any resolution that leaves the directory (`..`, absolute or escaping symbolic
//! links, `/proc` magic links, mount crossings). Kernels without `openat2` (before 5.6, or
//! a seccomp profile that refuses it) get a component-by-component walk with
//! `O_NOFOLLOW` that refuses every symbolic link and every mount crossing. No path is
//! ever joined to a string and handed to `std::fs`.
//!
//! Writes are atomic: a new file is written next to the target under a random name
//! (`openat(O_CREAT | O_EXCL | O_NOFOLLOW)` in the pinned parent directory fd), made
//! 0644 (or the replaced file's mode) and owned by the sandbox user, synced, then renamed
//! over the target, so a write never goes through an existing link or inode.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, linkat, unlinkat};

use crate::ExecutorError;
use crate::files::error::FileError;
use crate::files::path::WorkspacePath;
use crate::plan::AgentId;
use crate::workspace::{SandboxUser, Workspaces};

/// Mode of new files.
pub const FILE_MODE: u32 = 0o644;
/// Mode of new directories.
pub const DIR_MODE: u32 = 0o755;

/// How many times an `openat2` that the kernel answered `EAGAIN` (a concurrent rename
/// while resolving) is retried.
const EAGAIN_RETRIES: usize = 16;

/// What an entry is (not following a final symbolic link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A socket, pipe or device.
    Other,
}

impl Kind {
    /// The kind in `stat`.
    pub fn of(stat: &FileStat) -> Self {
        let fmt = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
        if fmt == SFlag::S_IFREG {
            Self::File
        } else if fmt == SFlag::S_IFDIR {
            Self::Dir
        } else if fmt == SFlag::S_IFLNK {
            Self::Symlink
        } else {
            Self::Other
        }
    }
}

/// Whether missing parent directories are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parents {
    /// Create them (0755, owned by the sandbox user).
    Create,
    /// They must exist.
    MustExist,
}

/// The open workspace directory of one agent.
#[derive(Debug)]
pub struct AgentDir {
    fd: OwnedFd,
    owner: SandboxUser,
}

impl AgentDir {
    /// Opens `<root>/<agent_id>`, creating the root (0711) and the agent directory
    /// (0700, owned by the sandbox user) when missing, without following a symbolic link
    /// at the agent directory. Blocking.
    pub fn open(workspaces: &Workspaces, agent: &AgentId) -> Result<Self, ExecutorError> {
        let root = workspaces.root();
        let io = |path: std::path::PathBuf| {
            move |source: std::io::Error| ExecutorError::Workspace { path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .map_err(io(root.to_owned()))?;
        let root_fd = nix::fcntl::open(
            root,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(root.to_owned())(e.into()))?;
        let agent_path = root.join(agent.as_str());
        match mkdirat(&root_fd, agent.as_str(), Mode::S_IRWXU) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(io(agent_path)(e.into())),
        }
        let fd = openat(
            &root_fd,
            agent.as_str(),
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(agent_path.clone())(e.into()))?;
        let owner = workspaces.owner();
        give_to(&fd, owner).map_err(|e| ExecutorError::WorkspaceOwnership {
            path: agent_path,
            user: owner.docker_user(),
            source: e.into(),
        })?;
        Ok(Self { fd, owner })
    }

    /// The sandbox user new entries are given to.
    pub fn owner(&self) -> SandboxUser {
        self.owner
    }

    /// Opens `path` beneath the workspace with `flags`, following symbolic links only
    /// while they stay inside it.
    pub fn open_beneath(&self, path: &WorkspacePath, flags: OFlag) -> Result<OwnedFd, Errno> {
        open_beneath(&self.fd, &path.relative(), flags | OFlag::O_CLOEXEC)
    }

    /// Opens the directory `path` (readable, for listing and as a parent).
    pub fn open_dir(&self, path: &WorkspacePath) -> Result<OwnedFd, FileError> {
        self.open_beneath(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(|e| FileError::from_errno(e, path, "open directory"))
    }

    /// Opens directory `path`, creating missing components when `parents` says so.
    /// Directories created are recorded in `created` (outermost first), so a caller can
    /// remove them again.
    pub fn ensure_dir(
        &self,
        path: &WorkspacePath,
        parents: Parents,
        created: &mut Vec<WorkspacePath>,
    ) -> Result<OwnedFd, FileError> {
        match self.open_dir(path) {
            Err(FileError::NotFound { .. }) if parents == Parents::Create => {}
            other => return other,
        }
        let mut prefix = WorkspacePath::default();
        let mut current = self.open_dir(&prefix)?;
        for part in path.components() {
            prefix = prefix.child(part);
            current = match self.open_dir(&prefix) {
                Ok(fd) => fd,
                Err(FileError::NotFound { .. }) => {
                    let fd = self.make_dir(&current, part, &prefix)?;
                    created.push(prefix.clone());
                    fd
                }
                Err(e) => return Err(e),
            };
        }
        Ok(current)
    }

    /// Creates directory `name` in the pinned `parent` and opens it without following a
    /// link; 0755, owned by the sandbox user.
    fn make_dir(
        &self,
        parent: &OwnedFd,
        name: &str,
        path: &WorkspacePath,
    ) -> Result<OwnedFd, FileError> {
        match mkdirat(parent, name, Mode::from_bits_truncate(DIR_MODE)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(FileError::from_errno(e, path, "create directory")),
        }
        let fd = openat(
            parent,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FileError::from_errno(e, path, "open directory"))?;
        fchmod(&fd, Mode::from_bits_truncate(DIR_MODE))
            .map_err(|e| FileError::io(path, "set the mode of", e))?;
        give_to(&fd, self.owner).map_err(|e| FileError::Ownership {
            path: path.to_string(),
            user: self.owner.docker_user(),
            source: e.into(),
        })?;
        Ok(fd)
    }

    /// Removes the empty directory `path` (best effort: cleaning up after a failure).
    pub fn remove_dir(&self, path: &WorkspacePath) {
        let Some((parent, name)) = path.split_last() else {
            return;
        };
        if let Ok(parent) = self.open_dir(&parent)
            && let Err(e) = unlinkat(&parent, name, UnlinkatFlags::RemoveDir)
        {
            tracing::warn!(path = %path, error = %e, "cannot remove a directory created for a failed call");
        }
    }
}

/// The entry `name` in the pinned directory `dir`, not following a symbolic link.
pub fn stat_entry<P: ?Sized + nix::NixPath>(
    dir: &OwnedFd,
    name: &P,
) -> Result<Option<FileStat>, Errno> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Checks that an existing entry may be read or replaced by a file tool: a regular file
/// with one link. Returns its permission bits.
pub fn check_target(stat: &FileStat, path: &WorkspacePath) -> Result<u32, FileError> {
    match Kind::of(stat) {
        Kind::File => {}
        Kind::Dir => {
            return Err(FileError::IsDirectory {
                path: path.to_string(),
            });
        }
        Kind::Symlink => {
            return Err(FileError::Symlink {
                path: path.to_string(),
            });
        }
        Kind::Other => {
            return Err(FileError::NotRegular {
                path: path.to_string(),
            });
        }
    }
    if stat.st_nlink > 1 {
        return Err(FileError::Hardlinked {
            path: path.to_string(),
            links: stat.st_nlink,
        });
    }
    // Never carry set-id or sticky bits over to the new file.
    Ok(stat.st_mode & 0o777)
}

/// Opens the regular file `name` in the pinned `dir` for reading, not following a link,
/// and checks it is the entry `expected` described (same inode, one link).
pub fn open_checked(
    dir: &OwnedFd,
    name: &str,
    path: &WorkspacePath,
    expected: &FileStat,
) -> Result<File, FileError> {
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FileError::from_errno(e, path, "open"))?;
    let st = fstat(&fd).map_err(|e| FileError::io(path, "stat", e))?;
    if st.st_dev != expected.st_dev || st.st_ino != expected.st_ino {
        return Err(FileError::Changed {
            path: path.to_string(),
        });
    }
    check_target(&st, path)?;
    Ok(File::from(fd))
}

/// A new file written under a temporary name in a pinned directory, not yet in place.
#[derive(Debug)]
pub struct Staged {
    dir: OwnedFd,
    temp: String,
    name: String,
    path: WorkspacePath,
}

impl Staged {
    /// Writes `content` to a new temporary file in `dir` with `mode`, owned by `owner`,
    /// synced to disk.
    pub fn write(
        dir: OwnedFd,
        name: &str,
        path: &WorkspacePath,
        content: &[u8],
        mode: u32,
        owner: SandboxUser,
    ) -> Result<Self, FileError> {
        let temp = format!(".pincer-{}.tmp", uuid::Uuid::new_v4().simple());
        let fd = openat(
            &dir,
            temp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map_err(|e| FileError::from_errno(e, path, "create a temporary file for"))?;
        let staged = Self {
            dir,
            temp,
            name: name.to_owned(),
            path: path.clone(),
        };
        let mut file = File::from(fd);
        let written = file
            .write_all(content)
            .and_then(|()| fchmod(&file, Mode::from_bits_truncate(mode)).map_err(Into::into))
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            staged.discard();
            return Err(FileError::Io {
                path: path.to_string(),
                op: "write",
                source: e,
            });
        }
        if let Err(e) = give_to(&file, owner) {
            staged.discard();
            return Err(FileError::Ownership {
                path: path.to_string(),
                user: owner.docker_user(),
                source: e.into(),
            });
        }
        Ok(staged)
    }

    /// Renames the file over its target (replacing whatever entry is there).
    pub fn replace(self) -> Result<(), FileError> {
        match nix::fcntl::renameat(&self.dir, self.temp.as_str(), &self.dir, self.name.as_str()) {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = FileError::from_errno(e, &self.path, "rename into place");
                self.discard();
                Err(err)
            }
        }
    }

    /// Links the file at its target only if nothing is there yet, then drops the
    /// temporary name.
    pub fn create_new(self) -> Result<(), FileError> {
        let linked = linkat(
            &self.dir,
            self.temp.as_str(),
            &self.dir,
            self.name.as_str(),
            AtFlags::empty(),
        );
        let result = match linked {
            Ok(()) => Ok(()),
            Err(Errno::EEXIST) => Err(FileError::AlreadyExists {
                path: self.path.to_string(),
            }),
            Err(e) => Err(FileError::from_errno(e, &self.path, "create")),
        };
        self.discard();
        result
    }

    /// Removes the temporary file.
    pub fn discard(self) {
        if let Err(e) = unlinkat(&self.dir, self.temp.as_str(), UnlinkatFlags::NoRemoveDir) {
            tracing::warn!(path = %self.path, error = %e, "cannot remove a temporary file");
        }
    }
}

/// Gives `fd` to `owner` unless it already belongs to them.
fn give_to<Fd: AsFd>(fd: &Fd, owner: SandboxUser) -> Result<(), Errno> {
    let st = fstat(fd)?;
    if st.st_uid != owner.uid || st.st_gid != owner.gid {
        fchown(
            fd,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
        )?;
    }
    Ok(())
}

/// Whether this kernel (and seccomp profile) lets us use `openat2`.
fn openat2_works(dir: &OwnedFd) -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH);
        match openat2(dir, ".", how) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "openat2 is unavailable; file tools refuse every symbolic link instead");
                false
            }
        }
    })
}

/// Opens `path` (relative, normalised) beneath `dir`.
fn open_beneath(dir: &OwnedFd, path: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    if !openat2_works(dir) {
        return walk_beneath(dir, path, flags);
    }
    let how = OpenHow::new().flags(flags).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_MAGICLINKS
            | ResolveFlag::RESOLVE_NO_XDEV,
    );
    let mut tries = 0;
    loop {
        match openat2(dir, path, how) {
            Err(Errno::EAGAIN) if tries < EAGAIN_RETRIES => tries += 1,
            other => return other,
        }
    }
}

/// The fallback: one component at a time, no symbolic links at all, no mount crossings.
fn walk_beneath(dir: &OwnedFd, path: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    let dev = fstat(dir)?.st_dev;
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let Some((last, inner)) = parts.split_last() else {
        return openat(dir, ".", flags, Mode::empty());
    };
    let mut current: Option<OwnedFd> = None;
    for part in inner {
        let base = current.as_ref().unwrap_or(dir);
        let next = openat(
            base,
            *part,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let st = fstat(&next)?;
        if Kind::of(&st) == Kind::Symlink {
            return Err(Errno::ELOOP);
        }
        if st.st_dev != dev {
            return Err(Errno::EXDEV);
        }
        current = Some(next);
    }
    let base = current.as_ref().unwrap_or(dir);
    let fd = openat(base, *last, flags | OFlag::O_NOFOLLOW, Mode::empty())?;
    let st = fstat(&fd)?;
    if Kind::of(&st) == Kind::Symlink {
        return Err(Errno::ELOOP);
    }
    if st.st_dev != dev {
        return Err(Errno::EXDEV);
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &std::path::Path) -> OwnedFd {
        nix::fcntl::open(path, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).unwrap()
    }

    #[test]
    fn both_resolvers_refuse_escapes() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir_all(ws.join("sub")).unwrap();
        std::fs::write(tmp.path().join("secret"), b"s").unwrap();
        std::fs::write(ws.join("sub/file"), b"f").unwrap();
        std::os::unix::fs::symlink("../secret", ws.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", ws.join("abs")).unwrap();
        std::os::unix::fs::symlink("sub/file", ws.join("inside")).unwrap();
        let fd = dir(&ws);
        let read = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        for escape in ["up", "abs"] {
            assert!(open_beneath(&fd, escape, read).is_err(), "{escape}");
            assert!(walk_beneath(&fd, escape, read).is_err(), "{escape}");
        }
        assert!(open_beneath(&fd, "sub/file", read).is_ok());
        assert!(walk_beneath(&fd, "sub/file", read).is_ok());
        // A link that stays inside: followed by openat2, refused by the strict walk.
        assert!(open_beneath(&fd, "inside", read).is_ok());
        assert_eq!(walk_beneath(&fd, "inside", read).unwrap_err(), Errno::ELOOP);
        assert!(walk_beneath(&fd, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY).is_ok());
    }
}
