//! `pincer sandbox exec --backend docker` as a user runs it: the real binary, the
//! executor's Docker backend, a real engine and the sandbox image. Needs Docker: fails
//! loudly without it, or prints SKIP with `PINCER_SKIP_DOCKER=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const IMAGE: &str = "pincer-sandbox:latest";

/// `true` when Docker answers and the image is built; `false` (after a SKIP line) when it
/// does not and `PINCER_SKIP_DOCKER=1`; otherwise panics with the fix.
fn require_docker(test: &str) -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let info = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run docker: {e}"))?;
        if !info.status.success() {
            return Err(format!(
                "the engine does not answer: {}",
                String::from_utf8_lossy(&info.stderr).trim()
            ));
        }
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../images/sandbox/build.sh");
        let build = Command::new("bash")
            .arg(&script)
            .arg(IMAGE)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if build.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&build.stderr)
            ))
        }
    });
    match ready {
        Ok(()) => true,
        Err(e) if std::env::var("PINCER_SKIP_DOCKER").as_deref() == Ok("1") => {
            println!("SKIP: {test}: Docker is not usable ({e}) (run scripts/setup-docker.sh)");
            false
        }
        Err(e) => panic!(
            "{test} needs Docker and the sandbox image: {e}\n\
             fix: run `bash scripts/setup-docker.sh` (or set PINCER_SKIP_DOCKER=1 to skip locally)"
        ),
    }
}

