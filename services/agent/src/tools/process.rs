//! The `process` tool: background commands in the sandbox. One tool with an `action`
//! (`start`, `poll`, `write`, `kill`, `list`), each taking only its own arguments; the
//! executor enforces every rule (docs/tools.md, "process"), so the agent only shapes
//! requests and renders the answers.

use std::time::Duration;

use pincer_proto::v1::{
    ProcessInfo, ProcessKillRequest, ProcessKillResponse, ProcessListRequest, ProcessListResponse,
    ProcessPollRequest, ProcessPollResponse, ProcessStartRequest, ProcessStartResponse,
    ProcessState, ProcessWriteRequest, ProcessWriteResponse, TurnGrant, process_start_request,
};
use serde_json::{Value, json};

use crate::model::ToolDefinition;
use crate::tools::args::Args;
use crate::tools::capped;

/// `process`.
pub const PROCESS_TOOL: &str = "process";
/// Longest wall-clock limit the model may give a background process.
pub const MAX_PROCESS_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// The longest a poll may wait for output.
pub const MAX_POLL_WAIT: Duration = Duration::from_secs(30);
/// How long a poll waits when the model does not say.
pub const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(10);
/// Most bytes one write may send.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// The actions and the arguments each takes (besides `action`).
const ACTIONS: [(&str, &[&str]); 5] = [
    ("start", &["command", "timeout_seconds"]),
    ("poll", &["process_id", "wait_seconds"]),
    ("write", &["process_id", "input", "close_stdin"]),
    ("kill", &["process_id"]),
    ("list", &[]),
];

/// The `process` tool as the model sees it.
pub fn definition() -> ToolDefinition {
    ToolDefinition {
        name: PROCESS_TOOL.to_owned(),
        description: format!(
            "Run a shell command in the background in the sandbox (for servers, watchers, long \
             builds, interactive programs) and interact with it. Actions: \"start\" (command, \
             optional timeout_seconds, default 1800) returns a process_id; \"poll\" \
             (process_id, optional wait_seconds up to {max_wait}, default {default_wait}) \
             returns the output written since the previous poll and whether it still runs; \
             \"write\" (process_id, input and/or close_stdin) sends text to its stdin; \
             \"kill\" (process_id) ends it and everything it started; \"list\" shows this \
             session's processes. Use exec instead for commands that finish quickly.",
            max_wait = MAX_POLL_WAIT.as_secs(),
            default_wait = DEFAULT_POLL_WAIT.as_secs(),
        ),
        parameters: json!({
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["start", "poll", "write", "kill", "list"], "description": "What to do."},
                "command": {"type": "string", "description": "start: the shell command line to run."},
                "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": MAX_PROCESS_TIMEOUT.as_secs(), "description": "start: kill the process after this many seconds (default 1800)."},
                "process_id": {"type": "string", "description": "poll, write, kill: the id start returned."},
                "wait_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_POLL_WAIT.as_secs(), "description": "poll: wait up to this long for new output."},
                "input": {"type": "string", "description": "write: text for the process's stdin (include \"\\n\" to end a line)."},
                "close_stdin": {"type": "boolean", "description": "write: close stdin afterwards (the process reads end-of-file)."}
            },
            "required": ["action"],
            "additionalProperties": false
        }),
    }
}

/// A `process` call as the executor request that runs it.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessCall {
    /// `start`.
    Start(ProcessStartRequest),
    /// `poll`.
    Poll(ProcessPollRequest),
    /// `write`.
    Write(ProcessWriteRequest),
    /// `kill`.
    Kill(ProcessKillRequest),
    /// `list`.
    List(ProcessListRequest),
}

