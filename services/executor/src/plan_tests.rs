//! Unit tests for [`super::ExecPlan::validate`].

use std::time::Duration;

use pincer_proto::v1::{Argv, ExecRequest, TurnGrant, exec_request};

use super::*;
use crate::ExecutorError;
use crate::grant::{FixedClock, GrantError, testing};

const NOW: i64 = 1_000_000;
const LIMITS: ExecLimits = ExecLimits {
    max_timeout: Duration::from_secs(30),
};

fn grant(tools: &[&str]) -> TurnGrant {
    testing::grant(tools, "telegram:dm:1", "main", NOW + 60_000)
}

fn shell(line: &str) -> ExecRequest {
    ExecRequest {
        grant: Some(grant(&["exec"])),
        session_key: "telegram:dm:1".into(),
        command: Some(exec_request::Command::Shell(line.into())),
        cwd: String::new(),
        timeout_ms: 0,
        env: Default::default(),
    }
}

fn argv(args: &[&str]) -> ExecRequest {
    ExecRequest {
        command: Some(exec_request::Command::Argv(Argv {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        })),
        ..shell("x")
    }
}

fn validate(req: ExecRequest) -> Result<ValidatedExecPlan, ExecutorError> {
    ExecPlan::from(req).validate(LIMITS, &testing::keys(), &FixedClock(NOW))
}

fn plan_error(req: ExecRequest) -> PlanError {
    match validate(req) {
        Err(ExecutorError::Plan(e)) => e,
        other => panic!("expected a plan error, got {other:?}"),
    }
}

fn grant_error(req: ExecRequest) -> GrantError {
    match validate(req) {
        Err(ExecutorError::Grant(e)) => e,
        other => panic!("expected a grant error, got {other:?}"),
    }
}

#[test]
fn shell_line_runs_under_sh() {
    let plan = validate(shell("echo hi")).unwrap();
    assert_eq!(plan.argv(), ["/bin/sh", "-c", "echo hi"]);
    assert_eq!(plan.agent_id().as_str(), "main");
    assert_eq!(plan.turn_id(), "turn-1");
    assert_eq!(plan.timeout(), Duration::from_secs(30));
}

#[test]
fn argv_runs_directly() {
    let plan = validate(argv(&["ls", "-la"])).unwrap();
    assert_eq!(plan.argv(), ["ls", "-la"]);
}

#[test]
fn grant_problems_are_grant_errors() {
    let mut req = shell("true");
    req.grant = None;
    assert_eq!(grant_error(req), GrantError::Missing);

    let mut req = shell("true");
    req.grant = Some(grant(&["web_fetch"]));
    assert_eq!(
        grant_error(req),
        GrantError::ToolNotAllowed { tool: "exec" }
    );

    let mut req = shell("true");
    req.grant = Some(testing::grant(&["exec"], "telegram:dm:1", "main", NOW - 1));
    assert!(matches!(grant_error(req), GrantError::Expired { .. }));
}

#[test]
fn grant_is_checked_before_the_command() {
    let mut req = argv(&[]);
    req.grant = None;
    assert_eq!(grant_error(req), GrantError::Missing);
}

#[test]
fn bad_agent_ids_are_refused() {
    for id in ["", "Main", "../x", "a/b", "a.b", &"a".repeat(65), "main\0"] {
        let mut req = shell("true");
        req.grant = Some(testing::grant(&["exec"], "telegram:dm:1", id, NOW + 60_000));
        assert!(
            matches!(plan_error(req), PlanError::BadAgentId(_)),
            "{id:?}"
        );
    }
    assert!(AgentId::parse(&"a".repeat(64)).is_ok());
    assert!(AgentId::parse("agent_1-x").is_ok());
}

