//! The body checks for `docker exec` into a sandbox (per-session containers,
//! `executor.docker.reuse: "session"`): `POST /containers/{id}/exec`
//! ([`check_exec_create`]) and `POST /exec/{id}/start` ([`check_exec_start`]).
//!
//! An exec runs inside the container's posture (its namespaces, seccomp profile, dropped
//! capabilities, no-new-privileges, limits, mounts); what the body may change is refused
//! here: `Privileged` (all capabilities, no seccomp), `User` (anything but the container's
//! own, which the create check made a numeric non-root uid), `Env` entries that replace or
//! unset the sandbox's `PATH`, `HOME`, `LANG` (or the variables that make the loader or a
//! shell run other code), a `WorkingDir` outside `/workspace`, and a tty. Keys are read as
//! the engine reads them ([`super::super::json`]); unknown keys pass only with a zero value;
//! what is forwarded is the checked value, re-serialised.

use serde_json::Value;

use super::{Context, Refusal, Rule, as_object, as_strings, check_object};
use crate::rules::Policy;
use crate::rules::bind::check_normal_absolute;
use crate::rules::json::{Fields, parse_strict};

/// Where the workspace is mounted; an exec's working directory must be there or below.
pub const WORKSPACE: &str = "/workspace";

/// Environment names an exec may not set or unset: the sandbox's own, and those that make
/// the dynamic loader or a shell run other code (the executor refuses the same).
pub const RESERVED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "TMPDIR",
    "BASH_ENV",
    "ENV",
    "IFS",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "CDPATH",
    "PROMPT_COMMAND",
    "GCONV_PATH",
    "GLOBIGNORE",
];
/// Name prefixes an exec may not set (loader variables, exported shell functions).
pub const RESERVED_ENV_PREFIXES: &[&str] = &["LD_", "DYLD_", "BASH_FUNC_"];

/// An exec create body that passed, ready to forward.
#[derive(Debug, Clone)]
pub struct CheckedExec {
    /// The body to send to the engine (the checked value, re-serialised).
    pub body: Vec<u8>,
}

/// The exec create body (the engine's `ExecConfig`) and the rule for each field.
const EXEC_CONFIG: &[(&str, Rule)] = &[
    ("User", Rule::Any), // checked against the container's below
    ("Privileged", Rule::NotTrue),
    ("Tty", Rule::NotTrue),
    ("ConsoleSize", Rule::Empty),
    ("AttachStdin", Rule::Any),
    ("AttachStdout", Rule::Any),
    ("AttachStderr", Rule::Any),
    ("Detach", Rule::Any),
    ("DetachKeys", Rule::Any),
    ("Env", Rule::Custom(check_env)),
    ("WorkingDir", Rule::Custom(check_working_dir)),
    ("Cmd", Rule::Custom(check_cmd)),
];

/// An exec start body that passed, ready to forward.
#[derive(Debug, Clone)]
pub struct CheckedExecStart {
    /// The body to send to the engine (the checked value, re-serialised).
    pub body: Vec<u8>,
    /// Whether the exec runs detached (no upgrade); otherwise the start must ask for a
    /// connection upgrade and the streams are spliced, as for attach.
    pub detach: bool,
}

/// The exec start body (the engine's `ExecStartConfig`).
const EXEC_START: &[(&str, Rule)] = &[
    ("Detach", Rule::Custom(check_bool)),
    ("Tty", Rule::NotTrue),
    ("ConsoleSize", Rule::Empty),
];

