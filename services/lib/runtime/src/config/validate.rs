//! From [`RawConfig`] to [`Config`]: every rule that spans fields or needs parsing lives
//! here. All problems are collected (not just the first), each naming the key path, the bad
//! value and the fix.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::channels::validate_session;
pub use super::channels::{
    ChannelAccessConfig, DmPolicy, DmScope, GroupPolicy, GroupRule, LinkedAccount, SenderList,
    SessionConfig,
};
pub use super::platforms::{
    EmailConfig, ImapConfig, IrcConfig, MatrixConfig, SmtpConfig, TelegramAccountConfig,
    TelegramConfig, TelegramWebhookConfig,
};
use super::platforms::{validate_email, validate_irc, validate_matrix, validate_telegram};
use super::raw::{
    DockerReuse, LogFormat, ProviderApi, RawConfig, RawDocker, RawEndpoint, RawWebFetchTool,
    SandboxBackend,
};
pub use super::raw::{ExecAskMode, ExecNetwork, ExecSandboxScope, ExecSecurityLevel};
use crate::cidr::IpCidr;
use crate::secret::SecretRef;

use super::gateway::validate_gateway;
pub use super::gateway::{GatewayAuth, GatewayBind, GatewayConfig};

/// A validated configuration. Secrets are still references; each service resolves only the
/// ones it uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// The operator-facing gateway.
    pub gateway: GatewayConfig,
    /// The gRPC mesh between services.
    pub services: ServicesConfig,
    /// LLM providers by id.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The agent.
    pub agent: AgentConfig,
    /// Telegram, when configured and enabled.
    pub telegram: Option<TelegramConfig>,
    /// IRC, when configured and enabled.
    pub irc: Option<IrcConfig>,
    /// E-mail, when configured and enabled.
    pub email: Option<EmailConfig>,
    /// Matrix, when configured and enabled.
    pub matrix: Option<MatrixConfig>,
    /// How chat messages map to sessions.
    pub session: SessionConfig,
    /// The exec tool.
    pub exec: ExecToolConfig,
    /// The file tools.
    pub files: FilesToolConfig,
    /// The web_fetch tool.
    pub web_fetch: WebFetchToolConfig,
    /// The executor.
    pub executor: ExecutorConfig,
    /// Logging.
    pub logging: LoggingConfig,
}

/// `services`.
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    /// The gateway's gRPC endpoint.
    pub gateway: Endpoint,
    /// The agent's gRPC endpoint.
    pub agent: Endpoint,
    /// The executor's gRPC endpoint.
    pub executor: Endpoint,
    /// Credentials each service presents.
    pub credentials: Credentials,
}

/// A gRPC endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Where the service listens.
    pub listen: SocketAddr,
    /// What callers dial.
    pub url: Url,
}

/// Per-service credentials (references).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Presented by the gateway.
    pub gateway: SecretRef,
    /// Presented by bridges.
    pub bridge: SecretRef,
    /// Presented by agents.
    pub agent: SecretRef,
    /// Presented by executors.
    pub executor: SecretRef,
}

/// `models.providers.<id>`.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The wire API.
    pub api: ProviderApi,
    /// Base URL without a trailing slash.
    pub base_url: Url,
    /// API key, if the provider needs one.
    pub api_key: Option<SecretRef>,
}

/// `<provider>/<model>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// A key of `models.providers`.
    pub provider: String,
    /// The provider's model name.
    pub model: String,
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// `agents.defaults`.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The model.
    pub model: ModelRef,
    /// The system prompt.
    pub system_prompt: String,
    /// Most model calls in one turn.
    pub max_iterations: u32,
    /// Most output tokens per model call.
    pub max_tokens: u32,
    /// Stream model output.
    pub stream: bool,
    /// Messages of history sent to the model.
    pub history_limit: u32,
}

/// `tools.exec`.
#[derive(Debug, Clone)]
pub struct ExecToolConfig {
    /// Offered to the model.
    pub enabled: bool,
    /// Default wall-clock limit.
    pub timeout: Duration,
    /// Bytes kept of stdout and of stderr each.
    pub max_output_bytes: u32,
    /// `security`.
    pub security: ExecSecurityLevel,
    /// `ask`.
    pub ask: ExecAskMode,
    /// `askFallback`.
    pub ask_fallback: ExecSecurityLevel,
    /// Allowlist globs (each absolute).
    pub allowlist: Vec<String>,
    /// `safeBins`.
    pub safe_bins: bool,
    /// How long a call waits for the owner.
    pub approval_timeout: Duration,
    /// `network`: what sandboxed commands may reach.
    pub network: ExecNetwork,
    /// `egressPorts`: the ports the guarded proxy connects commands to.
    pub egress_ports: Vec<u16>,
    /// `sandboxScope`: whether a session's commands may share its sandbox.
    pub sandbox_scope: ExecSandboxScope,
}

