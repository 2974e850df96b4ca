//! The jailed child: forked by the helper, it restricts itself step by step and then
//! executes the command. Runs in a single-threaded process, so ordinary Rust is fine.
//!
//! Order (each step needs the privileges the later ones remove):
//! 1. default signal actions, empty signal mask, parent-death signal (SIGKILL), own
//!    process group;
//! 2. namespaces when the host allows them: as root `CLONE_NEWNET|NEWIPC|NEWUTS`,
//!    otherwise the same plus `CLONE_NEWUSER` with the caller's uid/gid mapped to itself;
//! 3. rlimits (CPU, address space, file size, open files, processes, core = 0);
//! 4. as root: no supplementary groups, then gid, then uid (real, effective, saved);
//! 5. `chdir` to the working directory (as the jail user, so its permissions apply);
//! 6. `PR_SET_NO_NEW_PRIVS`; 7. Landlock; 8. seccomp; 9. `execve` with the profile's
//!    environment only.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::{Gid, Pid, Uid};

use crate::profile::{JailProfile, Workspace};
use crate::wire::{ChildRecord, Enforcement, Namespace, Plan, SetupStep};
use crate::{seccomp, sys};

type StepResult<T> = Result<T, (SetupStep, String)>;

fn at<E: std::fmt::Display>(step: SetupStep) -> impl FnOnce(E) -> (SetupStep, String) {
    move |e| (step, e.to_string())
}

/// Sets up and executes the command; never returns.
pub fn run(plan: &Plan, helper: Pid, record: OwnedFd, handoff: Option<OwnedFd>) -> ! {
    let mut out = File::from(record);
    let code = match setup(plan, helper, handoff) {
        Err((step, detail)) => {
            send(&mut out, &ChildRecord::Failed { step, detail });
            126
        }
        Ok((enforcement, exec)) => {
            send(&mut out, &ChildRecord::Applied(enforcement));
            let err = exec.exec();
            send(
                &mut out,
                &ChildRecord::ExecFailed {
                    program: plan.profile.argv().first().cloned().unwrap_or_default(),
                    detail: err.desc().to_owned(),
                },
            );
            127
        }
    };
    std::process::exit(code)
}

fn send(out: &mut File, record: &ChildRecord) {
    if let Ok(mut line) = serde_json::to_vec(record) {
        line.push(b'\n');
        // If the helper is gone there is nobody to tell; the exit code still says it.
        let _ = out.write_all(&line);
    }
}

fn setup(plan: &Plan, helper: Pid, handoff: Option<OwnedFd>) -> StepResult<(Enforcement, Exec)> {
    let profile = &plan.profile;
    let exec = Exec::prepare(profile, &plan.scratch).map_err(at(SetupStep::Process))?;

    sys::reset_signals().map_err(at(SetupStep::Process))?;
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(at(SetupStep::Process))?;
    if nix::unistd::getppid() != helper {
        return Err((SetupStep::Process, "the helper exited during setup".into()));
    }
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).map_err(at(SetupStep::Process))?;

    let started_as_root = nix::unistd::geteuid().is_root();
    let user = profile.user();
    if !started_as_root && nix::unistd::geteuid().as_raw() != user.uid() {
        return Err((
            SetupStep::User,
            format!("only root can switch to uid {}", user.uid()),
        ));
    }
    let (namespaces, namespaces_refused) = enter_namespaces(started_as_root)?;
    let egress = profile.network().egress().is_some();
    if egress {
        open_egress(&namespaces, namespaces_refused.as_deref(), handoff)?;
    }
    set_rlimits(profile).map_err(at(SetupStep::Rlimits))?;
    if started_as_root {
        drop_to(user.uid(), user.gid()).map_err(at(SetupStep::User))?;
    }
    let cwd = match profile.workspace() {
        Workspace::Dir(dir) => dir.cwd(),
        Workspace::None => plan.scratch.clone(),
    };
    nix::unistd::chdir(&cwd).map_err(|e| {
        (
            SetupStep::Cwd,
            format!(
                "{} as uid {}: {} (make it reachable for that user)",
                cwd.display(),
                user.uid(),
                e.desc()
            ),
        )
    })?;
    nix::sys::prctl::set_no_new_privs().map_err(at(SetupStep::NoNewPrivs))?;

    let abi = sys::landlock_abi()
        .ok()
        .and_then(|v| u8::try_from(v).ok())
        .unwrap_or(0);
    let features = crate::landlock::restrict_self(abi, profile.workspace(), &plan.scratch, egress)
        .map_err(at(SetupStep::Landlock))?;
    let sockets = if egress {
        seccomp::Sockets::UnixAndInet
    } else {
        seccomp::Sockets::UnixOnly
    };
    let filter = seccomp::build_filter(sockets).map_err(at(SetupStep::Seccomp))?;
    sys::install_seccomp_filter(&filter).map_err(at(SetupStep::Seccomp))?;

    let enforcement = Enforcement {
        session_and_subreaper: true,
        namespaces,
        namespaces_refused,
        rlimits: true,
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        no_new_privs: nix::sys::prctl::get_no_new_privs().unwrap_or(false),
        landlock_abi: abi,
        landlock_tcp: features.tcp,
        landlock_scopes: features.scopes,
        seccomp: true,
        egress_relay: egress,
    };
    Ok((enforcement, exec))
}

