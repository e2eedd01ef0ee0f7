//! The tokenizer, read in place from the model file, with no heap.
//!
//! Encoding follows llama2.c's `encode` exactly: optional BOS, the dummy-prefix piece `" "`
//! before non-empty text, one piece per UTF-8 code point (or byte-fallback pieces
//! `<0xNN>` when the code point has none), then repeated merging of the adjacent pair whose
//! concatenation is a piece with the highest score (the leftmost on ties). Lookups binary
//! search the file's sorted index; a pair is compared without building the concatenation.
//!
//! The merges take O(n log n) for n initial tokens: the adjacent pairs that can merge sit in
//! a binary heap (best score first, leftmost on ties) over a linked list of the tokens, so
//! each merge updates only its two neighbouring pairs. The list and the heap live in a
//! scratch buffer the caller lends ([`ENCODE_SCRATCH_PER_TOKEN`] words per token of `out`),
//! so there is still no heap allocation; the result is the same as rescanning every pair
//! after each merge.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use core::cmp::Ordering;

use crate::error::{FormatError, TokenizeError};
use crate::format::{
    ext_records, Header, TokenizerKind, EXT_ADDED_TOKENS, EXT_CHAT_BOS_TOKEN, EXT_CHAT_EOS_TOKEN,
    EXT_CHAT_PREFIX, EXT_CHAT_SUFFIX, EXT_CHAT_TEMPLATE, EXT_MERGE_SPLITS, EXT_PRETOKENIZER, NONE,
    TOK_FLAG_DUMMY_PREFIX, TOK_FLAG_IGNORE_MERGES, TOK_FLAG_NO_PREFIX_BEFORE_SPACE,
};
use crate::model::section;
use crate::pretokenize::Program;

/// llama2.c starts its best merge score here, so merges scored at or below it never happen.
const MIN_MERGE_SCORE: f32 = -1e10;

/// Words of scratch [`Tokenizer::encode`] needs per entry of its output buffer.
pub const ENCODE_SCRATCH_PER_TOKEN: usize = 5;

/// Element `i` of `s`, or [`NONE`] past its end.
fn at(s: &[u32], i: u32) -> u32 {
    s.get(i as usize).copied().unwrap_or(NONE)
}

/// Sets element `i` of `s` (nothing past its end).
fn put(s: &mut [u32], i: u32, v: u32) {
    if let Some(x) = s.get_mut(i as usize) {
        *x = v;
    }
}

/// The merge state over `n` tokens: a doubly linked list (`prev`, `next`), the id each pair
/// `(i, next[i])` merges into (`cand`, [`NONE`] if none), and a binary heap of the nodes
/// with a candidate (`heap[..len]`, `pos[node]` its index there or [`NONE`]).
struct Merges<'a, 's> {
    tok: &'s Tokenizer<'a>,
    ids: &'s mut [u32],
    prev: &'s mut [u32],
    next: &'s mut [u32],
    cand: &'s mut [u32],
    heap: &'s mut [u32],
    pos: &'s mut [u32],
    len: u32,
}

impl Merges<'_, '_> {
    /// Whether node `a` merges before node `b`: a higher score, or the same score further
    /// left (node numbers keep the text's order).
    fn before(&self, a: u32, b: u32) -> bool {
        let (sa, sb) = (self.tok.score(at(self.cand, a)), self.tok.score(at(self.cand, b)));
        sa > sb || (sa == sb && a < b)
    }

    fn swap(&mut self, i: u32, j: u32) {
        let (a, b) = (at(self.heap, i), at(self.heap, j));
        put(self.heap, i, b);
        put(self.heap, j, a);
        put(self.pos, b, i);
        put(self.pos, a, j);
    }

