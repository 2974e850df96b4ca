//! The guard's decisions, without Docker: every forbidden create field and endpoint is
//! refused and named; the executor's real create body and its calls pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{IMAGE, plan, policy, posture_body, remove, set, settings};
use http::Method;
use pincer_docker_guard::rules::{
    BindCheck, ContainerOp, Endpoint, Refusal, check_create, classify,
};
use pincer_executor::docker::posture::{Binds, SECCOMP_PROFILE, container_body, process_body};
use serde_json::{Value, json};

const ROOT: &str = "/srv/pincer/workspaces";

fn check(body: &Value) -> Result<Value, Refusal> {
    let checked = check_create(&policy(ROOT, BindCheck::Text), body.to_string().as_bytes())?;
    Ok(serde_json::from_slice(&checked.body).unwrap())
}

/// Applies `edit` to the executor's body and asserts a refusal naming `field`.
fn refused(edit: impl FnOnce(&mut Value), field: &str) {
    let mut body = posture_body(ROOT);
    edit(&mut body);
    match check(&body) {
        Ok(_) => panic!("accepted, expected a refusal naming {field}: {body:#}"),
        Err(refusal) => {
            let message = refusal.to_string();
            assert!(
                message.contains(field),
                "refusal {message:?} does not name {field}"
            );
        }
    }
}

fn accepted(edit: impl FnOnce(&mut Value)) -> Value {
    let mut body = posture_body(ROOT);
    edit(&mut body);
    match check(&body) {
        Ok(forwarded) => forwarded,
        Err(refusal) => panic!("refused: {refusal}\n{body:#}"),
    }
}

macro_rules! refuse {
    ($($name:ident: [$($path:literal => $value:expr),+ $(,)?] names $field:literal;)+) => {$(
        #[test]
        fn $name() {
            refused(|b| { $( set(b, $path, $value); )+ }, $field);
        }
    )+};
}

macro_rules! refuse_missing {
    ($($name:ident: $path:literal names $field:literal;)+) => {$(
        #[test]
        fn $name() {
            refused(|b| remove(b, $path), $field);
        }
    )+};
}

// ---- what the executor really sends ----

#[test]
fn the_executors_posture_passes_unchanged() {
    let body = posture_body(ROOT);
    let forwarded = accepted(|_| {});
    assert_eq!(forwarded, body, "the forwarded body is the checked body");
    // The sample really is the posture (so this test is not vacuous).
    assert_eq!(body["HostConfig"]["NetworkMode"], "none");
    assert_eq!(
        body["HostConfig"]["Mounts"][0]["Source"],
        format!("{ROOT}/main")
    );
    assert_eq!(body["Labels"]["pincer.sandbox"], "1");
}

#[test]
fn the_executors_background_process_body_passes_unchanged() {
    let workspace = format!("{ROOT}/main");
    let body = serde_json::to_value(process_body(
        &settings(IMAGE),
        &plan("cat"),
        Binds {
            workspace: &workspace,
            egress: None,
        },
        "guard-test",
    ))
    .unwrap();
    // Exactly the call container's body, plus an open, once-only stdin and a label.
    assert_eq!(
        (&body["OpenStdin"], &body["StdinOnce"], &body["AttachStdin"]),
        (&json!(true), &json!(true), &json!(true))
    );
    assert_eq!(body["Labels"]["pincer.process"], "1");
    assert_eq!(body["HostConfig"], posture_body(ROOT)["HostConfig"]);
    let forwarded = check(&body).unwrap_or_else(|r| panic!("refused: {r}"));
    assert_eq!(forwarded, body, "the forwarded body is the checked body");
}

/// The body of a call granted network egress: the workspace plus the proxy's socket.
fn egress_body() -> Value {
    let workspace = format!("{ROOT}/main");
    let socket = format!("{ROOT}/.egress/proxy.sock");
    serde_json::to_value(container_body(
        &settings(IMAGE),
        &plan("true"),
        Binds {
            workspace: &workspace,
            egress: Some(&socket),
        },
        "guard-test",
    ))
    .unwrap()
}

#[test]
fn the_egress_socket_passes_only_read_only_at_its_place() {
    let body = egress_body();
    assert_eq!(
        body["HostConfig"]["Mounts"][1]["Source"],
        format!("{ROOT}/.egress/proxy.sock")
    );
    let forwarded = check(&body).unwrap_or_else(|r| panic!("refused: {r}"));
    assert_eq!(forwarded, body);
    let refused_egress = |edit: &dyn Fn(&mut Value), field: &str| {
        let mut b = egress_body();
        edit(&mut b);
        let message = check(&b).expect_err("accepted").to_string();
        assert!(message.contains(field), "{message:?} does not name {field}");
    };
    // Writable, or elsewhere in the container (over the workspace, over a binary).
    refused_egress(
        &|b| set(b, "/HostConfig/Mounts/1/ReadOnly", json!(false)),
        "HostConfig.Mounts[1].ReadOnly",
    );
    refused_egress(
        &|b| remove(b, "/HostConfig/Mounts/1/ReadOnly"),
        "HostConfig.Mounts[1].ReadOnly",
    );
    for target in ["/workspace", "/usr/bin/python3", "/run/other.sock"] {
        refused_egress(
            &|b| set(b, "/HostConfig/Mounts/1/Target", json!(target)),
            "HostConfig.Mounts[1].Target",
        );
    }
    // Anything else under the proxy's directory, or the directory itself.
    for source in [
        format!("{ROOT}/.egress"),
        format!("{ROOT}/.egress/other.sock"),
        format!("{ROOT}/.egress/proxy.sock/x"),
        format!("{ROOT}/.egress/../.egress/proxy.sock"),
        "/run/pincer/.egress/proxy.sock".to_owned(),
    ] {
        refused_egress(
            &|b| set(b, "/HostConfig/Mounts/1/Source", json!(source)),
            "HostConfig.Mounts[1].Source",
        );
    }
}

