//! The Docker backend against a real Docker engine: results, limits, and the posture checked
//! from inside the sandbox. Needs Docker (see `common::require_docker`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptions;
use common::*;
use pincer_executor::docker::posture::SANDBOX_LABEL;
use pincer_executor::{DockerSettings, ExecutorError};

#[tokio::test]
async fn writes_to_the_workspace_and_returns_output() {
    let _shared = REAP_LOCK.read().await;
    let Some(()) = require_docker("writes_to_the_workspace_and_returns_output").await else {
        return;
    };
    let h = Harness::new();
    let out = h.shell("echo hi > note.txt && cat note.txt").await;
    assert_eq!(out.exit_code, 0, "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");
    assert!(!out.timed_out && !out.output_truncated);
    assert_eq!(
        std::fs::read_to_string(h.agent_dir().join("note.txt")).unwrap(),
        "hi\n"
    );

    // The cwd is created inside the workspace and used as the working directory.
    let mut req = shell_request("pwd && touch here", 0);
    req.cwd = "sub/./dir/".into();
    let out = h.run(req).await;
    assert_eq!(text(&out.stdout), "/workspace/sub/dir\n");
    assert!(h.agent_dir().join("sub/dir/here").exists());
    assert_eq!(h.leftovers().await, 0, "containers must be removed");
}

#[tokio::test]
async fn exit_codes_and_stderr_propagate() {
    let _shared = REAP_LOCK.read().await;
    let Some(()) = require_docker("exit_codes_and_stderr_propagate").await else {
        return;
    };
    let h = Harness::new();
    let out = h.shell("echo oops >&2; exit 3").await;
    assert_eq!(out.exit_code, 3);
    assert_eq!(text(&out.stderr), "oops\n");
    assert!(out.stdout.is_empty());

    // Argv runs without a shell: metacharacters are plain arguments.
    let out = h.run(argv_request(&["echo", "a;b", "$HOME"])).await;
    assert_eq!(out.exit_code, 0);
    assert_eq!(text(&out.stdout), "a;b $HOME\n");
    let out = h.run(argv_request(&["false"])).await;
    assert_eq!(out.exit_code, 1);
    assert_eq!(h.leftovers().await, 0);
}

#[tokio::test]
async fn timeout_kills_the_sandbox() {
    let _shared = REAP_LOCK.read().await;
    let Some(()) = require_docker("timeout_kills_the_sandbox").await else {
        return;
    };
    let h = Harness::new();
    let started = Instant::now();
    let out = h.run(shell_request("echo started; sleep 30", 1_000)).await;
    assert!(out.timed_out);
    assert_eq!(out.exit_code, -1);
    assert_eq!(text(&out.stdout), "started\n");
    assert!(out.duration >= Duration::from_millis(1_000));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(h.leftovers().await, 0);
}

#[tokio::test]
async fn output_is_capped_and_drained() {
    let _shared = REAP_LOCK.read().await;
    let Some(()) = require_docker("output_is_capped_and_drained").await else {
        return;
    };
    let h = Harness::new();
    let out = h.shell("yes | head -c 10000000; echo done >&2").await;
    assert_eq!(out.exit_code, 0);
    assert!(!out.timed_out);
    assert!(out.output_truncated);
    assert_eq!(out.stdout.len(), MAX_OUTPUT as usize);
    assert!(out.stdout.starts_with(b"y\ny\n"));
    // The writer was never blocked: it finished and wrote its last line.
    assert_eq!(text(&out.stderr), "done\n");
}

#[tokio::test]
async fn posture_inside_the_sandbox() {
    let _shared = REAP_LOCK.read().await;
    let Some(()) = require_docker("posture_inside_the_sandbox").await else {
        return;
    };
    let h = Harness::new();

    let out = h.shell("id -u; id -g").await;
    let ids = text(&out.stdout);
    assert!(!ids.lines().any(|l| l == "0"), "runs as root: {ids}");

    let out = h.shell("touch /rootfs-write-test").await;
    assert_ne!(out.exit_code, 0);
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );

    // No interface but loopback, and no route anywhere.
    let out = h
        .shell("cat /proc/net/dev; echo ROUTES; tail -n +2 /proc/net/route")
        .await;
    let stdout = text(&out.stdout);
    let (dev, routes) = stdout.split_once("ROUTES").unwrap();
    let interfaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "{dev}");
    assert!(routes.trim().is_empty(), "routes: {routes}");

    let out = h
        .shell("grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status")
        .await;
    let status = text(&out.stdout);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert_eq!(field("CapPrm:"), "0000000000000000", "{status}");
    assert_eq!(field("CapBnd:"), "0000000000000000", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");

    // /tmp is writable but not executable.
    let out = h
        .shell("printf '#!/bin/sh\\necho ran\\n' > /tmp/s && chmod +x /tmp/s && /tmp/s")
        .await;
    assert_ne!(out.exit_code, 0);
    assert!(!text(&out.stdout).contains("ran"));

    // The environment is ours only (Docker adds HOSTNAME).
    let out = h.run(argv_request(&["env"])).await;
    let mut keys: Vec<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_owned()))
        .collect();
    keys.sort();
    assert_eq!(keys, ["HOME", "HOSTNAME", "LANG", "PATH"]);

    // No core dumps, bounded open files.
    let out = h.shell("ulimit -c; ulimit -n").await;
    assert_eq!(text(&out.stdout), "0\n1024\n");
    assert_eq!(h.leftovers().await, 0);
}

