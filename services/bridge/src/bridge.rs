//! The public entry points: [`run`] (from the config, as `main` does) and [`Bridge`] (with
//! already-resolved secrets and chosen adapters, as tests do).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use pincer_runtime::config::raw::MailSecurity;
use pincer_runtime::config::validate::{
    ChannelAccessConfig, DmPolicy, EmailConfig, IrcConfig, MatrixConfig,
};
use pincer_runtime::service_auth::{PresentCredential, ServiceName};
use pincer_runtime::{Config, ProcessSecrets, Secret, SecretRef, SecretSource};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

use crate::adapter::ChannelAdapter;
use crate::email::{EmailAdapter, EmailSettings, ImapSettings, Security, SmtpSettings};
use crate::error::BridgeError;
use crate::irc::{FloodSettings, IrcAdapter, IrcChannel, IrcSettings, SaslPlain};
use crate::lease::{AccountKey, SharedLeases};
use crate::link::{Link, LinkTiming};
use crate::matrix::{InvitePolicy, MatrixAdapter, MatrixSettings};
use crate::outbox::Outbox;
use crate::telegram::{TelegramAdapter, TelegramSettings, TelegramWebhook, WebhookServer};

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
    /// Telegram's webhook endpoint and where it listens, in webhook mode.
    webhook: Option<(WebhookServer, SocketAddr)>,
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
            webhook: None,
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

    /// A bridge from the config, resolving the bridge credential and every channel secret
    /// through `secrets`: one adapter per account of every configured channel (Telegram:
    /// `channels.telegram.botToken` is the account `default`, `accounts` adds more; IRC,
    /// e-mail and Matrix: the account `default`).
    pub fn from_config(config: &Config, secrets: &dyn SecretSource) -> Result<Self, BridgeError> {
        if !config.has_channels() {
            return Err(BridgeError::NoChannel);
        }
        let credential = resolve(
            secrets,
            &config.services.credentials.bridge,
            "bridge service credential",
            "services.credentials.bridge",
        )?;
        let settings = BridgeSettings::new(config.services.gateway.url.as_str(), credential);
        let mut bridge = Self::new(settings);
        if let Some(telegram) = &config.telegram {
            let mut webhook = match &telegram.webhook {
                Some(w) => {
                    let secret = resolve(
                        secrets,
                        &w.secret_token,
                        "Telegram webhook secret token",
                        "channels.telegram.webhook.secretToken",
                    )?;
                    Some((WebhookServer::new(secret.clone())?, w, secret))
                }
                None => None,
            };
            for account in &telegram.accounts {
                let key = if account.id == "default" {
                    "channels.telegram.botToken".to_owned()
                } else {
                    format!("channels.telegram.accounts.{}.botToken", account.id)
                };
                let bot_token = resolve(secrets, &account.bot_token, "Telegram bot token", &key)?;
                let mut tg = TelegramSettings::new(bot_token, account.api_base_url.clone());
                tg.account_id = account.id.clone();
                tg.poll_timeout = telegram.poll_timeout;
                if let Some((server, config, secret)) = &mut webhook {
                    tg.webhook = Some(TelegramWebhook {
                        url: account_url(&config.url, &account.id),
                        secret_token: secret.clone(),
                        inbox: server.inbox(&account.id),
                    });
                }
                bridge = bridge.with_telegram(tg)?;
            }
            bridge.webhook = webhook.map(|(server, config, _)| (server, config.listen));
        }
        if let Some(irc) = &config.irc {
            let adapter = IrcAdapter::new(irc_settings(irc, secrets)?);
            bridge = bridge.with_adapter(Arc::new(adapter));
        }
        if let Some(email) = &config.email {
            let adapter = EmailAdapter::new(email_settings(email, secrets)?)
                .map_err(BridgeError::AdapterSetup)?;
            bridge = bridge.with_adapter(Arc::new(adapter));
        }
        if let Some(matrix) = &config.matrix {
            let adapter = MatrixAdapter::new(matrix_settings(matrix, secrets)?)
                .map_err(BridgeError::Adapter)?;
            bridge = bridge.with_adapter(Arc::new(adapter));
        }
        Ok(bridge)
    }

    /// Runs until `shutdown` is cancelled: connects to the gateway (reconnecting as
    /// needed), serves the leased accounts, then drains. Returns an error only for
    /// problems that retrying cannot fix (a malformed gateway URL or credential).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BridgeError> {
        let Self {
            settings,
            adapters,
            webhook,
        } = self;
        if adapters.is_empty() {
            return Err(BridgeError::NoChannel);
        }
        if let Some((server, listen)) = webhook {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|source| BridgeError::WebhookListen {
                    addr: listen,
                    source,
                })?;
            tracing::info!(%listen, "serving Telegram webhooks");
            let stop = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = server.serve(listener, stop).await {
                    tracing::error!(error = %e, "the Telegram webhook server stopped");
                }
            });
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

