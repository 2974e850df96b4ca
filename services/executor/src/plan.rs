//! Parse, don't validate: a wire [`ExecRequest`] becomes an [`ExecPlan`] (our own types,
//! no checks yet), then [`ExecPlan::validate`] turns it into a [`ValidatedExecPlan`], the
//! only thing a sandbox backend accepts. Pure over values plus an injected clock.
//!
//! Checked here: the grant (see [`crate::grant`]), the agent id (it names a directory), the
//! command (present, non-empty, no NUL bytes, ≤ [`MAX_ARGS`] arguments and
//! ≤ [`MAX_COMMAND_BYTES`] in total), the cwd (see [`crate::cwd`]) and the timeout (the
//! request's when > 0, capped by the configured maximum and by [`MAX_TIMEOUT`]).

use std::collections::BTreeMap;
use std::time::Duration;

use pincer_proto::v1::{ExecRequest, TurnGrant, exec_request};

use crate::approval::policy::ExecPolicy;
use crate::cwd::{CwdError, RelativeCwd};
use crate::grant::{Access, Clock, GrantKeys, Tool, WorkspaceNeed, check_grant};

/// Most arguments in an argv.
pub const MAX_ARGS: usize = 256;
/// Most bytes in a command (all arguments, or the shell line).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// The hard ceiling on a call's wall-clock limit, whatever the config says.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest agent id.
pub const MAX_AGENT_ID_LEN: usize = 64;
/// Most extra environment variables.
pub const MAX_ENV_VARS: usize = 32;
/// Most bytes of one environment value.
pub const MAX_ENV_VALUE_BYTES: usize = 4096;
/// Environment names a caller may not set: the sandbox's own (`PATH`, `HOME`, `LANG`,
/// `TMPDIR`, the proxy variables of network egress), and names that make the dynamic
/// loader or a shell run other code.
pub const RESERVED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
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
/// Environment name prefixes a caller may not set (loader variables).
pub const RESERVED_ENV_PREFIXES: [&str; 3] = ["LD_", "DYLD_", "BASH_FUNC_"];

/// Why a request is malformed (the grant aside).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Neither argv nor a shell line.
    #[error("no command: set argv or shell")]
    MissingCommand,
    /// An empty argv, an empty program or a blank shell line.
    #[error("the command is empty")]
    EmptyCommand,
    /// A NUL byte in the command.
    #[error("the command contains a NUL byte")]
    NulByte,
    /// Too many arguments.
    #[error("argv has {0} arguments; the limit is {MAX_ARGS}")]
    TooManyArgs(usize),
    /// The command is too large.
    #[error("the command is {0} bytes; the limit is {MAX_COMMAND_BYTES}")]
    TooLarge(usize),
    /// The cwd is unusable.
    #[error(transparent)]
    Cwd(#[from] CwdError),
    /// The grant's agent id cannot name a workspace.
    #[error("agent id {0:?} is invalid; use 1 to 64 of a-z, 0-9, '_' and '-'")]
    BadAgentId(String),
    /// An environment variable is unusable.
    #[error("environment variable {name:?}: {problem}")]
    Env {
        /// Its name (shortened).
        name: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Too many environment variables.
    #[error("{0} environment variables; the limit is {MAX_ENV_VARS}")]
    TooManyEnv(usize),
}

/// An agent id that is safe as a directory name: `[a-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentId(String);

impl AgentId {
    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<Self, PlanError> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_AGENT_ID_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(PlanError::BadAgentId(raw.to_owned()))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What to run, as the caller sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A program and its arguments, no shell.
    Argv(Vec<String>),
    /// A line for `/bin/sh -c`.
    Shell(String),
}

/// A request in our own types, not yet checked.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    /// The turn grant, if any.
    pub grant: Option<TurnGrant>,
    /// The session the call names.
    pub session_key: String,
    /// The command, if any.
    pub command: Option<Command>,
    /// The raw cwd.
    pub cwd: String,
    /// The requested limit in ms (0 = default).
    pub timeout_ms: u32,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
}