/// Enters the namespaces the host allows; a refusal is recorded, not fatal (SECURITY.md:
/// "namespaces when the host allows them"). A half-done user namespace is fatal.
fn enter_namespaces(as_root: bool) -> StepResult<(Vec<Namespace>, Option<String>)> {
    use nix::sched::{CloneFlags, unshare};
    let base = CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    let flags = if as_root {
        base
    } else {
        base | CloneFlags::CLONE_NEWUSER
    };
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    if let Err(e) = unshare(flags) {
        return Ok((Vec::new(), Some(format!("unshare: {}", e.desc()))));
    }
    let mut entered = vec![Namespace::Net, Namespace::Ipc, Namespace::Uts];
    if !as_root {
        let map = |file: &str, line: String| {
            std::fs::write(file, line).map_err(|e| (SetupStep::Namespaces, format!("{file}: {e}")))
        };
        map("/proc/self/setgroups", "deny".into())?;
        map("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
        map("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
        entered.insert(0, Namespace::User);
    }
    // Our own UTS namespace: do not show the host's name.
    nix::unistd::sethostname("pincer-jail").map_err(at(SetupStep::Namespaces))?;
    Ok((entered, None))
}

/// Network egress: only inside a private network namespace (else the command would get
/// the host's network), where the relay's socket is bound and handed to the helper.
fn open_egress(
    namespaces: &[Namespace],
    refused: Option<&str>,
    handoff: Option<OwnedFd>,
) -> StepResult<()> {
    if !namespaces.contains(&Namespace::Net) {
        return Err((
            SetupStep::Network,
            format!(
                "network egress needs a private network namespace and this host refused one ({}); run without egress, or allow namespaces (`pincer sandbox explain` shows what this host enforces)",
                refused.unwrap_or("not entered")
            ),
        ));
    }
    let handoff = handoff.ok_or((
        SetupStep::Network,
        "no channel to the helper for the egress relay".to_owned(),
    ))?;
    crate::egress::listen_and_hand_over(&handoff).map_err(|e| (SetupStep::Network, e))
}

fn set_rlimits(profile: &JailProfile) -> Result<(), Errno> {
    let l = profile.limits();
    let cpu = l.cpu_seconds.get();
    setrlimit(Resource::RLIMIT_CPU, cpu, cpu.saturating_add(1))?;
    for (resource, value) in [
        (Resource::RLIMIT_AS, l.address_space_bytes.get()),
        (Resource::RLIMIT_FSIZE, l.file_size_bytes.get()),
        (Resource::RLIMIT_NOFILE, l.open_files.get()),
        (Resource::RLIMIT_NPROC, l.processes.get()),
        (Resource::RLIMIT_CORE, 0),
    ] {
        setrlimit(resource, value, value)?;
    }
    Ok(())
}

fn drop_to(uid: u32, gid: u32) -> Result<(), String> {
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {}", e.desc()))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setresgid: {}", e.desc()))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setresuid: {}", e.desc()))?;
    let ids = nix::unistd::getresuid().map_err(|e| e.desc().to_owned())?;
    let gids = nix::unistd::getresgid().map_err(|e| e.desc().to_owned())?;
    let groups = nix::unistd::getgroups().map_err(|e| e.desc().to_owned())?;
    if [ids.real, ids.effective, ids.saved] != [uid; 3]
        || [gids.real, gids.effective, gids.saved] != [gid; 3]
        || !groups.is_empty()
    {
        return Err("the kernel did not apply the new uid/gid".into());
    }
    // Root could regain privileges after a failed setuid; make sure it cannot.
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("uid 0 could be regained".into());
    }
    Ok(())
}

/// What `execve` gets, prepared before the restrictions.
struct Exec {
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

impl Exec {
    fn prepare(profile: &JailProfile, scratch: &Path) -> Result<Self, Errno> {
        let cstr = |s: &[u8]| CString::new(s).map_err(|_| Errno::EINVAL);
        let argv = profile
            .argv()
            .iter()
            .map(|a| cstr(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut envp = Vec::new();
        for (k, v) in profile.env() {
            envp.push(cstr(format!("{k}={v}").as_bytes())?);
        }
        for k in crate::profile::SCRATCH_ENV {
            let mut kv = format!("{k}=").into_bytes();
            kv.extend_from_slice(scratch.as_os_str().as_bytes());
            envp.push(cstr(&kv)?);
        }
        if profile.network().egress().is_some() {
            for k in crate::profile::PROXY_ENV {
                envp.push(cstr(
                    format!("{k}={}", crate::profile::EGRESS_PROXY_URL).as_bytes(),
                )?);
            }
        }
        let program = profile.argv().first().map(String::as_str).unwrap_or("");
        let candidates = if program.contains('/') {
            vec![cstr(program.as_bytes())?]
        } else {
            let path = profile
                .env()
                .get("PATH")
                .map(String::as_str)
                .unwrap_or(crate::profile::DEFAULT_PATH);
            path.split(':')
                .filter(|d| d.starts_with('/'))
                .map(|d| cstr(PathBuf::from(d).join(program).as_os_str().as_bytes()))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Self {
            candidates,
            argv,
            envp,
        })
    }

    /// Tries each candidate like `execvp`; returns the most telling error.
    fn exec(&self) -> Errno {
        let mut seen_eacces = false;
        for path in &self.candidates {
            match nix::unistd::execve(path, &self.argv, &self.envp) {
                Err(Errno::EACCES) => seen_eacces = true,
                Err(Errno::ENOENT | Errno::ENOTDIR) => {}
                Err(other) => return other,
                Ok(never) => match never {},
            }
        }
        if seen_eacces {
            Errno::EACCES
        } else {
            Errno::ENOENT
        }
    }
}
