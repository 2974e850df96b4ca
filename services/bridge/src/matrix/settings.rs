//! [`MatrixSettings`] and [`InvitePolicy`]: how to reach one bot account and whom it obeys
//! when invited (validation only, no I/O).

use std::net::IpAddr;
use std::time::Duration;

use pincer_runtime::Secret;
use reqwest::Url;

use super::CHANNEL;
use crate::adapter::PlatformError;

/// Which room invites the bot accepts (SECURITY.md, "Senders"): anything not allowed here
/// is rejected, and the bot never joins a room on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvitePolicy {
    /// User ids (`@user:server`) whose invites are accepted: the owners and `allowFrom`.
    pub allowed_inviters: Vec<String>,
    /// Accept direct-chat invites (`is_direct: true`) from anyone, so strangers can ask
    /// for a pairing code (true under `dmPolicy` `pairing` / `open`).
    pub accept_direct_from_anyone: bool,
    /// Room ids (`!room:server`) from the groups config, accepted whoever invites.
    pub allowed_rooms: Vec<String>,
}

/// What to do with one invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteDecision {
    /// Join the room.
    Join,
    /// Reject the invite (leave the room).
    Reject,
}

impl InvitePolicy {
    /// Decides on an invite to `room_id` by `inviter`; `is_direct` is the flag in the
    /// invite's member event.
    pub fn decide(&self, room_id: &str, inviter: &str, is_direct: bool) -> InviteDecision {
        let allowed = self.allowed_inviters.iter().any(|u| u == inviter)
            || self.allowed_rooms.iter().any(|r| r == room_id)
            || (is_direct && self.accept_direct_from_anyone);
        if allowed {
            InviteDecision::Join
        } else {
            InviteDecision::Reject
        }
    }
}

/// How to reach one Matrix bot account.
#[derive(Debug, Clone)]
pub struct MatrixSettings {
    /// The account id the gateway knows this bot by (`default` for the single bot).
    pub account_id: String,
    /// The homeserver root, e.g. `https://matrix.example.org` (https unless loopback).
    pub homeserver: Url,
    /// The bot's user id (`@bot:example.org`); required with a password, checked against
    /// `whoami` with a token.
    pub user_id: Option<String>,
    /// An access token (never logged).
    pub access_token: Option<Secret>,
    /// A password, to log in (again) when there is no (valid) token (never logged).
    pub password: Option<Secret>,
    /// The device id every password login reuses.
    pub device_id: String,
    /// Which invites to accept.
    pub invites: InvitePolicy,
    /// `/sync` long-poll timeout (at most 30 s; shortened before a lease ends).
    pub sync_timeout: Duration,
    /// How long to wait for the gateway's ack of handed-out messages before reading them
    /// from the homeserver again.
    pub ack_timeout: Duration,
}

/// The longest `/sync` long poll.
pub const MAX_SYNC_TIMEOUT: Duration = Duration::from_secs(30);

impl MatrixSettings {
    /// Settings with defaults for everything but the homeserver and credentials.
    pub fn new(homeserver: Url) -> Self {
        Self {
            account_id: "default".to_owned(),
            homeserver,
            user_id: None,
            access_token: None,
            password: None,
            device_id: "PINCERBRIDGE".to_owned(),
            invites: InvitePolicy::default(),
            sync_timeout: MAX_SYNC_TIMEOUT,
            ack_timeout: Duration::from_secs(60),
        }
    }

    /// Checks the settings: an https homeserver (plain http only on loopback), and either
    /// a token or a user id with a password.
    pub fn validate(&self) -> Result<(), PlatformError> {
        let url = &self.homeserver;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        };
        let secure = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !secure || url.host().is_none() {
            return Err(PlatformError::operator(
                CHANNEL,
                format!(
                    "homeserver {:?} must be an https:// URL (http:// only on loopback)",
                    url.as_str()
                ),
            ));
        }
        if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(PlatformError::operator(
                CHANNEL,
                "the homeserver URL must not carry credentials or a query",
            ));
        }
        let can_login = self.user_id.is_some() && self.password.is_some();
        if self.access_token.is_none() && !can_login {
            return Err(PlatformError::operator(
                CHANNEL,
                "configure an access token, or a user id and a password",
            ));
        }
        if self.device_id.is_empty() {
            return Err(PlatformError::operator(
                CHANNEL,
                "device_id must not be empty",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> MatrixSettings {
        let mut s = MatrixSettings::new(Url::parse(url).unwrap());
        s.access_token = Some(Secret::new("t"));
        s
    }

    #[test]
    fn homeserver_must_be_https_unless_loopback() {
        assert!(settings("https://matrix.example.org").validate().is_ok());
        assert!(settings("http://127.0.0.1:8008").validate().is_ok());
        assert!(settings("http://[::1]:8008").validate().is_ok());
        assert!(settings("http://localhost:8008").validate().is_ok());
        assert!(settings("http://matrix.example.org").validate().is_err());
        assert!(settings("http://10.0.0.1").validate().is_err());
        assert!(settings("ftp://127.0.0.1").validate().is_err());
        assert!(settings("https://u:p@example.org").validate().is_err());
    }

    #[test]
    fn credentials_are_required() {
        let mut s = settings("https://m.example.org");
        s.access_token = None;
        assert!(s.validate().is_err());
        s.user_id = Some("@bot:example.org".into());
        s.password = Some(Secret::new("pw"));
        assert!(s.validate().is_ok());
        let message = s
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!message.contains("pw"));
    }

    #[test]
    fn invites_follow_the_policy() {
        let policy = InvitePolicy {
            allowed_inviters: vec!["@owner:x".into()],
            accept_direct_from_anyone: false,
            allowed_rooms: vec!["!team:x".into()],
        };
        assert_eq!(
            policy.decide("!any:x", "@owner:x", false),
            InviteDecision::Join
        );
        assert_eq!(
            policy.decide("!team:x", "@stranger:x", false),
            InviteDecision::Join
        );
        assert_eq!(
            policy.decide("!dm:x", "@stranger:x", true),
            InviteDecision::Reject
        );
        assert_eq!(
            policy.decide("!r:x", "@stranger:x", false),
            InviteDecision::Reject
        );
        let open = InvitePolicy {
            accept_direct_from_anyone: true,
            ..policy
        };
        assert_eq!(
            open.decide("!dm:x", "@stranger:x", true),
            InviteDecision::Join
        );
        assert_eq!(
            open.decide("!r:x", "@stranger:x", false),
            InviteDecision::Reject
        );
    }
}
