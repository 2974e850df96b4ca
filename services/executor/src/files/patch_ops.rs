//! `apply_patch` on the workspace, all or nothing: every change is checked against the
//! current files first (paths resolve inside the workspace, files to update exist and
//! every hunk applies, files to add do not exist); then every new content is staged in a
//! temporary file next to its target (creating missing directories); then the targets
//! are checked again and the staged files renamed into place, deletions done. A failure
//! before the renames removes what was staged and created, so no file changes. Only a
//! failure among the renames themselves (an I/O error, or a file changed by a
//! concurrent command in the instant between the check and the rename) can leave part
//! of the patch applied; the error then lists what was changed.

use std::os::fd::OwnedFd;

use nix::unistd::{UnlinkatFlags, unlinkat};
use pincer_proto::v1::{ApplyPatchResponse, PatchAction, PatchedFile};

use crate::ExecutorError;
use crate::files::confined::{AgentDir, FILE_MODE, Kind, Parents, Staged, stat_entry};
use crate::files::error::FileError;
use crate::files::ops::{FileTools, TextFile, check_size, identity, read_text};
use crate::files::patch::{FileChange, apply_hunks};
use crate::files::path::WorkspacePath;
use crate::files::plan::ValidatedPatch;

/// One change, checked against the workspace and ready to stage.
enum Checked {
    Add {
        path: WorkspacePath,
        content: String,
    },
    Update {
        path: WorkspacePath,
        file: TextFile,
        text: String,
    },
    Delete {
        path: WorkspacePath,
        parent: OwnedFd,
        name: String,
        identity: (u64, u64, i64, i64, i64),
    },
}

impl Checked {
    fn path(&self) -> &WorkspacePath {
        match self {
            Self::Add { path, .. } | Self::Update { path, .. } | Self::Delete { path, .. } => path,
        }
    }

    fn action(&self) -> PatchAction {
        match self {
            Self::Add { .. } => PatchAction::Added,
            Self::Update { .. } => PatchAction::Updated,
            Self::Delete { .. } => PatchAction::Deleted,
        }
    }
}

/// A change with its new content staged (none for deletions).
struct Ready {
    checked: Checked,
    staged: Option<Staged>,
}

impl FileTools {
    /// `apply_patch`; see the module docs for the all-or-nothing procedure.
    pub fn apply_patch(&self, plan: &ValidatedPatch) -> Result<ApplyPatchResponse, ExecutorError> {
        let dir = self.agent_dir(&plan.scope)?;
        check_shapes(&plan.patch.changes)?;
        let checked = plan
            .patch
            .changes
            .iter()
            .map(|change| check(&dir, change))
            .collect::<Result<Vec<_>, _>>()?;
        let mut created = Vec::new();
        let ready = match stage(&dir, checked, &mut created) {
            Ok(ready) => ready,
            Err(e) => {
                remove_dirs(&dir, &created);
                return Err(e.into());
            }
        };
        if let Err(e) = recheck(&ready) {
            discard_all(ready);
            remove_dirs(&dir, &created);
            return Err(e.into());
        }
        let files = ready
            .iter()
            .map(|r| PatchedFile {
                path: r.checked.path().to_string(),
                action: r.checked.action().into(),
            })
            .collect();
        if let Err(e) = commit(ready) {
            if !matches!(e, FileError::PartiallyApplied { .. }) {
                remove_dirs(&dir, &created);
            }
            return Err(e.into());
        }
        Ok(ApplyPatchResponse { files })
    }
}

/// No path is both a file and a directory of another change.
fn check_shapes(changes: &[FileChange]) -> Result<(), FileError> {
    for a in changes {
        for b in changes {
            let (pa, pb) = (a.path().components(), b.path().components());
            if pb.len() > pa.len() && pb.starts_with(pa) {
                return Err(FileError::NotDirectory {
                    path: b.path().to_string(),
                });
            }
        }
    }
    Ok(())
}

fn check(dir: &AgentDir, change: &FileChange) -> Result<Checked, FileError> {
    match change {
        FileChange::Add { path, content } => {
            check_size(path, content.len())?;
            let Some((parent, name)) = path.split_last() else {
                return Err(FileError::IsDirectory {
                    path: path.to_string(),
                });
            };
            if let Some(parent_fd) = existing_parent(dir, &parent)?
                && stat_entry(&parent_fd, name)
                    .map_err(|e| FileError::from_errno(e, path, "stat"))?
                    .is_some()
            {
                return Err(FileError::AlreadyExists {
                    path: path.to_string(),
                });
            }
            Ok(Checked::Add {
                path: path.clone(),
                content: content.clone(),
            })
        }
        FileChange::Update { path, hunks } => {
            let file = read_text(dir, path)?;
            let text = apply_hunks(&path.to_string(), &file.text, hunks)?;
            check_size(path, text.len())?;
            Ok(Checked::Update {
                path: path.clone(),
                file,
                text,
            })
        }
        FileChange::Delete { path } => {
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
            match Kind::of(&st) {
                // Removing a name never touches what a link points to.
                Kind::File | Kind::Symlink => {}
                Kind::Dir => {
                    return Err(FileError::IsDirectory {
                        path: path.to_string(),
                    });
                }
                Kind::Other => {
                    return Err(FileError::NotRegular {
                        path: path.to_string(),
                    });
                }
            }
            Ok(Checked::Delete {
                path: path.clone(),
                parent: parent_fd,
                name: name.to_owned(),
                identity: identity(&st),
            })
        }
    }
}