/// Checks an exec create body for a sandbox container whose `Config.User` (as the engine
/// reports it) is `container_user`.
pub fn check_exec_create(
    policy: &Policy,
    body: &[u8],
    container_user: &str,
) -> Result<CheckedExec, Refusal> {
    let value = parse_strict(body).map_err(|e| Refusal::Json(e.to_string()))?;
    let top = as_object("the body", &value)?;
    let mut cx = Context {
        policy,
        bind_sources: Vec::new(),
    };
    check_object("", top, EXEC_CONFIG, &mut cx)?;
    let fields = Fields::new(top);
    for name in ["User", "WorkingDir", "Cmd"] {
        if fields.get(name).is_none_or(Value::is_null) {
            return Err(Refusal::field(name, "is required"));
        }
    }
    // The container's user was checked numeric and non-root when it was created; an exec
    // must run as exactly that user (a name, `0` or another uid is refused).
    let user = fields
        .get("User")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if user.is_empty() || user != container_user {
        return Err(Refusal::field(
            "User",
            format!(
                "{user:?} is not accepted: an exec runs as the sandbox's own user ({container_user:?})"
            ),
        ));
    }
    let body = serde_json::to_vec(&value).map_err(|e| Refusal::Json(e.to_string()))?;
    Ok(CheckedExec { body })
}

/// Checks an exec start body.
pub fn check_exec_start(policy: &Policy, body: &[u8]) -> Result<CheckedExecStart, Refusal> {
    let value = parse_strict(body).map_err(|e| Refusal::Json(e.to_string()))?;
    let top = as_object("the body", &value)?;
    let mut cx = Context {
        policy,
        bind_sources: Vec::new(),
    };
    check_object("", top, EXEC_START, &mut cx)?;
    let detach = Fields::new(top).get("Detach") == Some(&Value::Bool(true));
    let body = serde_json::to_vec(&value).map_err(|e| Refusal::Json(e.to_string()))?;
    Ok(CheckedExecStart { body, detach })
}

/// `true`, `false` or `null`.
fn check_bool(field: &str, v: &Value, _: &mut Context<'_>) -> Result<(), Refusal> {
    match v {
        Value::Null | Value::Bool(_) => Ok(()),
        _ => Err(Refusal::field(field, "must be true or false")),
    }
}

/// `NAME=value` (or `NAME`, which unsets it); no reserved name, no empty name, no NUL.
fn check_env(field: &str, v: &Value, _: &mut Context<'_>) -> Result<(), Refusal> {
    for entry in as_strings(field, v)? {
        let name = entry.split_once('=').map_or(entry, |(name, _)| name);
        let why = if name.is_empty() {
            Some("has an empty name".to_owned())
        } else if entry.contains('\0') {
            Some("contains NUL".to_owned())
        } else if RESERVED_ENV.contains(&name)
            || RESERVED_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
        {
            Some(format!(
                "sets or unsets {name:?}, which the sandbox sets or the loader or a shell reads"
            ))
        } else {
            None
        };
        if let Some(why) = why {
            let shown: String = name.chars().take(64).collect();
            return Err(Refusal::field(field, format!("entry {shown:?} {why}")));
        }
    }
    Ok(())
}

/// `/workspace` or a normalised absolute path below it.
fn check_working_dir(field: &str, v: &Value, _: &mut Context<'_>) -> Result<(), Refusal> {
    let dir = match v {
        Value::Null => return Ok(()),
        Value::String(s) => s.as_str(),
        _ => return Err(Refusal::field(field, "must be a string")),
    };
    check_normal_absolute(dir).map_err(|why| Refusal::field(field, format!("{dir:?} {why}")))?;
    let inside = dir == WORKSPACE
        || dir
            .strip_prefix(WORKSPACE)
            .is_some_and(|rest| rest.starts_with('/'));
    if inside {
        Ok(())
    } else {
        Err(Refusal::field(
            field,
            format!("{dir:?} is outside {WORKSPACE}: an exec runs in the workspace"),
        ))
    }
}

/// A non-empty list of strings.
fn check_cmd(field: &str, v: &Value, _: &mut Context<'_>) -> Result<(), Refusal> {
    if v.is_null() {
        return Ok(());
    }
    if as_strings(field, v)?.is_empty() {
        return Err(Refusal::field(field, "must name a program"));
    }
    Ok(())
}
