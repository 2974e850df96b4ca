//! The posture check on `POST /containers/create` (SECURITY.md, "Sandboxes").
//!
//! Every field the engine knows is in one of the tables below, with the rule it must pass.
//! Keys are matched as the engine matches them (case-insensitively, see [`super::json`]).
//! A key in no table is refused unless its value is `null`, `false`, `0` or `""` (what the
//! engine would assume anyway), so a field added to a later engine cannot slip through.
//! That also covers the deprecated top-level copies of host-config fields that engines up
//! to 20.10 still read (`{"Privileged": true, ...}` beside `HostConfig`): they are not in
//! [`CONFIG`], so only their zero values pass, and `HostConfig` itself is required.
//! What is forwarded is the body as parsed here, re-serialised: the engine reads exactly
//! what was checked.

pub mod exec;

use serde_json::{Map, Value};

use super::bind::{BindKind, EGRESS_TARGET, check_normal_absolute, check_target};
use super::json::{Fields, is_empty, is_zero_scalar, parse_strict};
use super::{Policy, Refusal, SANDBOX_LABEL, SANDBOX_LABEL_VALUE};

/// A create body that passed, ready to forward.
#[derive(Debug, Clone)]
pub struct CheckedCreate {
    /// The body to send to the engine (the checked value, re-serialised).
    pub body: Vec<u8>,
    /// Bind mount sources (field, source, kind), for the file-system check (textually
    /// checked already).
    pub bind_sources: Vec<(String, String, BindKind)>,
}

