//! Markdown from the model, rendered in each platform's own format (pure, no I/O).
//!
//! The model writes CommonMark. Each platform shows formatting differently:
//!
//! | [`Markup`] | used by | bold | italic | code | links | lists, headings |
//! |---|---|---|---|---|---|---|
//! | `Plain` | e-mail bodies, Matrix `body` | text | text | text | `text (url)` | `- `, `1. `, text lines |
//! | `Html` | Matrix `formatted_body` | `<strong>` | `<em>` | `<code>`, `<pre>` | `<a>` | `<ul>`, `<ol>`, `<h1>`… |
//! | `TelegramHtml` | Telegram `parse_mode: HTML` | `<b>` | `<i>` | `<code>`, `<pre>` | `<a>` | `• `, bold lines |
//! | `Irc` | IRC | `\x02` | `\x1d` | `\x11` | `text <url>` | `- `, bold lines |
//!
//! Safety rules, whatever the input:
//! - raw HTML in the Markdown is never passed through: it is shown as text (escaped in the
//!   HTML flavours), so the model cannot inject markup;
//! - links keep their target only for `http`, `https` and `mailto` URLs; anything else
//!   (`javascript:`, `data:`) is rendered as plain text;
//! - every tag opened is closed (the output of the HTML flavours is well-formed even for
//!   truncated Markdown), so a chunk of Markdown renders on its own.
//!
//! Callers chunk the *Markdown* first (see [`crate::chunk`]) and render each chunk; a
//! construct split across chunks (a code fence, say) is closed at the end of the first chunk
//! and the rest renders as what it then is.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// A platform's text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// Plain text, readable as is.
    Plain,
    /// The HTML subset Matrix clients render (`org.matrix.custom.html`).
    Html,
    /// Telegram's `parse_mode: HTML` subset.
    TelegramHtml,
    /// IRC formatting control codes.
    Irc,
}

/// Renders `markdown` in the format `to` (see the module docs).
pub fn render(markdown: &str, to: Markup) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut w = Writer {
        to,
        out: String::with_capacity(markdown.len() + markdown.len() / 8),
        lists: Vec::new(),
        links: Vec::new(),
        open: Vec::new(),
        in_code_block: false,
    };
    for event in Parser::new_ext(markdown, options) {
        w.event(event);
    }
    w.finish()
}

/// IRC control codes.
mod irc {
    pub const BOLD: char = '\u{2}';
    pub const ITALIC: char = '\u{1d}';
    pub const MONOSPACE: char = '\u{11}';
    pub const STRIKE: char = '\u{1e}';
}

struct Writer {
    to: Markup,
    out: String,
    /// Open lists: `Some(next number)` for ordered ones.
    lists: Vec<Option<u64>>,
    /// Open links: the kept target (`None`: not a safe URL) and where the text started.
    links: Vec<(Option<String>, usize)>,
    /// HTML closing tags still owed, innermost last.
    open: Vec<&'static str>,
    in_code_block: bool,
}

