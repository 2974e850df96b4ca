//! The escape battery: each test makes one attempt from inside the jail and asserts both
//! that it failed and why (errno text, exit status, signal or timeout). Where it is
//! harmless, a control runs the same probe outside the jail to show the jail, not the
//! arguments, is what stops it.
//!
//! File-system attempts target files owned by the jail user and world-readable in a
//! world-writable directory, so file permissions would allow them: only Landlock refuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::{CANARY, Fixture, alive, bare_py, err, is_root, out, syscall_py};
use pincer_jail::{ExitStatus, JailUser, Limits};

const DENIED: &str = "Permission denied";

fn assert_refused(o: &pincer_jail::JailOutcome, why: &str) {
    assert_ne!(o.status, ExitStatus::Exited(0), "escape succeeded: {o:?}");
    assert!(
        err(o).contains(why),
        "expected {why:?} in stderr: {}",
        err(o)
    );
    assert!(!out(o).contains(CANARY), "canary leaked: {}", out(o));
}

fn assert_errno(o: &pincer_jail::JailOutcome, errno: &str) {
    assert_eq!(out(o).trim(), errno, "stderr: {}", err(o));
}

// ---------- file system ----------

#[test]
fn etc_shadow_is_unreadable_but_etc_is_readable() {
    let fx = Fixture::new();
    let o = fx.sh("cat /etc/passwd >/dev/null && echo passwd-ok; cat /etc/shadow");
    assert_eq!(out(&o), "passwd-ok\n");
    assert_refused(&o, "/etc/shadow: Permission denied");
}

#[test]
fn proc_1_environ_is_unreadable() {
    let o = Fixture::new().sh("cat /proc/1/environ");
    assert_refused(&o, "/proc/1/environ: Permission denied");
}

#[test]
fn proc_cannot_be_listed() {
    let o = Fixture::new().run(["ls", "/proc"]);
    assert_refused(&o, "cannot open directory '/proc': Permission denied");
}

#[test]
fn another_sessions_workspace_is_unreadable() {
    let fx = Fixture::new();
    let o = fx.run(["cat", fx.secret.to_str().unwrap()]);
    assert_refused(&o, DENIED);
    if is_root() {
        // Control: file permissions alone would let the jail user read it.
        let bare = std::process::Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "cat",
            ])
            .arg(&fx.secret)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&bare.stdout).contains(CANARY));
    }
}

#[test]
fn dotdot_traversal_is_refused() {
    let o = Fixture::new().run(["cat", "../other/secret.txt"]);
    assert_refused(&o, "../other/secret.txt: Permission denied");
}

#[test]
fn the_config_file_is_unreadable() {
    let fx = Fixture::new();
    let o = fx.run(["cat", fx.config.to_str().unwrap()]);
    assert_refused(&o, DENIED);
}

#[test]
fn root_home_is_unreadable() {
    let o = Fixture::new().run(["ls", "/root"]);
    assert_refused(&o, "cannot open directory '/root': Permission denied");
}

#[test]
fn writing_to_tmp_outside_is_refused() {
    let fx = Fixture::new();
    let target = std::env::temp_dir().join(format!("pincer-escape-{}", std::process::id()));
    let o = fx.sh(&format!("echo x > {}", target.display()));
    assert_refused(&o, DENIED);
    assert!(!target.exists());
}

#[test]
fn writing_to_etc_is_refused() {
    let o = Fixture::new().sh("echo x > /etc/pincer-escape");
    assert_refused(&o, "cannot create /etc/pincer-escape: Permission denied");
    assert!(!std::path::Path::new("/etc/pincer-escape").exists());
}

#[test]
fn writing_to_the_parent_directory_is_refused() {
    let fx = Fixture::new();
    // base/ is 0777: only Landlock stops this.
    let o = fx.sh("echo x > ../escaped");
    assert_refused(&o, "cannot create ../escaped: Permission denied");
    assert!(!fx.base.join("escaped").exists());
}

#[test]
fn a_symlink_to_outside_does_not_read_through() {
    let fx = Fixture::new();
    let o = fx.sh(&format!(
        "ln -s {} link && echo linked && cat link",
        fx.secret.display()
    ));
    assert_eq!(out(&o), "linked\n", "creating the link itself is allowed");
    assert_refused(&o, "link: Permission denied");
}

