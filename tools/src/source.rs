//! The in-memory model that every reader produces and the writer consumes.

use anyhow::{ensure, Result};
use chispa_core::format::{canonical_tensor, tensor_count, Arch, Shape};
use chispa_core::model::{MAX_DIM, MAX_LAYERS, MAX_SEQ, MAX_VOCAB};

/// Hyper-parameters of a source model.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Architecture.
    pub arch: Arch,
    /// Model width.
    pub dim: usize,
    /// Feed-forward width.
    pub hidden_dim: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Longest context.
    pub max_seq_len: usize,
    /// RoPE base.
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub norm_eps: f32,
    /// Classifier shared with the embedding.
    pub shared_classifier: bool,
}

impl Params {
    /// Checks the sizes against the limits the core accepts, before anything is allocated
    /// from them (a reader's sizes come from an untrusted file).
    ///
    /// # Errors
    /// A size of zero or above the core's limit, or heads that do not divide.
    pub fn check(&self) -> Result<()> {
        for (what, v, max) in [
            ("dim", self.dim, MAX_DIM),
            ("hidden_dim", self.hidden_dim, MAX_DIM),
            ("n_layers", self.n_layers, MAX_LAYERS),
            ("n_heads", self.n_heads, MAX_DIM),
            ("n_kv_heads", self.n_kv_heads, MAX_DIM),
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("max_seq_len", self.max_seq_len, MAX_SEQ),
        ] {
            ensure!((1..=max as usize).contains(&v), "{what} {v} is not in 1..={max}");
        }
        ensure!(
            self.dim % self.n_heads == 0 && self.n_heads % self.n_kv_heads == 0,
            "dim {}, n_heads {} and n_kv_heads {} do not divide",
            self.dim,
            self.n_heads,
            self.n_kv_heads
        );
        Ok(())
    }

    /// Tensor shapes implied by the parameters.
    pub fn shape(&self) -> Shape {
        Shape {
            dim: self.dim,
            hidden_dim: self.hidden_dim,
            n_layers: self.n_layers,
            kv_dim: self.dim * self.n_kv_heads / self.n_heads.max(1),
            vocab_size: self.vocab_size,
            shared_classifier: self.shared_classifier,
            arch: self.arch,
            max_seq_len: self.max_seq_len,
        }
    }
}

/// A vocabulary with merge scores (sentencepiece-style).
#[derive(Clone, Debug, PartialEq)]
pub struct Vocab {
    /// Encoding algorithm.
    pub kind: chispa_core::format::TokenizerKind,
    /// Piece bytes per id.
    pub pieces: Vec<Vec<u8>>,
    /// Merge score per id.
    pub scores: Vec<f32>,
    /// Beginning-of-sequence id.
    pub bos: Option<u32>,
    /// End-of-sequence id.
    pub eos: Option<u32>,
    /// Id of `<0x00>` when the vocabulary has byte fallback.
    pub byte_fallback_base: Option<u32>,
    /// Prepend `" "` to non-empty text.
    pub dummy_prefix: bool,
    /// …except when the text already starts with a space (HF `Metaspace`).
    pub no_prefix_before_space: bool,
    /// Ids that end generation.
    pub stop_ids: Vec<u32>,
    /// Optional data of the file's tokenizer extension.
    pub ext: TokenizerExt,
}

/// What a tokenizer may carry beyond pieces and scores (the `EXT_*` records of
/// `chispa_core::format`); empty by default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenizerExt {
    /// Byte-level BPE: the pre-tokenizer program (`chispa_core::pretokenize`).
    pub pre_tokenizer: Option<Vec<u32>>,
    /// Byte-level BPE: per token, the left length of the merge that makes it (0: none).
    pub merge_splits: Option<Vec<u8>>,
    /// Byte-level BPE: ids of the added tokens matched literally in the text.
    pub added_tokens: Vec<u32>,
    /// Byte-level BPE: a chunk that is a piece is that token, without merges.
    pub ignore_merges: bool,
    /// The chat template and the prompt wrapping it implies.
    pub chat: Option<Chat>,
}

/// A chat template, and the fixed text around one user message it renders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chat {
    /// The Jinja source.
    pub template: String,
    /// Text before the user's message.
    pub prefix: String,
    /// Text after it, through the assistant's header.
    pub suffix: String,
    /// What the template's `bos_token` and `eos_token` stand for.
    pub specials: crate::chat::Specials,
}

/// One tensor in canonical order, as f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Display name (e.g. `layers.3.wq`).
    pub name: String,
    /// Output dimension (1 for vectors).
    pub rows: usize,
    /// Input dimension.
    pub cols: usize,
    /// Row-major elements.
    pub data: Vec<f32>,
}

/// A model ready to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceModel {
    /// Hyper-parameters.
    pub params: Params,
    /// Tensors in `chispa_core::format::canonical_tensor` order.
    pub tensors: Vec<Tensor>,
    /// Tokenizer.
    pub vocab: Vocab,
}

/// The canonical `(name, rows, cols)` list for `params`.
///
/// # Errors
/// Parameters outside the core's limits ([`Params::check`]).
pub fn canonical_names(params: &Params) -> Result<Vec<(String, usize, usize)>> {
    params.check()?;
    let s = params.shape();
    Ok((0..tensor_count(&s))
        .filter_map(|i| canonical_tensor(&s, i))
        .map(|(kind, layer, r, c)| {
            let name = if (kind as u16) < 10 {
                kind.name().to_string()
            } else {
                format!("layers.{layer}.{}", kind.name())
            };
            (name, r, c)
        })
        .collect())
}
