//! What the jail must let through, and how it reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Fixture, err, is_root, out};
use pincer_jail::{
    Access, ExitStatus, JailError, JailProfile, Limits, Namespace, SetupStep, Workspace,
    WorkspaceDir,
};

#[test]
fn echo_hi_runs_with_every_layer_applied() {
    let o = Fixture::new().run(["echo", "hi"]);
    assert_eq!(o.status, ExitStatus::Exited(0));
    assert_eq!(out(&o), "hi\n");
    assert_eq!(err(&o), "");
    let e = &o.enforcement;
    assert!(e.session_and_subreaper && e.rlimits && e.no_new_privs && e.seccomp);
    assert!(e.landlock_abi >= 1);
    assert_ne!(e.uid, 0);
    assert_ne!(e.gid, 0);
    let host = pincer_jail::HostSupport::probe();
    assert_eq!(e.landlock_tcp, host.landlock.abi().unwrap() >= 4);
    assert_eq!(e.landlock_scopes, host.landlock.abi().unwrap() >= 6);
    if e.namespaces.is_empty() {
        assert!(e.namespaces_refused.is_some());
    } else {
        assert!(e.namespaces.contains(&Namespace::Net));
    }
    if is_root() {
        assert_eq!((e.uid, e.gid), (65534, 65534));
    }
}

#[test]
fn the_host_name_is_private_when_namespaces_apply() {
    let o = Fixture::new().run(["hostname"]);
    let host = nix::unistd::gethostname().unwrap();
    if o.enforcement.namespaces.contains(&Namespace::Uts) {
        assert_eq!(out(&o), "pincer-jail\n");
    } else {
        assert_eq!(out(&o).trim(), host.to_str().unwrap());
    }
}

#[test]
fn exit_codes_and_signals_propagate() {
    let fx = Fixture::new();
    assert_eq!(fx.sh("exit 42").status, ExitStatus::Exited(42));
    assert_eq!(fx.run(["false"]).status, ExitStatus::Exited(1));
    assert_eq!(
        fx.sh("kill -9 $$").status,
        ExitStatus::Signaled(libc::SIGKILL)
    );
}

#[test]
fn stdout_and_stderr_are_separate() {
    let o = Fixture::new().sh("echo out; echo err >&2");
    assert_eq!(out(&o), "out\n");
    assert_eq!(err(&o), "err\n");
}

#[test]
fn output_is_capped_and_counted() {
    let fx = Fixture::new();
    let limits = Limits {
        output_bytes: 1000.try_into().unwrap(),
        ..Limits::default()
    };
    let p = fx
        .profile(["head", "-c", "200000", "/dev/zero"])
        .limits(limits)
        .build()
        .unwrap();
    let o = common::jail().run(&p).unwrap();
    assert_eq!(
        o.status,
        ExitStatus::Exited(0),
        "the writer was never blocked"
    );
    assert_eq!(o.stdout.bytes.len(), 1000);
    assert_eq!(o.stdout.total_bytes, 200_000);
    assert!(o.stdout.truncated());
    assert!(!o.stderr.truncated());
}

#[test]
fn a_read_write_workspace_is_writable() {
    let fx = Fixture::new();
    let o = fx.sh("mkdir -p d && echo hi > d/note.txt && cat d/note.txt");
    assert_eq!(out(&o), "hi\n");
    let written = std::fs::read_to_string(fx.ws.join("d/note.txt")).unwrap();
    assert_eq!(written, "hi\n");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(fx.ws.join("d/note.txt")).unwrap();
    assert_eq!(meta.uid(), fx.user.uid());
}

#[test]
fn a_read_only_workspace_is_readable_not_writable() {
    let fx = Fixture::new();
    std::fs::write(fx.ws.join("in.txt"), "data\n").unwrap();
    let p = fx
        .profile(["/bin/sh", "-c", "cat in.txt; echo x > out.txt; rm in.txt"])
        .workspace(fx.workspace(Access::ReadOnly))
        .build()
        .unwrap();
    let o = common::jail().run(&p).unwrap();
    assert_eq!(out(&o), "data\n");
    // The workspace belongs to the jail user, so only Landlock refuses.
    assert!(
        err(&o).contains("cannot create out.txt: Permission denied"),
        "{}",
        err(&o)
    );
    assert!(err(&o).contains("Permission denied"));
    assert!(!fx.ws.join("out.txt").exists());
    assert!(fx.ws.join("in.txt").exists());
}

