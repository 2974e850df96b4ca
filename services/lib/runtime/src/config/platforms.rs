//! Each chat platform's validated settings: how the bridge connects (`TelegramConfig`,
//! `IrcConfig`, `EmailConfig`, `MatrixConfig`) plus the platform's access rules
//! ([`ChannelAccessConfig`], shared by all platforms and checked with the platform's id
//! rule). Secrets stay references: only the bridge resolves them.
//!
//! Transport rules enforced here: TLS everywhere, except to a loopback host (a local test
//! server, or a server on the same machine); the Matrix homeserver is `https` (or `http` to
//! loopback); a section without a way to log in is an error, not a silent no-op.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::channels::{
    ChannelAccessConfig, EMAIL_IDS, IRC_IDS, MATRIX_IDS, RawAccess, TELEGRAM_IDS, validate_access,
};
use super::raw_channels::{
    GroupPolicy, MailSecurity, RawEmail, RawIrc, RawMatrix, RawTelegram, RawTelegramWebhook,
};
use super::validate::{Config, Issues, http_url};
use crate::secret::SecretRef;

/// The access keys of a section with groups.
macro_rules! group_access {
    ($c:expr) => {
        RawAccess {
            dm_policy: $c.dm_policy,
            allow_from: &$c.allow_from,
            owners: &$c.owners,
            group_policy: $c.group_policy,
            groups: &$c.groups,
            group_allow_from: $c.group_allow_from.as_deref(),
            require_mention: $c.require_mention,
            mention_patterns: &$c.mention_patterns,
        }
    };
}

/// `channels.telegram`.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// The bots: `default` (from `botToken`) and `accounts`, sorted by id; never empty.
    pub accounts: Vec<TelegramAccountConfig>,
    /// Who may reach the assistant: DM and group policies, owners, mentions.
    pub access: ChannelAccessConfig,
    /// Long-poll timeout.
    pub poll_timeout: Duration,
    /// Webhook mode instead of long polling.
    pub webhook: Option<TelegramWebhookConfig>,
}

/// One Telegram bot.
#[derive(Debug, Clone)]
pub struct TelegramAccountConfig {
    /// The account id (`default` for `channels.telegram.botToken`).
    pub id: String,
    /// The bot token reference (resolved only by the bridge).
    pub bot_token: SecretRef,
    /// The Bot API root.
    pub api_base_url: Url,
}

/// `channels.telegram.webhook`.
#[derive(Debug, Clone)]
pub struct TelegramWebhookConfig {
    /// The public URL; each account is served at `<url>/<account id>`.
    pub url: Url,
    /// Where the bridge listens.
    pub listen: SocketAddr,
    /// The secret Telegram sends back in `X-Telegram-Bot-Api-Secret-Token`.
    pub secret_token: SecretRef,
}

/// `channels.irc`.
#[derive(Debug, Clone)]
pub struct IrcConfig {
    /// The server's host name.
    pub host: String,
    /// The port.
    pub port: u16,
    /// TLS (always, unless the host is loopback and `tls: false`).
    pub tls: bool,
    /// Extra CA certificates (PEM file).
    pub ca_file: Option<PathBuf>,
    /// The bot's nick.
    pub nick: String,
    /// The user name.
    pub username: String,
    /// The real name.
    pub realname: String,
    /// `PASS`.
    pub password: Option<SecretRef>,
    /// SASL PLAIN: account and password.
    pub sasl: Option<(String, SecretRef)>,
    /// The channels to join: the ids listed under `groups` (not `"*"`), lowercased.
    pub channels: Vec<String>,
    /// Lines sent back to back before pacing.
    pub flood_burst: u32,
    /// Time between lines after the burst.
    pub flood_interval: Duration,
    /// Who may reach the assistant.
    pub access: ChannelAccessConfig,
}

/// `channels.email`.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The bot's address, lowercased.
    pub address: String,
    /// Where mail is read.
    pub imap: ImapConfig,
    /// Where replies go.
    pub smtp: SmtpConfig,
    /// Extra CA certificates (PEM file).
    pub ca_file: Option<PathBuf>,
    /// The trusted `Authentication-Results` authserv-id.
    pub authserv_id: Option<String>,
    /// Polling interval when the server has no IDLE.
    pub poll_interval: Duration,
    /// Who may reach the assistant (DMs only: e-mail has no groups here).
    pub access: ChannelAccessConfig,
}

/// `channels.email.imap`.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS mode.
    pub security: MailSecurity,
    /// Login.
    pub username: String,
    /// Password.
    pub password: SecretRef,
    /// The mailbox watched.
    pub mailbox: String,
}

