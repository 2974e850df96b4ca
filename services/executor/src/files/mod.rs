//! The workspace file tools: `read_file`, `write_file`, `edit_file`, `apply_patch`,
//! `list_dir`. A call travels wire request → `*Plan` → `Validated*` ([`plan`]: the grant
//! first, then the arguments) → [`FileTools`] ([`ops`], [`patch_ops`]) on the blocking
//! pool → wire response. Every path is resolved inside `<root>/<agent_id>` by the kernel
//! ([`confined`]); docs/tools.md has the rules.
//!
//! | module | what |
//! |---|---|
//! | [`path`] | [`WorkspacePath`]: relative, normalised, never above the workspace (pure) |
//! | [`plan`] | requests → plans → validated plans; limits (pure) |
//! | [`text`] | exact replacement, line endings (pure) |
//! | [`patch`] | the patch format: parser and hunk application (pure) |
//! | [`confined`] | `openat2` beneath the agent directory, atomic writes, ownership |
//! | [`ops`] | read, write, edit, list |
//! | [`patch_ops`] | apply a patch all or nothing |
//! | [`error`] | [`FileError`] |

pub mod confined;
pub mod error;
pub mod ops;
pub mod patch;
pub mod patch_ops;
pub mod path;
pub mod plan;
pub mod text;

pub use error::FileError;
pub use ops::FileTools;
pub use path::WorkspacePath;
pub use plan::{
    ApplyPatchPlan, EditFilePlan, FilePlanError, ListDirPlan, ReadFilePlan, ValidatedEditFile,
    ValidatedListDir, ValidatedPatch, ValidatedReadFile, ValidatedWriteFile, WriteFilePlan,
};
