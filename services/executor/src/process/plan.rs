//! The `process` tool's requests → plans → validated plans (pure over values plus the
//! injected grant keys and clock). Every plan checks the grant first: it must list
//! `process` and give workspace read access, for the session the request names. A start
//! is checked exactly like `exec` ([`ExecPlan::validate_for`]), with the process's own
//! timeout; the other calls name a process by its id and are scoped to the grant's agent
//! and session ([`ProcessOwner`]).

use std::time::Duration;

use pincer_proto::v1::{
    ProcessKillRequest, ProcessListRequest, ProcessPollRequest, ProcessStartRequest,
    ProcessWriteRequest, TurnGrant, exec_request, process_start_request,
};

use crate::ExecutorError;
use crate::grant::{Clock, GrantKeys, Tool, WorkspaceNeed, check_grant};
use crate::plan::{AgentId, ExecPlan, ValidatedExecPlan};

/// A start's wall-clock limit when the request gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The longest wall-clock limit a process may have.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// The longest a poll waits for output.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Most bytes one write sends to a process's stdin.
pub const MAX_WRITE_BYTES: usize = 64 * 1024;

const ID_PREFIX: &str = "proc_";
const ID_LEN: usize = 12;
/// 32 characters, none easily confused (no 0/o, 1/l).
const ID_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// Why a process request is malformed (the grant aside).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessPlanError {
    /// The id is not one this executor hands out.
    #[error(
        "process_id {0:?} is malformed; use the id ProcessStart returned (\"proc_\" and 12 letters or digits)"
    )]
    BadId(String),
    /// Too much data for one write.
    #[error("data is {0} bytes; write at most {MAX_WRITE_BYTES} bytes per call")]
    TooMuchData(usize),
    /// A write with nothing to do.
    #[error("nothing to write: give data, close_stdin, or both")]
    EmptyWrite,
}

/// A process id: `proc_` and 12 characters from a CSPRNG (60 bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessId(String);

impl ProcessId {
    /// A fresh random id (from the operating system's CSPRNG, through a v4 UUID).
    pub fn random() -> Self {
        // The low 60 bits of a v4 UUID are random (version and variant bits lie above).
        let mut bits = uuid::Uuid::new_v4().as_u128();
        let mut id = String::with_capacity(ID_PREFIX.len() + ID_LEN);
        id.push_str(ID_PREFIX);
        for _ in 0..ID_LEN {
            id.push(char::from(ID_ALPHABET[(bits & 31) as usize]));
            bits >>= 5;
        }
        Self(id)
    }

    /// Checks the shape of `raw`.
    pub fn parse(raw: &str) -> Result<Self, ProcessPlanError> {
        let ok = raw.strip_prefix(ID_PREFIX).is_some_and(|rest| {
            rest.len() == ID_LEN && rest.bytes().all(|b| ID_ALPHABET.contains(&b))
        });
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ProcessPlanError::BadId(raw.chars().take(64).collect()))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProcessId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who may see a process: the agent and session of a verified grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOwner {
    /// The grant's agent.
    pub agent: AgentId,
    /// The grant's session.
    pub session_key: String,
}

fn owner(
    grant: Option<&TurnGrant>,
    session_key: &str,
    keys: &dyn GrantKeys,
    clock: &dyn Clock,
) -> Result<ProcessOwner, ExecutorError> {
    let grant = check_grant(
        grant,
        session_key,
        Tool::Process,
        WorkspaceNeed::Read,
        keys,
        clock,
    )?;
    Ok(ProcessOwner {
        agent: AgentId::parse(&grant.agent_id)?,
        session_key: grant.session_key,
    })
}

/// A start, as an exec plan with the process's own timeout.
#[derive(Debug, Clone)]
pub struct ProcessStartPlan(ExecPlan);

impl From<ProcessStartRequest> for ProcessStartPlan {
    fn from(req: ProcessStartRequest) -> Self {
        let command = req.command.map(|c| match c {
            process_start_request::Command::Argv(argv) => exec_request::Command::Argv(argv),
            process_start_request::Command::Shell(line) => exec_request::Command::Shell(line),
        });
        Self(ExecPlan::from(pincer_proto::v1::ExecRequest {
            grant: req.grant,
            session_key: req.session_key,
            command,
            cwd: req.cwd,
            timeout_ms: req.timeout_ms,
            env: req.env,
        }))
    }
}

impl ProcessStartPlan {
    /// Checks the start like an exec call (grant for `process`, command, cwd, env); the
    /// timeout is the request's (0: [`DEFAULT_TIMEOUT`]), at most [`MAX_TIMEOUT`].
    pub fn validate(
        self,
        keys: &dyn GrantKeys,
        clock: &dyn Clock,
    ) -> Result<ValidatedProcessStart, ExecutorError> {
        let timeout = match self.0.timeout_ms {
            0 => DEFAULT_TIMEOUT,
            ms => Duration::from_millis(u64::from(ms)).min(MAX_TIMEOUT),
        };
        let session_key = self.0.session_key.clone();
        let exec = self.0.validate_for(Tool::Process, timeout, keys, clock)?;
        Ok(ValidatedProcessStart { exec, session_key })
    }
}

/// A start that passed every check; the exec approval gate judges [`Self::exec`].
#[derive(Debug, Clone)]
pub struct ValidatedProcessStart {
    exec: ValidatedExecPlan,
    session_key: String,
}

impl ValidatedProcessStart {
    /// The command as an exec call.
    pub fn exec(&self) -> &ValidatedExecPlan {
        &self.exec
    }