/// `channels.email.smtp`.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS mode.
    pub security: MailSecurity,
    /// Login and password, when the server needs them.
    pub login: Option<(String, SecretRef)>,
}

/// `channels.matrix`.
#[derive(Debug, Clone)]
pub struct MatrixConfig {
    /// The homeserver's client API root.
    pub homeserver: Url,
    /// The bot's user id.
    pub user_id: String,
    /// An access token.
    pub access_token: Option<SecretRef>,
    /// The password (to log in).
    pub password: Option<SecretRef>,
    /// The device id.
    pub device_id: String,
    /// Who may reach the assistant.
    pub access: ChannelAccessConfig,
}

impl Config {
    /// Whether any chat channel is configured (the bridge has something to serve).
    pub fn has_channels(&self) -> bool {
        self.telegram.is_some()
            || self.irc.is_some()
            || self.email.is_some()
            || self.matrix.is_some()
    }

    /// The access rules of every configured channel, by channel name.
    pub fn channel_access(&self) -> Vec<(&'static str, &ChannelAccessConfig)> {
        let mut out = Vec::new();
        if let Some(c) = &self.telegram {
            out.push(("telegram", &c.access));
        }
        if let Some(c) = &self.irc {
            out.push(("irc", &c.access));
        }
        if let Some(c) = &self.email {
            out.push(("email", &c.access));
        }
        if let Some(c) = &self.matrix {
            out.push(("matrix", &c.access));
        }
        out
    }

    /// Every secret the bridge resolves, with its key path.
    pub fn channel_secrets(&self) -> Vec<(String, &SecretRef)> {
        let mut out = Vec::new();
        if let Some(tg) = &self.telegram {
            for account in &tg.accounts {
                let key = if account.id == "default" {
                    "channels.telegram.botToken".to_owned()
                } else {
                    format!("channels.telegram.accounts.{}.botToken", account.id)
                };
                out.push((key, &account.bot_token));
            }
            if let Some(w) = &tg.webhook {
                out.push((
                    "channels.telegram.webhook.secretToken".to_owned(),
                    &w.secret_token,
                ));
            }
        }
        if let Some(irc) = &self.irc {
            if let Some(p) = &irc.password {
                out.push(("channels.irc.password".to_owned(), p));
            }
            if let Some((_, p)) = &irc.sasl {
                out.push(("channels.irc.sasl.password".to_owned(), p));
            }
        }
        if let Some(email) = &self.email {
            out.push((
                "channels.email.imap.password".to_owned(),
                &email.imap.password,
            ));
            if let Some((_, p)) = &email.smtp.login {
                out.push(("channels.email.smtp.password".to_owned(), p));
            }
        }
        if let Some(m) = &self.matrix {
            if let Some(t) = &m.access_token {
                out.push(("channels.matrix.accessToken".to_owned(), t));
            }
            if let Some(p) = &m.password {
                out.push(("channels.matrix.password".to_owned(), p));
            }
        }
        out
    }
}

pub(super) fn validate_telegram(t: &RawTelegram, issues: &mut Issues) -> Option<TelegramConfig> {
    if t.enabled == Some(false) {
        return None;
    }
    let base = "channels.telegram";
    let api_base_url = http_url(
        t.api_base_url
            .as_deref()
            .unwrap_or("https://api.telegram.org"),
        &format!("{base}.apiBaseUrl"),
        issues,
    )?;
    let accounts = telegram_accounts(t, &api_base_url, issues)?;
    let access = validate_access(group_access!(t), base, TELEGRAM_IDS, issues);
    let poll = t.poll_timeout_seconds.unwrap_or(30);
    if poll > 50 {
        issues.add(
            &format!("{base}.pollTimeoutSeconds"),
            format!("{poll} is too long"),
            "use 0 to 50 seconds",
        );
    }
    let webhook = match &t.webhook {
        Some(w) => Some(telegram_webhook(w, issues)?),
        None => None,
    };
    Some(TelegramConfig {
        accounts,
        access,
        poll_timeout: Duration::from_secs(u64::from(poll)),
        webhook,
    })
}

