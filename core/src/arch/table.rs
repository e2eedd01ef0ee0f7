//! The tensor table: every tensor kind once, with its canonical name (as `chispa-convert
//! inspect` prints it), its GGUF name, its role, its shape in terms of the hyper-parameters,
//! and the activation it reads (matrices that read one activation share one quantization
//! group). After llama.cpp's `LLM_TENSOR_NAMES`; the Hugging Face names are per architecture
//! (`Spec::hf` in each architecture's file), since they differ between families.

use crate::format::TensorKind;

/// What a tensor is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A table read one row at a time (token or position embedding); also the classifier when
    /// shared.
    Embedding,
    /// A projection `[out, in]`, read by a matrix-vector product.
    Matrix,
    /// A norm weight (always f32).
    Norm,
    /// A bias added after a projection or a norm (always f32).
    Bias,
}

/// One side of a tensor's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// 1 (the rows of a vector).
    One,
    /// Model width.
    Model,
    /// Key/value width.
    Kv,
    /// Width of one head.
    Head,
    /// Width of the queries (`n_heads · head_size`).
    Q,
    /// Feed-forward width.
    Hidden,
    /// Vocabulary size.
    Vocab,
    /// Longest context.
    Seq,
}

/// The activation a matrix reads. Matrices of one layer that read the same activation are
/// quantized with one group (the activation is quantized once for all of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Not a matmul input (vectors; embeddings read by row).
    None,
    /// The normalised residual before attention (q, k, v).
    AttnIn,
    /// The attention output (o).
    AttnOut,
    /// The normalised residual before the feed-forward (gate and up, or `c_fc`).
    FfnIn,
    /// The feed-forward activation (down).
    FfnOut,
    /// The final normalised residual (the classifier).
    Final,
}

/// One row of the tensor table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The kind (its code is the directory's).
    pub kind: TensorKind,
    /// Canonical name; per-layer tensors are printed `layers.{l}.{name}`.
    pub name: &'static str,
    /// GGUF name; `{l}` stands for the layer index.
    pub gguf: &'static str,
    /// Role.
    pub role: Role,
    /// Rows (output dimension; [`Dim::One`] for vectors).
    pub rows: Dim,
    /// Columns (input dimension).
    pub cols: Dim,
    /// The activation it reads.
    pub input: Input,
    /// Whether the kind is per layer.
    pub per_layer: bool,
}

const fn row(
    kind: TensorKind,
    name: &'static str,
    gguf: &'static str,
    role: Role,
    shape: (Dim, Dim),
    input: Input,
) -> TensorInfo {
    let per_layer = kind as u16 >= 10;
    TensorInfo { kind, name, gguf, role, rows: shape.0, cols: shape.1, input, per_layer }
}

use Dim::{Head, Hidden, Kv, Model, One, Seq, Vocab, Q};
use Role::{Bias, Embedding, Matrix, Norm};
use TensorKind as K;

/// Every tensor kind, once.
pub const TENSORS: [TensorInfo; 24] = [
    row(K::TokEmbed, "tok_embeddings", "token_embd.weight", Embedding, (Vocab, Model), Input::None),
    row(K::FinalNorm, "norm", "output_norm.weight", Norm, (One, Model), Input::None),
    row(K::Classifier, "output", "output.weight", Matrix, (Vocab, Model), Input::Final),
    row(
        K::PosEmbed,
        "pos_embeddings",
        "position_embd.weight",
        Embedding,
        (Seq, Model),
        Input::None,
    ),
    row(K::FinalNormBias, "norm_bias", "output_norm.bias", Bias, (One, Model), Input::None),
    row(K::AttnNorm, "attention_norm", "blk.{l}.attn_norm.weight", Norm, (One, Model), Input::None),
    row(K::Wq, "wq", "blk.{l}.attn_q.weight", Matrix, (Q, Model), Input::AttnIn),
    row(K::Wk, "wk", "blk.{l}.attn_k.weight", Matrix, (Kv, Model), Input::AttnIn),
    row(K::Wv, "wv", "blk.{l}.attn_v.weight", Matrix, (Kv, Model), Input::AttnIn),
    row(K::Wo, "wo", "blk.{l}.attn_output.weight", Matrix, (Model, Q), Input::AttnOut),
    row(K::FfnNorm, "ffn_norm", "blk.{l}.ffn_norm.weight", Norm, (One, Model), Input::None),
    row(K::W1, "w1", "blk.{l}.ffn_gate.weight", Matrix, (Hidden, Model), Input::FfnIn),
    row(K::W2, "w2", "blk.{l}.ffn_down.weight", Matrix, (Model, Hidden), Input::FfnOut),
    row(K::W3, "w3", "blk.{l}.ffn_up.weight", Matrix, (Hidden, Model), Input::FfnIn),
    row(
        K::AttnNormBias,
        "attention_norm_bias",
        "blk.{l}.attn_norm.bias",
        Bias,
        (One, Model),
        Input::None,
    ),
    row(K::Bq, "bq", "blk.{l}.attn_q.bias", Bias, (One, Q), Input::None),
    row(K::Bk, "bk", "blk.{l}.attn_k.bias", Bias, (One, Kv), Input::None),
    row(K::Bv, "bv", "blk.{l}.attn_v.bias", Bias, (One, Kv), Input::None),
    row(K::Bo, "bo", "blk.{l}.attn_output.bias", Bias, (One, Model), Input::None),
    row(K::FfnNormBias, "ffn_norm_bias", "blk.{l}.ffn_norm.bias", Bias, (One, Model), Input::None),
    row(K::B1, "b1", "blk.{l}.ffn_up.bias", Bias, (One, Hidden), Input::None),
    row(K::B2, "b2", "blk.{l}.ffn_down.bias", Bias, (One, Model), Input::None),
    row(K::QNorm, "q_norm", "blk.{l}.attn_q_norm.weight", Norm, (One, Head), Input::None),
    row(K::KNorm, "k_norm", "blk.{l}.attn_k_norm.weight", Norm, (One, Head), Input::None),
];

/// The table row of `kind`.
pub fn info(kind: TensorKind) -> &'static TensorInfo {
    // Every kind has exactly one row (checked by the test below), so the search always ends
    // on the right row; the first row is never returned for another kind.
    let mut i = 0;
    while i < TENSORS.len() - 1 && !matches_kind(&TENSORS, i, kind) {
        i += 1;
    }
    #[allow(clippy::indexing_slicing)] // i < TENSORS.len() by the loop
    &TENSORS[i]
}

fn matches_kind(t: &[TensorInfo], i: usize, kind: TensorKind) -> bool {
    t.get(i).is_some_and(|r| r.kind == kind)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_its_code_decodes() {
        for (i, r) in TENSORS.iter().enumerate() {
            assert_eq!(TensorKind::from_code(r.kind as u16), Some(r.kind));
            assert_eq!(info(r.kind), r, "row {i}");
            assert_eq!(TENSORS.iter().filter(|s| s.kind == r.kind).count(), 1, "{:?}", r.kind);
            assert_eq!(TENSORS.iter().filter(|s| s.name == r.name).count(), 1, "{}", r.name);
            assert_eq!(r.per_layer, r.gguf.contains("{l}"), "{}", r.name);
            let vector = matches!(r.role, Role::Norm | Role::Bias);
            assert_eq!(vector, r.rows == Dim::One, "{}", r.name);
            assert_eq!(r.input != Input::None, r.role == Role::Matrix, "{}", r.name);
        }
    }
}
