//! `pincer sandbox exec|explain` as a user runs it: the real binary, re-executing itself as
//! the jail helper.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const CANARY: &str = "pincer-cli-canary-51d0";

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
    let mut args = vec!["sandbox", "exec"];
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

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A workspace the jail user may write, next to another session's workspace it must not
/// read (world-readable, so only the jail refuses).
struct Dirs {
    _dir: tempfile::TempDir,
    ws: String,
    secret: String,
}

fn dirs() -> Dirs {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let ws = base.join("ws");
    let other = base.join("other");
    std::fs::create_dir(&ws).unwrap();
    std::fs::create_dir(&other).unwrap();
    let secret = other.join("secret.txt");
    std::fs::write(&secret, CANARY).unwrap();
    for (p, mode) in [
        (&base, 0o755),
        (&ws, 0o755),
        (&other, 0o755),
        (&secret, 0o644),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    if is_root() {
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        nix::unistd::chown(&ws, nobody, Some(nix::unistd::Gid::from_raw(65534))).unwrap();
    }
    Dirs {
        _dir: dir,
        ws: ws.to_str().unwrap().to_owned(),
        secret: secret.to_str().unwrap().to_owned(),
    }
}

#[test]
fn echo_hi_prints_and_exits_zero() {
    let o = exec(&[], &["echo", "hi"]);
    assert_eq!(stdout(&o), "hi\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn the_exit_code_propagates() {
    let o = exec(&[], &["sh", "-c", "echo err >&2; exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(stderr(&o), "err\n");
}

#[test]
fn a_signal_becomes_128_plus_n() {
    let o = exec(&[], &["sh", "-c", "kill -9 $$"]);
    assert_eq!(o.status.code(), Some(128 + 9));
    assert!(stderr(&o).contains("killed by signal 9"));
}

#[test]
fn a_timeout_kills_and_exits_124() {
    let started = Instant::now();
    let o = exec(&["--timeout", "1"], &["sh", "-c", "trap '' TERM; sleep 30"]);
    assert_eq!(o.status.code(), Some(124));
    assert!(stderr(&o).contains("timed out"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_missing_program_exits_127() {
    let o = exec(&[], &["no-such-program-xyz"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("No such file or directory"));
}

#[test]
fn only_network_none_and_egress_are_accepted() {
    let o = exec(&["--network", "host"], &["true"]);
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    assert!(
        stderr(&o).contains("invalid value 'host'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn output_is_capped_with_a_note() {
    let o = exec(&[], &["head", "-c", "100000", "/dev/zero"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(o.stdout.len(), 64 * 1024);
    assert!(
        stderr(&o).contains("stdout truncated: kept 65536 of 100000 bytes"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_workspace_is_writable_read_write_and_not_read_only() {
    let d = dirs();
    let o = exec(
        &["--workspace", &d.ws],
        &["sh", "-c", "echo hi > note.txt && cat note.txt"],
    );
    assert_eq!(stdout(&o), "hi\n", "{}", stderr(&o));
    assert!(Path::new(&d.ws).join("note.txt").exists());
    let o = exec(
        &["--workspace", &d.ws, "--access", "ro"],
        &["sh", "-c", "cat note.txt; echo x > other.txt"],
    );
    assert_eq!(stdout(&o), "hi\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot create other.txt: Permission denied"));
    assert!(!Path::new(&d.ws).join("other.txt").exists());
}

#[test]
fn escapes_fail_from_the_cli_too() {
    let d = dirs();
    let o = exec(&["--workspace", &d.ws], &["cat", &d.secret]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Permission denied"));
    assert!(!stdout(&o).contains(CANARY));

    let o = exec(&[], &["cat", "/etc/shadow"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/etc/shadow: Permission denied"));

    let o = exec(
        &[],
        &[
            "python3",
            "-c",
            "import socket\ntry: socket.socket(); print('SOCKET')\nexcept OSError as e: print(e.strerror)",
        ],
    );
    assert_eq!(stdout(&o), "Operation not permitted\n");
}

#[test]
fn a_background_daemon_is_gone_when_exec_returns() {
    let started = Instant::now();
    let o = exec(&[], &["sh", "-c", "setsid sleep 1000 & echo $!"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid: i32 = stdout(&o).trim().parse().unwrap();
    // No pid namespace: the printed pid is a host pid.
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(),
        "pid {pid} survived"
    );
}

#[test]
fn explain_reports_this_host() {
    let o = pincer(&["sandbox", "explain"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(text.starts_with("Jail backend on this host\n"), "{text}");
    assert!(text.contains("Landlock: ABI"));
    assert!(text.contains("namespaces (unshare tried in a child"));
    assert!(text.contains("A default profile here enforces, in order:"));
}

#[test]
fn the_helper_marker_without_a_caller_fails_cleanly() {
    let o = Command::new(env!("CARGO_BIN_EXE_pincer"))
        .arg("__pincer-jail-helper")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("pincer jail helper: usage"),
        "{}",
        stderr(&o)
    );
}

/// Without CAP_SYS_ADMIN (as under Docker's default profile) root cannot unshare: the jail
/// runs without namespaces, says so, and still confines.
#[test]
fn without_namespaces_the_jail_still_confines_and_says_so() {
    if !is_root() {
        eprintln!("SKIP: needs root to drop CAP_SYS_ADMIN with setpriv");
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--bounding-set=-sys_admin", "--"])
            .arg(env!("CARGO_BIN_EXE_pincer"))
            .args(args)
            .env("PINCER_STATE_DIR", state.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = run(&["sandbox", "explain"]);
    let text = stdout(&o);
    assert!(
        text.contains("net refused (Operation not permitted)"),
        "{text}"
    );
    assert!(text.contains("namespaces: NONE"), "{text}");

    let o = run(&[
        "sandbox",
        "exec",
        "--",
        "sh",
        "-c",
        "hostname; cat /etc/shadow; ls /proc; python3 -c 'import socket; socket.socket()'",
    ]);
    let host = nix::unistd::gethostname().unwrap();
    assert_eq!(
        stdout(&o).trim(),
        host.to_str().unwrap(),
        "host name not hidden"
    );
    let err = stderr(&o);
    assert!(err.contains("/etc/shadow: Permission denied"), "{err}");
    assert!(err.contains("'/proc': Permission denied"), "{err}");
    assert!(err.contains("PermissionError"), "{err}");
}

/// A loopback origin (one thread) answering each request with its request line.
fn origin() -> u16 {
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
    port
}

const FETCH: &str = "import sys, urllib.request, urllib.error\n\
try: print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())\n\
except urllib.error.HTTPError as e: print(e.code, e.read().decode().strip())\n\
except OSError as e: print('ERROR', e)";

#[test]
fn network_egress_goes_through_the_guarded_proxy() {
    let port = origin();
    let url = format!("http://127.0.0.1:{port}/page?q=1");
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
        &["python3", "-c", FETCH, &url],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "origin saw: GET /page?q=1 HTTP/1.1");

    // The guard's rules apply: 127.0.0.1 is not re-allowed here, so the proxy refuses it
    // and names the rule; a direct connection has no route out of the namespace.
    let o = exec(&["--network", "egress"], &["python3", "-c", FETCH, &url]);
    let text = stdout(&o);
    assert!(text.starts_with("403 "), "{text} {}", stderr(&o));
    assert!(text.contains("127.0.0.1"), "{text}");

    // Without egress: no proxy, no sockets.
    let o = exec(&[], &["python3", "-c", FETCH, &url]);
    let text = stdout(&o);
    assert!(
        text.starts_with("ERROR") && text.contains("Operation not permitted"),
        "{text}"
    );
}

#[test]
fn egress_options_need_network_egress() {
    let o = exec(&["--allow-network", "10.0.0.0/8"], &["true"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--network <NETWORK>"), "{}", stderr(&o));
    let o = exec(&["--network", "none", "--egress-port", "8080"], &["true"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("go with --network egress"),
        "{}",
        stderr(&o)
    );
}

/// Egress needs a private network namespace; a host that refuses one refuses the call
/// (it would otherwise get the host's network) and says why.
#[test]
fn egress_without_a_network_namespace_fails_closed() {
    if !is_root() {
        eprintln!("SKIP: needs root to drop CAP_SYS_ADMIN with setpriv");
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let o = Command::new("setpriv")
        .args(["--bounding-set=-sys_admin", "--"])
        .arg(env!("CARGO_BIN_EXE_pincer"))
        .args([
            "sandbox",
            "exec",
            "--network",
            "egress",
            "--",
            "echo",
            "RAN",
        ])
        .env("PINCER_STATE_DIR", state.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(!stdout(&o).contains("RAN"));
    assert!(
        stderr(&o).contains("network egress needs a private network namespace"),
        "{}",
        stderr(&o)
    );
}
