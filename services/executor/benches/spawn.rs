//! Spawn latency of one `exec` call through the executor's backends, end to end from a
//! validated plan to the outcome: (a) the jail backend (`JailBackend`, this binary as its
//! own helper), (b) the Docker backend (`DockerBackend::run`: create, attach, start, wait,
//! remove through the Engine API, posture and seccomp profile included), (d) the Docker
//! backend with session reuse (`executor.docker.reuse: "session"`: each call a `docker
//! exec` into the session's container, made by the warm-up), and (c)
//! `docker run --rm --network none pincer-sandbox:latest true` through the CLI, for
//! comparison. Each runs `true`, and (a), (b) and (d) also a small shell script that writes
//! and reads a file. Prints p50/p99/max in ms. Numbers for notes, never asserted.
//!
//! `cargo bench -p pincer-executor --bench spawn` (release). Runs per case:
//! `PINCER_BENCH_RUNS` (default 50), after `PINCER_BENCH_WARMUP` warm-up runs (default 3).
//! Needs a Docker engine and the sandbox image (`bash images/sandbox/build.sh`) for (b) and
//! (c); without them those rows say why and are skipped.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_executor::docker::ContainerReuse;
use pincer_executor::jail::JailBackend;
use pincer_executor::{
    DockerBackend, DockerSettings, ExecLimits, ExecOutcome, ExecPlan, FixedClock, Sandbox,
    SandboxUser, ValidatedExecPlan, Workspaces,
};
use pincer_proto::v1::{Argv, ExecRequest, exec_request};

const IMAGE: &str = "pincer-sandbox:latest";
const SCRIPT: &str = "echo hi > f && cat f >/dev/null";

type BenchError = Box<dyn std::error::Error>;

fn main() -> Result<(), BenchError> {
    // First, before any thread: the jail backend re-executes this binary as its helper.
    pincer_jail::run_helper_if_requested();
    let runs = env_count("PINCER_BENCH_RUNS", 50).max(1);
    let warmup = env_count("PINCER_BENCH_WARMUP", 3);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(runs, warmup))
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn bench(runs: usize, warmup: usize) -> Result<(), BenchError> {
    let user = SandboxUser::for_this_process();
    println!(
        "executor spawn bench: {} CPUs, uid {}, sandbox user {}, {runs} runs per case after {warmup} warm-up runs",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        nix::unistd::geteuid(),
        user.docker_user(),
    );
    // The workspace root must be reachable by the sandbox user (the jail checks).
    let tmp = tempfile::tempdir()?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711))?;
    let workspaces = Workspaces::new(tmp.path().join("workspaces"), user);

    let jail = Arc::new(JailBackend::new(std::env::current_exe()?, user, 64 * 1024));
    for (name, argv) in cases() {
        let row = format!("(a) jail backend, {name}");
        let backend = Arc::clone(&jail);
        series(&row, runs, warmup, || {
            call(backend.as_ref(), &workspaces, &argv)
        })
        .await;
    }

    let settings = DockerSettings {
        host: None,
        image: IMAGE.to_owned(),
        memory_bytes: 512 * 1024 * 1024,
        pids_limit: 128,
        nano_cpus: 1_000_000_000,
        host_workspace_root: None,
        user,
        max_output_bytes: 64 * 1024,
        reuse: ContainerReuse::PerCall,
    };
    let docker = Arc::new(DockerBackend::new(settings.clone()));
    let session = Arc::new(DockerBackend::new(DockerSettings {
        reuse: ContainerReuse::PerSession {
            idle: Duration::from_secs(600),
        },
        ..settings
    }));
    match docker_ready(&docker).await {
        Ok(()) => {
            for (name, argv) in cases() {
                let row = format!("(b) Docker backend, {name}");
                let backend = Arc::clone(&docker);
                series(&row, runs, warmup, || {
                    call(backend.as_ref(), &workspaces, &argv)
                })
                .await;
            }
            for (name, argv) in cases() {
                let row = format!("(d) Docker backend, session reuse, {name}");
                let backend = Arc::clone(&session);
                series(&row, runs, warmup.max(1), || {
                    call(backend.as_ref(), &workspaces, &argv)
                })
                .await;
            }
            if let Err(e) = session.reap_own().await {
                println!("  cannot remove the session container: {e}");
            }
            series(
                "(c) docker run --rm --network none, true",
                runs,
                warmup,
                docker_cli_true,
            )
            .await;
        }
        Err(why) => println!("  (b), (c), (d) skipped: {why}"),
    }
    Ok(())
}

