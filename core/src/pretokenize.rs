//! The GPT-2 pre-tokenizer split, without a heap or a regex engine:
//!
//! ```text
//! 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//! ```
//!
//! tried in that order at each position, as the regex alternation does. Classes use
//! `core`'s Unicode tables: a letter is `char::is_alphabetic() && !char::is_numeric()`
//! (Alphabetic minus Nl; it also counts the marks Unicode calls Other_Alphabetic, which
//! `\p{L}` does not), a number `char::is_numeric()` (`\p{N}`), a space `char::is_whitespace()`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

fn is_letter(c: char) -> bool {
    c.is_alphabetic() && !c.is_numeric()
}

fn is_other(c: char) -> bool {
    !c.is_whitespace() && !is_letter(c) && !c.is_numeric()
}

/// End (byte offset) of the longest run of chars from `at` satisfying `f`.
fn run(text: &str, at: usize, f: impl Fn(char) -> bool) -> usize {
    text[at..].char_indices().find(|(_, c)| !f(*c)).map_or(text.len(), |(i, _)| at + i)
}

/// The end (byte offset) of the pre-token that starts at `start` (`start < text.len()`).
pub(crate) fn next_chunk(text: &str, start: usize) -> usize {
    let rest = &text[start..];
    if rest.starts_with('\'') {
        for c in ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"] {
            if rest.starts_with(c) {
                return start + c.len();
            }
        }
    }
    let mut chars = rest.chars();
    let Some(first) = chars.next() else { return text.len() };
    let (body, c) = if first == ' ' {
        match chars.next() {
            Some(c) => (start + 1, c),
            None => (start, first),
        }
    } else {
        (start, first)
    };
    if is_letter(c) {
        return run(text, body, is_letter);
    }
    if c.is_numeric() {
        return run(text, body, char::is_numeric);
    }
    if is_other(c) {
        return run(text, body, is_other);
    }
    // Whitespace: \s+(?!\S) — the run, minus its last char when a non-space follows —
    // else \s+.
    let end = run(text, start, char::is_whitespace);
    if end == text.len() {
        return end;
    }
    let last = text[start..end].char_indices().last().map_or(start, |(i, _)| start + i);
    if last > start {
        last
    } else {
        end
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn split(text: &str) -> heapless::Vec<&str, 64> {
        let mut out = heapless::Vec::new();
        let mut at = 0;
        while at < text.len() {
            let end = next_chunk(text, at);
            assert!(end > at);
            let _ = out.push(&text[at..end]);
            at = end;
        }
        out
    }

    #[test]
    fn splits_like_the_gpt2_regex() {
        assert_eq!(split("Hello world").as_slice(), ["Hello", " world"]);
        assert_eq!(split("  two  spaces ").as_slice(), [" ", " two", " ", " spaces", " "]);
        assert_eq!(
            split("it's 1991-2007!\nNext").as_slice(),
            ["it", "'s", " 1991", "-", "2007", "!", "\n", "Next"]
        );
        assert_eq!(split("a \n\n b").as_slice(), ["a", " \n\n", " b"]);
        assert_eq!(split("café, 東京 🙂").as_slice(), ["café", ",", " 東京", " 🙂"]);
        assert_eq!(split(" 'll").as_slice(), [" '", "ll"]);
    }
}
