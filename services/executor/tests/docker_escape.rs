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
//! Needs Docker and the sandbox image (see `common::require_docker`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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

// ---------- file system ----------

#[tokio::test]
async fn etc_shadow_is_unreadable_but_etc_is_readable() {
    let Some((_shared, h)) = harness("etc_shadow_is_unreadable_but_etc_is_readable").await else {
        return;
    };
    let o = h
        .shell("cat /etc/passwd >/dev/null && echo passwd-ok; cat /etc/shadow")
        .await;
    assert_eq!(out(&o), "passwd-ok\n");
    assert_refused(&o, "/etc/shadow: Permission denied");
    assert!(!out(&o).contains("root:"), "{}", out(&o));
    assert_clean(&h).await;
}

#[tokio::test]
async fn proc_1_is_the_sandbox_not_the_host() {
    let Some((_shared, h)) = harness("proc_1_is_the_sandbox_not_the_host").await else {
        return;
    };
    // A private pid namespace: pid 1 is Docker's init for the command, and its environment
    // is the sandbox's own, never the host init's or the executor's.
    let o = h
        .shell("tr '\\0' '\\n' < /proc/1/environ; echo CMDLINE; tr '\\0' ' ' < /proc/1/cmdline")
        .await;
    assert_eq!(o.exit_code, 0, "{}", err(&o));
    let stdout = out(&o);
    let (environ, cmdline) = stdout.split_once("CMDLINE\n").unwrap();
    let mut keys: Vec<&str> = environ
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["HOME", "HOSTNAME", "LANG", "PATH"], "{environ}");
    assert!(
        !environ.contains("CARGO"),
        "the executor's environment leaked"
    );
    assert!(cmdline.ends_with("-- /bin/sh -c tr '\\0' '\\n' < /proc/1/environ; echo CMDLINE; tr '\\0' ' ' < /proc/1/cmdline "), "{cmdline}");
    assert_clean(&h).await;
}

#[tokio::test]
async fn host_processes_are_invisible() {
    let Some((_shared, h)) = harness("host_processes_are_invisible").await else {
        return;
    };
    let me = std::process::id();
    let o = h
        .shell(&format!(
            "for p in /proc/[0-9]*; do echo \"${{p#/proc/}} $(tr '\\0' ' ' < $p/cmdline)\"; done; \
             cat /proc/{me}/environ"
        ))
        .await;
    let listing = out(&o);
    let pids: Vec<&str> = listing.lines().collect();
    assert!(
        pids.len() <= 4,
        "more than the sandbox's processes: {listing}"
    );
    assert!(!listing.contains("dockerd"), "{listing}");
    assert!(!listing.contains("docker_escape"), "{listing}");
    // The test's own host pid either does not exist in the sandbox or is another process.
    assert!(!out(&o).contains("CARGO"), "{}", out(&o));
    assert_clean(&h).await;
}

#[tokio::test]
async fn the_executor_config_is_unreachable() {
    let Some((_shared, h)) = harness("the_executor_config_is_unreachable").await else {
        return;
    };
    // A config file beside the workspace root, readable by everyone on the host.
    let config = h.tmp.path().join("pincer.json5");
    std::fs::write(&config, format!("{{ secret: \"{CANARY}\" }}")).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = h
        .run(argv_request(&["cat", config.to_str().unwrap()]))
        .await;
    assert_refused(&o, ENOENT);
    let o = h
        .shell("ls /etc/pincer /root /var/lib/pincer 2>&1; echo done")
        .await;
    assert!(!out(&o).contains(CANARY));
    assert_clean(&h).await;
}

/// A second agent's workspace under the same root, world-readable and owned by the
/// sandbox user: only the mount namespace keeps it out of reach.
fn other_agent(h: &Harness) -> PathBuf {
    let other = h.workspaces.root().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let secret = other.join("secret.txt");
    std::fs::write(&secret, CANARY).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let user = h.workspaces.owner();
    nix::unistd::chown(
        &secret,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    )
    .ok();
    secret
}

#[tokio::test]
async fn another_agents_workspace_is_unreachable() {
    let Some((_shared, h)) = harness("another_agents_workspace_is_unreachable").await else {
        return;
    };
    let secret = other_agent(&h);
    // By its host path.
    let o = h
        .run(argv_request(&["cat", secret.to_str().unwrap()]))
        .await;
    assert_refused(&o, ENOENT);
    // Relative to the workspace, as it lies on the host.
    let o = h.run(argv_request(&["cat", "../other/secret.txt"])).await;
    assert_refused(&o, "../other/secret.txt: No such file or directory");
    let o = h
        .run(argv_request(&["cat", "/workspace/../../other/secret.txt"]))
        .await;
    assert_refused(&o, ENOENT);
    // The sandbox sees its own workspace only.
    let o = h.shell("ls -a /workspace/..; ls /workspace").await;
    assert!(!out(&o).lines().any(|l| l == "other"), "{}", out(&o));
    assert_clean(&h).await;
}

#[tokio::test]
async fn canaries_are_nowhere_in_the_sandboxs_view() {
    let Some((_shared, h)) = harness("canaries_are_nowhere_in_the_sandboxs_view").await else {
        return;
    };
    other_agent(&h);
    std::fs::write(h.tmp.path().join("pincer.json5"), CANARY).unwrap();
    std::fs::write(h.agent_dir().parent().unwrap().join("beside.txt"), CANARY).unwrap();
    // Everything the sandbox can see but the kernel's virtual trees.
    // The control file shows the search finds the text where it is.
    let needle = &CANARY[..CANARY.len() - 1];
    let o = h
        .shell(&format!(
            "echo {needle}Z > /tmp/control.txt; \
             grep -rlsF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev {needle} / ; echo searched"
        ))
        .await;
    assert_eq!(out(&o), "/tmp/control.txt\nsearched\n", "{}", err(&o));
    assert_clean(&h).await;
}