fn cases() -> [(&'static str, Vec<String>); 2] {
    [
        ("true", vec!["true".to_owned()]),
        (
            "sh: write+read a file",
            ["/bin/sh", "-c", SCRIPT].map(str::to_owned).to_vec(),
        ),
    ]
}

async fn docker_ready(docker: &DockerBackend) -> Result<(), String> {
    let client = docker.client().await.map_err(|e| e.to_string())?;
    client
        .inspect_image(IMAGE)
        .await
        .map(|_| ())
        .map_err(|e| format!("{IMAGE}: {e} (build it with `bash images/sandbox/build.sh`)"))
}

/// Runs `f` `warmup` times, then `runs` times timing each; prints one row.
async fn series<F, Fut>(name: &str, runs: usize, warmup: usize, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    for _ in 0..warmup {
        if let Err(e) = f().await {
            println!("  {name:<56} failed: {e}");
            return;
        }
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        if let Err(e) = f().await {
            println!("  {name:<56} failed: {e}");
            return;
        }
        times.push(started.elapsed());
    }
    times.sort_unstable();
    let pct = |p: usize| times[((times.len() * p).div_ceil(100)).saturating_sub(1)];
    let max = times.last().copied().unwrap_or_default();
    println!(
        "  {name:<56} p50 {:>8.1} ms   p99 {:>8.1} ms   max {:>8.1} ms   (n={})",
        ms(pct(50)),
        ms(pct(99)),
        ms(max),
        times.len()
    );
}

/// One call as the executor's service makes it: validate, prepare the workspace, run.
async fn call<B: Sandbox>(
    backend: &B,
    workspaces: &Workspaces,
    argv: &[String],
) -> Result<(), String> {
    let plan = plan(argv)?;
    let workspace = workspaces.prepare(&plan).map_err(|e| e.to_string())?;
    let outcome: ExecOutcome = backend
        .run(plan, workspace)
        .await
        .map_err(|e| e.to_string())?;
    if outcome.exit_code != 0 || outcome.timed_out {
        return Err(format!(
            "exit {} (timed out: {}): {}",
            outcome.exit_code,
            outcome.timed_out,
            String::from_utf8_lossy(&outcome.stderr)
        ));
    }
    Ok(())
}

fn plan(argv: &[String]) -> Result<ValidatedExecPlan, String> {
    use pincer_executor::Clock;
    let now = pincer_executor::SystemClock.now_ms();
    let grant = pincer_executor::grant::testing::grant(&["exec"], "bench", "main", now + 600_000);
    ExecPlan::from(ExecRequest {
        grant: Some(grant),
        session_key: "bench".into(),
        command: Some(exec_request::Command::Argv(Argv {
            args: argv.to_vec(),
        })),
        timeout_ms: 30_000,
        ..Default::default()
    })
    .validate(
        ExecLimits {
            max_timeout: Duration::from_secs(30),
        },
        &pincer_executor::grant::testing::keys(),
        &FixedClock(now),
    )
    .map_err(|e| e.to_string())
}

async fn docker_cli_true() -> Result<(), String> {
    let status = tokio::process::Command::new("docker")
        .args(["run", "--rm", "--network", "none", IMAGE, "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("docker run: {status}"))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
