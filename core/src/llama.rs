//! The Llama forward pass (llama2.c's `forward`, with int8 matmuls).

use crate::attention::{attend, Heads};
use crate::format::TensorKind;
use crate::kv::{F16Rows, F32Rows, I8Rows, KvCache};
use crate::model::Model;
use crate::observe::Observer;
use crate::ops::{add, embed, matvec, prepare, rmsnorm, rope, softmax, swiglu};
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
        let act = prepare(b.xb, &wq, b.xq, b.xs);
        matvec(b.q, &wq, &act);
        matvec(b.k, &w(TensorKind::Wk), &act);
        matvec(b.v, &w(TensorKind::Wv), &act);
        rope(b.q, hs, b.cos, b.sin);
        rope(b.k, hs, b.cos, b.sin);
        b.kv.store(l * ctx + pos, b.k, b.v);
        let (rows, layer) = (l * ctx..(l + 1) * ctx, l * ctx * kv_dim..(l + 1) * ctx * kv_dim);
        match &b.kv {
            KvCache::F32 { k, v } => {
                let (k, v) = (F32Rows(&k[layer.clone()], kv_dim), F32Rows(&v[layer], kv_dim));
                attend(b.xb, b.q, b.att, &k, &v, pos, heads, l, obs);
            }
            KvCache::F16 { k, v } => {
                let (k, v) = (F16Rows(&k[layer.clone()], kv_dim), F16Rows(&v[layer], kv_dim));
                attend(b.xb, b.q, b.att, &k, &v, pos, heads, l, obs);
            }
            KvCache::I8 { k, v, ks, vs } => {
                let k = I8Rows(&k[layer.clone()], &ks[rows.clone()], kv_dim);
                let v = I8Rows(&v[layer], &vs[rows], kv_dim);
                attend(b.xb, b.q, b.att, &k, &v, pos, heads, l, obs);
            }
        }
        let wo = w(TensorKind::Wo);
        let act = prepare(b.xb, &wo, b.xq, b.xs);
        matvec(b.xb2, &wo, &act);
        add(b.x, b.xb2);

        // Feed-forward (SwiGLU).
        rmsnorm(b.xb, b.x, model.vector(w(TensorKind::FfnNorm)), c.norm_eps);
        let w1 = w(TensorKind::W1);
        let act = prepare(b.xb, &w1, b.xq, b.xs);
        matvec(b.hb, &w1, &act);
        matvec(b.hb2, &w(TensorKind::W3), &act);
        swiglu(b.hb, b.hb2);
        let w2 = w(TensorKind::W2);
        let act = prepare(b.hb, &w2, b.xq, b.xs);
        matvec(b.xb, &w2, &act);
        add(b.x, b.xb);
    }

    b.xb.copy_from_slice(b.x);
    rmsnorm(b.x, b.xb, model.vector(model.global(TensorKind::FinalNorm)), c.norm_eps);
    let cls = if c.shared_classifier {
        model.global(TensorKind::TokEmbed)
    } else {
        model.global(TensorKind::Classifier)
    };
    let act = prepare(b.x, &cls, b.xq, b.xs);
    matvec(b.logits, &cls, &act);
    if O::WANTS_PROBABILITIES {
        b.probs.copy_from_slice(b.logits);
        softmax(b.probs);
        obs.probabilities(b.probs);
    }
}
