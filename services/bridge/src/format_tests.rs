use proptest::prelude::*;

use super::{Markup, render};

const ALL: [Markup; 4] = [
    Markup::Plain,
    Markup::Html,
    Markup::TelegramHtml,
    Markup::Irc,
];

#[test]
fn emphasis_in_every_flavour() {
    let md = "say **bold** and *it* and `x<y`";
    assert_eq!(render(md, Markup::Plain), "say bold and it and `x<y`");
    assert_eq!(
        render(md, Markup::Html),
        "<p>say <strong>bold</strong> and <em>it</em> and <code>x&lt;y</code></p>"
    );
    assert_eq!(
        render(md, Markup::TelegramHtml),
        "say <b>bold</b> and <i>it</i> and <code>x&lt;y</code>"
    );
    assert_eq!(
        render(md, Markup::Irc),
        "say \u{2}bold\u{2} and \u{1d}it\u{1d} and \u{11}x<y\u{11}"
    );
}

#[test]
fn paragraphs_lists_and_headings_keep_their_shape_in_text() {
    let md = "# Title\n\nFirst para\nsecond line.\n\n- one\n- two\n\n1. a\n2. b\n\nend";
    assert_eq!(
        render(md, Markup::Plain),
        "Title\n\nFirst para\nsecond line.\n\n- one\n- two\n\n1. a\n2. b\n\nend"
    );
    assert_eq!(
        render(md, Markup::TelegramHtml),
        "<b>Title</b>\n\nFirst para\nsecond line.\n\n• one\n• two\n\n1. a\n2. b\n\nend"
    );
    assert_eq!(
        render(md, Markup::Html),
        "<h1>Title</h1><p>First para\nsecond line.</p><ul><li>one</li><li>two</li></ul>\
         <ol><li>a</li><li>b</li></ol><p>end</p>"
    );
}

#[test]
fn code_blocks_are_preformatted_and_escaped() {
    let md = "```rust\nfn main() { if a < b {} }\n```";
    assert_eq!(
        render(md, Markup::Html),
        "<pre><code class=\"language-rust\">fn main() { if a &lt; b {} }</code></pre>"
    );
    assert_eq!(render(md, Markup::Plain), "fn main() { if a < b {} }");
    // A hostile language tag cannot break out of the attribute.
    let evil = "```x\"onclick=\"alert(1)\nbody\n```";
    let html = render(evil, Markup::Html);
    assert!(!html.contains("onclick"), "{html}");
}

#[test]
fn raw_html_is_shown_not_interpreted() {
    let md = "hi <script>alert(1)</script> <b onclick=x>b</b>\n\n<div>block</div>";
    for to in [Markup::Html, Markup::TelegramHtml] {
        let out = render(md, to);
        assert!(!out.contains("<script"), "{to:?}: {out}");
        assert!(!out.contains("<b onclick"), "{to:?}: {out}");
        assert!(!out.contains("<div"), "{to:?}: {out}");
        assert!(out.contains("&lt;script&gt;"), "{to:?}: {out}");
    }
}

#[test]
fn only_safe_links_keep_their_target() {
    let md =
        "[docs](https://example.org/a?b=1&c=\"2\") [bad](javascript:alert(1)) [m](mailto:a@b.c)";
    let html = render(md, Markup::Html);
    assert!(
        html.contains("<a href=\"https://example.org/a?b=1&amp;c=&quot;2&quot;\">docs</a>"),
        "{html}"
    );
    assert!(!html.contains("javascript"), "{html}");
    assert!(html.contains("<a href=\"mailto:a@b.c\">m</a>"), "{html}");
    let plain = render(md, Markup::Plain);
    assert_eq!(
        plain,
        "docs (https://example.org/a?b=1&c=\"2\") bad m (mailto:a@b.c)"
    );
    assert_eq!(render("<https://x.org>", Markup::Plain), "https://x.org");
    assert_eq!(
        render("[t](https://x.org)", Markup::Irc),
        "t <https://x.org>"
    );
}

#[test]
fn truncated_markdown_still_closes_every_tag() {
    let html = render("**bold and `code` then ```\nunterminated", Markup::Html);
    assert_eq!(
        html.matches("<pre>").count(),
        html.matches("</pre>").count()
    );
    let tg = render("> quote **strong", Markup::TelegramHtml);
    assert_eq!(
        tg.matches("<blockquote>").count(),
        tg.matches("</blockquote>").count()
    );
}

/// Counts open minus closed tags of each kind in our own output (which only uses plain
/// tags, attributes only on `<a>` and `<code>`).
fn balanced(html: &str) -> bool {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let Some(j) = rest.find('>') else {
            return false;
        };
        let tag = &rest[..j];
        rest = &rest[j + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name) {
                return false;
            }
        } else {
            let name = tag.split_whitespace().next().unwrap_or("");
            if !matches!(name, "br" | "hr") {
                stack.push(name.to_owned());
            }
        }
    }
    stack.is_empty()
}

proptest! {
    #[test]
    fn html_output_is_always_balanced_and_never_carries_raw_tags(md in "[ -~\\n*_`#>\\[\\]()<>-]{0,200}") {
        for to in [Markup::Html, Markup::TelegramHtml] {
            let out = render(&md, to);
            prop_assert!(balanced(&out), "{to:?} {md:?} -> {out:?}");
        }
    }

    #[test]
    fn plain_text_keeps_every_word(words in proptest::collection::vec("[a-z]{1,8}", 1..30)) {
        let md = words.join(" ");
        for to in ALL {
            let out = render(&md, to);
            for w in &words {
                prop_assert!(out.contains(w.as_str()), "{to:?} lost {w}: {out}");
            }
        }
    }

    #[test]
    fn never_panics(md in "\\PC{0,300}") {
        for to in ALL {
            let _ = render(&md, to);
        }
    }
}