fn telegram_webhook(w: &RawTelegramWebhook, issues: &mut Issues) -> Option<TelegramWebhookConfig> {
    let base = "channels.telegram.webhook";
    let url = match Url::parse(&w.url) {
        Ok(url) if url.scheme() == "https" && url.host().is_some() && url.query().is_none() => {
            Some(url)
        }
        Ok(url) if url.scheme() == "http" && url.host().is_some_and(host_is_loopback) => Some(url),
        _ => {
            issues.add(
                &format!("{base}.url"),
                format!("{:?} is not an https URL without a query", w.url),
                "give the public https URL of your reverse proxy, e.g. \"https://bot.example.org/telegram\"",
            );
            None
        }
    };
    let listen_raw = w.listen.as_deref().unwrap_or("127.0.0.1:8443");
    let listen = match listen_raw.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            issues.add(
                &format!("{base}.listen"),
                format!("{listen_raw:?} is not an address and port"),
                "write it as \"127.0.0.1:8443\"",
            );
            None
        }
    };
    Some(TelegramWebhookConfig {
        url: url?,
        listen: listen?,
        secret_token: w.secret_token.clone(),
    })
}

/// The default account (`botToken`) and the named ones (`accounts`).
fn telegram_accounts(
    t: &RawTelegram,
    api_base_url: &Url,
    issues: &mut Issues,
) -> Option<Vec<TelegramAccountConfig>> {
    let base = "channels.telegram";
    let mut accounts = Vec::new();
    if let Some(bot_token) = &t.bot_token {
        accounts.push(TelegramAccountConfig {
            id: "default".to_owned(),
            bot_token: bot_token.clone(),
            api_base_url: api_base_url.clone(),
        });
    }
    for (id, account) in &t.accounts {
        let path = format!("{base}.accounts.{id}");
        let valid_id = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_id {
            issues.add(
                &path,
                "is not a valid account id",
                "use 1 to 64 letters, digits, '-' or '_'",
            );
            continue;
        }
        if id == "default" && t.bot_token.is_some() {
            issues.add(
                &path,
                "repeats the account of channels.telegram.botToken",
                "rename it, or move its token to botToken",
            );
            continue;
        }
        let url = match &account.api_base_url {
            Some(url) => http_url(url, &format!("{path}.apiBaseUrl"), issues),
            None => Some(api_base_url.clone()),
        };
        if let Some(api_base_url) = url {
            accounts.push(TelegramAccountConfig {
                id: id.clone(),
                bot_token: account.bot_token.clone(),
                api_base_url,
            });
        }
    }
    if t.bot_token.is_none() && t.accounts.is_empty() {
        issues.add(&format!("{base}.botToken"), "is missing", "set it to the token from @BotFather, e.g. \"${TELEGRAM_BOT_TOKEN}\", add bots under accounts, or set enabled: false");
        return None;
    }
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    Some(accounts)
}

pub(super) fn validate_irc(c: &RawIrc, issues: &mut Issues) -> Option<IrcConfig> {
    if c.enabled == Some(false) {
        return None;
    }
    let base = "channels.irc";
    let host = host_name(&c.host, &format!("{base}.host"), issues);
    let tls = c.tls.unwrap_or(true);
    if !tls && !host_is_loopback_name(&c.host) {
        issues.add(
            &format!("{base}.tls"),
            format!("false for {:?}, which is not a loopback address", c.host),
            "use TLS (remove tls: false); plain IRC is allowed only to this machine",
        );
    }
    let port = port(
        c.port,
        if tls { 6697 } else { 6667 },
        &format!("{base}.port"),
        issues,
    );
    let nick_ok = !c.nick.is_empty()
        && c.nick.len() <= 30
        && !c
            .nick
            .starts_with(|ch: char| ch.is_ascii_digit() || ch == '-')
        && c.nick
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-[]\\`^{}|_".contains(ch));
    if !nick_ok {
        issues.add(
            &format!("{base}.nick"),
            format!("{:?} is not a valid nick", c.nick),
            "use 1 to 30 letters, digits or -[]\\`^{}|_, not starting with a digit or '-'",
        );
    }
    let username = c.username.clone().unwrap_or_else(|| c.nick.clone());
    if username.is_empty()
        || username
            .chars()
            .any(|ch| ch.is_whitespace() || ch == '@' || ch.is_control())
    {
        issues.add(
            &format!("{base}.username"),
            format!("{username:?} is not a valid user name"),
            "use letters and digits without spaces",
        );
    }
    let realname = c.realname.clone().unwrap_or_else(|| "Pincer".to_owned());
    if realname.chars().any(char::is_control) {
        issues.add(
            &format!("{base}.realname"),
            "contains control characters",
            "use printable text",
        );
    }
    if let Some(sasl) = &c.sasl
        && (sasl.account.is_empty() || sasl.account.chars().any(char::is_control))
    {
        issues.add(
            &format!("{base}.sasl.account"),
            "is empty or has control characters",
            "give your services account name",
        );
    }
    let access = validate_access(group_access!(c), base, IRC_IDS, issues);
    let mut channels: Vec<String> = access.groups.keys().map(|k| k.to_lowercase()).collect();
    channels.dedup();
    let burst = c.flood_burst.unwrap_or(4);
    if !(1..=20).contains(&burst) {
        issues.add(
            &format!("{base}.floodBurst"),
            format!("{burst} is out of range"),
            "use 1 to 20 lines",
        );
    }
    let interval = c.flood_interval_ms.unwrap_or(2000);
    if !(100..=60_000).contains(&interval) {
        issues.add(
            &format!("{base}.floodIntervalMs"),
            format!("{interval} is out of range"),
            "use 100 to 60000 ms",
        );
    }
    Some(IrcConfig {
        host: host?,
        port: port?,
        tls,
        ca_file: c.ca_file.as_ref().map(PathBuf::from),
        nick: c.nick.clone(),
        username,
        realname,
        password: c.password.clone(),
        sasl: c
            .sasl
            .as_ref()
            .map(|s| (s.account.clone(), s.password.clone())),
        channels,
        flood_burst: burst,
        flood_interval: Duration::from_millis(u64::from(interval)),
        access,
    })
}

