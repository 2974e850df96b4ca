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
    /// Inspect the configuration.
    Config {
        /// Which.
        #[command(subcommand)]
        command: ConfigCommand,
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

/// `pincer gateway`.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum GatewayCommand {
    /// Read a password from standard input (one line) and print its Argon2id hash for
    /// `gateway.auth.passwordHash`.
    HashPassword,
}

/// `pincer config`.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ConfigCommand {
    /// Print the JSON Schema of the config file.
    Schema,
    /// Check the config file and the secrets it references.
    Validate,
}