impl From<ExecRequest> for ExecPlan {
    fn from(req: ExecRequest) -> Self {
        let command = req.command.map(|c| match c {
            exec_request::Command::Argv(argv) => Command::Argv(argv.args),
            exec_request::Command::Shell(line) => Command::Shell(line),
        });
        Self {
            grant: req.grant,
            session_key: req.session_key,
            command,
            cwd: req.cwd,
            timeout_ms: req.timeout_ms,
            env: req.env.into_iter().collect(),
        }
    }
}

/// The limits validation applies, from `tools.exec`.
#[derive(Debug, Clone, Copy)]
pub struct ExecLimits {
    /// Default and maximum wall-clock limit (itself capped by [`MAX_TIMEOUT`]).
    pub max_timeout: Duration,
}

/// A call that passed every check. Only [`ExecPlan::validate`] makes one.
#[derive(Debug, Clone)]
pub struct ValidatedExecPlan {
    agent_id: AgentId,
    turn_id: String,
    session_key: String,
    tool: Tool,
    grant: Option<TurnGrant>,
    command: Command,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: RelativeCwd,
    timeout: Duration,
    read_only: bool,
    egress: bool,
    session_scope: bool,
    policy: ExecPolicy,
}

impl ValidatedExecPlan {
    /// The agent whose workspace is used.
    pub fn agent_id(&self) -> &AgentId {
        &self.agent_id
    }
    /// The turn, for logs.
    pub fn turn_id(&self) -> &str {
        &self.turn_id
    }
    /// The session the checked grant names; empty for the executor's own calls.
    pub fn session_key(&self) -> &str {
        &self.session_key
    }
    /// The process to start: the argv, or `["/bin/sh", "-c", line]`.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }
    /// The working directory relative to the workspace.
    pub fn cwd(&self) -> &RelativeCwd {
        &self.cwd
    }
    /// The wall-clock limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// Whether the command may reach the web through the guarded proxy (the grant's
    /// `sandbox.network`).
    pub fn egress(&self) -> bool {
        self.egress
    }

    /// Whether the call may run in its session's sandbox where the backend keeps one (the
    /// grant's `sandbox.scope`); otherwise it gets a throwaway one.
    pub fn session_scope(&self) -> bool {
        self.session_scope
    }

    /// Whether the workspace is mounted read-only (the grant's `workspace_access`).
    pub fn workspace_read_only(&self) -> bool {
        self.read_only
    }
    /// The caller's extra environment variables (checked; never the sandbox's own).
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }
    /// The command as the caller sent it (what approvals judge).
    pub fn command(&self) -> &Command {
        &self.command
    }
    /// The tool the call came through (`exec`, or `process` for a background start).
    pub fn tool(&self) -> Tool {
        self.tool
    }
    /// The exec policy the grant carries.
    pub fn policy(&self) -> &ExecPolicy {
        &self.policy
    }
    /// The verified grant, as received (forwarded to the gateway with approval requests).
    pub fn grant(&self) -> Option<&TurnGrant> {
        self.grant.as_ref()
    }

    /// The same call running `argv` instead: after approval, the resolved executables
    /// replace the names that were judged.
    pub(crate) fn with_argv(self, argv: Vec<String>) -> Self {
        Self { argv, ..self }
    }

    /// A call the executor itself makes (e.g. listing the sandbox's PATH for approvals):
    /// read-only workspace, no grant, no extra environment, no network.
    pub(crate) fn internal(agent_id: AgentId, argv: Vec<String>, timeout: Duration) -> Self {
        Self {
            agent_id,
            turn_id: "internal".to_owned(),
            session_key: String::new(),
            tool: Tool::Exec,
            grant: None,
            command: Command::Argv(argv.clone()),
            argv,
            env: BTreeMap::new(),
            cwd: RelativeCwd::default(),
            timeout,
            read_only: true,
            egress: false,
            session_scope: false,
            policy: crate::grant::exec_policy_of(None),
        }
    }
}