/// `<url>/<account id>`: where Telegram posts one bot's updates.
fn account_url(base: &url::Url, account_id: &str) -> url::Url {
    let mut url = base.clone();
    let path = format!("{}/{account_id}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

fn resolve(
    secrets: &dyn SecretSource,
    reference: &SecretRef,
    what: &'static str,
    key: &str,
) -> Result<Secret, BridgeError> {
    reference
        .resolve(secrets)
        .map_err(|source| BridgeError::Secret {
            what,
            key: key.to_owned(),
            source,
        })
}

fn read_ca(
    key: &'static str,
    path: Option<&std::path::Path>,
) -> Result<Option<String>, BridgeError> {
    path.map(|p| {
        std::fs::read_to_string(p).map_err(|source| BridgeError::CaFile {
            key,
            path: p.to_owned(),
            source,
        })
    })
    .transpose()
}

fn irc_settings(irc: &IrcConfig, secrets: &dyn SecretSource) -> Result<IrcSettings, BridgeError> {
    let mut settings = IrcSettings::new(irc.host.clone(), irc.port, irc.tls, irc.nick.clone());
    settings.username = irc.username.clone();
    settings.realname = irc.realname.clone();
    settings.extra_ca_pem =
        read_ca("channels.irc.caFile", irc.ca_file.as_deref())?.map(String::into_bytes);
    settings.server_password = irc
        .password
        .as_ref()
        .map(|r| resolve(secrets, r, "IRC server password", "channels.irc.password"))
        .transpose()?;
    settings.sasl = irc
        .sasl
        .as_ref()
        .map(|(account, password)| {
            Ok::<_, BridgeError>(SaslPlain {
                account: account.clone(),
                password: resolve(
                    secrets,
                    password,
                    "IRC SASL password",
                    "channels.irc.sasl.password",
                )?,
            })
        })
        .transpose()?;
    settings.channels = irc
        .channels
        .iter()
        .map(|c| IrcChannel::new(c.clone()))
        .collect();
    settings.flood = FloodSettings {
        burst: irc.flood_burst,
        interval: irc.flood_interval,
    };
    Ok(settings)
}

fn mail_security(s: MailSecurity) -> Security {
    match s {
        MailSecurity::Tls => Security::Tls,
        MailSecurity::Starttls => Security::StartTls,
        MailSecurity::Plain => Security::Plain,
    }
}

fn email_settings(
    email: &EmailConfig,
    secrets: &dyn SecretSource,
) -> Result<EmailSettings, BridgeError> {
    let imap = ImapSettings {
        host: email.imap.host.clone(),
        port: email.imap.port,
        security: mail_security(email.imap.security),
        username: email.imap.username.clone(),
        password: resolve(
            secrets,
            &email.imap.password,
            "IMAP password",
            "channels.email.imap.password",
        )?,
        mailbox: email.imap.mailbox.clone(),
    };
    let (username, password) = match &email.smtp.login {
        Some((user, password)) => (
            Some(user.clone()),
            Some(resolve(
                secrets,
                password,
                "SMTP password",
                "channels.email.smtp.password",
            )?),
        ),
        None => (None, None),
    };
    let smtp = SmtpSettings {
        host: email.smtp.host.clone(),
        port: email.smtp.port,
        security: mail_security(email.smtp.security),
        username,
        password,
    };
    let mut settings = EmailSettings::new(email.address.clone(), imap, smtp);
    settings.extra_ca_pem = read_ca("channels.email.caFile", email.ca_file.as_deref())?;
    settings.authserv_id = email.authserv_id.clone();
    settings.poll_interval = email.poll_interval;
    Ok(settings)
}

/// Which invites the Matrix bot accepts, from the access rules: owners' and `allowFrom`
/// users' invites always; direct invites from anyone when strangers may DM (`pairing` or
/// `open`), so they can get a pairing code; rooms listed under `groups`.
fn matrix_invites(access: &ChannelAccessConfig) -> InvitePolicy {
    let mut allowed_inviters = access.owners.clone();
    allowed_inviters.extend(access.allow_from.ids.iter().cloned());
    InvitePolicy {
        allowed_inviters,
        accept_direct_from_anyone: matches!(access.dm_policy, DmPolicy::Pairing | DmPolicy::Open),
        allowed_rooms: access.groups.keys().cloned().collect(),
    }
}

fn matrix_settings(
    matrix: &MatrixConfig,
    secrets: &dyn SecretSource,
) -> Result<MatrixSettings, BridgeError> {
    let mut settings = MatrixSettings::new(matrix.homeserver.clone());
    settings.user_id = Some(matrix.user_id.clone());
    settings.device_id = matrix.device_id.clone();
    settings.access_token = matrix
        .access_token
        .as_ref()
        .map(|r| {
            resolve(
                secrets,
                r,
                "Matrix access token",
                "channels.matrix.accessToken",
            )
        })
        .transpose()?;
    settings.password = matrix
        .password
        .as_ref()
        .map(|r| resolve(secrets, r, "Matrix password", "channels.matrix.password"))
        .transpose()?;
    settings.invites = matrix_invites(&matrix.access);
    Ok(settings)
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
