//! The configuration file as written: serde types that reject unknown keys. Defaults live
//! here; meaning and cross-field rules live in [`super::validate`]. The JSON Schema
//! (`pincer config schema`) is generated from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret::SecretRef;

/// The whole `pincer.json5` file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig {
    /// The control plane: operator API, auth, bind address.
    #[serde(default)]
    pub gateway: RawGateway,
    /// How the services find and authenticate each other (gRPC).
    #[serde(default)]
    pub services: RawServices,
    /// LLM providers.
    #[serde(default)]
    pub models: RawModels,
    /// Agent settings.
    #[serde(default)]
    pub agents: RawAgents,
    /// Chat platforms.
    #[serde(default)]
    pub channels: RawChannels,
    /// How chat messages map to sessions.
    #[serde(default)]
    pub session: RawSession,
    /// Tool settings.
    #[serde(default)]
    pub tools: RawTools,
    /// Where and how tools run.
    #[serde(default)]
    pub executor: RawExecutor,
    /// Log output.
    #[serde(default)]
    pub logging: RawLogging,
}

/// `gateway`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGateway {
    /// Operator API port (WebSocket + HTTP).
    #[serde(default = "default_gateway_port")]
    pub port: u16,
    /// `loopback` (127.0.0.1, default), `lan` (0.0.0.0), `tailnet` (this host's Tailscale
    /// address) or `custom` (see `customBindHost`).
    #[serde(default)]
    pub bind: BindMode,
    /// The address to bind when `bind` is `custom`.
    #[serde(default)]
    pub custom_bind_host: Option<String>,
    /// How operator clients authenticate.
    #[serde(default)]
    pub auth: RawGatewayAuth,
    /// Reverse proxies whose forwarding headers are believed (IPs or CIDRs).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The browser control UI.
    #[serde(default)]
    pub control_ui: RawControlUi,
    /// Operator devices.
    #[serde(default)]
    pub devices: RawDevices,
    /// Optional HTTP endpoints.
    #[serde(default)]
    pub http: RawGatewayHttp,
    /// Budget for side-effecting operator calls, per device (WebSocket) or client address
    /// (HTTP API).
    #[serde(default)]
    pub write_rate_limit: RawWriteRateLimit,
}

/// `gateway.writeRateLimit`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawWriteRateLimit {
    /// Calls allowed back to back (default 20).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Sustained calls per minute (default 120).
    #[serde(default)]
    pub per_minute: Option<u32>,
}

impl Default for RawGateway {
    fn default() -> Self {
        Self {
            port: default_gateway_port(),
            bind: BindMode::default(),
            custom_bind_host: None,
            auth: RawGatewayAuth::default(),
            trusted_proxies: Vec::new(),
            control_ui: RawControlUi::default(),
            devices: RawDevices::default(),
            http: RawGatewayHttp::default(),
            write_rate_limit: RawWriteRateLimit::default(),
        }
    }
}

fn default_gateway_port() -> u16 {
    18789
}

/// `gateway.bind`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    /// 127.0.0.1 only.
    #[default]
    Loopback,
    /// All interfaces (0.0.0.0).
    Lan,
    /// The host's Tailscale address (100.64.0.0/10 or fd7a:115c:a1e0::/48).
    Tailnet,
    /// `gateway.customBindHost`.
    Custom,
}

/// `gateway.auth`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGatewayAuth {
    /// `token` (default), `password`, or `none` (loopback bind only).
    #[serde(default)]
    pub mode: AuthMode,
    /// The operator token (at least 32 characters) for `mode: "token"`.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// The Argon2id hash (PHC string) of the password for `mode: "password"`;
    /// `pincer gateway hash-password` makes one.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Failed-authentication limits.
    #[serde(default)]
    pub rate_limit: RawAuthRateLimit,
}

/// `gateway.auth.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// A bearer token shared with operator clients.
    #[default]
    Token,
    /// A password, stored only as an Argon2id hash.
    Password,
    /// No shared secret (device identity still applies); refused unless bound to loopback.
    None,
}

