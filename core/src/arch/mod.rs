//! Architectures as data.
//!
//! Each architecture is one file: its tensors as typed structs of named weights
//! (`weights!`: the directory order is the field order, so a layer is found by arithmetic,
//! never by search), its [`Spec`] (tensor lists, Hugging Face names, what a converter may
//! ignore) and its forward pass, read top to bottom like llama2.c's `run.c`. What every
//! tensor kind is — canonical and GGUF names, role, shape, the activation it reads — is one
//! table ([`table`]), read by the parser here and by the converters, calibration and writer
//! in `chispa-tools`.
//!
//! Adding an architecture: a file here (weights, `SPEC`, `forward`), an [`Arch`] variant and
//! its arm in [`Arch::spec`] and `forward`, table rows for new tensor kinds (with a
//! [`TensorKind`] code), and tests. `docs/design/architectures.md` has the steps.

use crate::attention::Heads;
use crate::format::TensorKind;
use crate::model::{Config, Matrix, Model};
use crate::observe::Observer;
use crate::ops::{matvec, prepare};
use crate::session::Buffers;

mod gpt2;
mod gpt_neo;
mod llama;
mod qwen2;
mod qwen3;
pub mod table;

pub use table::{info, Dim, Input, Role, TensorInfo, TENSORS};

/// Model architecture (the header's `arch` code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Arch {
    /// Llama: RMSNorm, RoPE (adjacent pairs), grouped-query attention, SwiGLU.
    Llama = 1,
    /// GPT-2: LayerNorm with bias, learned position embeddings, biases, GELU (tanh).
    Gpt2 = 2,
    /// Qwen2: Llama with biases on the query, key and value projections.
    Qwen2 = 3,
    /// Qwen3: Llama with an RMSNorm on every query and key head before RoPE.
    Qwen3 = 4,
    /// GPT-Neo: GPT-2's block without q/k/v biases, unscaled attention scores, the context
    /// limited to the local attention window.
    GptNeo = 5,
}

impl Arch {
    /// Every architecture.
    pub const ALL: [Arch; 5] = [Self::Llama, Self::Gpt2, Self::Qwen2, Self::Qwen3, Self::GptNeo];

    /// Decodes a header code.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|a| *a as u32 == code)
    }

    /// What the architecture is made of.
    pub fn spec(self) -> &'static Spec {
        match self {
            Self::Llama => &llama::SPEC,
            Self::Gpt2 => &gpt2::SPEC,
            Self::Qwen2 => &qwen2::SPEC,
            Self::Qwen3 => &qwen3::SPEC,
            Self::GptNeo => &gpt_neo::SPEC,
        }
    }

    /// Short lower-case name.
    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

/// How a Hugging Face tensor becomes the canonical one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HfMap {
    /// As stored.
    Copy,
    /// Rows (or elements) permuted per query head from `rotate_half` pairs `(i, i + h/2)` to
    /// adjacent pairs `(2i, 2i + 1)` (see `chispa_tools::hf::rotate_half_to_adjacent`).
    RotateQuery,
    /// As [`HfMap::RotateQuery`], per key head.
    RotateKey,
    /// Per head of one vector of `head_size` (a per-head norm weight), as
    /// [`HfMap::RotateQuery`].
    RotateHead,
    /// A Conv1D weight stored `[in, out]`, transposed.
    Transpose,
    /// The first rows of a longer table (a position embedding beyond the context).
    FirstRows,
    /// Part `n` (0 q, 1 k, 2 v) of a fused `[in, 3 · dim]` Conv1D weight (transposed) or
    /// `[3 · dim]` bias.
    Fused(u8),
}

/// The Hugging Face name of a canonical tensor (`{l}`: the layer index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HfTensor {
    /// The canonical tensor.
    pub kind: TensorKind,
    /// Its name in the checkpoint.
    pub name: &'static str,
    /// How it is converted.
    pub map: HfMap,
}

/// An architecture as data.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The architecture.
    pub arch: Arch,
    /// Short name.
    pub name: &'static str,
    /// `architectures[0]` of a Hugging Face `config.json`.
    pub hf_architecture: &'static str,
    /// Global tensors in directory order, without the classifier (which follows them
    /// unless it is the embedding).
    pub globals: &'static [TensorKind],
    /// Per-layer tensors in directory order.
    pub layer: &'static [TensorKind],
    /// Hugging Face names of the global tensors, the separate classifier included.
    pub hf_globals: &'static [HfTensor],
    /// Hugging Face names of the per-layer tensors.
    pub hf_layer: &'static [HfTensor],
    /// A prefix Hugging Face names may carry (GPT-2's `transformer.`; not the classifier's).
    pub hf_optional_prefix: &'static str,
    /// Suffixes of checkpoint tensors transformers keeps but does not compute with.
    pub hf_ignored: &'static [&'static str],
    /// Whether positions are RoPE rotations (the header's `rope_theta` is used).
    pub rope: bool,
    /// Whether the head width may differ from `dim / n_heads` (the header's `head_dim`).
    pub free_head_dim: bool,
}

