//! What every service binary does before `run`: parse `--config`, load and validate the
//! config, start tracing and turn SIGTERM/SIGINT into a cancellation token.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let started = pincer_runtime::bootstrap::start("agent")?;
//! // bind config.services.agent.listen, then: my_service::run(started.config, listener, started.shutdown).await
//! # Ok(()) }
//! ```

use std::path::PathBuf;

use crate::config::{Config, ConfigError, load_config};
use crate::shutdown::{CancellationToken, cancel_on_signal};
use crate::telemetry::init_tracing;

/// Command-line arguments shared by the service binaries.
#[derive(Debug, Clone)]
pub struct ServiceArgs {
    /// The config file.
    pub config: PathBuf,
    /// The state directory (for services that keep state).
    pub state_dir: Option<PathBuf>,
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Bad arguments.
    #[error("{0}\nusage: pincer-<service> --config PATH [--state-dir DIR]")]
    Usage(String),
    /// The config is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl ServiceArgs {
    /// Parses `--config PATH [--state-dir DIR]` (or `PINCER_CONFIG` / `PINCER_STATE_DIR`).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, BootstrapError> {
        let mut config = std::env::var_os("PINCER_CONFIG").map(PathBuf::from);
        let mut state_dir = std::env::var_os("PINCER_STATE_DIR").map(PathBuf::from);
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .ok_or_else(|| BootstrapError::Usage(format!("{name} needs a value")))
            };
            match arg.as_str() {
                "--config" => config = Some(PathBuf::from(value("--config")?)),
                "--state-dir" => state_dir = Some(PathBuf::from(value("--state-dir")?)),
                other => return Err(BootstrapError::Usage(format!("unknown argument {other:?}"))),
            }
        }
        let config = config.ok_or_else(|| {
            BootstrapError::Usage("no config file: pass --config or set PINCER_CONFIG".to_owned())
        })?;
        Ok(Self { config, state_dir })
    }
}

/// A started service process.
#[derive(Debug)]
pub struct Started {
    /// The validated config.
    pub config: Config,
    /// The parsed arguments.
    pub args: ServiceArgs,
    /// Cancelled on SIGTERM/SIGINT.
    pub shutdown: CancellationToken,
}

/// Parses the process arguments, loads the config, starts tracing and the signal watcher.
/// Must be called inside a Tokio runtime.
pub fn start(service: &str) -> Result<Started, BootstrapError> {
    let args = ServiceArgs::parse(std::env::args().skip(1))?;
    let config = load_config(&args.config)?;
    init_tracing(&config.logging.level, config.logging.format, service);
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    Ok(Started {
        config,
        args,
        shutdown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arguments() {
        let args = ServiceArgs::parse(["--config".to_owned(), "/x.json5".to_owned()]).unwrap();
        assert_eq!(args.config, PathBuf::from("/x.json5"));
        assert!(ServiceArgs::parse(["--bogus".to_owned()]).is_err());
        assert!(ServiceArgs::parse(["--config".to_owned()]).is_err());
    }
}
