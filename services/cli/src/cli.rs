//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Pincer: a self-hosted personal AI assistant.
#[derive(Debug, Parser)]
#[command(name = "pincer", version, about)]
pub struct Cli {
    /// Options for every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options for every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Config file (default: <state dir>/pincer.json5).
    #[arg(long, global = true, env = "PINCER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Use ~/.pincer-NAME as the state directory.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// The demo: the `demo` profile, with a fake LLM and a fake Telegram (no keys needed).
    #[arg(long, global = true)]
    pub demo: bool,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway, agent, executor and bridge as local processes until Ctrl-C.
    Up(UpArgs),
    /// Chat with the assistant through the gateway.
    Chat(ChatArgs),
    /// Gateway utilities.
    Gateway {
        /// Which.
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// Paired operator devices and nodes: list, approve, reject, revoke, rotate tokens.
    Devices {
        /// Which.
        #[command(subcommand)]
        command: DevicesCommand,
    },
    /// Exec approvals: list the requests, allow or deny one.
    Approvals {
        /// Which.
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Chat senders: list pairing requests, approve or reject a stranger's code.
    Pairing {
        /// Which.
        #[command(subcommand)]
        command: crate::pairing_cmd::PairingCommand,
    },
    /// Channel accounts: which bridge replica serves each, traffic and errors.
    Channels {
        /// Which.
        #[command(subcommand)]
        command: crate::channels_cmd::ChannelsCommand,
    },
    /// Gateway status: version, uptime, sessions, bridges, devices.
    Status(OperatorArgs),
    /// Gateway health: queues and bridges; exits non-zero if unhealthy or unreachable.
    Health(OperatorArgs),
    /// Run a command in a sandbox as the exec tool does, or explain what the jail enforces.
    Sandbox {
        /// Which.
        #[command(subcommand)]
        command: crate::sandbox_cmd::SandboxCommand,
    },
    /// Inspect the configuration.
    Config {
        /// Which.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The SSRF-guarded web fetch (see docs/egress.md).
    Web {
        /// Which.
        #[command(subcommand)]
        command: WebCommand,
    },
}

/// `pincer up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Directory holding the service binaries (default: the directory of `pincer`).
    #[arg(long, env = "PINCER_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// `pincer chat`.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// Send this message, print the reply and exit (default: interactive).
    #[arg(short, long)]
    pub message: Option<String>,
    /// Operator session name.
    #[arg(long, default_value = "main")]
    pub session: String,
    /// Gateway WebSocket URL (default: from the config).
    #[arg(long)]
    pub url: Option<String>,
    /// Seconds to wait for a reply.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// Options of commands that talk to the gateway.
#[derive(Debug, Clone, Args)]
pub struct OperatorArgs {
    /// Gateway WebSocket URL (default: from the config).
    #[arg(long)]
    pub url: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `pincer gateway`.
#[derive(Debug, Clone, Subcommand)]
pub enum GatewayCommand {
    /// Read a password from standard input (one line) and print its Argon2id hash for
    /// `gateway.auth.passwordHash`.
    HashPassword,
    /// Connect, authenticate, and report the protocol version and latency.
    Probe(OperatorArgs),
}

/// `pincer devices`.
#[derive(Debug, Clone, Subcommand)]
pub enum DevicesCommand {
    /// Every device: pending, approved, rejected, revoked.
    List(OperatorArgs),
    /// Approve a pending device (optionally with fewer scopes than it asked for).
    Approve {
        /// The device id (from `pincer devices list`).
        device_id: String,
        /// Scopes to grant, comma-separated (default: those requested).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// Connection options.
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Reject a pending device.
    Reject {
        /// The device id.
        device_id: String,
        /// Connection options.
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Revoke a paired device; its connections are closed and its token stops working.
    Revoke {
        /// The device id.
        device_id: String,
        /// Connection options.
        #[command(flatten)]
        op: OperatorArgs,
    },
    /// Replace a device's token (optionally with fewer scopes); the old token stops working.
    Rotate {
        /// The device id.
        device_id: String,
        /// Scopes of the new token, comma-separated (default: all approved).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// Connection options.
        #[command(flatten)]
        op: OperatorArgs,
    },
}

/// `pincer approvals`.
#[derive(Debug, Clone, Subcommand)]
pub enum ApprovalsCommand {
    /// Every approval request: pending, decided, used, expired.
    List(OperatorArgs),
    /// Decide one request.
    Resolve {
        /// The approval id (from `pincer approvals list`).
        id: String,
        /// `allow-once` (this call only), `allow-always` (this exact call from now on) or
        /// `deny` (also revokes an allow-always).
        #[arg(value_enum)]
        decision: ApprovalDecision,
        /// Connection options.
        #[command(flatten)]
        op: OperatorArgs,
    },
}

/// The owner's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApprovalDecision {
    /// Run this call once.
    AllowOnce,
    /// Run this exact call (same command, cwd, environment, executables) from now on.
    AllowAlways,
    /// Do not run it.
    Deny,
}

impl ApprovalDecision {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllowOnce => "allow-once",
            Self::AllowAlways => "allow-always",
            Self::Deny => "deny",
        }
    }
}

/// `pincer config`.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ConfigCommand {
    /// Print the JSON Schema of the config file.
    Schema,
    /// Check the config file and the secrets it references.
    Validate,
}

/// `pincer web`.
#[derive(Debug, Clone, Subcommand)]
pub enum WebCommand {
    /// Fetch a URL under the outbound-web policy and print it as text. Private, loopback,
    /// link-local (cloud metadata) and other internal addresses are refused.
    Fetch(WebFetchArgs),
}

/// `pincer web fetch`.
#[derive(Debug, Clone, Args)]
pub struct WebFetchArgs {
    /// The http:// or https:// URL.
    pub url: String,
    /// Largest body accepted, in bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    pub max_bytes: usize,
    /// Re-allow a blocked network (repeatable), e.g. 127.0.0.1/32 for a local test server.
    #[arg(long = "allow-network", value_name = "CIDR")]
    pub allow_network: Vec<pincer_runtime::cidr::IpCidr>,
    /// Connect only to loopback addresses, whatever the policy allows (a second lock for
    /// tests: a failing guard cannot send traffic off the machine).
    #[arg(long)]
    pub loopback_only: bool,
}
