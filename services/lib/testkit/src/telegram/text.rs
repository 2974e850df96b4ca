//! Text rules Telegram applies: UTF-16 lengths, automatic entities and markup stripping.

use super::types::MessageEntity;

/// Telegram's `sendMessage` limit, in UTF-16 code units after entity parsing.
pub(crate) const MAX_MESSAGE_UTF16: usize = 4096;

/// The accepted `parse_mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseMode {
    Html,
    Markdown,
    MarkdownV2,
}

impl ParseMode {
    /// `None` for an unsupported mode (Telegram answers `unsupported parse_mode`).
    pub(crate) fn parse(mode: &str) -> Option<Self> {
        match mode.to_ascii_lowercase().as_str() {
            "html" => Some(Self::Html),
            "markdown" => Some(Self::Markdown),
            "markdownv2" => Some(Self::MarkdownV2),
            _ => None,
        }
    }
}

/// Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts 2).
pub(crate) fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// The visible text once markup is applied. An approximation of Telegram's parser: HTML
/// tags are removed and the five entities decoded; Markdown markers and backslash escapes
/// are removed and `[label](url)` becomes `label`.
pub(crate) fn strip_markup(text: &str, mode: Option<ParseMode>) -> String {
    match mode {
        None => text.to_owned(),
        Some(ParseMode::Html) => strip_html(text),
        Some(ParseMode::Markdown) => strip_markdown(text, "*_`["),
        Some(ParseMode::MarkdownV2) => strip_markdown(text, "*_~|`["),
    }
}

fn strip_html(text: &str) -> String {
    let mut visible = String::with_capacity(text.len());
    let mut in_tag = false;
    for ch in text.chars() {
        match (in_tag, ch) {
            (false, '<') => in_tag = true,
            (true, '>') => in_tag = false,
            (false, _) => visible.push(ch),
            (true, _) => {}
        }
    }
    visible
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn strip_markdown(text: &str, markers: &str) -> String {
    let mut visible = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_link_label = false;
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    visible.push(escaped);
                }
            }
            ']' if in_link_label => {
                in_link_label = false;
                if chars.peek() == Some(&'(') {
                    for skipped in chars.by_ref() {
                        if skipped == ')' {
                            break;
                        }
                    }
                }
            }
            '[' if markers.contains('[') => in_link_label = true,
            _ if markers.contains(ch) => {}
            _ => visible.push(ch),
        }
    }
    visible
}

/// The entities Telegram adds to plain text: `@username` mentions (5-32 word characters)
/// and a leading `/command` (optionally `/command@bot`).
pub(crate) fn detect_entities(text: &str) -> Vec<MessageEntity> {
    let mut entities = Vec::new();
    let mut utf16_offset = 0;
    let chars: Vec<char> = text.chars().collect();
    let mut index = 0;
    while index < chars.len() {
        let ch = chars[index];
        let at_word_start = index == 0 || !is_word_char(chars[index - 1]);
        if at_word_start && (ch == '@' || (ch == '/' && index == 0)) {
            let mut end = index + 1;
            while end < chars.len() && is_word_char(chars[end]) {
                end += 1;
            }
            if ch == '/' && end < chars.len() && chars[end] == '@' {
                end += 1;
                while end < chars.len() && is_word_char(chars[end]) {
                    end += 1;
                }
            }
            let name_len = end - index - 1;
            let kind = match ch {
                '@' if (5..=32).contains(&name_len) => Some("mention"),
                '/' if name_len > 0 => Some("bot_command"),
                _ => None,
            };
            if let Some(kind) = kind {
                let length: usize = chars[index..end].iter().map(|c| c.len_utf16()).sum();
                entities.push(MessageEntity {
                    kind: kind.to_owned(),
                    offset: utf16_offset,
                    length,
                });
                utf16_offset += length;
                index = end;
                continue;
            }
        }
        utf16_offset += ch.len_utf16();
        index += 1;
    }
    entities
}

fn is_word_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || ch == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_outside_the_bmp_count_twice() {
        assert_eq!(utf16_len("a🦀"), 3);
        assert_eq!(utf16_len("é"), 1);
    }

    #[test]
    fn markup_is_stripped() {
        assert_eq!(
            strip_markup("<b>hi</b> &amp; &lt;3", Some(ParseMode::Html)),
            "hi & <3"
        );
        assert_eq!(
            strip_markup(r"*bold* \. [site](http://x.y)", Some(ParseMode::MarkdownV2)),
            "bold . site"
        );
        assert_eq!(strip_markup("*raw*", None), "*raw*");
    }

    #[test]
    fn mentions_and_commands_are_detected_in_utf16() {
        let entities = detect_entities("/start@pincer_bot 🦀 hey @pincer_bot @abc");
        let kinds: Vec<(&str, usize, usize)> = entities
            .iter()
            .map(|e| (e.kind.as_str(), e.offset, e.length))
            .collect();
        assert_eq!(kinds, vec![("bot_command", 0, 17), ("mention", 25, 11)]);
    }
}