/// What a field must hold.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Anything (documented as harmless for a sandbox).
    Any,
    /// `null`, `false`, `0`, `""`, `[]` or `{}`.
    Empty,
    /// Absent or `null` only: for these an empty list means "turn the protection off".
    Null,
    /// Absent, `null` or `false`.
    NotTrue,
    /// Exactly `true`.
    True,
    /// A string from the list; absent or `null` counts as `""`.
    OneOf(&'static [&'static str]),
    /// An integer above zero; required.
    Positive,
    /// Absent, `null` or an integer of at least zero.
    NonNegative,
    /// A check of its own.
    Custom(fn(&str, &Value, &mut Context<'_>) -> Result<(), Refusal>),
}

/// The container config (top level of the body) and the rule for each field.
const CONFIG: &[(&str, Rule)] = &[
    ("Hostname", Rule::Any),
    ("Domainname", Rule::Any),
    ("User", Rule::Custom(check_user)),
    ("AttachStdin", Rule::Any),
    ("AttachStdout", Rule::Any),
    ("AttachStderr", Rule::Any),
    ("ExposedPorts", Rule::Empty),
    ("Tty", Rule::Any),
    ("OpenStdin", Rule::Any),
    ("StdinOnce", Rule::Any),
    ("Env", Rule::Any),
    ("Cmd", Rule::Any),
    ("Healthcheck", Rule::Empty),
    ("ArgsEscaped", Rule::Any),
    ("Image", Rule::Custom(check_image)),
    ("Volumes", Rule::Empty),
    ("WorkingDir", Rule::Any),
    ("Entrypoint", Rule::Any),
    ("NetworkDisabled", Rule::Any),
    ("MacAddress", Rule::Empty),
    ("OnBuild", Rule::Empty),
    ("Labels", Rule::Custom(check_labels)),
    ("StopSignal", Rule::Any),
    ("StopTimeout", Rule::Any),
    ("Shell", Rule::Empty),
    ("HostConfig", Rule::Custom(check_host_config)),
    ("NetworkingConfig", Rule::Custom(check_networking)),
];

/// `HostConfig` (with the `Resources` fields it embeds) and the rule for each field.
const HOST_CONFIG: &[(&str, Rule)] = &[
    // Isolation from the host.
    ("Privileged", Rule::NotTrue),
    ("ReadonlyRootfs", Rule::True),
    ("NetworkMode", Rule::OneOf(&["none"])),
    ("PidMode", Rule::OneOf(&[""])),
    ("IpcMode", Rule::OneOf(&["", "private", "none"])),
    ("UTSMode", Rule::OneOf(&[""])),
    ("UsernsMode", Rule::OneOf(&[""])),
    ("CgroupnsMode", Rule::OneOf(&["", "private"])),
    ("Runtime", Rule::OneOf(&["", "runc"])),
    ("CapDrop", Rule::Custom(check_cap_drop)),
    ("SecurityOpt", Rule::Custom(check_security_opt)),
    ("MaskedPaths", Rule::Null),
    ("ReadonlyPaths", Rule::Null),
    ("Mounts", Rule::Custom(check_mounts)),
    ("Tmpfs", Rule::Custom(check_tmpfs)),
    ("LogConfig", Rule::Custom(check_log_config)),
    ("RestartPolicy", Rule::Custom(check_restart_policy)),
    ("Ulimits", Rule::Custom(check_ulimits)),
    // Limits. `NanoCpus` or `CpuQuota` must be set; checked after the table.
    ("Memory", Rule::Positive),
    ("PidsLimit", Rule::Positive),
    ("MemorySwap", Rule::NonNegative),
    ("NanoCpus", Rule::NonNegative),
    ("CpuQuota", Rule::NonNegative),
    ("CpuPeriod", Rule::NonNegative),
    ("OomKillDisable", Rule::NotTrue),
    ("OomScoreAdj", Rule::NonNegative),
    // Harmless inside the limits above.
    ("CpuShares", Rule::Any),
    ("CpusetCpus", Rule::Any),
    ("CpusetMems", Rule::Any),
    ("BlkioWeight", Rule::Any),
    ("MemoryReservation", Rule::Any),
    ("MemorySwappiness", Rule::Any),
    ("ShmSize", Rule::Any),
    ("Init", Rule::Any),
    ("AutoRemove", Rule::Any),
    ("ConsoleSize", Rule::Any),
    // Known, not needed by a sandbox, so they must stay empty.
    ("Binds", Rule::Empty),
    ("VolumesFrom", Rule::Empty),
    ("VolumeDriver", Rule::Empty),
    ("Devices", Rule::Empty),
    ("DeviceRequests", Rule::Empty),
    ("DeviceCgroupRules", Rule::Empty),
    ("CapAdd", Rule::Empty),
    ("Capabilities", Rule::Empty),
    ("Sysctls", Rule::Empty),
    ("PortBindings", Rule::Empty),
    ("PublishAllPorts", Rule::NotTrue),
    ("Links", Rule::Empty),
    ("ExtraHosts", Rule::Empty),
    ("Dns", Rule::Empty),
    ("DnsOptions", Rule::Empty),
    ("DnsSearch", Rule::Empty),
    ("GroupAdd", Rule::Empty),
    ("Cgroup", Rule::Empty),
    ("CgroupParent", Rule::Empty),
    ("ContainerIDFile", Rule::Empty),
    ("StorageOpt", Rule::Empty),
    ("Annotations", Rule::Empty),
    ("Isolation", Rule::Empty),
    ("CpuRealtimePeriod", Rule::Empty),
    ("CpuRealtimeRuntime", Rule::Empty),
    ("BlkioWeightDevice", Rule::Empty),
    ("BlkioDeviceReadBps", Rule::Empty),
    ("BlkioDeviceWriteBps", Rule::Empty),
    ("BlkioDeviceReadIOps", Rule::Empty),
    ("BlkioDeviceWriteIOps", Rule::Empty),
    ("KernelMemory", Rule::Empty),
    ("KernelMemoryTCP", Rule::Empty),
    ("CpuCount", Rule::Empty),
    ("CpuPercent", Rule::Empty),
    ("IOMaximumIOps", Rule::Empty),
    ("IOMaximumBandwidth", Rule::Empty),
];

/// One entry of `HostConfig.Mounts`.
const MOUNT: &[(&str, Rule)] = &[
    ("Type", Rule::OneOf(&["bind", "tmpfs"])),
    ("Target", Rule::Any),
    ("Source", Rule::Any),
    ("ReadOnly", Rule::Any),
    ("Consistency", Rule::Any),
    ("BindOptions", Rule::Any),
    ("TmpfsOptions", Rule::Any),
    ("VolumeOptions", Rule::Empty),
    ("ImageOptions", Rule::Empty),
    ("ClusterOptions", Rule::Empty),
];

/// `HostConfig.Mounts[].BindOptions`.
const BIND_OPTIONS: &[(&str, Rule)] = &[
    (
        "Propagation",
        Rule::OneOf(&["", "private", "rprivate", "slave", "rslave"]),
    ),
    ("NonRecursive", Rule::Any),
    ("CreateMountpoint", Rule::Any),
    ("ReadOnlyNonRecursive", Rule::Any),
    ("ReadOnlyForceRecursive", Rule::Any),
];

/// `HostConfig.Mounts[].TmpfsOptions`.
const TMPFS_OPTIONS: &[(&str, Rule)] = &[
    ("SizeBytes", Rule::Any),
    ("Mode", Rule::Any),
    ("Options", Rule::Any),
];

/// `HostConfig.LogConfig`: output goes to the executor, not to a log driver (some of which
/// send it over the host's network).
const LOG_CONFIG: &[(&str, Rule)] = &[
    ("Type", Rule::OneOf(&["", "none"])),
    ("Config", Rule::Empty),
];

/// `HostConfig.RestartPolicy`: a sandbox never outlives its call.
const RESTART_POLICY: &[(&str, Rule)] = &[
    ("Name", Rule::OneOf(&["", "no"])),
    ("MaximumRetryCount", Rule::Any),
];

/// `HostConfig.Ulimits[]`.
const ULIMIT: &[(&str, Rule)] = &[
    (
        "Name",
        Rule::OneOf(&[
            "nofile", "nproc", "core", "fsize", "cpu", "stack", "data", "as",
        ]),
    ),
    ("Soft", Rule::Any),
    ("Hard", Rule::Any),
];

/// `NetworkingConfig`: no endpoints (the network is `none`).
const NETWORKING_CONFIG: &[(&str, Rule)] = &[("EndpointsConfig", Rule::Empty)];

/// The `SecurityOpt` entries accepted: `no-new-privileges` in its three spellings, and
/// `seccomp=` followed by exactly [`SECCOMP_PROFILE`]. Any other option (`seccomp=unconfined`,
/// any other profile, `apparmor=…`, `label=…`, `systempaths=…`) loosens or replaces a
/// default and is refused.
const NO_NEW_PRIVILEGES: &[&str] = &[
    "no-new-privileges",
    "no-new-privileges:true",
    "no-new-privileges=true",
];

/// Pincer's seccomp profile, the very file the executor embeds and sends inline
/// (`services/executor/src/docker/seccomp.json`). A create body must carry it, byte for
/// byte, as `seccomp=<profile>`: Docker's default profile allows calls this one refuses
/// (`io_uring_*`, `ptrace`, ...), so leaving it out loosens the sandbox too.
const SECCOMP_PROFILE: &str = include_str!("../../../executor/src/docker/seccomp.json");

/// How much of a refused option a refusal quotes (a profile is kilobytes long).
const QUOTED_OPTION_CHARS: usize = 64;

/// What the checks collect on the way.
struct Context<'a> {
    policy: &'a Policy,
    bind_sources: Vec<(String, String, BindKind)>,
}

