//! Compiles a pre-tokenizer's split regex into one stage of the core's pre-tokenizer program
//! ([`chispa_core::pretokenize`]).
//!
//! The accepted subset is what byte-level BPE tokenizers use (GPT-2, Llama 3, Qwen2 and
//! their variants): top-level alternatives, each a sequence of character classes with a
//! greedy quantifier (`?`, `*`, `+`, `{m}`, `{m,}`, `{m,n}`), a final negative look-ahead of
//! one class (`(?!\S)`), or a whole alternative `(?i:'s|'t|…)` of case-insensitive literal
//! strings. Classes: a literal character, `\p{L}`, `\p{N}`, `\s`, `\S`, `\r`, `\n`, `\t`,
//! and brackets `[…]` / `[^…]` of literals, `\p{L}`, `\p{N}`, `\s`, `\r`, `\n`, `\t`
//! (at most two literals). Anything else is refused with the construct named.

use anyhow::{bail, ensure, Context, Result};
use chispa_core::pretokenize::{
    item_words, CAT_LETTER, CAT_NUMBER, CAT_SPACE, MAX_ALTS, MAX_ITEMS, NO_MAX, OP_NOT_AHEAD,
    OP_REPEAT,
};

/// A character class: categories and up to two literal code points, maybe negated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Class {
    neg: bool,
    cats: u32,
    lits: [u32; 2],
}

impl Class {
    fn lit(c: char) -> Self {
        Self { lits: [c as u32, 0], ..Self::default() }
    }

    fn cat(cats: u32, neg: bool) -> Self {
        Self { neg, cats, lits: [0, 0] }
    }

    fn add_lit(&mut self, c: char) -> Result<()> {
        let c = c as u32;
        match self.lits {
            [0, _] => self.lits[0] = c,
            [a, 0] if a != c => self.lits[1] = c,
            [a, b] if a == c || b == c => {}
            _ => bail!("a class with more than two literal characters"),
        }
        Ok(())
    }

    fn repeat(&self, min: u32, max: u32) -> [u32; 4] {
        item_words(OP_REPEAT, self.neg, self.cats, min, max, self.lits)
    }
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Parser<'_> {
    fn next(&mut self) -> Result<char> {
        self.chars.next().context("the pattern ends early")
    }

    fn eat(&mut self, c: char) -> bool {
        self.chars.next_if_eq(&c).is_some()
    }

    fn expect(&mut self, s: &str) -> Result<()> {
        for c in s.chars() {
            ensure!(self.eat(c), "expected {s:?}");
        }
        Ok(())
    }

    /// After a `\`: a class escape or an escaped literal.
    fn escape(&mut self, in_brackets: bool) -> Result<Class> {
        Ok(match self.next()? {
            'p' => {
                self.expect("{")?;
                let name: String =
                    std::iter::from_fn(|| self.chars.next_if(|c| *c != '}')).collect();
                self.expect("}")?;
                match name.as_str() {
                    "L" => Class::cat(CAT_LETTER, false),
                    "N" => Class::cat(CAT_NUMBER, false),
                    other => bail!("the Unicode class \\p{{{other}}}"),
                }
            }
            's' => Class::cat(CAT_SPACE, false),
            'S' if !in_brackets => Class::cat(CAT_SPACE, true),
            'r' => Class::lit('\r'),
            'n' => Class::lit('\n'),
            't' => Class::lit('\t'),
            c if "\\'\"-.()[]{}|?*+^$/ ".contains(c) => Class::lit(c),
            c => bail!("the escape \\{c}"),
        })
    }

