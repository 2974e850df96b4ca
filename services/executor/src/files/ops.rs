//! The file tools on the workspace: [`FileTools`] runs validated plans against
//! `<root>/<agent_id>` through [`crate::files::confined`]. Every method blocks (file
//! system calls); the service runs them on the blocking pool.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

use nix::dir::Dir;
use nix::fcntl::{OFlag, readlinkat};
use nix::sys::stat::fstat;
use pincer_proto::v1::{
    DirEntry, EditFileResponse, EntryKind, ListDirResponse, ReadFileResponse, WriteFileResponse,
};

use crate::ExecutorError;
use crate::files::confined::{
    AgentDir, FILE_MODE, Kind, Staged, check_target, open_checked, stat_entry,
};
use crate::files::error::FileError;
use crate::files::path::WorkspacePath;
use crate::files::plan::{
    FileScope, MAX_FILE_BYTES, Occurrences, ValidatedEditFile, ValidatedListDir, ValidatedReadFile,
    ValidatedWriteFile,
};
use crate::files::text::edit_text;
use crate::workspace::Workspaces;

/// Most entries one `list_dir` returns.
pub const MAX_LIST_ENTRIES: usize = 1000;
/// Most entries `list_dir` reads (and counts) in one directory.
pub const LIST_SCAN_LIMIT: usize = 100_000;

/// The file tools over the agents' workspaces.
#[derive(Debug, Clone)]
pub struct FileTools {
    workspaces: Workspaces,
}

impl FileTools {
    /// File tools over `workspaces`.
    pub fn new(workspaces: Workspaces) -> Self {
        Self { workspaces }
    }

    pub(crate) fn agent_dir(&self, scope: &FileScope) -> Result<AgentDir, ExecutorError> {
        AgentDir::open(&self.workspaces, scope.agent_id())
    }

    /// `read_file`: up to `limit` bytes from `offset`. When the cap cuts the file inside
    /// the chunk's last line, the chunk ends after its last newline instead (if it has
    /// one), so the next read starts on a line.
    pub fn read(&self, plan: &ValidatedReadFile) -> Result<ReadFileResponse, ExecutorError> {
        let dir = self.agent_dir(&plan.scope)?;
        let path = &plan.path;
        let fd = dir
            .open_beneath(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
            .map_err(|e| FileError::from_errno(e, path, "open"))?;
        let st = fstat(&fd).map_err(|e| FileError::io(path, "stat", e))?;
        check_target(&st, path)?;
        let total = u64::try_from(st.st_size).unwrap_or(0);
        let file = std::fs::File::from(fd);
        let start = plan.offset.min(total);
        let want = usize::try_from(total - start)
            .unwrap_or(usize::MAX)
            .min(plan.limit);
        let mut content = vec![0; want];
        let mut got = 0;
        while got < want {
            let n = file
                .read_at(&mut content[got..], start + got as u64)
                .map_err(|source| FileError::Io {
                    path: path.to_string(),
                    op: "read",
                    source,
                })?;
            if n == 0 {
                break;
            }
            got += n;
        }
        content.truncate(got);
        let mut end = start + got as u64;
        if end < total
            && let Some(nl) = content.iter().rposition(|b| *b == b'\n')
        {
            content.truncate(nl + 1);
            end = start + content.len() as u64;
        }
        Ok(ReadFileResponse {
            content,
            total_bytes: total,
            offset: start,
            truncated: end < total,
            next_offset: end,
        })
    }

    /// `write_file`: creates or atomically replaces the file.
    pub fn write(&self, plan: &ValidatedWriteFile) -> Result<WriteFileResponse, ExecutorError> {
        let dir = self.agent_dir(&plan.scope)?;
        let Some((parent, name)) = plan.path.split_last() else {
            return Err(FileError::IsDirectory {
                path: plan.path.to_string(),
            }
            .into());
        };
        let mut created_dirs = Vec::new();
        let parent_fd = dir.ensure_dir(&parent, plan.parents, &mut created_dirs)?;
        let existing = stat_entry(&parent_fd, name)
            .map_err(|e| FileError::from_errno(e, &plan.path, "stat"))?;
        let mode = match &existing {
            Some(st) => check_target(st, &plan.path)?,
            None => FILE_MODE,
        };
        let staged = Staged::write(
            parent_fd,
            name,
            &plan.path,
            &plan.content,
            mode,
            dir.owner(),
        )?;
        staged.replace()?;
        Ok(WriteFileResponse {
            bytes_written: plan.content.len() as u64,
            created: existing.is_none(),
        })
    }

    /// `edit_file`: replaces text and writes the result atomically.
    pub fn edit(&self, plan: &ValidatedEditFile) -> Result<EditFileResponse, ExecutorError> {
        let dir = self.agent_dir(&plan.scope)?;
        let current = read_text(&dir, &plan.path)?;
        let edited = edit_text(
            &plan.path.to_string(),
            &current.text,
            &plan.old,
            &plan.new,
            plan.occurrences == Occurrences::All,
        )
        .map_err(FileError::from)?;
        check_size(&plan.path, edited.text.len())?;
        let parent = current.parent.try_clone().map_err(|source| FileError::Io {
            path: plan.path.to_string(),
            op: "edit",
            source,
        })?;
        let staged = Staged::write(
            parent,
            &current.name,
            &plan.path,
            edited.text.as_bytes(),
            current.mode,
            dir.owner(),
        )?;
        if let Err(e) = current.check_unchanged(&plan.path) {
            staged.discard();
            return Err(e.into());
        }
        staged.replace()?;
        Ok(EditFileResponse {
            replacements: u32::try_from(edited.replacements).unwrap_or(u32::MAX),
            total_bytes: edited.text.len() as u64,
        })
    }

    /// `list_dir`: entries sorted by name, at most [`MAX_LIST_ENTRIES`].
    pub fn list(&self, plan: &ValidatedListDir) -> Result<ListDirResponse, ExecutorError> {
        let dir = self.agent_dir(&plan.scope)?;
        let path = &plan.path;
        let fd = dir.open_dir(path)?;
        let stat_fd = fd.try_clone().map_err(|source| FileError::Io {
            path: path.to_string(),
            op: "list",
            source,
        })?;
        let names = read_names(fd, path)?;
        let total = names.len();
        let entries = names
            .iter()
            .take(MAX_LIST_ENTRIES)
            .filter_map(|name| entry(&stat_fd, name))
            .collect();
        Ok(ListDirResponse {
            entries,
            total_entries: u32::try_from(total).unwrap_or(u32::MAX),
            truncated: total > MAX_LIST_ENTRIES,
        })
    }
}

/// A text file read for editing, with what is needed to replace it.
pub(crate) struct TextFile {
    /// The pinned parent directory.
    pub parent: OwnedFd,
    /// The last component.
    pub name: String,
    /// Its content.
    pub text: String,
    /// Its permission bits.
    pub mode: u32,
    /// Its `(st_dev, st_ino, st_mtime, st_mtime_nsec, st_size)`, to notice changes.
    pub identity: (u64, u64, i64, i64, i64),
}

impl TextFile {
    /// Fails with [`FileError::Changed`] when the entry is no longer the file that was
    /// read (replaced, modified, or made a link meanwhile).
    pub fn check_unchanged(&self, path: &WorkspacePath) -> Result<(), FileError> {
        let now = stat_entry(&self.parent, self.name.as_str())
            .map_err(|e| FileError::from_errno(e, path, "stat"))?;
        match now {
            Some(st) if identity(&st) == self.identity && st.st_nlink == 1 => Ok(()),
            _ => Err(FileError::Changed {
                path: path.to_string(),
            }),
        }
    }
}

/// Reads the UTF-8 file `path` (a regular file with one link, at most
/// [`MAX_FILE_BYTES`]), not following a final symbolic link.
pub(crate) fn read_text(dir: &AgentDir, path: &WorkspacePath) -> Result<TextFile, FileError> {
    let Some((parent, name)) = path.split_last() else {
        return Err(FileError::IsDirectory {
            path: path.to_string(),
        });
    };
    let parent_fd = dir.open_dir(&parent)?;
    let st = stat_entry(&parent_fd, name)
        .map_err(|e| FileError::from_errno(e, path, "stat"))?
        .ok_or_else(|| FileError::NotFound {
            path: path.to_string(),
        })?;
    let mode = check_target(&st, path)?;
    let size = u64::try_from(st.st_size).unwrap_or(0);
    check_size(path, usize::try_from(size).unwrap_or(usize::MAX))?;
    let file = open_checked(&parent_fd, name, path, &st)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Io {
            path: path.to_string(),
            op: "read",
            source,
        })?;
    check_size(path, bytes.len())?;
    let text = String::from_utf8(bytes).map_err(|_| FileError::NotUtf8 {
        path: path.to_string(),
    })?;
    Ok(TextFile {
        parent: parent_fd,
        name: name.to_owned(),
        text,
        mode,
        identity: identity(&st),
    })
}

