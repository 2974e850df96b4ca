//! Outbound mail: building a reply with lettre's builder (so header values from untrusted
//! mail can never inject headers: lettre encodes them) and submitting it over SMTP.
//!
//! One e-mail per send: `From` the bot, `To` the chat id, a `text/plain` body (the
//! Markdown rendered as plain text) with a `text/html` alternative, our own `Message-ID`,
//! and for replies `In-Reply-To`, `References` (the original's plus its id) and
//! `Subject: Re: <original>` (no second `Re:`). SMTP errors: 4xx and network failures are
//! retryable, 5xx permanent, refused authentication (530/534/535/538) and client-side
//! configuration problems (no STARTTLS, no usable AUTH) need the operator.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio_rustls::rustls::pki_types::{CertificateDer, pem::PemObject};

use super::CHANNEL;
use super::normalize::ThreadInfo;
use super::settings::{Security, SmtpSettings};
use crate::adapter::PlatformError;
use crate::format::{Markup, render};

/// The largest text (Markdown source) we send in one e-mail, in bytes.
pub const MAX_TEXT: usize = 256 * 1024;
/// Subjects of new (non-reply) mail are cut to this many characters.
const SUBJECT_CHARS: usize = 60;

/// Builds the transport for the configured server.
pub fn transport(
    settings: &SmtpSettings,
    extra_ca_pem: Option<&str>,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, PlatformError> {
    let host = settings.host.trim_start_matches('[').trim_end_matches(']');
    let tls = match settings.security {
        Security::Plain => Tls::None,
        Security::Tls => Tls::Wrapper(tls_parameters(host, extra_ca_pem)?),
        Security::StartTls => Tls::Required(tls_parameters(host, extra_ca_pem)?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(settings.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
        builder = builder
            .credentials(Credentials::new(user.clone(), password.expose().to_owned()))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(builder.build())
}

fn tls_parameters(host: &str, extra_ca_pem: Option<&str>) -> Result<TlsParameters, PlatformError> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(pem) = extra_ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| {
                PlatformError::operator(CHANNEL, format!("extra CA PEM is not valid: {e}"))
            })?;
            let cert = Certificate::from_der(cert.to_vec()).map_err(|e| {
                PlatformError::operator(CHANNEL, format!("extra CA certificate refused: {e}"))
            })?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build_rustls()
        .map_err(|e| PlatformError::operator(CHANNEL, format!("SMTP TLS setup failed: {e}")))
}

/// The `Subject` of a reply: `Re: <original>` unless it already starts with `Re:`.
pub fn reply_subject(original: &str) -> String {
    let original = one_line(original);
    let has_re = original
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("re:"));
    if has_re {
        original
    } else if original.is_empty() {
        "Re: your message".to_owned()
    } else {
        format!("Re: {original}")
    }
}

/// Control characters (CR, LF, tabs…) become spaces; runs of white space collapse.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The subject of a new message: its first non-empty line, shortened.
fn first_line_subject(plain: &str) -> String {
    let line = plain
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("Message");
    let line = one_line(line);
    if line.chars().count() > SUBJECT_CHARS {
        let cut: String = line.chars().take(SUBJECT_CHARS - 1).collect();
        format!("{}…", cut.trim_end())
    } else {
        line
    }
}

/// What goes into one outgoing e-mail.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// The bot's mailbox.
    pub from: &'a Mailbox,
    /// The recipient (the chat id).
    pub to: &'a str,
    /// The Markdown text.
    pub markdown: &'a str,
    /// The message replied to, if any.
    pub reply_to: Option<&'a ThreadInfo>,
    /// Our `Message-ID`, without angle brackets.
    pub message_id: &'a str,
}

