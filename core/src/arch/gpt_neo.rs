//! GPT-Neo (`GPTNeoForCausalLM`, the TinyStories models): GPT-2's block with separate q/k/v
//! projections without biases, attention scores not divided by `√head_size`, and layers that
//! alternate global and local (windowed) attention.
//!
//! The local layers attend to the last `window_size` positions. The converter limits the
//! context to the window, where local and global attention are the same computation, so
//! every layer runs the one attention.

use super::gpt2::{gelu_tanh, layernorm};
use super::{
    attn_out, classifier, classify, heads, layer_base, qkv, weights, HfMap, HfTensor, Matrix, Spec,
    Vector,
};
use crate::attention::{attend_layer, Heads};
use crate::format::TensorKind as K;
use crate::model::Model;
use crate::observe::Observer;
use crate::ops::{add, embed, matvec, prepare};
use crate::session::Buffers;

weights! {
    /// The global tensors (the classifier follows unless shared).
    struct Globals {
        /// `[vocab, dim]`
        tok_embed: TokEmbed as Matrix<'a>,
        /// `[max_seq_len, dim]`
        pos_embed: PosEmbed as Matrix<'a>,
        /// `[dim]`
        final_norm: FinalNorm as Vector<'a>,
        /// `[dim]`
        final_norm_bias: FinalNormBias as Vector<'a>,
    }
}

weights! {
    /// One transformer block.
    struct Layer {
        /// `[dim]`
        attn_norm: AttnNorm as Vector<'a>,
        /// `[dim]`
        attn_norm_bias: AttnNormBias as Vector<'a>,
        /// `[dim, dim]`
        wq: Wq as Matrix<'a>,
        /// `[dim, dim]`
        wk: Wk as Matrix<'a>,
        /// `[dim, dim]`
        wv: Wv as Matrix<'a>,
        /// `[dim, dim]`
        wo: Wo as Matrix<'a>,
        /// `[dim]`
        bo: Bo as Vector<'a>,
        /// `[dim]`
        ffn_norm: FfnNorm as Vector<'a>,
        /// `[dim]`
        ffn_norm_bias: FfnNormBias as Vector<'a>,
        /// `[hidden, dim]` (`c_fc`)
        w1: W1 as Matrix<'a>,
        /// `[hidden]`
        b1: B1 as Vector<'a>,
        /// `[dim, hidden]` (`mlp.c_proj`)
        w2: W2 as Matrix<'a>,
        /// `[dim]`
        b2: B2 as Vector<'a>,
    }
}

macro_rules! hf_layer {
    ($kind:ident, $name:literal) => {
        HfTensor { kind: K::$kind, name: concat!("transformer.h.{l}.", $name), map: HfMap::Copy }
    };
}

const HF_GLOBALS: [HfTensor; 5] = [
    HfTensor { kind: K::TokEmbed, name: "transformer.wte.weight", map: HfMap::Copy },
    // The first `max_seq_len` rows: the context is limited to the local window.
    HfTensor { kind: K::PosEmbed, name: "transformer.wpe.weight", map: HfMap::FirstRows },
    HfTensor { kind: K::FinalNorm, name: "transformer.ln_f.weight", map: HfMap::Copy },
    HfTensor { kind: K::FinalNormBias, name: "transformer.ln_f.bias", map: HfMap::Copy },
    HfTensor { kind: K::Classifier, name: "lm_head.weight", map: HfMap::Copy },
];

const HF_LAYER: [HfTensor; 13] = [
    hf_layer!(AttnNorm, "ln_1.weight"),
    hf_layer!(AttnNormBias, "ln_1.bias"),
    hf_layer!(Wq, "attn.attention.q_proj.weight"),
    hf_layer!(Wk, "attn.attention.k_proj.weight"),
    hf_layer!(Wv, "attn.attention.v_proj.weight"),
    hf_layer!(Wo, "attn.attention.out_proj.weight"),
    hf_layer!(Bo, "attn.attention.out_proj.bias"),
    hf_layer!(FfnNorm, "ln_2.weight"),
    hf_layer!(FfnNormBias, "ln_2.bias"),
    hf_layer!(W1, "mlp.c_fc.weight"),
    hf_layer!(B1, "mlp.c_fc.bias"),
    hf_layer!(W2, "mlp.c_proj.weight"),
    hf_layer!(B2, "mlp.c_proj.bias"),
];

/// GPT-Neo as data.
pub(super) const SPEC: Spec = Spec {
    arch: super::Arch::GptNeo,
    name: "gpt-neo",
    hf_architecture: "GPTNeoForCausalLM",
    globals: Globals::KINDS,
    layer: Layer::KINDS,
    hf_globals: &HF_GLOBALS,
    hf_layer: &HF_LAYER,
    hf_optional_prefix: "",
    hf_ignored: &[".attn.attention.bias", ".attn.attention.masked_bias"],
    rope: false,
    free_head_dim: false,
};

/// Runs `token` at `pos` (both checked by the caller) and leaves the logits in `b.logits`.
pub(super) fn forward<O: Observer>(
    model: &Model<'_>,
    b: &mut Buffers<'_>,
    ctx: usize,
    token: u32,
    pos: usize,
    obs: &mut O,
) {
    let c = model.config();
    let kern = b.kern;
    let g = Globals::read(model, 0);
    // GPT-Neo's attention scores are not scaled.
    let (kv_dim, heads) = (c.kv_dim(), Heads { score_divisor: 1.0, ..heads(c) });

    embed(&g.tok_embed, token as usize, b.x); // x [dim]
    embed(&g.pos_embed, pos, b.xb);
    add(b.x, b.xb);

    for l in 0..c.n_layers {
        let w = Layer::read(model, layer_base(c, l));
        // Attention (global, or local within the window the context is limited to).
        layernorm(b.xb, b.x, w.attn_norm, w.attn_norm_bias, c.norm_eps); // xb [dim]
        qkv(b, &w.wq, &w.wk, &w.wv); // q, k, v [dim]
        attend_layer(b, l, pos, ctx, heads, kv_dim, obs); // xb [dim]
        attn_out(b, &w.wo); // xb2 [dim]
        add(b.xb2, w.bo);
        add(b.x, b.xb2);

        // Feed-forward (GELU).
        layernorm(b.xb, b.x, w.ffn_norm, w.ffn_norm_bias, c.norm_eps);
        let act = prepare(b.xb, &w.w1, b.xq);
        matvec(&kern, b.hb, &w.w1, &act); // hb [hidden]
        add(b.hb, w.b1);
        gelu_tanh(b.hb);
        let act = prepare(b.hb, &w.w2, b.xq);
        matvec(&kern, b.xb, &w.w2, &act); // xb [dim]
        add(b.xb, w.b2);
        add(b.x, b.xb);
    }

    b.xb.copy_from_slice(b.x);
    layernorm(b.x, b.xb, g.final_norm, g.final_norm_bias, c.norm_eps);
    classify(b, &classifier(model, g.tok_embed)); // logits [vocab]
}