/// `tools.files`.
#[derive(Debug, Clone)]
pub struct FilesToolConfig {
    /// Offered to the model.
    pub enabled: bool,
}

/// `tools.webFetch`.
#[derive(Debug, Clone)]
pub struct WebFetchToolConfig {
    /// Offered to the model.
    pub enabled: bool,
    /// Networks exempted from the guard's block lists.
    pub allow_networks: Vec<IpCidr>,
    /// Most bytes read of a body.
    pub max_bytes: u32,
    /// Whole-fetch limit.
    pub timeout: Duration,
}

/// `executor`.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// The sandbox backend.
    pub backend: SandboxBackend,
    /// Host directory with the agents' workspaces (`None`: `<state dir>/workspaces`).
    pub workspace_root: Option<PathBuf>,
    /// The Docker backend.
    pub docker: DockerConfig,
}

/// `executor.docker`.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// Docker endpoint, `None` for the local default.
    pub host: Option<String>,
    /// Sandbox image.
    pub image: String,
    /// Memory (and memory+swap) limit in bytes.
    pub memory_bytes: u64,
    /// Process limit.
    pub pids_limit: u32,
    /// CPU limit in nano-CPUs.
    pub nano_cpus: u64,
    /// Workspace root as the engine sees it, when different.
    pub host_workspace_root: Option<PathBuf>,
    /// How long a sandbox container lives.
    pub reuse: ContainerReuse,
}

/// `executor.docker.reuse` and `executor.docker.sessionIdleSeconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerReuse {
    /// One throwaway container per call (the default).
    PerCall,
    /// One container per session and workspace access, reused by the session's calls and
    /// removed after `idle` without a call.
    PerSession {
        /// How long a container may go without a call.
        idle: Duration,
    },
}

/// `logging`.
#[derive(Debug, Clone)]
pub struct LoggingConfig {
    /// A tracing filter.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Key path, e.g. `gateway.port`.
    pub path: String,
    /// What is wrong, including the bad value (never a secret).
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.path, self.problem, self.fix)
    }
}

/// Collects issues while validating.
#[derive(Default)]
pub(super) struct Issues(Vec<ConfigIssue>);

