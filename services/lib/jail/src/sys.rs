//! The raw system calls the jail needs and no safe crate offers, each wrapped once.
//!
//! This is the only module with `unsafe`; every block says why it is sound.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`: the kernel's
/// Landlock ABI version, or the errno (`ENOSYS`: not built in; `EOPNOTSUPP`: disabled).
pub fn landlock_abi() -> Result<i32, Errno> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attribute pointer, size 0 and the VERSION flag the kernel only
    // returns a number; no memory is read or written.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        i32::try_from(ret).map_err(|_| Errno::EOVERFLOW)
    }
}

/// `seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action)`: whether the kernel supports seccomp
/// filters returning `action` (a side-effect-free probe for filter mode).
pub fn seccomp_action_available(action: u32) -> Result<(), Errno> {
    const SECCOMP_GET_ACTION_AVAIL: libc::c_uint = 2;
    // SAFETY: the kernel reads one u32 through the pointer, which points to a live local.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0u32,
            &action as *const u32,
        )
    };
    if ret == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// Installs a seccomp BPF filter on the calling thread (no_new_privs must already be set).
pub fn install_seccomp_filter(program: &[libc::sock_filter]) -> Result<(), Errno> {
    let len = u16::try_from(program.len()).map_err(|_| Errno::E2BIG)?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points to `program`, which outlives the call; the kernel copies the
    // filter before returning and never writes through the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// `pidfd_open(pid, 0)`: a descriptor that becomes readable when `pid` exits.
pub fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd, Errno> {
    // SAFETY: plain integer arguments; on success the kernel returns a new descriptor.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    if ret < 0 {
        return Err(Errno::last());
    }
    let fd = RawFd::try_from(ret).map_err(|_| Errno::EBADF)?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Closes every descriptor from 3 up except those in `keep` (in a fresh, single-threaded
/// helper that owns all of them). Falls back to closing one by one without `close_range`.
pub fn close_fds_except(keep: &[RawFd]) {
    let mut keep: Vec<libc::c_uint> = keep
        .iter()
        .filter_map(|&fd| libc::c_uint::try_from(fd).ok())
        .filter(|&fd| fd > 2)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from: libc::c_uint = 3;
    for &k in keep.iter().chain(std::iter::once(&libc::c_uint::MAX)) {
        if k > from {
            close_range(from, k - 1);
        }
        from = k.saturating_add(1);
    }
}

fn close_range(first: libc::c_uint, last: libc::c_uint) {
    // SAFETY: only called by the helper before it creates any descriptor of its own, so
    // no live Rust object owns a descriptor in the range.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if ret == 0 {
        return;
    }
    let max = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
        .min(u64::from(last));
    for fd in u64::from(first)..=max {
        if let Ok(fd) = RawFd::try_from(fd) {
            // SAFETY: as above; errors (EBADF for unused numbers) are expected and ignored.
            unsafe { libc::close(fd) };
        }
    }
}

/// Takes ownership of descriptor `fd`, inherited from the parent that started the helper.
pub fn take_inherited_fd(fd: RawFd) -> Result<OwnedFd, Errno> {
    nix::fcntl::fcntl(
        // SAFETY: `fd` is only borrowed for the duration of this F_GETFD check.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )?;
    // SAFETY: the descriptor is open (checked above), was passed to this process for this
    // purpose and nothing else in it refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Arranges for the helper started by `cmd` to inherit `report_fd` and, for a spawned
/// command, `stdin_fd` (both `O_CLOEXEC` in this process, so no other child inherits
/// them) and to start in a new session, so its process group exists before `spawn`
/// returns.
pub fn prepare_helper_command(cmd: &mut Command, report_fd: RawFd, stdin_fd: Option<RawFd>) {
    let inherit = [Some(report_fd), stdin_fd];
    let pre_exec = move || -> io::Result<()> {
        // Between fork and exec only async-signal-safe calls: fcntl and setsid.
        for fd in inherit.into_iter().flatten() {
            // SAFETY: fcntl(F_SETFD) on a descriptor the forked child has (it was open and
            // inherited by fork); it touches no memory.
            let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
            if ret < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: setsid takes no arguments and is async-signal-safe.
        if unsafe { libc::setsid() } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe system calls (fcntl, setsid) over a
    // copied array and does not allocate, lock or touch shared state, as `pre_exec`
    // requires.
    unsafe { cmd.pre_exec(pre_exec) };
}

/// Forks the calling process. Only the single-threaded helper calls this, so the child
/// may run ordinary Rust code.
pub fn fork_single_threaded() -> Result<nix::unistd::ForkResult, Errno> {
    // SAFETY: the helper is a freshly executed, single-threaded process (it is entered
    // from `main` before anything starts a thread), so the child inherits no lock held
    // by another thread and may allocate freely.
    unsafe { nix::unistd::fork() }
}

/// Whether `unshare(flags)` succeeds here, tried in a short-lived forked child so this
/// process (which may be multithreaded) is unaffected.
pub fn probe_unshare(flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: in the child only async-signal-safe raw system calls run (unshare, _exit);
    // no allocation, lock or Rust runtime code, which makes fork sound even in a
    // multithreaded parent.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: raw system calls with integer arguments, then _exit without
            // running any destructor or atexit handler.
            unsafe {
                let code = if libc::unshare(flags) == 0 {
                    0
                } else {
                    Errno::last_raw() & 0xff
                };
                libc::_exit(code)
            }
        }
        nix::unistd::ForkResult::Parent { child } => loop {
            match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => return Ok(()),
                Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => {
                    return Err(Errno::from_raw(code));
                }
                Ok(_) => return Err(Errno::ECHILD),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        },
    }
}

/// Resets every catchable signal to its default action and unblocks all signals, so the
/// command starts with a clean slate (the Rust runtime ignores SIGPIPE, and ignored
/// signals survive `execve`).
pub fn reset_signals() -> Result<(), Errno> {
    use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler, so no code can run in signal context.
        unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) }?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

/// Brings the loopback interface of the current network namespace up
/// (`SIOCGIFFLAGS`/`SIOCSIFFLAGS` with `IFF_UP` on `lo`); needs `CAP_NET_ADMIN` over the
/// namespace (root, or the owner of a new user namespace).
pub fn loopback_up() -> Result<(), Errno> {
    let socket = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes the flags into `req`,
    // a live local of the type the request expects.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the union's flags member is the one SIOCGIFFLAGS just filled in.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the name and flags from `req`, a live local.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Takes ownership of a descriptor just received with `SCM_RIGHTS`.
pub fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed `fd` in this process for this message only; nothing
    // else refers to it, so this is its single owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
