//! Multi-head (grouped-query) attention over the KV cache of one layer.

use crate::kernels::Kernels;
use crate::kv::{
    hadamard_heads, packed_row_bytes, rotates, F16Rows, F32Rows, I8Rows, KvCache, PackedRows, Rows,
    K_ROW_BITS, V_ROW_BITS,
};
use crate::observe::Observer;
use crate::session::Buffers;

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    /// Query heads.
    pub n_heads: usize,
    /// Query heads per key/value head.
    pub kv_mul: usize,
    /// Width of one head.
    pub head_size: usize,
    /// What the scores `q·k` are divided by: `sqrt(head_size)`, or 1 for models whose
    /// attention is not scaled.
    pub score_divisor: f32,
}

/// For each head: scores `q·k_t / h.score_divisor` for t = 0..=pos, softmax, then
/// `out = Σ_t att_t v_t`, t in order. `keys`/`values` are this layer's `[ctx, kv_dim]` rows;
/// `att` `[ctx]` is reused by one head after the other; `qq` (two heads) holds quantized queries. `obs` sees each head's weights for
/// `layer`. Two heads that share a key/value head go together when `att2` (any idle buffer)
/// holds `pos + 1` scores: each cached row is then read and widened once for both; every
/// number is the same as one head at a time.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend<R: Rows, O: Observer>(
    kern: &Kernels,
    out: &mut [f32],
    q: &mut [f32],
    att: &mut [f32],
    att2: &mut [f32],
    qq: &mut [i16],
    keys: &R,
    values: &R,
    pos: usize,
    h: Heads,
    layer: usize,
    obs: &mut O,
) {
    let hs = h.head_size;
    let scale = h.score_divisor;
    let n = pos + 1;
    let paired = R::PAIRS && h.kv_mul >= 2 && att2.len() >= n;
    let mut head = 0;
    while head < h.n_heads {
        let kv_off = (head / h.kv_mul) * hs;
        if paired && head % h.kv_mul + 1 < h.kv_mul {
            // `head` and `head + 1` read the same key/value head.
            let q = &mut q[head * hs..(head + 2) * hs];
            if keys.rotated() {
                hadamard_heads(q, hs);
            }
            let (q_a, q_b) = q.split_at(hs);
            let (att_a, att_b) = (&mut att[..n], &mut att2[..n]);
            keys.scores2(kern, kv_off, [q_a, q_b], qq, scale, [&mut *att_a, &mut *att_b]);
            kern.softmax(att_a);
            obs.attention(layer, head, att_a);
            kern.softmax(att_b);
            obs.attention(layer, head + 1, att_b);
            let out = &mut out[head * hs..(head + 2) * hs];
            out.fill(0.0);
            let (out_a, out_b) = out.split_at_mut(hs);
            values.mix2(kern, kv_off, [att_a, att_b], [out_a, out_b]);
            if values.rotated() {
                hadamard_heads(out, hs);
                for o in out.iter_mut() {
                    *o /= hs as f32;
                }
            }
            head += 2;
            continue;
        }
        let q = &mut q[head * hs..(head + 1) * hs];
        if keys.rotated() {
            hadamard_heads(q, hs);
        }
        let att = &mut att[..n];
        keys.scores(kern, kv_off, q, qq, scale, att);
        kern.softmax(att);
        obs.attention(layer, head, att);
        let out = &mut out[head * hs..(head + 1) * hs];
        out.fill(0.0);
        values.mix(kern, kv_off, att, out);
        if values.rotated() {
            hadamard_heads(out, hs);
            for o in out.iter_mut() {
                *o /= hs as f32;
            }
        }
        head += 1;
    }
}

/// Stores this position's key and value (`b.k`, `b.v`) in layer `l`'s cache, whatever its
/// element type, then attends over the cached positions `0..=pos` into `b.xb`.
pub(crate) fn attend_layer<O: Observer>(
    b: &mut Buffers<'_>,
    l: usize,
    pos: usize,
    ctx: usize,
    heads: Heads,
    kv_dim: usize,
    obs: &mut O,
) {
    let kern = b.kern;
    b.kv.store(l * ctx + pos, b.k, b.v, heads.head_size);
    // `b.probs` (the sampler's buffer, idle during the forward pass) holds a second head's
    // scores.
    let (rows, layer) = (l * ctx..(l + 1) * ctx, l * ctx * kv_dim..(l + 1) * ctx * kv_dim);
    match &b.kv {
        KvCache::F32 { k, v } => {
            let (k, v) = (F32Rows(&k[layer.clone()], kv_dim), F32Rows(&v[layer], kv_dim));
            attend(&kern, b.xb, b.q, b.att, b.probs, b.xq, &k, &v, pos, heads, l, obs);
        }
        KvCache::F16 { k, v } => {
            let (k, v) = (F16Rows(&k[layer.clone()], kv_dim), F16Rows(&v[layer], kv_dim));
            attend(&kern, b.xb, b.q, b.att, b.probs, b.xq, &k, &v, pos, heads, l, obs);
        }
        KvCache::I8 { k, v, ks, vs } => {
            let k = I8Rows(&k[layer.clone()], &ks[rows.clone()], kv_dim);
            let v = I8Rows(&v[layer], &vs[rows], kv_dim);
            attend(&kern, b.xb, b.q, b.att, b.probs, b.xq, &k, &v, pos, heads, l, obs);
        }
        KvCache::K10V7 { k, v, ks, vs } => {
            let rotated_by = if rotates(heads.head_size) { heads.head_size } else { 1 };
            let (kb, vb) = (
                packed_row_bytes(kv_dim, K_ROW_BITS).unwrap_or(0),
                packed_row_bytes(kv_dim, V_ROW_BITS).unwrap_or(0),
            );
            let k = PackedRows {
                bytes: &k[l * ctx * kb..(l + 1) * ctx * kb],
                scales: &ks[rows.clone()],
                row_bytes: kb,
                bits: K_ROW_BITS,
                rotated_by,
            };
            let v = PackedRows {
                bytes: &v[l * ctx * vb..(l + 1) * ctx * vb],
                scales: &vs[rows],
                row_bytes: vb,
                bits: V_ROW_BITS,
                rotated_by,
            };
            attend(&kern, b.xb, b.q, b.att, b.probs, b.xq, &k, &v, pos, heads, l, obs);
        }
    }
}
