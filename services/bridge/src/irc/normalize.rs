//! An inbound `PRIVMSG` → [`InboundMessage`] (pure).
//!
//! - A message to our nick is a query: `ChatKind::Direct`, `chat_id` = the sender's nick.
//!   A message to a channel: `ChatKind::Group`, `chat_id` = the channel, lower-cased.
//! - `sender_id` is the full hostmask `nick!user@host` as the server reports it. IRC has no
//!   stable user id without services; the hostmask is the closest (a nick alone can be
//!   taken by anyone). An IRCv3 `account` tag goes into the display name only.
//! - `\x01ACTION x\x01` becomes the text `* nick x`; other CTCP requests are skipped, and
//!   so is every NOTICE (the adapter never answers one, as RFC 2812 requires).
//! - `platform_message_id` is the IRCv3 `msgid` tag when present, else an id the adapter
//!   makes up per connection (IRC has no message ids).
//! - `sent_at_ms` is the `time` tag (IRCv3 server-time) when present, else now.

use pincer_proto::v1::{ChannelAccount, ChatKind, InboundMessage};

use super::text::{Ctcp, ctcp, irc_eq, irc_lowercase, is_channel, mentions};
use super::wire::Message;

/// The outcome of normalising one line.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalized {
    /// A message for the gateway.
    Message(Box<InboundMessage>),
    /// Nothing to forward; the reason is for debug logs.
    Skip(&'static str),
}

/// Normalises one `PRIVMSG` received by `our_nick` for `account`. `fallback_id` makes a
/// platform id when the server sent no `msgid`; `now_ms` is used without a `time` tag.
pub fn normalize(
    message: &Message,
    our_nick: &str,
    account: &ChannelAccount,
    fallback_id: impl FnOnce() -> String,
    now_ms: i64,
) -> Normalized {
    if message.command != "PRIVMSG" {
        return Normalized::Skip("not a PRIVMSG");
    }
    let (Some(target), Some(raw_text)) = (message.param(0), message.param(1)) else {
        return Normalized::Skip("PRIVMSG without target or text");
    };
    let Some(hostmask) = message.prefix.as_deref().filter(|p| p.contains('!')) else {
        return Normalized::Skip("PRIVMSG without a user prefix");
    };
    let Some(nick) = message.source_nick() else {
        return Normalized::Skip("PRIVMSG without a sender nick");
    };
    if irc_eq(nick, our_nick) {
        return Normalized::Skip("our own message");
    }
    let text = match ctcp(raw_text) {
        Ctcp::Text(t) => t.to_owned(),
        Ctcp::Action(action) => format!("* {nick} {action}"),
        Ctcp::Other => return Normalized::Skip("a CTCP request"),
    };
    if text.trim().is_empty() {
        return Normalized::Skip("an empty message");
    }
    // A STATUSMSG target (`@#chan`) is still the channel.
    let channel = target.trim_start_matches(['@', '+', '%']);
    let (chat_kind, chat_id) = if is_channel(channel) {
        (ChatKind::Group, irc_lowercase(channel))
    } else if irc_eq(target, our_nick) {
        (ChatKind::Direct, nick.to_owned())
    } else {
        return Normalized::Skip("PRIVMSG to neither us nor a channel");
    };
    let (mentioned, mentions_bot) = mentions(&text, our_nick);
    let display_name = match message.tag("account") {
        Some(account) if !account.is_empty() && account != "*" && account != nick => {
            format!("{nick} ({account})")
        }
        _ => nick.to_owned(),
    };
    let platform_message_id = message
        .tag("msgid")
        .filter(|id| !id.is_empty())
        .map_or_else(fallback_id, str::to_owned);
    let sent_at_ms = message
        .tag("time")
        .and_then(parse_server_time)
        .unwrap_or(now_ms);
    Normalized::Message(Box::new(InboundMessage {
        account: Some(account.clone()),
        sender_id: hostmask.to_owned(),
        sender_display_name: display_name,
        chat_id,
        chat_kind: chat_kind as i32,
        mentions: mentioned,
        mentions_bot,
        text,
        media: Vec::new(),
        platform_message_id,
        sent_at_ms,
        thread_id: String::new(),
        fencing_token: 0,
    }))
}