/// The parent directory when it exists; `None` when it (or an ancestor) is missing and
/// would be created. Any other problem on the way (a link out, a file where a directory
/// is needed) is an error now, before anything is created.
fn existing_parent(dir: &AgentDir, parent: &WorkspacePath) -> Result<Option<OwnedFd>, FileError> {
    let mut prefix = WorkspacePath::default();
    let mut fd = dir.open_dir(&prefix)?;
    for part in parent.components() {
        prefix = prefix.child(part);
        fd = match dir.open_dir(&prefix) {
            Ok(fd) => fd,
            Err(FileError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
    }
    Ok(Some(fd))
}

fn stage(
    dir: &AgentDir,
    checked: Vec<Checked>,
    created: &mut Vec<WorkspacePath>,
) -> Result<Vec<Ready>, FileError> {
    let mut ready: Vec<Ready> = Vec::with_capacity(checked.len());
    for c in checked {
        let staged = match &c {
            Checked::Add { path, content } => {
                let Some((parent, name)) = path.split_last() else {
                    continue;
                };
                dir.ensure_dir(&parent, Parents::Create, created)
                    .and_then(|fd| {
                        Staged::write(fd, name, path, content.as_bytes(), FILE_MODE, dir.owner())
                    })
                    .map(Some)
            }
            Checked::Update { path, file, text } => file
                .parent
                .try_clone()
                .map_err(|source| FileError::Io {
                    path: path.to_string(),
                    op: "stage",
                    source,
                })
                .and_then(|fd| {
                    Staged::write(
                        fd,
                        &file.name,
                        path,
                        text.as_bytes(),
                        file.mode,
                        dir.owner(),
                    )
                })
                .map(Some),
            Checked::Delete { .. } => Ok(None),
        };
        match staged {
            Ok(staged) => ready.push(Ready { checked: c, staged }),
            Err(e) => {
                discard_all(ready);
                return Err(e);
            }
        }
    }
    Ok(ready)
}

/// Every target is still what was checked.
fn recheck(ready: &[Ready]) -> Result<(), FileError> {
    for r in ready {
        match &r.checked {
            Checked::Add { .. } => {}
            Checked::Update { path, file, .. } => file.check_unchanged(path)?,
            Checked::Delete {
                path,
                parent,
                name,
                identity: id,
            } => {
                let now = stat_entry(parent, name.as_str())
                    .map_err(|e| FileError::from_errno(e, path, "stat"))?;
                if now.as_ref().map(identity) != Some(*id) {
                    return Err(FileError::Changed {
                        path: path.to_string(),
                    });
                }
            }
        }
    }
    Ok(())
}

fn commit(ready: Vec<Ready>) -> Result<(), FileError> {
    let mut applied: Vec<String> = Vec::new();
    let mut rest = ready.into_iter();
    while let Some(r) = rest.next() {
        let path = r.checked.path().to_string();
        let done = match (r.checked, r.staged) {
            (Checked::Add { .. }, Some(staged)) => staged.create_new(),
            (Checked::Update { .. }, Some(staged)) => staged.replace(),
            (
                Checked::Delete {
                    path, parent, name, ..
                },
                _,
            ) => unlinkat(&parent, name.as_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(|e| FileError::from_errno(e, &path, "delete")),
            (Checked::Add { path, .. } | Checked::Update { path, .. }, None) => {
                Err(FileError::Changed {
                    path: path.to_string(),
                })
            }
        };
        if let Err(source) = done {
            discard_all(rest.collect());
            if applied.is_empty() {
                return Err(source);
            }
            return Err(FileError::PartiallyApplied {
                applied,
                failed: path,
                source: Box::new(source),
            });
        }
        applied.push(path);
    }
    Ok(())
}

fn discard_all(ready: Vec<Ready>) {
    for r in ready {
        if let Some(staged) = r.staged {
            staged.discard();
        }
    }
}

fn remove_dirs(dir: &AgentDir, created: &[WorkspacePath]) {
    for path in created.iter().rev() {
        dir.remove_dir(path);
    }
}
