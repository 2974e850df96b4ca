//! File-system attempts: reading and writing outside the workspace, links, devices, the terminal.

use super::*;

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
