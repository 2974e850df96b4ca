//! Shared helpers: the executor's real create body, a policy, JSON edits, a raw HTTP client
//! over Unix sockets, Docker availability (fail loudly, or SKIP with
//! `PINCER_SKIP_DOCKER=1`), and a guard started in-process on a temporary socket.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use pincer_docker_guard::rules::{BindCheck, Policy, WorkspaceRoot};
use pincer_docker_guard::{GuardConfig, ListenAddr, Listener};
use pincer_executor::docker::posture::{Binds, container_body};
use pincer_executor::{
    DockerSettings, ExecLimits, ExecPlan, FixedClock, SandboxUser, ValidatedExecPlan,
};
use pincer_proto::v1::{ExecRequest, exec_request};
use serde_json::{Value, json};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

/// The sandbox image (built by `images/sandbox/build.sh`).
pub const IMAGE: &str = "pincer-sandbox:latest";
/// The engine's socket.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Every container a test here creates carries this label (value: the test's run id), so
/// the test can find and remove it whatever happened.
pub const TEST_LABEL: &str = "pincer.guard-test";

pub fn settings(image: &str) -> DockerSettings {
    DockerSettings {
        host: None,
        image: image.into(),
        memory_bytes: 256 * 1024 * 1024,
        pids_limit: 64,
        nano_cpus: 1_000_000_000,
        host_workspace_root: None,
        user: SandboxUser::for_this_process(),
        max_output_bytes: 65_536,
        reuse: pincer_executor::docker::ContainerReuse::PerCall,
    }
}

pub fn now_ms() -> i64 {
    use pincer_executor::Clock;
    pincer_executor::SystemClock.now_ms()
}

pub fn plan(shell: &str) -> ValidatedExecPlan {
    plan_with_timeout(shell, 0)
}

pub fn plan_with_timeout(shell: &str, timeout_ms: u32) -> ValidatedExecPlan {
    ExecPlan::from(ExecRequest {
        grant: Some(pincer_executor::grant::testing::grant(
            &["exec"],
            "s",
            "main",
            now_ms() + 600_000,
        )),
        session_key: "s".into(),
        command: Some(exec_request::Command::Shell(shell.into())),
        cwd: String::new(),
        timeout_ms,
        env: Default::default(),
    })
    .validate(
        ExecLimits {
            max_timeout: Duration::from_secs(30),
        },
        &pincer_executor::grant::testing::keys(),
        &FixedClock(now_ms()),
    )
    .unwrap()
}

/// The create body the executor sends (built by its own posture code, serialised the way
/// bollard does), for agent `main` under `root`.
pub fn posture_body(root: &str) -> Value {
    let workspace = format!("{root}/main");
    let body = container_body(
        &settings(IMAGE),
        &plan("true"),
        Binds {
            workspace: &workspace,
            egress: None,
        },
        "guard-test",
    );
    serde_json::to_value(&body).unwrap()
}

pub fn policy(root: &str, bind_check: BindCheck) -> Policy {
    Policy {
        image: IMAGE.into(),
        workspace_root: WorkspaceRoot::parse(root).unwrap(),
        bind_check,
    }
}

/// Sets the member at `path` (`/`-separated keys; numbers index arrays, one past the end
/// appends), creating objects on the way.
pub fn set(body: &mut Value, path: &str, value: Value) {
    let mut parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let last = parts.pop().unwrap();
    let mut cur = body;
    for p in parts {
        cur = match cur {
            Value::Array(items) => &mut items[p.parse::<usize>().unwrap()],
            Value::Object(map) => map.entry(p.to_owned()).or_insert_with(|| json!({})),
            _ => panic!("cannot descend into {p}"),
        };
    }
    match cur {
        Value::Array(items) => {
            let i = last.parse::<usize>().unwrap();
            if i == items.len() {
                items.push(value);
            } else {
                items[i] = value;
            }
        }
        Value::Object(map) => {
            map.insert(last.to_owned(), value);
        }
        _ => panic!("cannot set {last}"),
    }
}

/// Removes the member at `path`.
pub fn remove(body: &mut Value, path: &str) {
    let (parent, last) = path.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        body
    } else {
        body.pointer_mut(parent).unwrap()
    };
    target.as_object_mut().unwrap().remove(last);
}

/// One HTTP/1.1 request over the Unix socket at `socket`; the status and the body (JSON
/// when it parses, else a string).
pub async fn call(socket: &Path, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    call_raw(socket, method, path, bytes.into_bytes(), &[]).await
}

pub async fn call_raw(
    socket: &Path,
    method: &str,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    try_call_raw(socket, method, path, body, headers)
        .await
        .unwrap()
}