impl Issues {
    pub(super) fn add(&mut self, path: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.0.push(ConfigIssue {
            path: path.to_owned(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }
}

/// Default credential references: `pincer up` generates the values per run and hands each
/// service only its own through these environment variables.
pub const ENV_GATEWAY_CREDENTIAL: &str = "PINCER_GATEWAY_CREDENTIAL";
/// See [`ENV_GATEWAY_CREDENTIAL`].
pub const ENV_BRIDGE_CREDENTIAL: &str = "PINCER_BRIDGE_CREDENTIAL";
/// See [`ENV_GATEWAY_CREDENTIAL`].
pub const ENV_AGENT_CREDENTIAL: &str = "PINCER_AGENT_CREDENTIAL";
/// See [`ENV_GATEWAY_CREDENTIAL`].
pub const ENV_EXECUTOR_CREDENTIAL: &str = "PINCER_EXECUTOR_CREDENTIAL";
/// Default reference for the operator token.
pub const ENV_GATEWAY_TOKEN: &str = "PINCER_GATEWAY_TOKEN";

const DEFAULT_SYSTEM_PROMPT: &str = "You are Pincer, a personal assistant. Be brief and helpful. \
You can run shell commands in a sandbox with the exec tool; its working directory is your workspace.";

/// Validates a raw configuration.
pub fn validate(raw: RawConfig) -> Result<Config, Vec<ConfigIssue>> {
    let mut issues = Issues::default();

    let gateway = validate_gateway(&raw.gateway, &mut issues);
    let endpoints = (
        endpoint(
            &raw.services.gateway,
            "services.gateway",
            18790,
            &mut issues,
        ),
        endpoint(&raw.services.agent, "services.agent", 18791, &mut issues),
        endpoint(
            &raw.services.executor,
            "services.executor",
            18792,
            &mut issues,
        ),
    );
    let credentials = Credentials {
        gateway: credential(&raw.services.credentials.gateway, ENV_GATEWAY_CREDENTIAL),
        bridge: credential(&raw.services.credentials.bridge, ENV_BRIDGE_CREDENTIAL),
        agent: credential(&raw.services.credentials.agent, ENV_AGENT_CREDENTIAL),
        executor: credential(&raw.services.credentials.executor, ENV_EXECUTOR_CREDENTIAL),
    };

    let mut providers = BTreeMap::new();
    for (id, p) in &raw.models.providers {
        let path = format!("models.providers.{id}");
        if id.is_empty() || id.contains('/') {
            issues.add(
                &path,
                format!("provider id {id:?} is empty or contains '/'"),
                "use a short id such as \"openai\"",
            );
        }
        if p.api == ProviderApi::OpenAiResponses {
            issues.add(
                &format!("{path}.api"),
                "\"openai-responses\" is not supported yet",
                "use \"openai-chat\" for OpenAI or OpenAI-compatible servers",
            );
        }
        let Some(base_url) = http_url(&p.base_url, &format!("{path}.baseUrl"), &mut issues) else {
            continue;
        };
        providers.insert(
            id.clone(),
            ProviderConfig {
                api: p.api,
                base_url,
                api_key: p.api_key.clone(),
            },
        );
    }

    let agent = validate_agent(&raw, &providers, &mut issues);
    let channels = &raw.channels;
    let telegram = channels
        .telegram
        .as_ref()
        .and_then(|t| validate_telegram(t, &mut issues));
    let irc = channels
        .irc
        .as_ref()
        .and_then(|c| validate_irc(c, &mut issues));
    let email = channels
        .email
        .as_ref()
        .and_then(|c| validate_email(c, &mut issues));
    let matrix = channels
        .matrix
        .as_ref()
        .and_then(|c| validate_matrix(c, &mut issues));
    let session = validate_session(&raw.session, &mut issues);

    let exec_raw = &raw.tools.exec;
    let timeout_seconds = exec_raw.timeout_seconds.unwrap_or(30);
    if !(1..=600).contains(&timeout_seconds) {
        issues.add(
            "tools.exec.timeoutSeconds",
            format!("{timeout_seconds} is out of range"),
            "use 1 to 600 seconds",
        );
    }
    let max_output_bytes = exec_raw.max_output_bytes.unwrap_or(65_536);
    if !(1024..=16 * 1024 * 1024).contains(&max_output_bytes) {
        issues.add(
            "tools.exec.maxOutputBytes",
            format!("{max_output_bytes} is out of range"),
            "use 1024 to 16777216",
        );
    }
    for (i, glob) in exec_raw.allowlist.iter().enumerate() {
        if !glob.starts_with('/') || glob.contains("/../") || glob.ends_with("/..") {
            issues.add(
                &format!("tools.exec.allowlist[{i}]"),
                format!("{glob:?} is not an absolute path glob"),
                "write the resolved path of the executable, e.g. \"/usr/bin/git\" or \"/usr/local/bin/*\"",
            );
        }
    }
    let approval_timeout_seconds = exec_raw.approval_timeout_seconds.unwrap_or(120);
    if !(1..=600).contains(&approval_timeout_seconds) {
        issues.add(
            "tools.exec.approvalTimeoutSeconds",
            format!("{approval_timeout_seconds} is out of range"),
            "use 1 to 600 seconds",
        );
    }
    let egress_ports = exec_raw
        .egress_ports
        .clone()
        .unwrap_or_else(|| vec![80, 443]);
    if egress_ports.is_empty() || egress_ports.contains(&0) {
        issues.add(
            "tools.exec.egressPorts",
            format!("{egress_ports:?} is not a list of ports"),
            "list the ports commands may reach, e.g. [80, 443]",
        );
    }
    let exec = ExecToolConfig {
        enabled: exec_raw.enabled.unwrap_or(true),
        timeout: Duration::from_secs(u64::from(timeout_seconds)),
        max_output_bytes,
        security: exec_raw.security.unwrap_or(ExecSecurityLevel::Full),
        ask: exec_raw.ask.unwrap_or(ExecAskMode::Off),
        ask_fallback: exec_raw.ask_fallback.unwrap_or(ExecSecurityLevel::Deny),
        allowlist: exec_raw.allowlist.clone(),
        safe_bins: exec_raw.safe_bins.unwrap_or(true),
        approval_timeout: Duration::from_secs(u64::from(approval_timeout_seconds)),
        network: exec_raw.network.unwrap_or(ExecNetwork::None),
        egress_ports,
        sandbox_scope: exec_raw.sandbox_scope.unwrap_or(ExecSandboxScope::Session),
    };
    let files = FilesToolConfig {
        enabled: raw.tools.files.enabled.unwrap_or(true),
    };
    let web_fetch = validate_web_fetch(&raw.tools.web_fetch, &mut issues);

    let executor = validate_executor(&raw, &mut issues);

    let level = raw
        .logging
        .level
        .clone()
        .unwrap_or_else(|| "info".to_owned());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        issues.add(
            "logging.level",
            format!("{level:?} is not a log level or filter"),
            "use error, warn, info, debug or trace",
        );
    }
    let logging = LoggingConfig {
        level,
        format: raw.logging.format.unwrap_or_default(),
    };

    match (issues.0.is_empty(), gateway, agent, endpoints) {
        (true, Some(gateway), Some(agent), (Some(g), Some(a), Some(e))) => {
            let services = ServicesConfig {
                gateway: g,
                agent: a,
                executor: e,
                credentials,
            };
            Ok(Config {
                gateway,
                services,
                providers,
                agent,
                telegram,
                irc,
                email,
                matrix,
                session,
                exec,
                files,
                web_fetch,
                executor,
                logging,
            })
        }
        _ => Err(issues.0),
    }
}

fn endpoint(
    raw: &RawEndpoint,
    path: &str,
    default_port: u16,
    issues: &mut Issues,
) -> Option<Endpoint> {
    let listen = match raw.listen.as_deref() {
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), default_port),
        Some(s) => match s.parse() {
            Ok(addr) => addr,
            Err(_) => {
                issues.add(
                    &format!("{path}.listen"),
                    format!("{s:?} is not a socket address"),
                    "use HOST:PORT, e.g. 0.0.0.0:18790",
                );
                return None;
            }
        },
    };
    let fallback = format!("http://127.0.0.1:{}", listen.port());
    let url = http_url(
        raw.url.as_deref().unwrap_or(&fallback),
        &format!("{path}.url"),
        issues,
    )?;
    Some(Endpoint { listen, url })
}

