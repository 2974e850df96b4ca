//! The public entry points: [`run`] (from the config, as `main` does) and [`Bridge`] (with
//! already-resolved secrets and chosen adapters, as tests do).

use std::collections::HashMap;
use std::sync::Arc;

use pincer_runtime::service_auth::{PresentCredential, ServiceName};
use pincer_runtime::{Config, ProcessSecrets, Secret, SecretSource};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

use crate::adapter::ChannelAdapter;
use crate::error::BridgeError;
use crate::lease::{AccountKey, SharedLeases};
use crate::link::{Link, LinkTiming};
use crate::outbox::Outbox;
use crate::telegram::{TelegramAdapter, TelegramSettings};

/// How the bridge reaches the gateway.
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// The gateway's gRPC URL (`services.gateway.url`), e.g. `http://127.0.0.1:18790`.
    pub gateway_url: String,
    /// The credential this bridge presents (`services.credentials.bridge`, resolved).
    pub credential: Secret,
    /// This process's replica id (random by default).
    pub replica_id: String,
    /// Reconnect, dial and drain timing.
    pub timing: LinkTiming,
}

impl BridgeSettings {
    /// Settings with a random replica id and default timing.
    pub fn new(gateway_url: impl Into<String>, credential: Secret) -> Self {
        Self {
            gateway_url: gateway_url.into(),
            credential,
            replica_id: format!("bridge-{}", uuid::Uuid::new_v4()),
            timing: LinkTiming::default(),
        }
    }
}

/// A configured bridge, ready to [`run`](Bridge::run).
pub struct Bridge {
    settings: BridgeSettings,
    adapters: Vec<Arc<dyn ChannelAdapter>>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let accounts: Vec<String> = self
            .adapters
            .iter()
            .map(|a| AccountKey::of(Some(&a.account())).to_string())
            .collect();
        f.debug_struct("Bridge")
            .field("settings", &self.settings)
            .field("accounts", &accounts)
            .finish()
    }
}

impl Bridge {
    /// A bridge with no adapters yet.
    pub fn new(settings: BridgeSettings) -> Self {
        Self {
            settings,
            adapters: Vec::new(),
        }
    }

    /// Adds a channel adapter (one per account).
    pub fn with_adapter(mut self, adapter: Arc<dyn ChannelAdapter>) -> Self {
        self.adapters.push(adapter);
        self
    }

    /// Adds the Telegram adapter for one bot.
    pub fn with_telegram(self, telegram: TelegramSettings) -> Result<Self, BridgeError> {
        let adapter = TelegramAdapter::new(telegram)?;
        Ok(self.with_adapter(Arc::new(adapter)))
    }

    /// A bridge from the config, resolving the bridge credential and every bot token
    /// through `secrets`: one Telegram adapter per account (`channels.telegram.botToken`
    /// is the account `default`, `channels.telegram.accounts` adds more).
    pub fn from_config(config: &Config, secrets: &dyn SecretSource) -> Result<Self, BridgeError> {
        let telegram = config.telegram.as_ref().ok_or(BridgeError::NoChannel)?;
        let credential = config
            .services
            .credentials
            .bridge
            .resolve(secrets)
            .map_err(|source| BridgeError::Secret {
                what: "bridge service credential",
                key: "services.credentials.bridge".to_owned(),
                source,
            })?;
        let settings = BridgeSettings::new(config.services.gateway.url.as_str(), credential);
        let mut bridge = Self::new(settings);
        for account in &telegram.accounts {
            let key = if account.id == "default" {
                "channels.telegram.botToken".to_owned()
            } else {
                format!("channels.telegram.accounts.{}.botToken", account.id)
            };
            let bot_token =
                account
                    .bot_token
                    .resolve(secrets)
                    .map_err(|source| BridgeError::Secret {
                        what: "Telegram bot token",
                        key,
                        source,
                    })?;
            let mut tg = TelegramSettings::new(bot_token, account.api_base_url.clone());
            tg.account_id = account.id.clone();
            tg.poll_timeout = telegram.poll_timeout;
            bridge = bridge.with_telegram(tg)?;
        }
        Ok(bridge)
    }

    /// Runs until `shutdown` is cancelled: connects to the gateway (reconnecting as
    /// needed), serves the leased accounts, then drains. Returns an error only for
    /// problems that retrying cannot fix (a malformed gateway URL or credential).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BridgeError> {
        let Self { settings, adapters } = self;
        if adapters.is_empty() {
            return Err(BridgeError::NoChannel);
        }
        let endpoint = Endpoint::from_shared(settings.gateway_url.clone())
            .map_err(|source| BridgeError::GatewayUrl {
                url: settings.gateway_url.clone(),
                source,
            })?
            .connect_timeout(settings.timing.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(std::time::Duration::from_secs(20))
            .keep_alive_timeout(std::time::Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let credential = PresentCredential::new(ServiceName::Bridge, &settings.credential)?;
        let (receipts_tx, receipts) = mpsc::channel(256);
        let leases = SharedLeases::default();
        let outbox = Outbox::start(&adapters, &leases, receipts_tx);
        let adapters: HashMap<AccountKey, Arc<dyn ChannelAdapter>> = adapters
            .into_iter()
            .map(|a| (AccountKey::of(Some(&a.account())), a))
            .collect();
        tracing::info!(replica_id = %settings.replica_id, accounts = adapters.len(), "bridge starting");
        let link = Link {
            endpoint,
            credential,
            replica_id: settings.replica_id,
            adapters,
            outbox,
            receipts,
            leases,
            timing: settings.timing,
        };
        link.run(shutdown).await;
        Ok(())
    }
}

/// Runs the bridge from the config (secrets from the process environment and files) until
/// `shutdown` is cancelled.
///
/// `PINCER_BRIDGE_REPLICA_ID` names the replica (1 to 128 bytes; default: `bridge-<uuid>`),
/// e.g. after the host, so `pincer channels status` shows which one holds an account.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), BridgeError> {
    let mut bridge = Bridge::from_config(&config, &ProcessSecrets)?;
    if let Some(id) = std::env::var(REPLICA_ID_ENV)
        .ok()
        .filter(|id| !id.is_empty())
    {
        if id.len() > 128 {
            return Err(BridgeError::ReplicaId(id.len()));
        }
        bridge.settings.replica_id = id;
    }
    bridge.run(shutdown).await
}

/// The environment variable naming this replica.
pub const REPLICA_ID_ENV: &str = "PINCER_BRIDGE_REPLICA_ID";