/// Parses the model's arguments into the request for its action; the grant is forwarded
/// untouched.
pub fn request(
    json: &str,
    grant: Option<TurnGrant>,
    session_key: &str,
) -> Result<ProcessCall, String> {
    let action = action_of(json)?;
    let own = ACTIONS
        .iter()
        .find(|(name, _)| *name == action)
        .map(|(_, keys)| *keys)
        .ok_or_else(|| {
            format!(
                "\"action\" must be one of \"start\", \"poll\", \"write\", \"kill\", \"list\", not {action:?}"
            )
        })?;
    let mut keys = vec!["action"];
    keys.extend_from_slice(own);
    misplaced_key(json, &action, &keys)?;
    let a = Args::parse(PROCESS_TOOL, json, &keys)?;
    let session_key = session_key.to_owned();
    let id = || a.non_empty("process_id").map(|s| s.trim().to_owned());
    Ok(match action.as_str() {
        "start" => ProcessCall::Start(ProcessStartRequest {
            grant,
            session_key,
            command: Some(process_start_request::Command::Shell(
                a.non_empty("command")?,
            )),
            cwd: String::new(),
            timeout_ms: a
                .opt_u64("timeout_seconds", 1, MAX_PROCESS_TIMEOUT.as_secs())?
                .map_or(0, |s| u32::try_from(s * 1000).unwrap_or(u32::MAX)),
            env: Default::default(),
        }),
        "poll" => {
            let wait = a
                .opt_u64("wait_seconds", 0, MAX_POLL_WAIT.as_secs())?
                .map_or(DEFAULT_POLL_WAIT, Duration::from_secs);
            ProcessCall::Poll(ProcessPollRequest {
                grant,
                session_key,
                process_id: id()?,
                wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
            })
        }
        "write" => {
            let input = a.opt_string("input")?.unwrap_or_default();
            let close_stdin = a.opt_bool("close_stdin")?.unwrap_or(false);
            if input.is_empty() && !close_stdin {
                return Err("write needs \"input\", \"close_stdin\": true, or both".to_owned());
            }
            if input.len() > MAX_INPUT_BYTES {
                return Err(format!(
                    "\"input\" is {} bytes; write at most {MAX_INPUT_BYTES} bytes at a time",
                    input.len()
                ));
            }
            ProcessCall::Write(ProcessWriteRequest {
                grant,
                session_key,
                process_id: id()?,
                data: input.into_bytes(),
                close_stdin,
            })
        }
        "kill" => ProcessCall::Kill(ProcessKillRequest {
            grant,
            session_key,
            process_id: id()?,
        }),
        _ => ProcessCall::List(ProcessListRequest { grant, session_key }),
    })
}

/// The `action` argument, before anything else is checked.
fn action_of(json: &str) -> Result<String, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| {
        format!(
            "the arguments are not valid JSON ({e}); send an object like {{\"action\": \"list\"}}"
        )
    })?;
    match value.get("action") {
        Some(Value::String(s)) => Ok(s.trim().to_owned()),
        Some(_) => Err("\"action\" must be a string".to_owned()),
        None if value.is_object() => Err(
            "\"action\" is missing; use \"start\", \"poll\", \"write\", \"kill\" or \"list\""
                .to_owned(),
        ),
        None => Err("the arguments must be a JSON object like {\"action\": \"list\"}".to_owned()),
    }
}

/// A known argument that belongs to another action gets its own message.
fn misplaced_key(json: &str, action: &str, keys: &[&str]) -> Result<(), String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(json) else {
        return Ok(());
    };
    let known = |k: &str| ACTIONS.iter().any(|(_, keys)| keys.contains(&k));
    match map.keys().find(|k| !keys.contains(&k.as_str()) && known(k)) {
        Some(key) => {
            let takes = keys[1..]
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>();
            let takes = if takes.is_empty() {
                "nothing else".to_owned()
            } else {
                takes.join(", ")
            };
            Err(format!(
                "{key:?} does not go with action {action:?}; {action} takes {takes}"
            ))
        }
        None => Ok(()),
    }
}

/// One line about a process: id, state, duration, command.
fn describe(p: &ProcessInfo) -> String {
    let secs = p.duration_ms as f64 / 1000.0;
    let state = match p.state() {
        ProcessState::Running => format!("running for {secs:.1} s"),
        ProcessState::Exited => format!("exited with code {} after {secs:.1} s", p.exit_code),
        ProcessState::Killed => format!("killed after {secs:.1} s"),
        ProcessState::TimedOut => format!("killed at its time limit after {secs:.1} s"),
        ProcessState::Failed => format!("failed after {secs:.1} s: {}", p.error),
        ProcessState::Unspecified => "in an unknown state".to_owned(),
    };
    format!("process {}: {state}", p.process_id)
}

