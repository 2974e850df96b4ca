use std::path::PathBuf;
use std::sync::Mutex as StdMutex;

use pincer_proto::v1::{
    ExecAsk, ExecPolicy as WirePolicy, ExecRequest, ExecSecurity, GrantClaims, NetworkAccess,
    WorkspaceAccess, exec_request,
};

use super::*;
use crate::ExecutorError;
use crate::grant::{FixedClock, sign_claims, testing};
use crate::plan::{ExecLimits, ExecPlan};
use crate::sandbox::ExecOutcome;

const NOW: i64 = 1_000_000;
const LISTING: &str =
    "/workspace\n/usr/bin/ls\n/usr/bin/rm\n/usr/bin/wc\n/bin/ls\n/usr/local/bin/rm\n/usr/bin/env\n";

/// Answers the probe with [`LISTING`]; counts probes.
struct FakeSandbox {
    probes: StdMutex<u32>,
}

impl Sandbox for FakeSandbox {
    async fn run(
        &self,
        plan: ValidatedExecPlan,
        _workspace: PreparedWorkspace,
    ) -> Result<ExecOutcome, ExecutorError> {
        assert!(plan.workspace_read_only(), "the probe never writes");
        *self.probes.lock().unwrap() += 1;
        Ok(ExecOutcome {
            exit_code: 0,
            stdout: LISTING.as_bytes().to_vec(),
            stderr: Vec::new(),
            timed_out: false,
            output_truncated: false,
            duration: Duration::ZERO,
        })
    }
}

/// Records requests; answers with a fixed outcome (or a transport error).
struct FakeLink {
    answer: Result<ApprovalOutcome, String>,
    seen: StdMutex<Vec<ApprovalRequest>>,
}

impl ApprovalLink for FakeLink {
    fn request(
        &self,
        request: ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = Result<ApprovalAnswer, String>> + Send + '_>> {
        self.seen.lock().unwrap().push(request);
        let answer = self.answer.clone().map(|o| ApprovalAnswer {
            outcome: o.into(),
            approval_id: "apr_abcdefghij".into(),
        });
        Box::pin(async move { answer })
    }
}

fn wire_policy(security: ExecSecurity, ask: ExecAsk, fallback: ExecSecurity) -> WirePolicy {
    WirePolicy {
        security: security.into(),
        ask: ask.into(),
        ask_fallback: fallback.into(),
        allowlist: vec!["/usr/bin/ls".into()],
        safe_bins: true,
    }
}

fn plan_with(
    policy: WirePolicy,
    command: exec_request::Command,
    env: &[(&str, &str)],
) -> ValidatedExecPlan {
    let grant = sign_claims(
        &testing::gateway_key(),
        &GrantClaims {
            turn_id: "t".into(),
            session_key: "s".into(),
            agent_id: "main".into(),
            allowed_tools: vec!["exec".into()],
            expires_at_ms: NOW + 60_000,
            workspace_access: WorkspaceAccess::ReadWrite.into(),
            network: NetworkAccess::None.into(),
            exec_policy: Some(policy),
            sandbox: None,
        },
    );
    ExecPlan::from(ExecRequest {
        grant: Some(grant),
        session_key: "s".into(),
        command: Some(command),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    })
    .validate(
        ExecLimits {
            max_timeout: Duration::from_secs(5),
        },
        &testing::keys(),
        &FixedClock(NOW),
    )
    .unwrap()
}

fn shell(line: &str) -> exec_request::Command {
    exec_request::Command::Shell(line.into())
}

fn workspace() -> PreparedWorkspace {
    PreparedWorkspace {
        agent_id: AgentId::parse("main").unwrap(),
        agent_dir: PathBuf::from("/nonexistent"),
    }
}

fn gate(answer: Result<ApprovalOutcome, String>) -> (ExecGate<FakeSandbox>, Arc<FakeLink>) {
    let link = Arc::new(FakeLink {
        answer,
        seen: StdMutex::new(Vec::new()),
    });
    let gate = ExecGate::new(
        Arc::new(FakeSandbox {
            probes: StdMutex::new(0),
        }),
        Some(Arc::clone(&link) as Arc<dyn ApprovalLink>),
    );
    (gate, link)
}

