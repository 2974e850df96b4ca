//! The tools the agent offers, as pure functions: which tools a turn gets
//! ([`offered_tools`]), each tool's definition, parsing the model's arguments into an
//! executor request ([`executor_call`]), and rendering the executor's answers.
//!
//! | module | what |
//! |---|---|
//! | [`exec`] | `exec` |
//! | [`process`] | `process`: background commands (start, poll, write, kill, list) |
//! | [`files`] | `read_file`, `write_file`, `edit_file`, `apply_patch`, `list_dir` |
//! | [`web`] | `web_fetch` |
//! | `args` | strict JSON argument parsing shared by the tools |

mod args;
pub mod exec;
pub mod files;
pub mod process;
pub mod web;

use std::time::Duration;

use pincer_proto::v1::{
    ApplyPatchRequest, EditFileRequest, ExecRequest, GrantClaims, ListDirRequest, ReadFileRequest,
    TurnGrant, WebFetchRequest, WriteFileRequest,
};
use pincer_runtime::Config;
use prost::Message;

pub use exec::{EXEC_TOOL, ExecArgs, MAX_EXEC_TIMEOUT, exec_definition, render_exec_response};
pub use process::{PROCESS_TOOL, ProcessCall};
pub use web::WEB_FETCH_TOOL;

use crate::model::ToolDefinition;

/// Which tools the config enables (`tools.exec.enabled`, `tools.files.enabled`,
/// `tools.webFetch.enabled`). A tool is offered only when enabled here **and** listed in
/// the turn's grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ToolSwitches {
    /// `exec` and `process`.
    pub exec: bool,
    /// The five file tools.
    pub files: bool,
    /// `web_fetch`.
    pub web_fetch: bool,
}

impl ToolSwitches {
    /// The switches in `config`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            exec: config.exec.enabled,
            files: config.files.enabled,
            web_fetch: config.web_fetch.enabled,
        }
    }
}

/// The tools offered in a turn: those the config enables and the gateway's grant lists.
/// The agent reads the grant's claims without verifying them: it only decides what to
/// offer the model; the executor verifies the signature on every call, so an altered
/// grant gains nothing.
pub fn offered_tools(switches: ToolSwitches, grant: Option<&TurnGrant>) -> Vec<ToolDefinition> {
    let granted = grant
        .and_then(|g| GrantClaims::decode(g.claims.as_slice()).ok())
        .map(|c| c.allowed_tools)
        .unwrap_or_default();
    let mut all = Vec::new();
    if switches.exec {
        all.push(exec_definition());
        all.push(process::definition());
    }
    if switches.files {
        all.extend(files::definitions());
    }
    if switches.web_fetch {
        all.push(web::definition());
    }
    all.retain(|d| granted.contains(&d.name));
    all
}

/// A tool call turned into the executor request that runs it.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorCall {
    /// `exec`.
    Exec(ExecRequest),
    /// `read_file`.
    ReadFile(ReadFileRequest),
    /// `write_file`.
    WriteFile(WriteFileRequest),
    /// `edit_file`.
    EditFile(EditFileRequest),
    /// `apply_patch`.
    ApplyPatch(ApplyPatchRequest),
    /// `list_dir`.
    ListDir(ListDirRequest),
    /// `web_fetch`.
    WebFetch(WebFetchRequest),
    /// `process` (one of its actions).
    Process(ProcessCall),
}

/// Parses the model's arguments for tool `name` into the executor request, forwarding
/// the grant untouched. The error is shown to the model so it can correct itself.
pub fn executor_call(
    name: &str,
    arguments_json: &str,
    grant: Option<TurnGrant>,
    session_key: &str,
    exec_timeout: Duration,
) -> Result<ExecutorCall, String> {
    let call =
        match name {
            EXEC_TOOL => ExecArgs::parse(arguments_json)
                .map(|a| ExecutorCall::Exec(a.into_request(grant, session_key, exec_timeout))),
            files::READ_FILE_TOOL => {
                files::read_request(arguments_json, grant, session_key).map(ExecutorCall::ReadFile)
            }
            files::WRITE_FILE_TOOL => files::write_request(arguments_json, grant, session_key)
                .map(ExecutorCall::WriteFile),
            files::EDIT_FILE_TOOL => {
                files::edit_request(arguments_json, grant, session_key).map(ExecutorCall::EditFile)
            }
            files::APPLY_PATCH_TOOL => files::patch_request(arguments_json, grant, session_key)
                .map(ExecutorCall::ApplyPatch),
            files::LIST_DIR_TOOL => {
                files::list_request(arguments_json, grant, session_key).map(ExecutorCall::ListDir)
            }
            WEB_FETCH_TOOL => {
                web::request(arguments_json, grant, session_key).map(ExecutorCall::WebFetch)
            }
            PROCESS_TOOL => {
                process::request(arguments_json, grant, session_key).map(ExecutorCall::Process)
            }
            other => return Err(format!("tool {other:?} cannot be run by this agent")),
        };
    call.map_err(|problem| format!("invalid {name} arguments: {problem}"))
}

