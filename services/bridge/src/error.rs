//! [`BridgeError`]: why the bridge could not start. Errors never contain a secret (the bot
//! token, the bridge credential); they name the config key to fix instead.

use pincer_runtime::SecretError;
use pincer_runtime::service_auth::BadCredential;

use crate::telegram::TelegramError;

/// Why the bridge could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// No chat platform is configured.
    #[error(
        "no chat channel is configured for the bridge; set channels.telegram, channels.irc, \
         channels.email or channels.matrix in the config (see docs/channels.md)"
    )]
    NoChannel,
    /// `PINCER_BRIDGE_REPLICA_ID` is too long.
    #[error("PINCER_BRIDGE_REPLICA_ID is {0} bytes long; use at most 128")]
    ReplicaId(usize),
    /// A secret reference could not be resolved.
    #[error("cannot read the {what} ({key}): {source}")]
    Secret {
        /// Which secret.
        what: &'static str,
        /// The config key holding the reference.
        key: String,
        /// Why.
        #[source]
        source: SecretError,
    },
    /// The bridge credential cannot be sent as a header.
    #[error(transparent)]
    Credential(#[from] BadCredential),
    /// `services.gateway.url` is not a usable gRPC endpoint.
    #[error("services.gateway.url {url:?} is not a usable gRPC endpoint: {source}")]
    GatewayUrl {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The Telegram client could not be set up.
    #[error(transparent)]
    Telegram(#[from] TelegramError),
    /// Another platform's adapter could not be set up (bad settings).
    #[error("cannot set up the channel {}", .0)]
    Adapter(#[from] crate::adapter::PlatformError),
    /// An adapter refused its settings.
    #[error("cannot set up a channel adapter: {0}")]
    AdapterSetup(#[source] crate::adapter::AdapterError),
    /// The Telegram webhook settings are unusable.
    #[error(transparent)]
    Webhook(#[from] crate::telegram::WebhookError),
    /// The webhook listener could not be bound.
    #[error(
        "cannot listen for Telegram webhooks on {addr} (channels.telegram.webhook.listen): {source}"
    )]
    WebhookListen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A `caFile` could not be read.
    #[error("cannot read {key} {path:?}: {source}")]
    CaFile {
        /// The config key.
        key: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
