//! `Jail::spawn`: a command that runs in the background, with its stdin as a pipe, its
//! output read as it comes, and a kill. The jail's guarantees hold as for `Jail::run`
//! (a few checks here; the escape battery covers the layers themselves).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{CANARY, Fixture, alive, jail};
use pincer_jail::{JailError, JailProcess, Limits, ProcessOutput, ProcessStatus};

const WAIT: Duration = Duration::from_secs(10);

fn spawn(fx: &Fixture, argv: &[&str]) -> JailProcess {
    jail()
        .spawn(&fx.profile(argv.iter().copied()).build().unwrap())
        .unwrap()
}

/// Reads output until `stdout` holds `want` (or fails after [`WAIT`]).
fn read_until(p: &JailProcess, want: &str) -> ProcessOutput {
    let deadline = Instant::now() + WAIT;
    let mut all = ProcessOutput::default();
    while !String::from_utf8_lossy(&all.stdout).contains(want) {
        assert!(Instant::now() < deadline, "no {want:?} in {all:?}");
        p.wait_output(Duration::from_millis(200));
        let new = p.take_output();
        all.stdout.extend(new.stdout);
        all.stderr.extend(new.stderr);
        all.stdout_dropped += new.stdout_dropped;
        all.stderr_dropped += new.stderr_dropped;
    }
    all
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn cat_echoes_stdin_and_exits_when_it_is_closed() {
    let fx = Fixture::new();
    let p = spawn(&fx, &["cat"]);
    assert!(p.pid().is_some());
    assert!(p.enforcement().seccomp && p.enforcement().no_new_privs);
    assert_eq!(p.try_wait().unwrap(), None, "cat waits for input");
    assert_eq!(p.write_stdin(b"hello\n", WAIT).unwrap(), 6);
    let out = read_until(&p, "hello\n");
    assert_eq!(text(&out.stdout), "hello\n");
    p.close_stdin();
    let outcome = p.wait().unwrap();
    assert_eq!(outcome.status, ProcessStatus::Exited(0));
    assert_eq!(outcome.stdout_bytes, 6);
    assert!(matches!(
        p.write_stdin(b"more", WAIT),
        Err(JailError::StdinClosed)
    ));
}

#[test]
fn output_arrives_incrementally() {
    let fx = Fixture::new();
    let p = spawn(
        &fx,
        &[
            "/bin/sh",
            "-c",
            "echo one; read x; echo \"two $x\" >&2; echo three",
        ],
    );
    assert_eq!(text(&read_until(&p, "one\n").stdout), "one\n");
    assert!(
        p.take_output().is_empty(),
        "nothing new until it reads a line"
    );
    p.write_stdin(b"2\n", WAIT).unwrap();
    let rest = read_until(&p, "three\n");
    assert_eq!(text(&rest.stdout), "three\n");
    let outcome = p.wait().unwrap();
    assert_eq!(outcome.status, ProcessStatus::Exited(0));
    let late = p.take_output();
    let stderr = [rest.stderr, late.stderr].concat();
    assert_eq!(text(&stderr), "two 2\n");
    assert_eq!((outcome.stdout_bytes, outcome.stderr_bytes), (10, 6));
}

#[test]
fn kill_ends_the_command_and_everything_it_started() {
    let fx = Fixture::new();
    let p = spawn(
        &fx,
        &[
            "/bin/sh",
            "-c",
            "sleep 1000 & echo $$ $!; sleep 2; touch marker; wait",
        ],
    );
    let out = text(&read_until(&p, "\n").stdout);
    let pids: Vec<i32> = out.split_whitespace().map(|w| w.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{out}");
    assert!(pids.iter().all(|&pid| alive(pid)));
    let asked = Instant::now();
    p.kill();
    let outcome = p.wait().unwrap();
    assert_eq!(outcome.status, ProcessStatus::Killed);
    assert!(outcome.leftovers_killed >= 1, "{outcome:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    for pid in pids {
        assert!(!alive(pid), "{pid} survived the kill");
    }
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !fx.ws.join("marker").exists(),
        "the shell ran on after the kill"
    );
    p.kill(); // after the end: nothing happens
    assert_eq!(p.try_wait().unwrap().unwrap().status, ProcessStatus::Killed);
}

#[test]
fn dropping_the_handle_kills_the_command() {
    let fx = Fixture::new();
    let p = spawn(&fx, &["/bin/sh", "-c", "echo $$; exec sleep 1000"]);
    let pid: i32 = text(&read_until(&p, "\n").stdout).trim().parse().unwrap();
    assert!(alive(pid));
    drop(p);
    let deadline = Instant::now() + WAIT;
    while alive(pid) {
        assert!(Instant::now() < deadline, "{pid} outlived its handle");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_timeout_is_enforced_by_the_helper() {
    let fx = Fixture::new();
    let profile = fx
        .profile([
            "/bin/sh",
            "-c",
            "trap '' TERM; echo $$; while :; do sleep 1; done",
        ])
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let p = jail().spawn(&profile).unwrap();
    let pid: i32 = text(&read_until(&p, "\n").stdout).trim().parse().unwrap();
    let outcome = p.wait().unwrap();
    assert_eq!(outcome.status, ProcessStatus::TimedOut);
    assert!(outcome.elapsed >= Duration::from_secs(1));
    assert!(
        outcome.elapsed < Duration::from_secs(5),
        "{:?}",
        outcome.elapsed
    );
    assert!(!alive(pid));
}

#[test]
fn unread_output_is_bounded_and_the_writer_never_blocks() {
    let fx = Fixture::new();
    let limits = Limits {
        output_bytes: 1000.try_into().unwrap(),
        ..Limits::default()
    };
    let profile = fx
        .profile(["head", "-c", "200000", "/dev/zero"])
        .limits(limits)
        .build()
        .unwrap();
    let p = jail().spawn(&profile).unwrap();
    let outcome = p.wait().unwrap();
    assert_eq!(outcome.status, ProcessStatus::Exited(0));
    assert_eq!(outcome.stdout_bytes, 200_000);
    let out = p.take_output();
    assert_eq!(out.stdout.len(), 1000, "the newest bytes are kept");
    assert_eq!(out.stdout_dropped, 199_000);
    assert!(p.take_output().is_empty());
}

#[test]
fn a_full_stdin_pipe_returns_a_partial_write() {
    let fx = Fixture::new();
    let p = spawn(&fx, &["sleep", "1000"]);
    let data = vec![b'x'; 1 << 20];
    let started = Instant::now();
    let n = p.write_stdin(&data, Duration::from_millis(300)).unwrap();
    assert!(n > 0 && n < data.len(), "{n}");
    assert!(started.elapsed() < Duration::from_secs(3));
    p.kill();
    assert_eq!(p.wait().unwrap().status, ProcessStatus::Killed);
}

#[test]
fn stdin_is_closed_once_nothing_reads_it() {
    let fx = Fixture::new();
    let p = spawn(&fx, &["true"]);
    assert_eq!(p.wait().unwrap().status, ProcessStatus::Exited(0));
    assert!(matches!(
        p.write_stdin(b"late\n", Duration::from_secs(1)),
        Err(JailError::StdinClosed)
    ));
}

#[test]
fn the_notifier_hears_output_and_the_end() {
    let fx = Fixture::new();
    let p = spawn(&fx, &["cat"]);
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    p.on_change(move || {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    p.write_stdin(b"x\n", WAIT).unwrap();
    read_until(&p, "x\n");
    // The notifier runs right after the change is visible.
    let after_output = eventually(|| calls.load(Ordering::SeqCst), |n| n >= 1);
    p.close_stdin();
    p.wait().unwrap();
    eventually(|| calls.load(Ordering::SeqCst), |n| n > after_output);
}

/// Reads `get` until `ok` holds (at most [`WAIT`]); returns the last value.
fn eventually<T: Copy + std::fmt::Debug>(get: impl Fn() -> T, ok: impl Fn(T) -> bool) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = get();
        if ok(v) {
            return v;
        }
        assert!(Instant::now() < deadline, "still {v:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn setup_and_exec_failures_come_back_from_spawn() {
    let fx = Fixture::new();
    let e = jail()
        .spawn(&fx.profile(["no-such-program-xyz"]).build().unwrap())
        .unwrap_err();
    assert!(
        matches!(&e, JailError::Exec { program, .. } if program == "no-such-program-xyz"),
        "{e}"
    );
    let p = pincer_jail::JailProfile::builder(["true"]).build().unwrap();
    let e = pincer_jail::Jail::with_helper("/nonexistent/helper")
        .spawn(&p)
        .unwrap_err();
    assert!(matches!(e, JailError::HelperStart { .. }), "{e}");
    let e = pincer_jail::Jail::with_helper("/bin/true")
        .spawn(&p)
        .unwrap_err();
    assert!(matches!(e, JailError::HelperLost { .. }), "{e}");
}

#[test]
fn a_spawned_command_is_jailed_like_a_run_one() {
    let fx = Fixture::new();
    let code = format!(
        "import os, socket, sys\n\
         for path in ['/etc/shadow', '{secret}']:\n\
         \x20 try: open(path).read(); print('READ', path)\n\
         \x20 except OSError as e: print(path, e.strerror)\n\
         try: socket.socket(socket.AF_INET, socket.SOCK_STREAM); print('SOCKET')\n\
         except OSError as e: print('inet', e.strerror)\n\
         fds = []\n\
         for fd in range(3, 1024):\n\
         \x20 try: os.fstat(fd); fds.append(fd)\n\
         \x20 except OSError: pass\n\
         print('fds', fds)\n\
         import stat\n\
         print('stdin fifo', stat.S_ISFIFO(os.fstat(0).st_mode))\n\
         print('env', sorted(os.environ))\n\
         print('line', sys.stdin.readline().strip())\n",
        secret = fx.secret.display()
    );
    let p = spawn(&fx, &["/usr/bin/python3", "-c", &code]);
    p.write_stdin(b"ping\n", WAIT).unwrap();
    let outcome = p.wait().unwrap();
    let out = p.take_output();
    let text = text(&out.stdout);
    assert_eq!(
        outcome.status,
        ProcessStatus::Exited(0),
        "{text} {:?}",
        out.stderr
    );
    assert!(!text.contains("READ") && !text.contains(CANARY), "{text}");
    assert!(text.contains("/etc/shadow Permission denied"), "{text}");
    assert!(
        text.contains(&format!("{} Permission denied", fx.secret.display())),
        "{text}"
    );
    assert!(text.contains("inet Operation not permitted"), "{text}");
    assert!(text.contains("fds []"), "{text}");
    assert!(text.contains("stdin fifo True"), "{text}");
    assert!(
        text.contains("env ['HOME', 'LANG', 'PATH', 'TMPDIR']"),
        "{text}"
    );
    assert!(text.contains("line ping"), "{text}");
}

#[test]
fn run_still_gives_the_command_an_empty_stdin() {
    let o = Fixture::new().sh("cat; echo done");
    assert_eq!(common::out(&o), "done\n");
}
