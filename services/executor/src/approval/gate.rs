//! The approval step of an exec call, between validation and the sandbox.
//!
//! 1. `security: deny` refuses; `full` with `ask: off` runs the call as sent (the sandbox
//!    is the boundary).
//! 2. Otherwise every program name is resolved as the sandbox would resolve it: the gate
//!    lists the sandbox's `PATH` once per agent (a probe run in the same backend, cached for
//!    [`INDEX_TTL`]), and names with a `/` are taken relative to the call's cwd in the
//!    sandbox's view of the workspace.
//! 3. [`decide`] judges the command; under `allowlist` any extra environment is a miss too
//!    (variables can make an allowlisted program run other code).
//! 4. When the owner must be asked, the gateway gets the exact binding (command, cwd, env,
//!    resolved executables) and answers with the owner's decision, or "pending" after its
//!    wait, when `askFallback` applies. Nothing in the request says "approved": only the
//!    gateway's answer does.
//! 5. What runs is what was judged: each segment's program is replaced by its resolved
//!    absolute path (a shell line is rebuilt with every word quoted), so neither a shell
//!    builtin nor a later `PATH` lookup can substitute another program.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_proto::v1::{
    ApprovalAnswer, ApprovalOutcome, ApprovalRequest, ArgvCommand, ExecBinding, exec_binding,
};
use tokio::sync::Mutex;

use super::policy::{
    Ask, CommandLine, Decision, ExecPolicy, Resolve, Security, Segment, SegmentVerdict, decide,
};
use super::shell::{self, Joiner};
use crate::cwd::RelativeCwd;
use crate::grant::Tool;
use crate::grant_keys::LinkClient;
use crate::plan::{AgentId, Command, ValidatedExecPlan};
use crate::sandbox::Sandbox;
use crate::workspace::PreparedWorkspace;

/// How long a listing of the sandbox's `PATH` is reused.
pub const INDEX_TTL: Duration = Duration::from_secs(600);
/// The directories of the sandbox's `PATH`, in lookup order (both backends use this `PATH`).
pub const SANDBOX_PATH: [&str; 3] = ["/usr/local/bin", "/usr/bin", "/bin"];
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Prints the working directory (the workspace as the sandbox sees it), then every
/// executable file on `PATH`, one per line.
const PROBE_SCRIPT: &str = "pwd && for d in /usr/local/bin /usr/bin /bin; do \
     for f in \"$d\"/*; do if [ -f \"$f\" ] && [ -x \"$f\" ]; then printf '%s\\n' \"$f\"; fi; done; done";

/// Why the gate did not let a call run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// The policy refuses it.
    #[error("exec refused by policy: {0}")]
    Denied(String),
    /// The owner said no.
    #[error("the owner denied this command (approval {0})")]
    OwnerDenied(String),
    /// The owner has not answered, and `askFallback` does not let it run.
    #[error(
        "this command needs the owner's approval ({reason}); request {id} is waiting: the owner can run `pincer approvals resolve {id} allow-once`, then send the same command again"
    )]
    Pending {
        /// The approval id.
        id: String,
        /// Why approval is needed.
        reason: String,
    },
    /// The gateway could not be asked, and `askFallback` does not let it run.
    #[error(
        "this command needs the owner's approval ({reason}), but the gateway cannot be asked: {cause}"
    )]
    Unreachable {
        /// Why approval is needed.
        reason: String,
        /// The transport error.
        cause: String,
    },
    /// The sandbox's executables could not be listed.
    #[error("cannot list the sandbox's executables to judge the command: {0}")]
    Probe(String),
}

/// Where approval requests go.
pub trait ApprovalLink: Send + Sync + 'static {
    /// Asks; answers with the owner's decision or "pending".
    fn request(
        &self,
        request: ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = Result<ApprovalAnswer, String>> + Send + '_>>;
}

/// The gateway's `ExecutorLinkService.RequestApproval`.
#[derive(Debug, Clone)]
pub struct GatewayApprovals {
    client: LinkClient,
}

impl GatewayApprovals {
    /// Over `client`.
    pub fn new(client: LinkClient) -> Self {
        Self { client }
    }
}

impl ApprovalLink for GatewayApprovals {
    fn request(
        &self,
        request: ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = Result<ApprovalAnswer, String>> + Send + '_>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .request_approval(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| s.message().to_owned())
        })
    }
}

/// What the sandbox's `PATH` holds, and where the workspace is inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathIndex {
    workspace: String,
    names: HashMap<String, String>,
}