#[tokio::test]
async fn dotdot_and_absolute_cwds_are_refused_by_plan_validation() {
    let Some((_shared, h)) =
        harness("dotdot_and_absolute_cwds_are_refused_by_plan_validation").await
    else {
        return;
    };
    use pincer_executor::ExecutorError;
    use pincer_executor::cwd::CwdError;
    use pincer_executor::plan::PlanError;
    let secret = other_agent(&h);
    for (cwd, expected) in [
        ("..", CwdError::Escapes("..".into())),
        ("../other", CwdError::Escapes("../other".into())),
        ("a/../../other", CwdError::Escapes("a/../../other".into())),
        (
            "./../main/../..",
            CwdError::Escapes("./../main/../..".into()),
        ),
        ("/etc", CwdError::Absolute("/etc".into())),
        ("/", CwdError::Absolute("/".into())),
    ] {
        let mut req = shell_request("cat secret.txt; touch escaped", 0);
        req.cwd = cwd.into();
        match h.try_exec(req).await {
            Err(ExecutorError::Plan(PlanError::Cwd(e))) => assert_eq!(e, expected, "{cwd}"),
            other => panic!("{cwd}: expected a cwd refusal, got {other:?}"),
        }
    }
    assert!(!secret.parent().unwrap().join("escaped").exists());
    assert!(!h.workspaces.root().join("escaped").exists());
    assert_clean(&h).await;
}

#[tokio::test]
async fn a_cwd_through_a_link_planted_by_the_sandbox_is_refused() {
    let Some((_shared, h)) =
        harness("a_cwd_through_a_link_planted_by_the_sandbox_is_refused").await
    else {
        return;
    };
    use pincer_executor::ExecutorError;
    // An earlier call plants links to host directories in its workspace.
    let o = h
        .shell("ln -s / hostroot && ln -s /tmp hosttmp && echo planted")
        .await;
    assert_eq!(out(&o), "planted\n", "{}", err(&o));
    assert_eq!(
        std::fs::read_link(h.agent_dir().join("hostroot")).unwrap(),
        PathBuf::from("/")
    );
    let marker = format!("pincer-escape-{}", std::process::id());
    for cwd in ["hostroot", "hostroot/tmp", &format!("hosttmp/{marker}")] {
        let mut req = shell_request("touch escaped", 0);
        req.cwd = cwd.into();
        let result = h.try_exec(req).await;
        assert!(
            matches!(result, Err(ExecutorError::CwdNotDirectory { .. })),
            "{cwd}: {result:?}"
        );
    }
    // The executor followed no link: nothing was created or chowned on the host.
    assert!(!PathBuf::from("/tmp").join(&marker).exists());
    assert!(!PathBuf::from("/escaped").exists());
    assert_clean(&h).await;
}

#[tokio::test]
async fn writing_to_the_root_file_system_is_refused() {
    let Some((_shared, h)) = harness("writing_to_the_root_file_system_is_refused").await else {
        return;
    };
    for (attempt, why) in [
        (
            "touch /pincer-escape",
            "touch: cannot touch '/pincer-escape': Read-only file system",
        ),
        (
            "echo x > /etc/pincer-escape",
            "cannot create /etc/pincer-escape: Read-only file system",
        ),
        ("cp /bin/sh /usr/bin/pincer-escape", "Read-only file system"),
        ("echo x >> /etc/passwd", "/etc/passwd: Permission denied"),
        ("mkdir /var/pincer-escape", EROFS),
        ("rm -f /usr/bin/jq", "Read-only file system"),
    ] {
        let o = h.shell(attempt).await;
        assert_refused(&o, why);
    }
    // Still untouched.
    let o = h.shell("ls /pincer-escape /usr/bin/jq 2>&1").await;
    assert!(
        out(&o).contains("/pincer-escape': No such file"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("/usr/bin/jq\n"), "{}", out(&o));
    assert_clean(&h).await;
}

#[tokio::test]
async fn writing_above_the_workspace_is_refused() {
    let Some((_shared, h)) = harness("writing_above_the_workspace_is_refused").await else {
        return;
    };
    let o = h.shell("echo x > ../escaped").await;
    assert_refused(&o, "cannot create ../escaped: Read-only file system");
    let o = h.shell("echo data > f && mv f /f").await;
    assert_refused(&o, "Read-only file system");
    assert!(!h.workspaces.root().join("escaped").exists());
    assert!(h.agent_dir().join("f").exists());
    assert_clean(&h).await;
}

#[tokio::test]
async fn remounting_the_root_read_write_is_refused() {
    let Some((_shared, h)) = harness("remounting_the_root_read_write_is_refused").await else {
        return;
    };
    let o = h.shell("mount -o remount,rw /; touch /after-remount").await;
    assert_refused(&o, "'/after-remount': Read-only file system");
    assert!(err(&o).contains("must be superuser"), "{}", err(&o));
    let o = h.py(&syscall_py(libc::SYS_mount, &[0, 0, 0, 0, 0])).await;
    assert_says(&o, "EPERM");
    assert_clean(&h).await;
}

#[tokio::test]
async fn proc_sys_and_sys_are_read_only() {
    let Some((_shared, h)) = harness("proc_sys_and_sys_are_read_only").await else {
        return;
    };
    // Harmless targets: the UTS domain name (namespaced, written back unchanged) and a
    // kernel switch written back unchanged.
    let o = h
        .shell("cat /proc/sys/kernel/domainname > /proc/sys/kernel/domainname")
        .await;
    assert_refused(&o, EROFS);
    let o = h.shell("mkdir /sys/fs/cgroup/pincer-escape").await;
    assert_refused(&o, "cannot create directory");
    // The kernel's trees are mounted read-only (cgroups too: no release_agent escape).
    let o = h.run(argv_request(&["cat", "/proc/self/mounts"])).await;
    let mounts = out(&o);
    let options = |target: &str| {
        mounts
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(target))
            .and_then(|l| l.split_whitespace().nth(3))
            .map(|o| o.split(',').map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("{target} is not mounted: {mounts}"))
    };
    for target in [
        "/",
        "/sys",
        "/proc/sys",
        "/proc/bus",
        "/proc/irq",
        "/proc/fs",
    ] {
        assert!(
            options(target).contains(&"ro".to_owned()),
            "{target}: {mounts}"
        );
    }
    let cgroups: Vec<&str> = mounts
        .lines()
        .filter(|l| l.starts_with("cgroup") && l.contains(" /sys/fs/cgroup"))
        .collect();
    assert!(!cgroups.is_empty(), "{mounts}");
    for line in cgroups {
        assert!(
            line.split_whitespace()
                .nth(3)
                .unwrap()
                .split(',')
                .any(|o| o == "ro"),
            "{line}"
        );
    }
    assert_clean(&h).await;
}

