//! What a fetched body may be, and how it becomes text: `text/*`, `application/json` and
//! `application/xhtml+xml` only; HTML and XHTML become readable text
//! ([`crate::html_text`], which drops `script` and `style`). Bodies are decoded as UTF-8
//! (invalid sequences become U+FFFD); other charsets are not converted.

use http::HeaderMap;

use crate::error::EgressError;
use crate::html_text::html_to_text;

/// The media type of `Content-Type` (lower-case, without parameters), if it is allowed.
pub(crate) fn allowed_media_type(headers: &HeaderMap) -> Result<String, EgressError> {
    let raw = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let media = raw
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if is_allowed(&media) {
        Ok(media)
    } else {
        Err(EgressError::ContentType { found: raw })
    }
}

/// `text/*`, `application/json`, `application/xhtml+xml`.
pub fn is_allowed(media_type: &str) -> bool {
    let text_subtype = media_type
        .strip_prefix("text/")
        .is_some_and(|sub| !sub.is_empty());
    text_subtype || matches!(media_type, "application/json" | "application/xhtml+xml")
}

/// Whether the body is rendered as HTML.
pub fn is_html(media_type: &str) -> bool {
    matches!(media_type, "text/html" | "application/xhtml+xml")
}

/// The body as text.
pub(crate) fn to_text(media_type: &str, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if is_html(media_type) {
        html_to_text(&text)
    } else {
        text.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_types() {
        for t in [
            "text/plain",
            "text/html",
            "text/csv",
            "application/json",
            "application/xhtml+xml",
        ] {
            assert!(is_allowed(t), "{t}");
        }
        for t in [
            "",
            "text/",
            "image/png",
            "application/octet-stream",
            "application/javascript",
            "application/jsonx",
        ] {
            assert!(!is_allowed(t), "{t}");
        }
    }

    #[test]
    fn media_type_ignores_parameters_and_case() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            "Text/HTML; charset=UTF-8".parse().unwrap(),
        );
        assert_eq!(allowed_media_type(&h).unwrap(), "text/html");
        h.insert(http::header::CONTENT_TYPE, "image/svg+xml".parse().unwrap());
        assert!(matches!(
            allowed_media_type(&h),
            Err(EgressError::ContentType { .. })
        ));
        assert!(matches!(
            allowed_media_type(&HeaderMap::new()),
            Err(EgressError::ContentType { .. })
        ));
    }
}
