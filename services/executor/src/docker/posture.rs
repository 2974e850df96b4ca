//! The container posture (SECURITY.md, "Sandboxes"), as pure functions from settings and
//! a validated plan to Docker's create body ([`container_body`] for a throwaway call,
//! [`session_body`] for a session's container; both share [`host_config`]) and, for
//! session containers, to the exec of one call ([`exec_config`]) and of its kill at the
//! timeout ([`kill_config`]). Nothing here comes from the caller except the argv, the
//! (normalised) cwd and the plan's checked extra environment.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, ExecConfig, HostConfig, HostConfigLogConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountTypeEnum, ResourcesUlimits,
};

use super::DockerSettings;
use crate::plan::{AgentId, ValidatedExecPlan};

/// Every sandbox container carries this label (value `1`); the reaper removes them all.
pub const SANDBOX_LABEL: &str = "pincer.sandbox";
/// The executor instance that created the container.
pub const INSTANCE_LABEL: &str = "pincer.executor";
/// The agent whose workspace is mounted.
pub const AGENT_LABEL: &str = "pincer.agent";
/// Where the workspace is mounted inside the sandbox.
pub const WORKSPACE_MOUNT: &str = "/workspace";
/// The tmpfs at `/tmp`: not executable, no setuid, no devices, size-capped.
pub const TMP_OPTIONS: &str = "rw,noexec,nosuid,nodev,size=64m";
/// Open files per process.
pub const NOFILE_LIMIT: i64 = 1024;
/// Largest file a sandboxed process may write (`RLIMIT_FSIZE`, SIGXFSZ beyond; `EFBIG`
/// where the signal is ignored): the jail backend's default, so both backends cap the same.
pub const FILE_SIZE_LIMIT: u64 = 64 << 20;
/// Pincer's seccomp profile in Docker's JSON format (`seccomp.json` beside this file),
/// stricter than Docker's default: an allowlist answering `EPERM` for everything else,
/// including what Docker 20.10's default allows (`io_uring_*`, `ptrace`, `name_to_handle_at`,
/// `TIOCSTI`, exotic socket families). The engine takes the profile's text inline, so it
/// travels in the create body as `seccomp=<text>`; the Docker guard accepts exactly this
/// text and no other profile.
pub const SECCOMP_PROFILE: &str = include_str!("seccomp.json");
/// The whole environment of a sandboxed process.
pub const SANDBOX_ENV: [&str; 3] = [
    "PATH=/usr/local/bin:/usr/bin:/bin",
    "HOME=/tmp",
    "LANG=C.UTF-8",
];

/// Where a sandbox granted network egress finds the executor's guarded proxy: its UNIX
/// socket, bind-mounted read-only (the only bind besides the workspace).
pub const EGRESS_SOCKET_MOUNT: &str = "/run/pincer-egress.sock";
/// The relay in the sandbox image (`images/sandbox/egress-relay.py`): listens on
/// 127.0.0.1:3128 in the container's network namespace (loopback only), carries each
/// connection to [`EGRESS_SOCKET_MOUNT`], and executes the command.
pub const EGRESS_RELAY: &str = "/usr/local/libexec/pincer-egress-relay";
/// The proxy URL a sandbox granted egress gets.
pub const EGRESS_PROXY_URL: &str = "http://127.0.0.1:3128";
/// The variables set to [`EGRESS_PROXY_URL`] (the executor never lets a caller set them).
pub const PROXY_ENV: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The sandbox's own environment: [`SANDBOX_ENV`], plus the proxy variables when the
/// sandbox has egress.
fn own_env(egress: bool) -> impl Iterator<Item = String> {
    let proxy = PROXY_ENV
        .iter()
        .filter(move |_| egress)
        .map(|k| format!("{k}={EGRESS_PROXY_URL}"));
    SANDBOX_ENV.iter().map(|s| (*s).to_owned()).chain(proxy)
}

