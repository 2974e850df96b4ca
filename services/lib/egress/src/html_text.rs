//! HTML to readable text in one forward pass, linear in the input.
//!
//! Why not a full HTML parser: html5ever-based converters are quadratic in nesting depth
//! (a 2 MiB page of `<div>`s would burn minutes of CPU), and a model only needs the
//! words. This extractor never builds a tree:
//!
//! - `script`, `style`, `template`, `noscript`, `svg`, `iframe`, `object` and their
//!   content are dropped; so are comments, doctypes and processing instructions;
//! - block elements (`p`, `div`, `h1`..`h6`, `li`, `tr`, `br`, ...) become line breaks,
//!   `li` a `- ` bullet, `h1`..`h6` a `#` heading, table cells a ` | ` separator;
//! - whitespace collapses to single spaces except inside `pre`;
//! - character references are decoded (numeric ones and the common named ones; others
//!   are left as written);
//! - tags inside quoted attribute values (`<a title="<b>">`) do not end the tag.

/// Elements whose content is dropped entirely.
const DROPPED: &[&str] = &[
    "script", "style", "template", "noscript", "svg", "iframe", "object",
];

/// Elements that start and end a line.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hr",
    "html",
    "main",
    "nav",
    "ol",
    "p",
    "section",
    "summary",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "title",
    "tr",
    "ul",
    "caption",
    "option",
    "select",
    "textarea",
    "label",
];

/// The text of `html` (see the module docs).
pub fn html_to_text(html: &str) -> String {
    let mut out = Out::default();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.text(&rest[..lt]);
        rest = &rest[lt..];
        rest = if let Some(after) = rest.strip_prefix("<!--") {
            after.find("-->").map_or("", |end| &after[end + 3..])
        } else if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").unwrap_or(after.len());
            out.text(&after[..end]);
            after.get(end + 3..).unwrap_or_default()
        } else if rest.starts_with("<!") || rest.starts_with("<?") {
            rest.find('>').map_or("", |end| &rest[end + 1..])
        } else if let Some(tag) = Tag::parse(rest) {
            let after = &rest[tag.len..];
            if !tag.end && DROPPED.contains(&tag.name.as_str()) {
                skip_element(after, &tag.name)
            } else {
                out.tag(&tag);
                after
            }
        } else {
            out.text("<");
            &rest[1..]
        };
    }
    out.text(rest);
    out.finish()
}

/// After the end tag `</name ...>` (case-insensitive), or empty when there is none.
fn skip_element<'a>(s: &'a str, name: &str) -> &'a str {
    let mut from = 0;
    while let Some(i) = s[from..].find("</") {
        let at = from + i;
        let candidate = &s[at + 2..];
        let matches = candidate
            .get(..name.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
            && candidate[name.len()..]
                .chars()
                .next()
                .is_none_or(|c| c == '>' || c == '/' || c.is_ascii_whitespace());
        if matches {
            return candidate.find('>').map_or("", |end| &candidate[end + 1..]);
        }
        from = at + 2;
    }
    ""
}

/// A start or end tag: its lower-case name and its length in the input.
struct Tag {
    name: String,
    end: bool,
    len: usize,
}

impl Tag {
    /// `s` starts with `<`; `None` if no tag name follows (then `<` is text).
    fn parse(s: &str) -> Option<Self> {
        let (end, body) = match s.strip_prefix("</") {
            Some(b) => (true, b),
            None => (false, s.get(1..)?),
        };
        let name_len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == ':'))
            .unwrap_or(body.len());
        let name = &body[..name_len];
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return None;
        }
        // The closing `>`, outside quoted attribute values (a quote opens a value only
        // right after `=`, as in `a="x"` or `a = 'x'`).
        let mut quote = None;
        let mut after_equals = false;
        let mut close = None;
        for (i, c) in body[name_len..].char_indices() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '>' => {
                    close = Some(name_len + i);
                    break;
                }
                None if after_equals && (c == '"' || c == '\'') => quote = Some(c),
                None => {}
            }
            if !c.is_ascii_whitespace() {
                after_equals = quote.is_none() && c == '=';
            }
        }
        let consumed = close.map_or(body.len(), |c| c + 1);
        Some(Self {
            name: name.to_ascii_lowercase(),
            end,
            len: s.len() - body.len() + consumed,
        })
    }
}

