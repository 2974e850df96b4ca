//! A raw RFC 5322 message → [`InboundMessage`] (pure; parsing with mail-parser).
//!
//! - `sender_id` and `chat_id` are the single `From` address, lowercased; `chat_kind` is
//!   always DIRECT (e-mail has no groups here) and `mentions_bot` is false;
//! - the text is the `Subject`, a blank line and the first text/plain body (or the first
//!   HTML body with its tags stripped), without a quoted reply tail (`On … wrote:`
//!   followed by `>` lines), capped at [`TEXT_LIMIT`] bytes;
//! - attachments become [`MediaRef`]s (`<uidvalidity>:<uid>/<part>`): references, never
//!   content;
//! - `platform_message_id` is `<uidvalidity>:<uid>`, stable across replicas.
//!
//! Mail that must never be answered is skipped (the adapter marks it seen): anything
//! with `Auto-Submitted` other than `no` (RFC 3834 auto-replies, bounces), `Precedence:
//! bulk | list | junk`, a `List-Id` (mailing lists), mail from the bot's own address (a
//! loop), and mail with no or several `From` addresses. With an authserv-id configured,
//! mail whose sender is not authenticated (see [`super::auth`]) is skipped too.

use mail_parser::{Address, HeaderName, Message, MessageParser, MimeHeaders};
use pincer_proto::v1::{ChannelAccount, ChatKind, InboundMessage, MediaRef};

use super::auth::{Verdict, verify_sender};

/// The longest text handed to the gateway, in bytes (cut at a character boundary).
pub const TEXT_LIMIT: usize = 32 * 1024;

/// What a message needs for a threaded reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Its `Message-ID` without angle brackets, when it has a usable one.
    pub message_id: Option<String>,
    /// Its `References` ids, oldest first, without angle brackets.
    pub references: Vec<String>,
    /// Its subject (empty when none).
    pub subject: String,
}

/// Where a message was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLocation {
    /// The mailbox's UIDVALIDITY.
    pub uid_validity: u32,
    /// The message's UID.
    pub uid: u32,
}

impl MessageLocation {
    /// `<uidvalidity>:<uid>`.
    pub fn platform_message_id(&self) -> String {
        format!("{}:{}", self.uid_validity, self.uid)
    }

    /// Parses `<uidvalidity>:<uid>`.
    pub fn parse(platform_message_id: &str) -> Option<Self> {
        let (validity, uid) = platform_message_id.split_once(':')?;
        Some(Self {
            uid_validity: validity.parse().ok()?,
            uid: uid.parse().ok()?,
        })
    }
}

/// The fixed facts normalisation needs.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The account the message arrived on.
    pub account: &'a ChannelAccount,
    /// The bot's own address (mail from it is a loop).
    pub bot_address: &'a str,
    /// The authserv-id to require, if any.
    pub authserv_id: Option<&'a str>,
    /// Used when the message has no (valid) `Date`.
    pub now_ms: i64,
}

/// The outcome of normalising one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalized {
    /// A message for the gateway, and its threading headers.
    Message(Box<InboundMessage>, ThreadInfo),
    /// Nothing to forward (the adapter marks it seen); the reason is for the log.
    Skip(String),
    /// The sender could not be authenticated (a possible spoof): like [`Self::Skip`], but
    /// worth a warning.
    Unauthenticated(String),
}

