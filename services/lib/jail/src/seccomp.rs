//! The jail's seccomp filter: a small hand-built BPF program (no libseccomp).
//!
//! Order of checks: a foreign architecture kills the process (so 32-bit `int 0x80` and
//! other ABIs cannot bypass the table); on x86_64 every x32 system call (bit 30 set) is
//! refused; then the deny table ([`DENIED`]) answers `EPERM`; `clone3` answers `ENOSYS`
//! (libc then falls back to `clone`, whose flags a filter can see); `clone` with any
//! `CLONE_NEW*` flag, `socket`/`socketpair` with a family other than `AF_UNIX`,
//! `ioctl(TIOCSTI)`/`ioctl(TIOCLINUX)` and `kill(-1, …)` answer `EPERM`; everything else is
//! allowed. Arguments are compared on their low 32 bits, which is exactly what the kernel
//! uses for `int`/`unsigned int` arguments (setting high bits cannot slip past).
//!
//! Unit tests run the program through a small BPF interpreter over synthetic
//! `seccomp_data`, so the table is checked without installing anything.

use libc::sock_filter;

/// Why a filter could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeccompError {
    /// This CPU architecture has no syscall table here.
    #[error("no seccomp syscall table for the {0} architecture (supported: x86_64, aarch64)")]
    UnsupportedArch(&'static str),
    /// A jump is too far for classic BPF (a bug in the table).
    #[error("seccomp program too large: a jump spans more than 255 instructions")]
    TooFar,
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// Low 32 bits of argument `i` (little-endian layout of `struct seccomp_data`).
const fn off_arg_low(i: u32) -> u32 {
    16 + 8 * i
}

const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const CLONE_NEW_MASK: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541C;

/// System calls answered `EPERM` whatever their arguments, with why.
pub const DENIED: &[(&str, libc::c_long)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("syslog", libc::SYS_syslog),
    ("acct", libc::SYS_acct),
    #[cfg(target_arch = "x86_64")]
    ("modify_ldt", libc::SYS_modify_ldt),
    #[cfg(target_arch = "x86_64")]
    ("uselib", libc::SYS_uselib),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
];

/// The architecture this build filters for, as `(name, AUDIT_ARCH_*)`.
fn target() -> Result<(&'static str, u32), SeccompError> {
    if cfg!(target_arch = "x86_64") {
        Ok(("x86_64", AUDIT_ARCH_X86_64))
    } else if cfg!(target_arch = "aarch64") {
        Ok(("aarch64", AUDIT_ARCH_AARCH64))
    } else {
        Err(SeccompError::UnsupportedArch(std::env::consts::ARCH))
    }
}

/// The name of the architecture the filter supports here, or why there is none.
pub fn supported_arch() -> Result<&'static str, SeccompError> {
    target().map(|(name, _)| name)
}

fn nr(n: libc::c_long) -> u32 {
    // Syscall numbers are small and non-negative on every supported architecture.
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Kill,
    Allow,
    Eperm,
    Enosys,
    Socket,
    Clone,
    Ioctl,
    Kill1,
}

#[derive(Clone, Copy)]
enum Jump {
    Next,
    To(Label),
}

enum Op {
    Load(u32),
    Jump {
        code: u16,
        k: u32,
        jt: Jump,
        jf: Jump,
    },
    Ret(u32),
    Here(Label),
}

fn jeq(k: u32, jt: Jump, jf: Jump) -> Op {
    Op::Jump {
        code: BPF_JEQ_K,
        k,
        jt,
        jf,
    }
}

/// Which socket families the filter lets `socket`/`socketpair` create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sockets {
    /// `AF_UNIX` only (no network).
    UnixOnly,
    /// `AF_UNIX`, `AF_INET` and `AF_INET6`: for network egress, where the command runs in
    /// a network namespace whose only interface is loopback.
    UnixAndInet,
}