fn pincer(args: &[&str]) -> Output {
    let state = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_pincer"))
        .args(args)
        .env("PINCER_STATE_DIR", state.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn exec(extra: &[&str], command: &[&str]) -> Output {
    let mut args = vec!["sandbox", "exec", "--backend", "docker"];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(command);
    pincer(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The uid:gid the command runs as (10001 when the tests run as root, else ours).
fn sandbox_user() -> (u32, u32) {
    let uid = nix::unistd::geteuid().as_raw();
    if uid == 0 {
        (10001, 10001)
    } else {
        (uid, nix::unistd::getegid().as_raw())
    }
}

/// A workspace the sandbox user owns.
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::set_permissions(&ws, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (uid, gid) = sandbox_user();
    nix::unistd::chown(
        &ws,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .unwrap();
    (dir, ws)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn output_and_exit_status_propagate() {
    if !require_docker("output_and_exit_status_propagate") {
        return;
    }
    let o = exec(&[], &["echo", "hi"]);
    assert_eq!(stdout(&o), "hi\n", "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(0));

    let o = exec(&[], &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");

    // A signal death is 128+N, as from a shell.
    let o = exec(&[], &["sh", "-c", "kill -9 $$"]);
    assert_eq!(o.status.code(), Some(128 + 9), "{}", stderr(&o));

    // Runs as the sandbox user, with no network and a read-only root.
    let (uid, _) = sandbox_user();
    let o = exec(
        &[],
        &[
            "sh",
            "-c",
            "id -u; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; touch /x",
        ],
    );
    assert_eq!(stdout(&o), format!("{uid}\nlo\n"));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn a_missing_program_exits_127() {
    if !require_docker("a_missing_program_exits_127") {
        return;
    }
    let o = exec(&[], &["no-such-program-xyz"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("no-such-program-xyz"), "{}", stderr(&o));
}

#[test]
fn a_workspace_write_is_visible_on_the_host() {
    if !require_docker("a_workspace_write_is_visible_on_the_host") {
        return;
    }
    let (_dir, ws) = workspace();
    std::fs::create_dir(ws.join("sub")).unwrap();
    let (uid, gid) = sandbox_user();
    nix::unistd::chown(
        &ws.join("sub"),
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .unwrap();
    let o = exec(
        &["--workspace", path(&ws), "--access", "rw", "--cwd", "sub"],
        &["sh", "-c", "pwd; echo hi > note.txt && cat note.txt"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "/workspace/sub\nhi\n");
    assert_eq!(
        std::fs::read_to_string(ws.join("sub/note.txt")).unwrap(),
        "hi\n"
    );
}

#[test]
fn a_read_only_workspace_refuses_writes() {
    if !require_docker("a_read_only_workspace_refuses_writes") {
        return;
    }
    let (_dir, ws) = workspace();
    std::fs::write(ws.join("note.txt"), "kept\n").unwrap();
    let o = exec(
        &["--workspace", path(&ws), "--access", "ro"],
        &[
            "sh",
            "-c",
            "cat note.txt; echo x > other.txt; echo y >> note.txt",
        ],
    );
    assert_eq!(stdout(&o), "kept\n");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot create other.txt: Read-only file system"),
        "{}",
        stderr(&o)
    );
    assert!(!ws.join("other.txt").exists());
    assert_eq!(
        std::fs::read_to_string(ws.join("note.txt")).unwrap(),
        "kept\n"
    );
}

#[test]
fn a_bad_cwd_is_refused_before_anything_runs() {
    if !require_docker("a_bad_cwd_is_refused_before_anything_runs") {
        return;
    }
    let (dir, ws) = workspace();
    std::os::unix::fs::symlink(dir.path(), ws.join("up")).unwrap();
    for (cwd, why) in [
        ("../x", "climbs above the workspace"),
        ("missing", "does not exist in the workspace"),
        ("up", "passes through a symbolic link"),
    ] {
        let o = exec(
            &["--workspace", path(&ws), "--cwd", cwd],
            &["touch", "escaped"],
        );
        assert_eq!(o.status.code(), Some(125), "{cwd}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{cwd}: {}", stderr(&o));
    }
    assert!(!dir.path().join("escaped").exists());
    assert!(!ws.join("missing").exists(), "the engine created the cwd");
}

#[test]
fn without_a_workspace_a_private_directory_is_used_and_removed() {
    if !require_docker("without_a_workspace_a_private_directory_is_used_and_removed") {
        return;
    }
    // A temporary directory of this test's own, so other tests' calls do not show up.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_pincer"))
        .args(["sandbox", "exec", "--backend", "docker", "--"])
        .args(["sh", "-c", "pwd; echo x > f && ls"])
        .env("PINCER_STATE_DIR", state.path())
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "/workspace\nf\n");
    let left: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_timeout_kills_and_exits_124() {
    if !require_docker("a_timeout_kills_and_exits_124") {
        return;
    }
    let started = Instant::now();
    let o = exec(
        &["--timeout", "1"],
        &["sh", "-c", "trap '' TERM; echo started; sleep 30"],
    );
    assert_eq!(o.status.code(), Some(124), "{}", stderr(&o));
    assert_eq!(stdout(&o), "started\n");
    assert!(stderr(&o).contains("timed out"), "{}", stderr(&o));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );

    // Beyond the executor's ceiling: refused, nothing runs.
    let o = exec(&["--timeout", "601"], &["true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("--timeout must be 1 to 600"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_missing_image_exits_125_and_says_how_to_build_it() {
    if !require_docker("a_missing_image_exits_125_and_says_how_to_build_it") {
        return;
    }
    let o = exec(
        &["--image", "pincer-sandbox-missing:never"],
        &["echo", "hi"],
    );
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert!(err.contains("pincer-sandbox-missing:never"), "{err}");
    assert!(err.contains("bash images/sandbox/build.sh"), "{err}");
}

#[test]
fn an_unreachable_engine_exits_125() {
    let state = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_pincer"))
        .args(["sandbox", "exec", "--backend", "docker", "--", "true"])
        .env("PINCER_STATE_DIR", state.path())
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no-docker.sock", state.path().display()),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("the Docker engine is unreachable"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn escapes_fail_from_the_cli_too() {
    if !require_docker("escapes_fail_from_the_cli_too") {
        return;
    }
    let o = exec(&[], &["cat", "/etc/shadow"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/etc/shadow: Permission denied"));

    // The executor's seccomp profile applies (Docker's default would allow io_uring).
    let o = exec(
        &[],
        &[
            "python3",
            "-c",
            "import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\n\
             r = libc.syscall(425, 0, 0)\nprint(errno.errorcode[ctypes.get_errno()])",
        ],
    );
    assert_eq!(stdout(&o), "EPERM\n", "{}", stderr(&o));
}

#[test]
fn image_is_only_for_docker() {
    let o = pincer(&["sandbox", "exec", "--image", IMAGE, "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--image is for --backend docker"));
}

#[test]
fn the_docker_defaults_are_the_executors() {
    let text = r#"{
        models: { providers: { fake: { api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" } } },
        agents: { defaults: { model: "fake/m" } },
    }"#;
    let config = pincer_runtime::config::parse_config(text, "test").unwrap();
    let docker = &config.executor.docker;
    use pincer::sandbox_cmd::*;
    assert_eq!(docker.image, DOCKER_IMAGE);
    assert_eq!(docker.memory_bytes, DOCKER_MEMORY_BYTES);
    assert_eq!(docker.pids_limit, DOCKER_PIDS_LIMIT);
    assert_eq!(docker.nano_cpus, DOCKER_NANO_CPUS);
}

#[test]
fn an_interrupted_call_removes_its_container() {
    if !require_docker("an_interrupted_call_removes_its_container") {
        return;
    }
    let marker = format!("pincer-cli-interrupt-{}", std::process::id());
    let state = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pincer"))
        .args(["sandbox", "exec", "--backend", "docker", "--"])
        .args([
            "sh",
            "-c",
            &format!("echo started; sleep 300; echo {marker}"),
        ])
        .env("PINCER_STATE_DIR", state.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ours = || {
        let out = Command::new("docker")
            .args([
                "ps",
                "-a",
                "--no-trunc",
                "--filter",
                "label=pincer.agent=cli",
                "--format",
                "{{.Command}}",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&marker))
            .count()
    };
    let started = Instant::now();
    while ours() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the container never appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    assert_eq!(ours(), 0, "the container survived the interrupt");
}

/// `--network egress` on Docker: the container's relay carries the command's proxy
/// connections to the call's guarded proxy; without the flag there is no network.
#[test]
fn network_egress_goes_through_the_guarded_proxy() {
    if !require_docker("network_egress_goes_through_the_guarded_proxy") {
        return;
    }
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let body = format!("origin saw: {}", first.trim_end());
            let mut conn = conn;
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let fetch = "import sys, urllib.request\n\
        try: print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())\n\
        except OSError as e: print('ERROR', e)";
    let url = format!("http://127.0.0.1:{port}/via-docker");
    let p = port.to_string();
    let o = exec(
        &[
            "--network",
            "egress",
            "--allow-network",
            "127.0.0.1/32",
            "--egress-port",
            &p,
        ],
        &["python3", "-c", fetch, &url],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "origin saw: GET /via-docker HTTP/1.1");
    let o = exec(&[], &["python3", "-c", fetch, &url]);
    assert!(stdout(&o).trim().starts_with("ERROR"), "{}", stdout(&o));
}
