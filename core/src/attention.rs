//! Multi-head (grouped-query) attention over the KV cache of one layer.

use crate::kv::Rows;
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
}

/// For each head: scores `q·k_t / sqrt(head_size)` for t = 0..=pos, softmax, then
/// `out = Σ_t att_t v_t`, t in order. `keys`/`values` are this layer's `[ctx, kv_dim]` rows;
/// `att` `[ctx]` is reused by one head after the other. `obs` sees each head's weights for
/// `layer`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend<R: Rows, O: Observer>(
    out: &mut [f32],
    q: &[f32],
    att: &mut [f32],
    keys: &R,
    values: &R,
    pos: usize,
    h: Heads,
    layer: usize,
    obs: &mut O,
) {
    let hs = h.head_size;
    let scale = libm::sqrtf(hs as f32);
    for head in 0..h.n_heads {
        let q = &q[head * hs..(head + 1) * hs];
        let att = &mut att[..pos + 1];
        let kv_off = (head / h.kv_mul) * hs;
        for (t, a) in att.iter_mut().enumerate() {
            *a = keys.dot(t, kv_off, q) / scale;
        }
        softmax(att);
        obs.attention(layer, head, att);
        let out = &mut out[head * hs..(head + 1) * hs];
        out.fill(0.0);
        for (t, a) in att.iter().enumerate() {
            values.axpy(t, kv_off, *a, out);
        }
    }
}