/// The text being built.
#[derive(Default)]
struct Out {
    text: String,
    /// Inside `<pre>` (depth), whitespace is kept.
    pre: usize,
    /// A space is due before the next word.
    space: bool,
}

impl Out {
    fn text(&mut self, raw: &str) {
        if raw.is_empty() {
            return;
        }
        let decoded = decode_entities(raw);
        if self.pre > 0 {
            self.text.push_str(&decoded);
            return;
        }
        for (i, word) in decoded.split(|c: char| c.is_whitespace()).enumerate() {
            if i > 0 {
                self.space = true;
            }
            if word.is_empty() {
                continue;
            }
            if self.space && !self.text.is_empty() && !self.text.ends_with(['\n', ' ']) {
                self.text.push(' ');
            }
            self.space = false;
            self.text.push_str(word);
        }
    }

    /// Ends the text with at least `n` line breaks (none at the very start).
    fn newlines(&mut self, n: usize) {
        let kept = self.text.trim_end_matches(' ').len();
        self.text.truncate(kept);
        if !self.text.is_empty() {
            let have = self.text.len() - self.text.trim_end_matches('\n').len();
            for _ in have..n {
                self.text.push('\n');
            }
        }
        self.space = false;
    }

    fn tag(&mut self, tag: &Tag) {
        let name = tag.name.as_str();
        match name {
            "br" => {
                self.text.push('\n');
                self.space = false;
            }
            "pre" => {
                self.newlines(1);
                self.pre = if tag.end {
                    self.pre.saturating_sub(1)
                } else {
                    self.pre + 1
                };
            }
            "li" if !tag.end => {
                self.newlines(1);
                self.text.push_str("- ");
            }
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.newlines(2);
                if !tag.end {
                    let level = name[1..].parse::<usize>().unwrap_or(1);
                    self.text.push_str(&"#".repeat(level));
                    self.text.push(' ');
                }
            }
            "td" | "th" if !tag.end => {
                if !self.text.is_empty() && !self.text.ends_with('\n') {
                    self.text.push_str(" | ");
                }
                self.space = false;
            }
            "p" | "blockquote" | "table" => self.newlines(2),
            _ if BLOCKS.contains(&name) || name == "li" => self.newlines(1),
            _ => {}
        }
    }

    fn finish(mut self) -> String {
        self.newlines(0);
        let mut out = String::with_capacity(self.text.len());
        let mut blank = 0;
        for line in self.text.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                blank += 1;
                if blank > 1 || out.is_empty() {
                    continue;
                }
            } else {
                blank = 0;
            }
            out.push_str(line);
            out.push('\n');
        }
        out.truncate(out.trim_end().len());
        out
    }
}

/// `&amp;`, `&#39;`, `&#x27;` and the common named references; others stay as written.
fn decode_entities(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('&') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // A reference is short: look for its `;` in the next few characters only.
        let semi = rest[1..]
            .char_indices()
            .take(12)
            .find(|&(_, c)| c == ';')
            .map(|(i, _)| i + 1);
        let decoded = semi.and_then(|semi| decode_one(&rest[1..semi]).map(|c| (c, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out.into()
}

fn decode_one(entity: &str) -> Option<char> {
    if let Some(num) = entity.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|c| *c != '\0');
    }
    Some(match entity {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "bull" => '•',
        "middot" => '·',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "euro" => '€',
        "times" => '×',
        "deg" => '°',
        _ => return None,
    })
}

#[cfg(test)]
#[path = "html_text_tests.rs"]
mod tests;