/// `gateway.auth.rateLimit`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAuthRateLimit {
    /// Failures allowed per client address and credential kind within the window (default 10).
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// The window in seconds (default 60).
    #[serde(default)]
    pub window_seconds: Option<u32>,
    /// How long a locked-out address waits, in seconds (default 300).
    #[serde(default)]
    pub lockout_seconds: Option<u32>,
}

/// `gateway.controlUi`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawControlUi {
    /// Browser origins (besides the gateway's own) allowed to connect, e.g.
    /// `https://pincer.example.ts.net`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// `gateway.devices`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDevices {
    /// Approve new devices on this host automatically (loopback, no forwarding headers).
    /// Default true.
    #[serde(default)]
    pub auto_approve_local: Option<bool>,
}

/// `gateway.http`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGatewayHttp {
    /// OpenAI-compatible endpoints.
    #[serde(default)]
    pub endpoints: RawHttpEndpoints,
}

/// `gateway.http.endpoints`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpEndpoints {
    /// `POST /v1/chat/completions` and `GET /v1/models`.
    #[serde(default)]
    pub chat_completions: RawEndpointToggle,
}

/// An optional endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEndpointToggle {
    /// Serve it (default false).
    #[serde(default)]
    pub enabled: bool,
}

/// `services`: the private gRPC mesh.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawServices {
    /// The gateway's gRPC endpoint (bridges and agents call it).
    #[serde(default)]
    pub gateway: RawEndpoint,
    /// The agent's gRPC endpoint (the gateway calls it).
    #[serde(default)]
    pub agent: RawEndpoint,
    /// The executor's gRPC endpoint (agents call it).
    #[serde(default)]
    pub executor: RawEndpoint,
    /// Per-service credentials: each service presents its own when it calls another.
    #[serde(default)]
    pub credentials: RawCredentials,
}

/// One service's gRPC endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEndpoint {
    /// Socket address the service listens on, e.g. `127.0.0.1:18790`.
    #[serde(default)]
    pub listen: Option<String>,
    /// URL other services dial, e.g. `http://gateway:18790`.
    #[serde(default)]
    pub url: Option<String>,
}

/// `services.credentials`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCredentials {
    /// Presented by the gateway (to agents).
    #[serde(default)]
    pub gateway: Option<SecretRef>,
    /// Presented by bridges (to the gateway).
    #[serde(default)]
    pub bridge: Option<SecretRef>,
    /// Presented by agents (to the gateway and executors).
    #[serde(default)]
    pub agent: Option<SecretRef>,
    /// Presented by executors (to the gateway).
    #[serde(default)]
    pub executor: Option<SecretRef>,
}

/// `models`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawModels {
    /// Providers by id; `agents.defaults.model` names one as `<id>/<model>`.
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
}

/// `models.providers.<id>`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawProvider {
    /// The wire API the provider speaks.
    pub api: ProviderApi,
    /// Base URL, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com/v1`.
    pub base_url: String,
    /// The provider's API key.
    #[serde(default)]
    pub api_key: Option<SecretRef>,
}

/// `models.providers.<id>.api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ProviderApi {
    /// OpenAI Chat Completions (`POST {baseUrl}/chat/completions`).
    #[serde(rename = "openai-chat")]
    OpenAiChat,
    /// OpenAI Responses (`POST {baseUrl}/responses`).
    #[serde(rename = "openai-responses")]
    OpenAiResponses,
    /// Anthropic Messages (`POST {baseUrl}/messages`).
    #[serde(rename = "anthropic")]
    Anthropic,
}

/// `agents`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAgents {
    /// Settings every agent starts from.
    #[serde(default)]
    pub defaults: RawAgentDefaults,
}