fn credential(raw: &Option<SecretRef>, env: &str) -> SecretRef {
    raw.clone().unwrap_or_else(|| SecretRef::env(env))
}

pub(super) fn http_url(s: &str, path: &str, issues: &mut Issues) -> Option<Url> {
    match Url::parse(s) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            if !url.username().is_empty() || url.password().is_some() {
                issues.add(
                    path,
                    "the URL contains credentials",
                    "remove user:password@ and configure the key in its own field",
                );
                return None;
            }
            Some(url)
        }
        Ok(url) => {
            issues.add(
                path,
                format!("{s:?} has scheme {:?} or no host", url.scheme()),
                "use an http:// or https:// URL with a host",
            );
            None
        }
        Err(e) => {
            issues.add(
                path,
                format!("{s:?} is not a URL ({e})"),
                "use a full URL such as https://api.openai.com/v1",
            );
            None
        }
    }
}

fn validate_agent(
    raw: &RawConfig,
    providers: &BTreeMap<String, ProviderConfig>,
    issues: &mut Issues,
) -> Option<AgentConfig> {
    let d = &raw.agents.defaults;
    let path = "agents.defaults.model";
    let model = match d.model.as_deref() {
        None => {
            issues.add(path, "no model is configured", "set it to \"<provider>/<model>\", e.g. \"anthropic/claude-sonnet-4-5\", and define the provider under models.providers");
            None
        }
        Some(s) => {
            match s.split_once('/') {
                Some((p, m)) if !p.is_empty() && !m.is_empty() => {
                    if !providers.contains_key(p) && !raw.models.providers.contains_key(p) {
                        let known: Vec<&str> =
                            raw.models.providers.keys().map(String::as_str).collect();
                        issues.add(path, format!("{s:?} names provider {p:?}, which is not defined (defined: {known:?})"), format!("add models.providers.{p} or use one of the defined providers"));
                    }
                    Some(ModelRef {
                        provider: p.to_owned(),
                        model: m.to_owned(),
                    })
                }
                _ => {
                    issues.add(
                        path,
                        format!("{s:?} is not \"<provider>/<model>\""),
                        "write it as provider id, a slash, then the model name",
                    );
                    None
                }
            }
        }
    };
    let max_iterations = d.max_iterations.unwrap_or(8);
    if !(1..=64).contains(&max_iterations) {
        issues.add(
            "agents.defaults.maxIterations",
            format!("{max_iterations} is out of range"),
            "use 1 to 64",
        );
    }
    let max_tokens = d.max_tokens.unwrap_or(1024);
    if !(1..=200_000).contains(&max_tokens) {
        issues.add(
            "agents.defaults.maxTokens",
            format!("{max_tokens} is out of range"),
            "use 1 to 200000",
        );
    }
    let history_limit = d.history_limit.unwrap_or(40);
    if history_limit > 1000 {
        issues.add(
            "agents.defaults.historyLimit",
            format!("{history_limit} is too large"),
            "use 0 to 1000",
        );
    }
    Some(AgentConfig {
        model: model?,
        system_prompt: d
            .system_prompt
            .clone()
            .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_owned()),
        max_iterations,
        max_tokens,
        stream: d.stream.unwrap_or(true),
        history_limit,
    })
}