/// The command a container runs: under the relay when the sandbox has egress.
fn under_relay(argv: &[String], egress: bool) -> Vec<String> {
    let relay = [EGRESS_RELAY, "--"].map(str::to_owned);
    let prefix = if egress { &relay[..] } else { &[] };
    prefix.iter().chain(argv).cloned().collect()
}

/// `HostConfig.SecurityOpt`: no new privileges, and Pincer's seccomp profile.
pub fn security_opts() -> Vec<String> {
    vec![
        "no-new-privileges:true".to_owned(),
        format!("seccomp={SECCOMP_PROFILE}"),
    ]
}

/// What a container mounts, as the Docker engine sees it: the agent's workspace and, for
/// a sandbox granted egress, the guarded proxy's socket.
#[derive(Debug, Clone, Copy)]
pub struct Binds<'a> {
    /// The agent's workspace directory.
    pub workspace: &'a str,
    /// The proxy's socket; `Some` exactly when the sandbox has egress.
    pub egress: Option<&'a str>,
}

/// The create body for one call.
pub fn container_body(
    settings: &DockerSettings,
    plan: &ValidatedExecPlan,
    binds: Binds<'_>,
    instance_id: &str,
) -> ContainerCreateBody {
    let egress = binds.egress.is_some();
    ContainerCreateBody {
        image: Some(settings.image.clone()),
        cmd: Some(under_relay(plan.argv(), egress)),
        // The image's entrypoint never wraps the command.
        entrypoint: Some(vec![]),
        user: Some(settings.user.docker_user()),
        working_dir: Some(plan.cwd().under(WORKSPACE_MOUNT)),
        // Ours first; the plan's extra variables were checked not to touch ours.
        env: Some(
            own_env(egress)
                .chain(plan.env().iter().map(|(k, v)| format!("{k}={v}")))
                .collect(),
        ),
        labels: Some(labels(instance_id, plan.agent_id())),
        network_disabled: Some(true),
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(false),
        tty: Some(false),
        host_config: Some(host_config(settings, binds, plan.workspace_read_only())),
        ..Default::default()
    }
}

/// Background-process containers carry this label, value `1` (besides the labels every
/// sandbox carries).
pub const PROCESS_LABEL: &str = "pincer.process";

/// The create body of a background process's container: exactly a call container's
/// ([`container_body`], same host config) with stdin open for one attach (`OpenStdin`,
/// `StdinOnce`, `AttachStdin`: closing the attached stdin closes the command's) and the
/// label [`PROCESS_LABEL`].
pub fn process_body(
    settings: &DockerSettings,
    plan: &ValidatedExecPlan,
    binds: Binds<'_>,
    instance_id: &str,
) -> ContainerCreateBody {
    let mut body = container_body(settings, plan, binds, instance_id);
    if let Some(labels) = body.labels.as_mut() {
        labels.insert(PROCESS_LABEL.to_owned(), "1".to_owned());
    }
    ContainerCreateBody {
        attach_stdin: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        ..body
    }
}

/// The labels every sandbox container carries.
fn labels(instance_id: &str, agent: &AgentId) -> HashMap<String, String> {
    HashMap::from([
        (SANDBOX_LABEL.to_owned(), "1".to_owned()),
        (INSTANCE_LABEL.to_owned(), instance_id.to_owned()),
        (AGENT_LABEL.to_owned(), agent.as_str().to_owned()),
    ])
}

