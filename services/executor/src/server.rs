//! Serving: settings from the config, the gRPC server behind the agent-credential check,
//! the reaper at start, and a bounded drain at shutdown (which also kills every background
//! process).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pincer_egress::Dialer;
use pincer_proto::v1::executor_service_server::ExecutorServiceServer;
use pincer_runtime::config::raw::SandboxBackend;
use pincer_runtime::config::validate::{
    DockerConfig, ExecToolConfig, FilesToolConfig, WebFetchToolConfig,
};
use pincer_runtime::service_auth::{PresentCredential, RequireCaller, ServiceName};
use pincer_runtime::{Config, ProcessSecrets, Secret, SecretSource};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ExecutorError;
use crate::approval::gate::{ApprovalLink, GatewayApprovals};
use crate::docker::{DockerBackend, DockerSettings};
use crate::files::FileTools;
use crate::files::plan::MAX_FILE_BYTES;
use crate::grant::{Clock, StaticKeys, SystemClock};
use crate::grant_keys::{GatewayKeys, KeySet};
use crate::jail::JailBackend;
use crate::plan::{ExecLimits, MAX_TIMEOUT};
use crate::process::Processes;
use crate::sandbox::{Sandbox, SpawnBackground};
use crate::sandbox_egress::SandboxEgress;
use crate::service::{ExecSwitch, ExecutorApi};
use crate::web::WebFetchTool;
use crate::workspace::{SandboxUser, Workspaces};

/// Extra time, beyond the longest call, that shutdown waits for calls in flight.
const DRAIN_SLACK: Duration = Duration::from_secs(15);
/// Largest request accepted: a `write_file` of the largest file, plus room for the grant
/// and the other fields (a command is at most 64 KiB).
const MAX_REQUEST_BYTES: usize = MAX_FILE_BYTES + 64 * 1024;

/// Everything the executor needs, resolved (no secret references, no environment lookups).
#[derive(Clone)]
pub struct ExecutorSettings {
    /// Host directory holding the agents' workspaces (`<root>/<agent_id>`).
    pub workspace_root: PathBuf,
    /// The credential agents present.
    pub agent_credential: Secret,
    /// `tools.exec`.
    pub exec: ExecToolConfig,
    /// `executor.docker`.
    pub docker: DockerConfig,
    /// The user sandboxes run as.
    pub sandbox_user: SandboxUser,
    /// The clock grants are checked against.
    pub clock: Arc<dyn Clock>,
    /// Where grant keys come from.
    pub grant_keys: GrantKeySetting,
    /// `executor.backend`.
    pub backend: SandboxBackend,
    /// The binary the jail backend re-executes as its helper (`/proc/self/exe`: the
    /// executor, whose `main` runs the helper).
    pub jail_helper: PathBuf,
    /// `tools.files` and `tools.webFetch`.
    pub tools: ToolSettings,
}

/// The file tools and `web_fetch` as this executor serves them.
#[derive(Debug, Clone)]
pub struct ToolSettings {
    /// `tools.files`.
    pub files: FilesToolConfig,
    /// `tools.webFetch`: allowlist and limits of the SSRF guard.
    pub web_fetch: WebFetchToolConfig,
    /// How web fetches connect: `None` dials TCP; tests pass `LoopbackOnlyDialer` so a
    /// broken guard could never send traffic off the machine.
    pub web_dialer: Option<Arc<dyn Dialer>>,
}

impl ToolSettings {
    /// From the config, dialling TCP.
    pub fn from_config(config: &Config) -> Self {
        Self {
            files: config.files.clone(),
            web_fetch: config.web_fetch.clone(),
            web_dialer: None,
        }
    }

    /// Both disabled (every call refused); the defaults of `tools.webFetch` otherwise.
    pub fn disabled() -> Self {
        Self {
            files: FilesToolConfig { enabled: false },
            web_fetch: WebFetchToolConfig {
                enabled: false,
                allow_networks: Vec::new(),
                max_bytes: 2 * 1024 * 1024,
                timeout: Duration::from_secs(30),
            },
            web_dialer: None,
        }
    }
}