impl Spec {
    /// Global tensors including the classifier when it is separate.
    pub fn global_count(&self, shared_classifier: bool) -> usize {
        self.globals.len() + usize::from(!shared_classifier)
    }
}

/// Hyper-parameters: everything that fixes the tensors and the forward pass. The parser
/// reads them from the header (`Config`), the converters from their input files.
#[derive(Clone, Copy, Debug, PartialEq)]
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
    /// Width of one head, or 0 for `dim / n_heads` (Qwen3's `head_dim` may differ).
    pub head_dim: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Longest context the model supports.
    pub max_seq_len: usize,
    /// RoPE base (unused without RoPE).
    pub rope_theta: f32,
    /// Norm epsilon.
    pub norm_eps: f32,
    /// Whether the classifier is the embedding table.
    pub shared_classifier: bool,
}

impl Params {
    /// Width of one head.
    pub fn head_size(&self) -> usize {
        if self.head_dim == 0 {
            self.dim / self.n_heads.max(1)
        } else {
            self.head_dim
        }
    }

    /// Width of the queries and of the attention output (`dim` unless `head_dim` is set).
    pub fn q_dim(&self) -> usize {
        self.head_size() * self.n_heads
    }

    /// Width of keys and values.
    pub fn kv_dim(&self) -> usize {
        self.head_size() * self.n_kv_heads
    }

    /// The size `d` stands for.
    pub fn size(&self, d: Dim) -> usize {
        match d {
            Dim::One => 1,
            Dim::Model => self.dim,
            Dim::Kv => self.kv_dim(),
            Dim::Q => self.q_dim(),
            Dim::Head => self.head_size(),
            Dim::Hidden => self.hidden_dim,
            Dim::Vocab => self.vocab_size,
            Dim::Seq => self.max_seq_len,
        }
    }

    /// Number of tensors in the directory.
    pub fn tensor_count(&self) -> usize {
        let s = self.arch.spec();
        s.global_count(self.shared_classifier) + self.n_layers * s.layer.len()
    }

    /// The tensor at directory position `index`: kind, layer (0 for globals) and
    /// `(rows, cols)` (`rows = 1` for vectors); `None` past the end. This is the canonical
    /// order writers must follow.
    pub fn tensor(&self, index: usize) -> Option<(TensorKind, usize, usize, usize)> {
        let s = self.arch.spec();
        let n_globals = s.global_count(self.shared_classifier);
        let (kind, layer) = if index < n_globals {
            // Past the other globals (index == globals.len()) is the separate classifier.
            (s.globals.get(index).map_or(TensorKind::Classifier, |k| *k), 0)
        } else {
            let i = index - n_globals;
            let layer = i / s.layer.len();
            if layer >= self.n_layers {
                return None;
            }
            (*s.layer.get(i % s.layer.len())?, layer)
        };
        let t = info(kind);
        Some((kind, layer, self.size(t.rows), self.size(t.cols)))
    }

    /// Parameters in the matrices and norms (the embedding counted once when shared).
    pub fn parameter_count(&self) -> usize {
        (0..self.tensor_count()).filter_map(|i| self.tensor(i)).map(|(_, _, r, c)| r * c).sum()
    }

    /// Multiply-accumulates in the matrices for one token (excluding attention).
    pub fn matmul_macs_per_token(&self) -> usize {
        (0..self.tensor_count())
            .filter_map(|i| self.tensor(i))
            .filter(|(k, ..)| info(*k).role == Role::Matrix)
            .map(|(_, _, r, c)| r * c)
            .sum::<usize>()
            + if self.shared_classifier { self.vocab_size * self.dim } else { 0 }
    }
}

/// A norm weight or bias `[n]`, borrowed from the model bytes.
pub(crate) type Vector<'a> = &'a [f32];

/// A tensor read from the directory at a known index.
pub(crate) trait Slot<'a> {
    fn read(model: &Model<'a>, index: usize) -> Self;
}

impl<'a> Slot<'a> for Matrix<'a> {
    fn read(model: &Model<'a>, index: usize) -> Self {
        model.matrix(index)
    }
}

impl<'a> Slot<'a> for Vector<'a> {
    fn read(model: &Model<'a>, index: usize) -> Self {
        model.vector(index)
    }
}