/// The host config of every sandbox container, throwaway or per session: only the
/// workspace's bind source and its access, and the proxy socket of a sandbox granted
/// egress, differ between containers.
pub fn host_config(settings: &DockerSettings, binds: Binds<'_>, read_only: bool) -> HostConfig {
    let ulimit = |name: &str, value: i64| ResourcesUlimits {
        name: Some(name.to_owned()),
        soft: Some(value),
        hard: Some(value),
    };
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    HostConfig {
        network_mode: Some("none".to_owned()),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([("/tmp".to_owned(), TMP_OPTIONS.to_owned())])),
        cap_drop: Some(vec!["ALL".to_owned()]),
        cap_add: None,
        security_opt: Some(security_opts()),
        privileged: Some(false),
        devices: Some(vec![]),
        pids_limit: Some(i64::from(settings.pids_limit)),
        memory: Some(clamp(settings.memory_bytes)),
        memory_swap: Some(clamp(settings.memory_bytes)),
        nano_cpus: Some(clamp(settings.nano_cpus)),
        ulimits: Some(vec![
            ulimit("nofile", NOFILE_LIMIT),
            ulimit("core", 0),
            ulimit("fsize", clamp(FILE_SIZE_LIMIT)),
        ]),
        ipc_mode: Some("private".to_owned()),
        mounts: Some(
            std::iter::once(bind(WORKSPACE_MOUNT, binds.workspace, read_only))
                .chain(
                    binds
                        .egress
                        .map(|socket| bind(EGRESS_SOCKET_MOUNT, socket, true)),
                )
                .collect(),
        ),
        // Output is streamed to the executor; nothing is kept in the engine's logs.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_owned()),
            config: None,
        }),
        // Removed by the executor after the exit code is read (or when the session's
        // container is retired).
        auto_remove: Some(false),
        // Docker's tiny init (tini) is pid 1 and the command its child: signals the command
        // does not handle keep their default action (a pid-1 command would ignore them, e.g.
        // SIGXFSZ at the file-size cap), a death by signal N reads as 128+N, and orphans are
        // reaped instead of filling the pids limit as zombies.
        init: Some(true),
        ..Default::default()
    }
}