    fn sift_up(&mut self, mut i: u32) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.before(at(self.heap, i), at(self.heap, parent)) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: u32) {
        loop {
            let mut best = i;
            for child in [2 * i + 1, 2 * i + 2] {
                if child < self.len && self.before(at(self.heap, child), at(self.heap, best)) {
                    best = child;
                }
            }
            if best == i {
                break;
            }
            self.swap(i, best);
            i = best;
        }
    }

    fn remove(&mut self, node: u32) {
        let i = at(self.pos, node);
        if i == NONE || i >= self.len {
            return;
        }
        let last = self.len - 1;
        self.swap(i, last);
        self.len = last;
        put(self.pos, node, NONE);
        if i < self.len {
            self.sift_down(i);
            self.sift_up(i);
        }
    }

    /// Recomputes the candidate of the pair starting at `node` and its heap place.
    fn refresh(&mut self, node: u32) {
        let next = at(self.next, node);
        let id = if next == NONE {
            NONE
        } else {
            self.tok.merge_of(at(self.ids, node), at(self.ids, next))
        };
        put(self.cand, node, id);
        let i = at(self.pos, node);
        match (id == NONE, i == NONE) {
            (true, _) => self.remove(node),
            (false, true) => {
                let end = self.len;
                put(self.heap, end, node);
                put(self.pos, node, end);
                self.len += 1;
                self.sift_up(end);
            }
            (false, false) => {
                self.sift_down(i);
                self.sift_up(at(self.pos, node));
            }
        }
    }

    /// Merges until no pair can; returns the number of tokens left (compacted to the front).
    fn run(&mut self, n: u32) -> usize {
        for i in 0..n {
            put(self.prev, i, if i == 0 { NONE } else { i - 1 });
            put(self.next, i, if i + 1 < n { i + 1 } else { NONE });
            put(self.pos, i, NONE);
        }
        for i in 0..n {
            self.refresh(i);
        }
        while self.len > 0 {
            let i = at(self.heap, 0);
            let j = at(self.next, i);
            let id = at(self.cand, i);
            self.remove(i);
            self.remove(j);
            put(self.ids, i, id);
            let k = at(self.next, j);
            put(self.next, i, k);
            if k != NONE {
                put(self.prev, k, i);
            }
            self.refresh(i);
            let p = at(self.prev, i);
            if p != NONE {
                self.refresh(p);
            }
        }
        // Node 0 is never merged away (only the right node of a pair is), and the list
        // keeps the text's order: copy it to the front.
        let (mut node, mut w) = (0u32, 0u32);
        while node != NONE && node < n {
            let id = at(self.ids, node);
            put(self.ids, w, id);
            w += 1;
            node = at(self.next, node);
        }
        w as usize
    }
}

/// A vocabulary and its merge scores, borrowed from the model bytes.
#[derive(Clone, Copy, Debug)]
pub struct Tokenizer<'a> {
    scores: &'a [f32],
    offsets: &'a [u32],
    pieces: &'a [u8],
    sorted: &'a [u32],
    bos: Option<u32>,
    eos: Option<u32>,
    byte_base: Option<u32>,
    dummy_prefix: bool,
    no_prefix_before_space: bool,
    max_piece_len: usize,
    kind: TokenizerKind,
    ext: Extension<'a>,
}

/// The optional tokenizer data of the file's extension section.
#[derive(Clone, Copy, Debug)]
struct Extension<'a> {
    /// The pre-tokenizer split (byte-level BPE; GPT-2's when the file has none).
    program: Program<'a>,
    /// Per token, the left length of the merge that makes it (`EXT_MERGE_SPLITS`).
    merge_splits: Option<&'a [u8]>,
    /// Added tokens matched in the text before pre-tokenizing.
    added: &'a [u32],
    ignore_merges: bool,
    chat_prefix: Option<&'a str>,
    chat_suffix: Option<&'a str>,
    chat_template: Option<&'a str>,
    chat_bos: Option<&'a str>,
    chat_eos: Option<&'a str>,
}