/// Like [`call_raw`], but a connection the server closed early is an `Err`.
pub async fn try_call_raw(
    socket: &Path,
    method: &str,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Result<(u16, Value), hyper::Error> {
    let stream = UnixStream::connect(socket).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Host", "docker");
    if !body.is_empty() {
        req = req.header("Content-Type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = sender
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await?;
    let status = response.status().as_u16();
    let bytes = tokio::time::timeout(Duration::from_secs(60), response.into_body().collect())
        .await
        .expect("the answer body did not end")?
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, value))
}

/// `Some(())` when Docker is reachable and the image is built; `None` (after a SKIP line)
/// when it is not and `PINCER_SKIP_DOCKER=1`; otherwise panics with the fix.
pub async fn require_docker(test: &str) -> Option<()> {
    let reachable = match UnixStream::connect(DOCKER_SOCKET).await {
        Ok(_) => {
            let (status, body) = call(Path::new(DOCKER_SOCKET), "GET", "/_ping", None).await;
            if status == 200 {
                Ok(())
            } else {
                Err(format!("ping answered {status}: {body}"))
            }
        }
        Err(e) => Err(format!("{DOCKER_SOCKET}: {e}")),
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

/// A guard serving on a temporary Unix socket in front of the real engine, with a
/// temporary workspace root. Stopped (and its containers removed) on [`GuardHarness::stop`].
pub struct GuardHarness {
    /// Labels (`key=value`) whose containers are force-removed when the harness is dropped,
    /// also when a test fails half-way.
    pub cleanup_labels: std::sync::Mutex<Vec<String>>,
    pub socket: PathBuf,
    /// The TCP address, when started with [`GuardHarness::start_tcp`].
    pub tcp: Option<std::net::SocketAddr>,
    pub root: PathBuf,
    pub run_id: String,
    pub tmp: tempfile::TempDir,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl GuardHarness {
    /// On a Unix socket.
    pub async fn start() -> Self {
        Self::start_on(None).await
    }

    /// On TCP at 127.0.0.1 (an ephemeral port; see [`GuardHarness::tcp`]), as in compose.
    pub async fn start_tcp() -> Self {
        Self::start_on(Some(ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()))).await
    }

    async fn start_on(listen: Option<ListenAddr>) -> Self {
        // RUST_LOG=pincer_docker_guard=debug shows every decision (with --nocapture).
        pincer_runtime::telemetry::init_tracing(
            "warn",
            pincer_runtime::config::raw::LogFormat::Text,
            "docker-guard-test",
        );
        let tmp = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(tmp.path()).unwrap();
        let root = base.join("workspaces");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(root.join("main")).unwrap();
        let socket = base.join("guard.sock");
        let config = GuardConfig {
            listen: listen.unwrap_or_else(|| ListenAddr::Unix(socket.clone())),
            docker_socket: DOCKER_SOCKET.into(),
            policy: policy(root.to_str().unwrap(), BindCheck::Filesystem),
        };
        let listener = Listener::bind(&config.listen).await.unwrap();
        let tcp = listener.tcp_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                pincer_docker_guard::serve(listener, config, shutdown)
                    .await
                    .unwrap()
            }
        });
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            cleanup_labels: std::sync::Mutex::new(vec![format!("{TEST_LABEL}={run_id}")]),
            socket,
            tcp,
            root,
            run_id,
            tmp,
            shutdown,
            task,
        }
    }

    pub fn root_str(&self) -> &str {
        self.root.to_str().unwrap()
    }

    /// The executor's create body plus this run's test label, running `argv`.
    pub fn body(&self, argv: &[&str]) -> Value {
        let mut body = posture_body(self.root_str());
        set(
            &mut body,
            &format!("/Labels/{TEST_LABEL}"),
            json!(self.run_id),
        );
        set(&mut body, "/Cmd", json!(argv));
        body
    }

    pub fn label_filter(&self) -> String {
        format!("{TEST_LABEL}={}", self.run_id)
    }

    /// Ids of the containers (running or not) carrying this run's label, asked of the
    /// engine directly.
    pub async fn containers(&self) -> Vec<String> {
        let filters = json!({ "label": [self.label_filter()] }).to_string();
        let path = format!(
            "/containers/json?all=true&filters={}",
            url::form_urlencoded::byte_serialize(filters.as_bytes()).collect::<String>()
        );
        let (status, list) = call(Path::new(DOCKER_SOCKET), "GET", &path, None).await;
        assert_eq!(status, 200, "{list}");
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["Id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Force-removes this run's containers directly on the engine.
    pub async fn cleanup(&self) {
        for id in self.containers().await {
            call(
                Path::new(DOCKER_SOCKET),
                "DELETE",
                &format!("/containers/{id}?force=true&v=true"),
                None,
            )
            .await;
        }
    }

    /// Stops the guard and waits for it (the containers go when the harness drops).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("the guard did not stop")
            .unwrap();
    }
}

impl Drop for GuardHarness {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let labels = self
            .cleanup_labels
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        for label in labels {
            let Ok(out) = std::process::Command::new("docker")
                .args(["ps", "-aq", "--filter", &format!("label={label}")])
                .output()
            else {
                continue;
            };
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f", "-v"])
                    .args(&ids)
                    .output();
            }
        }
    }
}
