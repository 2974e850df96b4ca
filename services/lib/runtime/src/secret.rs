//! Secrets by reference: a config value is either the secret itself, an `${ENV_VAR}`
//! reference or `{ "file": "/run/secrets/x" }`. References are resolved only by the
//! service that needs the secret, through a [`SecretSource`] so tests can pass a map.
//! A resolved [`Secret`] never prints its value (`Debug` and `Display` redact it).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// A secret as written in the config file (not yet resolved).
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SecretRef {
    /// `"${NAME}"` reads environment variable `NAME`; any other string is the secret itself.
    Value(String),
    /// Read the secret from a file (e.g. a Docker secret); surrounding whitespace is trimmed.
    File {
        /// Absolute path of the file holding the secret.
        file: PathBuf,
    },
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            SecretKind::Inline => f.write_str("SecretRef::Inline(<redacted>)"),
            SecretKind::Env(name) => write!(f, "SecretRef::Env({name})"),
            SecretKind::File(path) => write!(f, "SecretRef::File({})", path.display()),
        }
    }
}

/// What a [`SecretRef`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind<'a> {
    /// The value is written in the config.
    Inline,
    /// The value is in this environment variable.
    Env(&'a str),
    /// The value is in this file.
    File(&'a Path),
}

impl SecretRef {
    /// An environment variable reference, as `${NAME}` would give.
    pub fn env(name: &str) -> Self {
        Self::Value(format!("${{{name}}}"))
    }

    /// Classifies the reference.
    pub fn kind(&self) -> SecretKind<'_> {
        match self {
            Self::File { file } => SecretKind::File(file),
            Self::Value(v) => match env_reference(v) {
                Some(name) => SecretKind::Env(name),
                None => SecretKind::Inline,
            },
        }
    }

    /// Resolves the reference through `source`.
    pub fn resolve(&self, source: &dyn SecretSource) -> Result<Secret, SecretError> {
        let value = match self {
            Self::File { file } => source.read_file(file)?,
            Self::Value(v) => match env_reference(v) {
                Some(name) => source.env(name)?,
                None => v.clone(),
            },
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(SecretError::Empty {
                reference: self.describe(),
            });
        }
        Ok(Secret::new(value))
    }

    /// A description safe to print (never the value).
    pub fn describe(&self) -> String {
        match self.kind() {
            SecretKind::Inline => "an inline value".to_owned(),
            SecretKind::Env(name) => format!("environment variable {name}"),
            SecretKind::File(path) => format!("file {}", path.display()),
        }
    }
}

/// `${NAME}` with NAME made of `[A-Za-z_][A-Za-z0-9_]*`.
fn env_reference(value: &str) -> Option<&str> {
    let name = value.strip_prefix("${")?.strip_suffix('}')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(name)
}

/// A resolved secret. Its value is reachable only through [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret value. Call only where the value is used (a header, a comparison).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Constant-time comparison with a presented value.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.expose().as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a secret could not be resolved. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable {name} is not set; export it or change the reference")]
    MissingEnv {
        /// The variable's name.
        name: String,
    },
    /// The file could not be read.
    #[error("cannot read secret file {path}: {source}; create it (mode 0600) or fix the path")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The value is empty.
    #[error("the secret from {reference} is empty; set a value")]
    Empty {
        /// Where the value came from.
        reference: String,
    },
}

/// Where secret references are resolved: the process environment and the file system in
/// production, a map in tests.
pub trait SecretSource: Send + Sync {
    /// The value of environment variable `name`.
    fn env(&self, name: &str) -> Result<String, SecretError>;
    /// The contents of `path`.
    fn read_file(&self, path: &Path) -> Result<String, SecretError>;
}

/// The process environment and the real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessSecrets;

impl SecretSource for ProcessSecrets {
    fn env(&self, name: &str) -> Result<String, SecretError> {
        std::env::var(name).map_err(|_| SecretError::MissingEnv {
            name: name.to_owned(),
        })
    }

    fn read_file(&self, path: &Path) -> Result<String, SecretError> {
        std::fs::read_to_string(path).map_err(|source| SecretError::File {
            path: path.to_owned(),
            source,
        })
    }
}

/// Secrets from maps, for tests.
#[derive(Debug, Default, Clone)]
pub struct MapSecrets {
    /// Environment variables.
    pub env: HashMap<String, String>,
    /// Files by path.
    pub files: HashMap<PathBuf, String>,
}

impl SecretSource for MapSecrets {
    fn env(&self, name: &str) -> Result<String, SecretError> {
        self.env
            .get(name)
            .cloned()
            .ok_or_else(|| SecretError::MissingEnv {
                name: name.to_owned(),
            })
    }

    fn read_file(&self, path: &Path) -> Result<String, SecretError> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| SecretError::File {
                path: path.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_reference_is_recognised_only_in_full_form() {
        assert_eq!(env_reference("${TOKEN_1}"), Some("TOKEN_1"));
        assert_eq!(env_reference("${1BAD}"), None);
        assert_eq!(env_reference("x${TOKEN}"), None);
        assert_eq!(env_reference("${}"), None);
        assert_eq!(env_reference("${A-B}"), None);
    }

    #[test]
    fn resolves_inline_env_and_file() {
        let mut source = MapSecrets::default();
        source.env.insert("TOK".into(), "from-env".into());
        source
            .files
            .insert("/run/secrets/x".into(), "from-file\n".into());
        let inline = SecretRef::Value("literal".into());
        assert_eq!(inline.resolve(&source).unwrap().expose(), "literal");
        assert_eq!(
            SecretRef::env("TOK").resolve(&source).unwrap().expose(),
            "from-env"
        );
        let file = SecretRef::File {
            file: "/run/secrets/x".into(),
        };
        assert_eq!(file.resolve(&source).unwrap().expose(), "from-file");
    }

    #[test]
    fn missing_and_empty_secrets_are_errors_that_do_not_leak() {
        let source = MapSecrets::default();
        let err = SecretRef::env("NOPE").resolve(&source).unwrap_err();
        assert!(err.to_string().contains("NOPE"));
        let err = SecretRef::Value("   ".into()).resolve(&source).unwrap_err();
        assert!(matches!(err, SecretError::Empty { .. }));
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("canary-7f3a");
        assert!(!format!("{secret:?} {secret}").contains("canary"));
        let reference = SecretRef::Value("canary-7f3a".into());
        assert!(!format!("{reference:?}").contains("canary"));
        assert!(!reference.describe().contains("canary"));
    }

    #[test]
    fn constant_time_match() {
        let secret = Secret::new("abc");
        assert!(secret.matches(b"abc"));
        assert!(!secret.matches(b"abd"));
        assert!(!secret.matches(b"ab"));
    }
}