/// Builds the e-mail. Errors are about the target (bad address), not retryable.
pub fn build(out: &Outgoing<'_>) -> Result<Message, PlatformError> {
    let to: Mailbox = out.to.parse().map_err(|e| {
        PlatformError::permanent(CHANNEL, format!("{:?} is not a mailbox: {e}", out.to))
    })?;
    let plain = render(out.markdown, Markup::Plain);
    let html = render(out.markdown, Markup::Html);
    let mut builder = Message::builder()
        .from(out.from.clone())
        .to(to)
        .message_id(Some(format!("<{}>", out.message_id)))
        .header(AutoSubmittedAutoReplied);
    let subject = match out.reply_to {
        Some(original) => {
            if let Some(id) = &original.message_id {
                let mut references: Vec<String> = original
                    .references
                    .iter()
                    .map(|r| format!("<{r}>"))
                    .collect();
                references.push(format!("<{id}>"));
                builder = builder
                    .in_reply_to(format!("<{id}>"))
                    .references(references.join(" "));
            }
            reply_subject(&original.subject)
        }
        None => first_line_subject(&plain),
    };
    let html_doc = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>{html}</body></html>"
    );
    builder
        .subject(subject)
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(plain),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html_doc),
                ),
        )
        .map_err(|e| PlatformError::permanent(CHANNEL, format!("cannot build the e-mail: {e}")))
}

/// `Auto-Submitted: auto-replied` (RFC 3834): our mail is a machine's answer, so
/// well-behaved auto-responders (vacation replies) do not answer it, which breaks loops.
#[derive(Debug, Clone, Copy)]
struct AutoSubmittedAutoReplied;

impl lettre::message::header::Header for AutoSubmittedAutoReplied {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), "auto-replied".to_owned())
    }
}

/// Submits one e-mail.
pub async fn submit(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    message: Message,
) -> Result<(), PlatformError> {
    transport.send(message).await.map(|_| ()).map_err(classify)
}