#[test]
fn commands_are_checked() {
    let mut missing = shell("x");
    missing.command = None;
    assert_eq!(plan_error(missing), PlanError::MissingCommand);
    assert_eq!(plan_error(argv(&[])), PlanError::EmptyCommand);
    assert_eq!(plan_error(argv(&["", "x"])), PlanError::EmptyCommand);
    assert_eq!(plan_error(shell("  \n")), PlanError::EmptyCommand);
    assert_eq!(plan_error(shell("echo a\0b")), PlanError::NulByte);
    assert_eq!(plan_error(argv(&["echo", "a\0"])), PlanError::NulByte);

    let many: Vec<&str> = std::iter::repeat_n("x", MAX_ARGS + 1).collect();
    assert_eq!(
        plan_error(argv(&many)),
        PlanError::TooManyArgs(MAX_ARGS + 1)
    );
    let exactly: Vec<&str> = std::iter::repeat_n("x", MAX_ARGS).collect();
    assert!(validate(argv(&exactly)).is_ok());

    let big = "y".repeat(MAX_COMMAND_BYTES);
    assert!(matches!(
        plan_error(argv(&["echo", &big])),
        PlanError::TooLarge(_)
    ));
    // The shell line counts with its "/bin/sh -c" prefix.
    assert!(matches!(plan_error(shell(&big)), PlanError::TooLarge(_)));
    assert!(validate(shell(&"y".repeat(MAX_COMMAND_BYTES - 10))).is_ok());
}

#[test]
fn cwd_is_normalised_or_refused() {
    let mut req = shell("pwd");
    req.cwd = "./src/../notes/".into();
    assert_eq!(validate(req).unwrap().cwd().to_string(), "notes");
    for bad in ["/etc", "..", "a/../../b", "a\0"] {
        let mut req = shell("pwd");
        req.cwd = bad.into();
        assert!(matches!(plan_error(req), PlanError::Cwd(_)), "{bad:?}");
    }
}

#[test]
fn timeout_is_capped() {
    let with = |ms: u32, max: u64| {
        let mut req = shell("true");
        req.timeout_ms = ms;
        ExecPlan::from(req)
            .validate(
                ExecLimits {
                    max_timeout: Duration::from_secs(max),
                },
                &testing::keys(),
                &FixedClock(NOW),
            )
            .unwrap()
            .timeout()
    };
    assert_eq!(with(0, 30), Duration::from_secs(30));
    assert_eq!(with(1_500, 30), Duration::from_millis(1_500));
    assert_eq!(with(60_000, 30), Duration::from_secs(30));
    assert_eq!(with(u32::MAX, 3_600), MAX_TIMEOUT);
    assert_eq!(with(0, 3_600), MAX_TIMEOUT);
}

#[test]
fn env_is_checked() {
    let with = |name: &str, value: &str| {
        let mut req = shell("env");
        req.env.insert(name.into(), value.into());
        req
    };
    let plan = validate(with("GREETING", "hello")).unwrap();
    assert_eq!(
        plan.env().get("GREETING").map(String::as_str),
        Some("hello")
    );
    for name in [
        "PATH",
        "HOME",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "BASH_ENV",
        "IFS",
        "BASH_FUNC_x",
    ] {
        assert!(
            matches!(plan_error(with(name, "x")), PlanError::Env { .. }),
            "{name} must be refused"
        );
    }
    for name in ["", "1X", "A-B", "A=B", "A B"] {
        assert!(
            matches!(plan_error(with(name, "x")), PlanError::Env { .. }),
            "{name:?}"
        );
    }
    assert!(matches!(
        plan_error(with("A", "x\0y")),
        PlanError::Env { .. }
    ));
    assert!(matches!(
        plan_error(with("A", &"x".repeat(MAX_ENV_VALUE_BYTES + 1))),
        PlanError::Env { .. }
    ));
    let mut many = shell("env");
    for i in 0..=MAX_ENV_VARS {
        many.env.insert(format!("V{i}"), "x".into());
    }
    assert_eq!(plan_error(many), PlanError::TooManyEnv(MAX_ENV_VARS + 1));
}