#[test]
fn a_hardlink_to_an_outside_file_is_refused() {
    let fx = Fixture::new();
    let o = fx.run(["ln", fx.secret.to_str().unwrap(), "hl"]);
    // Landlock refuses to link a file into a hierarchy granting more than its origin
    // (EXDEV, "Invalid cross-device link").
    assert_refused(&o, "Invalid cross-device link");
    assert!(!fx.ws.join("hl").exists());
}

#[test]
fn moving_a_file_out_of_the_workspace_is_refused() {
    let fx = Fixture::new();
    let o = fx.sh("echo data > f && mv f ../f");
    assert_refused(&o, "cannot move 'f' to '../f'");
    assert!(fx.ws.join("f").exists() && !fx.base.join("f").exists());
}

#[test]
fn binaries_outside_cannot_be_executed() {
    let fx = Fixture::new();
    let copy = fx.other.join("true");
    std::fs::copy("/usr/bin/true", &copy).unwrap();
    let profile = fx.profile([copy.to_str().unwrap()]).build().unwrap();
    let e = common::jail().run(&profile).unwrap_err();
    assert!(
        matches!(&e, pincer_jail::JailError::Exec { detail, .. } if detail == DENIED),
        "{e}"
    );
}

#[test]
fn block_devices_and_dev_are_unreachable() {
    let fx = Fixture::new();
    let disk = ["/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/mem"]
        .into_iter()
        .find(|d| std::path::Path::new(d).exists())
        .unwrap();
    // Read-only attempts: a failure of the jail must not be able to harm the disk.
    let o = fx.sh(&format!("head -c 16 {disk} | od | head -1; ls /dev"));
    assert!(
        err(&o).contains(&format!(
            "cannot open '{disk}' for reading: Permission denied"
        )),
        "{}",
        err(&o)
    );
    assert!(err(&o).contains("cannot open directory '/dev': Permission denied"));
    assert!(
        out(&o).is_empty() || out(&o).trim() == "0000000",
        "{}",
        out(&o)
    );
}

#[test]
fn a_pty_cannot_be_opened() {
    let o = Fixture::new().py(
        "import os\ntry:\n  os.openpty(); print('OPENED')\nexcept OSError as e: print(e.strerror)",
    );
    assert_eq!(out(&o).trim(), DENIED);
}

// ---------- network ----------

#[test]
fn tcp_to_a_loopback_listener_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let o = Fixture::new().py(&format!(
        "import socket\n\
         try:\n  socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')\n\
         except OSError as e: print(e.strerror)"
    ));
    assert_errno(&o, "Operation not permitted");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the listener saw a connection"
    );
}

#[test]
fn bash_dev_tcp_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let o = Fixture::new().run([
        "/bin/bash",
        "-c",
        &format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED"),
    ]);
    assert_refused(&o, "Operation not permitted");
}

fn socket_family(family: i32, kind: i32) -> pincer_jail::JailOutcome {
    Fixture::new().py(&syscall_py(
        libc::SYS_socket,
        &[family.into(), kind.into(), 0],
    ))
}

#[test]
fn no_af_inet_socket_at_all() {
    assert_errno(&socket_family(libc::AF_INET, libc::SOCK_DGRAM), "EPERM");
    // Control: outside the jail the same call works.
    let code = syscall_py(
        libc::SYS_socket,
        &[libc::AF_INET.into(), libc::SOCK_DGRAM.into(), 0],
    );
    assert_eq!(bare_py(&code), "OK");
}

#[test]
fn no_af_inet6_socket() {
    assert_errno(&socket_family(libc::AF_INET6, libc::SOCK_STREAM), "EPERM");
}

#[test]
fn no_netlink_socket() {
    assert_errno(&socket_family(libc::AF_NETLINK, libc::SOCK_RAW), "EPERM");
}

#[test]
fn no_packet_socket() {
    assert_errno(&socket_family(libc::AF_PACKET, libc::SOCK_RAW), "EPERM");
}