/// Checks a create body against the posture.
pub fn check_create(policy: &Policy, body: &[u8]) -> Result<CheckedCreate, Refusal> {
    let value = parse_strict(body).map_err(|e| Refusal::Json(e.to_string()))?;
    let top = as_object("the body", &value)?;
    let mut cx = Context {
        policy,
        bind_sources: Vec::new(),
    };
    let fields = Fields::new(top);
    for name in ["Image", "User", "Labels", "HostConfig"] {
        if fields.get(name).is_none_or(Value::is_null) {
            return Err(Refusal::field(name, "is required"));
        }
    }
    check_object("", top, CONFIG, &mut cx)?;
    let body = serde_json::to_vec(&value).map_err(|e| Refusal::Json(e.to_string()))?;
    Ok(CheckedCreate {
        body,
        bind_sources: cx.bind_sources,
    })
}

/// Checks each field of `object` against `table`; unknown fields must be zero scalars.
fn check_object(
    prefix: &str,
    object: &Map<String, Value>,
    table: &[(&str, Rule)],
    cx: &mut Context<'_>,
) -> Result<(), Refusal> {
    let fields = Fields::new(object);
    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    if let Some((key, _)) = fields
        .unknown(&names)
        .into_iter()
        .find(|(_, v)| !is_zero_scalar(v))
    {
        return Err(Refusal::field(
            path(prefix, key),
            "is not a field the guard knows; only null, false, 0 or \"\" are accepted for it",
        ));
    }
    for (name, rule) in table {
        let field = path(prefix, name);
        let value = fields.get(name);
        check_rule(&field, value, *rule, cx)?;
    }
    Ok(())
}

