//! Splitting outbound text into platform-sized chunks (pure, no I/O).
//!
//! Platforms measure message length in their own unit (Telegram: UTF-16 code units). A
//! chunk boundary always falls between two `char`s, so a surrogate pair (an emoji, say) is
//! never split. Within the limit, a split right after a newline is preferred, then right
//! after a space, then the longest prefix that fits. Separators stay in the chunk they end,
//! so the chunks concatenate back to the input exactly.

/// How a platform measures text length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthUnit {
    /// UTF-16 code units (Telegram, JavaScript-based platforms).
    Utf16,
    /// Unicode scalar values.
    Chars,
    /// UTF-8 bytes (IRC lines).
    Utf8,
}

impl LengthUnit {
    fn len_of(self, c: char) -> usize {
        match self {
            Self::Utf16 => c.len_utf16(),
            Self::Chars => 1,
            Self::Utf8 => c.len_utf8(),
        }
    }

    /// The length of `text` in this unit.
    pub fn measure(self, text: &str) -> usize {
        text.chars().map(|c| self.len_of(c)).sum()
    }
}

/// Splits `text` into chunks of at most `limit` units each (see the module docs).
///
/// Empty input gives no chunks. A `limit` of 0 is treated as 1 unit so every call makes
/// progress; a `char` longer than the limit (a surrogate pair with `limit == 1`) gets a chunk
/// of its own.
pub fn split_text(text: &str, limit: usize, unit: LengthUnit) -> Vec<&str> {
    let limit = limit.max(1);
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = split_point(rest, limit, unit);
        let (chunk, tail) = rest.split_at(end);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// The byte index where the first chunk of `text` ends (always > 0 for non-empty text).
fn split_point(text: &str, limit: usize, unit: LengthUnit) -> usize {
    let mut used = 0;
    // Byte index just past the last char that fits, and past the last newline / space that fits.
    let mut fit_end = 0;
    let mut after_newline = None;
    let mut after_space = None;
    for (index, c) in text.char_indices() {
        let width = unit.len_of(c);
        if used + width > limit {
            break;
        }
        used += width;
        fit_end = index + c.len_utf8();
        match c {
            '\n' => after_newline = Some(fit_end),
            ' ' => after_space = Some(fit_end),
            _ => {}
        }
    }
    if fit_end == text.len() {
        return fit_end;
    }
    if fit_end == 0 {
        // A single char wider than the limit: emit it alone rather than loop forever.
        return text.chars().next().map_or(text.len(), char::len_utf8);
    }
    // Only prefer a separator when it keeps the chunk reasonably full; otherwise a stray early
    // newline would produce many tiny messages.
    let worthwhile = |end: usize| unit.measure(&text[..end]) * 2 >= used;
    after_newline
        .filter(|&e| worthwhile(e))
        .or(after_space.filter(|&e| worthwhile(e)))
        .unwrap_or(fit_end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TELEGRAM: usize = 4096;

    fn check(text: &str, limit: usize) -> Vec<&str> {
        let chunks = split_text(text, limit, LengthUnit::Utf16);
        assert_eq!(chunks.concat(), text);
        for chunk in &chunks {
            assert!(!chunk.is_empty());
            assert!(LengthUnit::Utf16.measure(chunk) <= limit.max(2));
        }
        chunks
    }

    #[test]
    fn short_text_is_one_chunk_and_empty_is_none() {
        assert_eq!(check("hello", TELEGRAM), vec!["hello"]);
        assert!(check("", TELEGRAM).is_empty());
    }

    #[test]
    fn prefers_newline_then_space() {
        assert_eq!(check("aaa bbb\ncc dd", 10), vec!["aaa bbb\n", "cc dd"]);
        assert_eq!(check("aaaa bbbb cccc", 10), vec!["aaaa bbbb ", "cccc"]);
        // No separator: hard split at the limit.
        assert_eq!(check("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        // A separator too early is not worth a tiny chunk.
        assert_eq!(check("a bcdefghijkl", 8), vec!["a bcdefg", "hijkl"]);
    }

    #[test]
    fn never_splits_a_surrogate_pair() {
        // "😀" is 2 UTF-16 units; at limit 5, "ab😀" is 4, the next emoji would make 6.
        let chunks = check("ab😀😀😀", 5);
        assert_eq!(chunks, vec!["ab😀", "😀😀"]);
        // Limit 1: each emoji gets its own chunk even though it is 2 units long.
        assert_eq!(check("😀😀", 1), vec!["😀", "😀"]);
    }

    #[test]
    fn nine_thousand_chars_make_three_telegram_chunks() {
        let mut text = "x".repeat(4095);
        text.push('😀'); // straddles the first 4096-unit boundary
        text.push_str(&"y".repeat(9000 - 4096));
        let chunks = check(&text, TELEGRAM);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0], "x".repeat(4095));
        assert!(chunks[1].starts_with('😀'));
    }

    #[test]
    fn chars_unit_counts_scalars() {
        assert_eq!(
            split_text("😀😀😀", 2, LengthUnit::Chars),
            vec!["😀😀", "😀"]
        );
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("a".to_owned()),
            Just(" ".to_owned()),
            Just("\n".to_owned()),
            Just("é".to_owned()),
            Just("😀".to_owned()),
            Just("中".to_owned()),
            "[a-z ]{1,20}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..400).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn chunks_fit_concatenate_and_respect_chars(text in text_strategy(), limit in 2usize..64) {
            let chunks = split_text(&text, limit, LengthUnit::Utf16);
            prop_assert_eq!(chunks.concat(), text.clone());
            for chunk in &chunks {
                prop_assert!(!chunk.is_empty());
                prop_assert!(LengthUnit::Utf16.measure(chunk) <= limit);
                // Each chunk is a &str, so it is valid UTF-8 and round-trips through UTF-16
                // without lone surrogates.
                let units: Vec<u16> = chunk.encode_utf16().collect();
                let round_trip = String::from_utf16(&units).ok();
                prop_assert_eq!(round_trip.as_deref(), Some(*chunk));
            }
        }

        #[test]
        fn telegram_limit_holds_for_long_texts(text in text_strategy(), copies in 1usize..40) {
            let long = text.repeat(copies);
            let chunks = split_text(&long, TELEGRAM, LengthUnit::Utf16);
            prop_assert_eq!(chunks.concat(), long.clone());
            for chunk in &chunks {
                prop_assert!(LengthUnit::Utf16.measure(chunk) <= TELEGRAM);
            }
        }
    }
}