/// Maps an SMTP failure (its text never contains the password: lettre does not echo it).
pub fn classify(e: lettre::transport::smtp::Error) -> PlatformError {
    let message = format!("SMTP: {e}");
    if let Some(code) = e.status() {
        let code = u16::from(code);
        // Authentication required / too weak / refused / needs encryption.
        if matches!(code, 530 | 534 | 535 | 538) {
            return PlatformError::operator(CHANNEL, message);
        }
    }
    if e.is_permanent() {
        PlatformError::permanent(CHANNEL, message)
    } else if e.is_client() {
        // Our configuration does not fit the server (no STARTTLS, no usable AUTH).
        PlatformError::operator(CHANNEL, message)
    } else {
        // 4xx, network, TLS, timeouts.
        PlatformError::transient(CHANNEL, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot() -> Mailbox {
        "Pincer <bot@example.org>".parse().unwrap()
    }

    fn formatted(out: &Outgoing<'_>) -> String {
        String::from_utf8(build(out).unwrap().formatted()).unwrap()
    }

    fn headers(mail: &str) -> Vec<String> {
        let head = mail.split("\r\n\r\n").next().unwrap();
        // Unfold, then one entry per header.
        head.replace("\r\n ", " ")
            .replace("\r\n\t", " ")
            .split("\r\n")
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn reply_subjects_get_one_re() {
        assert_eq!(reply_subject("Lunch"), "Re: Lunch");
        assert_eq!(reply_subject("RE: Lunch"), "RE: Lunch");
        assert_eq!(reply_subject("re:Lunch"), "re:Lunch");
        assert_eq!(reply_subject("  "), "Re: your message");
        assert_eq!(reply_subject("a\r\nb"), "Re: a b");
    }

    #[test]
    fn a_reply_is_threaded() {
        let bot = bot();
        let thread = ThreadInfo {
            message_id: Some("m2@example.com".into()),
            references: vec!["m0@example.com".into(), "m1@example.com".into()],
            subject: "Plans".into(),
        };
        let mail = formatted(&Outgoing {
            from: &bot,
            to: "alice@example.com",
            markdown: "**Yes**, at *noon*.",
            reply_to: Some(&thread),
            message_id: "ours@example.org",
        });
        let hs = headers(&mail);
        assert!(hs.contains(&"Subject: Re: Plans".to_owned()), "{hs:?}");
        assert!(
            hs.contains(&"In-Reply-To: <m2@example.com>".to_owned()),
            "{hs:?}"
        );
        assert!(
            hs.contains(
                &"References: <m0@example.com> <m1@example.com> <m2@example.com>".to_owned()
            ),
            "{hs:?}"
        );
        assert!(
            hs.contains(&"Message-ID: <ours@example.org>".to_owned()),
            "{hs:?}"
        );
        assert!(hs.contains(&"To: alice@example.com".to_owned()), "{hs:?}");
        assert!(
            hs.iter().any(|h| h == "Auto-Submitted: auto-replied"),
            "{hs:?}"
        );
        assert!(mail.contains("multipart/alternative"));
        assert!(mail.contains("Yes, at noon."), "{mail}");
        assert!(
            mail.replace("=\r\n", "").contains("<strong>Yes</strong>"),
            "{mail}"
        );
    }

    #[test]
    fn crlf_in_a_subject_does_not_inject_a_header() {
        let bot = bot();
        let thread = ThreadInfo {
            message_id: None,
            references: Vec::new(),
            subject: "Hello\r\nBcc: victim@example.net\r\nX-Evil: 1".into(),
        };
        let mail = formatted(&Outgoing {
            from: &bot,
            to: "alice@example.com",
            markdown: "hi",
            reply_to: Some(&thread),
            message_id: "ours@example.org",
        });
        let hs = headers(&mail);
        assert!(
            !hs.iter()
                .any(|h| h.to_ascii_lowercase().starts_with("bcc:")),
            "{hs:?}"
        );
        assert!(!hs.iter().any(|h| h.starts_with("X-Evil")), "{hs:?}");
        assert!(
            !hs.iter().any(|h| h.starts_with("In-Reply-To")),
            "no id, no In-Reply-To"
        );
        // Even straight into lettre's builder (no sanitising of ours), CR/LF cannot break out.
        let raw = Message::builder()
            .from(bot.clone())
            .to("alice@example.com".parse().unwrap())
            .subject("Hi\r\nX-Evil: 1")
            .body("x".to_owned())
            .unwrap();
        let raw = String::from_utf8(raw.formatted()).unwrap();
        assert!(
            !headers(&raw).iter().any(|h| h.starts_with("X-Evil")),
            "{raw}"
        );
    }

    proptest::proptest! {
        #[test]
        fn untrusted_subjects_and_ids_never_add_headers(
            subject in "\\PC{0,80}(\r\n|\n|\r)[A-Za-z-]{1,12}: \\PC{0,20}",
            id in "[ -~]{1,30}(\r\n)?[ -~]{0,10}",
        ) {
            let bot = bot();
            let thread = ThreadInfo {
                message_id: crate::email::normalize::clean_message_id(&id),
                references: Vec::new(),
                subject,
            };
            let mail = formatted(&Outgoing {
                from: &bot,
                to: "alice@example.com",
                markdown: "hi",
                reply_to: Some(&thread),
                message_id: "ours@example.org",
            });
            let allowed = [
                "From", "To", "Subject", "Message-ID", "In-Reply-To", "References", "Date",
                "Auto-Submitted", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
            ];
            let top: Vec<String> = headers(&mail)
                .into_iter()
                .take_while(|h| !h.is_empty())
                .collect();
            for h in top {
                let name = h.split(':').next().unwrap_or_default();
                proptest::prop_assert!(allowed.contains(&name), "unexpected header {h:?}");
            }
        }
    }

    #[test]
    fn bad_recipients_and_new_subjects() {
        let bot = bot();
        let out = |to: &'static str| Outgoing {
            from: &bot,
            to,
            markdown: "x",
            reply_to: None,
            message_id: "a@b",
        };
        assert!(build(&out("not an address")).is_err());
        assert!(build(&out("a@b.org\r\nBcc: c@d.org")).is_err());
        assert_eq!(first_line_subject("\n# Title\nbody"), "# Title");
        let long = "word ".repeat(40);
        assert!(first_line_subject(&long).chars().count() <= SUBJECT_CHARS);
    }
}