impl<'a> Extension<'a> {
    fn parse(bytes: &'a [u8], h: &Header, vocab: usize) -> Result<Self, FormatError> {
        let mut ext = Self {
            program: Program::gpt2(),
            merge_splits: None,
            added: &[],
            ignore_merges: h.tok_flags & TOK_FLAG_IGNORE_MERGES != 0,
            chat_prefix: None,
            chat_suffix: None,
            chat_template: None,
            chat_bos: None,
            chat_eos: None,
        };
        if h.tok_ext_offset == 0 && h.tok_ext_len == 0 {
            return Ok(ext);
        }
        let sec = section(bytes, "tokenizer extension", h.tok_ext_offset, h.tok_ext_len as usize)?;
        let bad = |index, what| FormatError::BadTokenizer { index, what };
        let mut seen = 0u32;
        for rec in ext_records(sec) {
            let (tag, payload) =
                rec.map_err(|at| bad(at, "extension record runs past its section"))?;
            if tag == 0 || tag > 31 || seen & (1 << tag) != 0 {
                return Err(bad(tag as usize, "unknown or repeated extension record"));
            }
            seen |= 1 << tag;
            let text = || {
                core::str::from_utf8(payload)
                    .map_err(|_| bad(tag as usize, "chat text is not UTF-8"))
            };
            let words = || {
                bytemuck::try_cast_slice::<u8, u32>(payload)
                    .map_err(|_| bad(tag as usize, "extension words are misaligned"))
            };
            match tag {
                EXT_PRETOKENIZER => {
                    ext.program = Program::parse(words()?).map_err(|e| bad(e.word, e.what))?;
                }
                EXT_MERGE_SPLITS => {
                    if payload.len() != vocab {
                        return Err(bad(payload.len(), "merge splits do not cover the vocabulary"));
                    }
                    ext.merge_splits = Some(payload);
                }
                EXT_ADDED_TOKENS => {
                    let ids = words()?;
                    if let Some(id) = ids.iter().find(|id| **id as usize >= vocab) {
                        return Err(bad(*id as usize, "added token outside the vocabulary"));
                    }
                    ext.added = ids;
                }
                EXT_CHAT_PREFIX => ext.chat_prefix = Some(text()?),
                EXT_CHAT_SUFFIX => ext.chat_suffix = Some(text()?),
                EXT_CHAT_TEMPLATE => ext.chat_template = Some(text()?),
                EXT_CHAT_BOS_TOKEN => ext.chat_bos = Some(text()?),
                EXT_CHAT_EOS_TOKEN => ext.chat_eos = Some(text()?),
                _ => return Err(bad(tag as usize, "unknown extension record")),
            }
        }
        Ok(ext)
    }
}

/// One decoded token: borrowed piece bytes, or a single raw byte from a byte-fallback token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text bytes of the piece.
    Text(&'a [u8]),
    /// A raw byte (`<0xNN>` token).
    Byte(u8),
}

/// Every byte value once, so a `Piece::Byte` can be lent out as a slice.
// In bounds: `i < 256` by the loop, and the table is built at compile time, where an
// out-of-bounds index fails the build.
#[allow(clippy::indexing_slicing)]
static BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as u8;
        i += 1;
    }
    t
};

impl<'a> Piece<'a> {
    /// The bytes to output.
    pub fn bytes(self) -> &'a [u8] {
        match self {
            Piece::Text(b) => b,
            // Never empty: every `u8` indexes the 256-entry table.
            Piece::Byte(b) => BYTES.get(usize::from(b)).map_or(&[], core::slice::from_ref),
        }
    }
}

fn byte_piece(b: u8) -> [u8; 6] {
    let hex = |d: u8| if d < 10 { b'0' + d } else { b'A' + (d - 10) };
    [b'<', b'0', b'x', hex(b >> 4), hex(b & 15), b'>']
}

/// Compares `piece` with the concatenation `a ++ b`.
fn cmp_concat(piece: &[u8], a: &[u8], b: &[u8]) -> Ordering {
    match piece.split_at_checked(a.len()) {
        Some((p1, p2)) => p1.cmp(a).then_with(|| p2.cmp(b)),
        // Shorter than `a`: a prefix of `a` (so of `a ++ b`) is Less, as slices compare.
        None => piece.cmp(a),
    }
}

