//! IRC lines: parsing what the server sends and serialising what we send (pure).
//!
//! Grammar (RFC 1459 / 2812 with IRCv3 message tags):
//! `['@' tags SPACE] [':' prefix SPACE] command *(SPACE middle) [SPACE ':' trailing]`.
//!
//! - [`Message::parse`] accepts one line without its CR LF, is lenient about repeated spaces
//!   (as servers are) and never panics; it rejects lines with no command.
//! - [`Message::to_line`] refuses anything that could break out of its line or field: CR,
//!   LF or NUL anywhere, a space or a leading `:` in a middle parameter, an empty middle
//!   parameter, a bad command. Only the last parameter may contain spaces (it is sent as
//!   the trailing parameter). This is the only way the adapter produces wire lines, so a
//!   text can never smuggle a second command onto the connection.
//! - Tag values are escaped / unescaped as IRCv3 specifies (`\:` `\s` `\\` `\r` `\n`).

use std::fmt::Write as _;

/// The longest line we accept from a server, tags included (IRCv3: 4094 bytes of tags
/// plus 512 of message).
pub const MAX_INBOUND_LINE: usize = 8191;
/// The classic limit of a line without tags, CR LF included.
pub const MAX_LINE: usize = 512;

/// One IRC message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// IRCv3 tags in order: key and (unescaped) value; a tag without `=` has no value.
    pub tags: Vec<(String, Option<String>)>,
    /// The source: `nick!user@host` or a server name.
    pub prefix: Option<String>,
    /// The command (upper-cased letters) or a three-digit numeric.
    pub command: String,
    /// The parameters; the last one may contain spaces (it is the trailing one).
    pub params: Vec<String>,
}

/// Why a line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but tags / a prefix, or an empty line.
    #[error("the line has no command")]
    NoCommand,
    /// The command is neither letters nor a three-digit numeric.
    #[error("the command is not letters or a three-digit numeric")]
    BadCommand,
}

/// Why a message cannot be serialised safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// CR, LF or NUL somewhere in the message.
    #[error("{0} contains CR, LF or NUL")]
    LineBreak(&'static str),
    /// A middle parameter that would split into several (space, leading `:`, empty).
    #[error("parameter {0} cannot be a middle parameter (empty, a space, or a leading ':')")]
    BadMiddle(usize),
    /// A command that is not letters or a three-digit numeric.
    #[error("the command is not letters or a three-digit numeric")]
    BadCommand,
    /// A tag key with characters outside `[A-Za-z0-9-/.+]` or empty.
    #[error("a tag key is empty or has characters that are not allowed")]
    BadTagKey,
    /// A prefix with a space.
    #[error("the prefix contains a space")]
    BadPrefix,
}

fn valid_command(command: &str) -> bool {
    let all_letters = !command.is_empty() && command.bytes().all(|b| b.is_ascii_alphabetic());
    let numeric = command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit());
    all_letters || numeric
}

fn valid_tag_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphanumeric() || b"-/.".contains(&b) || (i == 0 && b == b'+'))
}

fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n', '\0'])
}

