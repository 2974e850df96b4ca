//! The workspace file tools as the model sees them: `read_file`, `write_file`,
//! `edit_file`, `apply_patch`, `list_dir`. Definitions, strict argument parsing into
//! executor requests, and rendering of the answers. Paths are relative to the agent's
//! workspace; the executor enforces every rule (docs/tools.md), so the agent only shapes
//! requests.

use pincer_proto::v1::{
    ApplyPatchRequest, ApplyPatchResponse, EditFileRequest, EditFileResponse, EntryKind,
    ListDirRequest, ListDirResponse, PatchAction, ReadFileRequest, ReadFileResponse, TurnGrant,
    WriteFileRequest, WriteFileResponse,
};
use serde_json::json;

use crate::model::ToolDefinition;
use crate::tools::args::Args;

/// `read_file`.
pub const READ_FILE_TOOL: &str = "read_file";
/// `write_file`.
pub const WRITE_FILE_TOOL: &str = "write_file";
/// `edit_file`.
pub const EDIT_FILE_TOOL: &str = "edit_file";
/// `apply_patch`.
pub const APPLY_PATCH_TOOL: &str = "apply_patch";
/// `list_dir`.
pub const LIST_DIR_TOOL: &str = "list_dir";

/// Bytes `read_file` asks for when the model gives no limit.
pub const DEFAULT_READ_BYTES: u64 = 64 * 1024;
/// Most bytes one `read_file` may ask for (the executor's cap).
pub const MAX_READ_BYTES: u64 = 256 * 1024;

/// The five file tools, in the order they are offered.
pub fn definitions() -> Vec<ToolDefinition> {
    vec![
        ToolDefinition {
            name: READ_FILE_TOOL.to_owned(),
            description: format!(
                "Read a file in your workspace. `path` is relative to the workspace root. Returns \
                 up to `limit` bytes (default {DEFAULT_READ_BYTES}, at most {MAX_READ_BYTES}) \
                 from byte `offset`; when the file is longer, the result says which offset to \
                 continue from."
            ),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "File path relative to the workspace, e.g. \"src/main.rs\"."},
                    "offset": {"type": "integer", "minimum": 0, "description": "Byte offset to start at (default 0)."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_READ_BYTES, "description": "Most bytes to return."}
                },
                "required": ["path"],
                "additionalProperties": false
            }),
        },
        ToolDefinition {
            name: WRITE_FILE_TOOL.to_owned(),
            description: "Create a file in your workspace or replace its whole content (at most \
                          8 MiB). Missing parent directories are created unless create_dirs is \
                          false. Prefer edit_file or apply_patch to change part of a file."
                .to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "File path relative to the workspace."},
                    "content": {"type": "string", "description": "The complete new content."},
                    "create_dirs": {"type": "boolean", "description": "Create missing parent directories (default true)."}
                },
                "required": ["path", "content"],
                "additionalProperties": false
            }),
        },
        ToolDefinition {
            name: EDIT_FILE_TOOL.to_owned(),
            description: "Replace exact text in a workspace file. old_string must match the \
                          file exactly (whitespace included) and occur once, unless replace_all \
                          is true. Read the file first."
                .to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "File path relative to the workspace."},
                    "old_string": {"type": "string", "description": "The exact text to replace (include enough context to be unique)."},
                    "new_string": {"type": "string", "description": "The replacement text."},
                    "replace_all": {"type": "boolean", "description": "Replace every occurrence (default false)."}
                },
                "required": ["path", "old_string", "new_string"],
                "additionalProperties": false
            }),
        },
        ToolDefinition {
            name: APPLY_PATCH_TOOL.to_owned(),
            description: "Apply a patch to several workspace files at once; nothing changes \
                          unless every part applies. Format:\n*** Begin Patch\n*** Add File: \
                          path\n+line of the new file\n*** Update File: path\n@@ optional line \
                          to find first\n context line\n-removed line\n+added line\n*** Delete \
                          File: path\n*** End Patch"
                .to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "patch": {"type": "string", "description": "The whole patch, from \"*** Begin Patch\" to \"*** End Patch\"."}
                },
                "required": ["patch"],
                "additionalProperties": false
            }),
        },
        ToolDefinition {
            name: LIST_DIR_TOOL.to_owned(),
            description: "List a directory in your workspace: names, kinds and sizes (at most \
                          1000 entries)."
                .to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Directory relative to the workspace (default: the workspace root)."}
                },
                "additionalProperties": false
            }),
        },
    ]
}