    fn brackets(&mut self) -> Result<Class> {
        let mut class = Class { neg: self.eat('^'), ..Class::default() };
        loop {
            match self.next()? {
                ']' => break,
                '\\' => {
                    let c = self.escape(true)?;
                    class.cats |= c.cats;
                    for l in c.lits.into_iter().filter(|l| *l != 0) {
                        class.add_lit(char::from_u32(l).context("bad literal")?)?;
                    }
                }
                '[' => bail!("a nested class"),
                c => {
                    ensure!(self.chars.peek() != Some(&'-'), "a character range");
                    class.add_lit(c)?;
                }
            }
        }
        Ok(class)
    }

    fn number(&mut self) -> Result<u32> {
        let digits: String =
            std::iter::from_fn(|| self.chars.next_if(char::is_ascii_digit)).collect();
        digits.parse().with_context(|| format!("a repeat count {digits:?}"))
    }

    /// An optional quantifier: `(min, max)`.
    fn quantifier(&mut self) -> Result<(u32, u32)> {
        let q = match self.chars.peek() {
            Some('?') => (0, 1),
            Some('*') => (0, NO_MAX),
            Some('+') => (1, NO_MAX),
            Some('{') => {
                self.next()?;
                let min = self.number()?;
                let max = if self.eat(',') {
                    if self.chars.peek() == Some(&'}') {
                        NO_MAX
                    } else {
                        self.number()?
                    }
                } else {
                    min
                };
                self.expect("}")?;
                ensure!(max >= 1 && min <= max && min < 0x1_0000, "the repeat {{{min},{max}}}");
                return self.not_lazy((min, max));
            }
            _ => return Ok((1, 1)),
        };
        self.next()?;
        self.not_lazy(q)
    }

    fn not_lazy(&mut self, q: (u32, u32)) -> Result<(u32, u32)> {
        ensure!(!matches!(self.chars.peek(), Some('?' | '+')), "a lazy or possessive quantifier");
        Ok(q)
    }

    /// A single class atom (no quantifier).
    fn atom(&mut self) -> Result<Class> {
        match self.next()? {
            '\\' => self.escape(false),
            '[' => self.brackets(),
            c if "()|?*+{}.^$".contains(c) => bail!("the construct {c:?} here"),
            c => Ok(Class::lit(c)),
        }
    }

    /// `'s|'t|…)` after `(?i:`: one alternative per literal string.
    fn case_insensitive(&mut self) -> Result<Vec<Vec<[u32; 4]>>> {
        let mut alts = vec![Vec::new()];
        loop {
            let c = match self.next()? {
                ')' => break,
                '|' => {
                    alts.push(Vec::new());
                    continue;
                }
                '\\' => {
                    let cl = self.escape(false)?;
                    ensure!(cl.cats == 0 && !cl.neg, "a class inside (?i:…)");
                    char::from_u32(cl.lits[0]).context("bad literal")?
                }
                c if "()[]{}?*+.^$".contains(c) => bail!("{c:?} inside (?i:…)"),
                c => c,
            };
            let mut class = Class::lit(c);
            if c.is_ascii_alphabetic() {
                class.add_lit(if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                })?;
            } else {
                ensure!(c.is_ascii(), "a non-ASCII letter {c:?} inside (?i:…)");
            }
            alts.last_mut().context("no alternative")?.push(class.repeat(1, 1));
        }
        ensure!(alts.iter().all(|a| !a.is_empty()), "an empty alternative inside (?i:…)");
        Ok(alts)
    }

    /// One top-level alternative, up to `|` or the end.
    fn alternative(&mut self) -> Result<Vec<Vec<[u32; 4]>>> {
        let mut items = Vec::new();
        loop {
            match self.chars.peek() {
                None | Some('|') => break,
                Some('(') => {
                    self.next()?;
                    ensure!(self.eat('?'), "a capturing group");
                    if self.eat('i') {
                        self.expect(":")?;
                        ensure!(items.is_empty(), "(?i:…) after other items");
                        let alts = self.case_insensitive()?;
                        ensure!(
                            matches!(self.chars.peek(), None | Some('|')),
                            "items after (?i:…)"
                        );
                        return Ok(alts);
                    }
                    ensure!(self.eat('!'), "a group other than (?i:…) and (?!…)");
                    let class = self.atom()?;
                    self.expect(")")?;
                    items.push(item_words(OP_NOT_AHEAD, class.neg, class.cats, 0, 0, class.lits));
                    ensure!(
                        matches!(self.chars.peek(), None | Some('|')),
                        "items after a look-ahead"
                    );
                }
                Some(_) => {
                    let class = self.atom()?;
                    let (min, max) = self.quantifier()?;
                    items.push(class.repeat(min, max));
                }
            }
        }
        ensure!(!items.is_empty(), "an empty alternative");
        Ok(vec![items])
    }
}

