//! Pre-tokenizer splits without a heap or a regex engine: a small program, compiled from the
//! tokenizer's regular expressions at conversion time, that this module interprets.
//!
//! A program is a list of *stages* (none: the text is one chunk); each splits every chunk the previous stage made, the way
//! Hugging Face's `Split(pattern, behavior = "Isolated")` does: at each position the
//! *alternatives* are tried in order, the first that matches makes a chunk, and the text no
//! alternative matches between two chunks is a chunk of its own. An alternative is a sequence
//! of *items*: a character class repeated `min..=max` times (greedy, backtracking as a
//! regex does), or a negative look-ahead of one class (`(?!\S)`).
//!
//! Layout, in `u32` words (checked by [`Program::parse`]):
//!
//! ```text
//! n_stages, then per stage: n_alts, then per alternative: n_items, then per item 4 words:
//!   w0 = op | neg << 4 | cats << 8 | min << 16     op: 0 = class repeat, 1 = not-ahead
//!   w1 = max (NO_MAX = unbounded)                   cats: CAT_* bits
//!   w2, w3 = literal code points in the class (0 = none)
//! ```
//!
//! A class holds a character when one of its categories or literals does, negated by `neg`.
//! Categories are Unicode's: a letter is General_Category L (a table from
//! `core/src/unicode_letters.rs`), a number `char::is_numeric` (General_Category N), a space
//! `char::is_whitespace` (White_Space, as the regex `\s`).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use crate::unicode_letters::LETTER_RANGES;

/// Class category: a letter (`\p{L}`).
pub const CAT_LETTER: u32 = 1;
/// Class category: a number (`\p{N}`).
pub const CAT_NUMBER: u32 = 2;
/// Class category: white space (`\s`).
pub const CAT_SPACE: u32 = 4;
/// Item op: the class, repeated `min..=max` times.
pub const OP_REPEAT: u32 = 0;
/// Item op: the next character (if any) is not in the class; consumes nothing.
pub const OP_NOT_AHEAD: u32 = 1;
/// `max` of an unbounded repeat.
pub const NO_MAX: u32 = u32::MAX;
/// Words per item.
pub const ITEM_WORDS: usize = 4;
/// Most stages a program may have.
pub const MAX_STAGES: u32 = 4;
/// Most alternatives a stage may have.
pub const MAX_ALTS: u32 = 32;
/// Most items an alternative may have (also the matcher's recursion depth).
pub const MAX_ITEMS: u32 = 8;
/// Most literal code points a class may have.
pub const MAX_LITERALS: usize = 2;

/// Whether `c` is a letter (Unicode General_Category L).
pub fn is_letter(c: char) -> bool {
    let cp = c as u32;
    if cp < 0x80 {
        return c.is_ascii_alphabetic();
    }
    // The last range starting at or before `cp`.
    let i = LETTER_RANGES.partition_point(|r| r >> 11 <= cp);
    match i.checked_sub(1).and_then(|i| LETTER_RANGES.get(i)) {
        Some(r) => cp - (r >> 11) <= (r & 0x7FF),
        None => false,
    }
}

/// One item of an alternative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    op: u32,
    neg: bool,
    cats: u32,
    min: u32,
    max: u32,
    lits: [u32; 2],
}

impl Item {
    fn read(w: &[u32]) -> Option<Self> {
        let [w0, w1, w2, w3] = *w else { return None };
        Some(Self {
            op: w0 & 0xF,
            neg: (w0 >> 4) & 0xF != 0,
            cats: (w0 >> 8) & 0xFF,
            min: w0 >> 16,
            max: w1,
            lits: [w2, w3],
        })
    }

    fn holds(&self, c: char) -> bool {
        let cats = (self.cats & CAT_LETTER != 0 && is_letter(c))
            || (self.cats & CAT_NUMBER != 0 && c.is_numeric())
            || (self.cats & CAT_SPACE != 0 && c.is_whitespace());
        let lit = self.lits.iter().any(|l| *l != 0 && *l == c as u32);
        (cats || lit) != self.neg
    }
}

/// Encodes one item as its 4 words (for writers).
pub fn item_words(op: u32, neg: bool, cats: u32, min: u32, max: u32, lits: [u32; 2]) -> [u32; 4] {
    [op | u32::from(neg) << 4 | cats << 8 | min << 16, max, lits[0], lits[1]]
}