pub(super) fn validate_email(c: &RawEmail, issues: &mut Issues) -> Option<EmailConfig> {
    if c.enabled == Some(false) {
        return None;
    }
    let base = "channels.email";
    let address = c.address.to_lowercase();
    if !(EMAIL_IDS.user)(&address) {
        issues.add(
            &format!("{base}.address"),
            format!("{:?} is not an e-mail address", c.address),
            "write the bot's address, e.g. \"pincer@example.org\"",
        );
    }
    let imap_sec = c.imap.security.unwrap_or(MailSecurity::Tls);
    let imap_host = mail_host(&c.imap.host, imap_sec, &format!("{base}.imap"), issues);
    let imap_port = port(
        c.imap.port,
        if imap_sec == MailSecurity::Tls {
            993
        } else {
            143
        },
        &format!("{base}.imap.port"),
        issues,
    );
    let username = c.imap.username.clone().unwrap_or_else(|| c.address.clone());
    let mailbox = c.imap.mailbox.clone().unwrap_or_else(|| "INBOX".to_owned());
    if mailbox.is_empty() || mailbox.chars().any(char::is_control) {
        issues.add(
            &format!("{base}.imap.mailbox"),
            format!("{mailbox:?} is not a mailbox name"),
            "use e.g. \"INBOX\"",
        );
    }
    let smtp_sec = c.smtp.security.unwrap_or(MailSecurity::Tls);
    let smtp_host = mail_host(&c.smtp.host, smtp_sec, &format!("{base}.smtp"), issues);
    let smtp_port = port(
        c.smtp.port,
        match smtp_sec {
            MailSecurity::Tls => 465,
            MailSecurity::Starttls => 587,
            MailSecurity::Plain => 25,
        },
        &format!("{base}.smtp.port"),
        issues,
    );
    let login = c.smtp.password.as_ref().map(|p| {
        (
            c.smtp.username.clone().unwrap_or_else(|| username.clone()),
            p.clone(),
        )
    });
    if let Some(id) = &c.authserv_id
        && (id.is_empty() || id.chars().any(|ch| ch.is_whitespace() || ch == ';'))
    {
        issues.add(
            &format!("{base}.authservId"),
            format!("{id:?} is not an authserv-id"),
            "use the host name your mail server writes in Authentication-Results, e.g. \"mx.example.org\"",
        );
    }
    let trust_from = c.trust_from_header.unwrap_or(false);
    match (&c.authserv_id, trust_from) {
        (None, false) => issues.add(
            &format!("{base}.authservId"),
            "is missing: anyone can forge a From address",
            "set it to the authserv-id your mail server writes in Authentication-Results \
             (e.g. \"mx.example.org\"), or set trustFromHeader: true if that server already \
             rejects spoofed senders",
        ),
        (Some(_), true) => issues.add(
            &format!("{base}.trustFromHeader"),
            "is true while authservId is set",
            "keep one: authservId (checked) or trustFromHeader (not checked)",
        ),
        _ => {}
    }
    let poll = c.poll_interval_seconds.unwrap_or(60);
    if !(5..=3600).contains(&poll) {
        issues.add(
            &format!("{base}.pollIntervalSeconds"),
            format!("{poll} is out of range"),
            "use 5 to 3600 seconds",
        );
    }
    let empty = BTreeMap::new();
    let access = validate_access(
        RawAccess {
            dm_policy: c.dm_policy,
            allow_from: &c.allow_from,
            owners: &c.owners,
            group_policy: Some(GroupPolicy::Disabled),
            groups: &empty,
            group_allow_from: None,
            require_mention: None,
            mention_patterns: &[],
        },
        base,
        EMAIL_IDS,
        issues,
    );
    Some(EmailConfig {
        address,
        imap: ImapConfig {
            host: imap_host?,
            port: imap_port?,
            security: imap_sec,
            username,
            password: c.imap.password.clone(),
            mailbox,
        },
        smtp: SmtpConfig {
            host: smtp_host?,
            port: smtp_port?,
            security: smtp_sec,
            login,
        },
        ca_file: c.ca_file.as_ref().map(PathBuf::from),
        authserv_id: c.authserv_id.clone(),
        poll_interval: Duration::from_secs(u64::from(poll)),
        access,
    })
}