/// Where the executor learns the gateway's grant keys.
#[derive(Clone)]
pub enum GrantKeySetting {
    /// Fetched from the gateway at `url`, presenting the executor's credential.
    Gateway {
        /// `services.gateway.url`.
        url: url::Url,
        /// `services.credentials.executor`.
        credential: Secret,
    },
    /// A fixed set (tests).
    Fixed(StaticKeys),
}

impl std::fmt::Debug for ExecutorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorSettings")
            .field("workspace_root", &self.workspace_root)
            .field("agent_credential", &self.agent_credential)
            .field("exec", &self.exec)
            .field("docker", &self.docker)
            .field("sandbox_user", &self.sandbox_user)
            .field("tools", &self.tools)
            .finish_non_exhaustive()
    }
}

impl ExecutorSettings {
    /// Settings from the config; the agent credential is resolved through `secrets`.
    pub fn from_config(
        config: &Config,
        workspace_root: PathBuf,
        secrets: &dyn SecretSource,
    ) -> Result<Self, ExecutorError> {
        Ok(Self {
            workspace_root,
            agent_credential: config.services.credentials.agent.resolve(secrets)?,
            exec: config.exec.clone(),
            docker: config.executor.docker.clone(),
            sandbox_user: SandboxUser::for_this_process(),
            clock: Arc::new(SystemClock),
            grant_keys: GrantKeySetting::Gateway {
                url: config.services.gateway.url.clone(),
                credential: config.services.credentials.executor.resolve(secrets)?,
            },
            backend: config.executor.backend,
            jail_helper: PathBuf::from("/proc/self/exe"),
            tools: ToolSettings::from_config(config),
        })
    }
}

/// `executor.workspaceRoot`, else `<state_dir>/workspaces`, else
/// `$PINCER_STATE_DIR/workspaces` (or `~/.pincer/workspaces`).
pub fn workspace_root(config: &Config, state_dir: Option<&Path>) -> Result<PathBuf, ExecutorError> {
    if let Some(root) = &config.executor.workspace_root {
        return Ok(root.clone());
    }
    let state = match state_dir {
        Some(dir) => dir.to_owned(),
        None => pincer_runtime::paths::state_dir(None)?,
    };
    Ok(state.join("workspaces"))
}

/// Runs the executor on `listener` until `shutdown`, with the workspace root from
/// [`workspace_root`] and secrets from the process environment.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ExecutorError> {
    let root = workspace_root(&config, None)?;
    let settings = ExecutorSettings::from_config(&config, root, &ProcessSecrets)?;
    serve(settings, listener, shutdown).await
}