/// A validated pre-tokenizer program, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Program<'a> {
    words: &'a [u32],
}

/// The GPT-2 split, `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
/// for files that carry no program of their own.
// In bounds: built at compile time, where an out-of-bounds index fails the build.
#[allow(clippy::indexing_slicing)]
#[rustfmt::skip]
pub static GPT2: [u32; 118] = {
    const fn it(op: u32, neg: bool, cats: u32, min: u32, max: u32, a: u32, b: u32) -> [u32; 4] {
        [op | (neg as u32) << 4 | cats << 8 | min << 16, max, a, b]
    }
    const Q: u32 = '\'' as u32;
    const SP: u32 = ' ' as u32;
    const L: u32 = CAT_LETTER;
    const N: u32 = CAT_NUMBER;
    const S: u32 = CAT_SPACE;
    let mut w = [0u32; 118];
    let mut n = 0;
    macro_rules! push { ($($x:expr),*) => { $( w[n] = $x; n += 1; )* }; }
    macro_rules! item { ($i:expr) => { let i = $i; push!(i[0], i[1], i[2], i[3]); }; }
    push!(1, 12);
    // 's 't 're 've 'm 'll 'd, in the pattern's order
    let words: [&[u8]; 7] = [b"s", b"t", b"re", b"ve", b"m", b"ll", b"d"];
    let mut k = 0;
    while k < words.len() {
        let rest = words[k];
        push!(1 + rest.len() as u32);
        item!(it(OP_REPEAT, false, 0, 1, 1, Q, 0));
        let mut j = 0;
        while j < rest.len() {
            item!(it(OP_REPEAT, false, 0, 1, 1, rest[j] as u32, 0));
            j += 1;
        }
        k += 1;
    }
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
    push!(2); item!(it(OP_REPEAT, false, 0, 0, 1, SP, 0)); item!(it(OP_REPEAT, false, L, 1, NO_MAX, 0, 0));
    push!(2); item!(it(OP_REPEAT, false, 0, 0, 1, SP, 0)); item!(it(OP_REPEAT, false, N, 1, NO_MAX, 0, 0));
    push!(2); item!(it(OP_REPEAT, false, 0, 0, 1, SP, 0)); item!(it(OP_REPEAT, true, S | L | N, 1, NO_MAX, 0, 0));
    // \s+(?!\S), \s+
    push!(2); item!(it(OP_REPEAT, false, S, 1, NO_MAX, 0, 0)); item!(it(OP_NOT_AHEAD, true, S, 0, 0, 0, 0));
    push!(1); item!(it(OP_REPEAT, false, S, 1, NO_MAX, 0, 0));
    assert!(n == 118);
    w
};

/// Why a program does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadProgram {
    /// Word index of the problem.
    pub word: usize,
    /// What is wrong.
    pub what: &'static str,
}

/// Reads word `i`.
fn word(w: &[u32], i: usize) -> Result<u32, BadProgram> {
    w.get(i).copied().ok_or(BadProgram { word: i, what: "program ends early" })
}

