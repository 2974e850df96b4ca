//! What this kernel (and the container it may run in) lets the jail enforce.
//!
//! [`HostSupport::probe`] is cheap and side-effect free (it reads version numbers and asks
//! the kernel whether features exist); [`HostSupport::probe_namespaces`] additionally forks
//! short-lived children that try `unshare`, because inside a container only trying tells
//! whether the container's seccomp profile allows it.

use std::fmt;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::seccomp;
use crate::sys;

/// The Landlock ABI this crate knows best; newer kernels are used at this level.
pub const LANDLOCK_ABI_KNOWN: u8 = 10;

/// Whether Landlock can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LandlockSupport {
    /// Available at this ABI version.
    Abi(u8),
    /// Built into the kernel but not enabled (missing from the `lsm=` boot parameter).
    NotEnabled,
    /// Not built into the kernel (older than 5.13 or configured out).
    NotImplemented,
}

impl LandlockSupport {
    /// The ABI, if any.
    pub fn abi(self) -> Option<u8> {
        match self {
            Self::Abi(v) => Some(v),
            Self::NotEnabled | Self::NotImplemented => None,
        }
    }

    fn probe() -> Self {
        match sys::landlock_abi() {
            Ok(v) if v > 0 => Self::Abi(u8::try_from(v).unwrap_or(u8::MAX)),
            Ok(_) | Err(Errno::ENOSYS) => Self::NotImplemented,
            Err(_) => Self::NotEnabled,
        }
    }
}

/// What Landlock enforces at a given ABI, as the jail uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockFeatures {
    /// File-system rules (ABI 1).
    pub filesystem: bool,
    /// Renaming/linking across directories controlled (ABI 2; before, always refused).
    pub refer: bool,
    /// `truncate` controlled (ABI 3).
    pub truncate: bool,
    /// TCP bind and connect denied (ABI 4).
    pub tcp: bool,
    /// `ioctl` on devices controlled (ABI 5).
    pub ioctl_dev: bool,
    /// Abstract UNIX sockets and signals scoped to the jail (ABI 6).
    pub scopes: bool,
}

impl LandlockFeatures {
    /// The features at `abi`.
    pub fn at(abi: u8) -> Self {
        Self {
            filesystem: abi >= 1,
            refer: abi >= 2,
            truncate: abi >= 3,
            tcp: abi >= 4,
            ioctl_dev: abi >= 5,
            scopes: abi >= 6,
        }
    }
}

/// Whether `unshare` of a namespace works here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NamespaceProbe {
    /// Worked.
    Usable,
    /// Refused with this errno (e.g. `EPERM` under Docker's default seccomp profile).
    Refused(i32),
}

impl fmt::Display for NamespaceProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usable => f.write_str("usable"),
            Self::Refused(e) => write!(f, "refused ({})", Errno::from_raw(*e).desc()),
        }
    }
}

/// Per-namespace results of [`HostSupport::probe_namespaces`]. As root the jail needs no
/// user namespace; otherwise each is tried together with `CLONE_NEWUSER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceSupport {
    /// `CLONE_NEWUSER` on its own.
    pub user: NamespaceProbe,
    /// `CLONE_NEWNET`.
    pub net: NamespaceProbe,
    /// `CLONE_NEWIPC`.
    pub ipc: NamespaceProbe,
    /// `CLONE_NEWUTS`.
    pub uts: NamespaceProbe,
    /// `CLONE_NEWPID` (reported; the jail does not use it, see the crate docs).
    pub pid: NamespaceProbe,
    /// `CLONE_NEWNS` (reported; the jail does not use it).
    pub mount: NamespaceProbe,
}

/// What the host supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSupport {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// CPU architecture.
    pub arch: String,
    /// Whether the seccomp filter has a syscall table for this architecture.
    pub seccomp_arch: bool,
    /// Landlock.
    pub landlock: LandlockSupport,
    /// Seccomp filters (`SECCOMP_SET_MODE_FILTER`) available.
    pub seccomp_filter: bool,
    /// This process already runs under a seccomp filter (typical inside a container).
    pub already_filtered: bool,
    /// `PR_SET_NO_NEW_PRIVS` available (Linux 3.5+).
    pub no_new_privs: bool,
    /// Effective uid of this process.
    pub euid: u32,
    /// `/.dockerenv` exists (a hint that this is a Docker container).
    pub in_container: bool,
    /// Namespace trials, when [`probe_namespaces`](Self::probe_namespaces) ran.
    pub namespaces: Option<NamespaceSupport>,
}