#[tokio::test]
async fn a_symlink_planted_to_a_host_path_does_not_read_through() {
    let Some((_shared, h)) =
        harness("a_symlink_planted_to_a_host_path_does_not_read_through").await
    else {
        return;
    };
    // A host secret outside the workspace, world-readable, and links to it planted in the
    // workspace (as a compromised process on the host or an earlier call could).
    let secret = h.tmp.path().join("host-secret.txt");
    std::fs::write(&secret, CANARY).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    h.shell("true").await; // creates the workspace
    std::os::unix::fs::symlink(&secret, h.agent_dir().join("link")).unwrap();
    std::os::unix::fs::symlink(h.tmp.path(), h.agent_dir().join("dirlink")).unwrap();
    // Control: on the host the link reads through.
    assert_eq!(
        std::fs::read_to_string(h.agent_dir().join("link")).unwrap(),
        CANARY
    );
    let o = h.run(argv_request(&["cat", "link"])).await;
    assert_refused(&o, "cat: link: No such file or directory");
    let o = h
        .run(argv_request(&["cat", "dirlink/host-secret.txt"]))
        .await;
    assert_refused(&o, ENOENT);
    assert_clean(&h).await;
}

#[tokio::test]
async fn a_hardlink_to_a_file_outside_the_workspace_is_refused() {
    let Some((_shared, h)) = harness("a_hardlink_to_a_file_outside_the_workspace_is_refused").await
    else {
        return;
    };
    // The image's files live on another mount: the kernel refuses (EXDEV).
    let o = h.run(argv_request(&["ln", "/etc/passwd", "hl"])).await;
    assert_refused(&o, "Invalid cross-device link");
    let o = h.run(argv_request(&["ln", "/etc/shadow", "hl2"])).await;
    assert_refused(&o, "Invalid cross-device link");
    assert!(!h.agent_dir().join("hl").exists());
    assert!(!h.agent_dir().join("hl2").exists());
    assert_clean(&h).await;
}