/// `text` cut to at most `max_bytes` (on a character boundary), saying how much was left out.
pub fn capped(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[… {} more bytes not shown]\n",
        &text[..end],
        text.len() - end
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(tools: &[&str]) -> TurnGrant {
        TurnGrant {
            claims: GrantClaims {
                turn_id: "t".into(),
                session_key: "s".into(),
                agent_id: "a".into(),
                allowed_tools: tools.iter().map(|t| (*t).to_owned()).collect(),
                expires_at_ms: 1,
                ..GrantClaims::default()
            }
            .encode_to_vec(),
            signature: vec![0; 64],
            key_id: "k".into(),
        }
    }

    const ALL_ON: ToolSwitches = ToolSwitches {
        exec: true,
        files: true,
        web_fetch: true,
    };

    fn names(tools: Vec<ToolDefinition>) -> Vec<String> {
        tools.into_iter().map(|t| t.name).collect()
    }

    #[test]
    fn a_tool_is_offered_only_when_enabled_and_granted() {
        let every = [
            "exec",
            "read_file",
            "write_file",
            "edit_file",
            "apply_patch",
            "list_dir",
            "web_fetch",
        ];
        assert_eq!(names(offered_tools(ALL_ON, Some(&grant(&every)))), every);
        assert_eq!(
            names(offered_tools(
                ALL_ON,
                Some(&grant(&["read_file", "web_fetch", "browser"]))
            )),
            ["read_file", "web_fetch"]
        );
        let no_files = ToolSwitches {
            files: false,
            ..ALL_ON
        };
        assert_eq!(
            names(offered_tools(no_files, Some(&grant(&every)))),
            ["exec", "web_fetch"]
        );
        let no_web = ToolSwitches {
            web_fetch: false,
            exec: false,
            ..ALL_ON
        };
        assert_eq!(
            names(offered_tools(
                no_web,
                Some(&grant(&["exec", "web_fetch", "list_dir"]))
            )),
            ["list_dir"]
        );
        assert!(offered_tools(ALL_ON, None).is_empty());
        // `process` goes with `exec`: offered when exec is enabled and the grant lists it.
        assert_eq!(
            names(offered_tools(ALL_ON, Some(&grant(&["exec", "process"])))),
            ["exec", "process"]
        );
        let no_exec = ToolSwitches {
            exec: false,
            ..ALL_ON
        };
        assert!(offered_tools(no_exec, Some(&grant(&["exec", "process"]))).is_empty());
        assert!(offered_tools(ToolSwitches::default(), Some(&grant(&every))).is_empty());
        // Definitions are strict objects the providers accept.
        let mut with_process = every.to_vec();
        with_process.push("process");
        for d in offered_tools(ALL_ON, Some(&grant(&with_process))) {
            assert_eq!(d.parameters["type"], "object", "{}", d.name);
            assert_eq!(d.parameters["additionalProperties"], false, "{}", d.name);
            assert!(!d.description.is_empty());
        }
    }

    #[test]
    fn builds_executor_calls_with_the_grant_untouched() {
        let g = grant(&["read_file"]);
        let call = executor_call(
            "read_file",
            r#"{"path":"notes.md"}"#,
            Some(g.clone()),
            "s",
            Duration::from_secs(1),
        )
        .unwrap();
        let ExecutorCall::ReadFile(req) = call else {
            panic!("{call:?}")
        };
        assert_eq!((req.grant, req.path.as_str()), (Some(g), "notes.md"));
        let err =
            executor_call("write_file", r#"{"path":"a"}"#, None, "s", Duration::ZERO).unwrap_err();
        assert!(err.starts_with("invalid write_file arguments: "), "{err}");
        let err = executor_call("browser", "{}", None, "s", Duration::ZERO).unwrap_err();
        assert!(err.contains("cannot be run"), "{err}");
        assert!(matches!(
            executor_call("process", r#"{"action":"list"}"#, None, "s", Duration::ZERO),
            Ok(ExecutorCall::Process(ProcessCall::List(_)))
        ));
        assert!(matches!(
            executor_call(
                "web_fetch",
                r#"{"url":"https://a.example/"}"#,
                None,
                "s",
                Duration::ZERO
            ),
            Ok(ExecutorCall::WebFetch(_))
        ));
    }

    #[test]
    fn caps_on_a_character_boundary() {
        assert_eq!(capped("héllo", 2), "h\n[… 5 more bytes not shown]\n");
        assert_eq!(capped("hi", 5), "hi");
    }
}
