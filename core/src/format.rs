//! The `.chispa` file layout — the one definition shared by the reader (`Model::parse`, here)
//! and the writer (`chispa-convert`, in `tools/`).
//!
//! ```text
//! offset 0     Header (HEADER_BYTES, little-endian fields in the order of `Header`)
//!              tensor directory: n_tensors × TensorEntry (TENSOR_ENTRY_BYTES each)
//!              tensors: data (f32, i8, or i4: two per byte, low nibble first, each row
//!                       starting on a byte) and, for i8 and i4, the scales: one f32 per
//!                       row, then one u8 multiplier per row and group — each at an ALIGN boundary,
//!                       in directory order, none overlapping another, all between the
//!                       end of the directory and the first tokenizer table
//!              tokenizer: scores [vocab] f32, piece offsets [vocab + 1] u32,
//!                         piece bytes, sorted index [vocab] u32 — each at an ALIGN boundary
//!              tokenizer extension (optional, `tok_ext_offset`/`tok_ext_len`, at an ALIGN
//!                         boundary): records `tag u32, len u32, len bytes` each padded
//!                         to 4 bytes, tags `EXT_*`, each at most once
//! file_bytes   end (no trailing bytes)
//! ```
//!
//! Every section starts at a multiple of [`ALIGN`] from the start of the file, and the file
//! itself must be mapped at an address aligned to [`BASE_ALIGN`] (an mmap, or a
//! `#[repr(align(16))]` static in flash), so tensors are read in place with no copy.
//!
//! Integrity: `checksum` is the CRC-32 (IEEE) of the whole file with the four checksum bytes
//! read as zero. CRC-32 detects every single-bit and every burst error up to 32 bits.
//!
//! The tensor directory lists tensors in the canonical order of [`canonical_tensor`], so the
//! forward pass finds tensor *k* of layer *l* by arithmetic, not by search.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

/// First four bytes of every `.chispa` file.
pub const MAGIC: [u8; 4] = *b"CHSP";
/// Readers refuse a file of another major version.
pub const VERSION_MAJOR: u16 = 2;
/// Minor versions add meaning to reserved (zero) fields or unused codes only, so a file that
/// uses none of a minor version's additions reads with an older reader, and one that does is
/// refused by it (a reserved byte not zero, an unknown code). Minor 1: the header's
/// `head_dim`; minor 2: [`DType::I4`] (weight dtype code 2, which an older reader refuses as
/// "unknown weight dtype code 2").
pub const VERSION_MINOR: u16 = 2;
/// Size of the fixed header.
pub const HEADER_BYTES: usize = 192;
/// Byte offset of the `checksum` field inside the header.
pub const CHECKSUM_OFFSET: usize = 16;
/// Size of one tensor-directory entry.
pub const TENSOR_ENTRY_BYTES: usize = 32;
/// Alignment of every section offset inside the file.
pub const ALIGN: usize = 64;
/// Alignment the start of the file must have in memory.
pub const BASE_ALIGN: usize = 16;
/// "No such token" in id fields.
pub const NONE: u32 = u32::MAX;
/// How many stop token ids the header holds.
pub const MAX_STOP_IDS: usize = 4;

/// Tokenizer flag: prepend the piece for `" "` to non-empty text (sentencepiece's dummy prefix).
pub const TOK_FLAG_DUMMY_PREFIX: u32 = 1;
/// Tokenizer flag (with [`TOK_FLAG_DUMMY_PREFIX`]): no dummy prefix when the text already
/// starts with a space (Hugging Face's `Metaspace` pre-tokenizer).
pub const TOK_FLAG_NO_PREFIX_BEFORE_SPACE: u32 = 2;
/// Tokenizer flag (byte-level BPE): a chunk that is a piece as a whole is that token, with
/// no merges (Hugging Face's `ignore_merges`).
pub const TOK_FLAG_IGNORE_MERGES: u32 = 4;

