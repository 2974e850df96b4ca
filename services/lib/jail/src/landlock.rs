//! The Landlock ruleset of one call, applied to the calling process (the jail's child,
//! just before `execve`).
//!
//! Every file-system right the kernel knows is handled, so anything not granted below is
//! denied:
//!
//! | path | rights |
//! |---|---|
//! | `/usr /lib /lib64 /lib32 /bin /sbin /etc` (those that exist) | read, list, execute |
//! | `/dev/null /dev/zero /dev/full` | read, write, truncate |
//! | `/dev/urandom /dev/random` | read |
//! | the workspace (read-write) | everything |
//! | the workspace (read-only) | read, list, execute |
//! | the call's private temporary directory (`HOME`, `TMPDIR`) | everything |
//!
//! Not granted, so unreachable: `/proc`, `/sys`, `/tmp`, `/run`, `/var`, `/home`, `/root`,
//! every other `/dev` node, and every other workspace. `/etc` is readable as SECURITY.md
//! says; secrets in it such as `/etc/shadow` (0640 root:shadow) stay unreadable because the
//! command never runs as root or in the `shadow` group (uid and groups are dropped before
//! this ruleset applies).
//!
//! With ABI 4+ all TCP bind and connect is denied (no port is granted; under network
//! egress, connect to the relay's port on the namespace's loopback); with ABI 6+ the
//! process may neither connect to abstract UNIX sockets nor signal processes outside its
//! own Landlock domain. The ruleset is built at the kernel's ABI with
//! `CompatLevel::HardRequirement`, and anything short of `FullyEnforced` is an error.

use std::path::Path;

use ::landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

use crate::probe::LandlockFeatures;
use crate::profile::EGRESS_PROXY_ADDR;
use crate::profile::{Access as WsAccess, Workspace};

/// System directories: read, list and execute.
pub const SYSTEM_DIRS: &[&str] = &["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc"];
/// Device nodes that read and write.
pub const DEVICES_RW: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];
/// Device nodes that only read.
pub const DEVICES_RO: &[&str] = &["/dev/urandom", "/dev/random"];

/// Why the ruleset could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// The kernel has no Landlock.
    #[error("Landlock is not available in this kernel")]
    Unsupported,
    /// The landlock crate refused (a right the kernel lacks, a path that cannot be opened).
    #[error(transparent)]
    Ruleset(#[from] ::landlock::RulesetError),
    /// A path could not be opened for a rule.
    #[error("cannot open {path} for a Landlock rule: {source}")]
    Path {
        /// The path.
        path: String,
        /// Why.
        source: ::landlock::PathFdError,
    },
    /// The kernel enforced less than asked.
    #[error("Landlock enforced the ruleset only {0:?}")]
    NotFullyEnforced(RulesetStatus),
}

/// Restricts the calling process. `abi` is the kernel's Landlock ABI; `scratch` is the
/// call's private temporary directory.
pub fn restrict_self(
    abi: u8,
    workspace: &Workspace,
    scratch: &Path,
    egress: bool,
) -> Result<LandlockFeatures, LandlockError> {
    let abi_level = ABI::from(i32::from(abi));
    if abi_level == ABI::Unsupported {
        return Err(LandlockError::Unsupported);
    }
    let features = LandlockFeatures::at(abi);
    let all = AccessFs::from_all(abi_level);
    let read = AccessFs::from_read(abi_level);
    let file_rw = AccessFs::from_file(abi_level) & !BitFlags::from(AccessFs::Execute);
    let file_ro = BitFlags::from(AccessFs::ReadFile);

    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(all)?;
    if features.tcp {
        ruleset = ruleset.handle_access(AccessNet::from_all(abi_level))?;
    }
    if features.scopes {
        ruleset = ruleset.scope(Scope::from_all(abi_level))?;
    }
    let mut created = ruleset.create()?;

    let mut rules: Vec<(&Path, BitFlags<AccessFs>, bool)> = Vec::new();
    rules.extend(SYSTEM_DIRS.iter().map(|d| (Path::new(*d), read, false)));
    rules.extend(DEVICES_RW.iter().map(|d| (Path::new(*d), file_rw, false)));
    rules.extend(DEVICES_RO.iter().map(|d| (Path::new(*d), file_ro, false)));
    if let Workspace::Dir(dir) = workspace {
        let rights = match dir.access() {
            WsAccess::ReadWrite => all,
            WsAccess::ReadOnly => read,
        };
        rules.push((dir.root(), rights, true));
    }
    rules.push((scratch, all, true));

    for (path, rights, required) in rules {
        let fd = match PathFd::new(path) {
            Ok(fd) => fd,
            // A system path this distribution does not have (e.g. /lib32) is skipped;
            // the workspace and the private directory must exist.
            Err(_) if !required && !path.exists() => continue,
            Err(source) => {
                return Err(LandlockError::Path {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        created = created.add_rule(PathBeneath::new(fd, rights))?;
    }
    if egress && features.tcp {
        // The relay's port on the namespace's loopback: connect only, never bind.
        created = created.add_rule(NetPort::new(EGRESS_PROXY_ADDR.1, AccessNet::ConnectTcp))?;
    }
    let status = created.restrict_self()?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(LandlockError::NotFullyEnforced(status.ruleset));
    }
    Ok(features)
}