/// Builds the filter for this architecture.
pub fn build_filter(sockets: Sockets) -> Result<Vec<sock_filter>, SeccompError> {
    use Jump::{Next, To};
    let (_, arch) = target()?;
    let mut ops = vec![
        Op::Load(OFF_ARCH),
        jeq(arch, Next, To(Label::Kill)),
        Op::Load(OFF_NR),
    ];
    if arch == AUDIT_ARCH_X86_64 {
        ops.push(Op::Jump {
            code: BPF_JGE_K,
            k: X32_SYSCALL_BIT,
            jt: To(Label::Eperm),
            jf: Next,
        });
    }
    for &(_, n) in DENIED {
        ops.push(jeq(nr(n), To(Label::Eperm), Next));
    }
    ops.extend([
        jeq(nr(libc::SYS_clone3), To(Label::Enosys), Next),
        jeq(nr(libc::SYS_socket), To(Label::Socket), Next),
        jeq(nr(libc::SYS_socketpair), To(Label::Socket), Next),
        jeq(nr(libc::SYS_clone), To(Label::Clone), Next),
        jeq(nr(libc::SYS_ioctl), To(Label::Ioctl), Next),
        jeq(nr(libc::SYS_kill), To(Label::Kill1), Next),
        Op::Ret(RET_ALLOW),
        Op::Here(Label::Socket),
        Op::Load(off_arg_low(0)),
    ]);
    let family = |f: libc::c_int| u32::try_from(f).unwrap_or(u32::MAX);
    match sockets {
        Sockets::UnixOnly => {
            ops.push(jeq(
                family(libc::AF_UNIX),
                To(Label::Allow),
                To(Label::Eperm),
            ));
        }
        Sockets::UnixAndInet => ops.extend([
            jeq(family(libc::AF_UNIX), To(Label::Allow), Next),
            jeq(family(libc::AF_INET), To(Label::Allow), Next),
            jeq(family(libc::AF_INET6), To(Label::Allow), To(Label::Eperm)),
        ]),
    }
    ops.extend([
        Op::Here(Label::Clone),
        Op::Load(off_arg_low(0)),
        Op::Jump {
            code: BPF_JSET_K,
            k: CLONE_NEW_MASK,
            jt: To(Label::Eperm),
            jf: To(Label::Allow),
        },
        Op::Here(Label::Ioctl),
        Op::Load(off_arg_low(1)),
        jeq(TIOCSTI, To(Label::Eperm), Next),
        jeq(TIOCLINUX, To(Label::Eperm), To(Label::Allow)),
        Op::Here(Label::Kill1),
        Op::Load(off_arg_low(0)),
        jeq(u32::MAX, To(Label::Eperm), To(Label::Allow)),
        Op::Here(Label::Allow),
        Op::Ret(RET_ALLOW),
        Op::Here(Label::Eperm),
        Op::Ret(RET_ERRNO | errno(libc::EPERM)),
        Op::Here(Label::Enosys),
        Op::Ret(RET_ERRNO | errno(libc::ENOSYS)),
        Op::Here(Label::Kill),
        Op::Ret(RET_KILL_PROCESS),
    ]);
    assemble(&ops)
}

fn errno(e: libc::c_int) -> u32 {
    u32::try_from(e).unwrap_or(1) & 0xffff
}

