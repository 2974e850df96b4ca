//! The `exec` tool: its definition, parsing its arguments into an [`ExecRequest`], and
//! rendering the executor's answer for the model.

use std::time::Duration;

use pincer_proto::v1::{ExecRequest, ExecResponse, TurnGrant, exec_request};
use serde_json::{Value, json};

use crate::model::ToolDefinition;
use crate::tools::capped;

/// The shell tool's name (also the name the grant must allow).
pub const EXEC_TOOL: &str = "exec";

/// Longest wall-clock limit the model may ask for.
pub const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(600);

/// The `exec` tool as the model sees it.
pub fn exec_definition() -> ToolDefinition {
    ToolDefinition {
        name: EXEC_TOOL.to_owned(),
        description: "Run a shell command (/bin/sh -c) in the sandbox. The working directory is \
                      your workspace. Returns the exit code, stdout and stderr."
            .to_owned(),
        parameters: json!({
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The shell command line to run."},
                "timeout_seconds": {
                    "type": "integer", "minimum": 1, "maximum": MAX_EXEC_TIMEOUT.as_secs(),
                    "description": "Wall-clock limit in seconds (optional)."
                }
            },
            "required": ["command"],
            "additionalProperties": false
        }),
    }
}

/// The `exec` tool's arguments, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecArgs {
    /// The shell line.
    pub command: String,
    /// The limit the model asked for.
    pub timeout: Option<Duration>,
}

impl ExecArgs {
    /// Parses the model's JSON; the error is shown to the model so it can correct itself.
    pub fn parse(arguments_json: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(arguments_json).map_err(|e| {
            format!("the arguments are not valid JSON ({e}); send {{\"command\": \"...\"}}")
        })?;
        let Value::Object(map) = value else {
            return Err("the arguments must be a JSON object: {\"command\": \"...\"}".to_owned());
        };
        if let Some(key) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "command" | "timeout_seconds"))
        {
            return Err(format!(
                "unknown argument {key:?}; exec takes only \"command\" and \"timeout_seconds\""
            ));
        }
        let command = match map.get("command") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) => return Err("\"command\" is empty".to_owned()),
            Some(_) => return Err("\"command\" must be a string".to_owned()),
            None => return Err("\"command\" is missing".to_owned()),
        };
        let timeout = match map.get("timeout_seconds") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let max = MAX_EXEC_TIMEOUT.as_secs();
                match v.as_f64() {
                    Some(s) if (1.0..=max as f64).contains(&s) => Some(Duration::from_secs_f64(s)),
                    _ => {
                        return Err(format!(
                            "\"timeout_seconds\" must be a number from 1 to {max}"
                        ));
                    }
                }
            }
        };
        Ok(Self { command, timeout })
    }

    /// The executor request for `session_key`; the grant is forwarded untouched.
    pub fn into_request(
        self,
        grant: Option<TurnGrant>,
        session_key: &str,
        default_timeout: Duration,
    ) -> ExecRequest {
        let timeout = self
            .timeout
            .unwrap_or(default_timeout)
            .min(MAX_EXEC_TIMEOUT);
        ExecRequest {
            grant,
            session_key: session_key.to_owned(),
            command: Some(exec_request::Command::Shell(self.command)),
            cwd: String::new(),
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            env: Default::default(),
        }
    }
}

/// What the model is shown for an executor answer, and whether the command succeeded.
pub fn render_exec_response(response: &ExecResponse, max_bytes: usize) -> (String, bool) {
    let mut out = format!(
        "exit code: {} ({} ms)\n",
        response.exit_code, response.duration_ms
    );
    for (name, bytes) in [("stdout", &response.stdout), ("stderr", &response.stderr)] {
        if bytes.is_empty() {
            continue;
        }
        out.push_str(&format!("--- {name} ---\n"));
        out.push_str(&capped(&String::from_utf8_lossy(bytes), max_bytes));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    if response.stdout.is_empty() && response.stderr.is_empty() {
        out.push_str("(no output)\n");
    }
    if response.output_truncated {
        out.push_str("note: the executor cut the output at its size limit\n");
    }
    if response.timed_out {
        out.push_str("note: the command timed out and was killed\n");
    }
    let ok = response.exit_code == 0 && !response.timed_out;
    (out, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(tools: &[&str]) -> TurnGrant {
        use pincer_proto::v1::GrantClaims;
        use prost::Message;
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

    #[test]
    fn parses_exec_arguments() {
        assert_eq!(
            ExecArgs::parse(r#"{"command":"ls -la","timeout_seconds":5}"#),
            Ok(ExecArgs {
                command: "ls -la".into(),
                timeout: Some(Duration::from_secs(5))
            })
        );
        for bad in [
            "nope",
            "[]",
            "{}",
            r#"{"command":""}"#,
            r#"{"command":3}"#,
            r#"{"command":"ls","timeout_seconds":0}"#,
            r#"{"command":"ls","timeout_seconds":9999}"#,
            r#"{"command":"ls","cwd":"/"}"#,
        ] {
            assert!(ExecArgs::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builds_the_request_with_the_grant_untouched() {
        let g = grant(&["exec"]);
        let req = ExecArgs::parse(r#"{"command":"echo hi"}"#)
            .unwrap()
            .into_request(Some(g.clone()), "s", Duration::from_secs(30));
        assert_eq!(req.grant, Some(g));
        assert_eq!(
            req.command,
            Some(exec_request::Command::Shell("echo hi".into()))
        );
        assert_eq!(req.timeout_ms, 30_000);
    }

    #[test]
    fn renders_results_with_notes_and_caps() {
        let response = ExecResponse {
            exit_code: 2,
            stdout: "é".repeat(10).into_bytes(),
            stderr: b"boom\n".to_vec(),
            timed_out: true,
            output_truncated: true,
            duration_ms: 7,
        };
        let (text, ok) = render_exec_response(&response, 5);
        assert!(!ok);
        assert!(
            text.starts_with(
                "exit code: 2 (7 ms)\n--- stdout ---\néé\n[… 16 more bytes not shown]"
            )
        );
        assert!(text.contains("--- stderr ---\nboom\n"));
        assert!(text.contains("timed out"));
        assert!(text.contains("cut the output"));
        let (text, ok) = render_exec_response(&ExecResponse::default(), 100);
        assert!(ok);
        assert!(text.contains("(no output)"));
    }
}
