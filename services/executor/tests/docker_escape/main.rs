//! The escape battery against the Docker backend, mirroring the jail's
//! (`services/lib/jail/tests/escape.rs`): each test makes one or more attempts from inside a
//! sandbox container, run exactly as the executor runs calls (validated plan, prepared
//! workspace, `DockerBackend::run`), and asserts both that the attempt failed and why (errno,
//! exit status, limit or timeout). Where it is harmless, a control runs the same probe
//! outside the sandbox — on the host, or in a container with Docker's *default* seccomp
//! profile — to show that the posture, not the arguments, is what stops it.
//!
//! Network attempts never send a packet anywhere but to this machine: targets are loopback
//! listeners the test starts, a listener on the Docker bridge's own address on this host, or
//! documentation addresses (RFC 5737/3849) that are dialled only after the probe has checked,
//! inside the sandbox, that no route exists (so if the protection were missing, the probe
//! would refuse to dial and the test would fail on that instead).
//!
//! Needs Docker and the sandbox image (see `common::require_docker`). One module per
//! attack family: [`fs`], [`network`], [`syscalls`], [`privilege`], [`resources`]; the
//! helpers they share are here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod fs;
mod network;
mod privilege;
mod resources;
mod syscalls;

use std::io::ErrorKind;
use std::net::{IpAddr, TcpListener};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use nix::libc;
use pincer_executor::ExecOutcome;
use pincer_executor::docker::posture::{INSTANCE_LABEL, SANDBOX_LABEL};
use tokio::sync::RwLockReadGuard;

const CANARY: &str = "pincer-docker-canary-5e1b";
const EROFS: &str = "Read-only file system";
const ENOENT: &str = "No such file or directory";

/// The shared reap lock and a harness, or `None` (after a SKIP line) without Docker.
async fn harness(test: &str) -> Option<(RwLockReadGuard<'static, ()>, Harness)> {
    let shared = REAP_LOCK.read().await;
    require_docker(test).await?;
    Some((shared, Harness::new()))
}

fn out(o: &ExecOutcome) -> String {
    text(&o.stdout)
}

fn err(o: &ExecOutcome) -> String {
    text(&o.stderr)
}

/// The attempt failed (non-zero exit), said `why` on stderr, and leaked no canary.
fn assert_refused(o: &ExecOutcome, why: &str) {
    assert_ne!(o.exit_code, 0, "escape succeeded: {o:?}");
    assert!(!o.timed_out, "timed out instead of failing: {o:?}");
    assert!(
        err(o).contains(why),
        "expected {why:?} in stderr: {}",
        err(o)
    );
    assert!(!out(o).contains(CANARY), "canary leaked: {}", out(o));
}

/// The probe printed exactly `expected` (an errno name or a word).
fn assert_says(o: &ExecOutcome, expected: &str) {
    assert_eq!(out(o).trim(), expected, "stderr: {}", err(o));
}

async fn assert_clean(h: &Harness) {
    assert_eq!(
        h.leftovers().await,
        0,
        "the sandbox container must be removed"
    );
}

/// Python that makes one raw system call and prints `OK` or the errno's name.
fn syscall_py(nr: libc::c_long, args: &[i64]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("ctypes.c_long({a})")).collect();
    format!(
        "import ctypes, errno\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         r = libc.syscall(ctypes.c_long({nr}){sep}{args})\n\
         e = ctypes.get_errno()\n\
         print('OK' if r != -1 else errno.errorcode.get(e, str(e)))\n",
        sep = if args.is_empty() { "" } else { ", " },
        args = args.join(", "),
    )
}

/// Runs Python on the host, outside any sandbox (for controls that are harmless by
/// construction, e.g. a system call with an invalid pointer).
fn bare_py(code: &str) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", code])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs Python in a container with the same image, user, network and capabilities as a
/// sandbox but Docker's *default* seccomp profile: what Pincer's profile adds.
fn default_profile_py(code: &str) -> String {
    let out = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--user",
            "10001:10001",
            "--label",
            "pincer.escape-test-control=1",
            IMAGE,
            "python3",
            "-c",
            code,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "control container failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `syscall(nr, args)` in the sandbox and expects `sandboxed`; with `control`, the same
/// call outside the sandbox (on the host) answers that.
async fn syscall_case(
    h: &Harness,
    nr: libc::c_long,
    args: &[i64],
    sandboxed: &str,
    control: Option<&str>,
) {
    let code = syscall_py(nr, args);
    let o = h.py(&code).await;
    assert_says(&o, sandboxed);
    if let Some(control) = control {
        assert_eq!(bare_py(&code), control, "control run on the host");
    }
}

const BAD_PID: i64 = 0x3fff_ffff;