/// Whether the process is fine so far (running, or exited 0).
fn fine(p: &ProcessInfo) -> bool {
    match p.state() {
        ProcessState::Running | ProcessState::Killed => true,
        ProcessState::Exited => p.exit_code == 0,
        ProcessState::TimedOut | ProcessState::Failed | ProcessState::Unspecified => false,
    }
}

/// The answer to `start`.
pub fn render_start(r: &ProcessStartResponse) -> (String, bool) {
    let Some(p) = &r.process else {
        return (
            "the executor answered without the process".to_owned(),
            false,
        );
    };
    let mut out = format!("{}\ncommand: {}\n", describe(p), p.command);
    if p.state() == ProcessState::Running {
        out.push_str(&format!(
            "Read its output with {{\"action\": \"poll\", \"process_id\": \"{}\"}}.\n",
            p.process_id
        ));
    }
    (out, fine(p))
}

/// The answer to `poll`: the state, then the new output (each stream cut at `max_bytes`).
pub fn render_poll(r: &ProcessPollResponse, max_bytes: usize) -> (String, bool) {
    let Some(p) = &r.process else {
        return (
            "the executor answered without the process".to_owned(),
            false,
        );
    };
    let mut out = format!("{}\n", describe(p));
    for (name, bytes, dropped) in [
        ("stdout", &r.stdout, r.stdout_dropped_bytes),
        ("stderr", &r.stderr, r.stderr_dropped_bytes),
    ] {
        if dropped > 0 {
            out.push_str(&format!(
                "note: {dropped} earlier {name} bytes were dropped (not polled in time)\n"
            ));
        }
        if bytes.is_empty() {
            continue;
        }
        out.push_str(&format!("--- {name} ---\n"));
        out.push_str(&capped(&String::from_utf8_lossy(bytes), max_bytes));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    if r.stdout.is_empty() && r.stderr.is_empty() {
        out.push_str("(no new output)\n");
    }
    (out, fine(p))
}

/// The answer to `write`.
pub fn render_write(sent: usize, close: bool, r: &ProcessWriteResponse) -> (String, bool) {
    let Some(p) = &r.process else {
        return (
            "the executor answered without the process".to_owned(),
            false,
        );
    };
    let mut out = format!("wrote {} of {sent} bytes to stdin", r.bytes_written);
    if close {
        out.push_str(" and closed it");
    }
    out.push('\n');
    let written = usize::try_from(r.bytes_written).unwrap_or(usize::MAX);
    if written < sent {
        out.push_str(
            "note: the process did not read the rest in time; poll it, then write the remainder\n",
        );
    }
    out.push_str(&describe(p));
    out.push('\n');
    (out, written == sent)
}

/// The answer to `kill`.
pub fn render_kill(r: &ProcessKillResponse) -> (String, bool) {
    match &r.process {
        Some(p) => (format!("{}\n", describe(p)), true),
        None => (
            "the executor answered without the process".to_owned(),
            false,
        ),
    }
}

/// The answer to `list`.
pub fn render_list(r: &ProcessListResponse) -> (String, bool) {
    if r.processes.is_empty() {
        return ("no background processes in this session\n".to_owned(), true);
    }
    let mut out = String::new();
    for p in &r.processes {
        out.push_str(&format!("{} — {}\n", describe(p), p.command));
    }
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(json: &str) -> Result<ProcessCall, String> {
        request(json, None, "s")
    }

    #[test]
    fn each_action_takes_only_its_arguments() {
        let Ok(ProcessCall::Start(s)) =
            call(r#"{"action":"start","command":"npm run dev","timeout_seconds":60}"#)
        else {
            panic!()
        };
        assert_eq!(
            s.command,
            Some(process_start_request::Command::Shell("npm run dev".into()))
        );
        assert_eq!((s.timeout_ms, s.session_key.as_str()), (60_000, "s"));
        let Ok(ProcessCall::Poll(p)) = call(r#"{"action":"poll","process_id":" proc_abc "}"#)
        else {
            panic!()
        };
        assert_eq!((p.process_id.as_str(), p.wait_ms), ("proc_abc", 10_000));
        let Ok(ProcessCall::Write(w)) =
            call(r#"{"action":"write","process_id":"p","input":"y\n","close_stdin":true}"#)
        else {
            panic!()
        };
        assert_eq!((w.data.as_slice(), w.close_stdin), (&b"y\n"[..], true));
        assert!(matches!(
            call(r#"{"action":"kill","process_id":"p"}"#),
            Ok(ProcessCall::Kill(_))
        ));
        assert!(matches!(
            call(r#"{"action":"list"}"#),
            Ok(ProcessCall::List(_))
        ));

        for (bad, says) in [
            ("nope", "not valid JSON"),
            ("[]", "JSON object"),
            ("{}", "\"action\" is missing"),
            (r#"{"action":3}"#, "must be a string"),
            (r#"{"action":"restart"}"#, "must be one of"),
            (r#"{"action":"start"}"#, "\"command\" is missing"),
            (r#"{"action":"start","command":" "}"#, "empty"),
            (
                r#"{"action":"start","command":"x","timeout_seconds":0}"#,
                "timeout_seconds",
            ),
            (r#"{"action":"poll"}"#, "\"process_id\" is missing"),
            (
                r#"{"action":"poll","process_id":"p","wait_seconds":31}"#,
                "wait_seconds",
            ),
            (
                r#"{"action":"poll","process_id":"p","command":"ls"}"#,
                "does not go with action \"poll\"",
            ),
            (
                r#"{"action":"list","process_id":"p"}"#,
                "list takes nothing else",
            ),
            (r#"{"action":"write","process_id":"p"}"#, "needs \"input\""),
            (
                r#"{"action":"kill","process_id":"p","cwd":"/"}"#,
                "unknown argument \"cwd\"",
            ),
        ] {
            let err = call(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let big = format!(
            r#"{{"action":"write","process_id":"p","input":"{}"}}"#,
            "x".repeat(MAX_INPUT_BYTES + 1)
        );
        assert!(call(&big).unwrap_err().contains("at most"));
    }

    fn info(state: ProcessState, code: i32) -> ProcessInfo {
        ProcessInfo {
            process_id: "proc_abcdefghijkm".into(),
            state: state.into(),
            exit_code: code,
            command: "npm run dev".into(),
            duration_ms: 1500,
            ..ProcessInfo::default()
        }
    }

    #[test]
    fn renders_answers_for_the_model() {
        let (text, ok) = render_start(&ProcessStartResponse {
            process: Some(info(ProcessState::Running, -1)),
        });
        assert!(ok);
        assert!(
            text.starts_with(
                "process proc_abcdefghijkm: running for 1.5 s\ncommand: npm run dev\n"
            )
        );
        assert!(text.contains("\"action\": \"poll\""));
        let (text, ok) = render_poll(
            &ProcessPollResponse {
                process: Some(info(ProcessState::Exited, 2)),
                stdout: "é".repeat(10).into_bytes(),
                stderr: b"boom\n".to_vec(),
                stdout_dropped_bytes: 7,
                stderr_dropped_bytes: 0,
            },
            5,
        );
        assert!(!ok);
        assert!(text.contains("exited with code 2 after 1.5 s"), "{text}");
        assert!(
            text.contains("note: 7 earlier stdout bytes were dropped"),
            "{text}"
        );
        assert!(
            text.contains("--- stdout ---\néé\n[… 16 more bytes not shown]"),
            "{text}"
        );
        assert!(text.contains("--- stderr ---\nboom\n"), "{text}");
        let (text, ok) = render_poll(
            &ProcessPollResponse {
                process: Some(info(ProcessState::Running, -1)),
                ..ProcessPollResponse::default()
            },
            100,
        );
        assert!(ok && text.contains("(no new output)"), "{text}");
        let (text, ok) = render_write(
            10,
            false,
            &ProcessWriteResponse {
                process: Some(info(ProcessState::Running, -1)),
                bytes_written: 4,
            },
        );
        assert!(
            !ok && text.contains("wrote 4 of 10 bytes") && text.contains("remainder"),
            "{text}"
        );
        let (text, _) = render_kill(&ProcessKillResponse {
            process: Some(info(ProcessState::Killed, -1)),
        });
        assert!(text.contains("killed after 1.5 s"), "{text}");
        let (text, _) = render_list(&ProcessListResponse {
            processes: vec![info(ProcessState::TimedOut, -1)],
        });
        assert!(
            text.contains("killed at its time limit") && text.contains("— npm run dev"),
            "{text}"
        );
        assert!(
            render_list(&ProcessListResponse::default())
                .0
                .contains("no background")
        );
    }
}