#[tokio::test]
async fn fork_bomb_hits_the_pids_limit() {
    let _shared = REAP_LOCK.read().await;
    let Some(()) = require_docker("fork_bomb_hits_the_pids_limit").await else {
        return;
    };
    let h = Harness::new();
    let started = Instant::now();
    let out = h
        .run(shell_request(
            "for i in $(seq 500); do sleep 5 & done; echo spawned-all",
            20_000,
        ))
        .await;
    let stderr = text(&out.stderr);
    assert!(
        !text(&out.stdout).contains("spawned-all"),
        "500 processes started"
    );
    assert!(stderr.to_lowercase().contains("fork"), "stderr: {stderr}");
    assert!(!out.timed_out);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(h.leftovers().await, 0);
}

#[tokio::test]
async fn missing_image_says_how_to_build_it() {
    let _shared = REAP_LOCK.read().await;
    let Some(()) = require_docker("missing_image_says_how_to_build_it").await else {
        return;
    };
    let settings = DockerSettings {
        image: "pincer-sandbox-missing:never".into(),
        ..docker_settings()
    };
    let h = Harness::with_settings(settings);
    let err = h.try_run(shell_request("true", 0)).await.unwrap_err();
    assert!(matches!(err, ExecutorError::ImageMissing { .. }), "{err}");
    assert!(err.to_string().contains("images/sandbox/build.sh"));
    assert_eq!(
        tonic::Status::from(err).code(),
        tonic::Code::FailedPrecondition
    );
}

#[tokio::test]
async fn reaper_removes_leftover_sandboxes() {
    let _exclusive = REAP_LOCK.write().await;
    let Some(()) = require_docker("reaper_removes_leftover_sandboxes").await else {
        return;
    };
    let h = Harness::new();
    let docker = h.backend.client().await.unwrap();
    let label = format!("{SANDBOX_LABEL}=1");
    // A leftover from a "crashed" executor: labelled, running.
    let leftover = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(format!("pincer-sbx-leftover-{}", std::process::id())),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some(IMAGE.into()),
                cmd: Some(vec!["sleep".into(), "300".into()]),
                labels: Some(HashMap::from([(SANDBOX_LABEL.to_owned(), "1".to_owned())])),
                host_config: Some(bollard::models::HostConfig {
                    network_mode: Some("none".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    docker
        .start_container(
            &leftover.id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .unwrap();
    assert!(count_labelled(docker, &label).await >= 1);

    let removed = h.backend.reap_leftovers().await.unwrap();
    assert!(removed >= 1);
    assert_eq!(count_labelled(docker, &label).await, 0);
}

#[tokio::test]
async fn a_missing_program_exits_127() {
    let _shared = REAP_LOCK.read().await;
    let Some(()) = require_docker("a_missing_program_exits_127").await else {
        return;
    };
    let h = Harness::new();
    for program in ["/no/such/program", "nosuchprog"] {
        let out = h.run(argv_request(&[program])).await;
        assert_eq!(out.exit_code, 127, "{program}");
        assert!(text(&out.stderr).contains(program), "{}", text(&out.stderr));
    }
    let out = h.shell("nosuchprog").await;
    assert_eq!(out.exit_code, 127);
    assert_eq!(h.leftovers().await, 0);
}

#[tokio::test]
async fn extra_environment_reaches_the_command() {
    let _shared = REAP_LOCK.read().await;
    let Some(()) = require_docker("extra_environment_reaches_the_command").await else {
        return;
    };
    let h = Harness::new();
    let mut req = argv_request(&["env"]);
    req.env.insert("GREETING".into(), "hello world".into());
    req.env.insert("EMPTY".into(), String::new());
    let out = h.run(req).await;
    let mut lines: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("HOSTNAME="))
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "EMPTY=",
            "GREETING=hello world",
            "HOME=/tmp",
            "LANG=C.UTF-8",
            "PATH=/usr/local/bin:/usr/bin:/bin"
        ]
    );
    // The sandbox's own cannot be overridden (refused by validation).
    let mut req = argv_request(&["env"]);
    req.env.insert("PATH".into(), "/workspace".into());
    assert!(matches!(try_validate(req), Err(ExecutorError::Plan(_))));
    assert_eq!(h.leftovers().await, 0);
}