/// Extension record: the pre-tokenizer program (`u32` words, see [`crate::pretokenize`]).
pub const EXT_PRETOKENIZER: u32 = 1;
/// Extension record: `[vocab] u8`, per token the byte length of the left part of the merge
/// that makes it (0 for tokens no merge makes). A pair merges only into the token whose
/// merge it is, as in Hugging Face's BPE.
pub const EXT_MERGE_SPLITS: u32 = 2;
/// Extension record: `u32` ids of the added tokens, whose text is matched in the input
/// before pre-tokenizing (the longest at each position) and becomes that one id.
pub const EXT_ADDED_TOKENS: u32 = 3;
/// Extension record: UTF-8 text a chat prompt starts with, before the user's message.
pub const EXT_CHAT_PREFIX: u32 = 4;
/// Extension record: UTF-8 text after the user's message (ends with the assistant's header).
pub const EXT_CHAT_SUFFIX: u32 = 5;
/// Extension record: the chat template (Jinja source) for hosts that render it.
pub const EXT_CHAT_TEMPLATE: u32 = 6;
/// Extension record: the text the chat template's `bos_token` stands for.
pub const EXT_CHAT_BOS_TOKEN: u32 = 7;
/// Extension record: the text the chat template's `eos_token` stands for.
pub const EXT_CHAT_EOS_TOKEN: u32 = 8;

/// The records of a tokenizer extension as `(tag, payload)`, in order; `Err(offset)` at the
/// first record that runs past the section.
pub fn ext_records(mut b: &[u8]) -> impl Iterator<Item = Result<(u32, &[u8]), usize>> + '_ {
    let total = b.len();
    core::iter::from_fn(move || {
        if b.is_empty() {
            return None;
        }
        let at = total - b.len();
        let mut head = b;
        let tag = u32::get(&mut head);
        let len = u32::get(&mut head) as usize;
        let padded = len.div_ceil(4) * 4;
        match (b.len() >= 8, head.get(..len), head.get(padded..)) {
            (true, Some(payload), Some(rest)) => {
                b = rest;
                Some(Ok((tag, payload)))
            }
            _ => {
                b = &[];
                Some(Err(at))
            }
        }
    })
}

/// Model flag: the classifier is the token-embedding table.
pub const FLAG_SHARED_CLASSIFIER: u32 = 1;

/// A fixed-size little-endian field of the header. `get` and `put` work at the front of a
/// cursor and move it past the field.
trait Field: Sized {
    const SIZE: usize;
    fn get(b: &mut &[u8]) -> Self;
    fn put(&self, b: &mut &mut [u8]);
}

/// The next `N` bytes of the cursor `b`, which moves past them. Zeros when `b` is shorter:
/// never for the header and directory entries, whose fields fit their fixed size
/// (asserted at compile time below).
fn take<const N: usize>(b: &mut &[u8]) -> [u8; N] {
    match b.split_first_chunk() {
        Some((head, rest)) => {
            *b = rest;
            *head
        }
        None => {
            *b = &[];
            [0; N]
        }
    }
}

/// Writes `bytes` at the front of the cursor `b`, which moves past them. Writes nothing when
/// `b` is shorter (never, as for [`take`]).
fn give<const N: usize>(b: &mut &mut [u8], bytes: [u8; N]) {
    if let Some((head, rest)) = core::mem::take(b).split_first_chunk_mut() {
        *head = bytes;
        *b = rest;
    }
}

impl Field for u16 {
    const SIZE: usize = 2;
    fn get(b: &mut &[u8]) -> Self {
        u16::from_le_bytes(take(b))
    }
    fn put(&self, b: &mut &mut [u8]) {
        give(b, self.to_le_bytes());
    }
}

impl Field for u32 {
    const SIZE: usize = 4;
    fn get(b: &mut &[u8]) -> Self {
        u32::from_le_bytes(take(b))
    }
    fn put(&self, b: &mut &mut [u8]) {
        give(b, self.to_le_bytes());
    }
}

impl Field for f32 {
    const SIZE: usize = 4;
    fn get(b: &mut &[u8]) -> Self {
        f32::from_bits(u32::get(b))
    }
    fn put(&self, b: &mut &mut [u8]) {
        self.to_bits().put(b);
    }
}

