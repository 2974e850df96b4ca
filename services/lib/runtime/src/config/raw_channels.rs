//! The `channels` section as written: one serde type per chat platform. Every platform
//! section carries the same access keys (`dmPolicy`, `allowFrom`, `owners` and, where the
//! platform has groups, `groupPolicy`, `groups`, `groupAllowFrom`, `requireMention`,
//! `mentionPatterns`); the [`channel_section!`] macro appends them so they are spelled and
//! documented once. Meaning lives in [`super::channels`] and [`super::platforms`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret::SecretRef;

/// `channels`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawChannels {
    /// Telegram (Bot API).
    #[serde(default)]
    pub telegram: Option<RawTelegram>,
    /// IRC (one network connection).
    #[serde(default)]
    pub irc: Option<RawIrc>,
    /// E-mail (IMAP in, SMTP out).
    #[serde(default)]
    pub email: Option<RawEmail>,
    /// Matrix (client-server API).
    #[serde(default)]
    pub matrix: Option<RawMatrix>,
}

/// Declares a platform section: its own fields, then the DM access keys and, with
/// `groups`, the group access keys.
macro_rules! channel_section {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($body:tt)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct $name {
            $($body)*
            /// Who may DM the bot: `pairing` (default: strangers get a one-time code for the
            /// owner to approve), `allowlist`, `open` (requires `"*"` in `allowFrom`) or
            /// `disabled`.
            #[serde(default)]
            pub dm_policy: Option<DmPolicy>,
            /// Stable platform user ids allowed to DM (or `*` with `open`). Senders approved
            /// with `pincer pairing approve` are added at run time.
            #[serde(default)]
            pub allow_from: Vec<String>,
            /// The owner's own platform user ids (default none). The owner is always
            /// allowed, may use `/approve`, and has the main DM session. Never `*`.
            #[serde(default)]
            pub owners: Vec<String>,
        }
    };
    (
        groups;
        $(#[$meta:meta])*
        pub struct $name:ident { $($body:tt)* }
    ) => {
        channel_section! {
            $(#[$meta])*
            pub struct $name {
                $($body)*
                /// Groups: `allowlist` (default: only the groups under `groups`), `open` or
                /// `disabled`.
                #[serde(default)]
                pub group_policy: Option<GroupPolicy>,
                /// Per-group settings by stable group id (`"*"`: every group). Under
                /// `groupPolicy: allowlist` only the groups listed here are served.
                #[serde(default)]
                pub groups: BTreeMap<String, RawGroup>,
                /// Members (user ids, or `*`) whose messages may start a turn in a group
                /// (default: the owners, `allowFrom` and paired senders).
                #[serde(default)]
                pub group_allow_from: Option<Vec<String>>,
                /// In groups, answer only when the bot is mentioned or replied to (default
                /// true).
                #[serde(default)]
                pub require_mention: Option<bool>,
                /// Regexes (Rust `regex` syntax) that count as a mention of the bot in group
                /// text, e.g. `"(?i)\\bpincer\\b"`.
                #[serde(default)]
                pub mention_patterns: Vec<String>,
            }
        }
    };
}

channel_section! {
    groups;
    /// `channels.telegram`.
    pub struct RawTelegram {
        /// Serve this channel (default true when the section exists).
        #[serde(default)]
        pub enabled: Option<bool>,
        /// The bot token from @BotFather: the account `default`. Only the bridge resolves it.
        #[serde(default)]
        pub bot_token: Option<SecretRef>,
        /// Bot API root (default `https://api.telegram.org`).
        #[serde(default)]
        pub api_base_url: Option<String>,
        /// More bots, by account id (letters, digits, `-`, `_`; at most 64 characters),
        /// each with its own token. They share this section's access settings. Every
        /// bridge replica offers every account; the gateway leases each one to a single
        /// replica.
        #[serde(default)]
        pub accounts: BTreeMap<String, RawTelegramAccount>,
        /// Long-poll timeout in seconds (default 30).
        #[serde(default)]
        pub poll_timeout_seconds: Option<u32>,
        /// Receive updates by webhook instead of long polling.
        #[serde(default)]
        pub webhook: Option<RawTelegramWebhook>,
    }
}

/// `channels.telegram.accounts.<id>`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTelegramAccount {
    /// This bot's token from @BotFather.
    pub bot_token: SecretRef,
    /// Bot API root (default: the channel's `apiBaseUrl`).
    #[serde(default)]
    pub api_base_url: Option<String>,
}

/// `channels.telegram.webhook`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTelegramWebhook {
    /// The public HTTPS URL Telegram posts to (your reverse proxy), e.g.
    /// `https://bot.example.org/telegram`. Each account gets `<url>/<account id>`.
    pub url: String,
    /// Where the bridge listens for the proxied requests (default `127.0.0.1:8443`).
    #[serde(default)]
    pub listen: Option<String>,
    /// The secret Telegram sends in `X-Telegram-Bot-Api-Secret-Token` (1 to 256 of
    /// `A-Z a-z 0-9 _ -`); requests without it are refused.
    pub secret_token: SecretRef,
}

