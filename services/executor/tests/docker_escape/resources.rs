//! Resources and lifetime: limits, fork bombs, timeouts, daemons.

use super::*;

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
