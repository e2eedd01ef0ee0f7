//! The GPT-2 forward pass (Hugging Face `GPT2LMHeadModel`), with the same int8 matmuls and
//! fixed-order f32 operations as Llama: LayerNorm with bias, learned position embeddings,
//! biases on every projection, GELU (tanh approximation), no RoPE.

use crate::attention::{attend_layer, Heads};
use crate::format::TensorKind;
use crate::model::Model;
use crate::observe::Observer;
use crate::ops::{add, embed, matvec, prepare};
use crate::session::Buffers;

/// `o = (x − mean) / sqrt(var + eps) ⊙ w + b`; mean, then variance, summed in order.
fn layernorm(o: &mut [f32], x: &[f32], w: &[f32], b: &[f32], eps: f32) {
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
fn gelu_tanh(x: &mut [f32]) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    for v in x.iter_mut() {
        let u = *v;
        *v = 0.5 * u * (1.0 + libm::tanhf(SQRT_2_OVER_PI * (u + 0.044_715 * u * u * u)));
    }
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
    let c = model.config();
    let kern = b.kern;
    let (hs, kv_dim) = (c.head_size(), c.kv_dim());
    let heads = Heads { n_heads: c.n_heads, kv_mul: c.n_heads / c.n_kv_heads, head_size: hs };
    let v = |m| model.vector(m);

    embed(&model.global(TensorKind::TokEmbed), token as usize, b.x);
    embed(&model.global(TensorKind::PosEmbed), pos, b.xb);
    add(b.x, b.xb);

    for l in 0..c.n_layers {
        let w = |k| model.layer(l, k);
        // Attention.
        layernorm(
            b.xb,
            b.x,
            v(w(TensorKind::AttnNorm)),
            v(w(TensorKind::AttnNormBias)),
            c.norm_eps,
        );
        let wq = w(TensorKind::Wq);
        let act = prepare(b.xb, &wq, b.xq);
        matvec(&kern, b.q, &wq, &act);
        matvec(&kern, b.k, &w(TensorKind::Wk), &act);
        matvec(&kern, b.v, &w(TensorKind::Wv), &act);
        add(b.q, v(w(TensorKind::Bq)));
        add(b.k, v(w(TensorKind::Bk)));
        add(b.v, v(w(TensorKind::Bv)));
        attend_layer(b, l, pos, ctx, heads, kv_dim, obs);
        let wo = w(TensorKind::Wo);
        let act = prepare(b.xb, &wo, b.xq);
        matvec(&kern, b.xb2, &wo, &act);
        add(b.xb2, v(w(TensorKind::Bo)));
        add(b.x, b.xb2);

        // Feed-forward (GELU).
        layernorm(b.xb, b.x, v(w(TensorKind::FfnNorm)), v(w(TensorKind::FfnNormBias)), c.norm_eps);
        let w1 = w(TensorKind::W1);
        let act = prepare(b.xb, &w1, b.xq);
        matvec(&kern, b.hb, &w1, &act);
        add(b.hb, v(w(TensorKind::B1)));
        gelu_tanh(b.hb);
        let w2 = w(TensorKind::W2);
        let act = prepare(b.hb, &w2, b.xq);
        matvec(&kern, b.xb, &w2, &act);
        add(b.xb, v(w(TensorKind::B2)));
        add(b.x, b.xb);
    }

    b.xb.copy_from_slice(b.x);
    layernorm(
        b.x,
        b.xb,
        v(model.global(TensorKind::FinalNorm)),
        v(model.global(TensorKind::FinalNormBias)),
        c.norm_eps,
    );
    let cls = if c.shared_classifier {
        model.global(TensorKind::TokEmbed)
    } else {
        model.global(TensorKind::Classifier)
    };
    let act = prepare(b.x, &cls, b.xq);
    matvec(&kern, b.logits, &cls, &act);
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