fn validate_web_fetch(raw: &RawWebFetchTool, issues: &mut Issues) -> WebFetchToolConfig {
    let mut allow_networks = Vec::new();
    for (i, entry) in raw.allow_networks.iter().enumerate() {
        match entry.parse::<IpCidr>() {
            Ok(net) => allow_networks.push(net),
            Err(e) => issues.add(
                &format!("tools.webFetch.allowNetworks[{i}]"),
                format!("{entry:?} is not a network: {e}"),
                "write an address or a CIDR, e.g. \"10.1.2.0/24\"",
            ),
        }
    }
    let max_bytes = raw.max_bytes.unwrap_or(2 * 1024 * 1024);
    if !(1024..=16 * 1024 * 1024).contains(&max_bytes) {
        issues.add(
            "tools.webFetch.maxBytes",
            format!("{max_bytes} is out of range"),
            "use 1024 to 16777216",
        );
    }
    let timeout_seconds = raw.timeout_seconds.unwrap_or(30);
    if !(1..=120).contains(&timeout_seconds) {
        issues.add(
            "tools.webFetch.timeoutSeconds",
            format!("{timeout_seconds} is out of range"),
            "use 1 to 120 seconds",
        );
    }
    WebFetchToolConfig {
        enabled: raw.enabled.unwrap_or(true),
        allow_networks,
        max_bytes,
        timeout: Duration::from_secs(u64::from(timeout_seconds)),
    }
}

fn validate_executor(raw: &RawConfig, issues: &mut Issues) -> ExecutorConfig {
    let e = &raw.executor;
    let d = &e.docker;
    let absolute = |value: &Option<String>, path: &str, issues: &mut Issues| -> Option<PathBuf> {
        let v = value.as_ref()?;
        let p = Path::new(v);
        if !p.is_absolute() {
            issues.add(
                path,
                format!("{v:?} is not an absolute path"),
                "use an absolute path",
            );
            return None;
        }
        Some(p.to_owned())
    };
    let memory_mb = d.memory_mb.unwrap_or(512);
    if !(16..=65_536).contains(&memory_mb) {
        issues.add(
            "executor.docker.memoryMb",
            format!("{memory_mb} is out of range"),
            "use 16 to 65536",
        );
    }
    let pids_limit = d.pids_limit.unwrap_or(128);
    if !(8..=4096).contains(&pids_limit) {
        issues.add(
            "executor.docker.pidsLimit",
            format!("{pids_limit} is out of range"),
            "use 8 to 4096",
        );
    }
    let cpus = d.cpus.unwrap_or(1.0);
    if !(cpus.is_finite() && (0.05..=64.0).contains(&cpus)) {
        issues.add(
            "executor.docker.cpus",
            format!("{cpus} is out of range"),
            "use 0.05 to 64",
        );
    }
    let reuse = validate_reuse(d, issues);
    ExecutorConfig {
        backend: e.backend.unwrap_or(SandboxBackend::Jail),
        workspace_root: absolute(&e.workspace_root, "executor.workspaceRoot", issues),
        docker: DockerConfig {
            host: d.host.clone(),
            image: d
                .image
                .clone()
                .unwrap_or_else(|| "pincer-sandbox:latest".to_owned()),
            memory_bytes: u64::from(memory_mb) * 1024 * 1024,
            pids_limit,
            // Bounded above, so the cast cannot overflow.
            nano_cpus: (cpus.clamp(0.05, 64.0) * 1e9) as u64,
            host_workspace_root: absolute(
                &d.host_workspace_root,
                "executor.docker.hostWorkspaceRoot",
                issues,
            ),
            reuse,
        },
    }
}