fn check_rule(
    field: &str,
    value: Option<&Value>,
    rule: Rule,
    cx: &mut Context<'_>,
) -> Result<(), Refusal> {
    let null = Value::Null;
    let v = value.unwrap_or(&null);
    let refuse = |why: &str| Err(Refusal::field(field, why));
    match rule {
        Rule::Any => Ok(()),
        Rule::Empty if is_empty(v) => Ok(()),
        Rule::Empty => refuse("must be empty for a sandbox"),
        Rule::Null if v.is_null() => Ok(()),
        Rule::Null => refuse("must not be set (even an empty list turns the protection off)"),
        Rule::NotTrue if matches!(v, Value::Null | Value::Bool(false)) => Ok(()),
        Rule::NotTrue => refuse("must be false"),
        Rule::True if *v == Value::Bool(true) => Ok(()),
        Rule::True => refuse("must be true"),
        Rule::OneOf(allowed) => {
            let s = match v {
                Value::Null => "",
                Value::String(s) => s.as_str(),
                _ => return refuse("must be a string"),
            };
            if allowed.contains(&s) {
                Ok(())
            } else {
                refuse(&format!("{s:?} is not accepted (allowed: {allowed:?})"))
            }
        }
        Rule::Positive => match v.as_i64() {
            Some(n) if n > 0 => Ok(()),
            _ if v.is_null() => refuse("is required (a sandbox needs this limit)"),
            _ => refuse("must be an integer above 0"),
        },
        Rule::NonNegative => match v {
            Value::Null => Ok(()),
            _ if v.as_i64().is_some_and(|n| n >= 0) => Ok(()),
            _ => refuse("must be an integer of at least 0"),
        },
        Rule::Custom(check) => check(field, v, cx),
    }
}

fn path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn as_object<'v>(field: &str, v: &'v Value) -> Result<&'v Map<String, Value>, Refusal> {
    v.as_object()
        .ok_or_else(|| Refusal::field(field, "must be a JSON object"))
}

/// A list of strings; `null` is the empty list.
fn as_strings<'v>(field: &str, v: &'v Value) -> Result<Vec<&'v str>, Refusal> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| Refusal::field(field, "must be a list of strings"))
            })
            .collect(),
        _ => Err(Refusal::field(field, "must be a list of strings")),
    }
}

fn check_image(field: &str, v: &Value, cx: &mut Context<'_>) -> Result<(), Refusal> {
    match v.as_str() {
        Some(image) if image == cx.policy.image => Ok(()),
        _ => Err(Refusal::field(
            field,
            format!("must be the sandbox image {:?}", cx.policy.image),
        )),
    }
}

/// `uid` or `uid:gid`, numeric, neither 0. Names are refused: the image decides what a name
/// means, and `root` is not the only name for uid 0.
fn check_user(field: &str, v: &Value, _: &mut Context<'_>) -> Result<(), Refusal> {
    let user = v.as_str().unwrap_or_default();
    let numeric_non_zero = |s: &str| {
        !s.is_empty()
            && s.len() <= 10
            && s.bytes().all(|b| b.is_ascii_digit())
            && s.parse::<u32>().is_ok_and(|n| n != 0)
    };
    let ok = match user.split_once(':') {
        Some((uid, gid)) => numeric_non_zero(uid) && numeric_non_zero(gid),
        None => numeric_non_zero(user),
    };
    if ok {
        Ok(())
    } else {
        Err(Refusal::field(
            field,
            format!(
                "{user:?} is not accepted: a numeric non-root uid[:gid] (neither 0) is required"
            ),
        ))
    }
}

