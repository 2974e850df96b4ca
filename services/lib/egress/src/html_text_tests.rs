use std::time::{Duration, Instant};

use super::*;

#[test]
fn renders_structure_as_lines() {
    let html = r#"<!DOCTYPE html><html><head><title>The Title</title>
        <meta charset="utf-8"><link rel=stylesheet href=x.css></head>
        <body><h1>Hello</h1><p>First <b>para</b>graph,
        on   two lines.</p><ul><li>one</li><li>two</li></ul>
        <table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
        line<br>break<pre>  keep
   this</pre><h3>Sub</h3>end</body></html>"#;
    assert_eq!(
        html_to_text(html),
        "The Title\n\n# Hello\n\nFirst paragraph, on two lines.\n\n- one\n- two\n\nk | v\na | 1\n\nline\nbreak\n  keep\n   this\n\n### Sub\n\nend"
    );
}

#[test]
fn drops_scripts_styles_comments_and_hidden_content() {
    let html = r#"a<script>var s = "</scr" + "ipt>"; if (x<y) { leak1() }</script>b
        <SCRIPT type="text/javascript">leak2</SCRIPT >c<style>p { color: red }</style>d
        <!-- <p>leak3</p> -->e<noscript><img src=leak4></noscript>f
        <svg><text>leak5</text></svg>g<template><p>leak6</p></template>h
        <script>unterminated leak7"#;
    let text = html_to_text(html);
    for leak in ["leak", "color", "scr", "ipt", "<", ">"] {
        assert!(!text.contains(leak), "{leak:?} in {text:?}");
    }
    assert_eq!(text, "ab cd ef gh");
}

#[test]
fn attributes_and_entities() {
    let html = r#"<a title="x > y" href='/a?b=1&amp;c=2'>link</a> &amp; &lt;tag&gt; &#39;q&#x27;
        caf&eacute; &unknown; &#0; &nbsp;x &copy;2024 5&times;3 &amp"#;
    assert_eq!(
        html_to_text(html),
        "link & <tag> 'q' caf&eacute; &unknown; &#0; x ©2024 5×3 &amp"
    );
    // A quote that does not follow `=` is part of an unquoted value, not a string.
    assert_eq!(html_to_text("<a href=it's>x</a> y 'z"), "x y 'z");
    // `<` that starts no tag is text.
    assert_eq!(html_to_text("1 < 2 and 3 <4"), "1 < 2 and 3 <4");
    assert_eq!(html_to_text("<![CDATA[raw <b>]]>after"), "raw <b>after");
}

#[test]
fn survives_malformed_input() {
    for html in [
        "",
        "<",
        "<<<",
        "</",
        "<!",
        "<!--",
        "<a",
        "<a href=\"",
        "</div",
        "&",
        "&#",
        "&#x;",
        "&#xffffffff;",
        "<p>é&amp",
        "<script",
        "<script>",
        "</script>",
        "é<é>é",
        "<h7>x</h7>",
    ] {
        let _ = html_to_text(html);
    }
    assert_eq!(html_to_text("é<é>é"), "é<é>é");
}

/// A 2 MiB page of nested `<div>`s is the attack on tree-building converters
/// (quadratic in depth); this one is linear.
#[test]
fn deep_nesting_is_linear() {
    let depth = 200_000;
    let mut html = "<div><b>".repeat(depth / 2);
    html.push_str("deep");
    html.push_str(&"</b></div>".repeat(depth / 2));
    let start = Instant::now();
    let text = html_to_text(&html);
    assert_eq!(text, "deep");
    let html = "<table><tr><td>x".repeat(depth / 3);
    let text = html_to_text(&html);
    assert_eq!(text.lines().filter(|l| *l == "x").count(), depth / 3);
    // Generous for an unoptimised build on a busy machine; quadratic would take hours.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}
