//! IRC text rules (pure): RFC 1459 case mapping, nick mentions, CTCP, and making outbound
//! text safe for a PRIVMSG.
//!
//! Outbound text is split on newlines (every kind: `\r\n`, `\r`, `\n`) into separate lines;
//! within a line every control character is dropped except the formatting codes IRC
//! clients understand (bold `\x02`, colour `\x03`, monospace `\x11`, reset `\x0f`, reverse
//! `\x16`, italic `\x1d`, strike `\x1e`, underline `\x1f`); a tab becomes a space. So no
//! outbound parameter can contain CR, LF or NUL (the serialiser refuses them too).

/// The IRC formatting codes kept in outbound text.
const FORMATTING: [char; 8] = [
    '\x02', '\x03', '\x0f', '\x11', '\x16', '\x1d', '\x1e', '\x1f',
];

/// Lower-cases `s` with RFC 1459 case mapping (`[]\~` are the upper case of `{}|^`).
pub fn irc_lowercase(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// True when two names are equal under RFC 1459 case mapping.
pub fn irc_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && irc_lowercase(a) == irc_lowercase(b)
}

/// True for a channel name (by its prefix character).
pub fn is_channel(target: &str) -> bool {
    target.starts_with(['#', '&', '+', '!'])
}

/// Characters that may appear in a nick (RFC 2812 letters, digits and specials, plus `-`).
fn is_nick_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "[]\\`_^{|}-".contains(c)
}

/// The nick a line addresses with `nick:` / `nick,` at its start, if any.
pub fn addressed_nick(text: &str) -> Option<&str> {
    let end = text.find([':', ','])?;
    let nick = &text[..end];
    (!nick.is_empty() && nick.chars().all(is_nick_char)).then_some(nick)
}

/// Whether `text` addresses or mentions `our_nick` (as a whole word, case-insensitive),
/// and the nicks addressed with `nick:` / `nick,` at the start.
pub fn mentions(text: &str, our_nick: &str) -> (Vec<String>, bool) {
    let addressed: Vec<String> = addressed_nick(text)
        .map(str::to_owned)
        .into_iter()
        .collect();
    let by_address = addressed.iter().any(|n| irc_eq(n, our_nick));
    let as_word = !our_nick.is_empty()
        && text
            .split(|c: char| !is_nick_char(c))
            .any(|word| irc_eq(word, our_nick));
    (addressed, by_address || as_word)
}

/// What a PRIVMSG's text is, CTCP-wise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ctcp<'a> {
    /// Plain text.
    Text(&'a str),
    /// `\x01ACTION text\x01`: an action ("/me").
    Action(&'a str),
    /// Another CTCP request (VERSION, PING, …): ignored.
    Other,
}

/// Classifies a PRIVMSG text.
pub fn ctcp(text: &str) -> Ctcp<'_> {
    let Some(inner) = text.strip_prefix('\x01') else {
        return Ctcp::Text(text);
    };
    let inner = inner.strip_suffix('\x01').unwrap_or(inner);
    match inner.split_once(' ') {
        Some((verb, action)) if verb.eq_ignore_ascii_case("ACTION") => Ctcp::Action(action),
        None if inner.eq_ignore_ascii_case("ACTION") => Ctcp::Action(""),
        _ => Ctcp::Other,
    }
}

/// Removes control characters except IRC formatting codes from one line; tabs become
/// spaces. The result never contains CR, LF or NUL.
pub fn sanitize_line(line: &str) -> String {
    line.chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            c if FORMATTING.contains(&c) => Some(c),
            c if c.is_control() => None,
            // Unicode line and paragraph separators would start a new line in clients.
            '\u{2028}' | '\u{2029}' => None,
            c => Some(c),
        })
        .collect()
}

/// Splits `text` on every kind of newline into sanitised lines, dropping lines that are
/// empty or only whitespace / formatting (IRC cannot send an empty message).
pub fn safe_lines(text: &str) -> Vec<String> {
    text.split(['\r', '\n'])
        .map(sanitize_line)
        .filter(|l| {
            l.chars()
                .any(|c| !c.is_whitespace() && !FORMATTING.contains(&c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn case_mapping_is_rfc1459() {
        assert_eq!(irc_lowercase("Pincer[A]\\~"), "pincer{a}|^");
        assert!(irc_eq("PINCER{}", "pincer[]"));
        assert!(!irc_eq("pincer", "pincer_"));
    }

    #[test]
    fn finds_mentions() {
        assert_eq!(
            mentions("pincer: hi", "Pincer"),
            (vec!["pincer".to_owned()], true)
        );
        assert!(mentions("PINCER, hi", "pincer").1);
        assert!(mentions("hey pincer!", "pincer").1);
        assert_eq!(
            mentions("alice: hi", "pincer"),
            (vec!["alice".to_owned()], false)
        );
        assert!(!mentions("pincers are claws", "pincer").1);
        assert!(!mentions("pincer_ is not me", "pincer").1);
        assert_eq!(mentions("just text", "pincer"), (Vec::new(), false));
        assert_eq!(mentions("http://x", "pincer").0, vec!["http".to_owned()]);
    }

    #[test]
    fn classifies_ctcp() {
        assert_eq!(ctcp("hello"), Ctcp::Text("hello"));
        assert_eq!(ctcp("\x01ACTION waves\x01"), Ctcp::Action("waves"));
        assert_eq!(ctcp("\x01action waves"), Ctcp::Action("waves"));
        assert_eq!(ctcp("\x01VERSION\x01"), Ctcp::Other);
        assert_eq!(ctcp("\x01"), Ctcp::Other);
    }

    #[test]
    fn sanitises_outbound_text() {
        assert_eq!(
            safe_lines("a\r\nQUIT :x\nPRIVMSG #other :spam\rb"),
            vec!["a", "QUIT :x", "PRIVMSG #other :spam", "b"]
        );
        assert_eq!(
            safe_lines("\x02bold\x02\tx\0y\x07\x1b[0m"),
            vec!["\x02bold\x02 xy[0m"]
        );
        assert!(safe_lines("\n\n  \n\x02\x02\n").is_empty());
        assert_eq!(safe_lines("a\u{2028}b"), vec!["ab"]);
    }

    proptest! {
        #[test]
        fn safe_lines_never_contain_line_breaks(text in "\\PC*|[\r\n\0\x01\x02 a]{0,20}") {
            for line in safe_lines(&text) {
                prop_assert!(!line.contains(['\r', '\n', '\0', '\x01']));
                prop_assert!(!line.is_empty());
            }
        }

        #[test]
        fn text_helpers_never_panic(text in "\\PC*", nick in "[a-z\\[\\]]{0,8}") {
            let _ = mentions(&text, &nick);
            let _ = ctcp(&text);
        }
    }
}
