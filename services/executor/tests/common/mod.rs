//! Shared helpers for the executor's integration tests: Docker availability (fail loudly,
//! or print SKIP when `PINCER_SKIP_DOCKER=1`), the sandbox image (built once with
//! `images/sandbox/build.sh`), requests, and a lock that keeps reaping tests from removing
//! the containers of tests running beside them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bollard::Docker;
use pincer_executor::docker::posture::INSTANCE_LABEL;
use pincer_executor::{
    DockerBackend, DockerSettings, ExecLimits, ExecOutcome, ExecPlan, ExecutorError, FixedClock,
    Sandbox, SandboxUser, ValidatedExecPlan, Workspaces,
};
use pincer_proto::v1::{Argv, ExecRequest, TurnGrant, exec_request};
use pincer_runtime::config::validate::{DockerConfig, ExecToolConfig};
use tokio::sync::RwLock;

/// The image the tests use (built by `images/sandbox/build.sh`).
pub const IMAGE: &str = "pincer-sandbox:latest";
/// Output cap in tests.
pub const MAX_OUTPUT: u32 = 65_536;

/// Tests that remove every sandbox container take this for writing; all others for reading.
pub static REAP_LOCK: RwLock<()> = RwLock::const_new(());

/// `Some(())` when Docker is reachable and the image is built; `None` (after printing a
/// SKIP line) when it is not and `PINCER_SKIP_DOCKER=1`; otherwise panics with the fix.
pub async fn require_docker(test: &str) -> Option<()> {
    let probe = DockerBackend::new(docker_settings());
    let reachable = match probe.client().await {
        Ok(docker) => docker.ping().await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = reachable {
        if std::env::var("PINCER_SKIP_DOCKER").as_deref() == Ok("1") {
            println!("SKIP: {test}: Docker is unreachable ({e}) (run scripts/setup-docker.sh)");
            return None;
        }
        panic!(
            "{test} needs a Docker engine, which is unreachable: {e}\n\
             fix: run `bash scripts/setup-docker.sh` (or set PINCER_SKIP_DOCKER=1 to skip locally)"
        );
    }
    build_image_once();
    Some(())
}

fn build_image_once() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../images/sandbox/build.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg(IMAGE)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("cannot build the sandbox image: {e}");
    }
}

pub fn docker_config() -> DockerConfig {
    DockerConfig {
        host: None,
        image: IMAGE.to_owned(),
        memory_bytes: 256 * 1024 * 1024,
        pids_limit: 64,
        nano_cpus: 1_000_000_000,
        host_workspace_root: None,
        reuse: pincer_runtime::config::validate::ContainerReuse::PerCall,
    }
}

/// `tools.exec` as the config's defaults (so fields added there keep their defaults here),
/// enabled, with a 30 s limit and [`MAX_OUTPUT`].
pub fn exec_config() -> ExecToolConfig {
    let text = r#"{
        models: { providers: { fake: { api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" } } },
        agents: { defaults: { model: "fake/m" } },
    }"#;
    let config = pincer_runtime::config::parse_config(text, "test").unwrap();
    ExecToolConfig {
        enabled: true,
        timeout: Duration::from_secs(30),
        max_output_bytes: MAX_OUTPUT,
        ..config.exec
    }
}

pub fn docker_settings() -> DockerSettings {
    DockerSettings::from_config(
        &docker_config(),
        &exec_config(),
        SandboxUser::for_this_process(),
    )
}

pub fn now_ms() -> i64 {
    use pincer_executor::Clock;
    pincer_executor::SystemClock.now_ms()
}

pub const SESSION: &str = "test:dm:1";

pub fn grant(tools: &[&str]) -> TurnGrant {
    pincer_executor::grant::testing::grant(tools, SESSION, "main", now_ms() + 600_000)
}

pub fn shell_request(line: &str, timeout_ms: u32) -> ExecRequest {
    ExecRequest {
        grant: Some(grant(&["exec"])),
        session_key: SESSION.into(),
        command: Some(exec_request::Command::Shell(line.into())),
        cwd: String::new(),
        timeout_ms,
        ..Default::default()
    }
}

pub fn argv_request(args: &[&str]) -> ExecRequest {
    ExecRequest {
        command: Some(exec_request::Command::Argv(Argv {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        })),
        ..shell_request("unused", 0)
    }
}

pub fn validate(req: ExecRequest) -> ValidatedExecPlan {
    try_validate(req).unwrap()
}

/// The executor's validation of a request (grant, command, cwd, timeout), as the service
/// runs it.
pub fn try_validate(req: ExecRequest) -> Result<ValidatedExecPlan, ExecutorError> {
    ExecPlan::from(req).validate(
        ExecLimits {
            max_timeout: Duration::from_secs(30),
        },
        &pincer_executor::grant::testing::keys(),
        &FixedClock(now_ms()),
    )
}

/// A Docker backend over a temporary workspace root.
pub struct Harness {
    pub backend: Arc<DockerBackend>,
    pub workspaces: Workspaces,
    pub tmp: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_settings(docker_settings())
    }

    pub fn with_settings(settings: DockerSettings) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let user = settings.user;
        Self {
            backend: Arc::new(DockerBackend::new(settings)),
            workspaces: Workspaces::new(tmp.path().join("workspaces"), user),
            tmp,
        }
    }

    pub fn agent_dir(&self) -> PathBuf {
        self.workspaces.root().join("main")
    }

    pub async fn try_run(&self, req: ExecRequest) -> Result<ExecOutcome, ExecutorError> {
        let plan = validate(req);
        let workspace = self.workspaces.prepare(&plan)?;
        self.backend.run(plan, workspace).await
    }

    pub async fn run(&self, req: ExecRequest) -> ExecOutcome {
        self.try_run(req).await.unwrap()
    }

    pub async fn shell(&self, line: &str) -> ExecOutcome {
        self.run(shell_request(line, 0)).await
    }

    /// Runs `python3 -c code` (argv, no shell).
    pub async fn py(&self, code: &str) -> ExecOutcome {
        self.run(argv_request(&["python3", "-c", code])).await
    }

    /// Validates, prepares the workspace and runs, returning the first error of the three.
    pub async fn try_exec(&self, req: ExecRequest) -> Result<ExecOutcome, ExecutorError> {
        let plan = try_validate(req)?;
        let workspace = self.workspaces.prepare(&plan)?;
        self.backend.run(plan, workspace).await
    }

    /// Containers this harness's backend created that still exist.
    pub async fn leftovers(&self) -> usize {
        count_labelled(
            self.backend.client().await.unwrap(),
            &format!("{INSTANCE_LABEL}={}", self.backend.instance_id()),
        )
        .await
    }
}

pub async fn count_labelled(docker: &Docker, label: &str) -> usize {
    use bollard::query_parameters::ListContainersOptions;
    let filters = std::collections::HashMap::from([("label".to_owned(), vec![label.to_owned()])]);
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap()
        .len()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