#[test]
fn an_abstract_socket_outside_is_unreachable() {
    let name = format!("pincer-jail-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let o = Fixture::new().py(&format!(
        "import socket\ns = socket.socket(socket.AF_UNIX)\n\
         try:\n  s.connect('\\0{name}'); print('CONNECTED')\n\
         except OSError as e: print(e.strerror)"
    ));
    let why = out(&o);
    // Landlock's abstract-socket scope answers EPERM; a private network namespace (which
    // has its own abstract socket table) answers ECONNREFUSED.
    let e = &o.enforcement;
    let expected = if e.namespaces.contains(&pincer_jail::Namespace::Net) {
        "Connection refused"
    } else if e.landlock_scopes {
        "Operation not permitted"
    } else {
        panic!("neither a network namespace nor Landlock scoping: the jail is open here")
    };
    assert_eq!(why.trim(), expected, "{e:?}");
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

// ---------- system calls (seccomp) ----------

/// Runs `syscall(nr, args)` in the jail and, when `control` is given, outside it.
fn syscall_case(nr: libc::c_long, args: &[i64], jailed: &str, control: Option<&str>) {
    let code = syscall_py(nr, args);
    let o = Fixture::new().py(&code);
    assert_errno(&o, jailed);
    if let Some(control) = control {
        assert_eq!(bare_py(&code), control, "control run outside the jail");
    }
}

const BAD_PID: i64 = 0x3fff_ffff;

#[test]
fn ptrace_is_refused() {
    const PTRACE_PEEKDATA: i64 = 2;
    syscall_case(
        libc::SYS_ptrace,
        &[PTRACE_PEEKDATA, BAD_PID, 0, 0],
        "EPERM",
        Some("ESRCH"),
    );
}

#[test]
fn ptrace_attach_to_the_parent_is_refused() {
    let o = Fixture::new().py(
        "import ctypes, errno, os\nlibc = ctypes.CDLL(None, use_errno=True)\n\
         r = libc.ptrace(16, os.getppid(), 0, 0)\n\
         print('OK' if r != -1 else errno.errorcode[ctypes.get_errno()])",
    );
    assert_errno(&o, "EPERM");
}

#[test]
fn process_vm_readv_is_refused() {
    syscall_case(
        libc::SYS_process_vm_readv,
        &[BAD_PID, 0, 1, 0, 1, 0],
        "EPERM",
        Some("EFAULT"),
    );
}

#[test]
fn mount_is_refused() {
    syscall_case(libc::SYS_mount, &[0, 0, 0, 0, 0], "EPERM", Some("EFAULT"));
}

#[test]
fn umount_is_refused() {
    syscall_case(libc::SYS_umount2, &[0, 0], "EPERM", Some("EFAULT"));
}

#[test]
fn pivot_root_and_chroot_are_refused() {
    syscall_case(libc::SYS_pivot_root, &[0, 0], "EPERM", Some("EFAULT"));
    syscall_case(libc::SYS_chroot, &[0], "EPERM", Some("EFAULT"));
}

#[test]
fn unshare_is_refused_even_as_a_no_op() {
    syscall_case(libc::SYS_unshare, &[0], "EPERM", Some("OK"));
}

#[test]
fn unshare_user_namespace_tool_fails() {
    let o = Fixture::new().run(["unshare", "-U", "-r", "id"]);
    assert_refused(&o, "unshare failed: Operation not permitted");
}

#[test]
fn unshare_network_namespace_tool_fails() {
    let o = Fixture::new().run(["unshare", "-n", "true"]);
    assert_refused(&o, "unshare failed: Operation not permitted");
}

#[test]
fn clone_with_a_new_user_namespace_is_refused() {
    let flags = i64::from(libc::CLONE_NEWUSER | libc::SIGCHLD);
    // Jail only: outside, this would really fork the Python process.
    syscall_case(libc::SYS_clone, &[flags, 0, 0, 0, 0], "EPERM", None);
}

#[test]
fn clone3_answers_enosys() {
    syscall_case(libc::SYS_clone3, &[0, 0], "ENOSYS", Some("EINVAL"));
}

#[test]
fn setns_is_refused() {
    syscall_case(libc::SYS_setns, &[-1, 0], "EPERM", Some("EBADF"));
}

#[test]
fn io_uring_is_refused() {
    let o = Fixture::new().py(&syscall_py(libc::SYS_io_uring_setup, &[0, 0]));
    assert_errno(&o, "EPERM");
    let control = bare_py(&syscall_py(libc::SYS_io_uring_setup, &[0, 0]));
    assert!(
        ["EINVAL", "EFAULT"].contains(&control.as_str()),
        "{control}"
    );
}

