//! Privilege: capabilities, setuid, users.

use super::*;

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