impl Message {
    /// A message with a command and parameters, no tags, no prefix.
    pub fn new(command: &str, params: &[&str]) -> Self {
        Self {
            tags: Vec::new(),
            prefix: None,
            command: command.to_owned(),
            params: params.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    /// The same message with a tag added.
    pub fn with_tag(mut self, key: &str, value: Option<&str>) -> Self {
        self.tags.push((key.to_owned(), value.map(str::to_owned)));
        self
    }

    /// The value of tag `key`, if present with a value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Parameter `index`, if present.
    pub fn param(&self, index: usize) -> Option<&str> {
        self.params.get(index).map(String::as_str)
    }

    /// The nick part of the prefix (`nick` of `nick!user@host`), if any.
    pub fn source_nick(&self) -> Option<&str> {
        let prefix = self.prefix.as_deref()?;
        let nick = prefix.split(['!', '@']).next().unwrap_or(prefix);
        (!nick.is_empty()).then_some(nick)
    }

    /// Parses one line (without CR LF; a trailing CR / LF is tolerated and dropped).
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let mut rest = line.trim_end_matches(['\r', '\n']).trim_start_matches(' ');
        let mut message = Self::default();
        if let Some(tagged) = rest.strip_prefix('@') {
            let (tags, tail) = tagged.split_once(' ').unwrap_or((tagged, ""));
            message.tags = tags
                .split(';')
                .filter(|t| !t.is_empty())
                .map(|t| match t.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(unescape_tag_value(v))),
                    None => (t.to_owned(), None),
                })
                .collect();
            rest = tail.trim_start_matches(' ');
        }
        if let Some(prefixed) = rest.strip_prefix(':') {
            let (prefix, tail) = prefixed.split_once(' ').unwrap_or((prefixed, ""));
            message.prefix = Some(prefix.to_owned());
            rest = tail.trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return Err(ParseError::NoCommand);
        }
        if !valid_command(command) {
            return Err(ParseError::BadCommand);
        }
        message.command = command.to_ascii_uppercase();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                message.params.push(trailing.to_owned());
                break;
            }
            let (param, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            message.params.push(param.to_owned());
            rest = tail;
        }
        Ok(message)
    }

    /// The wire form, without CR LF. Refuses anything that could inject another line or
    /// parameter (see the module docs).
    pub fn to_line(&self) -> Result<String, WireError> {
        if !valid_command(&self.command) {
            return Err(WireError::BadCommand);
        }
        let mut line = String::new();
        if !self.tags.is_empty() {
            line.push('@');
            for (i, (key, value)) in self.tags.iter().enumerate() {
                if !valid_tag_key(key) {
                    return Err(WireError::BadTagKey);
                }
                if i > 0 {
                    line.push(';');
                }
                line.push_str(key);
                if let Some(value) = value {
                    if value.contains('\0') {
                        return Err(WireError::LineBreak("a tag value"));
                    }
                    line.push('=');
                    escape_tag_value(value, &mut line);
                }
            }
            line.push(' ');
        }
        if let Some(prefix) = &self.prefix {
            if has_line_break(prefix) {
                return Err(WireError::LineBreak("the prefix"));
            }
            if prefix.is_empty() || prefix.contains(' ') {
                return Err(WireError::BadPrefix);
            }
            let _ = write!(line, ":{prefix} ");
        }
        line.push_str(&self.command);
        let last = self.params.len().saturating_sub(1);
        for (i, param) in self.params.iter().enumerate() {
            if has_line_break(param) {
                return Err(WireError::LineBreak("a parameter"));
            }
            line.push(' ');
            let middle_ok = !param.is_empty() && !param.starts_with(':') && !param.contains(' ');
            if i == last && !middle_ok {
                line.push(':');
            } else if !middle_ok {
                return Err(WireError::BadMiddle(i));
            }
            line.push_str(param);
        }
        Ok(line)
    }
}