#[test]
fn bpf_is_refused() {
    syscall_case(libc::SYS_bpf, &[999, 0, 0], "EPERM", Some("EINVAL"));
}

#[test]
fn perf_event_open_is_refused() {
    syscall_case(
        libc::SYS_perf_event_open,
        &[0, 0, -1, -1, 0],
        "EPERM",
        Some("EFAULT"),
    );
}

#[test]
fn userfaultfd_is_refused() {
    syscall_case(libc::SYS_userfaultfd, &[0xffff], "EPERM", Some("EINVAL"));
}

#[test]
fn keyrings_are_refused() {
    // EOPNOTSUPP, which Python names ENOTSUP (the same number on Linux).
    syscall_case(
        libc::SYS_keyctl,
        &[9999, 0, 0, 0, 0],
        "EPERM",
        Some("ENOTSUP"),
    );
    syscall_case(libc::SYS_add_key, &[0, 0, 0, 0, 0], "EPERM", Some("EFAULT"));
    syscall_case(
        libc::SYS_request_key,
        &[0, 0, 0, 0],
        "EPERM",
        Some("EFAULT"),
    );
}

#[test]
fn kernel_and_machine_control_is_refused() {
    // Jail only (no controls): these act on the whole machine. Arguments are invalid as
    // well, so even a broken filter could not do harm. EPERM here is seccomp's answer (the
    // unit tests check the table) and would also be the missing capability's.
    for (nr, args) in [
        (libc::SYS_kexec_load, vec![0, 0, 0, 0xffff_ffff]),
        (libc::SYS_kexec_file_load, vec![-1, -1, 0, 0, 0xffff_ffff]),
        (libc::SYS_init_module, vec![0, 0, 0]),
        (libc::SYS_finit_module, vec![-1, 0, 0]),
        (libc::SYS_delete_module, vec![0, 0]),
        (libc::SYS_reboot, vec![0, 0, 0, 0]),
        (libc::SYS_swapon, vec![0, 0]),
        (libc::SYS_swapoff, vec![0]),
    ] {
        syscall_case(nr, &args, "EPERM", None);
    }
}

#[test]
fn tiocsti_is_refused() {
    // fd 0 is /dev/null: without the filter the kernel says ENOTTY.
    let code = "import fcntl, termios\n\
                try:\n  fcntl.ioctl(0, termios.TIOCSTI, b'x'); print('INJECTED')\n\
                except OSError as e: print(e.strerror)";
    assert_eq!(
        out(&Fixture::new().py(code)).trim(),
        "Operation not permitted"
    );
    assert_eq!(bare_py(code), "Inappropriate ioctl for device");
}

#[test]
fn kill_minus_one_is_refused() {
    syscall_case(libc::SYS_kill, &[-1, 0], "EPERM", Some("OK"));
}

#[test]
fn a_same_uid_process_outside_cannot_be_signalled() {
    if !is_root() {
        eprintln!("SKIP: needs root to start a victim under a spare uid");
        return;
    }
    use std::os::unix::process::CommandExt;
    let uid = 65532;
    let mut victim = std::process::Command::new("sleep")
        .arg("30")
        .uid(uid)
        .gid(uid)
        .spawn()
        .unwrap();
    let fx = Fixture::with_user(JailUser::new(uid, uid).unwrap());
    let o = fx.py(&format!(
        "import os\ntry:\n  os.kill({}, 9); print('KILLED')\nexcept OSError as e: print(e.strerror)",
        victim.id()
    ));
    assert!(
        o.enforcement.landlock_scopes,
        "Landlock ABI 6+ expected here"
    );
    assert_eq!(out(&o).trim(), "Operation not permitted");
    assert!(victim.try_wait().unwrap().is_none(), "the victim died");
    // Control: the same uid outside the jail may signal it.
    let status = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            "65532",
            "--regid",
            "65532",
            "--clear-groups",
            "kill",
            "-9",
        ])
        .arg(victim.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    victim.wait().unwrap();
}

// ---------- privilege ----------