impl ExecPlan {
    /// Checks the plan. Grant problems come first so an unauthorised caller learns nothing
    /// about what else is wrong with its request.
    pub fn validate(
        self,
        limits: ExecLimits,
        keys: &dyn GrantKeys,
        clock: &dyn Clock,
    ) -> Result<ValidatedExecPlan, crate::ExecutorError> {
        let max = limits.max_timeout.min(MAX_TIMEOUT);
        let timeout = match self.timeout_ms {
            0 => max,
            ms => Duration::from_millis(u64::from(ms)).min(max),
        };
        self.validate_for(Tool::Exec, timeout, keys, clock)
    }

    /// [`Self::validate`] for another tool that runs a command (`process` starts), with
    /// the wall-clock limit that tool decided. Grant problems come first.
    pub(crate) fn validate_for(
        self,
        tool: Tool,
        timeout: Duration,
        keys: &dyn GrantKeys,
        clock: &dyn Clock,
    ) -> Result<ValidatedExecPlan, crate::ExecutorError> {
        let grant = check_grant(
            self.grant.as_ref(),
            &self.session_key,
            tool,
            WorkspaceNeed::Read,
            keys,
            clock,
        )?;
        let agent_id = AgentId::parse(&grant.agent_id)?;
        let command = self.command.ok_or(PlanError::MissingCommand)?;
        let argv = command_argv(command.clone())?;
        check_env(&self.env)?;
        let cwd = RelativeCwd::parse(&self.cwd).map_err(PlanError::from)?;
        Ok(ValidatedExecPlan {
            agent_id,
            turn_id: grant.turn_id,
            session_key: grant.session_key,
            tool,
            grant: self.grant,
            command,
            argv,
            env: self.env,
            cwd,
            timeout,
            read_only: grant.access == Access::ReadOnly,
            egress: grant.sandbox_egress,
            session_scope: grant.sandbox_session,
            policy: grant.exec_policy,
        })
    }
}

fn check_env(env: &BTreeMap<String, String>) -> Result<(), PlanError> {
    if env.len() > MAX_ENV_VARS {
        return Err(PlanError::TooManyEnv(env.len()));
    }
    for (name, value) in env {
        let bad = |problem| {
            Err(PlanError::Env {
                name: name.chars().take(64).collect(),
                problem,
            })
        };
        let plain = name.len() <= 128
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain {
            return bad("names are 1 to 128 of A-Z, a-z, 0-9 and '_', not starting with a digit");
        }
        if RESERVED_ENV.contains(&name.as_str())
            || RESERVED_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
        {
            return bad("set by the sandbox or read by the loader or shell; it cannot be set");
        }
        if value.contains('\0') {
            return bad("the value contains a NUL byte");
        }
        if value.len() > MAX_ENV_VALUE_BYTES {
            return bad("the value is longer than 4096 bytes");
        }
    }
    Ok(())
}

fn command_argv(command: Command) -> Result<Vec<String>, PlanError> {
    let argv = match command {
        Command::Argv(args) => {
            if args.len() > MAX_ARGS {
                return Err(PlanError::TooManyArgs(args.len()));
            }
            if args.first().is_none_or(String::is_empty) {
                return Err(PlanError::EmptyCommand);
            }
            args
        }
        Command::Shell(line) => {
            if line.trim().is_empty() {
                return Err(PlanError::EmptyCommand);
            }
            vec!["/bin/sh".to_owned(), "-c".to_owned(), line]
        }
    };
    let total: usize = argv.iter().map(String::len).sum();
    if total > MAX_COMMAND_BYTES {
        return Err(PlanError::TooLarge(total));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(PlanError::NulByte);
    }
    Ok(argv)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