    /// The session (verified to be the grant's).
    pub fn session_key(&self) -> &str {
        &self.session_key
    }

    /// The exec call and the session.
    pub fn into_parts(self) -> (ValidatedExecPlan, String) {
        (self.exec, self.session_key)
    }
}

/// A checked poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedProcessPoll {
    /// Whose.
    pub owner: ProcessOwner,
    /// Which.
    pub id: ProcessId,
    /// How long to wait for output (at most [`MAX_WAIT`]).
    pub wait: Duration,
}

/// A checked write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedProcessWrite {
    /// Whose.
    pub owner: ProcessOwner,
    /// Which.
    pub id: ProcessId,
    /// At most [`MAX_WRITE_BYTES`].
    pub data: Vec<u8>,
    /// Close stdin afterwards.
    pub close_stdin: bool,
}

/// A checked kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedProcessKill {
    /// Whose.
    pub owner: ProcessOwner,
    /// Which.
    pub id: ProcessId,
}

/// Checks a poll: grant, id; the wait is capped at [`MAX_WAIT`].
pub fn validate_poll(
    req: ProcessPollRequest,
    keys: &dyn GrantKeys,
    clock: &dyn Clock,
) -> Result<ValidatedProcessPoll, ExecutorError> {
    let owner = owner(req.grant.as_ref(), &req.session_key, keys, clock)?;
    Ok(ValidatedProcessPoll {
        owner,
        id: ProcessId::parse(&req.process_id)?,
        wait: Duration::from_millis(u64::from(req.wait_ms)).min(MAX_WAIT),
    })
}

/// Checks a write: grant, id, at most [`MAX_WRITE_BYTES`], something to do.
pub fn validate_write(
    req: ProcessWriteRequest,
    keys: &dyn GrantKeys,
    clock: &dyn Clock,
) -> Result<ValidatedProcessWrite, ExecutorError> {
    let owner = owner(req.grant.as_ref(), &req.session_key, keys, clock)?;
    let id = ProcessId::parse(&req.process_id)?;
    if req.data.len() > MAX_WRITE_BYTES {
        return Err(ProcessPlanError::TooMuchData(req.data.len()).into());
    }
    if req.data.is_empty() && !req.close_stdin {
        return Err(ProcessPlanError::EmptyWrite.into());
    }
    Ok(ValidatedProcessWrite {
        owner,
        id,
        data: req.data,
        close_stdin: req.close_stdin,
    })
}

/// Checks a kill: grant, id.
pub fn validate_kill(
    req: ProcessKillRequest,
    keys: &dyn GrantKeys,
    clock: &dyn Clock,
) -> Result<ValidatedProcessKill, ExecutorError> {
    let owner = owner(req.grant.as_ref(), &req.session_key, keys, clock)?;
    Ok(ValidatedProcessKill {
        owner,
        id: ProcessId::parse(&req.process_id)?,
    })
}