impl Field for [u8; 4] {
    const SIZE: usize = 4;
    fn get(b: &mut &[u8]) -> Self {
        take(b)
    }
    fn put(&self, b: &mut &mut [u8]) {
        give(b, *self);
    }
}

impl Field for [u32; MAX_STOP_IDS] {
    const SIZE: usize = 4 * MAX_STOP_IDS;
    fn get(b: &mut &[u8]) -> Self {
        let mut out = [0; MAX_STOP_IDS];
        for v in &mut out {
            *v = u32::get(b);
        }
        out
    }
    fn put(&self, b: &mut &mut [u8]) {
        for v in self {
            v.put(b);
        }
    }
}

macro_rules! header {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty ),* $(,)?) => {
        /// The fixed header at offset 0. Fields are stored in this order, little-endian,
        /// packed; the rest of the `HEADER_BYTES` is reserved and must be zero.
        #[derive(Clone, Copy, Debug, PartialEq, Default)]
        pub struct Header { $( $(#[$doc])* pub $name: $ty, )* }

        impl Header {
            /// Bytes the fields occupy (the rest of the header is reserved).
            pub const USED_BYTES: usize = 0 $( + <$ty as Field>::SIZE )*;

            /// Decodes the fields; does not validate them.
            pub fn read(b: &[u8; HEADER_BYTES]) -> Self {
                let mut rest: &[u8] = b;
                $( let $name = <$ty as Field>::get(&mut rest); )*
                Self { $( $name, )* }
            }

            /// Encodes the fields; reserved bytes are written as zero.
            pub fn write(&self) -> [u8; HEADER_BYTES] {
                let mut b = [0u8; HEADER_BYTES];
                let mut rest: &mut [u8] = &mut b;
                $( <$ty as Field>::put(&self.$name, &mut rest); )*
                b
            }
        }
    };
}

header! {
    /// [`MAGIC`].
    magic: [u8; 4],
    /// [`VERSION_MAJOR`] of the writer.
    version_major: u16,
    /// [`VERSION_MINOR`] of the writer.
    version_minor: u16,
    /// [`HEADER_BYTES`].
    header_bytes: u32,
    /// Length of the whole file.
    file_bytes: u32,
    /// CRC-32 of the file with these four bytes as zero (at [`CHECKSUM_OFFSET`]).
    checksum: u32,
    /// [`Arch`] code.
    arch: u32,
    /// [`DType`] code of the matrices (norm weights are always f32): f32, int8, or (minor
    /// version 2) int4 — a quantized file whose matrices are each int4 or int8, as their
    /// directory entries say.
    weight_dtype: u32,
    /// Model width.
    dim: u32,
    /// Feed-forward width.
    hidden_dim: u32,
    /// Transformer blocks.
    n_layers: u32,
    /// Query heads.
    n_heads: u32,
    /// Key/value heads (grouped-query attention).
    n_kv_heads: u32,
    /// Tokens in the vocabulary.
    vocab_size: u32,
    /// Longest context the model was trained for.
    max_seq_len: u32,
    /// RoPE base frequency.
    rope_theta: f32,
    /// RMSNorm epsilon.
    norm_eps: f32,
    /// `FLAG_*` bits.
    flags: u32,
    /// Entries in the tensor directory.
    n_tensors: u32,
    /// Offset of the tensor directory.
    tensors_offset: u32,
    /// [`TokenizerKind`] code.
    tok_kind: u32,
    /// `TOK_FLAG_*` bits.
    tok_flags: u32,
    /// Beginning-of-sequence id, or [`NONE`].
    bos_id: u32,
    /// End-of-sequence id, or [`NONE`].
    eos_id: u32,
    /// Id of the piece `<0x00>`; `<0xNN>` is this + NN. [`NONE`] without byte fallback.
    byte_fallback_base: u32,
    /// Longest piece in bytes.
    max_piece_len: u32,
    /// Offset of the merge scores, `[vocab] f32`.
    scores_offset: u32,
    /// Offset of the piece offsets, `[vocab + 1] u32` into the piece bytes.
    piece_offsets_offset: u32,
    /// Offset of the concatenated piece bytes.
    pieces_offset: u32,
    /// Length of the concatenated piece bytes.
    pieces_len: u32,
    /// Offset of the ids sorted by piece bytes, `[vocab] u32`.
    sorted_offset: u32,
    /// How many of `stop_ids` are used.
    n_stop_ids: u32,
    /// Ids that end generation (llama2.c stops on BOS).
    stop_ids: [u32; MAX_STOP_IDS],
    /// Offset of the tokenizer extension (0 when absent).
    tok_ext_offset: u32,
    /// Length of the tokenizer extension (0 when absent).
    tok_ext_len: u32,
    /// Width of one attention head, or 0 for `dim / n_heads` (minor version 1; only the
    /// architectures whose `Spec::free_head_dim` is set).
    head_dim: u32,
}

const _: () = assert!(Header::USED_BYTES <= HEADER_BYTES);

pub use crate::arch::{Arch, Params};

/// Element type of a stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DType {
    /// 32-bit float.
    F32 = 0,
    /// Symmetric int8 in groups of the tensor's `group` inputs: an f32 scale per row and a u8
    /// multiplier per group (the group's scale is `row scale · multiplier`).
    I8 = 1,
    /// Symmetric int4 (−8..=7), two per byte with the even column in the low nibble, each
    /// row starting on a byte, scaled as [`DType::I8`] (minor version 2). As the header's
    /// weight type: the file's matrices are int4 or int8, each as its directory entry says.
    I4 = 2,
}

impl DType {
    /// Decodes a header code.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::F32),
            1 => Some(Self::I8),
            2 => Some(Self::I4),
            _ => None,
        }
    }

    /// Short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::I8 => "int8",
            Self::I4 => "int4",
        }
    }

    /// Whether the matrices are quantized (int8 or int4; the activations then are too).
    pub fn is_quantized(self) -> bool {
        self != Self::F32
    }

    /// Bytes of a `[rows, cols]` tensor's elements (without scales).
    pub const fn data_len(self, rows: usize, cols: usize) -> usize {
        match self {
            Self::F32 => rows * cols * 4,
            Self::I8 => rows * cols,
            Self::I4 => rows * cols.div_ceil(2),
        }
    }
}

