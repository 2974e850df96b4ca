//! The Docker backend: one throwaway container per call, or, with
//! `executor.docker.reuse: "session"`, one container per session that its calls
//! `docker exec` into. Background processes (the `process` tool) always get a container
//! of their own ([`background`]).
//!
//! | module | what |
//! |---|---|
//! | [`posture`] | the container's create body (network none, read-only, caps dropped, ...) and a session call's exec — pure |
//! | [`run`] | one call: create, attach, start, wait with a wall-clock limit, kill, remove |
//! | [`session`] | per-session containers: the pool (key: agent, session, workspace access), idle removal |
//! | [`exec`] | one call in a session's container: exec, capped output, exit code, kill at the limit |
//! | [`reaper`] | removing labelled leftovers (at start, and this instance's at shutdown) |
//! | [`background`] | background processes (the `process` tool): one container per process, stdin attached, output streamed, kill, timeout |
//!
//! The client connects lazily: a service whose Docker engine is down starts anyway and answers
//! `Unavailable` until the engine is back.

mod background;
mod exec;
pub mod posture;
pub mod reaper;
mod run;
mod session;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};
pub use pincer_runtime::config::validate::ContainerReuse;
use pincer_runtime::config::validate::{DockerConfig, ExecToolConfig};
use tokio::sync::OnceCell;

use crate::ExecutorError;
use crate::plan::ValidatedExecPlan;
use crate::sandbox::{ExecOutcome, Sandbox};
use crate::sandbox_egress::SandboxEgress;
use crate::workspace::{PreparedWorkspace, SandboxUser};

/// Per-request timeout of the Docker client: longer than the longest call (600 s) so a
/// wait on a running sandbox is never cut by the client.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(900);
/// How long connecting (version negotiation) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the backend needs, from `executor.docker` and `tools.exec`.
#[derive(Debug, Clone)]
pub struct DockerSettings {
    /// Docker endpoint (`unix:///path`, `tcp://host:port`, `http://...`); `None` for the
    /// local default (`DOCKER_HOST` or `/var/run/docker.sock`).
    pub host: Option<String>,
    /// The sandbox image.
    pub image: String,
    /// Memory limit (and memory+swap) in bytes.
    pub memory_bytes: u64,
    /// Process limit.
    pub pids_limit: u32,
    /// CPU limit in nano-CPUs.
    pub nano_cpus: u64,
    /// The workspace root as the engine sees it, when the executor itself runs in a container.
    pub host_workspace_root: Option<PathBuf>,
    /// The user sandboxed processes run as.
    pub user: SandboxUser,
    /// Bytes kept of stdout and of stderr each.
    pub max_output_bytes: usize,
    /// A throwaway container per call, or one per session.
    pub reuse: ContainerReuse,
}

impl DockerSettings {
    /// Settings from the validated config.
    pub fn from_config(docker: &DockerConfig, exec: &ExecToolConfig, user: SandboxUser) -> Self {
        Self {
            host: docker.host.clone(),
            image: docker.image.clone(),
            memory_bytes: docker.memory_bytes,
            pids_limit: docker.pids_limit,
            nano_cpus: docker.nano_cpus,
            host_workspace_root: docker.host_workspace_root.clone(),
            user,
            max_output_bytes: usize::try_from(exec.max_output_bytes).unwrap_or(usize::MAX),
            reuse: docker.reuse,
        }
    }

    /// The endpoint, for messages.
    pub fn endpoint(&self) -> String {
        self.host
            .clone()
            .unwrap_or_else(|| "local default (DOCKER_HOST or /var/run/docker.sock)".to_owned())
    }
}

/// The Docker sandbox backend. Cheap to clone.
#[derive(Clone)]
pub struct DockerBackend {
    inner: Arc<Inner>,
}

struct Inner {
    settings: DockerSettings,
    instance_id: String,
    /// The guarded proxy for sandboxes granted egress.
    egress: SandboxEgress,
    client: OnceCell<Docker>,
    /// The session containers, with `reuse: PerSession`.
    sessions: Option<session::Pool>,
}