/// Runs the executor with resolved settings: removes leftover sandboxes, serves
/// `ExecutorService` to callers presenting the agent credential, and on `shutdown` stops
/// accepting, lets calls in flight finish (bounded by the longest call plus a slack),
/// then removes any container of this instance that is left.
pub async fn serve(
    settings: ExecutorSettings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ExecutorError> {
    // The guarded proxy of sandboxes granted egress (either backend).
    let egress_tasks = TaskTracker::new();
    let egress_stop = CancellationToken::new();
    let egress = SandboxEgress::start(
        &settings.workspace_root,
        &settings.tools.web_fetch,
        &settings.exec.egress_ports,
        settings.tools.web_dialer.clone(),
        &egress_tasks,
        egress_stop.clone(),
    );
    let served = match settings.backend {
        SandboxBackend::Docker => {
            let backend = Arc::new(DockerBackend::with_egress(
                DockerSettings::from_config(
                    &settings.docker,
                    &settings.exec,
                    settings.sandbox_user,
                ),
                egress,
            ));
            if let Err(e) = backend.reap_leftovers().await {
                tracing::warn!(error = %e, "cannot reach Docker at start; calls will fail with Unavailable until it is up");
            }
            tracing::info!(instance = backend.instance_id(), "sandbox backend: docker");
            // Background processes run in containers of their own; the drain kills and
            // removes them, and `reap_own` below removes any that is left.
            let processes = Processes::new(Arc::clone(&backend) as Arc<dyn SpawnBackground>);
            let served = serve_with(
                Arc::clone(&backend),
                Some(processes),
                settings,
                listener,
                shutdown,
            )
            .await;
            if let Err(e) = backend.reap_own().await {
                tracing::warn!(error = %e, "cannot remove this executor's sandboxes at shutdown");
            }
            served
        }
        SandboxBackend::Jail => {
            let backend = Arc::new(
                JailBackend::new(
                    settings.jail_helper.clone(),
                    settings.sandbox_user,
                    settings.exec.max_output_bytes,
                )
                .with_egress(egress),
            );
            tracing::info!("sandbox backend: jail");
            let processes = Processes::new(Arc::clone(&backend) as Arc<dyn SpawnBackground>);
            serve_with(backend, Some(processes), settings, listener, shutdown).await
        }
    };
    // Calls are done: the proxy goes last.
    egress_stop.cancel();
    egress_tasks.close();
    egress_tasks.wait().await;
    served
}

async fn serve_with<B: Sandbox>(
    backend: Arc<B>,
    processes: Option<Arc<Processes>>,
    settings: ExecutorSettings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ExecutorError> {
    let max_timeout = settings.exec.timeout.min(MAX_TIMEOUT);
    let switch = if settings.exec.enabled {
        ExecSwitch::Enabled
    } else {
        ExecSwitch::Disabled
    };
    let (keys, approvals) = match settings.grant_keys {
        GrantKeySetting::Fixed(k) => (KeySet::Fixed(k), None),
        GrantKeySetting::Gateway { url, credential } => {
            let present = PresentCredential::new(ServiceName::Executor, &credential)
                .map_err(|e| ExecutorError::GatewayLink(e.to_string()))?;
            let keys = GatewayKeys::new(&url, present)
                .map_err(|e| ExecutorError::GatewayLink(e.to_string()))?;
            let link: Arc<dyn ApprovalLink> = Arc::new(GatewayApprovals::new(keys.link_client()));
            (KeySet::Gateway(Box::new(keys)), Some(link))
        }
    };
    let tasks = TaskTracker::new();
    let workspaces = Workspaces::new(settings.workspace_root.clone(), settings.sandbox_user);
    let tools = &settings.tools;
    let files = tools
        .files
        .enabled
        .then(|| FileTools::new(workspaces.clone()));
    let web = if tools.web_fetch.enabled {
        Some(WebFetchTool::from_config(
            &tools.web_fetch,
            tools.web_dialer.clone(),
        )?)
    } else {
        None
    };
    tracing::info!(
        files = files.is_some(),
        web_fetch = web.is_some(),
        "file and web tools"
    );
    let api = ExecutorApi::new(
        Arc::clone(&backend),
        workspaces,
        ExecLimits { max_timeout },
        switch,
        settings.clock,
        Arc::new(keys),
        tasks.clone(),
    )
    .with_tools(files, web)
    .with_approvals(approvals)
    .with_processes(processes.clone());
    let auth = RequireCaller::new(vec![(ServiceName::Agent, settings.agent_credential)]);
    let service = ExecutorServiceServer::new(api).max_decoding_message_size(MAX_REQUEST_BYTES);
    let service = tonic::service::interceptor::InterceptedService::new(service, auth);
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        workspace_root = %settings.workspace_root.display(),
        "executor listening"
    );

    let stop = shutdown.clone();
    let to_kill = processes.clone();
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(pincer_runtime::net::incoming(listener), async move {
            stop.cancelled().await;
            // Background processes end with the executor; polls waiting on them return.
            if let Some(p) = to_kill {
                p.kill_all();
            }
        });
    let drain = max_timeout + DRAIN_SLACK;
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(drain).await;
    };
    let served = tokio::select! {
        served = server => served,
        () = deadline => {
            tracing::warn!(?drain, "calls still in flight at the drain deadline; closing");
            Ok(())
        }
    };

    tasks.close();
    if tokio::time::timeout(DRAIN_SLACK, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("sandbox tasks still running after the drain");
    }
    if let Some(p) = processes {
        // Starts that finished during the drain are killed here too.
        p.shutdown(DRAIN_SLACK).await;
    }
    tracing::info!("executor stopped");
    Ok(served?)
}