channel_section! {
    groups;
    /// `channels.irc`.
    pub struct RawIrc {
        /// Serve this channel (default true when the section exists).
        #[serde(default)]
        pub enabled: Option<bool>,
        /// The server's host name, e.g. `irc.libera.chat`.
        pub host: String,
        /// The port (default 6697 with TLS, 6667 without).
        #[serde(default)]
        pub port: Option<u16>,
        /// Connect with TLS (default true). Plain connections are allowed only to loopback.
        #[serde(default)]
        pub tls: Option<bool>,
        /// Extra CA certificates (PEM file) to trust, for a self-hosted server.
        #[serde(default)]
        pub ca_file: Option<String>,
        /// The bot's nick.
        pub nick: String,
        /// The user name (default: the nick).
        #[serde(default)]
        pub username: Option<String>,
        /// The real name (default `Pincer`).
        #[serde(default)]
        pub realname: Option<String>,
        /// The server password (`PASS`), if the server needs one.
        #[serde(default)]
        pub password: Option<SecretRef>,
        /// Log in to services with SASL PLAIN; the connection fails rather than continue
        /// unauthenticated when the server does not offer it.
        #[serde(default)]
        pub sasl: Option<RawSasl>,
        /// Lines sent back to back before pacing starts (default 4).
        #[serde(default)]
        pub flood_burst: Option<u32>,
        /// Milliseconds between lines after the burst (default 2000).
        #[serde(default)]
        pub flood_interval_ms: Option<u32>,
    }
}

/// `channels.irc.sasl`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSasl {
    /// The services account.
    pub account: String,
    /// Its password.
    pub password: SecretRef,
}

channel_section! {
    /// `channels.email`.
    pub struct RawEmail {
        /// Serve this channel (default true when the section exists).
        #[serde(default)]
        pub enabled: Option<bool>,
        /// The bot's own address, e.g. `pincer@example.org`.
        pub address: String,
        /// Where mail is read.
        pub imap: RawImap,
        /// Where replies are sent.
        pub smtp: RawSmtp,
        /// Extra CA certificates (PEM file) to trust, for self-hosted servers.
        #[serde(default)]
        pub ca_file: Option<String>,
        /// A message counts as from its `From` address only if the topmost
        /// `Authentication-Results` header has this authserv-id and passes DMARC (or DKIM
        /// for the From domain). Required unless `trustFromHeader` is true.
        #[serde(default)]
        pub authserv_id: Option<String>,
        /// Trust the `From` header as it is (default false). Only for a mailbox whose
        /// server already rejects mail with spoofed senders; otherwise set `authservId`.
        #[serde(default)]
        pub trust_from_header: Option<bool>,
        /// Seconds between checks when the server has no IDLE (default 60).
        #[serde(default)]
        pub poll_interval_seconds: Option<u32>,
    }
}

/// `channels.email.imap`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawImap {
    /// The IMAP server's host name.
    pub host: String,
    /// The port (default 993 with `tls`, 143 otherwise).
    #[serde(default)]
    pub port: Option<u16>,
    /// `tls` (default), `starttls`, or `plain` (loopback only).
    #[serde(default)]
    pub security: Option<MailSecurity>,
    /// The login (default: the bot's address).
    #[serde(default)]
    pub username: Option<String>,
    /// The password.
    pub password: SecretRef,
    /// The mailbox to watch (default `INBOX`).
    #[serde(default)]
    pub mailbox: Option<String>,
}

/// `channels.email.smtp`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSmtp {
    /// The submission server's host name.
    pub host: String,
    /// The port (default 465 with `tls`, 587 with `starttls`, 25 with `plain`).
    #[serde(default)]
    pub port: Option<u16>,
    /// `tls` (default), `starttls`, or `plain` (loopback only).
    #[serde(default)]
    pub security: Option<MailSecurity>,
    /// The login (default: the IMAP login); no login when `password` is not set.
    #[serde(default)]
    pub username: Option<String>,
    /// The password (default: none, for a relay that needs no login).
    #[serde(default)]
    pub password: Option<SecretRef>,
}

/// How a mail connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MailSecurity {
    /// TLS from the first byte.
    Tls,
    /// Plain, upgraded with STARTTLS (refused if the server does not offer it).
    Starttls,
    /// No encryption: only to a loopback address.
    Plain,
}

channel_section! {
    groups;
    /// `channels.matrix`.
    pub struct RawMatrix {
        /// Serve this channel (default true when the section exists).
        #[serde(default)]
        pub enabled: Option<bool>,
        /// The homeserver's client API root, e.g. `https://matrix.example.org` (https, or
        /// http to loopback).
        pub homeserver: String,
        /// The bot's user id, e.g. `@pincer:example.org`.
        pub user_id: String,
        /// An access token for the bot (or give `password`).
        #[serde(default)]
        pub access_token: Option<SecretRef>,
        /// The bot's password, to log in (and again when the token expires).
        #[serde(default)]
        pub password: Option<SecretRef>,
        /// The device id to log in as (default `PINCER`).
        #[serde(default)]
        pub device_id: Option<String>,
    }
}

/// `channels.<ch>.dmPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// Strangers get a one-time pairing code; the owner approves it from the CLI.
    Pairing,
    /// Only ids in `allowFrom` (and the owners).
    Allowlist,
    /// Anyone (requires `"*"` in `allowFrom`).
    Open,
    /// No DMs.
    Disabled,
}

/// `channels.<ch>.groupPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    /// Only groups listed in `groups`.
    Allowlist,
    /// Any group the bot is in.
    Open,
    /// Ignore groups.
    Disabled,
}

/// `channels.<ch>.groups.<id>`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGroup {
    /// Serve this group (default true). `false` turns a group off, also under `"*"`.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Overrides the channel's `requireMention` for this group.
    #[serde(default)]
    pub require_mention: Option<bool>,
    /// Members (user ids, or `*`) whose messages may start a turn here; overrides
    /// `groupAllowFrom`.
    #[serde(default)]
    pub allow_from: Option<Vec<String>>,
}