impl std::fmt::Debug for DockerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerBackend")
            .field("instance_id", &self.inner.instance_id)
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl DockerBackend {
    /// A backend with a fresh instance id. Does no I/O.
    pub fn new(settings: DockerSettings) -> Self {
        let sessions = match settings.reuse {
            ContainerReuse::PerCall => None,
            ContainerReuse::PerSession { idle } => Some(session::Pool::new(idle)),
        };
        Self {
            inner: Arc::new(Inner {
                settings,
                instance_id: uuid::Uuid::new_v4().simple().to_string(),
                egress: SandboxEgress::Unavailable("this executor runs no egress proxy".into()),
                client: OnceCell::new(),
                sessions,
            }),
        }
    }

    /// A backend whose sandboxes granted egress reach the web through `egress` (a
    /// [`SandboxEgress`] started at `<workspace root>/.egress/proxy.sock`, or any socket
    /// the engine can bind when `host_workspace_root` is unset). Does no I/O.
    pub fn with_egress(settings: DockerSettings, egress: SandboxEgress) -> Self {
        let mut backend = Self::new(settings);
        if let Some(inner) = Arc::get_mut(&mut backend.inner) {
            inner.egress = egress;
        }
        backend
    }

    /// The value of the `pincer.executor` label on this backend's containers.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// The settings.
    pub fn settings(&self) -> &DockerSettings {
        &self.inner.settings
    }

    /// The connected client, connecting (and negotiating the API version) on first use.
    pub async fn client(&self) -> Result<&Docker, ExecutorError> {
        self.inner
            .client
            .get_or_try_init(|| connect(&self.inner.settings))
            .await
    }

    /// What the call's container mounts, as the engine sees it: the agent's workspace (the
    /// bind source of `/workspace`) and, when the plan has egress, the proxy's socket —
    /// or why egress cannot be given.
    fn binds(
        &self,
        plan: &ValidatedExecPlan,
        workspace: &PreparedWorkspace,
    ) -> Result<CallBinds, ExecutorError> {
        let host_root = self.inner.settings.host_workspace_root.as_ref();
        let source = match host_root {
            Some(root) => root.join(workspace.agent_id.as_str()),
            None => workspace.agent_dir.clone(),
        };
        let egress = if plan.egress() {
            let socket = self.inner.egress.socket()?;
            let seen = match host_root {
                Some(root) => root
                    .join(crate::sandbox_egress::EGRESS_DIR)
                    .join(crate::sandbox_egress::SOCKET_NAME),
                None => socket.to_owned(),
            };
            Some(seen.to_string_lossy().into_owned())
        } else {
            None
        };
        Ok(CallBinds {
            workspace: source.to_string_lossy().into_owned(),
            egress,
        })
    }

    /// Removes every sandbox container (label `pincer.sandbox=1`), e.g. leftovers of a crash.
    /// Call once at start, before serving.
    pub async fn reap_leftovers(&self) -> Result<usize, ExecutorError> {
        let docker = self.client().await?;
        reaper::reap(docker, &format!("{}=1", posture::SANDBOX_LABEL)).await
    }

    /// Removes this instance's containers (at shutdown, after the drain), session
    /// containers included; a later call of a session starts a new container.
    pub async fn reap_own(&self) -> Result<usize, ExecutorError> {
        if let Some(sessions) = &self.inner.sessions {
            sessions.forget_all();
        }
        let docker = self.client().await?;
        let label = format!("{}={}", posture::INSTANCE_LABEL, self.inner.instance_id);
        reaper::reap(docker, &label).await
    }
}

/// [`posture::Binds`], owned.
#[derive(Debug, Clone)]
pub(crate) struct CallBinds {
    workspace: String,
    egress: Option<String>,
}

impl CallBinds {
    fn as_binds(&self) -> posture::Binds<'_> {
        posture::Binds {
            workspace: &self.workspace,
            egress: self.egress.as_deref(),
        }
    }
}

impl Sandbox for DockerBackend {
    async fn run(
        &self,
        plan: ValidatedExecPlan,
        workspace: PreparedWorkspace,
    ) -> Result<ExecOutcome, ExecutorError> {
        let binds = self.binds(&plan, &workspace)?;
        let docker = self.client().await?;
        let settings = &self.inner.settings;
        // The executor's own calls (no session), and calls whose grant does not let them
        // share the session's sandbox, get a throwaway container.
        if let Some(sessions) = self.inner.sessions.as_ref()
            && !plan.session_key().is_empty()
            && plan.session_scope()
        {
            let call = session::Call {
                docker,
                settings,
                instance_id: &self.inner.instance_id,
                plan: &plan,
                binds: binds.as_binds(),
            };
            if let Some(outcome) = sessions.run(call).await {
                return outcome;
            }
            tracing::debug!(
                agent = plan.agent_id().as_str(),
                "every session container is busy; this call gets a throwaway container"
            );
        }
        run::run_container(
            docker,
            settings,
            &self.inner.instance_id,
            &plan,
            binds.as_binds(),
        )
        .await
    }
}

async fn connect(settings: &DockerSettings) -> Result<Docker, ExecutorError> {
    let unavailable = |source| ExecutorError::DockerUnavailable {
        endpoint: settings.endpoint(),
        source,
    };
    let docker = match settings.host.as_deref() {
        None => Docker::connect_with_local_defaults(),
        Some(h) if h.starts_with("unix://") || h.starts_with('/') => {
            Docker::connect_with_unix(h, CLIENT_TIMEOUT.as_secs(), API_DEFAULT_VERSION)
        }
        Some(h) if h.starts_with("tcp://") || h.starts_with("http://") => {
            Docker::connect_with_http(h, CLIENT_TIMEOUT.as_secs(), API_DEFAULT_VERSION)
        }
        Some(h) => Err(bollard::errors::Error::UnsupportedURISchemeError { uri: h.to_owned() }),
    }
    .map_err(unavailable)?
    .with_timeout(CLIENT_TIMEOUT);
    // Older engines (e.g. 20.10, API 1.41) refuse newer client versions: negotiate down.
    match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(e)) => Err(unavailable(e)),
        Err(_) => Err(unavailable(bollard::errors::Error::RequestTimeoutError)),
    }
}

/// Maps a client error: transport problems mean the engine is unavailable; an answer from
/// the engine is a failed `action`.
fn docker_error<'a>(
    settings: &'a DockerSettings,
    action: &'static str,
) -> impl FnOnce(bollard::errors::Error) -> ExecutorError + 'a {
    move |source| match source {
        bollard::errors::Error::DockerResponseServerError { .. }
        | bollard::errors::Error::DockerContainerWaitError { .. }
        | bollard::errors::Error::JsonDataError { .. }
        | bollard::errors::Error::JsonSerdeError { .. } => ExecutorError::Docker { action, source },
        _ => ExecutorError::DockerUnavailable {
            endpoint: settings.endpoint(),
            source,
        },
    }
}
