//! Tracing setup shared by every binary: logs to stderr, text or JSON, filtered by
//! `RUST_LOG` or the configured level.

use crate::config::raw::LogFormat;

/// Installs the global subscriber. Calling it twice is harmless (the second is ignored).
pub fn init_tracing(level: &str, format: LogFormat, service: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if result.is_ok() {
        tracing::debug!(service, "tracing initialised");
    }
}
