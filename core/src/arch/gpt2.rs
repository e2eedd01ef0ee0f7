//! GPT-2 (`GPT2LMHeadModel`), with the same int8 matmuls and fixed-order f32 operations as
//! Llama: LayerNorm with bias, learned position embeddings, biases on every projection,
//! GELU (tanh approximation), no RoPE.

use super::{
    attn_out, classifier, classify, heads, layer_base, qkv, weights, HfMap, HfTensor, Matrix, Spec,
    Vector,
};
use crate::attention::attend_layer;
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
        /// `[dim]`
        bq: Bq as Vector<'a>,
        /// `[dim]`
        bk: Bk as Vector<'a>,
        /// `[dim]`
        bv: Bv as Vector<'a>,
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
    ($kind:ident, $name:literal, $map:expr) => {
        HfTensor { kind: K::$kind, name: concat!("h.{l}.", $name), map: $map }
    };
}

const HF_GLOBALS: [HfTensor; 5] = [
    HfTensor { kind: K::TokEmbed, name: "wte.weight", map: HfMap::Copy },
    HfTensor { kind: K::PosEmbed, name: "wpe.weight", map: HfMap::Copy },
    HfTensor { kind: K::FinalNorm, name: "ln_f.weight", map: HfMap::Copy },
    HfTensor { kind: K::FinalNormBias, name: "ln_f.bias", map: HfMap::Copy },
    HfTensor { kind: K::Classifier, name: "lm_head.weight", map: HfMap::Copy },
];

const HF_LAYER: [HfTensor; 16] = [
    hf_layer!(AttnNorm, "ln_1.weight", HfMap::Copy),
    hf_layer!(AttnNormBias, "ln_1.bias", HfMap::Copy),
    hf_layer!(Wq, "attn.c_attn.weight", HfMap::Fused(0)),
    hf_layer!(Wk, "attn.c_attn.weight", HfMap::Fused(1)),
    hf_layer!(Wv, "attn.c_attn.weight", HfMap::Fused(2)),
    hf_layer!(Bq, "attn.c_attn.bias", HfMap::Fused(0)),
    hf_layer!(Bk, "attn.c_attn.bias", HfMap::Fused(1)),
    hf_layer!(Bv, "attn.c_attn.bias", HfMap::Fused(2)),
    hf_layer!(Wo, "attn.c_proj.weight", HfMap::Transpose),
    hf_layer!(Bo, "attn.c_proj.bias", HfMap::Copy),
    hf_layer!(FfnNorm, "ln_2.weight", HfMap::Copy),
    hf_layer!(FfnNormBias, "ln_2.bias", HfMap::Copy),
    hf_layer!(W1, "mlp.c_fc.weight", HfMap::Transpose),
    hf_layer!(B1, "mlp.c_fc.bias", HfMap::Copy),
    hf_layer!(W2, "mlp.c_proj.weight", HfMap::Transpose),
    hf_layer!(B2, "mlp.c_proj.bias", HfMap::Copy),
];

/// GPT-2 as data.
pub(super) const SPEC: Spec = Spec {
    arch: super::Arch::Gpt2,
    name: "gpt2",
    hf_architecture: "GPT2LMHeadModel",
    globals: Globals::KINDS,
    layer: Layer::KINDS,
    hf_globals: &HF_GLOBALS,
    hf_layer: &HF_LAYER,
    hf_optional_prefix: "transformer.",
    hf_ignored: &[".attn.bias", ".attn.masked_bias"],
    rope: false,
    free_head_dim: false,
};

/// `o = (x − mean) / sqrt(var + eps) ⊙ w + b`; mean, then variance, summed in order.
pub(super) fn layernorm(o: &mut [f32], x: &[f32], w: &[f32], b: &[f32], eps: f32) {
    let n = x.len() as f32;
    let mut mean = 0.0f32;
    for v in x {
        mean += v;
    }
    mean /= n;
    let mut var = 0.0f32;
    for v in x {
        let d = v - mean;
        var += d * d;
    }
    var /= n;
    let inv = 1.0 / libm::sqrtf(var + eps);
    for (((o, x), w), b) in o.iter_mut().zip(x).zip(w).zip(b) {
        *o = (x - mean) * inv * w + b;
    }
}

/// GELU, tanh approximation (`gelu_new`): `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
pub(super) fn gelu_tanh(x: &mut [f32]) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    for v in x.iter_mut() {
        let u = *v;
        *v = 0.5 * u * (1.0 + libm::tanhf(SQRT_2_OVER_PI * (u + 0.044_715 * u * u * u)));
    }
}

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
    let (kv_dim, heads) = (c.kv_dim(), heads(c));

    embed(&g.tok_embed, token as usize, b.x); // x [dim]
    embed(&g.pos_embed, pos, b.xb);
    add(b.x, b.xb);

    for l in 0..c.n_layers {
        let w = Layer::read(model, layer_base(c, l));
        // Attention.
        layernorm(b.xb, b.x, w.attn_norm, w.attn_norm_bias, c.norm_eps); // xb [dim]
        qkv(b, &w.wq, &w.wk, &w.wv); // q, k, v [dim]
        add(b.q, w.bq);
        add(b.k, w.bk);
        add(b.v, w.bv);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layernorm_normalises_then_scales_and_shifts() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mut o = [0.0f32; 4];
        layernorm(&mut o, &x, &[1.0, 1.0, 2.0, 2.0], &[0.0, 1.0, 0.0, 1.0], 0.0);
        let s = 1.0 / 1.25f32.sqrt();
        let want = [-1.5 * s, -0.5 * s + 1.0, 0.5 * s * 2.0, 1.5 * s * 2.0 + 1.0];
        for (a, b) in o.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{o:?} vs {want:?}");
        }
    }

    #[test]
    fn gelu_tanh_known_values() {
        let mut x = [0.0f32, 1.0, -1.0, 3.0];
        gelu_tanh(&mut x);
        // PyTorch gelu(approximate="tanh"): 0, 0.841192, -0.158808, 2.996363.
        for (a, b) in x.iter().zip([0.0, 0.841_192, -0.158_808, 2.996_363]) {
            assert!((a - b).abs() < 1e-5, "{x:?}");
        }
    }
}