#[test]
fn a_setuid_binary_does_not_gain_root() {
    if !is_root() {
        eprintln!("SKIP: needs root to make a setuid-root binary");
        return;
    }
    let fx = Fixture::new();
    let src = fx.base.join("ids.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <unistd.h>\nint main(void){printf(\"%d %d\\n\", getuid(), geteuid());return 0;}\n",
    )
    .unwrap();
    let bin = fx.ws.join("ids");
    let gcc = std::process::Command::new("gcc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap();
    assert!(gcc.success());
    nix::unistd::chown(
        &bin,
        Some(nix::unistd::Uid::from_raw(0)),
        Some(nix::unistd::Gid::from_raw(0)),
    )
    .unwrap();
    common::chmod(&bin, 0o4755);
    // Control: outside the jail, the setuid bit works for uid 65534.
    let bare = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&bin)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&bare.stdout), "65534 0\n");
    let o = fx.run(["./ids"]);
    assert_eq!(
        out(&o),
        "65534 65534\n",
        "no_new_privs must neutralise setuid"
    );
}

#[test]
fn su_does_not_give_root() {
    let o = Fixture::new().run(["su", "root", "-c", "id -u"]);
    assert_ne!(o.status, ExitStatus::Exited(0));
    assert!(!out(&o).contains('0'), "{}", out(&o));
}

#[test]
fn the_callers_environment_does_not_leak() {
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some() || std::env::var_os("PATH").is_some());
    let o = Fixture::new().run(["env"]);
    let text = out(&o);
    let mut names: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
    names.sort_unstable();
    assert_eq!(names, ["HOME", "LANG", "PATH", "TMPDIR"]);
}

