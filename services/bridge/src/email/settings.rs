//! [`EmailSettings`]: how to reach one mailbox over IMAP and its SMTP submission server,
//! and the checks run on them before any connection is made.

use std::net::IpAddr;
use std::time::Duration;

use pincer_runtime::Secret;

use crate::adapter::PlatformError;

use super::CHANNEL;

/// How a connection to a mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (IMAP 993, SMTP submission 465).
    Tls,
    /// A plaintext connection upgraded with STARTTLS before login (IMAP 143, SMTP 587).
    /// A server that does not offer the upgrade is an error, never a silent downgrade.
    StartTls,
    /// No encryption at all: only allowed to a loopback address (a local relay or a test
    /// server), refused by [`super::EmailAdapter::new`] for any other host.
    Plain,
}

/// The IMAP side: where new mail is read from.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    /// The server's host name (checked against its certificate) or IP address.
    pub host: String,
    /// The port, usually 993 ([`Security::Tls`]) or 143.
    pub port: u16,
    /// How the connection is protected.
    pub security: Security,
    /// The login name.
    pub username: String,
    /// The login password (never logged, never in an error).
    pub password: Secret,
    /// The mailbox to watch, `INBOX` by default.
    pub mailbox: String,
}

/// The SMTP side: where replies are submitted.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// The server's host name (checked against its certificate) or IP address.
    pub host: String,
    /// The port, usually 465 ([`Security::Tls`]) or 587 ([`Security::StartTls`]).
    pub port: u16,
    /// How the connection is protected.
    pub security: Security,
    /// The AUTH (PLAIN or LOGIN) user name; `None` submits without authentication.
    pub username: Option<String>,
    /// The AUTH password (needed when `username` is set).
    pub password: Option<Secret>,
}

/// One mailbox as a channel account.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// The account id the gateway knows this mailbox by (`default` for the single one).
    pub account_id: String,
    /// The bot's own e-mail address: the `From` of replies, and mail from it is never
    /// answered (loop protection).
    pub address: String,
    /// Reading mail.
    pub imap: ImapSettings,
    /// Sending mail.
    pub smtp: SmtpSettings,
    /// Extra trusted CA certificates (PEM) for both servers, on top of the Web PKI roots.
    pub extra_ca_pem: Option<String>,
    /// The authserv-id of the receiving MTA's `Authentication-Results` header. When set, a
    /// message counts only if the topmost such header carries this id and says
    /// `dmarc=pass`, or `dkim=pass` for the `From` domain (or a parent domain); other mail is
    /// skipped. When `None`, the `From` address is trusted as is: only do that for a mailbox
    /// whose server rejects spoofed senders itself.
    pub authserv_id: Option<String>,
    /// How often to look for new mail when the server has no IDLE.
    pub poll_interval: Duration,
    /// How long an IDLE lasts before it is renewed (capped at 25 minutes, RFC 2177 asks
    /// for less than 29).
    pub idle_refresh: Duration,
    /// Timeout of network operations (connect, login, commands, SMTP).
    pub io_timeout: Duration,
}

/// The longest IDLE we keep open (RFC 2177: re-issue at least every 29 minutes).
pub const MAX_IDLE: Duration = Duration::from_secs(25 * 60);

impl EmailSettings {
    /// Settings with defaults (`default` account, `INBOX`, 60 s polling, 25 min IDLE).
    pub fn new(address: String, imap: ImapSettings, smtp: SmtpSettings) -> Self {
        Self {
            account_id: "default".to_owned(),
            address,
            imap,
            smtp,
            extra_ca_pem: None,
            authserv_id: None,
            poll_interval: Duration::from_secs(60),
            idle_refresh: MAX_IDLE,
            io_timeout: Duration::from_secs(30),
        }
    }

    /// Checks everything that can be checked without I/O.
    pub(crate) fn validate(&self) -> Result<(), PlatformError> {
        let bad = |message: String| PlatformError::operator(CHANNEL, message);
        if self.address.parse::<lettre::Address>().is_err() {
            return Err(bad(format!(
                "the bot address {:?} is not a valid e-mail address",
                self.address
            )));
        }
        for (what, host, security) in [
            ("IMAP", &self.imap.host, self.imap.security),
            ("SMTP", &self.smtp.host, self.smtp.security),
        ] {
            if host.is_empty() {
                return Err(bad(format!("the {what} host is empty")));
            }
            if security == Security::Plain && !is_loopback(host) {
                return Err(bad(format!(
                    "{what} without TLS is only allowed to a loopback address, not {host:?}; \
                     use Tls or StartTls"
                )));
            }
        }
        if self.imap.mailbox.is_empty() {
            return Err(bad("the IMAP mailbox name is empty".to_owned()));
        }
        if self.smtp.username.is_some() != self.smtp.password.is_some() {
            return Err(bad(
                "SMTP username and password must be set together".to_owned()
            ));
        }
        Ok(())
    }
}

/// True for `localhost` and loopback IP literals (`127.0.0.0/8`, `::1`).
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> EmailSettings {
        EmailSettings::new(
            "bot@example.org".into(),
            ImapSettings {
                host: "127.0.0.1".into(),
                port: 143,
                security: Security::Plain,
                username: "bot".into(),
                password: Secret::new("pw".to_owned()),
                mailbox: "INBOX".into(),
            },
            SmtpSettings {
                host: "::1".into(),
                port: 25,
                security: Security::Plain,
                username: None,
                password: None,
            },
        )
    }

    #[test]
    fn plain_only_to_loopback() {
        assert!(sample().validate().is_ok());
        let mut s = sample();
        s.imap.host = "mail.example.org".into();
        let err = s.validate().unwrap_err();
        assert!(err.message.contains("loopback"), "{err}");
        assert!(err.needs_operator);
        let mut s = sample();
        s.smtp.host = "10.0.0.1".into();
        assert!(s.validate().is_err());
        let mut s = sample();
        s.smtp.host = "mail.example.org".into();
        s.smtp.security = Security::StartTls;
        assert!(s.validate().is_ok());
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]"));
        assert!(is_loopback("127.3.4.5"));
        assert!(!is_loopback("127.0.0.1.example.org"));
    }

    #[test]
    fn bad_addresses_and_half_credentials_are_refused() {
        let mut s = sample();
        s.address = "not an address".into();
        assert!(s.validate().is_err());
        let mut s = sample();
        s.smtp.username = Some("bot".into());
        assert!(s.validate().is_err());
    }
}
