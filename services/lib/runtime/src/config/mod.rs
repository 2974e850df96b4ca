//! Configuration: one JSON5 file, read in two stages.
//!
//! - [`raw`]: serde types exactly as written; unknown keys are rejected.
//! - [`validate`]: cross-field rules, producing [`Config`]; every issue names the key path,
//!   the bad value and the fix.
//! - [`gateway`]: the `gateway` section (bind, auth, proxies, origins, limits).
//! - [`channels`]: who may reach the assistant on a channel, and the `session` section.
//! - [`platforms`]: each chat platform's connection settings (Telegram, IRC, e-mail, Matrix).
//! - [`load`]: reading the file (symlinks refused), parsing JSON5, the JSON Schema.

pub mod channels;
pub mod gateway;
pub mod load;
pub mod platforms;
pub mod raw;
mod raw_channels;
pub mod validate;

pub use load::{ConfigError, load_config, parse_config, schema_json};
pub use raw::RawConfig;
pub use validate::{Config, ConfigIssue, TelegramAccountConfig};