impl Writer {
    fn html(&self) -> bool {
        matches!(self.to, Markup::Html | Markup::TelegramHtml)
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => self.text(&text),
            Event::Code(code) => self.inline_code(&code),
            // Raw HTML is shown, never interpreted.
            Event::Html(html) | Event::InlineHtml(html) => self.text(&html),
            Event::InlineMath(m) | Event::DisplayMath(m) => self.text(&m),
            Event::FootnoteReference(name) => {
                self.text("[");
                self.text(&name);
                self.text("]");
            }
            Event::SoftBreak => self.newline(),
            Event::HardBreak => {
                if self.to == Markup::Html {
                    self.out.push_str("<br>");
                }
                self.newline();
            }
            Event::Rule => {
                self.block_gap();
                match self.to {
                    Markup::Html => self.out.push_str("<hr>"),
                    _ => self.out.push_str("———"),
                }
            }
            Event::TaskListMarker(done) => self.text(if done { "[x] " } else { "[ ] " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => {
                if self.lists.is_empty() || !self.out.ends_with(' ') {
                    self.block_gap();
                }
                self.tag("<p>", "</p>", Markup::Html);
            }
            Tag::Heading { level, .. } => {
                self.block_gap();
                match self.to {
                    Markup::Html => {
                        let (open, close) = heading_tags(level);
                        self.out.push_str(open);
                        self.open.push(close);
                    }
                    Markup::TelegramHtml => self.push_open("<b>", "</b>"),
                    Markup::Irc => self.out.push(irc::BOLD),
                    Markup::Plain => {}
                }
            }
            Tag::BlockQuote(_) => {
                self.block_gap();
                match self.to {
                    Markup::Html => self.push_open("<blockquote>", "</blockquote>"),
                    Markup::TelegramHtml => self.push_open("<blockquote>", "</blockquote>"),
                    Markup::Plain | Markup::Irc => self.out.push_str("> "),
                }
            }
            Tag::CodeBlock(kind) => {
                self.block_gap();
                self.in_code_block = true;
                match self.to {
                    Markup::Html | Markup::TelegramHtml => {
                        self.out.push_str("<pre><code");
                        if let CodeBlockKind::Fenced(lang) = &kind {
                            let lang = lang.split_whitespace().next().unwrap_or("");
                            if !lang.is_empty() && lang.chars().all(is_lang_char) {
                                self.out.push_str(" class=\"language-");
                                self.out.push_str(lang);
                                self.out.push('"');
                            }
                        }
                        self.out.push('>');
                        self.open.push("</code></pre>");
                    }
                    Markup::Irc | Markup::Plain => {}
                }
            }
            Tag::List(first) => {
                if self.lists.is_empty() {
                    self.block_gap();
                }
                self.lists.push(first);
                match (self.to, first) {
                    (Markup::Html, Some(_)) => self.push_open("<ol>", "</ol>"),
                    (Markup::Html, None) => self.push_open("<ul>", "</ul>"),
                    _ => {}
                }
            }
            Tag::Item => {
                if self.to == Markup::Html {
                    self.push_open("<li>", "</li>");
                    return;
                }
                self.newline();
                let depth = self.lists.len().saturating_sub(1);
                self.out.push_str(&"  ".repeat(depth));
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let m = format!("{n}. ");
                        *n += 1;
                        m
                    }
                    _ if self.to == Markup::TelegramHtml => "• ".to_owned(),
                    _ => "- ".to_owned(),
                };
                self.out.push_str(&marker);
            }
            Tag::Emphasis => self.style("<em>", "</em>", "<i>", "</i>", irc::ITALIC),
            Tag::Strong => self.style("<strong>", "</strong>", "<b>", "</b>", irc::BOLD),
            Tag::Strikethrough => self.style("<del>", "</del>", "<s>", "</s>", irc::STRIKE),
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                let safe = safe_url(&dest_url).map(str::to_owned);
                if let Some(url) = safe.as_deref().filter(|_| self.html()) {
                    self.out.push_str("<a href=\"");
                    escape_into(&mut self.out, url, true);
                    self.out.push_str("\">");
                    self.open.push("</a>");
                }
                self.links.push((safe, self.out.len()));
            }
            // Tables, footnote definitions, metadata: their text still comes through.
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => self.close_if(Markup::Html),
            TagEnd::Heading(_) => match self.to {
                Markup::Html | Markup::TelegramHtml => self.close(),
                Markup::Irc => self.out.push(irc::BOLD),
                Markup::Plain => {}
            },
            TagEnd::BlockQuote(_) if self.html() => self.close(),
            TagEnd::CodeBlock => {
                self.in_code_block = false;
                if self.html() {
                    if self.out.ends_with('\n') {
                        self.out.pop();
                    }
                    self.close();
                } else if self.out.ends_with('\n') {
                    self.out.pop();
                }
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.close_if(Markup::Html);
            }
            TagEnd::Item => self.close_if(Markup::Html),
            TagEnd::Emphasis => self.unstyle(irc::ITALIC),
            TagEnd::Strong => self.unstyle(irc::BOLD),
            TagEnd::Strikethrough => self.unstyle(irc::STRIKE),
            TagEnd::Link | TagEnd::Image => {
                let Some((safe, text_start)) = self.links.pop() else {
                    return;
                };
                if self.html() {
                    if safe.is_some() {
                        self.close();
                    }
                    return;
                }
                if let Some(url) = safe {
                    let text = &self.out[text_start..];
                    let bare = url.strip_prefix("mailto:").unwrap_or(&url);
                    if text != url && text != bare {
                        match self.to {
                            Markup::Irc => {
                                self.out.push_str(" <");
                                self.out.push_str(&url);
                                self.out.push('>');
                            }
                            _ => {
                                self.out.push_str(" (");
                                self.out.push_str(&url);
                                self.out.push(')');
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn text(&mut self, text: &str) {
        if self.html() {
            escape_into(&mut self.out, text, false);
        } else {
            self.out.push_str(text);
        }
    }

    fn inline_code(&mut self, code: &str) {
        match self.to {
            Markup::Html | Markup::TelegramHtml => {
                self.out.push_str("<code>");
                escape_into(&mut self.out, code, false);
                self.out.push_str("</code>");
            }
            Markup::Irc => {
                self.out.push(irc::MONOSPACE);
                self.out.push_str(code);
                self.out.push(irc::MONOSPACE);
            }
            Markup::Plain => {
                self.out.push('`');
                self.out.push_str(code);
                self.out.push('`');
            }
        }
    }

    fn style(
        &mut self,
        html: &'static str,
        html_end: &'static str,
        tg: &'static str,
        tg_end: &'static str,
        code: char,
    ) {
        match self.to {
            Markup::Html => self.push_open(html, html_end),
            Markup::TelegramHtml => self.push_open(tg, tg_end),
            Markup::Irc => self.out.push(code),
            Markup::Plain => {}
        }
    }

    fn unstyle(&mut self, code: char) {
        match self.to {
            Markup::Html | Markup::TelegramHtml => self.close(),
            Markup::Irc => self.out.push(code),
            Markup::Plain => {}
        }
    }

    fn tag(&mut self, open: &'static str, close: &'static str, only: Markup) {
        if self.to == only {
            self.push_open(open, close);
        }
    }

    fn push_open(&mut self, open: &'static str, close: &'static str) {
        self.out.push_str(open);
        self.open.push(close);
    }

    fn close(&mut self) {
        if let Some(close) = self.open.pop() {
            self.out.push_str(close);
        }
    }

    fn close_if(&mut self, only: Markup) {
        if self.to == only {
            self.close();
        }
    }

    fn newline(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    /// Separates blocks: a blank line in the text flavours (HTML blocks separate
    /// themselves, except in Telegram, which has no block tags).
    fn block_gap(&mut self) {
        if self.out.is_empty() || self.to == Markup::Html {
            return;
        }
        if self.in_list_item() {
            self.newline();
            return;
        }
        while !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn in_list_item(&self) -> bool {
        !self.lists.is_empty()
    }

    fn finish(mut self) -> String {
        while let Some(close) = self.open.pop() {
            self.out.push_str(close);
        }
        let trimmed = self.out.trim_end_matches('\n').len();
        self.out.truncate(trimmed);
        self.out
    }
}

fn heading_tags(level: HeadingLevel) -> (&'static str, &'static str) {
    match level {
        HeadingLevel::H1 => ("<h1>", "</h1>"),
        HeadingLevel::H2 => ("<h2>", "</h2>"),
        HeadingLevel::H3 => ("<h3>", "</h3>"),
        HeadingLevel::H4 => ("<h4>", "</h4>"),
        HeadingLevel::H5 => ("<h5>", "</h5>"),
        HeadingLevel::H6 => ("<h6>", "</h6>"),
    }
}

fn is_lang_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '#' | '.')
}

/// The URL when its scheme is safe to link, else `None`.
fn safe_url(url: &str) -> Option<&str> {
    let scheme = url.split_once(':')?.0.to_ascii_lowercase();
    matches!(scheme.as_str(), "http" | "https" | "mailto").then_some(url)
}

fn escape_into(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
