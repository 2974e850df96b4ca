//! Parse, don't validate, for the file tools: each wire request becomes a `*Plan` (our
//! types, unchecked), then `validate` checks the grant first (the tool is listed, the
//! workspace access covers the call) and the arguments second, and returns the
//! `Validated*` type that `ops` accepts. Pure over values plus injected keys and clock.

use pincer_proto::v1::{
    ApplyPatchRequest, EditFileRequest, ListDirRequest, ReadFileRequest, TurnGrant,
    WriteFileRequest,
};

use crate::ExecutorError;
use crate::files::confined::Parents;
use crate::files::patch::{self, Patch, PatchError};
use crate::files::path::{PathError, WorkspacePath};
use crate::grant::{Clock, GrantKeys, Tool, WorkspaceNeed, check_grant};
use crate::plan::{AgentId, PlanError};

/// Most bytes one `read_file` returns.
pub const MAX_READ_BYTES: usize = 256 * 1024;
/// Largest file `write_file` writes and `edit_file` / `apply_patch` read or produce.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;
/// Largest patch text.
pub const MAX_PATCH_BYTES: usize = 8 * 1024 * 1024;

/// Why a file-tool request is malformed (the grant aside).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilePlanError {
    /// The path is unusable.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The grant's agent id cannot name a workspace.
    #[error(transparent)]
    AgentId(PlanError),
    /// The content is too large.
    #[error("the content is {size} bytes; the limit is {MAX_FILE_BYTES}")]
    ContentTooLarge {
        /// Its size.
        size: usize,
    },
    /// `old_string` is empty.
    #[error(
        "old_string is empty; give the exact text to replace (use write_file to create a file)"
    )]
    EmptyOldString,
    /// `old_string` equals `new_string`.
    #[error("old_string and new_string are the same; nothing would change")]
    NoChange,
    /// The patch text is too large.
    #[error("the patch is {size} bytes; the limit is {MAX_PATCH_BYTES}")]
    PatchTooLarge {
        /// Its size.
        size: usize,
    },
    /// The patch does not parse.
    #[error("invalid patch: {0}")]
    Patch(#[from] PatchError),
}

/// Who a validated call acts for: the grant's agent (its workspace) and turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileScope {
    agent_id: AgentId,
    turn_id: String,
}

impl FileScope {
    /// The agent whose workspace is used.
    pub fn agent_id(&self) -> &AgentId {
        &self.agent_id
    }
    /// The turn, for logs.
    pub fn turn_id(&self) -> &str {
        &self.turn_id
    }
}

/// The grant check shared by the file tools.
fn authorize(
    grant: Option<&TurnGrant>,
    session_key: &str,
    tool: Tool,
    need: WorkspaceNeed,
    keys: &dyn GrantKeys,
    clock: &dyn Clock,
) -> Result<FileScope, ExecutorError> {
    let grant = check_grant(grant, session_key, tool, need, keys, clock)?;
    let agent_id = AgentId::parse(&grant.agent_id).map_err(FilePlanError::AgentId)?;
    Ok(FileScope {
        agent_id,
        turn_id: grant.turn_id,
    })
}

/// `read_file`, unchecked.
#[derive(Debug, Clone)]
pub struct ReadFilePlan {
    grant: Option<TurnGrant>,
    session_key: String,
    path: String,
    offset: u64,
    limit: u32,
}

impl From<ReadFileRequest> for ReadFilePlan {
    fn from(r: ReadFileRequest) -> Self {
        Self {
            grant: r.grant,
            session_key: r.session_key,
            path: r.path,
            offset: r.offset,
            limit: r.limit,
        }
    }
}

/// A `read_file` call that passed every check.
#[derive(Debug, Clone)]
pub struct ValidatedReadFile {
    /// For whom.
    pub scope: FileScope,
    /// Which file.
    pub path: WorkspacePath,
    /// First byte.
    pub offset: u64,
    /// Most bytes (1..=[`MAX_READ_BYTES`]).
    pub limit: usize,
}

impl ReadFilePlan {
    /// Grant (read access), then path.
    pub fn validate(
        self,
        keys: &dyn GrantKeys,
        clock: &dyn Clock,
    ) -> Result<ValidatedReadFile, ExecutorError> {
        let scope = authorize(
            self.grant.as_ref(),
            &self.session_key,
            Tool::ReadFile,
            WorkspaceNeed::Read,
            keys,
            clock,
        )?;
        let path = WorkspacePath::parse_file(&self.path).map_err(FilePlanError::from)?;
        let limit = match usize::try_from(self.limit).unwrap_or(MAX_READ_BYTES) {
            0 => MAX_READ_BYTES,
            n => n.min(MAX_READ_BYTES),
        };
        Ok(ValidatedReadFile {
            scope,
            path,
            offset: self.offset,
            limit,
        })
    }
}