#[test]
fn the_index_follows_path_order() {
    let index = PathIndex::parse(LISTING).unwrap();
    let cwd = RelativeCwd::parse("sub").unwrap();
    let r = index.resolver(&cwd);
    assert_eq!(r.resolve("ls").as_deref(), Some("/usr/bin/ls"));
    assert_eq!(
        r.resolve("rm").as_deref(),
        Some("/usr/local/bin/rm"),
        "/usr/local/bin first"
    );
    assert_eq!(r.resolve("nope"), None);
    assert_eq!(r.resolve("./x").as_deref(), Some("/workspace/sub/x"));
    assert_eq!(r.resolve("../../etc/x").as_deref(), Some("/etc/x"));
    assert_eq!(
        r.resolve("/usr/bin/../bin/ls").as_deref(),
        Some("/usr/bin/ls")
    );
    assert_eq!(PathIndex::parse("relative\n"), None);
}

#[tokio::test]
async fn full_without_ask_runs_as_sent_without_probing() {
    let (gate, link) = gate(Ok(ApprovalOutcome::Denied));
    let plan = plan_with(
        wire_policy(ExecSecurity::Full, ExecAsk::Off, ExecSecurity::Deny),
        shell("echo $HOME > x"),
        &[],
    );
    let admitted = gate.admit(plan, &workspace()).await.unwrap();
    assert_eq!(admitted.argv(), ["/bin/sh", "-c", "echo $HOME > x"]);
    assert_eq!(*gate.backend.probes.lock().unwrap(), 0);
    assert!(link.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn deny_refuses_everything() {
    let (gate, _) = gate(Ok(ApprovalOutcome::AllowedAlways));
    let plan = plan_with(
        wire_policy(ExecSecurity::Deny, ExecAsk::Always, ExecSecurity::Full),
        shell("ls"),
        &[],
    );
    assert!(matches!(
        gate.admit(plan, &workspace()).await,
        Err(GateError::Denied(_))
    ));
}

#[tokio::test]
async fn allowlisted_chains_run_with_resolved_paths() {
    let (gate, link) = gate(Ok(ApprovalOutcome::Denied));
    let plan = plan_with(
        wire_policy(ExecSecurity::Allowlist, ExecAsk::Off, ExecSecurity::Deny),
        shell("ls -la 'my dir' | wc -l"),
        &[],
    );
    let admitted = gate.admit(plan, &workspace()).await.unwrap();
    assert_eq!(
        admitted.argv(),
        [
            "/bin/sh",
            "-c",
            "'/usr/bin/ls' '-la' 'my dir' | '/usr/bin/wc' '-l'"
        ]
    );
    assert!(link.seen.lock().unwrap().is_empty());
    // The listing is reused.
    let again = plan_with(
        wire_policy(ExecSecurity::Allowlist, ExecAsk::Off, ExecSecurity::Deny),
        exec_request::Command::Argv(pincer_proto::v1::Argv {
            args: vec!["ls".into(), "x".into()],
        }),
        &[],
    );
    let admitted = gate.admit(again, &workspace()).await.unwrap();
    assert_eq!(admitted.argv(), ["/usr/bin/ls", "x"]);
    assert_eq!(*gate.backend.probes.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_miss_without_ask_is_denied() {
    let (gate, link) = gate(Ok(ApprovalOutcome::AllowedOnce));
    for line in ["ls; rm -rf x", "ls $(rm x)", "ls > out", "rm x"] {
        let plan = plan_with(
            wire_policy(ExecSecurity::Allowlist, ExecAsk::Off, ExecSecurity::Deny),
            shell(line),
            &[],
        );
        assert!(
            matches!(
                gate.admit(plan, &workspace()).await,
                Err(GateError::Denied(_))
            ),
            "{line}"
        );
    }
    assert!(link.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn extra_environment_is_a_miss_under_allowlist() {
    let (gate, link) = gate(Ok(ApprovalOutcome::AllowedOnce));
    let plan = plan_with(
        wire_policy(ExecSecurity::Allowlist, ExecAsk::Off, ExecSecurity::Deny),
        shell("ls"),
        &[("GIT_SSH_COMMAND", "rm -rf /")],
    );
    assert!(matches!(
        gate.admit(plan, &workspace()).await,
        Err(GateError::Denied(_))
    ));
    let plan = plan_with(
        wire_policy(ExecSecurity::Allowlist, ExecAsk::OnMiss, ExecSecurity::Deny),
        shell("ls"),
        &[("A", "1")],
    );
    gate.admit(plan, &workspace()).await.unwrap();
    let seen = link.seen.lock().unwrap();
    let binding = seen[0].binding.as_ref().unwrap();
    assert_eq!(binding.env.get("A").map(String::as_str), Some("1"));
}

#[tokio::test]
async fn the_owner_is_asked_with_the_exact_binding() {
    let (gate, link) = gate(Ok(ApprovalOutcome::AllowedOnce));
    let plan = plan_with(
        wire_policy(ExecSecurity::Allowlist, ExecAsk::OnMiss, ExecSecurity::Deny),
        shell("ls && rm -rf build"),
        &[],
    );
    let admitted = gate.admit(plan.clone(), &workspace()).await.unwrap();
    assert_eq!(
        admitted.argv(),
        [
            "/bin/sh",
            "-c",
            "'/usr/bin/ls' && '/usr/local/bin/rm' '-rf' 'build'"
        ]
    );
    let seen = link.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(
        req.grant.as_ref(),
        plan.grant(),
        "the turn's grant goes along"
    );
    let b = req.binding.as_ref().unwrap();
    assert_eq!(
        b.command,
        Some(exec_binding::Command::Shell("ls && rm -rf build".into()))
    );
    assert_eq!(b.executables, ["/usr/bin/ls", "/usr/local/bin/rm"]);
    assert!(req.reason.contains("/usr/local/bin/rm"), "{}", req.reason);
}

#[tokio::test]
async fn the_owners_no_and_silence_refuse_unless_the_fallback_allows() {
    let on_miss = |fallback| wire_policy(ExecSecurity::Allowlist, ExecAsk::OnMiss, fallback);
    let (gate_no, _) = gate(Ok(ApprovalOutcome::Denied));
    let plan = plan_with(on_miss(ExecSecurity::Full), shell("rm x"), &[]);
    assert_eq!(
        gate_no.admit(plan, &workspace()).await.unwrap_err(),
        GateError::OwnerDenied("apr_abcdefghij".into())
    );

    let (silent, _) = gate(Ok(ApprovalOutcome::Pending));
    let plan = plan_with(on_miss(ExecSecurity::Deny), shell("rm x"), &[]);
    let err = silent.admit(plan, &workspace()).await.unwrap_err();
    assert!(matches!(err, GateError::Pending { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("pincer approvals resolve apr_abcdefghij allow-once")
    );
    // allowlist fallback: a miss still refuses…
    let plan = plan_with(on_miss(ExecSecurity::Allowlist), shell("rm x"), &[]);
    assert!(silent.admit(plan, &workspace()).await.is_err());
    // …but `ask: always` on a covered command runs.
    let always = wire_policy(
        ExecSecurity::Allowlist,
        ExecAsk::Always,
        ExecSecurity::Allowlist,
    );
    let plan = plan_with(always, shell("ls"), &[]);
    assert!(silent.admit(plan, &workspace()).await.is_ok());
    // full fallback runs.
    let plan = plan_with(on_miss(ExecSecurity::Full), shell("rm x"), &[]);
    assert!(silent.admit(plan, &workspace()).await.is_ok());

    let (down, _) = gate(Err("connection refused".into()));
    let plan = plan_with(on_miss(ExecSecurity::Deny), shell("rm x"), &[]);
    assert!(matches!(
        down.admit(plan, &workspace()).await,
        Err(GateError::Unreachable { .. })
    ));
}

#[tokio::test]
async fn an_unparsable_line_under_full_and_always_runs_as_approved() {
    let (gate, link) = gate(Ok(ApprovalOutcome::AllowedOnce));
    let plan = plan_with(
        wire_policy(ExecSecurity::Full, ExecAsk::Always, ExecSecurity::Deny),
        shell("echo $HOME > x"),
        &[],
    );
    let admitted = gate.admit(plan, &workspace()).await.unwrap();
    assert_eq!(admitted.argv(), ["/bin/sh", "-c", "echo $HOME > x"]);
    let seen = link.seen.lock().unwrap();
    assert_eq!(
        seen[0].binding.as_ref().unwrap().command,
        Some(exec_binding::Command::Shell("echo $HOME > x".into()))
    );
}