/// `read_file` arguments into a request.
pub fn read_request(
    json: &str,
    grant: Option<TurnGrant>,
    session_key: &str,
) -> Result<ReadFileRequest, String> {
    let a = Args::parse(READ_FILE_TOOL, json, &["path", "offset", "limit"])?;
    let limit = a
        .opt_u64("limit", 1, MAX_READ_BYTES)?
        .unwrap_or(DEFAULT_READ_BYTES);
    Ok(ReadFileRequest {
        grant,
        session_key: session_key.to_owned(),
        path: a.non_empty("path")?,
        offset: a.opt_u64("offset", 0, u64::MAX)?.unwrap_or(0),
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
    })
}

/// `write_file` arguments into a request.
pub fn write_request(
    json: &str,
    grant: Option<TurnGrant>,
    session_key: &str,
) -> Result<WriteFileRequest, String> {
    let a = Args::parse(WRITE_FILE_TOOL, json, &["path", "content", "create_dirs"])?;
    Ok(WriteFileRequest {
        grant,
        session_key: session_key.to_owned(),
        path: a.non_empty("path")?,
        content: a.string("content")?.into_bytes(),
        create_parents: a.opt_bool("create_dirs")?.unwrap_or(true),
    })
}

/// `edit_file` arguments into a request.
pub fn edit_request(
    json: &str,
    grant: Option<TurnGrant>,
    session_key: &str,
) -> Result<EditFileRequest, String> {
    let a = Args::parse(
        EDIT_FILE_TOOL,
        json,
        &["path", "old_string", "new_string", "replace_all"],
    )?;
    let old_string = a.string("old_string")?;
    if old_string.is_empty() {
        return Err(
            "\"old_string\" is empty; give the exact text to replace (write_file creates files)"
                .to_owned(),
        );
    }
    Ok(EditFileRequest {
        grant,
        session_key: session_key.to_owned(),
        path: a.non_empty("path")?,
        old_string,
        new_string: a.string("new_string")?,
        replace_all: a.opt_bool("replace_all")?.unwrap_or(false),
    })
}

/// `apply_patch` arguments into a request.
pub fn patch_request(
    json: &str,
    grant: Option<TurnGrant>,
    session_key: &str,
) -> Result<ApplyPatchRequest, String> {
    let a = Args::parse(APPLY_PATCH_TOOL, json, &["patch"])?;
    Ok(ApplyPatchRequest {
        grant,
        session_key: session_key.to_owned(),
        patch: a.non_empty("patch")?,
    })
}

/// `list_dir` arguments into a request.
pub fn list_request(
    json: &str,
    grant: Option<TurnGrant>,
    session_key: &str,
) -> Result<ListDirRequest, String> {
    // Models sometimes send no arguments at all for "list the root".
    let json = if json.trim().is_empty() { "{}" } else { json };
    let a = Args::parse(LIST_DIR_TOOL, json, &["path"])?;
    Ok(ListDirRequest {
        grant,
        session_key: session_key.to_owned(),
        path: a.opt_string("path")?.unwrap_or_default(),
    })
}