/// `write_file`, unchecked.
#[derive(Debug, Clone)]
pub struct WriteFilePlan {
    grant: Option<TurnGrant>,
    session_key: String,
    path: String,
    content: Vec<u8>,
    create_parents: bool,
}

impl From<WriteFileRequest> for WriteFilePlan {
    fn from(r: WriteFileRequest) -> Self {
        Self {
            grant: r.grant,
            session_key: r.session_key,
            path: r.path,
            content: r.content,
            create_parents: r.create_parents,
        }
    }
}

/// A `write_file` call that passed every check.
#[derive(Debug, Clone)]
pub struct ValidatedWriteFile {
    /// For whom.
    pub scope: FileScope,
    /// Which file.
    pub path: WorkspacePath,
    /// The new content (at most [`MAX_FILE_BYTES`]).
    pub content: Vec<u8>,
    /// Whether missing parents are created.
    pub parents: Parents,
}

impl WriteFilePlan {
    /// Grant (write access), then path and size.
    pub fn validate(
        self,
        keys: &dyn GrantKeys,
        clock: &dyn Clock,
    ) -> Result<ValidatedWriteFile, ExecutorError> {
        let scope = authorize(
            self.grant.as_ref(),
            &self.session_key,
            Tool::WriteFile,
            WorkspaceNeed::Write,
            keys,
            clock,
        )?;
        let path = WorkspacePath::parse_file(&self.path).map_err(FilePlanError::from)?;
        if self.content.len() > MAX_FILE_BYTES {
            return Err(FilePlanError::ContentTooLarge {
                size: self.content.len(),
            }
            .into());
        }
        Ok(ValidatedWriteFile {
            scope,
            path,
            content: self.content,
            parents: if self.create_parents {
                Parents::Create
            } else {
                Parents::MustExist
            },
        })
    }
}

/// How many occurrences `edit_file` replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurrences {
    /// Exactly one must exist.
    One,
    /// All of them (at least one).
    All,
}

/// `edit_file`, unchecked.
#[derive(Debug, Clone)]
pub struct EditFilePlan {
    grant: Option<TurnGrant>,
    session_key: String,
    path: String,
    old_string: String,
    new_string: String,
    replace_all: bool,
}

impl From<EditFileRequest> for EditFilePlan {
    fn from(r: EditFileRequest) -> Self {
        Self {
            grant: r.grant,
            session_key: r.session_key,
            path: r.path,
            old_string: r.old_string,
            new_string: r.new_string,
            replace_all: r.replace_all,
        }
    }
}

/// An `edit_file` call that passed every check.
#[derive(Debug, Clone)]
pub struct ValidatedEditFile {
    /// For whom.
    pub scope: FileScope,
    /// Which file.
    pub path: WorkspacePath,
    /// Text to find (non-empty).
    pub old: String,
    /// Its replacement (different).
    pub new: String,
    /// One or all.
    pub occurrences: Occurrences,
}

impl EditFilePlan {
    /// Grant (write access), then path and strings.
    pub fn validate(
        self,
        keys: &dyn GrantKeys,
        clock: &dyn Clock,
    ) -> Result<ValidatedEditFile, ExecutorError> {
        let scope = authorize(
            self.grant.as_ref(),
            &self.session_key,
            Tool::EditFile,
            WorkspaceNeed::Write,
            keys,
            clock,
        )?;
        let path = WorkspacePath::parse_file(&self.path).map_err(FilePlanError::from)?;
        if self.old_string.is_empty() {
            return Err(FilePlanError::EmptyOldString.into());
        }
        if self.old_string == self.new_string {
            return Err(FilePlanError::NoChange.into());
        }
        let size = self.old_string.len() + self.new_string.len();
        if size > MAX_FILE_BYTES {
            return Err(FilePlanError::ContentTooLarge { size }.into());
        }
        Ok(ValidatedEditFile {
            scope,
            path,
            old: self.old_string,
            new: self.new_string,
            occurrences: if self.replace_all {
                Occurrences::All
            } else {
                Occurrences::One
            },
        })
    }
}

/// `apply_patch`, unchecked.
#[derive(Debug, Clone)]
pub struct ApplyPatchPlan {
    grant: Option<TurnGrant>,
    session_key: String,
    patch: String,
}

impl From<ApplyPatchRequest> for ApplyPatchPlan {
    fn from(r: ApplyPatchRequest) -> Self {
        Self {
            grant: r.grant,
            session_key: r.session_key,
            patch: r.patch,
        }
    }
}

/// An `apply_patch` call that passed every check: the patch parsed, every path inside
/// the workspace.
#[derive(Debug, Clone)]
pub struct ValidatedPatch {
    /// For whom.
    pub scope: FileScope,
    /// The parsed patch.
    pub patch: Patch,
}

