//! A human-readable report: what this host supports and what a default profile would
//! enforce here, in order. Printed by `pincer sandbox explain`.

use std::fmt::Write;

use crate::landlock::{DEVICES_RO, DEVICES_RW, SYSTEM_DIRS};
use crate::probe::{HostSupport, NamespaceProbe};
use crate::profile::{DEFAULT_TIMEOUT, JailUser, Limits};
use crate::seccomp::DENIED;

/// The report for `host` (run [`HostSupport::probe_namespaces`] first to include the
/// namespace trials).
pub fn explain(host: &HostSupport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, host);
    out
}

fn write_report(out: &mut String, host: &HostSupport) -> std::fmt::Result {
    writeln!(out, "Jail backend on this host")?;
    writeln!(
        out,
        "  kernel {} ({}), this process runs as uid {}{}",
        host.kernel,
        host.arch,
        host.euid,
        if host.in_container {
            ", inside a container (/.dockerenv)"
        } else {
            ""
        }
    )?;
    match (host.landlock.abi(), host.landlock_features()) {
        (Some(abi), Some(f)) => {
            let mut parts = vec!["file-system rules"];
            for (on, what) in [
                (f.refer, "cross-directory link/rename control (ABI 2)"),
                (f.truncate, "truncate control (ABI 3)"),
                (f.tcp, "TCP bind/connect control (ABI 4)"),
                (f.ioctl_dev, "device ioctl control (ABI 5)"),
                (f.scopes, "abstract-socket and signal scoping (ABI 6)"),
            ] {
                if on {
                    parts.push(what);
                }
            }
            writeln!(out, "  Landlock: ABI {abi}: {}", parts.join(", "))?;
        }
        _ => writeln!(out, "  Landlock: {:?}", host.landlock)?,
    }
    writeln!(
        out,
        "  seccomp filters: {}{}",
        yes(host.seccomp_filter),
        if host.already_filtered {
            " (this process already runs under a filter, e.g. a container's)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "  seccomp syscall table for {}: {}",
        host.arch,
        yes(host.seccomp_arch)
    )?;
    writeln!(out, "  PR_SET_NO_NEW_PRIVS: {}", yes(host.no_new_privs))?;
    let namespaces_usable = match &host.namespaces {
        None => {
            writeln!(out, "  namespaces: not probed")?;
            false
        }
        Some(ns) => {
            writeln!(
                out,
                "  namespaces (unshare tried in a child{}): user {}, net {}, ipc {}, uts {}, pid {}, mount {}",
                if host.euid == 0 {
                    ""
                } else {
                    ", each with a user namespace"
                },
                ns.user,
                ns.net,
                ns.ipc,
                ns.uts,
                ns.pid,
                ns.mount
            )?;
            [ns.net, ns.ipc, ns.uts]
                .iter()
                .all(|p| *p == NamespaceProbe::Usable)
                && (host.euid == 0 || ns.user == NamespaceProbe::Usable)
        }
    };

    writeln!(out)?;
    let missing = host.missing();
    if !missing.is_empty() {
        writeln!(out, "The jail REFUSES to run here (fail closed). Missing:")?;
        for m in &missing {
            writeln!(out, "  - {m}")?;
        }
        return Ok(());
    }
    let limits = Limits::default();
    let user = JailUser::for_this_process();
    let features = host
        .landlock_features()
        .unwrap_or_else(|| crate::probe::LandlockFeatures::at(0));
    writeln!(out, "A default profile here enforces, in order:")?;
    writeln!(
        out,
        "  1. a helper process (this binary re-executed) in a new session, with every descriptor but stdin (/dev/null), stdout and stderr closed, as a child subreaper"
    )?;
    writeln!(
        out,
        "  2. the command in its own process group with an empty environment plus PATH, LANG, HOME and TMPDIR (a private per-call directory)"
    )?;
    if namespaces_usable {
        writeln!(
            out,
            "  3. namespaces: {}net (no interfaces), ipc, uts",
            if host.euid == 0 { "" } else { "user, " }
        )?;
    } else {
        writeln!(
            out,
            "  3. namespaces: NONE (the host refuses unshare; the other layers still apply)"
        )?;
    }
    writeln!(
        out,
        "  4. rlimits: CPU {} s, address space {} MiB, file size {} MiB, {} open files, {} processes for the uid, no core files",
        limits.cpu_seconds,
        limits.address_space_bytes.get() >> 20,
        limits.file_size_bytes.get() >> 20,
        limits.open_files,
        limits.processes
    )?;
    writeln!(
        out,
        "  5. uid {} gid {}{}",
        user.uid(),
        user.gid(),
        if host.euid == 0 {
            ", no supplementary groups (dropped from root)"
        } else {
            " (this process's own; only root can switch users)"
        }
    )?;
    writeln!(
        out,
        "  6. PR_SET_NO_NEW_PRIVS (setuid bits and file capabilities do nothing)"
    )?;
    writeln!(
        out,
        "  7. Landlock: read+execute {}; read/write {}; read {}; the workspace (ro or rw) and the private directory; nothing else{}{}",
        SYSTEM_DIRS
            .iter()
            .filter(|d| std::path::Path::new(d).exists())
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
        DEVICES_RW.join(" "),
        DEVICES_RO.join(" "),
        if features.tcp {
            "; all TCP bind/connect denied"
        } else {
            "; TCP NOT restricted by Landlock (ABI < 4; seccomp still refuses AF_INET sockets)"
        },
        if features.scopes {
            "; abstract UNIX sockets and signals scoped to the jail"
        } else {
            "; no scoping (ABI < 6)"
        },
    )?;
    let names: Vec<&str> = DENIED.iter().map(|(n, _)| *n).collect();
    writeln!(
        out,
        "  8. seccomp: foreign architectures killed, x32 refused; EPERM for {}; clone3 -> ENOSYS; clone with CLONE_NEW* -> EPERM; socket/socketpair other than AF_UNIX -> EPERM; ioctl TIOCSTI/TIOCLINUX -> EPERM; kill(-1) -> EPERM",
        names.join(" ")
    )?;
    writeln!(
        out,
        "  9. timeout {} s (wall clock), then SIGKILL to the process group; when the command ends or times out, every remaining descendant is killed and reaped; stdout and stderr capped at {} KiB each",
        DEFAULT_TIMEOUT.as_secs(),
        limits.output_bytes.get() / 1024
    )?;
    writeln!(out)?;
    writeln!(out, "Not enforced by the jail:")?;
    writeln!(
        out,
        "  - disk usage: RLIMIT_FSIZE caps each file, not the total (no quota)"
    )?;
    writeln!(
        out,
        "  - memory is capped as address space (RLIMIT_AS), not resident memory (no cgroup)"
    )?;
    writeln!(
        out,
        "  - RLIMIT_NPROC counts every process of the uid, so concurrent jails with one uid share it"
    )?;
    writeln!(
        out,
        "  - /tmp is not remapped (no mount namespace); it is unreachable and TMPDIR points to the private directory"
    )?;
    writeln!(
        out,
        "  - no pid namespace: the command could signal other processes of its uid{}",
        if features.scopes {
            " were it not for Landlock's signal scoping"
        } else {
            ""
        }
    )?;
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b { "available" } else { "NOT available" }
}