impl<'a> Tokenizer<'a> {
    pub(crate) fn parse(bytes: &'a [u8], h: &Header, vocab: usize) -> Result<Self, FormatError> {
        let kind = TokenizerKind::from_code(h.tok_kind)
            .ok_or(FormatError::UnknownCode { field: "tokenizer kind", value: h.tok_kind })?;
        let known =
            TOK_FLAG_DUMMY_PREFIX | TOK_FLAG_NO_PREFIX_BEFORE_SPACE | TOK_FLAG_IGNORE_MERGES;
        if h.tok_flags & !known != 0 {
            return Err(FormatError::UnknownCode { field: "tokenizer flags", value: h.tok_flags });
        }
        let scores: &[f32] =
            bytemuck::cast_slice(section(bytes, "scores", h.scores_offset, vocab * 4)?);
        let offsets: &[u32] = bytemuck::cast_slice(section(
            bytes,
            "piece offsets",
            h.piece_offsets_offset,
            (vocab + 1) * 4,
        )?);
        let pieces = section(bytes, "pieces", h.pieces_offset, h.pieces_len as usize)?;
        let sorted: &[u32] =
            bytemuck::cast_slice(section(bytes, "sorted index", h.sorted_offset, vocab * 4)?);
        let bad = |index, what| FormatError::BadTokenizer { index, what };
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            return Err(bad(i, "score is not finite"));
        }
        // `offsets` holds `vocab + 1` entries (its section's length).
        if offsets.first() != Some(&0) || offsets.last() != Some(&h.pieces_len) {
            return Err(bad(vocab, "piece offsets do not span the piece bytes"));
        }
        for (i, (start, end)) in offsets.iter().zip(offsets.iter().skip(1)).enumerate() {
            if end < start || (end - start) > h.max_piece_len {
                return Err(bad(i, "piece offsets decrease or exceed max_piece_len"));
            }
        }
        let t = Self {
            scores,
            offsets,
            pieces,
            sorted,
            bos: (h.bos_id != NONE).then_some(h.bos_id),
            eos: (h.eos_id != NONE).then_some(h.eos_id),
            byte_base: (h.byte_fallback_base != NONE).then_some(h.byte_fallback_base),
            dummy_prefix: h.tok_flags & TOK_FLAG_DUMMY_PREFIX != 0,
            no_prefix_before_space: h.tok_flags & TOK_FLAG_NO_PREFIX_BEFORE_SPACE != 0,
            max_piece_len: h.max_piece_len as usize,
            kind,
            ext: Extension::parse(bytes, h, vocab)?,
        };
        let mut prev: Option<&[u8]> = None;
        for (i, id) in sorted.iter().enumerate() {
            if *id as usize >= vocab {
                return Err(bad(i, "sorted index names a token outside the vocabulary"));
            }
            let piece = t.piece(*id);
            if prev.is_some_and(|p| p >= piece) {
                return Err(bad(i, "sorted index is not strictly ascending"));
            }
            prev = Some(piece);
        }
        for id in [t.bos, t.eos].into_iter().flatten() {
            if id as usize >= vocab {
                return Err(bad(id as usize, "BOS/EOS id outside the vocabulary"));
            }
        }
        if h.n_stop_ids as usize > h.stop_ids.len() {
            return Err(FormatError::BadDimension { field: "n_stop_ids", value: h.n_stop_ids });
        }
        for (i, id) in h.stop_ids.iter().enumerate() {
            let used = i < h.n_stop_ids as usize;
            if (used && *id as usize >= vocab) || (!used && *id != 0) {
                return Err(bad(*id as usize, "stop id outside the vocabulary"));
            }
        }
        if let Some(base) = t.byte_base {
            if base as usize + 256 > vocab {
                return Err(bad(base as usize, "byte-fallback tokens run past the vocabulary"));
            }
            for b in 0..=255u8 {
                if t.piece(base + b as u32) != byte_piece(b) {
                    return Err(bad(
                        base as usize + b as usize,
                        "byte-fallback piece is not <0xNN>",
                    ));
                }
            }
        }
        if kind == TokenizerKind::ByteBpe {
            if t.byte_base.is_some() || t.dummy_prefix {
                return Err(bad(0, "byte-level BPE with byte fallback or a dummy prefix"));
            }
            for b in 0..=255u8 {
                if t.lookup(&[b]).is_none() {
                    return Err(bad(b as usize, "byte-level BPE without a piece for a byte"));
                }
            }
        } else if h.tok_flags & TOK_FLAG_IGNORE_MERGES != 0
            || t.ext.merge_splits.is_some()
            || !t.ext.added.is_empty()
            || h.tok_ext_len != 0 && t.ext.program.words() != crate::pretokenize::GPT2.as_slice()
        {
            return Err(bad(
                0,
                "pre-tokenizer, merge splits or added tokens without byte-level BPE",
            ));
        }
        if let Some(splits) = t.ext.merge_splits {
            for (id, k) in splits.iter().enumerate() {
                let len = t.piece(id as u32).len();
                if *k != 0 && usize::from(*k) >= len {
                    return Err(bad(id, "merge split not inside the piece"));
                }
            }
        }
        if let Some(id) = t.ext.added.iter().find(|id| t.piece(**id).is_empty()) {
            return Err(bad(*id as usize, "added token with an empty piece"));
        }
        Ok(t)
    }

    /// The encoding algorithm.
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.scores.len()
    }

    /// The bytes of token `id` as stored (empty for an unknown id).
    pub fn piece(&self, id: u32) -> &'a [u8] {
        let i = id as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(s), Some(e)) => self.pieces.get(*s as usize..*e as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Merge score of token `id`.
    pub fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(f32::NEG_INFINITY)
    }

    /// Beginning-of-sequence id.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence id.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Longest piece in bytes.
    pub fn max_piece_len(&self) -> usize {
        self.max_piece_len
    }

    /// The text a chat prompt starts with, before the user's message, if the file has one.
    pub fn chat_prefix(&self) -> Option<&'a str> {
        self.ext.chat_prefix
    }

    /// The text after the user's message (ends with the assistant's header), if any.
    pub fn chat_suffix(&self) -> Option<&'a str> {
        self.ext.chat_suffix
    }

    /// The chat template (Jinja source), if the file has one.
    pub fn chat_template(&self) -> Option<&'a str> {
        self.ext.chat_template
    }

    /// The texts the chat template's `bos_token` and `eos_token` stand for (empty if unset).
    pub fn chat_specials(&self) -> (&'a str, &'a str) {
        (self.ext.chat_bos.unwrap_or(""), self.ext.chat_eos.unwrap_or(""))
    }

    /// Ids of the added tokens, which the text may name literally.
    pub fn added_tokens(&self) -> &'a [u32] {
        self.ext.added
    }

    /// The pre-tokenizer split of a byte-level BPE.
    pub fn pre_tokenizer(&self) -> Program<'a> {
        self.ext.program
    }

    /// Whether unknown characters fall back to `<0xNN>` byte tokens.
    pub fn has_byte_fallback(&self) -> bool {
        self.byte_base.is_some()
    }

    /// Whether `id` is a byte-fallback token, and which byte.
    pub fn byte_of(&self, id: u32) -> Option<u8> {
        let base = self.byte_base?;
        let b = id.checked_sub(base)?;
        u8::try_from(b).ok()
    }

    fn find(&self, cmp: impl Fn(&[u8]) -> Ordering) -> Option<u32> {
        let i = self.sorted.binary_search_by(|id| cmp(self.piece(*id))).ok()?;
        self.sorted.get(i).copied()
    }

    /// The id of the piece equal to `bytes`.
    pub fn lookup(&self, bytes: &[u8]) -> Option<u32> {
        self.find(|p| p.cmp(bytes))
    }

    /// The fewest tokens `text` can encode to (BOS and EOS not counted): no token covers
    /// more bytes of text than its piece has, so at least `text.len() / max_piece_len`. A
    /// caller can refuse a text that cannot fit its context before encoding it.
    pub fn min_tokens(&self, text: &str) -> usize {
        text.len().div_ceil(self.max_piece_len.max(1))
    }

    /// Encodes `text` into `out`, returning the number of ids written; `scratch` holds the
    /// merge state and needs [`ENCODE_SCRATCH_PER_TOKEN`] words per entry of `out` that
    /// the text fills before merging (`ENCODE_SCRATCH_PER_TOKEN * out.len()` always
    /// suffices).
    ///
    /// # Errors
    /// [`TokenizeError::OutputFull`] when `out` is too small (a bound of
    /// `text.len() + 3` always suffices), [`TokenizeError::ScratchTooSmall`] when `scratch`
    /// is, [`TokenizeError::NoPiece`] for a character the vocabulary cannot express.
    pub fn encode(
        &self,
        text: &str,
        bos: bool,
        eos: bool,
        out: &mut [u32],
        scratch: &mut [u32],
    ) -> Result<usize, TokenizeError> {
        if self.kind == TokenizerKind::ByteBpe {
            return self.encode_byte_level(text, bos, eos, out, scratch);
        }
        let capacity = out.len();
        let mut n = 0;
        let mut push = |out: &mut [u32], id: u32| -> Result<(), TokenizeError> {
            *out.get_mut(n).ok_or(TokenizeError::OutputFull { capacity })? = id;
            n += 1;
            Ok(())
        };
        if let (true, Some(id)) = (bos, self.bos) {
            push(out, id)?;
        }
        let starts_with_space = text.starts_with(' ') && self.no_prefix_before_space;
        if self.dummy_prefix && !text.is_empty() && !starts_with_space {
            if let Some(id) = self.lookup(b" ") {
                push(out, id)?;
            }
        }
        let mut buf = [0u8; 4];
        for (offset, c) in text.char_indices() {
            let bytes = c.encode_utf8(&mut buf).as_bytes();
            match (self.lookup(bytes), self.byte_base) {
                (Some(id), _) => push(out, id)?,
                (None, Some(base)) => {
                    for b in bytes {
                        push(out, base + *b as u32)?;
                    }
                }
                (None, None) => return Err(TokenizeError::NoPiece { offset }),
            }
        }
        let n =
            self.merge(out.get_mut(..n).ok_or(TokenizeError::OutputFull { capacity })?, scratch)?;
        let mut n2 = n;
        if let (true, Some(id)) = (eos, self.eos) {
            *out.get_mut(n2).ok_or(TokenizeError::OutputFull { capacity })? = id;
            n2 += 1;
        }
        Ok(n2)
    }

    /// Byte-level BPE: added tokens found in the text become their ids; the text between
    /// them is split by the pre-tokenizer program, and each chunk becomes one piece per byte
    /// (all present, checked by `parse`) merged by score — or the chunk's own token, with
    /// `ignore_merges`, when it is a piece.
    fn encode_byte_level(
        &self,
        text: &str,
        bos: bool,
        eos: bool,
        out: &mut [u32],
        scratch: &mut [u32],
    ) -> Result<usize, TokenizeError> {
        let capacity = out.len();
        let full = TokenizeError::OutputFull { capacity };
        let mut n = 0;
        if let (true, Some(id)) = (bos, self.bos) {
            *out.get_mut(n).ok_or(full)? = id;
            n += 1;
        }
        let (mut segment, mut pos) = (0, 0);
        while pos < text.len() {
            match self.added_at(text.get(pos..).unwrap_or("")) {
                Some((id, len)) => {
                    n =
                        self.encode_segment(text.get(segment..pos).unwrap_or(""), out, n, scratch)?;
                    *out.get_mut(n).ok_or(full)? = id;
                    n += 1;
                    pos += len;
                    segment = pos;
                }
                None => {
                    pos += text.get(pos..).and_then(|s| s.chars().next()).map_or(1, char::len_utf8)
                }
            }
        }
        n = self.encode_segment(text.get(segment..).unwrap_or(""), out, n, scratch)?;
        if let (true, Some(id)) = (eos, self.eos) {
            *out.get_mut(n).ok_or(full)? = id;
            n += 1;
        }
        Ok(n)
    }

    /// The longest added token `rest` starts with: its id and length.
    fn added_at(&self, rest: &str) -> Option<(u32, usize)> {
        let mut best: Option<(u32, usize)> = None;
        for id in self.ext.added {
            let p = self.piece(*id);
            if rest.as_bytes().starts_with(p) && best.is_none_or(|(_, len)| p.len() > len) {
                best = Some((*id, p.len()));
            }
        }
        best
    }

    /// Encodes `text` (no added tokens in it) into `out[n..]`; returns the new length.
    fn encode_segment(
        &self,
        text: &str,
        out: &mut [u32],
        mut n: usize,
        scratch: &mut [u32],
    ) -> Result<usize, TokenizeError> {
        let full = TokenizeError::OutputFull { capacity: out.len() };
        self.ext.program.split(text, &mut |a, b| {
            let chunk = text.as_bytes().get(a..b).unwrap_or(&[]);
            if self.ext.ignore_merges {
                if let Some(id) = self.lookup(chunk) {
                    *out.get_mut(n).ok_or(full)? = id;
                    n += 1;
                    return Ok(());
                }
            }
            let first = n;
            for byte in chunk {
                *out.get_mut(n).ok_or(full)? = self.lookup(&[*byte]).unwrap_or(0);
                n += 1;
            }
            n = first + self.merge(out.get_mut(first..n).ok_or(full)?, scratch)?;
            Ok(())
        })?;
        Ok(n)
    }

    /// [`encode`](Self::encode) into a fixed-capacity vector (e.g. a firmware's prompt buffer).
    ///
    /// # Errors
    /// As `encode`; [`TokenizeError::OutputFull`] when `N` is too small.
    pub fn encode_vec<const N: usize>(
        &self,
        text: &str,
        bos: bool,
        eos: bool,
    ) -> Result<heapless::Vec<u32, N>, TokenizeError> {
        let mut buf = [0u32; N];
        let mut scratch = [[0u32; ENCODE_SCRATCH_PER_TOKEN]; N];
        let n = self.encode(text, bos, eos, &mut buf, scratch.as_flattened_mut())?;
        Ok(buf[..n].iter().copied().collect())
    }

    /// The id the adjacent pair `x`, `y` merges into, or [`NONE`] when their concatenation
    /// is no piece or scores at or below llama2.c's floor.
    fn merge_of(&self, x: u32, y: u32) -> u32 {
        let (a, b) = (self.piece(x), self.piece(y));
        if a.len() + b.len() > self.max_piece_len {
            return NONE;
        }
        match self.find(|p| cmp_concat(p, a, b)) {
            Some(id) if self.score(id) > MIN_MERGE_SCORE && self.made_by(id, a.len()) => id,
            _ => NONE,
        }
    }

    /// Whether the merge that makes `id` has a left part of `left` bytes (always true
    /// without merge splits).
    fn made_by(&self, id: u32, left: usize) -> bool {
        self.ext
            .merge_splits
            .is_none_or(|s| s.get(id as usize).is_some_and(|k| usize::from(*k) == left))
    }

    /// Repeatedly merges the best-scoring adjacent pair (the leftmost on ties); returns the
    /// new length. O(n log n) with the heap of [`Merges`] in `scratch`.
    fn merge(&self, tokens: &mut [u32], scratch: &mut [u32]) -> Result<usize, TokenizeError> {
        let n = tokens.len();
        if n < 2 {
            return Ok(n);
        }
        let needed = n.saturating_mul(ENCODE_SCRATCH_PER_TOKEN);
        let too_small = TokenizeError::ScratchTooSmall { needed };
        // Node numbers and NONE are u32.
        let n32 = u32::try_from(n).ok().filter(|n| *n < NONE).ok_or(too_small)?;
        let s = scratch.get_mut(..needed).ok_or(too_small)?;
        let (prev, s) = s.split_at_mut(n);
        let (next, s) = s.split_at_mut(n);
        let (cand, s) = s.split_at_mut(n);
        let (heap, pos) = s.split_at_mut(n);
        let mut m = Merges { tok: self, ids: tokens, prev, next, cand, heap, pos, len: 0 };
        Ok(m.run(n32))
    }

    /// What to print for `token` when it follows `prev` (llama2.c's `decode`): byte tokens
    /// become their byte, and with a dummy prefix a piece's leading space is dropped right
    /// after BOS.
    pub fn decode(&self, prev: Option<u32>, token: u32) -> Piece<'a> {
        if let Some(b) = self.byte_of(token) {
            return Piece::Byte(b);
        }
        let p = self.piece(token);
        match (prev, self.bos, p) {
            (Some(prev), Some(bos), [b' ', rest @ ..]) if prev == bos && self.dummy_prefix => {
                Piece::Text(rest)
            }
            _ => Piece::Text(p),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn concat_comparison_agrees_with_building_the_string() {
        let cases: [(&[u8], &[u8], &[u8]); 8] = [
            (b"abc", b"a", b"bc"),
            (b"ab", b"a", b"bc"),
            (b"abd", b"a", b"bc"),
            (b"a", b"ab", b""),
            (b"", b"", b""),
            (b"b", b"a", b""),
            (b"ab", b"ab", b"c"),
            (b"abcd", b"ab", b"c"),
        ];
        for (p, a, b) in cases {
            let mut s = [0u8; 16];
            s[..a.len()].copy_from_slice(a);
            s[a.len()..a.len() + b.len()].copy_from_slice(b);
            assert_eq!(cmp_concat(p, a, b), p.cmp(&s[..a.len() + b.len()]), "{p:?} {a:?} {b:?}");
        }
    }

    #[test]
    fn byte_piece_is_upper_hex() {
        assert_eq!(&byte_piece(0x0A), b"<0x0A>");
        assert_eq!(&byte_piece(0xFF), b"<0xFF>");
    }
}