/// Declares a struct of named tensors and their directory order: `field: Kind as Type`,
/// read from consecutive directory entries in the order written.
macro_rules! weights {
    ($(#[$m:meta])* struct $name:ident { $( $(#[$fm:meta])* $field:ident : $kind:ident as $ty:ty ),* $(,)? }) => {
        $(#[$m])*
        pub(crate) struct $name<'a> {
            $( $(#[$fm])* pub(crate) $field: $ty, )*
        }

        impl<'a> $name<'a> {
            /// The tensor kinds, in directory order.
            pub(crate) const KINDS: &'static [$crate::format::TensorKind] =
                &[$( $crate::format::TensorKind::$kind ),*];

            /// The tensors at directory indices `base..base + KINDS.len()`.
            #[allow(unused_assignments)]
            pub(crate) fn read(model: &$crate::model::Model<'a>, base: usize) -> Self {
                let mut i = base;
                $( let $field = <$ty as $crate::arch::Slot<'a>>::read(model, i); i += 1; )*
                Self { $( $field ),* }
            }
        }
    };
}
pub(crate) use weights;

/// Directory index of layer `l`'s first tensor.
pub(crate) fn layer_base(c: &Config, l: usize) -> usize {
    layer_base_of(&c.params, l)
}

/// Directory index of layer `l`'s first tensor.
pub(crate) fn layer_base_of(p: &Params, l: usize) -> usize {
    let s = p.arch.spec();
    s.global_count(p.shared_classifier) + l * s.layer.len()
}

/// The classifier `[vocab, dim]`: the embedding table when shared, else the global after
/// the others.
pub(crate) fn classifier<'a>(model: &Model<'a>, tok_embed: Matrix<'a>) -> Matrix<'a> {
    let c = model.config();
    if c.shared_classifier {
        tok_embed
    } else {
        model.matrix(c.arch.spec().globals.len())
    }
}

/// The attention shapes of `c`, scores divided by `sqrt(head_size)`.
pub(crate) fn heads(c: &Config) -> Heads {
    let head_size = c.head_size();
    Heads {
        n_heads: c.n_heads,
        kv_mul: c.n_heads / c.n_kv_heads,
        head_size,
        score_divisor: libm::sqrtf(head_size as f32),
    }
}

/// `b.cos`, `b.sin` `[head_size / 2]` at `pos` from the RoPE frequencies `b.freq`.
pub(crate) fn rope_angles(b: &mut Buffers<'_>, pos: usize) {
    for ((f, cs), sn) in b.freq.iter().zip(b.cos.iter_mut()).zip(b.sin.iter_mut()) {
        let val = pos as f32 * f;
        *cs = libm::cosf(val);
        *sn = libm::sinf(val);
    }
}

/// `b.logits [vocab] = cls · b.x` (`b.x` holds the final normalised residual).
pub(crate) fn classify(b: &mut Buffers<'_>, cls: &Matrix<'_>) {
    let kern = b.kern;
    let act = prepare(b.x, cls, b.xq);
    matvec(&kern, b.logits, cls, &act);
}

/// `b.xb [dim] = w2 · (silu(w1 · b.xb) ⊙ (w3 · b.xb))` (SwiGLU), through `b.hb`, `b.hb2`
/// `[hidden]`.
pub(crate) fn swiglu(b: &mut Buffers<'_>, w1: &Matrix<'_>, w3: &Matrix<'_>, w2: &Matrix<'_>) {
    let kern = b.kern;
    let act = prepare(model_width(b.xb, w1.cols), w1, b.xq);
    matvec(&kern, b.hb, w1, &act);
    matvec(&kern, b.hb2, w3, &act);
    kern.swiglu(b.hb, b.hb2);
    let act = prepare(b.hb, w2, b.xq);
    matvec(&kern, model_width_mut(b.xb, w2.rows), w2, &act);
}

/// `b.q [q_dim], b.k [kv_dim], b.v [kv_dim]` from `b.xb [dim]`, quantized once for the
/// three.
pub(crate) fn qkv(b: &mut Buffers<'_>, wq: &Matrix<'_>, wk: &Matrix<'_>, wv: &Matrix<'_>) {
    let kern = b.kern;
    let act = prepare(model_width(b.xb, wq.cols), wq, b.xq);
    matvec(&kern, b.q, wq, &act);
    matvec(&kern, b.k, wk, &act);
    matvec(&kern, b.v, wv, &act);
}

/// `b.xb2 [dim] = wo · b.xb [q_dim]` (the attention output projection).
pub(crate) fn attn_out(b: &mut Buffers<'_>, wo: &Matrix<'_>) {
    let kern = b.kern;
    let act = prepare(model_width(b.xb, wo.cols), wo, b.xq);
    matvec(&kern, b.xb2, wo, &act);
}

/// The first `n` elements of `xb` `[max(dim, q_dim)]` (the whole of it unless the head
/// width makes the queries wider than the model).
pub(crate) fn model_width(xb: &[f32], n: usize) -> &[f32] {
    xb.get(..n).unwrap_or(xb)
}

/// [`model_width`], mutable.
pub(crate) fn model_width_mut(xb: &mut [f32], n: usize) -> &mut [f32] {
    let len = xb.len().min(n);
    &mut xb[..len]
}

/// Runs `token` at `pos` (both checked by the caller) and leaves the logits in `b.logits`.
pub(crate) fn forward<O: Observer>(
    model: &Model<'_>,
    b: &mut Buffers<'_>,
    ctx: usize,
    token: u32,
    pos: usize,
    obs: &mut O,
) {
    match model.config().arch {
        Arch::Llama => llama::forward(model, b, ctx, token, pos, obs),
        Arch::Gpt2 => gpt2::forward(model, b, ctx, token, pos, obs),
        Arch::Qwen2 => qwen2::forward(model, b, ctx, token, pos, obs),
        Arch::Qwen3 => qwen3::forward(model, b, ctx, token, pos, obs),
        Arch::GptNeo => gpt_neo::forward(model, b, ctx, token, pos, obs),
    }
}
