//! System calls the seccomp profile refuses.

use super::*;

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
