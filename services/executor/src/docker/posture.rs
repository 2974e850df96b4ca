//! The container posture (SECURITY.md, "Sandboxes"), as one pure function from settings and
//! a validated plan to Docker's create body. Nothing here comes from the caller except the
//! argv and the (normalised) cwd.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountTypeEnum, ResourcesUlimits,
};

use super::DockerSettings;
use crate::plan::ValidatedExecPlan;

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
/// The whole environment of a sandboxed process.
pub const SANDBOX_ENV: [&str; 3] = [
    "PATH=/usr/local/bin:/usr/bin:/bin",
    "HOME=/tmp",
    "LANG=C.UTF-8",
];

/// The create body for one call. `bind_source` is the agent's workspace as the Docker
/// engine sees it.
pub fn container_body(
    settings: &DockerSettings,
    plan: &ValidatedExecPlan,
    bind_source: &str,
    instance_id: &str,
) -> ContainerCreateBody {
    let labels = HashMap::from([
        (SANDBOX_LABEL.to_owned(), "1".to_owned()),
        (INSTANCE_LABEL.to_owned(), instance_id.to_owned()),
        (AGENT_LABEL.to_owned(), plan.agent_id().as_str().to_owned()),
    ]);
    let ulimit = |name: &str, value: i64| ResourcesUlimits {
        name: Some(name.to_owned()),
        soft: Some(value),
        hard: Some(value),
    };
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let host_config = HostConfig {
        network_mode: Some("none".to_owned()),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([("/tmp".to_owned(), TMP_OPTIONS.to_owned())])),
        cap_drop: Some(vec!["ALL".to_owned()]),
        cap_add: None,
        security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
        privileged: Some(false),
        devices: Some(vec![]),
        pids_limit: Some(i64::from(settings.pids_limit)),
        memory: Some(clamp(settings.memory_bytes)),
        memory_swap: Some(clamp(settings.memory_bytes)),
        nano_cpus: Some(clamp(settings.nano_cpus)),
        ulimits: Some(vec![ulimit("nofile", NOFILE_LIMIT), ulimit("core", 0)]),
        ipc_mode: Some("private".to_owned()),
        mounts: Some(vec![Mount {
            target: Some(WORKSPACE_MOUNT.to_owned()),
            source: Some(bind_source.to_owned()),
            typ: Some(MountTypeEnum::BIND),
            read_only: Some(plan.workspace_read_only()),
            bind_options: Some(MountBindOptions {
                propagation: Some(MountBindOptionsPropagationEnum::RPRIVATE),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        // Output is streamed to the executor; nothing is kept in the engine's logs.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_owned()),
            config: None,
        }),
        // Removed by the executor after the exit code is read.
        auto_remove: Some(false),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(settings.image.clone()),
        cmd: Some(plan.argv().to_vec()),
        // The image's entrypoint never wraps the command.
        entrypoint: Some(vec![]),
        user: Some(settings.user.docker_user()),
        working_dir: Some(plan.cwd().under(WORKSPACE_MOUNT)),
        env: Some(SANDBOX_ENV.iter().map(|s| (*s).to_owned()).collect()),
        labels: Some(labels),
        network_disabled: Some(true),
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(false),
        tty: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pincer_proto::v1::{ExecRequest, exec_request};

    use super::*;
    use crate::grant::{FixedClock, testing};
    use crate::plan::{ExecLimits, ExecPlan};
    use crate::workspace::SandboxUser;

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
        }
    }

    fn plan() -> ValidatedExecPlan {
        ExecPlan::from(ExecRequest {
            grant: Some(testing::grant(&["exec"], "s", "main", i64::MAX)),
            session_key: "s".into(),
            command: Some(exec_request::Command::Shell("echo hi".into())),
            cwd: "notes/./x".into(),
            timeout_ms: 0,
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
        let body = container_body(&settings(), &plan(), "/srv/ws/main", "inst-1");
        let hc = body.host_config.clone().unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.tmpfs.unwrap()["/tmp"], TMP_OPTIONS);
        assert_eq!(hc.cap_drop.unwrap(), ["ALL"]);
        assert!(hc.cap_add.is_none());
        assert_eq!(hc.security_opt.unwrap(), ["no-new-privileges:true"]);
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
        let ulimits = hc.ulimits.unwrap();
        assert!(
            ulimits
                .iter()
                .any(|u| u.name.as_deref() == Some("core") && u.hard == Some(0))
        );
        assert!(ulimits.iter().any(|u| u.name.as_deref() == Some("nofile")));
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
}