/// A `read_file` answer for the model. Text is shown as is; invalid UTF-8 is shown with
/// replacement characters and a note; content with NUL bytes is described, not shown.
pub fn render_read(path: &str, r: &ReadFileResponse) -> String {
    let end = r.offset + r.content.len() as u64;
    let mut out = if r.offset == 0 && !r.truncated {
        format!("{path} ({} bytes)\n", r.total_bytes)
    } else {
        format!(
            "{path} ({} bytes; showing bytes {}..{})\n",
            r.total_bytes, r.offset, end
        )
    };
    if r.content.contains(&0) {
        out.push_str(&format!(
            "(binary content, {} bytes, not shown; inspect it with exec, e.g. `xxd {path} | head`)\n",
            r.content.len()
        ));
    } else {
        match std::str::from_utf8(&r.content) {
            Ok(text) => out.push_str(text),
            Err(_) => {
                out.push_str(&String::from_utf8_lossy(&r.content));
                out.push_str(
                    "\n[note: the file is not valid UTF-8; invalid bytes are shown as \u{fffd}]",
                );
            }
        }
        if r.content.is_empty() {
            out.push_str(if r.total_bytes == 0 {
                "(empty file)"
            } else {
                "(nothing at this offset: it is past the end of the file)"
            });
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    if r.truncated {
        out.push_str(&format!(
            "[truncated: {} more bytes; call read_file with offset={} to continue]\n",
            r.total_bytes.saturating_sub(r.next_offset),
            r.next_offset
        ));
    }
    out
}

/// A `write_file` answer for the model.
pub fn render_write(path: &str, r: &WriteFileResponse) -> String {
    let what = if r.created { "created" } else { "replaced" };
    format!("{what} {path} ({} bytes written)", r.bytes_written)
}

/// An `edit_file` answer for the model.
pub fn render_edit(path: &str, r: &EditFileResponse) -> String {
    let s = if r.replacements == 1 { "" } else { "s" };
    format!(
        "replaced {} occurrence{s} in {path} (now {} bytes)",
        r.replacements, r.total_bytes
    )
}

/// An `apply_patch` answer for the model.
pub fn render_patch(r: &ApplyPatchResponse) -> String {
    let mut out = String::from("patch applied:\n");
    for f in &r.files {
        let action = match f.action() {
            PatchAction::Added => "added",
            PatchAction::Updated => "updated",
            PatchAction::Deleted => "deleted",
            PatchAction::Unspecified => "changed",
        };
        out.push_str(&format!("  {action} {}\n", f.path));
    }
    out
}

/// A `list_dir` answer for the model: one entry per line, directories with a trailing
/// `/`, links with their target.
pub fn render_list(path: &str, r: &ListDirResponse) -> String {
    let shown = if path.is_empty() { "." } else { path };
    let mut out = if r.truncated {
        format!(
            "{shown}: {} entries, showing the first {}\n",
            r.total_entries,
            r.entries.len()
        )
    } else {
        format!("{shown}: {} entries\n", r.total_entries)
    };
    if r.entries.is_empty() {
        out.push_str("(empty directory)\n");
    }
    for e in &r.entries {
        let line = match e.kind() {
            EntryKind::Dir => format!("{}/", e.name),
            EntryKind::File => format!("{} ({} bytes)", e.name, e.size),
            EntryKind::Symlink => format!("{} -> {}", e.name, e.symlink_target),
            EntryKind::Other | EntryKind::Unspecified => format!("{} (special file)", e.name),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pincer_proto::v1::{DirEntry, PatchedFile};

    #[test]
    fn parses_arguments_strictly() {
        let r = read_request(r#"{"path":"a.txt","offset":10}"#, None, "s").unwrap();
        assert_eq!((r.path.as_str(), r.offset, r.limit), ("a.txt", 10, 65_536));
        assert_eq!(r.session_key, "s");
        for bad in [
            r#"{}"#,
            r#"{"path":""}"#,
            r#"{"path":"a","limit":0}"#,
            r#"{"path":"a","limit":999999999}"#,
            r#"{"path":"a","offset":-1}"#,
            r#"{"path":"a","encoding":"utf8"}"#,
        ] {
            assert!(read_request(bad, None, "s").is_err(), "{bad}");
        }
        let w = write_request(r#"{"path":"a","content":"x"}"#, None, "s").unwrap();
        assert!(w.create_parents);
        let w = write_request(
            r#"{"path":"a","content":"","create_dirs":false}"#,
            None,
            "s",
        )
        .unwrap();
        assert!(!w.create_parents && w.content.is_empty());
        assert!(write_request(r#"{"path":"a"}"#, None, "s").is_err());
        let e = edit_request(
            r#"{"path":"a","old_string":"x","new_string":""}"#,
            None,
            "s",
        )
        .unwrap();
        assert!(!e.replace_all);
        assert!(
            edit_request(
                r#"{"path":"a","old_string":"","new_string":"y"}"#,
                None,
                "s"
            )
            .is_err()
        );
        assert!(patch_request(r#"{"patch":"  "}"#, None, "s").is_err());
        assert!(
            patch_request(r#"{"diff":"x"}"#, None, "s")
                .unwrap_err()
                .contains("unknown argument \"diff\"")
        );
        assert_eq!(list_request("", None, "s").unwrap().path, "");
        assert_eq!(
            list_request(r#"{"path":"src"}"#, None, "s").unwrap().path,
            "src"
        );
    }

    #[test]
    fn renders_reads() {
        let whole = ReadFileResponse {
            content: b"hi\n".to_vec(),
            total_bytes: 3,
            offset: 0,
            truncated: false,
            next_offset: 3,
        };
        assert_eq!(render_read("a.txt", &whole), "a.txt (3 bytes)\nhi\n");
        let part = ReadFileResponse {
            content: b"ab\xffc\n".to_vec(),
            total_bytes: 100,
            offset: 10,
            truncated: true,
            next_offset: 15,
        };
        let text = render_read("a", &part);
        assert!(
            text.starts_with("a (100 bytes; showing bytes 10..15)\nab\u{fffd}c"),
            "{text}"
        );
        assert!(text.contains("not valid UTF-8"));
        assert!(
            text.contains("85 more bytes; call read_file with offset=15"),
            "{text}"
        );
        let binary = ReadFileResponse {
            content: vec![0, 1, 2],
            total_bytes: 3,
            next_offset: 3,
            ..Default::default()
        };
        assert!(render_read("b", &binary).contains("binary content"));
    }

    #[test]
    fn renders_lists_and_patches() {
        let list = ListDirResponse {
            entries: vec![
                DirEntry {
                    name: "src".into(),
                    kind: EntryKind::Dir.into(),
                    ..Default::default()
                },
                DirEntry {
                    name: "a.md".into(),
                    kind: EntryKind::File.into(),
                    size: 12,
                    ..Default::default()
                },
                DirEntry {
                    name: "l".into(),
                    kind: EntryKind::Symlink.into(),
                    symlink_target: "a.md".into(),
                    ..Default::default()
                },
            ],
            total_entries: 1003,
            truncated: true,
        };
        assert_eq!(
            render_list("", &list),
            ".: 1003 entries, showing the first 3\nsrc/\na.md (12 bytes)\nl -> a.md\n"
        );
        let patch = ApplyPatchResponse {
            files: vec![PatchedFile {
                path: "x".into(),
                action: PatchAction::Added.into(),
            }],
        };
        assert_eq!(render_patch(&patch), "patch applied:\n  added x\n");
        assert_eq!(
            render_edit(
                "f",
                &EditFileResponse {
                    replacements: 2,
                    total_bytes: 9
                }
            ),
            "replaced 2 occurrences in f (now 9 bytes)"
        );
        assert_eq!(
            render_write(
                "f",
                &WriteFileResponse {
                    bytes_written: 3,
                    created: true
                }
            ),
            "created f (3 bytes written)"
        );
    }
}