impl ApplyPatchPlan {
    /// Grant (write access), then the patch.
    pub fn validate(
        self,
        keys: &dyn GrantKeys,
        clock: &dyn Clock,
    ) -> Result<ValidatedPatch, ExecutorError> {
        let scope = authorize(
            self.grant.as_ref(),
            &self.session_key,
            Tool::ApplyPatch,
            WorkspaceNeed::Write,
            keys,
            clock,
        )?;
        if self.patch.len() > MAX_PATCH_BYTES {
            return Err(FilePlanError::PatchTooLarge {
                size: self.patch.len(),
            }
            .into());
        }
        let patch = patch::parse(&self.patch).map_err(FilePlanError::from)?;
        Ok(ValidatedPatch { scope, patch })
    }
}

/// `list_dir`, unchecked.
#[derive(Debug, Clone)]
pub struct ListDirPlan {
    grant: Option<TurnGrant>,
    session_key: String,
    path: String,
}

impl From<ListDirRequest> for ListDirPlan {
    fn from(r: ListDirRequest) -> Self {
        Self {
            grant: r.grant,
            session_key: r.session_key,
            path: r.path,
        }
    }
}

/// A `list_dir` call that passed every check.
#[derive(Debug, Clone)]
pub struct ValidatedListDir {
    /// For whom.
    pub scope: FileScope,
    /// Which directory (the root allowed).
    pub path: WorkspacePath,
}

impl ListDirPlan {
    /// Grant (read access), then path.
    pub fn validate(
        self,
        keys: &dyn GrantKeys,
        clock: &dyn Clock,
    ) -> Result<ValidatedListDir, ExecutorError> {
        let scope = authorize(
            self.grant.as_ref(),
            &self.session_key,
            Tool::ListDir,
            WorkspaceNeed::Read,
            keys,
            clock,
        )?;
        let path = WorkspacePath::parse(&self.path).map_err(FilePlanError::from)?;
        Ok(ValidatedListDir { scope, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{FixedClock, GrantError, testing};

    fn grant(tools: &[&str]) -> Option<TurnGrant> {
        Some(testing::grant(tools, "s", "main", 10_000))
    }

    fn check<T>(r: Result<T, ExecutorError>) -> Result<T, String> {
        r.map_err(|e| e.to_string())
    }

    #[test]
    fn the_grant_is_checked_before_the_arguments() {
        // A bad path with a grant for another tool: the grant error wins.
        let plan = ReadFilePlan::from(ReadFileRequest {
            grant: grant(&["write_file"]),
            session_key: "s".into(),
            path: "/etc/passwd".into(),
            ..Default::default()
        });
        let err = plan.validate(&testing::keys(), &FixedClock(0)).unwrap_err();
        assert!(
            matches!(
                err,
                ExecutorError::Grant(GrantError::ToolNotAllowed { tool: "read_file" })
            ),
            "{err}"
        );
    }

    #[test]
    fn validates_each_tool() {
        let keys = testing::keys();
        let clock = FixedClock(0);
        let read = ReadFilePlan::from(ReadFileRequest {
            grant: grant(&["read_file"]),
            session_key: "s".into(),
            path: "./a/../b.txt".into(),
            offset: 5,
            limit: 0,
        })
        .validate(&keys, &clock)
        .unwrap();
        assert_eq!(read.path.relative(), "b.txt");
        assert_eq!((read.offset, read.limit), (5, MAX_READ_BYTES));
        assert_eq!(read.scope.agent_id().as_str(), "main");

        let write = WriteFilePlan::from(WriteFileRequest {
            grant: grant(&["write_file"]),
            session_key: "s".into(),
            path: "x".into(),
            content: vec![0; MAX_FILE_BYTES + 1],
            create_parents: true,
        });
        assert!(
            check(write.validate(&keys, &clock))
                .unwrap_err()
                .contains("limit")
        );

        for (old, new) in [("", "x"), ("same", "same")] {
            let edit = EditFilePlan::from(EditFileRequest {
                grant: grant(&["edit_file"]),
                session_key: "s".into(),
                path: "x".into(),
                old_string: old.into(),
                new_string: new.into(),
                replace_all: false,
            });
            assert!(matches!(
                edit.validate(&keys, &clock),
                Err(ExecutorError::FilePlan(_))
            ));
        }

        let patch = ApplyPatchPlan::from(ApplyPatchRequest {
            grant: grant(&["apply_patch"]),
            session_key: "s".into(),
            patch: "*** Begin Patch\n*** Add File: ok\n+x\n*** Delete File: ../../x\n*** End Patch"
                .into(),
        });
        assert!(
            check(patch.validate(&keys, &clock))
                .unwrap_err()
                .contains("climbs")
        );

        let list = ListDirPlan::from(ListDirRequest {
            grant: grant(&["list_dir"]),
            session_key: "s".into(),
            path: String::new(),
        })
        .validate(&keys, &clock)
        .unwrap();
        assert!(list.path.is_root());
    }
}