#[test]
fn without_a_workspace_it_runs_in_a_private_directory() {
    let fx = Fixture::new();
    let p = JailProfile::builder([
        "/bin/sh",
        "-c",
        &format!(
            "pwd; echo $HOME $TMPDIR; echo x > f && cat f; ls {}",
            fx.ws.display()
        ),
    ])
    .user(fx.user)
    .build()
    .unwrap();
    let o = common::jail().run(&p).unwrap();
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("pincer-jail-"), "{text}");
    assert_eq!(lines[1], format!("{} {}", lines[0], lines[0]));
    assert_eq!(lines[2], "x");
    assert!(err(&o).contains("Permission denied"), "{}", err(&o));
    assert!(
        !std::path::Path::new(lines[0]).exists(),
        "the private directory is removed"
    );
}

#[test]
fn the_working_directory_is_honoured() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.ws.join("a/b")).unwrap();
    let ws = WorkspaceDir::new(&fx.ws, Access::ReadWrite, "a/b").unwrap();
    let p = fx
        .profile(["pwd"])
        .workspace(Workspace::Dir(ws))
        .build()
        .unwrap();
    let o = common::jail().run(&p).unwrap();
    assert_eq!(out(&o).trim(), fx.ws.join("a/b").to_str().unwrap());
}

#[test]
fn an_unreachable_working_directory_fails_setup() {
    if !is_root() {
        eprintln!("SKIP: needs root to make the workspace unreachable for the jail user");
        return;
    }
    let fx = Fixture::new();
    common::chmod(&fx.base, 0o700);
    let err = common::jail()
        .run(&fx.profile(["true"]).build().unwrap())
        .unwrap_err();
    assert!(
        matches!(&err, JailError::Setup { step: SetupStep::Cwd, detail } if detail.contains("Permission denied")),
        "{err}"
    );
}

#[test]
fn extra_environment_variables_pass() {
    let fx = Fixture::new();
    let p = fx
        .profile(["/bin/sh", "-c", "echo $GREETING $PATH"])
        .env("GREETING", "hello")
        .env("PATH", "/usr/bin:/bin")
        .build()
        .unwrap();
    assert_eq!(
        out(&common::jail().run(&p).unwrap()),
        "hello /usr/bin:/bin\n"
    );
}

#[test]
fn a_missing_program_is_an_exec_error() {
    let fx = Fixture::new();
    let e = common::jail()
        .run(&fx.profile(["no-such-program-xyz"]).build().unwrap())
        .unwrap_err();
    assert!(
        matches!(&e, JailError::Exec { program, detail } if program == "no-such-program-xyz" && detail == "No such file or directory"),
        "{e}"
    );
}

#[test]
fn unix_sockets_and_python_work_inside() {
    let o = Fixture::new().py(
        "import socket\na, b = socket.socketpair()\na.sendall(b'ping')\nprint(b.recv(4).decode())",
    );
    assert_eq!(out(&o), "ping\n", "{}", err(&o));
}

#[test]
fn a_quick_command_is_not_held_to_its_timeout() {
    let fx = Fixture::new();
    let p = fx
        .profile(["sleep", "0.2"])
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let o = common::jail().run(&p).unwrap();
    assert_eq!(o.status, ExitStatus::Exited(0));
    assert!(o.elapsed >= Duration::from_millis(200));
    assert!(o.elapsed < Duration::from_secs(3), "{:?}", o.elapsed);
    assert_eq!(o.leftovers_killed, 0);
}

#[test]
fn jails_run_concurrently() {
    let fx = Fixture::new();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let p = fx
                .profile(["/bin/sh", "-c", &format!("echo {i} > f{i}; cat f{i}")])
                .build()
                .unwrap();
            std::thread::spawn(move || common::jail().run(&p).unwrap())
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(out(&h.join().unwrap()), format!("{i}\n"));
    }
}

#[test]
fn a_helper_that_is_not_a_helper_is_reported() {
    let p = JailProfile::builder(["true"]).build().unwrap();
    let e = pincer_jail::Jail::with_helper("/bin/true")
        .run(&p)
        .unwrap_err();
    assert!(matches!(e, JailError::HelperLost { .. }), "{e}");
    let e = pincer_jail::Jail::with_helper("/nonexistent/helper")
        .run(&p)
        .unwrap_err();
    assert!(matches!(e, JailError::HelperStart { .. }), "{e}");
}

#[test]
fn explain_describes_this_host() {
    let host = pincer_jail::HostSupport::probe().probe_namespaces();
    let text = pincer_jail::explain::explain(&host);
    assert!(text.contains(&format!("kernel {}", host.kernel)));
    assert!(text.contains("Landlock: ABI"), "{text}");
    assert!(
        text.contains("A default profile here enforces, in order:"),
        "{text}"
    );
    assert!(text.contains("io_uring_setup"));
    assert!(text.contains("Not enforced by the jail:"));
}
