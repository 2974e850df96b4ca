//! Pure text operations behind `edit_file` and `apply_patch`: exact replacement with a
//! uniqueness rule, and line splitting that remembers CRLF and the final newline so a
//! patched file keeps its line endings.

/// Why an edit does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// `old_string` is not in the file.
    #[error(
        "old_string was not found in {path}; read the file again and copy the exact text, including whitespace and indentation"
    )]
    NotFound {
        /// The file.
        path: String,
    },
    /// `old_string` occurs more than once and `replace_all` is off.
    #[error(
        "old_string occurs {count} times in {path}; include more surrounding text so it is unique, or set replace_all"
    )]
    Ambiguous {
        /// The file.
        path: String,
        /// Occurrences.
        count: usize,
    },
}

/// The result of [`edit_text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    /// The new content.
    pub text: String,
    /// Occurrences replaced.
    pub replacements: usize,
}

/// Replaces `old` by `new` in `content`: exactly one occurrence, or every one with
/// `replace_all`. When `old` is not found as given but the file uses CRLF line endings,
/// `old` and `new` are tried with `\n` written as `\r\n`.
pub fn edit_text(
    path: &str,
    content: &str,
    old: &str,
    new: &str,
    replace_all: bool,
) -> Result<Edited, EditError> {
    let mut count = content.matches(old).count();
    let (old, new) = if count == 0 && old.contains('\n') && content.contains("\r\n") {
        let (o, n) = (crlf(old), crlf(new));
        count = content.matches(o.as_str()).count();
        (o, n)
    } else {
        (old.to_owned(), new.to_owned())
    };
    match count {
        0 => Err(EditError::NotFound {
            path: path.to_owned(),
        }),
        1 => Ok(Edited {
            text: content.replacen(old.as_str(), &new, 1),
            replacements: 1,
        }),
        n if replace_all => Ok(Edited {
            text: content.replace(old.as_str(), &new),
            replacements: n,
        }),
        n => Err(EditError::Ambiguous {
            path: path.to_owned(),
            count: n,
        }),
    }
}

fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// A text as lines, with its line ending and final newline remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    /// The lines, without their endings.
    pub lines: Vec<String>,
    /// Whether lines end in `\r\n`.
    pub crlf: bool,
    /// Whether the text ends with a line ending.
    pub final_newline: bool,
}

impl Lines {
    /// Splits `text`. A text with any `\r\n` is read as CRLF (a trailing `\r` is taken off
    /// every line).
    pub fn split(text: &str) -> Self {
        let crlf = text.contains("\r\n");
        let final_newline = text.ends_with('\n');
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines = if text.is_empty() {
            Vec::new()
        } else {
            body.split('\n')
                .map(|l| {
                    if crlf {
                        l.strip_suffix('\r').unwrap_or(l).to_owned()
                    } else {
                        l.to_owned()
                    }
                })
                .collect()
        };
        Self {
            lines,
            crlf,
            final_newline: final_newline || text.is_empty(),
        }
    }

    /// The text again.
    pub fn join(&self) -> String {
        let eol = if self.crlf { "\r\n" } else { "\n" };
        let mut out = self.lines.join(eol);
        if self.final_newline && !self.lines.is_empty() {
            out.push_str(eol);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_one_or_all_occurrences() {
        let e = edit_text("f", "a b a", "b", "c", false).unwrap();
        assert_eq!((e.text.as_str(), e.replacements), ("a c a", 1));
        assert_eq!(
            edit_text("f", "a b a", "a", "x", false),
            Err(EditError::Ambiguous {
                path: "f".into(),
                count: 2
            })
        );
        let e = edit_text("f", "a b a", "a", "x", true).unwrap();
        assert_eq!((e.text.as_str(), e.replacements), ("x b x", 2));
        assert!(matches!(
            edit_text("f", "abc", "zz", "y", true),
            Err(EditError::NotFound { .. })
        ));
        // Deleting text.
        assert_eq!(
            edit_text("f", "keep drop", " drop", "", false)
                .unwrap()
                .text,
            "keep"
        );
    }

    #[test]
    fn edits_crlf_files_with_lf_text() {
        let e = edit_text("f", "one\r\ntwo\r\nthree\r\n", "one\ntwo", "1\n2", false).unwrap();
        assert_eq!(e.text, "1\r\n2\r\nthree\r\n");
    }

    #[test]
    fn lines_round_trip() {
        for text in ["", "a", "a\n", "a\nb", "a\r\nb\r\n", "\n", "\n\n"] {
            assert_eq!(Lines::split(text).join(), text, "{text:?}");
        }
        let l = Lines::split("a\r\nb\r\n");
        assert_eq!(l.lines, ["a", "b"]);
        assert!(l.crlf && l.final_newline);
    }
}