pub(super) fn validate_matrix(c: &RawMatrix, issues: &mut Issues) -> Option<MatrixConfig> {
    if c.enabled == Some(false) {
        return None;
    }
    let base = "channels.matrix";
    let homeserver = match Url::parse(&c.homeserver) {
        Ok(url)
            if url.host().is_some()
                && (url.scheme() == "https"
                    || (url.scheme() == "http" && url.host().is_some_and(host_is_loopback))) =>
        {
            Some(url)
        }
        _ => {
            issues.add(
                &format!("{base}.homeserver"),
                format!("{:?} is not an https URL", c.homeserver),
                "give the homeserver's client URL, e.g. \"https://matrix.example.org\" (http only to loopback)",
            );
            None
        }
    };
    if !(MATRIX_IDS.user)(&c.user_id) {
        issues.add(
            &format!("{base}.userId"),
            format!("{:?} is not {}", c.user_id, MATRIX_IDS.user_what),
            "write the bot's full user id, e.g. \"@pincer:example.org\"",
        );
    }
    if c.access_token.is_none() && c.password.is_none() {
        issues.add(
            &format!("{base}.accessToken"),
            "is missing, and so is password",
            "set accessToken (e.g. \"${MATRIX_ACCESS_TOKEN}\") or password",
        );
    }
    let device_id = c.device_id.clone().unwrap_or_else(|| "PINCER".to_owned());
    if device_id.is_empty()
        || device_id.len() > 64
        || !device_id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    {
        issues.add(
            &format!("{base}.deviceId"),
            format!("{device_id:?} is not a device id"),
            "use 1 to 64 letters, digits, '-' or '_'",
        );
    }
    let access = validate_access(group_access!(c), base, MATRIX_IDS, issues);
    Some(MatrixConfig {
        homeserver: homeserver?,
        user_id: c.user_id.clone(),
        access_token: c.access_token.clone(),
        password: c.password.clone(),
        device_id,
        access,
    })
}

fn port(raw: Option<u16>, default: u16, path: &str, issues: &mut Issues) -> Option<u16> {
    match raw {
        Some(0) => {
            issues.add(
                path,
                "0 is not a port",
                "use 1 to 65535, or leave it out for the default",
            );
            None
        }
        Some(p) => Some(p),
        None => Some(default),
    }
}

fn host_name(host: &str, path: &str, issues: &mut Issues) -> Option<String> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && (host.parse::<IpAddr>().is_ok()
            || host
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.'));
    if ok {
        Some(host.to_owned())
    } else {
        issues.add(
            path,
            format!("{host:?} is not a host name"),
            "write a host name or IP address without scheme or port, e.g. \"irc.libera.chat\"",
        );
        None
    }
}

fn mail_host(
    host: &str,
    security: MailSecurity,
    base: &str,
    issues: &mut Issues,
) -> Option<String> {
    let name = host_name(host, &format!("{base}.host"), issues)?;
    if security == MailSecurity::Plain && !host_is_loopback_name(host) {
        issues.add(
            &format!("{base}.security"),
            format!("\"plain\" for {host:?}, which is not a loopback address"),
            "use \"tls\" or \"starttls\"; plain is allowed only to this machine",
        );
        return None;
    }
    Some(name)
}

fn host_is_loopback(host: url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(d) => d == "localhost",
    }
}

/// Loopback by literal address or `localhost` (never by DNS lookup).
pub(crate) fn host_is_loopback_name(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(bare == "localhost")
}

#[cfg(test)]
#[path = "platforms_tests.rs"]
mod tests;