fn escape_tag_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn unescape_tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            // A lone trailing backslash is dropped (IRCv3).
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_full_line() {
        let m = Message::parse(
            "@time=2024-01-02T03:04:05.678Z;msgid=ab\\:c;+typing :nick!user@host PRIVMSG #chan :hello there :)\r\n",
        )
        .unwrap();
        assert_eq!(m.tag("time"), Some("2024-01-02T03:04:05.678Z"));
        assert_eq!(m.tag("msgid"), Some("ab;c"));
        assert_eq!(m.tags[2], ("+typing".to_owned(), None));
        assert_eq!(m.prefix.as_deref(), Some("nick!user@host"));
        assert_eq!(m.source_nick(), Some("nick"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, vec!["#chan", "hello there :)"]);
    }

    #[test]
    fn parses_numerics_middles_and_lenient_spacing() {
        let m = Message::parse(":irc.test 001  bot  :Welcome bot!b@h").unwrap();
        assert_eq!(m.command, "001");
        assert_eq!(m.params, vec!["bot", "Welcome bot!b@h"]);
        assert_eq!(m.source_nick(), Some("irc.test"));
        let m = Message::parse("ping x y").unwrap();
        assert_eq!(m.command, "PING");
        assert_eq!(m.params, vec!["x", "y"]);
        let m = Message::parse("CAP * LS :").unwrap();
        assert_eq!(m.params, vec!["*", "LS", ""]);
    }

    #[test]
    fn rejects_lines_without_a_command() {
        assert_eq!(Message::parse(""), Err(ParseError::NoCommand));
        assert_eq!(Message::parse(":prefix"), Err(ParseError::NoCommand));
        assert_eq!(Message::parse("@a=b"), Err(ParseError::NoCommand));
        assert_eq!(Message::parse("12 x"), Err(ParseError::BadCommand));
        assert_eq!(Message::parse("PRIV$MSG x"), Err(ParseError::BadCommand));
    }

    #[test]
    fn serialises_with_a_trailing_parameter_only_when_needed() {
        let m = Message::new("PRIVMSG", &["#chan", "hi there"]);
        assert_eq!(m.to_line().unwrap(), "PRIVMSG #chan :hi there");
        let m = Message::new("JOIN", &["#chan"]);
        assert_eq!(m.to_line().unwrap(), "JOIN #chan");
        let m = Message::new("PRIVMSG", &["#c", ":)"]);
        assert_eq!(m.to_line().unwrap(), "PRIVMSG #c ::)");
        let m = Message::new("TAGMSG", &["#c"]).with_tag("+typing", Some("active"));
        assert_eq!(m.to_line().unwrap(), "@+typing=active TAGMSG #c");
        let m = Message::new("X", &[]).with_tag("+a", Some("x y;z\\"));
        assert_eq!(m.to_line().unwrap(), "@+a=x\\sy\\:z\\\\ X");
    }

    #[test]
    fn refuses_injection() {
        for text in ["a\r\nQUIT :x", "a\nPRIVMSG #other :spam", "a\rb", "nul\0"] {
            let m = Message::new("PRIVMSG", &["#chan", text]);
            assert_eq!(m.to_line(), Err(WireError::LineBreak("a parameter")));
        }
        let m = Message::new("PRIVMSG", &["#chan x", "t"]);
        assert_eq!(m.to_line(), Err(WireError::BadMiddle(0)));
        let m = Message::new("PRIVMSG", &[":x", "t"]);
        assert_eq!(m.to_line(), Err(WireError::BadMiddle(0)));
        let m = Message::new("PRIVMSG", &["", "t"]);
        assert_eq!(m.to_line(), Err(WireError::BadMiddle(0)));
        let m = Message::new("PRIV MSG", &["#c"]);
        assert_eq!(m.to_line(), Err(WireError::BadCommand));
        let m = Message::new("X", &[]).with_tag("a b", None);
        assert_eq!(m.to_line(), Err(WireError::BadTagKey));
        // A tag value's CR LF are escaped, never raw.
        let m = Message::new("X", &[]).with_tag("+a", Some("\r\nQUIT"));
        assert_eq!(m.to_line().unwrap(), "@+a=\\r\\nQUIT X");
    }

    fn arb_param() -> impl Strategy<Value = String> {
        "[^\r\n\0 :][^\r\n\0 ]{0,12}"
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            proptest::collection::vec(
                ("\\+?[a-z][a-z0-9/.-]{0,8}", proptest::option::of(".{0,10}")),
                0..3,
            ),
            proptest::option::of("[a-z][a-z0-9!@.]{0,15}"),
            "[A-Z]{1,8}|[0-9]{3}",
            proptest::collection::vec(arb_param(), 0..4),
            proptest::option::of("[^\r\n\0]{0,40}"),
        )
            .prop_map(|(tags, prefix, command, mut params, trailing)| {
                params.extend(trailing);
                Message {
                    tags: tags
                        .into_iter()
                        .map(|(k, v)| (k, v.map(|v: String| v.replace('\0', ""))))
                        .collect(),
                    prefix,
                    command,
                    params,
                }
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics(line in "\\PC*") {
            let _ = Message::parse(&line);
        }

        #[test]
        fn parse_never_panics_on_irc_shaped_noise(line in "[@:; =\\\\a-zA-Z0-9#!\r\n]{0,80}") {
            let _ = Message::parse(&line);
        }

        #[test]
        fn serialise_then_parse_round_trips(message in arb_message()) {
            let line = message.to_line().unwrap();
            prop_assert!(!line.contains(['\r', '\n', '\0']));
            let parsed = Message::parse(&line).unwrap();
            // A tag value that is empty reads back as empty; compare like for like.
            prop_assert_eq!(parsed, message);
        }

        #[test]
        fn serialise_never_emits_a_line_break(params in proptest::collection::vec("\\PC{0,12}|[\r\n\0 :a]{0,6}", 0..4)) {
            let refs: Vec<&str> = params.iter().map(String::as_str).collect();
            if let Ok(line) = Message::new("PRIVMSG", &refs).to_line() {
                prop_assert!(!line.contains(['\r', '\n', '\0']));
                let parsed = Message::parse(&line).unwrap();
                prop_assert_eq!(parsed.params.len(), params.len());
            }
        }
    }
}
