//! Where things are: the state directory (`~/.pincer`, `~/.pincer-<profile>`,
//! `~/.pincer-demo` with `--demo`) and the config file in it.

use std::path::PathBuf;

use crate::CliError;
use crate::cli::GlobalArgs;

/// Resolved locations.
#[derive(Debug, Clone)]
pub struct Context {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The config file.
    pub config_path: PathBuf,
    /// Demo mode.
    pub demo: bool,
}

impl Context {
    /// Resolves `--profile`, `--demo` and `--config`.
    pub fn resolve(args: &GlobalArgs) -> Result<Self, CliError> {
        let profile = match (&args.profile, args.demo) {
            (Some(p), true) if p != "demo" => {
                return Err(CliError::Up(format!(
                    "--demo uses the profile \"demo\"; drop --profile {p}"
                )));
            }
            (_, true) => Some("demo"),
            (p, false) => p.as_deref(),
        };
        let state_dir = pincer_runtime::paths::state_dir(profile)?;
        let config_path = args
            .config
            .clone()
            .unwrap_or_else(|| state_dir.join("pincer.json5"));
        Ok(Self {
            state_dir,
            config_path,
            demo: args.demo,
        })
    }
}