fn assemble(ops: &[Op]) -> Result<Vec<sock_filter>, SeccompError> {
    let mut labels = Vec::new();
    let mut index = 0usize;
    for op in ops {
        match op {
            Op::Here(l) => labels.push((*l, index)),
            _ => index += 1,
        }
    }
    let target = |from: usize, jump: Jump| -> Result<u8, SeccompError> {
        match jump {
            Jump::Next => Ok(0),
            Jump::To(l) => {
                let (_, at) = labels
                    .iter()
                    .find(|(x, _)| *x == l)
                    .ok_or(SeccompError::TooFar)?;
                at.checked_sub(from + 1)
                    .and_then(|d| u8::try_from(d).ok())
                    .ok_or(SeccompError::TooFar)
            }
        }
    };
    let mut out = Vec::with_capacity(index);
    for op in ops {
        let insn = match *op {
            Op::Here(_) => continue,
            Op::Load(off) => sock_filter {
                code: BPF_LD_W_ABS,
                jt: 0,
                jf: 0,
                k: off,
            },
            Op::Ret(k) => sock_filter {
                code: BPF_RET_K,
                jt: 0,
                jf: 0,
                k,
            },
            Op::Jump { code, k, jt, jf } => {
                let here = out.len();
                sock_filter {
                    code,
                    jt: target(here, jt)?,
                    jf: target(here, jf)?,
                    k,
                }
            }
        };
        out.push(insn);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel would do.
    #[derive(Debug, PartialEq, Eq)]
    enum Verdict {
        Allow,
        Errno(i32),
        KillProcess,
    }

    /// A classic-BPF interpreter for the instructions the builder emits.
    fn run(prog: &[sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> Verdict {
        let mut data = Vec::with_capacity(64);
        data.extend(nr.to_le_bytes());
        data.extend(arch.to_le_bytes());
        data.extend(0u64.to_le_bytes());
        for a in args {
            data.extend(a.to_le_bytes());
        }
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            match i.code {
                BPF_LD_W_ABS => {
                    let at = i.k as usize;
                    acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                    pc += 1;
                }
                BPF_RET_K => {
                    return match i.k & 0xffff_0000 {
                        RET_ALLOW => Verdict::Allow,
                        RET_ERRNO => Verdict::Errno((i.k & 0xffff) as i32),
                        RET_KILL_PROCESS => Verdict::KillProcess,
                        other => panic!("unexpected action {other:#x}"),
                    };
                }
                code => {
                    let hit = match code {
                        BPF_JEQ_K => acc == i.k,
                        BPF_JGE_K => acc >= i.k,
                        BPF_JSET_K => acc & i.k != 0,
                        other => panic!("unexpected opcode {other:#x}"),
                    };
                    pc += 1 + usize::from(if hit { i.jt } else { i.jf });
                }
            }
        }
    }

    fn verdict(n: libc::c_long, args: [u64; 6]) -> Verdict {
        let prog = build_filter(Sockets::UnixOnly).unwrap();
        let (_, arch) = target().unwrap();
        run(&prog, n as u32, arch, args)
    }

    const EPERM: Verdict = Verdict::Errno(libc::EPERM);

    #[test]
    fn every_denied_call_gets_eperm_whatever_its_arguments() {
        for &(name, n) in DENIED {
            for args in [[0; 6], [u64::MAX; 6], [1, 2, 3, 4, 5, 6]] {
                assert_eq!(verdict(n, args), EPERM, "{name} {args:?}");
            }
        }
    }

    #[test]
    fn ordinary_calls_pass() {
        for n in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_exit_group,
            libc::SYS_mmap,
            libc::SYS_wait4,
            libc::SYS_pipe2,
            libc::SYS_landlock_restrict_self,
        ] {
            assert_eq!(verdict(n, [0; 6]), Verdict::Allow, "syscall {n}");
        }
    }

    #[test]
    fn clone3_is_enosys_and_clone_refuses_namespaces() {
        assert_eq!(
            verdict(libc::SYS_clone3, [0; 6]),
            Verdict::Errno(libc::ENOSYS)
        );
        let fork_like = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) as u64 | 17;
        assert_eq!(
            verdict(libc::SYS_clone, [fork_like, 0, 0, 0, 0, 0]),
            Verdict::Allow
        );
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM) as u64;
        assert_eq!(
            verdict(libc::SYS_clone, [thread, 0, 0, 0, 0, 0]),
            Verdict::Allow
        );
        for flag in [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWCGROUP,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
        ] {
            let flags = flag as u32 as u64 | 17;
            assert_eq!(verdict(libc::SYS_clone, [flags, 0, 0, 0, 0, 0]), EPERM);
            // High bits do not hide the flag: the kernel only reads the low 32.
            assert_eq!(
                verdict(
                    libc::SYS_clone,
                    [flags | 0xffff_0000_0000_0000, 0, 0, 0, 0, 0]
                ),
                EPERM
            );
        }
    }

    #[test]
    fn egress_adds_inet_sockets_and_nothing_else() {
        let prog = build_filter(Sockets::UnixAndInet).unwrap();
        let (_, arch) = target().unwrap();
        let v = |n: libc::c_long, family: libc::c_int| {
            run(&prog, n as u32, arch, [family as u64, 1, 0, 0, 0, 0])
        };
        for family in [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6] {
            assert_eq!(v(libc::SYS_socket, family), Verdict::Allow, "{family}");
        }
        for family in [
            libc::AF_NETLINK,
            libc::AF_PACKET,
            libc::AF_VSOCK,
            libc::AF_ALG,
            0,
            255,
        ] {
            assert_eq!(v(libc::SYS_socket, family), EPERM, "{family}");
        }
        // Everything else is the same filter.
        assert_eq!(run(&prog, libc::SYS_ptrace as u32, arch, [0; 6]), EPERM);
        assert_eq!(
            run(
                &prog,
                libc::SYS_clone as u32,
                arch,
                [libc::CLONE_NEWNET as u64, 0, 0, 0, 0, 0]
            ),
            EPERM
        );
    }

    #[test]
    fn only_unix_sockets() {
        for n in [libc::SYS_socket, libc::SYS_socketpair] {
            assert_eq!(
                verdict(n, [libc::AF_UNIX as u64, 1, 0, 0, 0, 0]),
                Verdict::Allow
            );
            for family in [
                libc::AF_INET,
                libc::AF_INET6,
                libc::AF_NETLINK,
                libc::AF_PACKET,
                libc::AF_VSOCK,
                libc::AF_ALG,
                0,
                255,
            ] {
                assert_eq!(
                    verdict(n, [family as u64, 1, 0, 0, 0, 0]),
                    EPERM,
                    "{family}"
                );
            }
            // AF_UNIX in the low word with junk above is still AF_UNIX to the kernel.
            assert_eq!(
                verdict(n, [(1u64 << 32) | libc::AF_UNIX as u64, 1, 0, 0, 0, 0]),
                Verdict::Allow
            );
            assert_eq!(
                verdict(n, [(1u64 << 32) | libc::AF_INET as u64, 1, 0, 0, 0, 0]),
                EPERM
            );
        }
    }

    #[test]
    fn tiocsti_and_tioclinux_are_refused_other_ioctls_pass() {
        for cmd in [
            TIOCSTI as u64,
            TIOCLINUX as u64,
            0xdead_0000_0000 | TIOCSTI as u64,
        ] {
            assert_eq!(verdict(libc::SYS_ioctl, [0, cmd, 0, 0, 0, 0]), EPERM);
        }
        for cmd in [libc::TCGETS, libc::FIONREAD, libc::TIOCGWINSZ] {
            assert_eq!(
                verdict(libc::SYS_ioctl, [0, cmd, 0, 0, 0, 0]),
                Verdict::Allow
            );
        }
    }

    #[test]
    fn kill_minus_one_is_refused() {
        assert_eq!(verdict(libc::SYS_kill, [u64::MAX, 9, 0, 0, 0, 0]), EPERM);
        assert_eq!(verdict(libc::SYS_kill, [0xffff_ffff, 9, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            verdict(libc::SYS_kill, [1234, 9, 0, 0, 0, 0]),
            Verdict::Allow
        );
        assert_eq!(verdict(libc::SYS_kill, [0, 9, 0, 0, 0, 0]), Verdict::Allow);
    }

    #[test]
    fn foreign_architectures_are_killed() {
        let prog = build_filter(Sockets::UnixOnly).unwrap();
        const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
        for arch in [AUDIT_ARCH_I386, 0, AUDIT_ARCH_AARCH64 ^ AUDIT_ARCH_X86_64] {
            assert_eq!(
                run(&prog, libc::SYS_read as u32, arch, [0; 6]),
                Verdict::KillProcess
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_system_calls_are_refused() {
        // socket(AF_INET) and getpid through the x32 ABI.
        for n in [X32_SYSCALL_BIT | 41, X32_SYSCALL_BIT | 39, u32::MAX] {
            let prog = build_filter(Sockets::UnixOnly).unwrap();
            assert_eq!(run(&prog, n, AUDIT_ARCH_X86_64, [2, 1, 0, 0, 0, 0]), EPERM);
        }
    }
}