fn check_labels(field: &str, v: &Value, _: &mut Context<'_>) -> Result<(), Refusal> {
    let labels = as_object(field, v)?;
    if labels.values().any(|l| !l.is_string()) {
        return Err(Refusal::field(field, "values must be strings"));
    }
    // Label keys are map keys, matched exactly by the engine.
    match labels.get(SANDBOX_LABEL).and_then(Value::as_str) {
        Some(SANDBOX_LABEL_VALUE) => Ok(()),
        _ => Err(Refusal::field(
            field,
            format!("must carry {SANDBOX_LABEL}={SANDBOX_LABEL_VALUE} (every sandbox is labelled)"),
        )),
    }
}

fn check_host_config(field: &str, v: &Value, cx: &mut Context<'_>) -> Result<(), Refusal> {
    let host = as_object(field, v)?;
    check_object(field, host, HOST_CONFIG, cx)?;
    let fields = Fields::new(host);
    let positive = |name| {
        fields
            .get(name)
            .and_then(Value::as_i64)
            .is_some_and(|n| n > 0)
    };
    if !positive("NanoCpus") && !positive("CpuQuota") {
        return Err(Refusal::field(
            format!("{field}.NanoCpus"),
            "is required (or CpuQuota): a sandbox needs a CPU limit",
        ));
    }
    Ok(())
}

fn check_networking(field: &str, v: &Value, cx: &mut Context<'_>) -> Result<(), Refusal> {
    match v {
        Value::Null => Ok(()),
        _ => check_object(field, as_object(field, v)?, NETWORKING_CONFIG, cx),
    }
}

fn check_cap_drop(field: &str, v: &Value, _: &mut Context<'_>) -> Result<(), Refusal> {
    if as_strings(field, v)?
        .iter()
        .any(|c| c.eq_ignore_ascii_case("ALL"))
    {
        Ok(())
    } else {
        Err(Refusal::field(field, "must contain ALL"))
    }
}

fn check_security_opt(field: &str, v: &Value, _: &mut Context<'_>) -> Result<(), Refusal> {
    let opts = as_strings(field, v)?;
    let is_ours = |o: &str| o.strip_prefix("seccomp=") == Some(SECCOMP_PROFILE);
    if let Some(bad) = opts
        .iter()
        .find(|o| !NO_NEW_PRIVILEGES.contains(o) && !is_ours(o))
    {
        let quoted: String = bad.chars().take(QUOTED_OPTION_CHARS).collect();
        let more = if bad.chars().count() > QUOTED_OPTION_CHARS {
            "…"
        } else {
            ""
        };
        let why = if bad.starts_with("seccomp=") || bad.starts_with("seccomp:") {
            "only Pincer's own seccomp profile (services/executor/src/docker/seccomp.json, byte for byte) is accepted"
        } else {
            "only no-new-privileges and Pincer's seccomp profile; apparmor, label and systempaths keep their defaults"
        };
        return Err(Refusal::field(
            field,
            format!("{quoted:?}{more} is not accepted ({why})"),
        ));
    }
    if !opts.iter().any(|o| NO_NEW_PRIVILEGES.contains(o)) {
        return Err(Refusal::field(field, "must contain no-new-privileges"));
    }
    match opts.iter().filter(|o| is_ours(o)).count() {
        1 => Ok(()),
        0 => Err(Refusal::field(
            field,
            "must contain seccomp=<Pincer's profile> (Docker's default profile allows io_uring, ptrace and more)",
        )),
        _ => Err(Refusal::field(field, "names the seccomp profile twice")),
    }
}

fn check_tmpfs(field: &str, v: &Value, _: &mut Context<'_>) -> Result<(), Refusal> {
    if v.is_null() {
        return Ok(());
    }
    for (target, options) in as_object(field, v)? {
        check_target(target).map_err(|why| Refusal::field(field, why))?;
        if !options.is_string() {
            return Err(Refusal::field(
                format!("{field}[{target:?}]"),
                "must be a string",
            ));
        }
    }
    Ok(())
}

fn check_log_config(field: &str, v: &Value, cx: &mut Context<'_>) -> Result<(), Refusal> {
    match v {
        Value::Null => Ok(()),
        _ => check_object(field, as_object(field, v)?, LOG_CONFIG, cx),
    }
}