/// `agents.defaults`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAgentDefaults {
    /// `<provider id>/<model name>`, e.g. `anthropic/claude-sonnet-4-5`.
    #[serde(default)]
    pub model: Option<String>,
    /// The system prompt.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Most model calls in one turn (default 8).
    #[serde(default)]
    pub max_iterations: Option<u32>,
    /// Most output tokens per model call (default 1024).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Stream model output (default true).
    #[serde(default)]
    pub stream: Option<bool>,
    /// Messages of history sent to the model (default 40).
    #[serde(default)]
    pub history_limit: Option<u32>,
}

pub use super::raw_channels::{
    DmPolicy, GroupPolicy, MailSecurity, RawChannels, RawEmail, RawGroup, RawImap, RawIrc,
    RawMatrix, RawSasl, RawSmtp, RawTelegram, RawTelegramAccount, RawTelegramWebhook,
};

/// `session`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSession {
    /// How DMs map to sessions: `main` (default: the owner's DMs share one main session,
    /// everyone else one session per person), `per-peer` (one session per person, across
    /// channels) or `per-channel-peer` (one per person per channel account).
    #[serde(default)]
    pub dm_scope: Option<DmScope>,
    /// One person's accounts, merged into one identity: name → `["<channel>:<user id>", …]`,
    /// e.g. `{ alice: ["telegram:123456"] }`. Different people never share a session
    /// unless linked here.
    #[serde(default)]
    pub identity_links: BTreeMap<String, Vec<String>>,
}

/// `session.dmScope`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DmScope {
    /// The owner's DMs go to the main session; everyone else gets a session per person.
    #[default]
    Main,
    /// One session per person (linked accounts share it), across channels.
    PerPeer,
    /// One session per person per channel account.
    PerChannelPeer,
}

/// `tools`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTools {
    /// The `exec` tool.
    #[serde(default)]
    pub exec: RawExecTool,
    /// The workspace file tools (`read_file`, `write_file`, `edit_file`, `apply_patch`,
    /// `list_dir`).
    #[serde(default)]
    pub files: RawFilesTool,
    /// The `web_fetch` tool.
    #[serde(default)]
    pub web_fetch: RawWebFetchTool,
}

/// `tools.files`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFilesTool {
    /// Offer the file tools to the model (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `tools.webFetch`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawWebFetchTool {
    /// Offer `web_fetch` to the model (default true). Every fetch goes through the SSRF guard.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Networks exempted from the guard's block lists (CIDRs, e.g. an intranet
    /// `10.1.2.0/24`). Default none. Metadata addresses stay blocked.
    #[serde(default)]
    pub allow_networks: Vec<String>,
    /// Most bytes read of a response body (default 2097152, at most 16777216).
    #[serde(default)]
    pub max_bytes: Option<u32>,
    /// Whole-fetch time limit in seconds, redirects included (default 30, at most 120).
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
}

/// `tools.exec.security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecSecurityLevel {
    /// Nothing runs.
    Deny,
    /// Only allowlisted executables and safe bins (others per `ask`).
    Allowlist,
    /// Anything runs (inside the sandbox).
    Full,
}

/// `tools.exec.ask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExecAskMode {
    /// Never ask; what is not allowed is denied.
    Off,
    /// Ask the owner when the allowlist does not cover a command.
    OnMiss,
    /// Ask the owner for every command.
    Always,
}