/// What identifies a file's version closely enough to notice a concurrent change.
pub(crate) fn identity(st: &nix::sys::stat::FileStat) -> (u64, u64, i64, i64, i64) {
    (
        st.st_dev,
        st.st_ino,
        st.st_mtime,
        st.st_mtime_nsec,
        st.st_size,
    )
}

pub(crate) fn check_size(path: &WorkspacePath, size: usize) -> Result<(), FileError> {
    if size > MAX_FILE_BYTES {
        return Err(FileError::TooLarge {
            path: path.to_string(),
            size: size as u64,
            limit: MAX_FILE_BYTES as u64,
        });
    }
    Ok(())
}

/// The names in a directory (without `.` and `..`) as raw bytes, sorted, at most
/// [`LIST_SCAN_LIMIT`].
fn read_names(fd: OwnedFd, path: &WorkspacePath) -> Result<Vec<Vec<u8>>, FileError> {
    let mut dir = Dir::from_fd(fd).map_err(|e| FileError::io(path, "list", e))?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(|e| FileError::io(path, "list", e))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        names.push(name.to_vec());
        if names.len() >= LIST_SCAN_LIMIT {
            break;
        }
    }
    names.sort();
    Ok(names)
}

/// One entry, described without following it; `None` when it vanished meanwhile.
fn entry(dir: &OwnedFd, name: &[u8]) -> Option<DirEntry> {
    let st = stat_entry(dir, name).ok()??;
    let kind = Kind::of(&st);
    let symlink_target = if kind == Kind::Symlink {
        readlinkat(dir, name)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Some(DirEntry {
        name: String::from_utf8_lossy(name).into_owned(),
        kind: match kind {
            Kind::File => EntryKind::File,
            Kind::Dir => EntryKind::Dir,
            Kind::Symlink => EntryKind::Symlink,
            Kind::Other => EntryKind::Other,
        }
        .into(),
        size: if kind == Kind::File {
            u64::try_from(st.st_size).unwrap_or(0)
        } else {
            0
        },
        symlink_target,
    })
}