impl<'a> Program<'a> {
    /// The built-in GPT-2 split.
    pub fn gpt2() -> Program<'static> {
        Program { words: &GPT2 }
    }

    /// Checks the structure of `words` (counts, ops, literals, repeat bounds).
    ///
    /// # Errors
    /// The first word that breaks the layout.
    pub fn parse(words: &'a [u32]) -> Result<Self, BadProgram> {
        let bad = |word, what| Err(BadProgram { word, what });
        let n_stages = word(words, 0)?;
        if n_stages > MAX_STAGES {
            return bad(0, "stage count above 4");
        }
        let mut i = 1;
        for _ in 0..n_stages {
            let n_alts = word(words, i)?;
            if n_alts == 0 || n_alts > MAX_ALTS {
                return bad(i, "alternative count not in 1..=32");
            }
            i += 1;
            for _ in 0..n_alts {
                let n_items = word(words, i)?;
                if n_items == 0 || n_items > MAX_ITEMS {
                    return bad(i, "item count not in 1..=8");
                }
                i += 1;
                let mut consumes = false;
                for _ in 0..n_items {
                    let w = words
                        .get(i..i + ITEM_WORDS)
                        .ok_or(BadProgram { word: i, what: "program ends early" })?;
                    let it = Item::read(w).ok_or(BadProgram { word: i, what: "short item" })?;
                    if it.op > OP_NOT_AHEAD || (at(words, i) >> 5) & 0x7 != 0 || it.cats > 7 {
                        return bad(i, "unknown op, flag or category");
                    }
                    if it.op == OP_REPEAT && (it.max == 0 || it.min > it.max) {
                        return bad(i, "repeat bounds out of order");
                    }
                    if it.lits.iter().any(|l| *l != 0 && char::from_u32(*l).is_none()) {
                        return bad(i, "literal is not a code point");
                    }
                    consumes |= it.op == OP_REPEAT && it.min > 0;
                    i += ITEM_WORDS;
                }
                if !consumes {
                    return bad(i, "alternative can match the empty string");
                }
            }
        }
        if i != words.len() {
            return bad(i, "words after the last stage");
        }
        Ok(Self { words })
    }

    /// The program's words.
    pub fn words(&self) -> &'a [u32] {
        self.words
    }

    fn stage_count(&self) -> usize {
        self.words.first().copied().unwrap_or(0) as usize
    }

    /// Word index where stage `s` starts.
    fn stage_start(&self, s: usize) -> usize {
        let mut i = 1;
        for _ in 0..s {
            let n_alts = at(self.words, i);
            i += 1;
            for _ in 0..n_alts {
                i += 1 + at(self.words, i) as usize * ITEM_WORDS;
            }
        }
        i
    }

    /// Calls `f(start, end)` for every chunk of `text` in order (byte offsets; chunks cover
    /// the text and none is empty), stopping at the first error.
    ///
    /// # Errors
    /// The first error of `f`.
    pub fn split<E>(
        &self,
        text: &str,
        f: &mut dyn FnMut(usize, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        self.split_from(0, text, 0, f)
    }

    fn split_from<E>(
        &self,
        stage: usize,
        text: &str,
        base: usize,
        f: &mut dyn FnMut(usize, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        if text.is_empty() {
            return Ok(());
        }
        if stage >= self.stage_count() {
            return f(base, base + text.len());
        }
        let start = self.stage_start(stage);
        let mut gap = 0;
        let mut pos = 0;
        while pos < text.len() {
            match self.match_at(start, text, pos) {
                Some(end) if end > pos => {
                    if gap < pos {
                        self.split_from(stage + 1, sub(text, gap, pos), base + gap, f)?;
                    }
                    self.split_from(stage + 1, sub(text, pos, end), base + pos, f)?;
                    pos = end;
                    gap = end;
                }
                _ => pos = next_boundary(text, pos),
            }
        }
        if gap < text.len() {
            self.split_from(stage + 1, sub(text, gap, text.len()), base + gap, f)?;
        }
        Ok(())
    }

    /// End of the first alternative of the stage at word `start` that matches at `pos`.
    fn match_at(&self, start: usize, text: &str, pos: usize) -> Option<usize> {
        let n_alts = at(self.words, start) as usize;
        let mut i = start + 1;
        for _ in 0..n_alts {
            let n_items = at(self.words, i) as usize;
            let items = self.words.get(i + 1..i + 1 + n_items * ITEM_WORDS)?;
            if let Some(end) = match_items(items, text, pos) {
                return Some(end);
            }
            i += 1 + n_items * ITEM_WORDS;
        }
        None
    }
}

fn at(w: &[u32], i: usize) -> u32 {
    w.get(i).copied().unwrap_or(0)
}

fn sub(text: &str, a: usize, b: usize) -> &str {
    text.get(a..b).unwrap_or("")
}

fn char_at(text: &str, pos: usize) -> Option<char> {
    text.get(pos..).and_then(|s| s.chars().next())
}

fn next_boundary(text: &str, pos: usize) -> usize {
    pos + char_at(text, pos).map_or(1, char::len_utf8)
}

fn prev_boundary(text: &str, pos: usize) -> usize {
    let mut p = pos.saturating_sub(1);
    while p > 0 && !text.is_char_boundary(p) {
        p -= 1;
    }
    p
}

/// Matches the item sequence `items` (4 words each) at `pos`: the end of the first match a
/// backtracking regex engine would find (greedy repeats, longest first).
fn match_items(items: &[u32], text: &str, pos: usize) -> Option<usize> {
    let Some((head, rest)) = items.split_first_chunk::<ITEM_WORDS>() else {
        return Some(pos);
    };
    let it = Item::read(head)?;
    if it.op == OP_NOT_AHEAD {
        return match char_at(text, pos) {
            Some(c) if it.holds(c) => None,
            _ => match_items(rest, text, pos),
        };
    }
    // Greedy: take as many as allowed, then give back one at a time.
    let mut end = pos;
    let mut count = 0u32;
    while count < it.max {
        match char_at(text, end) {
            Some(c) if it.holds(c) => {
                end += c.len_utf8();
                count += 1;
            }
            _ => break,
        }
    }
    loop {
        if count < it.min {
            return None;
        }
        if let Some(e) = match_items(rest, text, end) {
            return Some(e);
        }
        if count == 0 {
            return None;
        }
        end = prev_boundary(text, end);
        count -= 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn split<'t>(p: &Program<'_>, text: &'t str) -> heapless::Vec<&'t str, 64> {
        let mut out = heapless::Vec::new();
        p.split(text, &mut |a, b| {
            assert!(b > a);
            out.push(&text[a..b]).map_err(|_| ())
        })
        .unwrap();
        out
    }

    #[test]
    fn the_builtin_program_parses() {
        Program::parse(&GPT2).unwrap();
    }

    #[test]
    fn splits_like_the_gpt2_regex() {
        let p = Program::gpt2();
        assert_eq!(split(&p, "Hello world").as_slice(), ["Hello", " world"]);
        assert_eq!(split(&p, "  two  spaces ").as_slice(), [" ", " two", " ", " spaces", " "]);
        assert_eq!(
            split(&p, "it's 1991-2007!\nNext").as_slice(),
            ["it", "'s", " 1991", "-", "2007", "!", "\n", "Next"]
        );
        assert_eq!(split(&p, "a \n\n b").as_slice(), ["a", " \n\n", " b"]);
        assert_eq!(split(&p, "café, 東京 🙂").as_slice(), ["café", ",", " 東京", " 🙂"]);
        assert_eq!(split(&p, " 'll").as_slice(), [" '", "ll"]);
        // A spacing mark is no letter: `\p{L}+` stops before it.
        assert_eq!(split(&p, "हिन्दी").as_slice(), ["ह", "ि", "न", "्", "द", "ी"]);
    }

    #[test]
    fn letters_are_general_category_l() {
        for c in ['a', 'Z', 'é', 'ß', 'ж', '東', 'ー', 'ª', 'ǅ', '𝐀'] {
            assert!(is_letter(c), "{c:?}");
        }
        for c in ['1', ' ', '_', 'ि', '\u{301}', 'Ⅻ', '🙂', '\u{10FFFF}', '\0'] {
            assert!(!is_letter(c), "{c:?}");
        }
        // The ranges are ascending and apart.
        for w in LETTER_RANGES.windows(2) {
            assert!((w[0] >> 11) + (w[0] & 0x7FF) < w[1] >> 11, "{:#x}", w[1]);
        }
    }

    #[test]
    fn malformed_programs_are_refused() {
        assert!(Program::parse(&[]).is_err());
        assert!(Program::parse(&[0]).is_ok(), "no stage: one chunk");
        assert!(Program::parse(&[1, 1, 1, 0, 0, 0, 0]).is_err()); // max 0
        let empty = item_words(OP_REPEAT, false, CAT_SPACE, 0, NO_MAX, [0, 0]);
        let w = [1, 1, 1, empty[0], empty[1], empty[2], empty[3]];
        assert!(Program::parse(&w).is_err(), "an alternative matching nothing");
        let ok = item_words(OP_REPEAT, false, CAT_SPACE, 1, NO_MAX, [0, 0]);
        let w = [1, 1, 1, ok[0], ok[1], ok[2], ok[3]];
        assert!(Program::parse(&w).is_ok());
        let mut long = w.to_vec();
        long.push(0);
        assert!(Program::parse(&long).is_err());
    }
}