/// Normalises the raw message found at `at`.
pub fn normalize(raw: &[u8], at: MessageLocation, cx: Context<'_>) -> Normalized {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Normalized::Skip("not a parsable e-mail message".to_owned());
    };
    let (sender, display_name) = match single_from(message.from()) {
        Ok(from) => from,
        Err(reason) => return Normalized::Skip(reason.to_owned()),
    };
    if sender.eq_ignore_ascii_case(cx.bot_address.trim()) {
        return Normalized::Skip("mail from the bot's own address (a loop)".to_owned());
    }
    if let Some(reason) = automatic(&message) {
        return Normalized::Skip(reason);
    }
    if let Some(authserv_id) = cx.authserv_id {
        let results: Vec<&str> = raw_headers(&message, "authentication-results").collect();
        let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
        if let Verdict::Fail(reason) = verify_sender(&results, authserv_id, domain) {
            return Normalized::Unauthenticated(format!(
                "sender {sender} not authenticated: {reason}"
            ));
        }
    }
    let subject = message.subject().unwrap_or_default().trim().to_owned();
    let body = strip_quoted_tail(&body_text(&message));
    let mut text = if subject.is_empty() {
        body.trim().to_owned()
    } else {
        format!("{subject}\n\n{}", body.trim())
    };
    truncate(&mut text, TEXT_LIMIT);
    let platform_message_id = at.platform_message_id();
    let media = message
        .attachments
        .iter()
        .filter_map(|&id| {
            let part = message.parts.get(id as usize)?;
            let mime_type = part.content_type().map_or_else(
                || "application/octet-stream".to_owned(),
                |ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                    None => ct.ctype().to_ascii_lowercase(),
                },
            );
            Some(MediaRef {
                kind: if mime_type.starts_with("image/") {
                    "image"
                } else {
                    "file"
                }
                .to_owned(),
                platform_file_id: format!("{platform_message_id}/{id}"),
                mime_type,
                size_bytes: part.len() as u64,
            })
        })
        .collect();
    let sent_at_ms = message
        .date()
        .map(|d| d.to_timestamp().saturating_mul(1000))
        .filter(|ms| *ms > 0)
        .unwrap_or(cx.now_ms);
    let thread = ThreadInfo {
        message_id: message.message_id().and_then(clean_message_id),
        references: references(&message),
        subject,
    };
    Normalized::Message(
        Box::new(InboundMessage {
            account: Some(cx.account.clone()),
            sender_id: sender.clone(),
            sender_display_name: display_name,
            chat_id: sender,
            chat_kind: ChatKind::Direct as i32,
            mentions: Vec::new(),
            mentions_bot: false,
            text,
            media,
            platform_message_id,
            sent_at_ms,
            thread_id: String::new(),
            fencing_token: 0,
        }),
        thread,
    )
}

/// Threading headers only (for a reply to a message no longer in the cache).
pub fn thread_info(raw: &[u8]) -> ThreadInfo {
    let Some(message) = MessageParser::default().parse_headers(raw) else {
        return ThreadInfo::default();
    };
    ThreadInfo {
        message_id: message.message_id().and_then(clean_message_id),
        references: references(&message),
        subject: message.subject().unwrap_or_default().trim().to_owned(),
    }
}

/// The one `From` address (lowercased) and its display name.
fn single_from(from: Option<&Address<'_>>) -> Result<(String, String), &'static str> {
    let Some(from) = from else {
        return Err("no From address");
    };
    let mut addrs = from.iter();
    let (Some(addr), None) = (addrs.next(), addrs.next()) else {
        return Err("not exactly one From address");
    };
    let Some(address) = addr.address() else {
        return Err("a From without an address");
    };
    let address = address.trim().to_ascii_lowercase();
    // Only addresses we could answer: this also keeps control characters out of chat ids.
    if address.parse::<lettre::Address>().is_err() {
        return Err("the From address is not a valid e-mail address");
    }
    let name = addr
        .name()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned();
    Ok((address, name))
}

/// Why a message was generated by a machine and must not be answered, if it was.
fn automatic(message: &Message<'_>) -> Option<String> {
    if let Some(value) = raw_headers(message, "auto-submitted").next() {
        let keyword = value
            .split([';', '('])
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if keyword != "no" {
            return Some(format!("Auto-Submitted: {keyword}"));
        }
    }
    for value in raw_headers(message, "precedence") {
        let value = value.trim().to_ascii_lowercase();
        if matches!(value.as_str(), "bulk" | "list" | "junk") {
            return Some(format!("Precedence: {value}"));
        }
    }
    if raw_headers(message, "list-id").next().is_some() {
        return Some("mailing list mail (List-Id)".to_owned());
    }
    None
}

/// The raw (unparsed) values of the top-level headers named `name`, in order.
fn raw_headers<'m>(message: &'m Message<'_>, name: &'static str) -> impl Iterator<Item = &'m str> {
    message
        .headers_raw()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn references(message: &Message<'_>) -> Vec<String> {
    let value = message.header(HeaderName::References);
    value
        .and_then(|v| {
            v.as_text_list()
                .map(|list| list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .or_else(|| v.as_text().map(|s| vec![s.to_owned()]))
        })
        .unwrap_or_default()
        .iter()
        .filter_map(|id| clean_message_id(id))
        .collect()
}

/// A message id we will copy into our own headers: visible ASCII without `<>`, spaces or
/// control characters, and not absurdly long. Anything else is dropped.
pub fn clean_message_id(id: &str) -> Option<String> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    let ok = !id.is_empty()
        && id.len() <= 250
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\' | b','));
    ok.then(|| id.to_owned())
}