/// Milliseconds since the epoch of an IRCv3 server-time value
/// (`YYYY-MM-DDThh:mm:ss[.sss]Z`, UTC).
pub fn parse_server_time(value: &str) -> Option<i64> {
    let value = value.strip_suffix('Z')?;
    let (date, time) = value.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut time_parts = hms.splitn(3, ':');
    let hour: i64 = time_parts.next()?.parse().ok()?;
    let minute: i64 = time_parts.next()?.parse().ok()?;
    let second: i64 = time_parts.next()?.parse().ok()?;
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 61;
    if !valid || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    let days = days_from_civil(year, month, day);
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn account() -> ChannelAccount {
        ChannelAccount {
            channel: "irc".into(),
            account_id: "default".into(),
        }
    }

    fn norm(line: &str) -> Normalized {
        let message = Message::parse(line).unwrap();
        normalize(&message, "pincer", &account(), || "c1:7".to_owned(), 42)
    }

    fn msg(line: &str) -> InboundMessage {
        match norm(line) {
            Normalized::Message(m) => *m,
            Normalized::Skip(why) => panic!("skipped: {why}"),
        }
    }

    #[test]
    fn a_query_is_direct_and_keyed_by_hostmask() {
        let m = msg(":Alice!al@host.example PRIVMSG Pincer :hello");
        assert_eq!(m.chat_kind, ChatKind::Direct as i32);
        assert_eq!(m.chat_id, "Alice");
        assert_eq!(m.sender_id, "Alice!al@host.example");
        assert_eq!(m.sender_display_name, "Alice");
        assert_eq!(m.text, "hello");
        assert_eq!(m.platform_message_id, "c1:7");
        assert_eq!(m.sent_at_ms, 42);
        assert!(!m.mentions_bot, "only the text decides");
    }

    #[test]
    fn a_channel_message_is_group_with_mentions() {
        let m = msg(":alice!a@h PRIVMSG #Pincer-Dev :just chatting");
        assert_eq!(m.chat_kind, ChatKind::Group as i32);
        assert_eq!(m.chat_id, "#pincer-dev");
        assert!(!m.mentions_bot);
        let m = msg(":alice!a@h PRIVMSG #dev :PINCER: hi");
        assert!(m.mentions_bot);
        assert_eq!(m.mentions, vec!["PINCER".to_owned()]);
    }

    #[test]
    fn tags_give_id_time_and_account() {
        let m = msg(
            "@msgid=abc;time=2024-01-02T03:04:05.678Z;account=alice_acct :alice!a@h PRIVMSG #c :x",
        );
        assert_eq!(m.platform_message_id, "abc");
        assert_eq!(m.sent_at_ms, 1_704_164_645_678);
        assert_eq!(m.sender_display_name, "alice (alice_acct)");
        assert_eq!(m.sender_id, "alice!a@h");
    }

    #[test]
    fn actions_become_text_and_other_ctcp_and_notices_are_skipped() {
        assert_eq!(
            msg(":bob!b@h PRIVMSG #c :\x01ACTION waves\x01").text,
            "* bob waves"
        );
        assert!(matches!(
            norm(":bob!b@h PRIVMSG pincer :\x01VERSION\x01"),
            Normalized::Skip(_)
        ));
        assert!(matches!(
            norm(":bob!b@h NOTICE pincer :hi"),
            Normalized::Skip(_)
        ));
        assert!(matches!(
            norm(":irc.test PRIVMSG pincer :hi"),
            Normalized::Skip(_)
        ));
        assert!(matches!(
            norm(":pincer!p@h PRIVMSG #c :echo"),
            Normalized::Skip(_)
        ));
        assert!(matches!(
            norm(":bob!b@h PRIVMSG someoneelse :hi"),
            Normalized::Skip(_)
        ));
        assert!(matches!(norm(":bob!b@h PRIVMSG #c"), Normalized::Skip(_)));
    }

    #[test]
    fn server_time_parses_strictly() {
        assert_eq!(parse_server_time("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_server_time("2000-03-01T00:00:01Z"),
            Some(951_868_801_000)
        );
        assert_eq!(
            parse_server_time("2024-01-02T03:04:05.6Z"),
            Some(1_704_164_645_600)
        );
        assert_eq!(parse_server_time("2024-01-02 03:04:05Z"), None);
        assert_eq!(parse_server_time("2024-13-02T03:04:05Z"), None);
        assert_eq!(parse_server_time("2024-01-02T03:04:05.x1Z"), None);
    }

    proptest! {
        #[test]
        fn never_panics(line in "\\PC*", time in "\\PC{0,30}") {
            if let Ok(message) = Message::parse(&line) {
                let _ = normalize(&message, "pincer", &account(), String::new, 0);
            }
            let _ = parse_server_time(&time);
        }
    }
}