fn validate_reuse(d: &RawDocker, issues: &mut Issues) -> ContainerReuse {
    let idle_seconds = d.session_idle_seconds.unwrap_or(600);
    if !(30..=86_400).contains(&idle_seconds) {
        issues.add(
            "executor.docker.sessionIdleSeconds",
            format!("{idle_seconds} is out of range"),
            "use 30 to 86400 seconds",
        );
    }
    match d.reuse.unwrap_or(DockerReuse::Call) {
        DockerReuse::Call => {
            if let Some(seconds) = d.session_idle_seconds {
                issues.add(
                    "executor.docker.sessionIdleSeconds",
                    format!("{seconds} is set, but executor.docker.reuse is \"call\""),
                    "set executor.docker.reuse to \"session\", or remove sessionIdleSeconds",
                );
            }
            ContainerReuse::PerCall
        }
        DockerReuse::Session => ContainerReuse::PerSession {
            idle: Duration::from_secs(u64::from(idle_seconds)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::{ConfigError, parse_config};

    /// A minimal valid config with `docker` as `executor.docker`.
    fn with_docker(docker: &str) -> Result<Config, ConfigError> {
        let text = format!(
            r#"{{
                models: {{ providers: {{ fake: {{ api: "openai-chat", baseUrl: "http://127.0.0.1:9/v1" }} }} }},
                agents: {{ defaults: {{ model: "fake/m" }} }},
                executor: {{ docker: {docker} }},
            }}"#
        );
        parse_config(&text, "test")
    }

    fn issues(docker: &str) -> Vec<ConfigIssue> {
        match with_docker(docker) {
            Err(ConfigError::Invalid { issues, .. }) => issues,
            other => panic!("expected issues, got {other:?}"),
        }
    }

    #[test]
    fn reuse_defaults_to_one_container_per_call() {
        let config = with_docker("{}").unwrap();
        assert_eq!(config.executor.docker.reuse, ContainerReuse::PerCall);
        let config = with_docker(r#"{ reuse: "call" }"#).unwrap();
        assert_eq!(config.executor.docker.reuse, ContainerReuse::PerCall);
    }

    #[test]
    fn session_reuse_takes_an_idle_timeout() {
        let config = with_docker(r#"{ reuse: "session" }"#).unwrap();
        assert_eq!(
            config.executor.docker.reuse,
            ContainerReuse::PerSession {
                idle: Duration::from_secs(600)
            }
        );
        for (seconds, expected) in [(30, 30), (86_400, 86_400), (900, 900)] {
            let config = with_docker(&format!(
                r#"{{ reuse: "session", sessionIdleSeconds: {seconds} }}"#
            ))
            .unwrap();
            assert_eq!(
                config.executor.docker.reuse,
                ContainerReuse::PerSession {
                    idle: Duration::from_secs(expected)
                }
            );
        }
    }

    #[test]
    fn idle_timeout_out_of_range_is_named() {
        for seconds in [0, 29, 86_401] {
            let found = issues(&format!(
                r#"{{ reuse: "session", sessionIdleSeconds: {seconds} }}"#
            ));
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].path, "executor.docker.sessionIdleSeconds");
            assert!(found[0].problem.contains(&seconds.to_string()), "{found:?}");
            assert_eq!(found[0].fix, "use 30 to 86400 seconds");
        }
    }

    #[test]
    fn idle_timeout_without_session_reuse_is_named() {
        let found = issues(r#"{ sessionIdleSeconds: 120 }"#);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "executor.docker.sessionIdleSeconds");
        assert!(found[0].fix.contains("\"session\""), "{found:?}");
    }

    #[test]
    fn unknown_reuse_mode_is_refused() {
        let err = with_docker(r#"{ reuse: "forever" }"#).unwrap_err();
        assert!(err.to_string().contains("reuse"), "{err}");
    }
}
