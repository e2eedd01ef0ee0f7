//! Qwen3 (`Qwen3ForCausalLM`): Llama with an RMSNorm over every query and key head (one
//! weight `[head_size]` for all heads) between the projection and RoPE; no biases.

use super::llama::{hf_layer, HF_GLOBALS};
use super::{
    attn_out, classifier, classify, heads, layer_base, model_width_mut, qkv, rope_angles, swiglu,
    weights, HfMap, HfTensor, Matrix, Spec, Vector,
};
use crate::attention::attend_layer;
use crate::format::TensorKind as K;
use crate::model::Model;
use crate::observe::Observer;
use crate::ops::{add, embed, rmsnorm, rope};
use crate::session::Buffers;

weights! {
    /// The global tensors (the classifier follows unless shared).
    struct Globals {
        /// `[vocab, dim]`
        tok_embed: TokEmbed as Matrix<'a>,
        /// `[dim]`
        final_norm: FinalNorm as Vector<'a>,
    }
}

weights! {
    /// One transformer block.
    struct Layer {
        /// `[dim]`
        attn_norm: AttnNorm as Vector<'a>,
        /// `[dim, dim]`, rows in adjacent RoPE pairs
        wq: Wq as Matrix<'a>,
        /// `[kv_dim, dim]`, rows in adjacent RoPE pairs
        wk: Wk as Matrix<'a>,
        /// `[kv_dim, dim]`
        wv: Wv as Matrix<'a>,
        /// `[head_size]`, in adjacent RoPE pairs
        q_norm: QNorm as Vector<'a>,
        /// `[head_size]`, in adjacent RoPE pairs
        k_norm: KNorm as Vector<'a>,
        /// `[dim, dim]`
        wo: Wo as Matrix<'a>,
        /// `[dim]`
        ffn_norm: FfnNorm as Vector<'a>,
        /// `[hidden, dim]` gate
        w1: W1 as Matrix<'a>,
        /// `[dim, hidden]` down
        w2: W2 as Matrix<'a>,
        /// `[hidden, dim]` up
        w3: W3 as Matrix<'a>,
    }
}

const HF_LAYER: [HfTensor; 11] = [
    hf_layer!(AttnNorm, "input_layernorm.weight", Copy),
    hf_layer!(Wq, "self_attn.q_proj.weight", RotateQuery),
    hf_layer!(Wk, "self_attn.k_proj.weight", RotateKey),
    hf_layer!(Wv, "self_attn.v_proj.weight", Copy),
    hf_layer!(QNorm, "self_attn.q_norm.weight", RotateHead),
    hf_layer!(KNorm, "self_attn.k_norm.weight", RotateHead),
    hf_layer!(Wo, "self_attn.o_proj.weight", Copy),
    hf_layer!(FfnNorm, "post_attention_layernorm.weight", Copy),
    hf_layer!(W1, "mlp.gate_proj.weight", Copy),
    hf_layer!(W2, "mlp.down_proj.weight", Copy),
    hf_layer!(W3, "mlp.up_proj.weight", Copy),
];

/// Qwen3 as data.
pub(super) const SPEC: Spec = Spec {
    arch: super::Arch::Qwen3,
    name: "qwen3",
    hf_architecture: "Qwen3ForCausalLM",
    globals: Globals::KINDS,
    layer: Layer::KINDS,
    hf_globals: &HF_GLOBALS,
    hf_layer: &HF_LAYER,
    hf_optional_prefix: "",
    hf_ignored: &["rotary_emb.inv_freq"],
    rope: true,
    free_head_dim: true,
};

/// RMSNorm of every `head_size` slice of `v` with the weight `w [head_size]`, in place
/// (through `tmp [head_size]`).
fn rmsnorm_heads(v: &mut [f32], tmp: &mut [f32], w: &[f32], eps: f32) {
    let tmp = &mut tmp[..w.len()];
    for head in v.chunks_exact_mut(w.len()) {
        tmp.copy_from_slice(head);
        rmsnorm(head, tmp, w, eps);
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
    let g = Globals::read(model, 0);
    let (hs, kv_dim, heads) = (c.head_size(), c.kv_dim(), heads(c));

    embed(&g.tok_embed, token as usize, b.x); // x [dim]
    rope_angles(b, pos); // cos, sin [head_size / 2]

    for l in 0..c.n_layers {
        let w = Layer::read(model, layer_base(c, l));
        // Attention.
        rmsnorm(b.xb, b.x, w.attn_norm, c.norm_eps); // xb [dim]
        qkv(b, &w.wq, &w.wk, &w.wv); // q [dim], k, v [kv_dim]
        rmsnorm_heads(b.q, b.xb2, w.q_norm, c.norm_eps); // xb2 [dim] is free until `wo`
        rmsnorm_heads(b.k, b.xb2, w.k_norm, c.norm_eps);
        rope(b.q, hs, b.cos, b.sin);
        rope(b.k, hs, b.cos, b.sin);
        attend_layer(b, l, pos, ctx, heads, kv_dim, obs); // xb [dim]
        attn_out(b, &w.wo); // xb2 [dim]
        add(b.x, b.xb2);

        // Feed-forward (SwiGLU).
        rmsnorm(b.xb, b.x, w.ffn_norm, c.norm_eps);
        swiglu(b, &w.w1, &w.w3, &w.w2); // hb, hb2 [hidden] → xb [dim]
        add(b.x, b.xb);
    }

    let xb = model_width_mut(b.xb, c.dim);
    xb.copy_from_slice(b.x);
    rmsnorm(b.x, xb, g.final_norm, c.norm_eps);
    classify(b, &classifier(model, g.tok_embed)); // logits [vocab]
}