/// The first plain-text body, or the first HTML body converted to text.
fn body_text(message: &Message<'_>) -> String {
    let Some(part) = message.text_part(0) else {
        return String::new();
    };
    let text = part.text_contents().unwrap_or_default();
    if part.is_text_html() {
        html_to_text(text)
    } else {
        text.replace("\r\n", "\n")
    }
}

/// Removes a trailing quoted reply: an `On … wrote:` line followed (up to the end, blank
/// lines allowed) by `>` lines only.
pub fn strip_quoted_tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut end = lines.len();
    while end > 0 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let mut start = end;
    let mut quoted = 0usize;
    while start > 0 {
        let line = lines[start - 1].trim_start();
        if line.starts_with('>') {
            quoted += 1;
        } else if !line.is_empty() {
            break;
        }
        start -= 1;
    }
    if quoted == 0 || start == 0 {
        return text.to_owned();
    }
    let attribution = lines[start - 1].trim();
    if attribution.starts_with("On ") && attribution.ends_with("wrote:") {
        let mut kept = lines[..start - 1].join("\n");
        kept.truncate(kept.trim_end().len());
        kept
    } else {
        text.to_owned()
    }
}

/// HTML → text, simply and safely: `<script>`/`<style>` contents dropped, tags removed,
/// block ends become line breaks, the common entities decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..lt]));
        let after = &rest[lt + 1..];
        let Some(gt) = after.find('>') else {
            rest = "";
            break;
        };
        let tag = after[..gt].trim().to_ascii_lowercase();
        rest = &after[gt + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if !tag.starts_with('/') && (name == "script" || name == "style") {
            let close = format!("</{name}");
            rest = match find_ascii_ci(rest, &close) {
                Some(at) => rest[at..].find('>').map_or("", |gt| &rest[at + gt + 1..]),
                None => "",
            };
            continue;
        }
        if matches!(
            name.as_str(),
            "br" | "p"
                | "div"
                | "li"
                | "tr"
                | "h1"
                | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
                | "blockquote"
                | "pre"
                | "table"
                | "ul"
                | "ol"
        ) {
            out.push('\n');
        }
    }
    out.push_str(&decode_entities(rest));
    // At most one blank line in a row, no trailing spaces.
    let mut text = String::with_capacity(out.len());
    let mut blank = 0;
    for line in out.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        text.push_str(line.trim_start());
        text.push('\n');
    }
    text.trim().to_owned()
}

fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|semi| *semi <= 10).and_then(|semi| {
            let entity = &after[..semi];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32)
                    .filter(|c| !c.is_control() || *c == '\n'),
            };
            c.map(|c| (c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Cuts `text` to at most `limit` bytes at a character boundary.
fn truncate(text: &mut String, limit: usize) {
    if text.len() <= limit {
        return;
    }
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn account() -> ChannelAccount {
        ChannelAccount {
            channel: "email".into(),
            account_id: "default".into(),
        }
    }

    const AT: MessageLocation = MessageLocation {
        uid_validity: 7,
        uid: 42,
    };

    fn run(raw: &str, authserv_id: Option<&str>) -> Normalized {
        let account = account();
        normalize(
            raw.as_bytes(),
            AT,
            Context {
                account: &account,
                bot_address: "Bot@Example.org",
                authserv_id,
                now_ms: 5,
            },
        )
    }

    fn message(raw: &str) -> (InboundMessage, ThreadInfo) {
        match run(raw, None) {
            Normalized::Message(m, t) => (*m, t),
            Normalized::Skip(reason) | Normalized::Unauthenticated(reason) => {
                panic!("skipped: {reason}")
            }
        }
    }

    fn skipped(raw: &str) -> String {
        match run(raw, None) {
            Normalized::Skip(reason) => reason,
            Normalized::Message(m, _) => panic!("not skipped: {m:?}"),
            Normalized::Unauthenticated(reason) => panic!("unauthenticated: {reason}"),
        }
    }

    #[test]
    fn a_plain_mail_is_normalised() {
        let raw = "From: Alice Example <Alice@Example.ORG>\r\nTo: bot@example.org\r\n\
                   Subject: Lunch?\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\n\
                   Message-ID: <m1@example.org>\r\nReferences: <r0@x> <r1@y>\r\n\r\n\
                   Shall we?\r\n\r\nOn Mon, Bob wrote:\r\n> earlier\r\n>\r\n> more\r\n";
        let (m, t) = message(raw);
        assert_eq!(m.sender_id, "alice@example.org");
        assert_eq!(m.chat_id, "alice@example.org");
        assert_eq!(m.sender_display_name, "Alice Example");
        assert_eq!(m.chat_kind, ChatKind::Direct as i32);
        assert!(!m.mentions_bot);
        assert_eq!(m.text, "Lunch?\n\nShall we?");
        assert_eq!(m.platform_message_id, "7:42");
        assert_eq!(m.sent_at_ms, 1_751_364_000_000);
        assert_eq!(t.message_id.as_deref(), Some("m1@example.org"));
        assert_eq!(t.references, vec!["r0@x".to_owned(), "r1@y".to_owned()]);
        assert_eq!(t.subject, "Lunch?");
    }

    #[test]
    fn html_only_mail_is_stripped() {
        let raw = "From: a@example.org\r\nSubject: s\r\nContent-Type: text/html\r\n\r\n\
                   <html><style>p{}</style><script>alert(1)</script><p>Hi &amp; \
                   <b>bye</b></p><br>x&lt;y&#33;</html>\r\n";
        let (m, _) = message(raw);
        assert_eq!(m.text, "s\n\nHi & bye\n\nx<y!");
        assert_eq!(m.sent_at_ms, 5, "no Date: now");
    }

    #[test]
    fn machine_mail_and_loops_are_skipped() {
        let base = "From: a@example.org\r\nSubject: s\r\n";
        assert!(skipped(&format!("{base}Auto-Submitted: auto-replied\r\n\r\nx")).contains("Auto"));
        assert!(skipped(&format!("{base}Precedence: Bulk\r\n\r\nx")).contains("bulk"));
        assert!(skipped(&format!("{base}Precedence: junk\r\n\r\nx")).contains("junk"));
        assert!(skipped(&format!("{base}List-Id: <l.example.org>\r\n\r\nx")).contains("List"));
        assert!(skipped("From: BOT@example.org\r\nSubject: s\r\n\r\nx").contains("loop"));
        assert!(skipped("Subject: s\r\n\r\nx").contains("From"));
        assert!(
            skipped("From: a@example.org, b@example.org\r\nSubject: s\r\n\r\nx").contains("one")
        );
        let (m, _) = message(&format!(
            "{base}Auto-Submitted: no\r\nPrecedence: first-class\r\n\r\nx"
        ));
        assert_eq!(m.text, "s\n\nx");
    }

    #[test]
    fn unauthenticated_senders_are_skipped_when_required() {
        let raw = "Authentication-Results: mx.example.org; dmarc=fail\r\n\
                   Authentication-Results: mx.example.org; dmarc=pass\r\n\
                   From: a@example.org\r\nSubject: s\r\n\r\nx";
        assert!(matches!(
            run(raw, Some("mx.example.org")),
            Normalized::Unauthenticated(_)
        ));
        assert!(matches!(run(raw, None), Normalized::Message(..)));
        let good = "Authentication-Results: mx.example.org; dkim=pass header.d=example.org\r\n\
                    From: a@example.org\r\nSubject: s\r\n\r\nx";
        assert!(matches!(
            run(good, Some("mx.example.org")),
            Normalized::Message(..)
        ));
    }

    #[test]
    fn attachments_are_references() {
        let raw = "From: a@example.org\r\nSubject: doc\r\nMIME-Version: 1.0\r\n\
                   Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n\
                   Content-Type: text/plain\r\n\r\nsee attached\r\n--XX\r\n\
                   Content-Type: application/pdf; name=a.pdf\r\n\
                   Content-Disposition: attachment; filename=a.pdf\r\n\
                   Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX\r\n\
                   Content-Type: image/png\r\nContent-Disposition: attachment\r\n\
                   Content-Transfer-Encoding: base64\r\n\r\niVBORw==\r\n--XX--\r\n";
        let (m, _) = message(raw);
        assert_eq!(m.text, "doc\n\nsee attached");
        assert_eq!(m.media.len(), 2);
        assert_eq!(m.media[0].kind, "file");
        assert_eq!(m.media[0].mime_type, "application/pdf");
        assert_eq!(m.media[0].size_bytes, 9);
        assert!(m.media[0].platform_file_id.starts_with("7:42/"));
        assert_eq!(m.media[1].kind, "image");
    }

    #[test]
    fn quoted_tails_need_an_attribution() {
        assert_eq!(strip_quoted_tail("a\n> b"), "a\n> b");
        assert_eq!(strip_quoted_tail("a\nOn x, y wrote:\n> b\n\n"), "a");
        assert_eq!(
            strip_quoted_tail("On x wrote:\n> q\nmy answer"),
            "On x wrote:\n> q\nmy answer",
            "an interleaved answer is kept"
        );
    }

    #[test]
    fn message_ids_are_sanitised() {
        assert_eq!(clean_message_id(" <a@b> ").as_deref(), Some("a@b"));
        assert_eq!(clean_message_id("a b@c"), None);
        assert_eq!(clean_message_id("a\r\nX-Evil: 1"), None);
        assert_eq!(clean_message_id(""), None);
        assert_eq!(MessageLocation::parse("7:42"), Some(AT));
        assert_eq!(MessageLocation::parse("7:x"), None);
    }

    #[test]
    fn long_text_is_capped() {
        let raw = format!(
            "From: a@example.org\r\nSubject: s\r\n\r\n{}",
            "é".repeat(40_000)
        );
        let (m, _) = message(&raw);
        assert!(m.text.len() <= TEXT_LIMIT);
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
            let account = account();
            let cx = Context {
                account: &account,
                bot_address: "b@x.org",
                authserv_id: Some("mx"),
                now_ms: 0,
            };
            let _ = normalize(&raw, AT, cx);
            let _ = thread_info(&raw);
        }

        #[test]
        fn html_and_quotes_never_panic(text in "\\PC{0,300}") {
            let _ = html_to_text(&text);
            let _ = strip_quoted_tail(&text);
        }

        #[test]
        fn generated_mail_round_trips(
            local in "[a-z]{1,10}",
            subject in "[A-Za-z0-9][A-Za-z0-9 ]{0,29}",
            body in "[A-Za-z0-9 .,]{1,100}",
        ) {
            let raw = format!("From: {local}@example.com\r\nSubject: {subject}\r\n\r\n{body}\r\n");
            let (m, t) = message(&raw);
            prop_assert_eq!(m.sender_id, format!("{local}@example.com"));
            prop_assert_eq!(t.subject, subject.trim());
            prop_assert_eq!(m.text, format!("{}\n\n{}", subject.trim(), body.trim()));
        }
    }
}