#[tokio::test]
async fn the_docker_socket_is_absent() {
    let Some((_shared, h)) = harness("the_docker_socket_is_absent").await else {
        return;
    };
    let o = h
        .py("import socket\n\
             for path in ('/var/run/docker.sock', '/run/docker.sock', '/run/containerd/containerd.sock'):\n\
             \x20 s = socket.socket(socket.AF_UNIX)\n\
             \x20 try: s.connect(path); print('CONNECTED', path)\n\
             \x20 except OSError as e: print(e.strerror)")
        .await;
    assert_eq!(
        out(&o),
        format!("{ENOENT}\n{ENOENT}\n{ENOENT}\n"),
        "{}",
        err(&o)
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn block_devices_are_absent_and_mknod_is_refused() {
    let Some((_shared, h)) = harness("block_devices_are_absent_and_mknod_is_refused").await else {
        return;
    };
    let o = h.shell("ls /dev").await;
    let allowed = [
        "console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm",
        "stderr", "stdin", "stdout", "tty", "urandom", "zero",
    ];
    for dev in out(&o).lines() {
        assert!(allowed.contains(&dev), "unexpected device /dev/{dev}");
    }
    // Read-only attempts: a failure must not be able to harm a disk.
    for disk in [
        "/dev/vda",
        "/dev/sda",
        "/dev/nvme0n1",
        "/dev/mem",
        "/dev/kmsg",
    ] {
        let o = h.run(argv_request(&["head", "-c", "16", disk])).await;
        assert_refused(&o, ENOENT);
    }
    // Making a block device node (of the host's first disk) is refused: no CAP_MKNOD, and
    // the device cgroup would refuse opening it anyway.
    let o = h
        .py("import os, stat\n\
             for path in ('/workspace/sda', '/tmp/sda'):\n\
             \x20 try: os.mknod(path, stat.S_IFBLK | 0o600, os.makedev(8, 0)); print('MADE')\n\
             \x20 except OSError as e: print(e.strerror)")
        .await;
    assert_eq!(
        out(&o),
        "Operation not permitted\nOperation not permitted\n",
        "{}",
        err(&o)
    );
    assert!(!h.agent_dir().join("sda").exists());
    assert_clean(&h).await;
}

#[tokio::test]
async fn tiocsti_into_the_controlling_terminal_is_refused() {
    let Some((_shared, h)) = harness("tiocsti_into_the_controlling_terminal_is_refused").await
    else {
        return;
    };
    // A pty the sandbox opens itself becomes its controlling terminal; injecting input into
    // it (and, with high bits set, a request the kernel truncates to TIOCSTI) is refused.
    let code = "import ctypes, errno, os\n\
                libc = ctypes.CDLL(None, use_errno=True)\n\
                m, s = os.openpty(); name = os.ttyname(s)\n\
                pid = os.fork()\n\
                if pid == 0:\n\
                \x20 os.setsid(); fd = os.open(name, os.O_RDWR)\n\
                \x20 for cmd in (0x5412, 0x5412 | (1 << 32), 0x541C):\n\
                \x20   r = libc.syscall(ctypes.c_long(16), ctypes.c_long(fd), ctypes.c_long(cmd), ctypes.c_char_p(b'\\0'))\n\
                \x20   print('OK' if r != -1 else errno.errorcode[ctypes.get_errno()], flush=True)\n\
                \x20 os._exit(0)\n\
                os.waitpid(pid, 0)\n";
    let o = h.py(code).await;
    assert_eq!(out(&o), "EPERM\nEPERM\nEPERM\n", "{}", err(&o));
    // Control: Docker's default profile lets both TIOCSTI spellings through.
    let control = default_profile_py(code);
    assert_eq!(
        control, "OK\nOK\nENOTTY",
        "control with Docker's default profile"
    );
    assert_clean(&h).await;
}

// ---------- network ----------

/// Python that refuses to dial when the sandbox has any route (so a missing protection
/// cannot send a packet), then tries `connect`/`sendto` and prints the errno names.
fn dial_py(family: &str, addr: &str, port: u16) -> String {
    format!(
        "import socket, errno\n\
         routes = [l.split()[0] for l in open('/proc/net/route').read().splitlines()[1:]]\n\
         routes += [l.split()[-1] for l in open('/proc/net/ipv6_route').read().splitlines() if l.split()[-1] != 'lo']\n\
         if routes: print('ROUTE', routes); raise SystemExit(3)\n\
         for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):\n\
         \x20 s = socket.socket(socket.{family}, kind); s.settimeout(3)\n\
         \x20 try:\n\
         \x20   if kind == socket.SOCK_STREAM: s.connect(('{addr}', {port})); print('CONNECTED')\n\
         \x20   else: s.sendto(b'x', ('{addr}', {port})); print('SENT')\n\
         \x20 except OSError as e: print(errno.errorcode[e.errno])\n"
    )
}

#[tokio::test]
async fn there_is_no_interface_but_loopback() {
    let Some((_shared, h)) = harness("there_is_no_interface_but_loopback").await else {
        return;
    };
    let o = h
        .py("import socket\nprint(socket.if_nameindex())\n\
             print(open('/proc/net/route').read().splitlines()[1:])")
        .await;
    assert_eq!(out(&o), "[(1, 'lo')]\n[]\n", "{}", err(&o));
    assert_clean(&h).await;
}

#[tokio::test]
async fn tcp_to_a_listener_on_the_hosts_loopback_is_unreachable() {
    let Some((_shared, h)) =
        harness("tcp_to_a_listener_on_the_hosts_loopback_is_unreachable").await
    else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // Control: the listener is reachable from the host.
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    std::net::TcpStream::connect(probe.local_addr().unwrap()).unwrap();
    let o = h
        .py(&format!(
            "import socket, errno\n\
             try:\n  socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')\n\
             except OSError as e: print(errno.errorcode[e.errno])"
        ))
        .await;
    // The sandbox's loopback is its own: nothing listens there.
    assert_says(&o, "ECONNREFUSED");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the host listener saw a connection"
    );
    assert_clean(&h).await;
}

/// The Docker bridge's gateway address (docker0 on this host).
fn bridge_gateway() -> IpAddr {
    let out = std::process::Command::new("docker")
        .args([
            "network",
            "inspect",
            "bridge",
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker network inspect bridge failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|a| a.parse::<IpAddr>().ok().filter(IpAddr::is_ipv4))
        .expect("the bridge network has an IPv4 gateway")
}

#[tokio::test]
async fn the_docker_bridge_gateway_is_unreachable() {
    let Some((_shared, h)) = harness("the_docker_bridge_gateway_is_unreachable").await else {
        return;
    };
    let gateway = bridge_gateway();
    // A listener on that address of this host: what a sandbox on the bridge would reach.
    let listener = TcpListener::bind((gateway, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let o = h.py(&dial_py("AF_INET", &gateway.to_string(), port)).await;
    assert_eq!(out(&o), "ENETUNREACH\nENETUNREACH\n", "{}", err(&o));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the listener on {gateway} saw a connection"
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn a_non_local_destination_is_unreachable() {
    let Some((_shared, h)) = harness("a_non_local_destination_is_unreachable").await else {
        return;
    };
    // Documentation addresses; dialled only after the probe found no route at all.
    let o = h.py(&dial_py("AF_INET", "203.0.113.7", 443)).await;
    assert_eq!(out(&o), "ENETUNREACH\nENETUNREACH\n", "{}", err(&o));
    let o = h.py(&dial_py("AF_INET6", "2001:db8::7", 443)).await;
    assert_eq!(out(&o), "ENETUNREACH\nENETUNREACH\n", "{}", err(&o));
    assert_clean(&h).await;
}

#[tokio::test]
async fn an_abstract_socket_on_the_host_is_unreachable() {
    let Some((_shared, h)) = harness("an_abstract_socket_on_the_host_is_unreachable").await else {
        return;
    };
    let name = format!("pincer-docker-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let o = h
        .py(&format!(
            "import socket\ns = socket.socket(socket.AF_UNIX)\n\
             try:\n  s.connect('\\0{name}'); print('CONNECTED')\n\
             except OSError as e: print(e.strerror)"
        ))
        .await;
    // A private network namespace has its own abstract socket table.
    assert_says(&o, "Connection refused");
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn exotic_socket_families_are_refused() {
    let Some((_shared, h)) = harness("exotic_socket_families_are_refused").await else {
        return;
    };
    for (family, kind, protocol) in [
        (libc::AF_PACKET, libc::SOCK_RAW, 0),
        (libc::AF_ALG, libc::SOCK_SEQPACKET, 0),
        (libc::AF_VSOCK, libc::SOCK_STREAM, 0),
        (libc::AF_KEY, libc::SOCK_RAW, 2),
        (libc::AF_TIPC, libc::SOCK_RDM, 0),
        // Raw IP: the family is allowed, CAP_NET_RAW is not there.
        (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
    ] {
        let args = [i64::from(family), i64::from(kind), i64::from(protocol)];
        let o = h.py(&syscall_py(libc::SYS_socket, &args)).await;
        assert_says(&o, "EPERM");
    }
    // What stays: the families ordinary programs need.
    let o = h
        .py("import socket\nfor f in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6):\n  socket.socket(f); print('ok')\n\
             socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); print('ok')")
        .await;
    assert_eq!(out(&o), "ok\nok\nok\nok\n", "{}", err(&o));
    // Control: Docker's default profile lets AF_VSOCK through.
    let vsock = syscall_py(
        libc::SYS_socket,
        &[libc::AF_VSOCK.into(), libc::SOCK_STREAM.into(), 0],
    );
    assert_eq!(default_profile_py(&vsock), "OK");
    assert_clean(&h).await;
}

// ---------- system calls (seccomp) ----------

#[tokio::test]
async fn ptrace_is_refused() {
    let Some((_shared, h)) = harness("ptrace_is_refused").await else {
        return;
    };
    const PTRACE_PEEKDATA: i64 = 2;
    let args = [PTRACE_PEEKDATA, BAD_PID, 0, 0];
    syscall_case(&h, libc::SYS_ptrace, &args, "EPERM", Some("ESRCH")).await;
    // Control: Docker's default profile allows ptrace.
    assert_eq!(
        default_profile_py(&syscall_py(libc::SYS_ptrace, &args)),
        "ESRCH"
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn ptrace_attach_to_a_sibling_process_is_refused() {
    let Some((_shared, h)) = harness("ptrace_attach_to_a_sibling_process_is_refused").await else {
        return;
    };
    let code = "import ctypes, errno, os, time, signal\n\
                libc = ctypes.CDLL(None, use_errno=True)\n\
                pid = os.fork()\n\
                if pid == 0:\n  time.sleep(30); os._exit(0)\n\
                r = libc.ptrace(16, pid, 0, 0)\n\
                print('OK' if r != -1 else errno.errorcode[ctypes.get_errno()])\n\
                os.kill(pid, signal.SIGKILL)\n";
    let o = h.py(code).await;
    assert_says(&o, "EPERM");
    assert_eq!(
        default_profile_py(code),
        "OK",
        "control: Docker's default profile"
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn process_vm_readv_and_writev_are_refused() {
    let Some((_shared, h)) = harness("process_vm_readv_and_writev_are_refused").await else {
        return;
    };
    let args = [BAD_PID, 0, 1, 0, 1, 0];
    syscall_case(
        &h,
        libc::SYS_process_vm_readv,
        &args,
        "EPERM",
        Some("EFAULT"),
    )
    .await;
    syscall_case(
        &h,
        libc::SYS_process_vm_writev,
        &args,
        "EPERM",
        Some("EFAULT"),
    )
    .await;
    assert_clean(&h).await;
}

#[tokio::test]
async fn the_mount_family_is_refused() {
    let Some((_shared, h)) = harness("the_mount_family_is_refused").await else {
        return;
    };
    syscall_case(
        &h,
        libc::SYS_mount,
        &[0, 0, 0, 0, 0],
        "EPERM",
        Some("EFAULT"),
    )
    .await;
    syscall_case(&h, libc::SYS_umount2, &[0, 0], "EPERM", Some("EFAULT")).await;
    syscall_case(&h, libc::SYS_pivot_root, &[0, 0], "EPERM", Some("EFAULT")).await;
    syscall_case(&h, libc::SYS_chroot, &[0], "EPERM", Some("EFAULT")).await;
    syscall_case(&h, libc::SYS_fsopen, &[0, 0], "EPERM", Some("EFAULT")).await;
    syscall_case(
        &h,
        libc::SYS_open_tree,
        &[-1, 0, 0],
        "EPERM",
        Some("EFAULT"),
    )
    .await;
    syscall_case(
        &h,
        libc::SYS_move_mount,
        &[-1, 0, -1, 0, 0],
        "EPERM",
        Some("EFAULT"),
    )
    .await;
    assert_clean(&h).await;
}

#[tokio::test]
async fn unshare_is_refused_even_as_a_no_op() {
    let Some((_shared, h)) = harness("unshare_is_refused_even_as_a_no_op").await else {
        return;
    };
    syscall_case(&h, libc::SYS_unshare, &[0], "EPERM", Some("OK")).await;
    let o = h.run(argv_request(&["unshare", "-U", "-r", "id"])).await;
    assert_refused(&o, "unshare failed: Operation not permitted");
    let o = h.run(argv_request(&["unshare", "-n", "true"])).await;
    assert_refused(&o, "unshare failed: Operation not permitted");
    assert_clean(&h).await;
}

#[tokio::test]
async fn clone_with_namespace_flags_is_refused_and_clone3_answers_enosys() {
    let Some((_shared, h)) =
        harness("clone_with_namespace_flags_is_refused_and_clone3_answers_enosys").await
    else {
        return;
    };
    for flag in [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWPID,
    ] {
        let flags = i64::from(flag | libc::SIGCHLD);
        // Sandbox only: outside, a success would really fork the Python process.
        syscall_case(&h, libc::SYS_clone, &[flags, 0, 0, 0, 0], "EPERM", None).await;
    }
    syscall_case(&h, libc::SYS_clone3, &[0, 0], "ENOSYS", Some("EINVAL")).await;
    // Plain fork and threads still work.
    let o = h
        .py("import os, threading\nt = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n\
             pid = os.fork()\nif pid == 0: os._exit(7)\nprint(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))")
        .await;
    assert_eq!(out(&o), "thread\n7\n", "{}", err(&o));
    assert_clean(&h).await;
}

#[tokio::test]
async fn setns_is_refused() {
    let Some((_shared, h)) = harness("setns_is_refused").await else {
        return;
    };
    syscall_case(&h, libc::SYS_setns, &[-1, 0], "EPERM", Some("EBADF")).await;
    // With a real namespace file of its own.
    let o = h
        .py("import os, ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\n\
             fd = os.open('/proc/self/ns/net', os.O_RDONLY)\n\
             r = libc.setns(fd, 0)\nprint('OK' if r != -1 else errno.errorcode[ctypes.get_errno()])")
        .await;
    assert_says(&o, "EPERM");
    assert_clean(&h).await;
}

#[tokio::test]
async fn io_uring_is_refused() {
    let Some((_shared, h)) = harness("io_uring_is_refused").await else {
        return;
    };
    syscall_case(&h, libc::SYS_io_uring_setup, &[0, 0], "EPERM", None).await;
    syscall_case(
        &h,
        libc::SYS_io_uring_enter,
        &[-1, 0, 0, 0, 0, 0],
        "EPERM",
        Some("EBADF"),
    )
    .await;
    syscall_case(
        &h,
        libc::SYS_io_uring_register,
        &[-1, 0, 0, 0],
        "EPERM",
        Some("EINVAL"),
    )
    .await;
    // Control: Docker 20.10's default profile allows io_uring (the kernel then answers about
    // the arguments).
    let setup = syscall_py(libc::SYS_io_uring_setup, &[0, 0]);
    let control = default_profile_py(&setup);
    assert!(
        ["EINVAL", "EFAULT"].contains(&control.as_str()),
        "{control}"
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn bpf_is_refused() {
    let Some((_shared, h)) = harness("bpf_is_refused").await else {
        return;
    };
    syscall_case(&h, libc::SYS_bpf, &[999, 0, 0], "EPERM", Some("EINVAL")).await;
    assert_clean(&h).await;
}

#[tokio::test]
async fn perf_event_open_is_refused() {
    let Some((_shared, h)) = harness("perf_event_open_is_refused").await else {
        return;
    };
    let args = [0, 0, -1, -1, 0];
    syscall_case(
        &h,
        libc::SYS_perf_event_open,
        &args,
        "EPERM",
        Some("EFAULT"),
    )
    .await;
    assert_clean(&h).await;
}

#[tokio::test]
async fn userfaultfd_is_refused() {
    let Some((_shared, h)) = harness("userfaultfd_is_refused").await else {
        return;
    };
    syscall_case(
        &h,
        libc::SYS_userfaultfd,
        &[0xffff],
        "EPERM",
        Some("EINVAL"),
    )
    .await;
    assert_clean(&h).await;
}

#[tokio::test]
async fn keyrings_are_refused() {
    let Some((_shared, h)) = harness("keyrings_are_refused").await else {
        return;
    };
    // EOPNOTSUPP, which Python names ENOTSUP (the same number on Linux).
    syscall_case(
        &h,
        libc::SYS_keyctl,
        &[9999, 0, 0, 0, 0],
        "EPERM",
        Some("ENOTSUP"),
    )
    .await;
    syscall_case(
        &h,
        libc::SYS_add_key,
        &[0, 0, 0, 0, 0],
        "EPERM",
        Some("EFAULT"),
    )
    .await;
    syscall_case(
        &h,
        libc::SYS_request_key,
        &[0, 0, 0, 0],
        "EPERM",
        Some("EFAULT"),
    )
    .await;
    assert_clean(&h).await;
}

#[tokio::test]
async fn kernel_and_machine_control_is_refused() {
    let Some((_shared, h)) = harness("kernel_and_machine_control_is_refused").await else {
        return;
    };
    // Sandbox only (no controls): these act on the whole machine. The arguments are invalid
    // as well, so even a broken filter could do no harm.
    for (nr, args) in [
        (libc::SYS_kexec_load, vec![0, 0, 0, 0xffff_ffff]),
        (libc::SYS_kexec_file_load, vec![-1, -1, 0, 0, 0xffff_ffff]),
        (libc::SYS_init_module, vec![0, 0, 0]),
        (libc::SYS_finit_module, vec![-1, 0, 0]),
        (libc::SYS_delete_module, vec![0, 0]),
        (libc::SYS_reboot, vec![0, 0, 0, 0]),
        (libc::SYS_swapon, vec![0, 0]),
        (libc::SYS_swapoff, vec![0]),
        (libc::SYS_acct, vec![0]),
        (libc::SYS_settimeofday, vec![0, 0]),
        (libc::SYS_clock_settime, vec![0, 0]),
    ] {
        syscall_case(&h, nr, &args, "EPERM", None).await;
    }
    assert_clean(&h).await;
}

#[tokio::test]
async fn file_handles_are_refused() {
    let Some((_shared, h)) = harness("file_handles_are_refused").await else {
        return;
    };
    // open_by_handle_at is the "shocker" escape; name_to_handle_at feeds it.
    syscall_case(
        &h,
        libc::SYS_open_by_handle_at,
        &[-1, 0, 0],
        "EPERM",
        Some("EFAULT"),
    )
    .await;
    let args = [-1, 0, 0, 0, 0];
    syscall_case(
        &h,
        libc::SYS_name_to_handle_at,
        &args,
        "EPERM",
        Some("EFAULT"),
    )
    .await;
    assert_clean(&h).await;
}

#[tokio::test]
async fn the_kernel_log_is_refused() {
    let Some((_shared, h)) = harness("the_kernel_log_is_refused").await else {
        return;
    };
    const SYSLOG_ACTION_READ_ALL: i64 = 3;
    syscall_case(
        &h,
        libc::SYS_syslog,
        &[SYSLOG_ACTION_READ_ALL, 0, 0],
        "EPERM",
        None,
    )
    .await;
    let o = h.run(argv_request(&["dmesg"])).await;
    assert_refused(&o, "Operation not permitted");
    assert_clean(&h).await;
}

// ---------- privilege ----------

#[tokio::test]
async fn capabilities_are_all_zero() {
    let Some((_shared, h)) = harness("capabilities_are_all_zero").await else {
        return;
    };
    let o = h
        .shell(
            "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status",
        )
        .await;
    let status = out(&o);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(cap), "0000000000000000", "{cap} {status}");
    }
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert_eq!(field("Seccomp:"), "2", "a seccomp filter: {status}");
    assert_clean(&h).await;
}

#[tokio::test]
async fn su_does_not_give_root() {
    let Some((_shared, h)) = harness("su_does_not_give_root").await else {
        return;
    };
    let o = h
        .shell("su root -c 'id -u' </dev/null; echo su=$?; id -u; id -g")
        .await;
    let stdout = out(&o);
    let user = h.workspaces.owner();
    assert!(!stdout.lines().any(|l| l == "0"), "{stdout}");
    assert!(
        stdout.contains("su=1") || stdout.contains("su=126"),
        "{stdout} {}",
        err(&o)
    );
    assert!(
        stdout.ends_with(&format!("{}\n{}\n", user.uid, user.gid)),
        "{stdout}"
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn the_image_has_no_setuid_binaries() {
    let Some((_shared, h)) = harness("the_image_has_no_setuid_binaries").await else {
        return;
    };
    let o = h
        .shell("find / -xdev -type f -perm /6000 2>/dev/null; echo searched")
        .await;
    assert_eq!(out(&o), "searched\n");
    assert_clean(&h).await;
}

#[tokio::test]
async fn a_setuid_root_binary_in_the_workspace_does_not_give_root() {
    let Some((_shared, h)) =
        harness("a_setuid_root_binary_in_the_workspace_does_not_give_root").await
    else {
        return;
    };
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: needs root to make a setuid-root binary");
        return;
    }
    h.shell("true").await; // creates the workspace
    // The host's `id` (same Debian release as the image), setuid root, in the workspace
    // (a bind mount without nosuid).
    let bin = h.agent_dir().join("id");
    std::fs::copy("/usr/bin/id", &bin).unwrap();
    nix::unistd::chown(
        &bin,
        Some(nix::unistd::Uid::from_raw(0)),
        Some(nix::unistd::Gid::from_raw(0)),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let user = h.workspaces.owner();
    // Control: on the host the setuid bit works for the sandbox user.
    let bare = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={}", user.uid),
            &format!("--regid={}", user.gid),
            "--clear-groups",
        ])
        .arg(&bin)
        .arg("-u")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&bare.stdout), "0\n", "control");
    let o = h.run(argv_request(&["./id", "-u"])).await;
    assert_eq!(o.exit_code, 0, "{}", err(&o));
    assert_eq!(
        out(&o),
        format!("{}\n", user.uid),
        "no-new-privileges must neutralise setuid"
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn setuid_calls_cannot_become_root() {
    let Some((_shared, h)) = harness("setuid_calls_cannot_become_root").await else {
        return;
    };
    let o = h
        .py("import os\n\
             for f, a in ((os.setuid, 0), (os.setgid, 0), (os.setgroups, [0]), (os.seteuid, 0)):\n\
             \x20 try: f(a); print('CHANGED')\n\
             \x20 except OSError as e: print(e.strerror)\n\
             print(os.getuid(), os.geteuid())")
        .await;
    let user = h.workspaces.owner();
    assert_eq!(
        out(&o),
        format!(
            "Operation not permitted\nOperation not permitted\nOperation not permitted\nOperation not permitted\n{} {}\n",
            user.uid, user.uid
        ),
        "{}",
        err(&o)
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn the_environment_and_descriptors_do_not_leak_in() {
    let Some((_shared, h)) = harness("the_environment_and_descriptors_do_not_leak_in").await else {
        return;
    };
    assert!(std::env::var_os("PATH").is_some());
    let o = h
        .py("import os\nprint(sorted(os.environ))\nopen_fds = []\n\
             for fd in range(3, 1024):\n\
             \x20 try: os.fstat(fd); open_fds.append(fd)\n\
             \x20 except OSError: pass\n\
             print(open_fds)\nprint(os.uname().nodename != '')")
        .await;
    assert_eq!(
        out(&o),
        "['HOME', 'HOSTNAME', 'LANG', 'PATH']\n[]\nTrue\n",
        "{}",
        err(&o)
    );
    // Not the host's name.
    let o = h
        .run(argv_request(&["cat", "/proc/sys/kernel/hostname"]))
        .await;
    let host = nix::unistd::gethostname().unwrap();
    assert_ne!(out(&o).trim(), host.to_str().unwrap());
    assert_clean(&h).await;
}

// ---------- resources and lifetime ----------

#[tokio::test]
async fn a_fork_bomb_hits_the_pids_limit_and_is_cleaned_up() {
    let Some((_shared, h)) = harness("a_fork_bomb_hits_the_pids_limit_and_is_cleaned_up").await
    else {
        return;
    };
    let limit = h.backend.settings().pids_limit;
    let bomb = "import os, time, errno\nn = 0\nwhile True:\n\
                \x20 try: pid = os.fork()\n\
                \x20 except OSError as e: print(n, errno.errorcode[e.errno], flush=True); break\n\
                \x20 if pid == 0:\n\
                \x20   while True:\n\
                \x20     try: os.fork()\n\
                \x20     except OSError: time.sleep(0.01)\n\
                \x20 n += 1\n\
                time.sleep(60)\n";
    let started = Instant::now();
    let mut req = argv_request(&["python3", "-c", bomb]);
    req.timeout_ms = 4_000;
    let o = h.run(req).await;
    assert!(o.timed_out, "{o:?}");
    let line = out(&o);
    let (count, errno) = line.trim().split_once(' ').unwrap();
    assert_eq!(errno, "EAGAIN");
    assert!(count.parse::<u32>().unwrap() < limit, "{count} >= {limit}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn a_memory_hog_is_killed_by_the_memory_limit() {
    let Some((_shared, h)) = harness("a_memory_hog_is_killed_by_the_memory_limit").await else {
        return;
    };
    let limit = h.backend.settings().memory_bytes;
    // Control: well under the limit, the same allocation pattern succeeds.
    let o = h
        .py(&format!("b = bytearray({}); print('ALLOCATED')", limit / 4))
        .await;
    assert_eq!(out(&o), "ALLOCATED\n", "{}", err(&o));
    // Four times the limit, touched page by page (bytearray zero-fills): the kernel's OOM
    // killer ends it with SIGKILL (exit 137); there is no swap to spill into.
    let o = h
        .py(&format!(
            "small = bytearray(16 << 20); print('small ok', flush=True)\n\
             big = bytearray({})\nprint('ALLOCATED')",
            limit * 4
        ))
        .await;
    assert_eq!(out(&o), "small ok\n", "{}", err(&o));
    assert_eq!(o.exit_code, 128 + libc::SIGKILL, "{o:?}");
    assert!(!o.timed_out);
    assert_clean(&h).await;
}

#[tokio::test]
async fn a_disk_filler_hits_the_tmpfs_cap() {
    let Some((_shared, h)) = harness("a_disk_filler_hits_the_tmpfs_cap").await else {
        return;
    };
    // Two 40 MiB files in /tmp (64 MiB tmpfs): the second one runs out of space (each file
    // stays under the 64 MiB file-size cap, so the tmpfs size is what stops it).
    let o = h
        .shell(
            "dd if=/dev/zero of=/tmp/a bs=1M count=40 2>/dev/null && echo first-ok; \
             dd if=/dev/zero of=/tmp/b bs=1M count=40; echo dd=$?; du -sm /tmp | cut -f1",
        )
        .await;
    let stdout = out(&o);
    assert!(stdout.starts_with("first-ok\ndd=1\n"), "{stdout}");
    assert!(err(&o).contains("No space left on device"), "{}", err(&o));
    let used: u64 = stdout.lines().last().unwrap().parse().unwrap();
    assert!(used <= 64, "{used} MiB in /tmp");
    // The root file system takes nothing.
    let o = h.shell("dd if=/dev/zero of=/big bs=1M count=1").await;
    assert_refused(&o, EROFS);
    assert_clean(&h).await;
}

#[tokio::test]
async fn a_disk_filler_in_the_workspace_hits_the_file_size_cap() {
    let Some((_shared, h)) = harness("a_disk_filler_in_the_workspace_hits_the_file_size_cap").await
    else {
        return;
    };
    use pincer_executor::docker::posture::FILE_SIZE_LIMIT;
    // dd keeps SIGXFSZ's default action: the kernel kills it at the limit.
    let o = h
        .run(argv_request(&[
            "dd",
            "if=/dev/zero",
            "of=big",
            "bs=1M",
            "count=100",
        ]))
        .await;
    assert_eq!(o.exit_code, 128 + libc::SIGXFSZ, "{o:?} {}", err(&o));
    assert_eq!(
        std::fs::metadata(h.agent_dir().join("big")).unwrap().len(),
        FILE_SIZE_LIMIT
    );
    // Python ignores SIGXFSZ, so it sees EFBIG instead.
    let o = h
        .py("f = open('big2', 'wb')\nfor _ in range(100): f.write(b'x' * (1 << 20)); f.flush()\nprint('WROTE')")
        .await;
    assert_refused(&o, "File too large");
    assert!(std::fs::metadata(h.agent_dir().join("big2")).unwrap().len() <= FILE_SIZE_LIMIT);
    assert_clean(&h).await;
}

#[tokio::test]
async fn open_files_are_capped() {
    let Some((_shared, h)) = harness("open_files_are_capped").await else {
        return;
    };
    let o = h
        .py("import os, errno\nfds = []\n\
             try:\n  for _ in range(5000): fds.append(os.open('/dev/null', os.O_RDONLY))\n\
             except OSError as e: print(len(fds) + 3 <= 1024, errno.errorcode[e.errno])")
        .await;
    assert_eq!(out(&o), "True EMFILE\n", "{}", err(&o));
    assert_clean(&h).await;
}

#[tokio::test]
async fn a_process_ignoring_sigterm_is_killed_at_the_timeout() {
    let Some((_shared, h)) = harness("a_process_ignoring_sigterm_is_killed_at_the_timeout").await
    else {
        return;
    };
    let started = Instant::now();
    let o = h
        .run(shell_request(
            "trap '' TERM INT HUP; echo started; while :; do sleep 1; done",
            1_000,
        ))
        .await;
    assert!(o.timed_out, "{o:?}");
    assert_eq!(o.exit_code, -1);
    assert_eq!(out(&o), "started\n");
    assert!(o.duration >= Duration::from_millis(1_000));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_clean(&h).await;
}

/// Containers of this harness's backend, as `docker ps -a` lists them by label.
fn docker_ps_by_label(h: &Harness) -> String {
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "-q", "--filter"])
        .arg(format!(
            "label={INSTANCE_LABEL}={}",
            h.backend.instance_id()
        ))
        .args(["--filter", &format!("label={SANDBOX_LABEL}=1")])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_double_forked_daemon_does_not_outlive_the_call() {
    let Some((_shared, h)) = harness("a_double_forked_daemon_does_not_outlive_the_call").await
    else {
        return;
    };
    // The daemon leaves the session and the process group, then writes a marker into the
    // workspace two seconds after the call has returned.
    let code = "import os, time\n\
                if os.fork() == 0:\n\
                \x20 os.setsid()\n\
                \x20 if os.fork() == 0:\n\
                \x20   for fd in (0, 1, 2): os.close(fd)\n\
                \x20   open('daemon.pid', 'w').write(str(os.getpid()))\n\
                \x20   time.sleep(2)\n\
                \x20   open('marker', 'w').write('outlived')\n\
                \x20   time.sleep(1000)\n\
                \x20 os._exit(0)\n\
                while not os.path.exists('daemon.pid'): time.sleep(0.01)\n\
                print('parent done')\n";
    let started = Instant::now();
    let o = h.py(code).await;
    assert_eq!(o.exit_code, 0, "{}", err(&o));
    assert_eq!(out(&o), "parent done\n");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        h.agent_dir().join("daemon.pid").exists(),
        "the daemon started"
    );
    assert_eq!(docker_ps_by_label(&h), "", "the container is gone");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !h.agent_dir().join("marker").exists(),
        "the daemon outlived the call"
    );
    assert_clean(&h).await;
}

#[tokio::test]
async fn a_background_job_holding_stdout_does_not_hang_the_call() {
    let Some((_shared, h)) =
        harness("a_background_job_holding_stdout_does_not_hang_the_call").await
    else {
        return;
    };
    let started = Instant::now();
    let o = h.shell("sleep 1000 & echo started").await;
    assert_eq!(o.exit_code, 0);
    assert!(!o.timed_out);
    assert_eq!(out(&o), "started\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(docker_ps_by_label(&h), "");
    assert_clean(&h).await;
}

#[tokio::test]
async fn ordinary_tools_still_work_under_the_profile() {
    let Some((_shared, h)) = harness("ordinary_tools_still_work_under_the_profile").await else {
        return;
    };
    let o = h
        .shell(
            "set -e; echo '{\"a\": [1, 2]}' | jq -c '.a | map(. * 2)'; \
             printf 'b\\na\\n' | sort | tr '\\n' ' '; echo; \
             mkdir -p d && echo x > d/f && ln -s d/f l && cat l && rm -r d l; \
             python3 -c 'import json, subprocess, threading, tempfile, socket, select; \
             print(json.dumps(subprocess.run([\"echo\", \"sub\"], capture_output=True, text=True).stdout)); \
             a, b = socket.socketpair(); a.send(b\"pair\"); print(b.recv(4).decode())'; \
             date +%Y >/dev/null; sleep 0.1; echo done",
        )
        .await;
    assert_eq!(
        out(&o),
        "[2,4]\na b \nx\n\"sub\\n\"\npair\ndone\n",
        "{}",
        err(&o)
    );
    assert_eq!(o.exit_code, 0);
    assert_clean(&h).await;
}