#[test]
fn inherited_descriptors_are_closed() {
    let fx = Fixture::new();
    // A descriptor on the secret, open in the caller and not close-on-exec.
    let fd = nix::fcntl::open(
        &fx.secret,
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let o = fx.py(&format!(
        "import os\nopen_fds = []\nfor fd in range(3, 1024):\n  try: os.fstat(fd); open_fds.append(fd)\n  except OSError: pass\n\
         print(open_fds)\ntry: print(os.read({raw}, 100))\nexcept OSError as e: print(e.strerror)"
    ));
    assert_eq!(out(&o), "[]\nBad file descriptor\n", "{}", err(&o));
    drop(fd);
}

// ---------- resources and lifetime ----------

#[test]
fn a_fork_bomb_hits_the_process_limit_and_is_cleaned_up() {
    if !is_root() {
        eprintln!("SKIP: needs root to run the bomb under a spare uid");
        return;
    }
    // A spare uid: RLIMIT_NPROC counts per uid, and the leftover check looks at it.
    let uid = 65533;
    let fx = Fixture::with_user(JailUser::new(uid, uid).unwrap());
    let limits = Limits {
        processes: 24.try_into().unwrap(),
        ..Limits::default()
    };
    let bomb = "import os, time, errno\nn = 0\nwhile True:\n\
                \x20 try: pid = os.fork()\n\
                \x20 except OSError as e: print(n, errno.errorcode[e.errno], flush=True); break\n\
                \x20 if pid == 0:\n\
                \x20   while True:\n\
                \x20     try: os.fork()\n\
                \x20     except OSError: time.sleep(0.01)\n\
                \x20 n += 1\n\
                time.sleep(60)\n";
    let profile = fx
        .profile(["/usr/bin/python3", "-c", bomb])
        .limits(limits)
        .timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    let o = common::jail().run(&profile).unwrap();
    assert_eq!(o.status, ExitStatus::TimedOut);
    let line = out(&o);
    let (count, errno) = line.trim().split_once(' ').unwrap();
    assert_eq!(errno, "EAGAIN");
    assert!(count.parse::<u32>().unwrap() < 24);
    assert!(o.leftovers_killed > 0);
    assert!(o.elapsed < Duration::from_secs(15), "{:?}", o.elapsed);
    assert_eq!(
        common::processes_of(uid),
        Vec::<i32>::new(),
        "bomb survivors"
    );
}

#[test]
fn a_memory_hog_hits_the_address_space_limit() {
    let fx = Fixture::new();
    let limits = Limits {
        address_space_bytes: (256u64 << 20).try_into().unwrap(),
        ..Limits::default()
    };
    let code = "small = bytearray(16 << 20); print('small ok', flush=True)\nbig = bytearray(1 << 30)\nprint('ALLOCATED')";
    let profile = fx
        .profile(["/usr/bin/python3", "-c", code])
        .limits(limits)
        .build()
        .unwrap();
    let o = common::jail().run(&profile).unwrap();
    assert_eq!(out(&o), "small ok\n");
    assert_eq!(o.status, ExitStatus::Exited(1));
    assert!(err(&o).contains("MemoryError"), "{}", err(&o));
}

#[test]
fn a_disk_filler_hits_the_file_size_limit() {
    let fx = Fixture::new();
    let limits = Limits {
        file_size_bytes: (1u64 << 20).try_into().unwrap(),
        ..Limits::default()
    };
    // dd keeps SIGXFSZ's default action: the kernel kills it at the limit.
    let profile = fx
        .profile(["dd", "if=/dev/zero", "of=big", "bs=128K", "count=64"])
        .limits(limits)
        .build()
        .unwrap();
    let o = common::jail().run(&profile).unwrap();
    assert_eq!(o.status, ExitStatus::Signaled(libc::SIGXFSZ));
    assert_eq!(std::fs::metadata(fx.ws.join("big")).unwrap().len(), 1 << 20);
    // Python ignores SIGXFSZ, so it sees EFBIG instead.
    let code = "f = open('big2', 'wb')\nfor _ in range(64): f.write(b'x' * 131072); f.flush()\nprint('WROTE')";
    let profile = fx
        .profile(["/usr/bin/python3", "-c", code])
        .limits(limits)
        .build()
        .unwrap();
    let o = common::jail().run(&profile).unwrap();
    assert_eq!(o.status, ExitStatus::Exited(1));
    assert!(err(&o).contains("File too large"), "{}", err(&o));
    assert!(!out(&o).contains("WROTE"));
    assert!(std::fs::metadata(fx.ws.join("big2")).unwrap().len() <= 1 << 20);
}

#[test]
fn a_cpu_burner_hits_the_cpu_limit() {
    let fx = Fixture::new();
    let limits = Limits {
        cpu_seconds: 1.try_into().unwrap(),
        ..Limits::default()
    };
    let profile = fx
        .profile(["/usr/bin/python3", "-c", "while True: pass"])
        .limits(limits)
        .build()
        .unwrap();
    let o = common::jail().run(&profile).unwrap();
    assert_eq!(o.status, ExitStatus::Signaled(libc::SIGXCPU));
    assert!(o.elapsed < Duration::from_secs(10), "{:?}", o.elapsed);
}

#[test]
fn a_process_ignoring_sigterm_is_killed_at_the_timeout() {
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
    let o = common::jail().run(&profile).unwrap();
    assert_eq!(o.status, ExitStatus::TimedOut);
    assert!(o.elapsed >= Duration::from_secs(1));
    assert!(o.elapsed < Duration::from_secs(4), "{:?}", o.elapsed);
    let pid: i32 = out(&o).trim().parse().unwrap();
    assert!(!alive(pid), "the shell survived");
}

#[test]
fn a_double_forked_daemon_does_not_outlive_the_call() {
    let fx = Fixture::new();
    let code = "import os, time\n\
                if os.fork() == 0:\n\
                \x20 os.setsid()\n\
                \x20 if os.fork() == 0:\n\
                \x20   open('daemon.tmp', 'w').write(str(os.getpid())); os.rename('daemon.tmp', 'daemon.pid')\n\
                \x20   time.sleep(1000)\n\
                \x20 os._exit(0)\n\
                while not os.path.exists('daemon.pid'): time.sleep(0.01)\n\
                print('parent done')\n";
    let o = fx.py(code);
    assert_eq!(o.status, ExitStatus::Exited(0));
    assert_eq!(out(&o), "parent done\n");
    let pid: i32 = std::fs::read_to_string(fx.ws.join("daemon.pid"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(o.leftovers_killed >= 1, "{o:?}");
    assert!(!alive(pid), "the daemon {pid} outlived the call");
    assert!(o.elapsed < Duration::from_secs(10));
}

#[test]
fn a_background_job_holding_stdout_does_not_hang_the_call() {
    let o = Fixture::new().sh("sleep 1000 & echo started");
    assert_eq!(o.status, ExitStatus::Exited(0));
    assert_eq!(out(&o), "started\n");
    assert!(o.elapsed < Duration::from_secs(5), "{:?}", o.elapsed);
    assert_eq!(o.leftovers_killed, 1);
}
