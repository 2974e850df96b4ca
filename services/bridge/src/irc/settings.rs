//! [`IrcSettings`]: how to reach, identify on and pace one IRC connection.

use std::time::Duration;

use pincer_runtime::Secret;

use super::flood::FloodSettings;

/// SASL PLAIN credentials (services account).
#[derive(Debug, Clone)]
pub struct SaslPlain {
    /// The services account name.
    pub account: String,
    /// Its password (never logged, never in an error).
    pub password: Secret,
}

/// A channel to join after registering.
#[derive(Debug, Clone)]
pub struct IrcChannel {
    /// The channel name, e.g. `#pincer`.
    pub name: String,
    /// The channel key (`+k`), if the channel has one.
    pub key: Option<Secret>,
}

impl IrcChannel {
    /// A channel without a key.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            key: None,
        }
    }
}

/// How to reach and use one IRC connection (one nick on one server).
#[derive(Debug, Clone)]
pub struct IrcSettings {
    /// The account id the gateway knows this connection by (default `default`).
    pub account_id: String,
    /// The server's host name (also the TLS server name).
    pub host: String,
    /// The server's port (usually 6697 with TLS, 6667 without).
    pub port: u16,
    /// Connect with TLS (webpki roots plus [`Self::extra_ca_pem`]).
    pub tls: bool,
    /// Extra CA certificates (PEM) to trust, for self-hosted servers with a private CA.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// The nick to register; `_` is appended while it is taken.
    pub nick: String,
    /// The user name (`USER`), default the nick.
    pub username: String,
    /// The real name (`USER`'s last parameter).
    pub realname: String,
    /// The server password (`PASS`), if the server wants one.
    pub server_password: Option<Secret>,
    /// SASL PLAIN credentials. When set, the connection fails (and is not used
    /// unauthenticated) if the server does not offer SASL or refuses them.
    pub sasl: Option<SaslPlain>,
    /// Channels to join after registering (and to rejoin after a kick).
    pub channels: Vec<IrcChannel>,
    /// Outbound pacing shared by every line sent on the connection.
    pub flood: FloodSettings,
    /// First delay before reconnecting after the connection dropped.
    pub reconnect_initial: Duration,
    /// Longest delay between reconnects.
    pub reconnect_max: Duration,
    /// Longest time for TCP, TLS and registration together.
    pub connect_timeout: Duration,
    /// How many times `_` is appended to a nick in use before giving up.
    pub max_nick_attempts: u32,
    /// Send a `PING` after this long without hearing from the server; drop the connection
    /// when another such period passes without an answer.
    pub keepalive: Duration,
    /// First delay before rejoining a channel we were kicked from (doubles per kick, up to
    /// [`Self::reconnect_max`]).
    pub rejoin_initial: Duration,
}

impl IrcSettings {
    /// Settings with defaults for everything but the server and the nick.
    pub fn new(
        server_host: impl Into<String>,
        port: u16,
        tls: bool,
        nick: impl Into<String>,
    ) -> Self {
        let nick = nick.into();
        Self {
            account_id: "default".to_owned(),
            host: server_host.into(),
            port,
            tls,
            extra_ca_pem: None,
            username: nick.clone(),
            realname: "Pincer".to_owned(),
            nick,
            server_password: None,
            sasl: None,
            channels: Vec::new(),
            flood: FloodSettings::default(),
            reconnect_initial: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(30),
            max_nick_attempts: 5,
            keepalive: Duration::from_secs(120),
            rejoin_initial: Duration::from_secs(5),
        }
    }
}