/// Checks a list: the grant; the answer is scoped to its agent and session.
pub fn validate_list(
    req: ProcessListRequest,
    keys: &dyn GrantKeys,
    clock: &dyn Clock,
) -> Result<ProcessOwner, ExecutorError> {
    owner(req.grant.as_ref(), &req.session_key, keys, clock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{FixedClock, testing};
    use crate::plan::Command;
    use pincer_proto::v1::Argv;

    const NOW: i64 = 1_000_000;

    fn grant(tools: &[&str], session: &str) -> Option<TurnGrant> {
        Some(testing::grant(tools, session, "main", NOW + 60_000))
    }

    fn start(tools: &[&str], timeout_ms: u32) -> Result<ValidatedProcessStart, ExecutorError> {
        ProcessStartPlan::from(ProcessStartRequest {
            grant: grant(tools, "s1"),
            session_key: "s1".into(),
            command: Some(process_start_request::Command::Shell("sleep 5".into())),
            timeout_ms,
            ..Default::default()
        })
        .validate(&testing::keys(), &FixedClock(NOW))
    }

    #[test]
    fn ids_are_random_and_checked() {
        let a = ProcessId::random();
        let b = ProcessId::random();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(ProcessId::parse(id.as_str()).as_ref(), Ok(id));
            assert_eq!(id.as_str().len(), 17);
        }
        for bad in [
            "",
            "proc_",
            "proc_abc",
            "proc_abcdefghijk0",
            "PROC_abcdefghijkm",
            "proc_abcdefghijkmn",
            "proc_../../../etc",
        ] {
            assert!(ProcessId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_start_needs_the_process_tool_and_gets_its_timeout() {
        let p = start(&["process"], 0).unwrap();
        assert_eq!(p.exec().timeout(), DEFAULT_TIMEOUT);
        assert_eq!(p.exec().command(), &Command::Shell("sleep 5".into()));
        assert_eq!(p.session_key(), "s1");
        assert_eq!(
            start(&["process"], 5_000).unwrap().exec().timeout(),
            Duration::from_secs(5)
        );
        assert_eq!(
            start(&["process"], u32::MAX).unwrap().exec().timeout(),
            MAX_TIMEOUT
        );
        let refused = start(&["exec"], 0).unwrap_err();
        assert!(refused.to_string().contains("\"process\""), "{refused}");
        let argv = ProcessStartPlan::from(ProcessStartRequest {
            grant: grant(&["process"], "s1"),
            session_key: "s1".into(),
            command: Some(process_start_request::Command::Argv(Argv {
                args: vec!["cat".into()],
            })),
            ..Default::default()
        })
        .validate(&testing::keys(), &FixedClock(NOW))
        .unwrap();
        assert_eq!(argv.exec().argv(), ["cat"]);
    }

    #[test]
    fn other_calls_are_scoped_to_the_grant() {
        let keys = testing::keys();
        let clock = FixedClock(NOW);
        let id = ProcessId::random();
        let poll = validate_poll(
            ProcessPollRequest {
                grant: grant(&["process"], "s1"),
                session_key: "s1".into(),
                process_id: id.to_string(),
                wait_ms: 999_999,
            },
            &keys,
            &clock,
        )
        .unwrap();
        assert_eq!(poll.wait, MAX_WAIT);
        assert_eq!(poll.owner.session_key, "s1");
        assert_eq!(poll.owner.agent.as_str(), "main");
        // The session must be the grant's.
        assert!(
            validate_kill(
                ProcessKillRequest {
                    grant: grant(&["process"], "s1"),
                    session_key: "s2".into(),
                    process_id: id.to_string(),
                },
                &keys,
                &clock,
            )
            .is_err()
        );
        let write = |data: Vec<u8>, close_stdin| {
            validate_write(
                ProcessWriteRequest {
                    grant: grant(&["process"], "s1"),
                    session_key: "s1".into(),
                    process_id: id.to_string(),
                    data,
                    close_stdin,
                },
                &keys,
                &clock,
            )
        };
        assert!(write(b"hi".to_vec(), false).is_ok());
        assert!(write(Vec::new(), true).is_ok());
        assert!(write(Vec::new(), false).is_err());
        assert!(write(vec![0; MAX_WRITE_BYTES + 1], false).is_err());
        // Grant problems come first.
        let e = validate_list(
            ProcessListRequest {
                grant: grant(&["exec"], "s1"),
                session_key: "s1".into(),
            },
            &keys,
            &clock,
        )
        .unwrap_err();
        assert!(matches!(e, ExecutorError::Grant(_)), "{e}");
    }
}