/// A private bind mount of `source` (as the engine sees it) at `target`.
fn bind(target: &str, source: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.to_owned()),
        source: Some(source.to_owned()),
        typ: Some(MountTypeEnum::BIND),
        read_only: Some(read_only),
        bind_options: Some(MountBindOptions {
            propagation: Some(MountBindOptionsPropagationEnum::RPRIVATE),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Session containers carry this label, value [`SESSION_REUSE`] (besides the labels every
/// sandbox carries).
pub const REUSE_LABEL: &str = "pincer.reuse";
/// The value of [`REUSE_LABEL`].
pub const SESSION_REUSE: &str = "session";
/// What a session's container runs between calls (under Docker's init).
pub const SESSION_IDLE_COMMAND: [&str; 2] = ["sleep", "infinity"];

/// The create body of a session's container: the very host config of a throwaway call
/// container ([`host_config`]), the sandbox's own environment only (each call's extra
/// variables go to its exec), and an idle command that the calls `docker exec` into.
pub fn session_body(
    settings: &DockerSettings,
    agent: &AgentId,
    read_only: bool,
    binds: Binds<'_>,
    instance_id: &str,
) -> ContainerCreateBody {
    let mut labels = labels(instance_id, agent);
    labels.insert(REUSE_LABEL.to_owned(), SESSION_REUSE.to_owned());
    let egress = binds.egress.is_some();
    ContainerCreateBody {
        image: Some(settings.image.clone()),
        cmd: Some(under_relay(
            &SESSION_IDLE_COMMAND.map(str::to_owned),
            egress,
        )),
        entrypoint: Some(vec![]),
        user: Some(settings.user.docker_user()),
        working_dir: Some(WORKSPACE_MOUNT.to_owned()),
        env: Some(own_env(egress).collect()),
        labels: Some(labels),
        network_disabled: Some(true),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        open_stdin: Some(false),
        tty: Some(false),
        host_config: Some(host_config(settings, binds, read_only)),
        ..Default::default()
    }
}

/// The shell line each call's exec starts with: it prints its own pid — the call's
/// process-group and session id, since every exec starts a new session — as the first
/// line of stdout, then replaces itself with the command (same pid, same argv). `PWD`,
/// which the shell exports, is dropped so the command's environment is a call
/// container's.
pub const EXEC_WRAPPER: &str = "unset PWD; echo $$ && exec \"$@\"";

/// The exec of one call in a session's container: the sandbox user, the plan's cwd under
/// the workspace, the plan's checked extra variables (the container holds ours), never
/// privileged, no stdin, no tty.
pub fn exec_config(settings: &DockerSettings, plan: &ValidatedExecPlan) -> ExecConfig {
    let cmd = ["/bin/sh", "-c", EXEC_WRAPPER, "sh"]
        .into_iter()
        .map(str::to_owned)
        .chain(plan.argv().iter().cloned())
        .collect();
    ExecConfig {
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        env: Some(plan.env().iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: Some(cmd),
        privileged: Some(false),
        user: Some(settings.user.docker_user()),
        working_dir: Some(plan.cwd().under(WORKSPACE_MOUNT)),
        ..Default::default()
    }
}

/// Kills the call whose wrapper printed pid `$1`: SIGKILL to its process group, then to
/// every process still in its session (background jobs that moved to a group of their
/// own), until none is left. Exit 0 when none is left, 1 when some survived 1000 rounds (a
/// round is a scan of `/proc`, about a millisecond; killed processes take a moment to go), 2
/// for a bad argument. Only shell built-ins: it never forks, so a call that filled the
/// pids limit cannot stop its own kill. `/proc/<pid>/stat` is read with `read` and split
/// after the command name (which may hold spaces and parentheses).
pub const KILL_SCRIPT: &str = r#"sid=$1
case $sid in ''|*[!0-9]*) exit 2;; esac
[ "$sid" -gt 1 ] || exit 2
n=0
while [ $n -lt 1000 ]; do
  kill -KILL -"$sid" 2>/dev/null
  left=0
  for d in /proc/[0-9]*; do
    read -r s 2>/dev/null < "$d/stat" || continue
    set -- ${s##*) }
    if [ "$4" = "$sid" ] && [ "$1" != Z ]; then
      kill -KILL "${d#/proc/}" 2>/dev/null
      left=1
    fi
  done
  [ $left = 0 ] && exit 0
  n=$((n+1))
done
exit 1"#;

/// The exec that runs [`KILL_SCRIPT`] for the call whose wrapper printed `pid`: as the
/// sandbox user (it can signal nothing the call could not), in the workspace, nothing else.
pub fn kill_config(settings: &DockerSettings, pid: u32) -> ExecConfig {
    ExecConfig {
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        env: Some(vec![]),
        cmd: Some(
            ["/bin/sh", "-c", KILL_SCRIPT, "sh", &pid.to_string()]
                .map(str::to_owned)
                .to_vec(),
        ),
        privileged: Some(false),
        user: Some(settings.user.docker_user()),
        working_dir: Some(WORKSPACE_MOUNT.to_owned()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pincer_proto::v1::{ExecRequest, exec_request};

    use pincer_runtime::config::validate::ContainerReuse;

    use super::*;
    use crate::grant::{FixedClock, testing};
    use crate::plan::{ExecLimits, ExecPlan};
    use crate::workspace::SandboxUser;

    const WS: Binds<'static> = Binds {
        workspace: "/srv/ws/main",
        egress: None,
    };

    #[test]
    fn egress_adds_the_relay_the_socket_and_the_proxy_variables_only() {
        let plan = plan();
        let binds = Binds {
            egress: Some("/srv/ws/.egress/proxy.sock"),
            ..WS
        };
        let plain = container_body(&settings(), &plan, WS, "inst-1");
        let body = container_body(&settings(), &plan, binds, "inst-1");
        assert_eq!(
            body.cmd.unwrap(),
            [EGRESS_RELAY, "--", "/bin/sh", "-c", "echo hi"]
        );
        let env = body.env.unwrap();
        assert_eq!(env[..3], SANDBOX_ENV.map(str::to_owned));
        for k in PROXY_ENV {
            assert!(env.contains(&format!("{k}=http://127.0.0.1:3128")), "{k}");
        }
        let (hc, plain_hc) = (body.host_config.unwrap(), plain.host_config.unwrap());
        let mounts = hc.mounts.clone().unwrap();
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0], plain_hc.mounts.clone().unwrap()[0]);
        assert_eq!(
            mounts[1].source.as_deref(),
            Some("/srv/ws/.egress/proxy.sock")
        );
        assert_eq!(mounts[1].target.as_deref(), Some(EGRESS_SOCKET_MOUNT));
        assert_eq!(mounts[1].read_only, Some(true));
        // Everything else is the posture without egress: still no network.
        assert_eq!(
            HostConfig { mounts: None, ..hc },
            HostConfig {
                mounts: None,
                ..plain_hc
            }
        );
        assert_eq!(body.network_disabled, Some(true));
        let session = session_body(&settings(), plan.agent_id(), false, binds, "inst-1");
        assert_eq!(
            session.cmd.unwrap(),
            [EGRESS_RELAY, "--", "sleep", "infinity"]
        );
        assert_eq!(session.env.unwrap().len(), 3 + PROXY_ENV.len());
    }

    fn settings() -> DockerSettings {
        DockerSettings {
            host: None,
            image: "pincer-sandbox:latest".into(),
            memory_bytes: 512 * 1024 * 1024,
            pids_limit: 128,
            nano_cpus: 1_000_000_000,
            host_workspace_root: None,
            user: SandboxUser {
                uid: 10001,
                gid: 10001,
            },
            max_output_bytes: 65_536,
            reuse: ContainerReuse::PerCall,
        }
    }

    fn plan() -> ValidatedExecPlan {
        ExecPlan::from(ExecRequest {
            grant: Some(testing::grant(&["exec"], "s", "main", i64::MAX)),
            session_key: "s".into(),
            command: Some(exec_request::Command::Shell("echo hi".into())),
            cwd: "notes/./x".into(),
            timeout_ms: 0,
            ..Default::default()
        })
        .validate(
            ExecLimits {
                max_timeout: Duration::from_secs(5),
            },
            &testing::keys(),
            &FixedClock(0),
        )
        .unwrap()
    }

    #[test]
    fn posture_matches_security_md() {
        let body = container_body(&settings(), &plan(), WS, "inst-1");
        let hc = body.host_config.clone().unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.tmpfs.unwrap()["/tmp"], TMP_OPTIONS);
        assert_eq!(hc.cap_drop.unwrap(), ["ALL"]);
        assert!(hc.cap_add.is_none());
        let opts = hc.security_opt.unwrap();
        assert_eq!(opts.len(), 2);
        assert_eq!(opts[0], "no-new-privileges:true");
        assert_eq!(opts[1].strip_prefix("seccomp="), Some(SECCOMP_PROFILE));
        assert_eq!(hc.privileged, Some(false));
        assert!(hc.devices.unwrap().is_empty());
        assert_eq!(hc.pids_limit, Some(128));
        assert_eq!(hc.memory, hc.memory_swap);
        assert_eq!(hc.memory, Some(512 * 1024 * 1024));
        assert_eq!(hc.nano_cpus, Some(1_000_000_000));
        assert_eq!(hc.ipc_mode.as_deref(), Some("private"));
        assert!(hc.pid_mode.is_none() && hc.uts_mode.is_none() && hc.userns_mode.is_none());
        assert!(hc.binds.is_none() && hc.volumes_from.is_none());
        assert_eq!(hc.auto_remove, Some(false));
        assert_eq!(hc.init, Some(true));
        let ulimits = hc.ulimits.unwrap();
        assert!(
            ulimits
                .iter()
                .any(|u| u.name.as_deref() == Some("core") && u.hard == Some(0))
        );
        assert!(ulimits.iter().any(|u| u.name.as_deref() == Some("nofile")));
        assert!(
            ulimits
                .iter()
                .any(|u| u.name.as_deref() == Some("fsize") && u.hard == Some(64 << 20))
        );
        let mounts = hc.mounts.unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].source.as_deref(), Some("/srv/ws/main"));
        assert_eq!(mounts[0].target.as_deref(), Some("/workspace"));
        assert_eq!(mounts[0].typ, Some(MountTypeEnum::BIND));

        assert_eq!(body.user.as_deref(), Some("10001:10001"));
        assert_eq!(body.working_dir.as_deref(), Some("/workspace/notes/x"));
        assert_eq!(body.cmd.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(body.env.unwrap().len(), 3);
        let labels = body.labels.unwrap();
        assert_eq!(labels[SANDBOX_LABEL], "1");
        assert_eq!(labels[INSTANCE_LABEL], "inst-1");
        assert_eq!(body.tty, Some(false));
    }

    #[test]
    fn extra_environment_follows_ours() {
        let mut req = ExecRequest {
            grant: Some(testing::grant(&["exec"], "s", "main", i64::MAX)),
            session_key: "s".into(),
            command: Some(exec_request::Command::Shell("env".into())),
            ..Default::default()
        };
        req.env.insert("GREETING".into(), "hello world".into());
        let plan = ExecPlan::from(req)
            .validate(
                ExecLimits {
                    max_timeout: Duration::from_secs(5),
                },
                &testing::keys(),
                &FixedClock(0),
            )
            .unwrap();
        let body = container_body(&settings(), &plan, WS, "inst-1");
        let env = body.env.unwrap();
        assert_eq!(env[..3], SANDBOX_ENV.map(str::to_owned));
        assert_eq!(env[3..], ["GREETING=hello world".to_owned()]);
    }

    #[test]
    fn a_session_container_has_the_posture_of_a_call_container() {
        let plan = plan();
        let call = container_body(&settings(), &plan, WS, "inst-1");
        let session = session_body(&settings(), plan.agent_id(), false, WS, "inst-1");
        assert_eq!(session.host_config, call.host_config);
        assert_eq!(session.image, call.image);
        assert_eq!(session.user, call.user);
        assert_eq!(session.entrypoint, call.entrypoint);
        assert_eq!(session.network_disabled, Some(true));
        assert_eq!(session.cmd.unwrap(), SESSION_IDLE_COMMAND);
        assert_eq!(session.env.unwrap(), SANDBOX_ENV);
        assert_eq!(session.working_dir.as_deref(), Some(WORKSPACE_MOUNT));
        let labels = session.labels.unwrap();
        let mut expected = call.labels.unwrap();
        expected.insert(REUSE_LABEL.to_owned(), SESSION_REUSE.to_owned());
        assert_eq!(labels, expected);

        // The workspace access is the session container's own, as for a call.
        let ro = session_body(&settings(), plan.agent_id(), true, WS, "inst-1");
        let mounts = ro.host_config.unwrap().mounts.unwrap();
        assert_eq!(mounts[0].read_only, Some(true));
    }

    #[test]
    fn a_call_execs_as_the_sandbox_user_in_its_cwd() {
        let mut req = ExecRequest {
            grant: Some(testing::grant(&["exec"], "s", "main", i64::MAX)),
            session_key: "s".into(),
            command: Some(exec_request::Command::Argv(pincer_proto::v1::Argv {
                args: vec!["echo".into(), "a b".into()],
            })),
            cwd: "sub/../dir".into(),
            ..Default::default()
        };
        req.env.insert("GREETING".into(), "hi".into());
        let plan = ExecPlan::from(req)
            .validate(
                ExecLimits {
                    max_timeout: Duration::from_secs(5),
                },
                &testing::keys(),
                &FixedClock(0),
            )
            .unwrap();
        let exec = exec_config(&settings(), &plan);
        assert_eq!(
            exec.cmd.unwrap(),
            ["/bin/sh", "-c", EXEC_WRAPPER, "sh", "echo", "a b"]
        );
        assert_eq!(exec.user.as_deref(), Some("10001:10001"));
        assert_eq!(exec.working_dir.as_deref(), Some("/workspace/dir"));
        assert_eq!(exec.env.unwrap(), ["GREETING=hi"]);
        assert_eq!(exec.privileged, Some(false));
        assert_eq!(exec.tty, Some(false));
        assert_eq!(exec.attach_stdin, Some(false));

        let kill = kill_config(&settings(), 42);
        assert_eq!(
            kill.cmd.unwrap(),
            ["/bin/sh", "-c", KILL_SCRIPT, "sh", "42"]
        );
        assert_eq!(kill.user.as_deref(), Some("10001:10001"));
        assert_eq!(kill.working_dir.as_deref(), Some(WORKSPACE_MOUNT));
        assert_eq!(kill.privileged, Some(false));
        assert!(kill.env.unwrap().is_empty());
    }

    #[test]
    fn file_size_cap_matches_the_jail() {
        assert_eq!(
            FILE_SIZE_LIMIT,
            pincer_jail::Limits::default().file_size_bytes.get()
        );
    }

    /// Every syscall name the profile's rules list (allowed ones, plus clone3's ENOSYS rule).
    fn listed_names() -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut rest = SECCOMP_PROFILE;
        while let Some(start) = rest.find("\"names\": [") {
            let after = &rest[start + "\"names\": [".len()..];
            let end = after.find(']').unwrap();
            names.extend(
                after[..end]
                    .split(',')
                    .map(|n| n.trim().trim_matches('"'))
                    .filter(|n| !n.is_empty()),
            );
            rest = &after[end..];
        }
        names
    }

    #[test]
    fn seccomp_profile_is_an_allowlist_without_the_dangerous_calls() {
        assert!(SECCOMP_PROFILE.contains("\"defaultAction\": \"SCMP_ACT_ERRNO\""));
        assert!(SECCOMP_PROFILE.contains("\"defaultErrnoRet\": 1,"));
        assert!(!SECCOMP_PROFILE.contains("SCMP_ACT_TRACE"));
        assert!(!SECCOMP_PROFILE.contains("SCMP_ACT_LOG"));
        for arch in [
            "SCMP_ARCH_X86_64",
            "SCMP_ARCH_X86",
            "SCMP_ARCH_X32",
            "SCMP_ARCH_AARCH64",
        ] {
            assert!(SECCOMP_PROFILE.contains(&format!("\"{arch}\"")), "{arch}");
        }
        let names = listed_names();
        assert!(names.len() > 300, "{}", names.len());
        for denied in [
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "keyctl",
            "add_key",
            "request_key",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "pidfd_getfd",
            "kcmp",
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "chroot",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "unshare",
            "setns",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "reboot",
            "swapon",
            "swapoff",
            "acct",
            "open_by_handle_at",
            "name_to_handle_at",
            "syslog",
            "quotactl",
            "lookup_dcookie",
            "fanotify_init",
            "fanotify_mark",
            "settimeofday",
            "clock_settime",
            "sethostname",
            "setdomainname",
            "vhangup",
            "iopl",
            "ioperm",
            "modify_ldt",
            "uselib",
            "socketcall",
        ] {
            assert!(!names.contains(&denied), "{denied} is listed");
        }
        // Argument-checked: clone (no namespace flags), socket (four families), personality,
        // ioctl (not TIOCSTI/TIOCLINUX); clone3 answers ENOSYS.
        for checked in ["clone", "socket", "personality", "ioctl"] {
            let n = names.iter().filter(|n| **n == checked).count();
            assert!(n >= 1, "{checked}");
        }
        assert!(
            SECCOMP_PROFILE.contains(
                "\"names\": [\"clone3\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 38"
            )
        );
        for needed in [
            "read",
            "write",
            "execve",
            "openat",
            "mmap",
            "arch_prctl",
            "wait4",
        ] {
            assert!(names.contains(&needed), "{needed}");
        }
    }
}