impl PathIndex {
    /// Parses the probe's output: the workspace directory, then one executable per line.
    /// The first file of a name in `PATH` order wins.
    pub fn parse(stdout: &str) -> Option<Self> {
        let mut lines = stdout.lines();
        let workspace = lines.next().filter(|w| w.starts_with('/'))?.to_owned();
        let mut by_dir: Vec<(usize, String, String)> = lines
            .filter_map(|path| {
                let (dir, name) = path.rsplit_once('/')?;
                let rank = SANDBOX_PATH.iter().position(|d| *d == dir)?;
                (!name.is_empty()).then(|| (rank, name.to_owned(), path.to_owned()))
            })
            .collect();
        by_dir.sort_by_key(|(rank, _, _)| *rank);
        let mut names = HashMap::new();
        for (_, name, path) in by_dir {
            names.entry(name).or_insert(path);
        }
        Some(Self { workspace, names })
    }

    /// A resolver for calls running in `cwd`.
    pub fn resolver<'a>(&'a self, cwd: &'a RelativeCwd) -> IndexResolver<'a> {
        IndexResolver { index: self, cwd }
    }
}

/// Resolves names as the sandbox would, for one cwd.
#[derive(Debug, Clone, Copy)]
pub struct IndexResolver<'a> {
    index: &'a PathIndex,
    cwd: &'a RelativeCwd,
}

impl Resolve for IndexResolver<'_> {
    fn resolve(&self, name: &str) -> Option<String> {
        if name.is_empty() {
            return None;
        }
        if !name.contains('/') {
            return self.index.names.get(name).cloned();
        }
        let joined = if name.starts_with('/') {
            name.to_owned()
        } else {
            format!("{}/{name}", self.cwd.under(&self.index.workspace))
        };
        normalize(&joined)
    }
}

/// Removes `.` and empty components and applies `..` lexically; `None` above the root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// The approval step for one backend.
pub struct ExecGate<B> {
    backend: Arc<B>,
    link: Option<Arc<dyn ApprovalLink>>,
    indexes: Mutex<HashMap<AgentId, (Instant, Arc<PathIndex>)>>,
}

impl<B: Sandbox> ExecGate<B> {
    /// A gate probing `backend` and asking the owner through `link` (`None`: nobody can be
    /// asked; `askFallback` decides).
    pub fn new(backend: Arc<B>, link: Option<Arc<dyn ApprovalLink>>) -> Self {
        Self {
            backend,
            link,
            indexes: Mutex::new(HashMap::new()),
        }
    }

    /// Lets `plan` run (possibly with resolved programs), or says why not.
    pub async fn admit(
        &self,
        plan: ValidatedExecPlan,
        workspace: &PreparedWorkspace,
    ) -> Result<ValidatedExecPlan, GateError> {
        let policy = plan.policy().clone();
        match (policy.security, policy.ask) {
            (Security::Deny, _) => {
                return Err(GateError::Denied(
                    "exec is denied (tools.exec.security = \"deny\")".into(),
                ));
            }
            (Security::Full, Ask::Off) => return Ok(plan),
            _ => {}
        }
        let index = self.index(plan.agent_id(), workspace).await?;
        let resolver = index.resolver(plan.cwd());
        let line = match plan.command() {
            Command::Argv(args) => CommandLine::Argv(args.clone()),
            Command::Shell(line) => CommandLine::Shell(line.clone()),
        };
        let decision = env_is_a_miss(&policy, &plan, decide(&policy, &line, &resolver));
        match decision {
            Decision::Allow { segments } => Ok(resolved(plan, &segments)),
            Decision::Deny { reason } => Err(GateError::Denied(reason)),
            Decision::Ask { reason, segments } => {
                self.ask_owner(plan, &policy, reason, segments).await
            }
        }
    }

    async fn ask_owner(
        &self,
        plan: ValidatedExecPlan,
        policy: &ExecPolicy,
        reason: String,
        segments: Vec<Segment>,
    ) -> Result<ValidatedExecPlan, GateError> {
        let answer = match &self.link {
            None => Err("no gateway link is configured".to_owned()),
            Some(link) => {
                link.request(ApprovalRequest {
                    grant: plan.grant().cloned(),
                    binding: Some(binding(&plan, &segments)),
                    reason: reason.clone(),
                })
                .await
            }
        };
        let refusal = match answer {
            Ok(a) => match a.outcome() {
                ApprovalOutcome::AllowedOnce | ApprovalOutcome::AllowedAlways => {
                    tracing::info!(approval = %a.approval_id, "exec approved by the owner");
                    return Ok(resolved(plan, &segments));
                }
                ApprovalOutcome::Denied => return Err(GateError::OwnerDenied(a.approval_id)),
                ApprovalOutcome::Pending | ApprovalOutcome::Unspecified => GateError::Pending {
                    id: a.approval_id,
                    reason,
                },
            },
            Err(cause) => GateError::Unreachable { reason, cause },
        };
        let covered = !segments.is_empty()
            && plan.env().is_empty()
            && segments
                .iter()
                .all(|s| !matches!(s.verdict, SegmentVerdict::Miss(_)));
        match policy.ask_fallback {
            Security::Full => {
                tracing::warn!(%refusal, "no answer from the owner; askFallback = full runs it");
                Ok(resolved(plan, &segments))
            }
            Security::Allowlist if covered => Ok(resolved(plan, &segments)),
            _ => Err(refusal),
        }
    }