fn check_restart_policy(field: &str, v: &Value, cx: &mut Context<'_>) -> Result<(), Refusal> {
    match v {
        Value::Null => Ok(()),
        _ => check_object(field, as_object(field, v)?, RESTART_POLICY, cx),
    }
}

fn check_ulimits(field: &str, v: &Value, cx: &mut Context<'_>) -> Result<(), Refusal> {
    let items = match v {
        Value::Null => return Ok(()),
        Value::Array(items) => items,
        _ => return Err(Refusal::field(field, "must be a list")),
    };
    for (i, item) in items.iter().enumerate() {
        let field = format!("{field}[{i}]");
        check_object(&field, as_object(&field, item)?, ULIMIT, cx)?;
    }
    Ok(())
}

fn check_mounts(field: &str, v: &Value, cx: &mut Context<'_>) -> Result<(), Refusal> {
    let items = match v {
        Value::Null => return Ok(()),
        Value::Array(items) => items,
        _ => return Err(Refusal::field(field, "must be a list")),
    };
    for (i, item) in items.iter().enumerate() {
        let field = format!("{field}[{i}]");
        check_mount(&field, as_object(&field, item)?, cx)?;
    }
    Ok(())
}

fn check_mount(
    field: &str,
    mount: &Map<String, Value>,
    cx: &mut Context<'_>,
) -> Result<(), Refusal> {
    check_object(field, mount, MOUNT, cx)?;
    let fields = Fields::new(mount);
    let string = |name: &str| match fields.get(name) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(_) => Err(Refusal::field(
            format!("{field}.{name}"),
            "must be a string",
        )),
    };
    let target = string("Target")?;
    check_target(target).map_err(|why| Refusal::field(format!("{field}.Target"), why))?;
    let source = string("Source")?;
    let options = |name: &str, table, cx: &mut Context<'_>| match fields.get(name) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => {
            let name = format!("{field}.{name}");
            check_object(&name, as_object(&name, v)?, table, cx)
        }
    };
    match string("Type")? {
        "bind" => {
            let source_field = format!("{field}.Source");
            check_normal_absolute(source)
                .map_err(|why| Refusal::field(&source_field, format!("{source:?} {why}")))?;
            let kind = if source == cx.policy.workspace_root.egress_socket() {
                // The proxy's socket: read-only, at its one place, nothing else.
                if target != EGRESS_TARGET {
                    return Err(Refusal::field(
                        format!("{field}.Target"),
                        format!("the egress proxy's socket may only be mounted at {EGRESS_TARGET}"),
                    ));
                }
                if fields.get("ReadOnly") != Some(&Value::Bool(true)) {
                    return Err(Refusal::field(
                        format!("{field}.ReadOnly"),
                        "must be true for the egress proxy's socket",
                    ));
                }
                BindKind::EgressSocket
            } else {
                cx.policy
                    .workspace_root
                    .check_source(source)
                    .map_err(|why| Refusal::field(&source_field, why))?;
                BindKind::Workspace
            };
            options("BindOptions", BIND_OPTIONS, cx)?;
            if fields.get("TmpfsOptions").is_some_and(|v| !is_empty(v)) {
                return Err(Refusal::field(
                    format!("{field}.TmpfsOptions"),
                    "must be empty on a bind mount",
                ));
            }
            cx.bind_sources
                .push((source_field, source.to_owned(), kind));
        }
        "tmpfs" => {
            if !source.is_empty() {
                return Err(Refusal::field(
                    format!("{field}.Source"),
                    "must be empty on a tmpfs mount",
                ));
            }
            options("TmpfsOptions", TMPFS_OPTIONS, cx)?;
            if fields.get("BindOptions").is_some_and(|v| !is_empty(v)) {
                return Err(Refusal::field(
                    format!("{field}.BindOptions"),
                    "must be empty on a tmpfs mount",
                ));
            }
        }
        // The table's OneOf already refused anything else.
        other => {
            return Err(Refusal::field(
                format!("{field}.Type"),
                format!("{other:?} is not accepted"),
            ));
        }
    }
    Ok(())
}
