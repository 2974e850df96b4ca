//! Reading and parsing `pincer.json5`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::raw::RawConfig;
use super::validate::{Config, ConfigIssue, validate};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The path is a symbolic link (refused so a config cannot be swapped underneath).
    #[error("config file {path} is a symbolic link; point --config at the real file")]
    Symlink {
        /// The file.
        path: PathBuf,
    },
    /// Not valid JSON5.
    #[error("{origin}: not valid JSON5: {message}")]
    Syntax {
        /// Where the text came from.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key is unknown or a value has the wrong type.
    #[error("{origin}: {path}: {message} (fix: {fix})")]
    Shape {
        /// Where the text came from.
        origin: String,
        /// Key path.
        path: String,
        /// What serde reported.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// The values break rules.
    #[error("{origin}: invalid configuration:\n{}", Issues(.issues))]
    Invalid {
        /// Where the text came from.
        origin: String,
        /// Every problem found.
        issues: Vec<ConfigIssue>,
    },
}

struct Issues<'a>(&'a [ConfigIssue]);

impl fmt::Display for Issues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {issue}")?;
        }
        Ok(())
    }
}

/// Reads, parses and validates the file at `path`.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    let meta = std::fs::symlink_metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(ConfigError::Symlink {
            path: path.to_owned(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_config(&text, &path.display().to_string())
}

/// Parses and validates JSON5 text; `origin` names it in errors.
pub fn parse_config(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let raw = parse_raw(text, origin)?;
    validate(raw).map_err(|issues| ConfigError::Invalid {
        origin: origin.to_owned(),
        issues,
    })
}

/// Parses JSON5 text into the raw types without validating.
pub fn parse_raw(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    let value: serde_json::Value = json5::from_str(text).map_err(|e| ConfigError::Syntax {
        origin: origin.to_owned(),
        message: e.to_string(),
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let fix = if message.starts_with("unknown field") {
            "remove the key or correct its spelling; `pincer config schema` lists every key"
        } else if message.starts_with("unknown variant") {
            "use one of the listed values"
        } else if message.starts_with("missing field") {
            "add the missing key"
        } else {
            "check the value's type against `pincer config schema`"
        };
        ConfigError::Shape {
            origin: origin.to_owned(),
            path,
            message,
            fix: fix.to_owned(),
        }
    })
}

/// The JSON Schema of the configuration file, generated from the raw types.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(RawConfig);
    serde_json::to_string_pretty(&schema).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
