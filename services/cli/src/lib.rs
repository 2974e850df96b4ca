//! The `pincer` command-line tool.
//!
//! | module | command |
//! |---|---|
//! | [`cli`] | argument definitions (clap) |
//! | [`up`] | `pincer up`: runs the four services (and, with `--demo`, the fakes) as local processes |
//! | [`onboard`] | first-start configs: a template for real use, a ready demo config |
//! | [`chat`] | `pincer chat`: one message or an interactive chat over the operator API |
//! | [`gateway_client`] | the operator WebSocket client |
//! | [`device`] | this client's device key and device token |
//! | [`operator_cmd`] | `pincer gateway probe`, `pincer status`, `pincer health`, `pincer devices …` |
//! | [`channels_cmd`] | `pincer channels status`: which bridge replica serves each account |
//! | [`pairing_cmd`] | `pincer pairing list|approve|reject|revoke`: chat senders' pairing codes |
//! | [`config_cmd`] | `pincer config schema|validate` |
//! | [`sandbox_cmd`] | `pincer sandbox exec|explain`: the jail and Docker backends from the command line |
//! | [`web_cmd`] | `pincer web fetch`: the SSRF-guarded web fetch |
//! | [`context`] | state dir, config path and profile resolution |

pub mod channels_cmd;
pub mod chat;
pub mod cli;
pub mod config_cmd;
pub mod context;
pub mod device;
pub mod gateway_client;
pub mod onboard;
pub mod operator_cmd;
pub mod pairing_cmd;
pub mod sandbox_cmd;
pub mod up;
pub mod web_cmd;

use std::process::ExitCode;

use cli::{Cli, Command, ConfigCommand, GatewayCommand};

/// Why a command failed. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Config problem.
    #[error(transparent)]
    Config(#[from] pincer_runtime::ConfigError),
    /// State dir problem.
    #[error(transparent)]
    Path(#[from] pincer_runtime::paths::PathError),
    /// A secret could not be resolved.
    #[error("{what}: {source}")]
    Secret {
        /// Which.
        what: String,
        /// Why.
        source: pincer_runtime::SecretError,
    },
    /// Talking to the gateway failed.
    #[error(transparent)]
    Gateway(#[from] gateway_client::ClientError),
    /// The device key or token file is unusable.
    #[error("device identity: {0}")]
    Identity(String),
    /// Running the stack failed.
    #[error("{0}")]
    Up(String),
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The web fetch failed or was refused; the message names the rule.
    #[error(transparent)]
    Web(#[from] pincer_egress::EgressError),
}

/// Runs a parsed command.
pub async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    let ctx = context::Context::resolve(&cli.global)?;
    match cli.command {
        Command::Up(args) => up::run(&ctx, &args).await,
        Command::Chat(args) => chat::run(&ctx, &args).await,
        Command::Config {
            command: ConfigCommand::Schema,
        } => {
            println!("{}", pincer_runtime::config::schema_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Validate,
        } => config_cmd::validate(&ctx),
        Command::Gateway {
            command: GatewayCommand::HashPassword,
        } => config_cmd::hash_password(),
        Command::Gateway {
            command: GatewayCommand::Probe(op),
        } => operator_cmd::probe(&ctx, &op).await,
        Command::Status(op) => operator_cmd::status(&ctx, &op).await,
        Command::Health(op) => operator_cmd::health(&ctx, &op).await,
        Command::Devices { command } => operator_cmd::devices(&ctx, &command).await,
        Command::Approvals { command } => operator_cmd::approvals(&ctx, &command).await,
        Command::Pairing { command } => pairing_cmd::run(&ctx, &command).await,
        Command::Channels { command } => channels_cmd::run(&ctx, &command).await,
        Command::Sandbox { command } => sandbox_cmd::run(command).await,
        Command::Web { command } => web_cmd::run(&command).await,
    }
}
