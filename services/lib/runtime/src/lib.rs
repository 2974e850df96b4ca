//! Shared runtime for Pincer's services. Small on purpose: only what every service needs.
//!
//! | module | what |
//! |---|---|
//! | [`bootstrap`] | what every service `main` does: args, config, tracing, signals |
//! | [`cidr`] | IP networks (`trustedProxies`), `::ffff:` normalisation |
//! | [`config`] | the JSON5 config: raw types (unknown keys rejected), validation, schema |
//! | [`secret`] | secrets by reference (`${ENV}`, `{file}`), redacted `Secret` |
//! | [`net`] | accepting gRPC connections (TCP_NODELAY) |
//! | [`paths`] | state directory, 0700/0600 permissions |
//! | [`service_auth`] | per-service gRPC credentials (client and server interceptors) |
//! | [`shutdown`] | signal → cancellation token |
//! | [`telemetry`] | tracing setup |

pub mod bootstrap;
pub mod cidr;
pub mod config;
pub mod net;
pub mod paths;
pub mod secret;
pub mod service_auth;
pub mod shutdown;
pub mod telemetry;

pub use config::{Config, ConfigError};
pub use secret::{ProcessSecrets, Secret, SecretError, SecretRef, SecretSource};