/// Tokenizer algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TokenizerKind {
    /// sentencepiece-style BPE as in llama2.c: code points, byte fallback, merges by score.
    ScoreBpe = 1,
    /// GPT-2 byte-level BPE: the GPT-2 pre-tokenizer split, then per chunk one piece per
    /// byte (pieces are stored as raw bytes) and merges by score (= −merge rank).
    ByteBpe = 2,
}

impl TokenizerKind {
    /// Decodes a header code.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::ScoreBpe),
            2 => Some(Self::ByteBpe),
            _ => None,
        }
    }
}

/// What a tensor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TensorKind {
    /// Token embedding `[vocab, dim]`.
    TokEmbed = 1,
    /// Final RMSNorm weight `[dim]`.
    FinalNorm = 2,
    /// Classifier `[vocab, dim]` (absent when shared with the embedding).
    Classifier = 3,
    /// Attention RMSNorm weight `[dim]`.
    AttnNorm = 10,
    /// Query projection `[dim, dim]`.
    Wq = 11,
    /// Key projection `[kv_dim, dim]`.
    Wk = 12,
    /// Value projection `[kv_dim, dim]`.
    Wv = 13,
    /// Attention output `[dim, dim]`.
    Wo = 14,
    /// Feed-forward RMSNorm weight `[dim]`.
    FfnNorm = 15,
    /// Gate projection `[hidden, dim]`.
    W1 = 16,
    /// Down projection `[dim, hidden]`.
    W2 = 17,
    /// Up projection `[hidden, dim]`.
    W3 = 18,
    /// Learned position embedding `[max_seq_len, dim]` (GPT-2).
    PosEmbed = 4,
    /// Final LayerNorm bias `[dim]` (GPT-2).
    FinalNormBias = 5,
    /// Attention LayerNorm bias `[dim]` (GPT-2).
    AttnNormBias = 20,
    /// Query bias `[dim]` (GPT-2).
    Bq = 21,
    /// Key bias `[kv_dim]` (GPT-2).
    Bk = 22,
    /// Value bias `[kv_dim]` (GPT-2).
    Bv = 23,
    /// Attention output bias `[dim]` (GPT-2).
    Bo = 24,
    /// Feed-forward LayerNorm bias `[dim]` (GPT-2).
    FfnNormBias = 25,
    /// Feed-forward input bias `[hidden]` (GPT-2; `w1` is `c_fc`).
    B1 = 26,
    /// Feed-forward output bias `[dim]` (GPT-2; `w2` is `c_proj`).
    B2 = 27,
    /// Query-head RMSNorm weight `[head_size]` (Qwen3).
    QNorm = 28,
    /// Key-head RMSNorm weight `[head_size]` (Qwen3).
    KNorm = 29,
}

