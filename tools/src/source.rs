//! The in-memory model that every reader produces and the writer consumes, and the one shape
//! of a reader: an [`Input`] in, a [`Converted`] out ([`read`]).

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use chispa_core::arch::info;
use chispa_core::format::TensorKind;
use chispa_core::model::{MAX_DIM, MAX_LAYERS, MAX_SEQ, MAX_VOCAB};

/// Hyper-parameters of a source model: the core's, shared with the parser.
pub use chispa_core::arch::Params;

/// Checks the sizes against the limits the core accepts, before anything is allocated from
/// them (a reader's sizes come from an untrusted file).
///
/// # Errors
/// A size of zero or above the core's limit, or heads that do not divide.
pub fn check_params(p: &Params) -> Result<()> {
    for (what, v, max) in [
        ("dim", p.dim, MAX_DIM),
        ("hidden_dim", p.hidden_dim, MAX_DIM),
        ("n_layers", p.n_layers, MAX_LAYERS),
        ("n_heads", p.n_heads, MAX_DIM),
        ("n_kv_heads", p.n_kv_heads, MAX_DIM),
        ("vocab_size", p.vocab_size, MAX_VOCAB),
        ("max_seq_len", p.max_seq_len, MAX_SEQ),
    ] {
        ensure!((1..=max as usize).contains(&v), "{what} {v} is not in 1..={max}");
    }
    ensure!(
        p.dim % p.n_heads == 0 && p.n_heads % p.n_kv_heads == 0,
        "dim {}, n_heads {} and n_kv_heads {} do not divide",
        p.dim,
        p.n_heads,
        p.n_kv_heads
    );
    Ok(())
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
/// Parameters outside the core's limits ([`check_params`]).
pub fn canonical_names(params: &Params) -> Result<Vec<(String, usize, usize)>> {
    Ok(canonical_tensors(params)?.into_iter().map(|t| (t.name, t.rows, t.cols)).collect())
}

/// One tensor of the canonical list: where it is and what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Canonical {
    /// Display name (`layers.{l}.{name}` for per-layer tensors).
    pub name: String,
    /// Kind.
    pub kind: TensorKind,
    /// Layer (0 for globals).
    pub layer: usize,
    /// Output dimension (1 for vectors).
    pub rows: usize,
    /// Input dimension.
    pub cols: usize,
}

/// The canonical tensors of `params`, in directory order.
///
/// # Errors
/// Parameters outside the core's limits ([`check_params`]).
pub fn canonical_tensors(params: &Params) -> Result<Vec<Canonical>> {
    check_params(params)?;
    Ok((0..params.tensor_count())
        .filter_map(|i| params.tensor(i))
        .map(|(kind, layer, rows, cols)| {
            let name = if info(kind).per_layer {
                format!("layers.{layer}.{}", kind.name())
            } else {
                kind.name().to_string()
            };
            Canonical { name, kind, layer, rows, cols }
        })
        .collect())
}

/// What every reader returns.
#[derive(Debug)]
pub struct Converted {
    /// The model, ready for the writer.
    pub model: SourceModel,
    /// What was recognised: architecture, shapes, tensor types, tokenizer (one line each).
    pub recognised: Vec<String>,
    /// Every file read.
    pub inputs: Vec<PathBuf>,
}

/// An input format and where it is.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// A llama2.c checkpoint (legacy `.bin`) and its `tokenizer.bin` ([`crate::llama2c`]).
    Llama2c {
        /// The checkpoint.
        checkpoint: &'a Path,
        /// Its tokenizer.
        tokenizer: &'a Path,
    },
    /// A Hugging Face folder ([`crate::hf`]).
    Hf(&'a Path),
    /// A llama.cpp GGUF file ([`crate::gguf`]).
    Gguf(&'a Path),
}

impl Input<'_> {
    /// The path the input is named by (the checkpoint, the folder, the file).
    pub fn path(&self) -> &Path {
        match self {
            Input::Llama2c { checkpoint, .. } => checkpoint,
            Input::Hf(p) | Input::Gguf(p) => p,
        }
    }
}

/// Reads `input` with its format's reader.
///
/// # Errors
/// Unreadable files, and whatever the reader refuses (the message names the key or tensor),
/// behind a line naming the input.
pub fn read(input: &Input<'_>) -> Result<Converted> {
    let converted = match *input {
        Input::Llama2c { checkpoint, tokenizer } => {
            crate::llama2c::read_files(checkpoint, tokenizer)
        }
        Input::Hf(dir) => crate::hf::read_dir(dir),
        Input::Gguf(file) => crate::gguf::read_file(file),
    };
    converted.with_context(|| format!("cannot convert {}", input.path().display()))
}
