//! Multi-head (grouped-query) attention over the KV cache of one layer.

use crate::observe::Observer;
use crate::ops::softmax;

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    /// Query heads.
    pub n_heads: usize,
    /// Query heads per key/value head.
    pub kv_mul: usize,
    /// Width of one head.
    pub head_size: usize,
    /// Width of one cached row (`n_kv_heads * head_size`).
    pub kv_dim: usize,
    /// Stride between heads' rows in `att`.
    pub ctx: usize,
}

/// For each head: scores `q·k_t / sqrt(head_size)` for t = 0..=pos, softmax, then
/// `out = Σ_t att_t v_t`, t in order. `keys`/`values` are this layer's `[ctx, kv_dim]`.
/// `obs` sees each head's weights for `layer`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend<O: Observer>(
    out: &mut [f32],
    q: &[f32],
    att: &mut [f32],
    keys: &[f32],
    values: &[f32],
    pos: usize,
    h: Heads,
    layer: usize,
    obs: &mut O,
) {
    let hs = h.head_size;
    let scale = libm::sqrtf(hs as f32);
    for head in 0..h.n_heads {
        let q = &q[head * hs..(head + 1) * hs];
        let att = &mut att[head * h.ctx..head * h.ctx + pos + 1];
        let kv_off = (head / h.kv_mul) * hs;
        for (t, a) in att.iter_mut().enumerate() {
            let k0 = t * h.kv_dim + kv_off;
            let mut score = 0.0f32;
            for (qi, ki) in q.iter().zip(&keys[k0..k0 + hs]) {
                score += qi * ki;
            }
            *a = score / scale;
        }
        softmax(att);
        obs.attention(layer, head, att);
        let out = &mut out[head * hs..(head + 1) * hs];
        out.fill(0.0);
        for (t, a) in att.iter().enumerate() {
            let v0 = t * h.kv_dim + kv_off;
            for (o, v) in out.iter_mut().zip(&values[v0..v0 + hs]) {
                *o += a * v;
            }
        }
    }
}