#[test]
fn allowed_variants_pass() {
    accepted(|b| set(b, "/HostConfig/Mounts/0/ReadOnly", json!(true)));
    accepted(|b| set(b, "/HostConfig/IpcMode", json!("none")));
    accepted(|b| remove(b, "/HostConfig/IpcMode"));
    accepted(|b| set(b, "/NetworkingConfig", json!({"EndpointsConfig": {}})));
    accepted(|b| {
        set(
            b,
            "/HostConfig/SecurityOpt",
            json!([ours(), "no-new-privileges"]),
        )
    });
    accepted(|b| {
        set(
            b,
            "/HostConfig/SecurityOpt",
            json!(["no-new-privileges=true", ours()]),
        )
    });
    accepted(|b| set(b, "/HostConfig/CapDrop", json!(["all"])));
    accepted(|b| set(b, "/User", json!("10001")));
    accepted(|b| set(b, "/HostConfig/Runtime", json!("runc")));
    accepted(|b| {
        remove(b, "/HostConfig/NanoCpus");
        set(b, "/HostConfig/CpuQuota", json!(50_000));
    });
    accepted(|b| {
        set(
            b,
            "/HostConfig/Mounts/1",
            json!({"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1024}}),
        );
    });
    // Unknown keys holding only the zero value change nothing for the engine.
    accepted(|b| set(b, "/HostConfig/SomeFutureField", Value::Null));
    accepted(|b| set(b, "/SomeFutureTopField", json!("")));
}

#[test]
fn keys_in_another_case_are_checked_as_the_engine_reads_them() {
    // Go's encoding/json would read "hostconfig" as HostConfig.
    let forwarded = accepted(|b| {
        let hc = b.as_object_mut().unwrap().remove("HostConfig").unwrap();
        set(b, "/hostconfig", hc);
    });
    assert!(forwarded.get("hostconfig").is_some());
    refused(
        |b| {
            let mut hc = b.as_object_mut().unwrap().remove("HostConfig").unwrap();
            hc.as_object_mut().unwrap().remove("Privileged");
            set(&mut hc, "/PRIVILEGED", json!(true));
            set(b, "/hostconfig", hc);
        },
        "HostConfig.Privileged",
    );
}

// ---- the seccomp profile ----

/// `seccomp=<Pincer's profile>`, as the executor sends it.
fn ours() -> String {
    format!("seccomp={SECCOMP_PROFILE}")
}

fn with_seccomp(profile: &str) -> impl FnOnce(&mut Value) {
    let opts = json!(["no-new-privileges:true", format!("seccomp={profile}")]);
    move |b| set(b, "/HostConfig/SecurityOpt", opts)
}

#[test]
fn our_seccomp_profile_is_accepted_and_forwarded_verbatim() {
    let forwarded = accepted(with_seccomp(SECCOMP_PROFILE));
    assert_eq!(forwarded["HostConfig"]["SecurityOpt"][1], ours());
    // The executor's body carries it already.
    let body = posture_body(ROOT);
    assert!(
        body["HostConfig"]["SecurityOpt"]
            .as_array()
            .unwrap()
            .contains(&json!(ours())),
        "the executor does not send the profile"
    );
}

#[test]
fn the_seccomp_profile_is_required() {
    refused(
        |b| set(b, "/HostConfig/SecurityOpt", json!(["no-new-privileges"])),
        "must contain seccomp=<Pincer's profile>",
    );
    refused(
        |b| set(b, "/HostConfig/SecurityOpt", json!([ours()])),
        "must contain no-new-privileges",
    );
    refused(
        |b| {
            set(
                b,
                "/HostConfig/SecurityOpt",
                json!(["no-new-privileges", ours(), ours()]),
            )
        },
        "names the seccomp profile twice",
    );
}

#[test]
fn unconfined_and_default_seccomp_are_refused() {
    for opt in [
        "seccomp=unconfined",
        "seccomp=default",
        "seccomp=",
        "seccomp",
    ] {
        refused(
            |b| {
                set(
                    b,
                    "/HostConfig/SecurityOpt",
                    json!(["no-new-privileges", ours(), opt]),
                )
            },
            "HostConfig.SecurityOpt",
        );
    }
    refused(
        |b| {
            set(
                b,
                "/HostConfig/SecurityOpt",
                json!(["no-new-privileges", "seccomp=unconfined"]),
            )
        },
        "only Pincer's own seccomp profile",
    );
}

#[test]
fn a_modified_seccomp_profile_is_refused() {
    // One more allowed call, written the way the file writes them.
    let extra_call =
        SECCOMP_PROFILE.replacen("\"accept\", ", "\"io_uring_setup\", \"accept\", ", 1);
    // Allow everything by default.
    let allow_all = SECCOMP_PROFILE.replacen(
        "\"defaultAction\": \"SCMP_ACT_ERRNO\"",
        "\"defaultAction\": \"SCMP_ACT_ALLOW\"",
        1,
    );
    // The same JSON value, formatted differently: refused too (byte for byte).
    let reformatted =
        serde_json::to_string(&serde_json::from_str::<Value>(SECCOMP_PROFILE).unwrap()).unwrap();
    let trailing_space = format!("{SECCOMP_PROFILE} ");
    let truncated = &SECCOMP_PROFILE[..SECCOMP_PROFILE.len() - 2];
    for (name, profile) in [
        ("extra call", extra_call.as_str()),
        ("allow all", allow_all.as_str()),
        ("reformatted", reformatted.as_str()),
        ("trailing space", trailing_space.as_str()),
        ("truncated", truncated),
        (
            "docker's own idea",
            "{\"defaultAction\":\"SCMP_ACT_ALLOW\"}",
        ),
    ] {
        assert_ne!(profile, SECCOMP_PROFILE, "{name}: the edit applied");
        let mut body = posture_body(ROOT);
        with_seccomp(profile)(&mut body);
        let refusal = check(&body).expect_err(name).to_string();
        assert!(
            refusal.contains("only Pincer's own seccomp profile"),
            "{name}: {refusal}"
        );
        // A refusal quotes the start of the option only.
        assert!(refusal.len() < 600, "{name}: {} bytes", refusal.len());
    }
    // With a colon, as very old clients wrote options.
    refused(
        |b| {
            set(
                b,
                "/HostConfig/SecurityOpt",
                json!(["no-new-privileges", format!("seccomp:{SECCOMP_PROFILE}")]),
            )
        },
        "only Pincer's own seccomp profile",
    );
}

/// One rule of the profile.
struct SeccompRule {
    names: Vec<String>,
    action: String,
    errno: Option<i64>,
    args: Vec<Value>,
}

/// The profile's rules, for the checks below.
fn profile_rules() -> Vec<SeccompRule> {
    let profile: Value = serde_json::from_str(SECCOMP_PROFILE).unwrap();
    profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| SeccompRule {
            names: r["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect(),
            action: r["action"].as_str().unwrap().to_owned(),
            errno: r["errnoRet"].as_i64(),
            args: r["args"].as_array().cloned().unwrap_or_default(),
        })
        .collect()
}

/// Whether the profile allows `name` with these argument values, evaluated the way
/// libseccomp does: rules are ORed, the comparisons of one rule ANDed, on 64-bit values.
fn allows(name: &str, args: &[u64]) -> bool {
    profile_rules().iter().any(|rule| {
        rule.action == "SCMP_ACT_ALLOW"
            && rule.names.iter().any(|n| n == name)
            && rule.args.iter().all(|c| {
                let arg = args[usize::try_from(c["index"].as_u64().unwrap()).unwrap()];
                let value = c["value"].as_u64().unwrap();
                let two = c["valueTwo"].as_u64().unwrap_or(0);
                match c["op"].as_str().unwrap() {
                    "SCMP_CMP_EQ" => arg == value,
                    "SCMP_CMP_NE" => arg != value,
                    "SCMP_CMP_MASKED_EQ" => arg & value == two,
                    other => panic!("unexpected comparison {other}"),
                }
            })
    })
}

#[test]
fn the_accepted_profile_is_strict() {
    let profile: Value = serde_json::from_str(SECCOMP_PROFILE).unwrap();
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(profile["defaultErrnoRet"], 1, "EPERM");
    let arches: Vec<&str> = profile["archMap"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| {
            std::iter::once(a["architecture"].as_str().unwrap()).chain(
                a["subArchitectures"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        arches,
        [
            "SCMP_ARCH_X86_64",
            "SCMP_ARCH_X86",
            "SCMP_ARCH_X32",
            "SCMP_ARCH_AARCH64"
        ]
    );
    let rules = profile_rules();
    assert!(
        rules
            .iter()
            .all(|r| r.action == "SCMP_ACT_ALLOW" || r.action == "SCMP_ACT_ERRNO"),
        "only allow and errno actions"
    );
    // Everything Docker 20.10's default profile allows that ours does not, and the rest
    // of the dangerous calls: none is allowed with any arguments.
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
        "umount2",
        "pivot_root",
        "chroot",
        "fsopen",
        "fsmount",
        "move_mount",
        "open_tree",
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
        "socketcall",
        "modify_ldt",
    ] {
        assert!(
            !rules
                .iter()
                .any(|r| r.action == "SCMP_ACT_ALLOW" && r.names.iter().any(|n| n == denied)),
            "{denied} is allowed"
        );
    }
    // clone3 answers ENOSYS (libc falls back to clone, whose flags a filter can see).
    assert!(
        rules
            .iter()
            .any(|r| r.names == ["clone3"] && r.action == "SCMP_ACT_ERRNO" && r.errno == Some(38))
    );
}

#[test]
fn clone_is_allowed_only_without_namespace_flags() {
    const SIGCHLD: u64 = 17;
    assert!(allows("clone", &[SIGCHLD, 0, 0, 0, 0]));
    // Threads.
    assert!(allows("clone", &[0x003d_0f00, 0, 0, 0, 0]));
    for flag in [
        0x0002_0000_u64, // CLONE_NEWNS
        0x0200_0000,     // CLONE_NEWCGROUP
        0x0400_0000,     // CLONE_NEWUTS
        0x0800_0000,     // CLONE_NEWIPC
        0x1000_0000,     // CLONE_NEWUSER
        0x2000_0000,     // CLONE_NEWPID
        0x4000_0000,     // CLONE_NEWNET
    ] {
        assert!(!allows("clone", &[flag | SIGCHLD, 0, 0, 0, 0]), "{flag:#x}");
    }
}

#[test]
fn ioctl_is_allowed_except_tiocsti_and_tioclinux_whatever_the_high_bits() {
    const TIOCSTI: u64 = 0x5412;
    const TIOCLINUX: u64 = 0x541C;
    // The kernel reads the request as 32 bits: high bits must not smuggle it through.
    for high in [0, 1 << 32, 0xffff_ffff_0000_0000] {
        assert!(!allows("ioctl", &[0, high | TIOCSTI, 0]), "{high:#x}");
        assert!(!allows("ioctl", &[0, high | TIOCLINUX, 0]), "{high:#x}");
    }
    // Everything near them and the usual requests pass.
    for request in (0x5400..0x5500)
        .filter(|r| *r != TIOCSTI && *r != TIOCLINUX)
        .chain([
            0,
            0xffff_ffff,
            0x8004_667e, // FIONBIO-like
            0x4008_7000,
            0xc020_660b, // FS_IOC_FIEMAP
            TIOCSTI ^ 1,
            TIOCSTI | 0x1_0000,
            TIOCLINUX | 0x8000_0000,
        ])
    {
        assert!(allows("ioctl", &[0, request, 0]), "{request:#x}");
    }
}

#[test]
fn socket_only_for_unix_inet_inet6_and_netlink() {
    for family in [1, 2, 10, 16] {
        assert!(allows("socket", &[family, 1, 0]), "{family}");
    }
    // AF_PACKET, AF_KEY, AF_ALG, AF_VSOCK, AF_BLUETOOTH, AF_TIPC, AF_RDS, high bits.
    for family in [17, 15, 38, 40, 31, 30, 21, (1 << 32) | 2] {
        assert!(!allows("socket", &[family, 1, 0]), "{family}");
    }
}

// ---- forbidden create fields, one test each ----

refuse! {
    other_image: ["/Image" => json!("alpine:latest")] names "Image";
    image_by_id: ["/Image" => json!("sha256:236629787331")] names "Image";
    privileged: ["/HostConfig/Privileged" => json!(true)] names "HostConfig.Privileged";
    privileged_lower_case: ["/HostConfig/privileged" => json!(true)] names "key \"privileged\" appears twice";
    binds: ["/HostConfig/Binds" => json!(["/:/host"])] names "HostConfig.Binds";
    binds_docker_socket: ["/HostConfig/Binds" => json!(["/var/run/docker.sock:/var/run/docker.sock"])] names "HostConfig.Binds";
    volumes_from: ["/HostConfig/VolumesFrom" => json!(["other"])] names "HostConfig.VolumesFrom";
    devices: ["/HostConfig/Devices" => json!([{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda", "CgroupPermissions": "rwm"}])] names "HostConfig.Devices";
    device_requests: ["/HostConfig/DeviceRequests" => json!([{"Driver": "nvidia", "Count": -1}])] names "HostConfig.DeviceRequests";
    device_cgroup_rules: ["/HostConfig/DeviceCgroupRules" => json!(["a *:* rwm"])] names "HostConfig.DeviceCgroupRules";
    cap_add: ["/HostConfig/CapAdd" => json!(["SYS_ADMIN"])] names "HostConfig.CapAdd";
    capabilities_full_set: ["/HostConfig/Capabilities" => json!(["CAP_SYS_ADMIN"])] names "HostConfig.Capabilities";
    cap_drop_without_all: ["/HostConfig/CapDrop" => json!(["NET_RAW"])] names "HostConfig.CapDrop";
    sysctls: ["/HostConfig/Sysctls" => json!({"kernel.core_pattern": "|/x"})] names "HostConfig.Sysctls";
    sysctls_long_s: ["/HostConfig/\u{017f}ysctls" => json!({"net.ipv4.ip_forward": "1"})] names "HostConfig.Sysctls";
    kernel_memory_kelvin: ["/HostConfig/\u{212a}ernelMemoryTCP" => json!(1)] names "HostConfig.KernelMemoryTCP";
    security_opt_empty: ["/HostConfig/SecurityOpt" => json!([])] names "HostConfig.SecurityOpt";
    no_new_privileges_false: ["/HostConfig/SecurityOpt" => json!(["no-new-privileges:false"])] names "HostConfig.SecurityOpt";
    seccomp_unconfined: ["/HostConfig/SecurityOpt" => json!(["no-new-privileges:true", "seccomp=unconfined"])] names "seccomp=unconfined";
    seccomp_custom_profile: ["/HostConfig/SecurityOpt" => json!(["no-new-privileges", "seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"])] names "HostConfig.SecurityOpt";
    apparmor_unconfined: ["/HostConfig/SecurityOpt" => json!(["no-new-privileges", "apparmor=unconfined"])] names "apparmor=unconfined";
    label_disable: ["/HostConfig/SecurityOpt" => json!(["no-new-privileges", "label=disable"])] names "label=disable";
    label_colon_disable: ["/HostConfig/SecurityOpt" => json!(["no-new-privileges", "label:disable"])] names "label:disable";
    systempaths_unconfined: ["/HostConfig/SecurityOpt" => json!(["no-new-privileges", "systempaths=unconfined"])] names "systempaths=unconfined";
    masked_paths_emptied: ["/HostConfig/MaskedPaths" => json!([])] names "HostConfig.MaskedPaths";
    readonly_paths_emptied: ["/HostConfig/ReadonlyPaths" => json!([])] names "HostConfig.ReadonlyPaths";
    network_host: ["/HostConfig/NetworkMode" => json!("host")] names "HostConfig.NetworkMode";
    network_bridge: ["/HostConfig/NetworkMode" => json!("bridge")] names "HostConfig.NetworkMode";
    network_of_another_container: ["/HostConfig/NetworkMode" => json!("container:gateway")] names "HostConfig.NetworkMode";
    networking_config_endpoint: ["/NetworkingConfig" => json!({"EndpointsConfig": {"pincer_internal": {}}})] names "NetworkingConfig.EndpointsConfig";
    pid_host: ["/HostConfig/PidMode" => json!("host")] names "HostConfig.PidMode";
    pid_of_another_container: ["/HostConfig/PidMode" => json!("container:executor")] names "HostConfig.PidMode";
    ipc_host: ["/HostConfig/IpcMode" => json!("host")] names "HostConfig.IpcMode";
    ipc_of_another_container: ["/HostConfig/IpcMode" => json!("container:executor")] names "HostConfig.IpcMode";
    uts_host: ["/HostConfig/UTSMode" => json!("host")] names "HostConfig.UTSMode";
    userns_host: ["/HostConfig/UsernsMode" => json!("host")] names "HostConfig.UsernsMode";
    cgroupns_host: ["/HostConfig/CgroupnsMode" => json!("host")] names "HostConfig.CgroupnsMode";
    cgroup_parent: ["/HostConfig/CgroupParent" => json!("/")] names "HostConfig.CgroupParent";
    readonly_rootfs_false: ["/HostConfig/ReadonlyRootfs" => json!(false)] names "HostConfig.ReadonlyRootfs";
    readonly_rootfs_as_string: ["/HostConfig/ReadonlyRootfs" => json!("true")] names "HostConfig.ReadonlyRootfs";
    memory_zero: ["/HostConfig/Memory" => json!(0)] names "HostConfig.Memory";
    memory_swap_unlimited: ["/HostConfig/MemorySwap" => json!(-1)] names "HostConfig.MemorySwap";
    pids_unlimited: ["/HostConfig/PidsLimit" => json!(-1)] names "HostConfig.PidsLimit";
    pids_zero: ["/HostConfig/PidsLimit" => json!(0)] names "HostConfig.PidsLimit";
    nano_cpus_zero: ["/HostConfig/NanoCpus" => json!(0)] names "HostConfig.NanoCpus";
    oom_kill_disable: ["/HostConfig/OomKillDisable" => json!(true)] names "HostConfig.OomKillDisable";
    oom_score_protected: ["/HostConfig/OomScoreAdj" => json!(-1000)] names "HostConfig.OomScoreAdj";
    realtime_cpu: ["/HostConfig/CpuRealtimeRuntime" => json!(950_000)] names "HostConfig.CpuRealtimeRuntime";
    user_empty: ["/User" => json!("")] names "User";
    user_zero: ["/User" => json!("0")] names "User";
    user_root: ["/User" => json!("root")] names "User";
    user_zero_with_group: ["/User" => json!("0:10001")] names "User";
    user_root_group: ["/User" => json!("10001:0")] names "User";
    user_by_name: ["/User" => json!("toor")] names "User";
    user_zero_padded: ["/User" => json!("00:00")] names "User";
    mount_bind_host_root: ["/HostConfig/Mounts/0/Source" => json!("/")] names "HostConfig.Mounts[0].Source";
    mount_bind_etc: ["/HostConfig/Mounts/0/Source" => json!("/etc")] names "HostConfig.Mounts[0].Source";
    mount_bind_docker_socket: ["/HostConfig/Mounts/0/Source" => json!("/var/run/docker.sock")] names "HostConfig.Mounts[0].Source";
    mount_bind_whole_root: ["/HostConfig/Mounts/0/Source" => json!(ROOT)] names "HostConfig.Mounts[0].Source";
    mount_bind_dot_dot: ["/HostConfig/Mounts/0/Source" => json!(format!("{ROOT}/main/../../etc"))] names "HostConfig.Mounts[0].Source";
    mount_bind_deep_path: ["/HostConfig/Mounts/0/Source" => json!(format!("{ROOT}/main/link-planted-by-sandbox"))] names "HostConfig.Mounts[0].Source";
    mount_bind_sibling_prefix: ["/HostConfig/Mounts/0/Source" => json!(format!("{ROOT}-evil/main"))] names "HostConfig.Mounts[0].Source";
    mount_bind_double_slash: ["/HostConfig/Mounts/0/Source" => json!(format!("{ROOT}//main"))] names "HostConfig.Mounts[0].Source";
    mount_bind_relative: ["/HostConfig/Mounts/0/Source" => json!("workspaces/main")] names "HostConfig.Mounts[0].Source";
    mount_bind_over_proc: ["/HostConfig/Mounts/0/Target" => json!("/proc")] names "HostConfig.Mounts[0].Target";
    mount_shared_propagation: ["/HostConfig/Mounts/0/BindOptions/Propagation" => json!("rshared")] names "HostConfig.Mounts[0].BindOptions.Propagation";
    mount_volume: ["/HostConfig/Mounts/0/Type" => json!("volume"), "/HostConfig/Mounts/0/Source" => json!("docker-data")] names "HostConfig.Mounts[0].Type";
    mount_npipe: ["/HostConfig/Mounts/0/Type" => json!("npipe")] names "HostConfig.Mounts[0].Type";
    mount_tmpfs_with_source: ["/HostConfig/Mounts/1" => json!({"Type": "tmpfs", "Target": "/x", "Source": "/etc"})] names "HostConfig.Mounts[1].Source";
    mount_unknown_field: ["/HostConfig/Mounts/0/Subpath" => json!("x")] names "HostConfig.Mounts[0].Subpath";
    tmpfs_over_sys: ["/HostConfig/Tmpfs" => json!({"/sys": "rw"})] names "HostConfig.Tmpfs";
    port_bindings: ["/HostConfig/PortBindings" => json!({"22/tcp": [{"HostPort": "2222"}]})] names "HostConfig.PortBindings";
    publish_all_ports: ["/HostConfig/PublishAllPorts" => json!(true)] names "HostConfig.PublishAllPorts";
    links: ["/HostConfig/Links" => json!(["gateway:gw"])] names "HostConfig.Links";
    extra_hosts: ["/HostConfig/ExtraHosts" => json!(["metadata:169.254.169.254"])] names "HostConfig.ExtraHosts";
    runtime_other: ["/HostConfig/Runtime" => json!("nvidia")] names "HostConfig.Runtime";
    log_driver_over_the_network: ["/HostConfig/LogConfig" => json!({"Type": "gelf", "Config": {"gelf-address": "udp://10.0.0.1:12201"}})] names "HostConfig.LogConfig.Type";
    restart_always: ["/HostConfig/RestartPolicy" => json!({"Name": "always"})] names "HostConfig.RestartPolicy.Name";
    ulimit_rtprio: ["/HostConfig/Ulimits/0" => json!({"Name": "rtprio", "Soft": 99, "Hard": 99})] names "HostConfig.Ulimits[0].Name";
    group_add: ["/HostConfig/GroupAdd" => json!(["docker"])] names "HostConfig.GroupAdd";
    volume_driver: ["/HostConfig/VolumeDriver" => json!("local")] names "HostConfig.VolumeDriver";
    unknown_host_config_field: ["/HostConfig/FutureEscapeHatch" => json!({"on": true})] names "HostConfig.FutureEscapeHatch";
    unknown_host_config_empty_list: ["/HostConfig/FutureList" => json!([])] names "HostConfig.FutureList";
    anonymous_volumes: ["/Volumes" => json!({"/data": {}})] names "Volumes";
    exposed_ports: ["/ExposedPorts" => json!({"22/tcp": {}})] names "ExposedPorts";
    healthcheck: ["/Healthcheck" => json!({"Test": ["CMD", "true"]})] names "Healthcheck";
    unknown_top_level_field: ["/Platform" => json!("linux/amd64")] names "Platform";
    // Engines up to 20.10 still read host-config fields at the top level (deprecated).
    deprecated_top_level_privileged: ["/Privileged" => json!(true)] names "Privileged";
    deprecated_top_level_binds: ["/Binds" => json!(["/:/host"])] names "Binds";
    deprecated_top_level_memory: ["/Memory" => json!(1)] names "Memory";
    deprecated_top_level_cpuset: ["/Cpuset" => json!("0")] names "Cpuset";
    no_sandbox_label: ["/Labels/pincer.sandbox" => json!("0")] names "Labels";
    host_config_not_an_object: ["/HostConfig" => json!(["Privileged"])] names "HostConfig";
}

refuse_missing! {
    image_missing: "/Image" names "Image";
    user_missing: "/User" names "User";
    labels_missing: "/Labels" names "Labels";
    host_config_missing: "/HostConfig" names "HostConfig";
    network_mode_missing: "/HostConfig/NetworkMode" names "HostConfig.NetworkMode";
    readonly_rootfs_missing: "/HostConfig/ReadonlyRootfs" names "HostConfig.ReadonlyRootfs";
    cap_drop_missing: "/HostConfig/CapDrop" names "HostConfig.CapDrop";
    security_opt_missing: "/HostConfig/SecurityOpt" names "HostConfig.SecurityOpt";
    memory_missing: "/HostConfig/Memory" names "HostConfig.Memory";
    pids_limit_missing: "/HostConfig/PidsLimit" names "HostConfig.PidsLimit";
    cpu_limit_missing: "/HostConfig/NanoCpus" names "HostConfig.NanoCpus";
}

#[test]
fn duplicate_keys_are_refused() {
    let body = posture_body(ROOT).to_string();
    // The engine would let the second one win.
    let doubled = body.replacen(
        "\"Privileged\":false",
        "\"Privileged\":false,\"Privileged\":true",
        1,
    );
    assert_ne!(body, doubled, "the edit applied");
    let refusal = check_create(&policy(ROOT, BindCheck::Text), doubled.as_bytes()).unwrap_err();
    assert!(matches!(refusal, Refusal::Json(_)), "{refusal}");
}

#[test]
fn malformed_bodies_are_refused() {
    let policy = policy(ROOT, BindCheck::Text);
    for body in [
        &b""[..],
        b"not json",
        b"[]",
        b"null",
        b"{\"Image\": \"pincer-sandbox:latest\"} {\"HostConfig\": {\"Privileged\": true}}",
    ] {
        assert!(
            check_create(&policy, body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

// ---- endpoints ----

fn route(
    method: Method,
    path_and_query: &str,
) -> Result<pincer_docker_guard::rules::Route, Refusal> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    classify(&policy(ROOT, BindCheck::Text), &method, path, query)
}

#[test]
fn the_executors_calls_are_allowed() {
    let image = format!("/images/{IMAGE}/json");
    for (method, path) in [
        (Method::GET, "/_ping"),
        (Method::HEAD, "/_ping"),
        (Method::GET, "/version"),
        (Method::GET, "/v1.41/version"),
        (Method::GET, image.as_str()),
        (Method::POST, "/containers/create?name=pincer-sbx-0123abcd"),
        (Method::POST, "/v1.49/containers/create"),
        (
            Method::GET,
            "/containers/json?all=true&filters=%7B%22label%22%3A%5B%22pincer.executor%3Dabc%22%5D%7D",
        ),
        (
            Method::POST,
            "/containers/pincer-sbx-1/attach?stdout=true&stderr=true&stream=true&logs=false",
        ),
        (
            Method::POST,
            "/containers/pincer-proc-1/attach?stdin=true&stdout=true&stderr=true&stream=true&logs=false",
        ),
        (Method::POST, "/containers/0123abcdef/start"),
        (Method::POST, "/containers/0123abcdef/wait"),
        (Method::POST, "/containers/0123abcdef/kill?signal=SIGKILL"),
        (
            Method::DELETE,
            "/containers/0123abcdef?force=true&v=true&link=false",
        ),
    ] {
        if let Err(e) = route(method.clone(), path) {
            panic!("{method} {path} refused: {e}");
        }
    }
}

#[test]
fn container_operations_name_the_container() {
    let r = route(Method::POST, "/v1.41/containers/abc/kill?signal=SIGKILL").unwrap();
    assert_eq!(
        r.endpoint,
        Endpoint::Container {
            id: "abc".into(),
            op: ContainerOp::Kill
        }
    );
    // Forwarded under the full id the guard resolved, never the caller's name.
    let upstream = r.upstream_path_and_query(&policy(ROOT, BindCheck::Text), Some("f00d"));
    assert_eq!(upstream, "/v1.41/containers/f00d/kill?signal=SIGKILL");
}

fn list_filters(path: &str) -> Value {
    let r = route(Method::GET, path).unwrap();
    let upstream = r.upstream_path_and_query(&policy(ROOT, BindCheck::Text), None);
    let query = upstream.split_once('?').unwrap().1;
    let (_, filters) = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "filters")
        .unwrap();
    serde_json::from_str(&filters).unwrap()
}

#[test]
fn container_lists_are_limited_to_sandboxes() {
    assert_eq!(
        list_filters("/containers/json?all=true"),
        json!({"label": {"pincer.sandbox=1": true}})
    );
    let with = |f: &str| {
        format!(
            "/containers/json?filters={}",
            url::form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>()
        )
    };
    assert_eq!(
        list_filters(&with(r#"{"label":["pincer.executor=abc"]}"#)),
        json!({"label": {"pincer.executor=abc": true, "pincer.sandbox=1": true}})
    );
    assert_eq!(
        list_filters(&with(
            r#"{"label":{"pincer.sandbox=1":false},"status":{"exited":true}}"#
        )),
        json!({"label": {"pincer.sandbox=1": true}, "status": {"exited": true}})
    );
    for bad in [r#"["label"]"#, r#"{"label":"x"}"#, r#"{"label":[1]}"#, "{"] {
        assert!(
            matches!(route(Method::GET, &with(bad)), Err(Refusal::Filters(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        route(
            Method::GET,
            "/containers/json?filters=%7B%7D&filters=%7B%7D"
        ),
        Err(Refusal::Query { .. })
    ));
}

#[test]
fn forbidden_endpoints_are_refused() {
    for (method, path) in [
        (Method::POST, "/containers/abc/exec"),
        (Method::POST, "/exec/abc/start"),
        (Method::GET, "/containers/abc/archive?path=/"),
        (Method::PUT, "/containers/abc/archive?path=/"),
        (Method::HEAD, "/containers/abc/archive?path=/"),
        (Method::GET, "/containers/abc/export"),
        (Method::POST, "/commit?container=abc"),
        (Method::POST, "/containers/abc/update"),
        (Method::POST, "/containers/abc/rename?name=x"),
        (Method::POST, "/containers/abc/pause"),
        (Method::POST, "/containers/abc/restart"),
        (Method::POST, "/containers/abc/stop"),
        (Method::GET, "/containers/abc/json"),
        (Method::GET, "/containers/abc/logs"),
        (Method::GET, "/containers/abc/top"),
        (Method::POST, "/containers/abc/resize"),
        (Method::POST, "/containers/prune"),
        (Method::PUT, "/containers/create"),
        (Method::GET, "/containers/create"),
        (Method::POST, "/containers/json"),
        (Method::POST, "/images/create?fromImage=alpine"),
        (Method::POST, "/images/load"),
        (Method::DELETE, "/images/pincer-sandbox:latest"),
        (Method::POST, "/images/pincer-sandbox:latest/tag?repo=x"),
        (Method::POST, "/images/pincer-sandbox:latest/push"),
        (Method::GET, "/images/alpine:latest/json"),
        (Method::GET, "/images/json"),
        (Method::POST, "/build"),
        (Method::POST, "/volumes/create"),
        (Method::GET, "/volumes"),
        (Method::POST, "/networks/create"),
        (Method::POST, "/networks/bridge/connect"),
        (Method::GET, "/networks"),
        (Method::POST, "/swarm/init"),
        (Method::POST, "/services/create"),
        (Method::POST, "/secrets/create"),
        (Method::GET, "/configs"),
        (Method::GET, "/nodes"),
        (Method::GET, "/tasks"),
        (Method::GET, "/plugins"),
        (Method::POST, "/plugins/pull?remote=x"),
        (Method::GET, "/info"),
        (Method::GET, "/events"),
        (Method::GET, "/system/df"),
        (Method::POST, "/session"),
        (Method::POST, "/grpc"),
        (Method::POST, "/auth"),
        (Method::GET, "/distribution/alpine/json"),
        (Method::POST, "/_ping"),
        (Method::PUT, "/version"),
        (Method::POST, "/containers/-abc/start"),
        (Method::POST, "/containers/a%2F..%2F..%2Fimages/start"),
        (Method::POST, "/containers/../images/create"),
        (Method::POST, "/containers/./create"),
        (Method::POST, "//containers/create"),
        (Method::POST, "/containers/create/"),
        (Method::GET, "/v1.41"),
        (Method::GET, "/v2.0/version"),
        (Method::GET, "/vx/version"),
        (Method::GET, ""),
    ] {
        match route(method.clone(), path) {
            Err(Refusal::Endpoint { .. }) => {}
            other => panic!("{method} {path}: expected an endpoint refusal, got {other:?}"),
        }
    }
}

#[test]
fn old_api_versions_are_refused() {
    // API < 1.24 let `start` carry a host config.
    for path in [
        "/v1.23/containers/abc/start",
        "/v1.12/version",
        "/v1.39/_ping",
    ] {
        assert!(
            matches!(
                route(Method::POST, path).or_else(|_| route(Method::GET, path)),
                Err(Refusal::ApiVersion(_))
            ),
            "{path}"
        );
    }
}

#[test]
fn unexpected_query_parameters_are_refused() {
    for path in [
        "/containers/abc/start?checkpoint=c1&checkpoint-dir=/var/lib",
        "/containers/abc/start?detachKeys=x&detachKeys=y",
        "/containers/create?name=a&HostConfig=x",
        "/containers/abc/kill?signal=SIGKILL&x=1",
    ] {
        assert!(
            matches!(route(Method::POST, path), Err(Refusal::Query { .. })),
            "{path}"
        );
    }
    assert!(matches!(
        route(Method::DELETE, "/containers/abc?link=true"),
        Err(Refusal::Query { .. })
    ));
    assert!(matches!(
        route(Method::GET, &format!("/images/{IMAGE}/json?manifests=1")),
        Err(Refusal::Query { .. })
    ));
}
