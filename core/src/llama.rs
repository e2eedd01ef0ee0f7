//! The Llama forward pass (llama2.c's `forward`, with int8 matmuls).

use crate::attention::{attend_layer, Heads};
use crate::format::TensorKind;
use crate::model::Model;
use crate::observe::Observer;
use crate::ops::{add, embed, matvec, prepare, rmsnorm, rope};
use crate::session::Buffers;

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

    embed(&model.global(TensorKind::TokEmbed), token as usize, b.x);
    for ((f, cs), sn) in b.freq.iter().zip(b.cos.iter_mut()).zip(b.sin.iter_mut()) {
        let val = pos as f32 * f;
        *cs = libm::cosf(val);
        *sn = libm::sinf(val);
    }

    for l in 0..c.n_layers {
        let w = |k| model.layer(l, k);
        // Attention.
        rmsnorm(b.xb, b.x, model.vector(w(TensorKind::AttnNorm)), c.norm_eps);
        let wq = w(TensorKind::Wq);
        let act = prepare(b.xb, &wq, b.xq);
        matvec(&kern, b.q, &wq, &act);
        matvec(&kern, b.k, &w(TensorKind::Wk), &act);
        matvec(&kern, b.v, &w(TensorKind::Wv), &act);
        rope(b.q, hs, b.cos, b.sin);
        rope(b.k, hs, b.cos, b.sin);
        attend_layer(b, l, pos, ctx, heads, kv_dim, obs);
        let wo = w(TensorKind::Wo);
        let act = prepare(b.xb, &wo, b.xq);
        matvec(&kern, b.xb2, &wo, &act);
        add(b.x, b.xb2);

        // Feed-forward (SwiGLU).
        rmsnorm(b.xb, b.x, model.vector(w(TensorKind::FfnNorm)), c.norm_eps);
        let w1 = w(TensorKind::W1);
        let act = prepare(b.xb, &w1, b.xq);
        matvec(&kern, b.hb, &w1, &act);
        matvec(&kern, b.hb2, &w(TensorKind::W3), &act);
        kern.swiglu(b.hb, b.hb2);
        let w2 = w(TensorKind::W2);
        let act = prepare(b.hb, &w2, b.xq);
        matvec(&kern, b.xb, &w2, &act);
        add(b.x, b.xb);
    }

    b.xb.copy_from_slice(b.x);
    rmsnorm(b.x, b.xb, model.vector(model.global(TensorKind::FinalNorm)), c.norm_eps);
    let cls = if c.shared_classifier {
        model.global(TensorKind::TokEmbed)
    } else {
        model.global(TensorKind::Classifier)
    };
    let act = prepare(b.x, &cls, b.xq);
    matvec(&kern, b.logits, &cls, &act);
}