/// Compiles `pattern` into one program stage: `n_alts`, then per alternative `n_items` and
/// its items.
///
/// # Errors
/// A construct outside the supported subset; the message names the pattern and the
/// construct.
pub fn compile(pattern: &str) -> Result<Vec<u32>> {
    let inner = || -> Result<Vec<u32>> {
        let mut p = Parser { chars: pattern.chars().peekable() };
        let mut alts = Vec::new();
        loop {
            alts.extend(p.alternative()?);
            if !p.eat('|') {
                break;
            }
        }
        ensure!(alts.len() as u32 <= MAX_ALTS, "more than {MAX_ALTS} alternatives");
        let mut words = vec![alts.len() as u32];
        for items in alts {
            ensure!(
                items.len() as u32 <= MAX_ITEMS,
                "an alternative of more than {MAX_ITEMS} items"
            );
            ensure!(
                items.iter().any(|w| w[0] & 0xF == OP_REPEAT && w[0] >> 16 > 0),
                "an alternative that can match the empty string"
            );
            words.push(items.len() as u32);
            words.extend(items.iter().flatten());
        }
        Ok(words)
    };
    inner().with_context(|| format!("the split pattern {pattern:?} is not supported"))
}

/// A whole program from stages made by [`compile`].
pub fn program(stages: &[Vec<u32>]) -> Vec<u32> {
    let mut words = vec![stages.len() as u32];
    for s in stages {
        words.extend(s);
    }
    words
}

/// The pattern of Hugging Face's `ByteLevel` pre-tokenizer (GPT-2's).
pub const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama 3's split pattern.
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's split pattern.
pub const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chispa_core::pretokenize::{Program, GPT2};

    fn split(words: &[u32], text: &str) -> Vec<String> {
        let p = Program::parse(words).expect("a valid program");
        let mut out = Vec::new();
        p.split(text, &mut |a, b| -> Result<(), ()> {
            out.push(text[a..b].to_string());
            Ok(())
        })
        .expect("no error");
        out
    }

    #[test]
    fn the_gpt2_pattern_compiles_to_the_builtin_program() {
        assert_eq!(program(&[compile(GPT2_PATTERN).unwrap()]), GPT2.to_vec());
    }

    #[test]
    fn llama3_and_qwen2_patterns_split_as_their_regexes() {
        let l3 = program(&[compile(LLAMA3_PATTERN).unwrap()]);
        assert_eq!(
            split(&l3, "it'S 12345 hello  world\n\n  x"),
            ["it", "'S", " ", "123", "45", " hello", " ", " world", "\n\n", " ", " x"]
        );
        let q2 = program(&[compile(QWEN2_PATTERN).unwrap()]);
        assert_eq!(split(&q2, "a 123"), ["a", " ", "1", "2", "3"]);
    }

    #[test]
    fn constructs_outside_the_subset_are_refused_naming_the_pattern() {
        for bad in [r"(a)", r"\w+", r"[a-z]+", r"a+?", r"\s*", r".", r"[abc]", r"\p{Lu}"] {
            let e = compile(bad).unwrap_err();
            assert!(format!("{e:#}").contains(&format!("{bad:?}")), "{bad}: {e:#}");
        }
    }
}