impl TensorKind {
    /// Decodes a directory code.
    pub fn from_code(code: u16) -> Option<Self> {
        crate::arch::TENSORS.iter().map(|t| t.kind).find(|k| *k as u16 == code)
    }

    /// Canonical name, as printed by `chispa-convert inspect` (the tensor table's).
    pub fn name(self) -> &'static str {
        crate::arch::info(self).name
    }

    /// True for the 1-D norm weights and biases (always stored as f32).
    pub fn is_vector(self) -> bool {
        matches!(crate::arch::info(self).role, crate::arch::Role::Norm | crate::arch::Role::Bias)
    }
}

/// The tensor at directory position `index`, with its `(rows, cols)` shape (`rows = 1` for
/// vectors), or `None` past the end: the canonical order writers must follow
/// ([`Params::tensor`]).
pub fn canonical_tensor(p: &Params, index: usize) -> Option<(TensorKind, usize, usize, usize)> {
    p.tensor(index)
}

/// Number of tensors a model with these parameters has.
pub fn tensor_count(p: &Params) -> usize {
    p.tensor_count()
}

/// One entry of the tensor directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TensorEntry {
    /// [`TensorKind`] code.
    pub kind: u16,
    /// Layer index (0 for global tensors).
    pub layer: u16,
    /// [`DType`] code.
    pub dtype: u16,
    /// Quantization group along `cols` (int8 and int4; 0 for f32). Matrices that read the same
    /// activation (wq/wk/wv; w1/w3) share one group size.
    pub group: u16,
    /// Output dimension (1 for vectors).
    pub rows: u32,
    /// Input dimension.
    pub cols: u32,
    /// Offset of the elements.
    pub data_offset: u32,
    /// Bytes of the elements.
    pub data_len: u32,
    /// Offset of the scales (i8 and i4, else 0): `[rows]` f32 row scales, then
    /// `[rows, groups_per_row]` u8 group multipliers.
    pub scales_offset: u32,
    /// Bytes of the scales (i8 and i4, else 0): `rows · (4 + groups_per_row)`.
    pub scales_len: u32,
}

impl TensorEntry {
    /// Decodes an entry.
    pub fn read(b: &[u8; TENSOR_ENTRY_BYTES]) -> Self {
        let mut r: &[u8] = b;
        // Struct fields are evaluated in the order written, which is the stored order.
        Self {
            kind: u16::get(&mut r),
            layer: u16::get(&mut r),
            dtype: u16::get(&mut r),
            group: u16::get(&mut r),
            rows: u32::get(&mut r),
            cols: u32::get(&mut r),
            data_offset: u32::get(&mut r),
            data_len: u32::get(&mut r),
            scales_offset: u32::get(&mut r),
            scales_len: u32::get(&mut r),
        }
    }

    /// Encodes an entry.
    pub fn write(&self) -> [u8; TENSOR_ENTRY_BYTES] {
        let mut b = [0u8; TENSOR_ENTRY_BYTES];
        let mut w: &mut [u8] = &mut b;
        for v in [self.kind, self.layer, self.dtype, self.group] {
            v.put(&mut w);
        }
        let fields = [
            self.rows,
            self.cols,
            self.data_offset,
            self.data_len,
            self.scales_offset,
            self.scales_len,
        ];
        for v in fields {
            v.put(&mut w);
        }
        b
    }
}