/// `tools.exec`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExecTool {
    /// Offer `exec` to the model (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Default wall-clock limit per call in seconds (default 30, at most 600).
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
    /// Most bytes kept of stdout and of stderr each (default 65536).
    #[serde(default)]
    pub max_output_bytes: Option<u32>,
    /// `deny`, `allowlist` or `full` (default `full`: the sandbox is the boundary).
    #[serde(default)]
    pub security: Option<ExecSecurityLevel>,
    /// `off` (default), `on-miss` or `always`: when the owner is asked to approve a command.
    #[serde(default)]
    pub ask: Option<ExecAskMode>,
    /// What applies when the owner does not answer in time: `deny` (default), `allowlist`
    /// or `full`.
    #[serde(default)]
    pub ask_fallback: Option<ExecSecurityLevel>,
    /// Globs over resolved absolute executable paths (`/usr/bin/git`, `/usr/local/bin/*`,
    /// `/opt/tools/**`) that run under `security: "allowlist"`.
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// Let stdin-only filters (`cut uniq head tail tr wc`) run without allowlist entries,
    /// within their flag profiles (default true).
    #[serde(default)]
    pub safe_bins: Option<bool>,
    /// How long an exec call waits for the owner's answer before `askFallback` applies
    /// (default 120 s, 1 to 600). The request itself stays open 30 min.
    #[serde(default)]
    pub approval_timeout_seconds: Option<u32>,
    /// What sandboxed commands (`exec`, `process`) may reach: `none` (default) or
    /// `egress` (the web through the executor's guarded proxy, the same SSRF guard as
    /// `web_fetch`; DMs and the operator only, never groups).
    #[serde(default)]
    pub network: Option<ExecNetwork>,
    /// The only ports commands may reach through the guarded proxy (default 80 and 443).
    #[serde(default)]
    pub egress_ports: Option<Vec<u16>>,
    /// `session` (default): a session's commands may share the session's sandbox where the
    /// executor keeps one (`executor.docker.reuse: "session"`); `call`: every command gets
    /// a throwaway sandbox, whatever the executor offers.
    #[serde(default)]
    pub sandbox_scope: Option<ExecSandboxScope>,
}

/// `tools.exec.sandboxScope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExecSandboxScope {
    /// A throwaway sandbox per call.
    Call,
    /// The session's sandbox where the executor keeps one.
    Session,
}

/// `tools.exec.network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExecNetwork {
    /// No network at all.
    None,
    /// HTTP(S) through the guarded proxy only.
    Egress,
}

/// `executor`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExecutor {
    /// Sandbox backend: `jail` (default: Landlock + seccomp + rlimits on this host, no
    /// Docker) or `docker` (a throwaway container per call; what the compose stack uses).
    #[serde(default)]
    pub backend: Option<SandboxBackend>,
    /// Host directory holding each agent's workspace (default `<state dir>/workspaces`).
    #[serde(default)]
    pub workspace_root: Option<String>,
    /// The Docker backend.
    #[serde(default)]
    pub docker: RawDocker,
}

/// `executor.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SandboxBackend {
    /// One throwaway container per call.
    Docker,
    /// A kernel-enforced jail on this host.
    Jail,
}

/// `executor.docker`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDocker {
    /// Docker endpoint (default `unix:///var/run/docker.sock`, or `DOCKER_HOST`).
    #[serde(default)]
    pub host: Option<String>,
    /// Sandbox image (default `pincer-sandbox:latest`).
    #[serde(default)]
    pub image: Option<String>,
    /// Memory limit in MiB, swap included (default 512).
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Most processes per container (default 128).
    #[serde(default)]
    pub pids_limit: Option<u32>,
    /// CPU limit (default 1.0).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Workspace path as the Docker engine sees it, when it differs from `workspaceRoot`
    /// (the executor runs in a container and the engine on the host).
    #[serde(default)]
    pub host_workspace_root: Option<String>,
    /// `call` (default: a throwaway container per call) or `session` (one container per
    /// session and workspace access, reused by the session's calls through `docker exec`).
    #[serde(default)]
    pub reuse: Option<DockerReuse>,
    /// With `reuse: "session"`: seconds without a call after which a session's container
    /// is removed (default 600, 30 to 86400).
    #[serde(default)]
    pub session_idle_seconds: Option<u32>,
}

/// `executor.docker.reuse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DockerReuse {
    /// One throwaway container per call.
    Call,
    /// One container per session (and workspace access), removed when idle.
    Session,
}

/// `logging`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLogging {
    /// `error`, `warn`, `info` (default), `debug` or `trace`, or a tracing filter.
    #[serde(default)]
    pub level: Option<String>,
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: Option<LogFormat>,
}

/// `logging.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