    async fn index(
        &self,
        agent: &AgentId,
        workspace: &PreparedWorkspace,
    ) -> Result<Arc<PathIndex>, GateError> {
        let mut indexes = self.indexes.lock().await;
        if let Some((at, index)) = indexes.get(agent)
            && at.elapsed() < INDEX_TTL
        {
            return Ok(Arc::clone(index));
        }
        let probe = ValidatedExecPlan::internal(
            agent.clone(),
            vec!["/bin/sh".into(), "-c".into(), PROBE_SCRIPT.into()],
            PROBE_TIMEOUT,
        );
        let outcome = self
            .backend
            .run(probe, workspace.clone())
            .await
            .map_err(|e| GateError::Probe(e.to_string()))?;
        if outcome.exit_code != 0 || outcome.output_truncated {
            return Err(GateError::Probe(format!(
                "the listing exited {} (truncated: {}): {}",
                outcome.exit_code,
                outcome.output_truncated,
                String::from_utf8_lossy(&outcome.stderr).trim()
            )));
        }
        let index = PathIndex::parse(&String::from_utf8_lossy(&outcome.stdout))
            .ok_or_else(|| GateError::Probe("the listing is malformed".into()))?;
        let index = Arc::new(index);
        indexes.insert(agent.clone(), (Instant::now(), Arc::clone(&index)));
        Ok(index)
    }
}

/// Under `allowlist`, extra environment variables are not covered by any entry.
fn env_is_a_miss(policy: &ExecPolicy, plan: &ValidatedExecPlan, decision: Decision) -> Decision {
    if policy.security != Security::Allowlist || plan.env().is_empty() {
        return decision;
    }
    let reason = format!(
        "extra environment variables ({}) are not covered by the allowlist",
        plan.env().keys().cloned().collect::<Vec<_>>().join(", ")
    );
    match (decision, policy.ask) {
        (Decision::Allow { .. }, Ask::Off) => Decision::Deny { reason },
        (Decision::Allow { segments }, _) => Decision::Ask { reason, segments },
        (other, _) => other,
    }
}

/// The binding the owner approves.
pub fn binding(plan: &ValidatedExecPlan, segments: &[Segment]) -> ExecBinding {
    ExecBinding {
        command: Some(match plan.command() {
            Command::Argv(args) => exec_binding::Command::Argv(ArgvCommand { args: args.clone() }),
            Command::Shell(line) => exec_binding::Command::Shell(line.clone()),
        }),
        cwd: plan.cwd().to_string(),
        env: plan
            .env()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        executables: segments
            .iter()
            .map(|s| s.executable.clone().unwrap_or_default())
            .collect(),
        background: plan.tool() == Tool::Process,
    }
}

/// The plan running the resolved programs: an argv gets its program replaced; a shell line
/// is rebuilt from its parsed chain with every word quoted. Left as sent when nothing was
/// resolved (a line the parser refused, approved as written under `security: full`).
fn resolved(plan: ValidatedExecPlan, segments: &[Segment]) -> ValidatedExecPlan {
    let Some(exes) = segments
        .iter()
        .map(|s| s.executable.clone())
        .collect::<Option<Vec<String>>>()
    else {
        return plan;
    };
    if exes.is_empty() {
        return plan;
    }
    let argv = match plan.command() {
        Command::Argv(args) => {
            let mut argv = args.clone();
            if let Some(first) = argv.first_mut() {
                first.clone_from(&exes[0]);
            }
            argv
        }
        Command::Shell(line) => match shell::parse(line) {
            Ok(chain) if chain.commands.len() == exes.len() => {
                vec!["/bin/sh".into(), "-c".into(), rebuild(&chain, &exes)]
            }
            // Cannot happen (the segments came from this parse); never run something else.
            _ => return plan,
        },
    };
    plan.with_argv(argv)
}

fn rebuild(chain: &shell::Chain, exes: &[String]) -> String {
    let mut out = String::new();
    for (i, (words, exe)) in chain.commands.iter().zip(exes).enumerate() {
        if i > 0 {
            out.push_str(match chain.joiners[i - 1] {
                Joiner::And => " && ",
                Joiner::Or => " || ",
                Joiner::Then => " ; ",
                Joiner::Pipe => " | ",
            });
        }
        out.push_str(&quote(exe));
        for w in words.iter().skip(1) {
            out.push(' ');
            out.push_str(&quote(w));
        }
    }
    out
}

fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