const _: () = assert!(4 * <u16 as Field>::SIZE + 6 * <u32 as Field>::SIZE == TENSOR_ENTRY_BYTES);

/// Number of quantization groups in a row of `cols` inputs (the last one may be short).
pub const fn groups_per_row(cols: usize, group_size: usize) -> usize {
    cols.div_ceil(group_size)
}

/// Bytes of an int8 or int4 matrix's scales: an f32 per row, then a u8 per row and group.
pub const fn i8_scales_len(rows: usize, cols: usize, group_size: usize) -> usize {
    rows * (4 + groups_per_row(cols, group_size))
}

/// Rounds `n` up to the next multiple of [`ALIGN`].
pub const fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

// In bounds: `i < 256` by the loop, and the table is built at compile time, where an
// out-of-bounds index fails the build.
#[allow(clippy::indexing_slicing)]
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Running CRC-32 (IEEE 802.3, as zlib's `crc32`).
#[derive(Clone, Copy, Debug)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A CRC over no bytes yet.
    pub const fn new() -> Self {
        Self(0xFFFF_FFFF)
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            // In bounds: the index is masked to 0..=255 and the table has 256 entries.
            #[allow(clippy::indexing_slicing)]
            let t = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize];
            c = t ^ (c >> 8);
        }
        self.0 = c;
    }

    /// The CRC of everything fed.
    pub const fn finish(self) -> u32 {
        !self.0
    }
}

/// The checksum a `.chispa` file must carry: CRC-32 of `file` with the checksum field as zero.
/// A `file` too short to hold the field (never a valid one) is hashed up to the field.
pub fn file_checksum(file: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    let (head, rest) = file.split_at_checked(CHECKSUM_OFFSET).unwrap_or((file, &[]));
    crc.update(head);
    if let Some((_, tail)) = rest.split_first_chunk::<4>() {
        crc.update(&[0; 4]);
        crc.update(tail);
    }
    crc.finish()
}

/// The `N`-byte groups of `bytes` in order, as arrays for `from_le_bytes`; a shorter tail is
/// left out (as by `chunks_exact`).
pub fn byte_groups<const N: usize>(mut bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    core::iter::from_fn(move || {
        let (head, rest) = bytes.split_first_chunk()?;
        bytes = rest;
        Some(*head)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926);
    }

    #[test]
    fn checksum_field_sits_at_its_offset() {
        let h = Header { checksum: 0xDEAD_BEEF, ..Header::default() };
        let b = h.write();
        assert_eq!(&b[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4], &0xDEAD_BEEFu32.to_le_bytes());
        assert_eq!(Header::read(&b), h);
    }

    #[test]
    fn tensor_entry_round_trips() {
        let e = TensorEntry {
            kind: 12,
            layer: 3,
            dtype: 1,
            group: 16,
            rows: 32,
            cols: 64,
            data_offset: 640,
            data_len: 2048,
            scales_offset: 2688,
            scales_len: 128,
        };
        assert_eq!(TensorEntry::read(&e.write()), e);
    }

    #[test]
    fn canonical_order_covers_every_tensor_once() {
        let s = Params {
            arch: Arch::Llama,
            dim: 8,
            hidden_dim: 12,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 0,
            vocab_size: 10,
            max_seq_len: 16,
            rope_theta: 10000.0,
            norm_eps: 1e-5,
            shared_classifier: false,
        };
        let n = tensor_count(&s);
        assert_eq!(n, 3 + 18);
        assert!(canonical_tensor(&s, n).is_none());
        assert_eq!(canonical_tensor(&s, 2), Some((TensorKind::Classifier, 0, 10, 8)));
        assert_eq!(canonical_tensor(&s, 3 + 9 + 7), Some((TensorKind::W2, 1, 8, 12)));
        for code in 0..40u16 {
            if let Some(k) = TensorKind::from_code(code) {
                assert_eq!(k as u16, code);
            }
        }
    }
}