/// Something the jail needs that the host lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    /// No Landlock.
    #[error(
        "Landlock ({0}; needs Linux 5.13+ with CONFIG_SECURITY_LANDLOCK and `landlock` in the lsm= boot parameter)"
    )]
    Landlock(&'static str),
    /// No seccomp filter mode.
    #[error("seccomp filters (the kernel lacks CONFIG_SECCOMP_FILTER)")]
    SeccompFilter,
    /// No syscall table for this architecture.
    #[error("a seccomp syscall table for {0} (supported: x86_64, aarch64)")]
    Arch(String),
    /// No `PR_SET_NO_NEW_PRIVS`.
    #[error("PR_SET_NO_NEW_PRIVS (needs Linux 3.5+)")]
    NoNewPrivs,
    /// The requested user cannot be switched to.
    #[error("running as uid {wanted}: this process is uid {euid} and only root can switch users")]
    User {
        /// Requested uid.
        wanted: u32,
        /// This process's uid.
        euid: u32,
    },
}

impl HostSupport {
    /// Probes everything but namespaces (cheap, no side effects).
    pub fn probe() -> Self {
        let uname = nix::sys::utsname::uname().ok();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let already_filtered = status
            .lines()
            .any(|l| l.starts_with("Seccomp:") && l.trim_end().ends_with('2'));
        Self {
            kernel: uname
                .as_ref()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            arch: std::env::consts::ARCH.to_owned(),
            seccomp_arch: seccomp::supported_arch().is_ok(),
            landlock: LandlockSupport::probe(),
            seccomp_filter: sys::seccomp_action_available(0x0005_0000).is_ok(),
            already_filtered,
            no_new_privs: nix::sys::prctl::get_no_new_privs().is_ok(),
            euid: nix::unistd::geteuid().as_raw(),
            in_container: std::path::Path::new("/.dockerenv").exists(),
            namespaces: None,
        }
    }

    /// Also tries each namespace in a forked child.
    pub fn probe_namespaces(mut self) -> Self {
        let with_user = if self.euid == 0 {
            0
        } else {
            libc::CLONE_NEWUSER
        };
        let trial = |flag: libc::c_int| match sys::probe_unshare(flag | with_user) {
            Ok(()) => NamespaceProbe::Usable,
            Err(e) => NamespaceProbe::Refused(e as i32),
        };
        self.namespaces = Some(NamespaceSupport {
            user: match sys::probe_unshare(libc::CLONE_NEWUSER) {
                Ok(()) => NamespaceProbe::Usable,
                Err(e) => NamespaceProbe::Refused(e as i32),
            },
            net: trial(libc::CLONE_NEWNET),
            ipc: trial(libc::CLONE_NEWIPC),
            uts: trial(libc::CLONE_NEWUTS),
            pid: trial(libc::CLONE_NEWPID),
            mount: trial(libc::CLONE_NEWNS),
        });
        self
    }

    /// The Landlock features the jail gets here (nothing without Landlock).
    pub fn landlock_features(&self) -> Option<LandlockFeatures> {
        self.landlock
            .abi()
            .map(|abi| LandlockFeatures::at(abi.min(LANDLOCK_ABI_KNOWN)))
    }

    /// What the jail needs and this host lacks; empty when the jail can run.
    pub fn missing(&self) -> Vec<Missing> {
        let mut missing = Vec::new();
        match self.landlock {
            LandlockSupport::Abi(_) => {}
            LandlockSupport::NotEnabled => missing.push(Missing::Landlock("not enabled")),
            LandlockSupport::NotImplemented => {
                missing.push(Missing::Landlock("not in this kernel"))
            }
        }
        if !self.seccomp_filter {
            missing.push(Missing::SeccompFilter);
        }
        if !self.seccomp_arch {
            missing.push(Missing::Arch(self.arch.clone()));
        }
        if !self.no_new_privs {
            missing.push(Missing::NoNewPrivs);
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_follow_the_abi() {
        assert!(!LandlockFeatures::at(3).tcp);
        assert!(LandlockFeatures::at(4).tcp);
        assert!(!LandlockFeatures::at(5).scopes);
        assert!(LandlockFeatures::at(6).scopes);
        assert!(LandlockFeatures::at(1).filesystem && !LandlockFeatures::at(1).refer);
    }

    #[test]
    fn missing_names_every_gap() {
        let mut host = HostSupport::probe();
        host.landlock = LandlockSupport::NotEnabled;
        host.seccomp_filter = false;
        host.seccomp_arch = false;
        host.arch = "mips".into();
        let text: Vec<String> = host.missing().iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].contains("Landlock (not enabled"));
        assert!(text[1].contains("seccomp filters"));
        assert!(text[2].contains("mips"));
    }

    #[test]
    fn this_host_is_probed() {
        let host = HostSupport::probe();
        assert!(!host.kernel.is_empty());
        assert!(host.no_new_privs);
    }
}
