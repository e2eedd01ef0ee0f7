//! The KV cache in f32, f16 or int8, and the row views attention reads it through.
//!
//! * `F32`: exact (the reference; identical to the engine before this type existed).
//! * `F16`: each element rounded to `half::f16` (round to nearest even).
//! * `I8`: each cached row `[kv_dim]` (one layer, one position) quantized with the kernels'
//!   `quantize_i8` as one group: `scale = max|x| / 127` (f32, stored beside the row),
//!   `q = round_half_away(x · 127 / max|x|)`. Attention then computes
//!   `score = (Σ_i q_i · k_i) · scale_k` and `out += (a · scale_v) · v_i`, index order fixed.

use half::f16;

use crate::kernels;

/// The cache of all layers, `[n_layers, ctx, kv_dim]` each for keys and values.
#[derive(Debug)]
pub(crate) enum KvCache<'a> {
    F32 {
        k: &'a mut [f32],
        v: &'a mut [f32],
    },
    F16 {
        k: &'a mut [f16],
        v: &'a mut [f16],
    },
    /// `ks`/`vs`: one f32 scale per cached row, `[n_layers, ctx]`.
    I8 {
        k: &'a mut [i8],
        v: &'a mut [i8],
        ks: &'a mut [f32],
        vs: &'a mut [f32],
    },
}

/// One layer's rows, `[ctx, kv_dim]`, as attention reads them.
pub(crate) trait Rows {
    /// `Σ_i q[i] · row(t)[off + i]` (times the row's scale), i in order.
    fn dot(&self, t: usize, off: usize, q: &[f32]) -> f32;
    /// `out[i] += a · row(t)[off + i]`, i in order.
    fn axpy(&self, t: usize, off: usize, a: f32, out: &mut [f32]);
}

/// f32 rows.
pub(crate) struct F32Rows<'c>(pub &'c [f32], pub usize);
/// f16 rows.
pub(crate) struct F16Rows<'c>(pub &'c [f16], pub usize);
/// int8 rows and their scales.
pub(crate) struct I8Rows<'c>(pub &'c [i8], pub &'c [f32], pub usize);

impl Rows for F32Rows<'_> {
    fn dot(&self, t: usize, off: usize, q: &[f32]) -> f32 {
        let r = t * self.1 + off;
        let mut s = 0.0f32;
        for (qi, ki) in q.iter().zip(&self.0[r..r + q.len()]) {
            s += qi * ki;
        }
        s
    }
    fn axpy(&self, t: usize, off: usize, a: f32, out: &mut [f32]) {
        let (r, n) = (t * self.1 + off, out.len());
        for (o, v) in out.iter_mut().zip(&self.0[r..r + n]) {
            *o += a * v;
        }
    }
}

impl Rows for F16Rows<'_> {
    fn dot(&self, t: usize, off: usize, q: &[f32]) -> f32 {
        let r = t * self.1 + off;
        let mut s = 0.0f32;
        for (qi, ki) in q.iter().zip(&self.0[r..r + q.len()]) {
            s += qi * ki.to_f32();
        }
        s
    }
    fn axpy(&self, t: usize, off: usize, a: f32, out: &mut [f32]) {
        let (r, n) = (t * self.1 + off, out.len());
        for (o, v) in out.iter_mut().zip(&self.0[r..r + n]) {
            *o += a * v.to_f32();
        }
    }
}

impl Rows for I8Rows<'_> {
    fn dot(&self, t: usize, off: usize, q: &[f32]) -> f32 {
        let r = t * self.2 + off;
        let mut s = 0.0f32;
        for (qi, ki) in q.iter().zip(&self.0[r..r + q.len()]) {
            s += qi * f32::from(*ki);
        }
        s * self.1[t]
    }
    fn axpy(&self, t: usize, off: usize, a: f32, out: &mut [f32]) {
        let (r, n) = (t * self.2 + off, out.len());
        let a = a * self.1[t];
        for (o, v) in out.iter_mut().zip(&self.0[r..r + n]) {
            *o += a * f32::from(*v);
        }
    }
}

impl KvCache<'_> {
    /// Stores key `k` and value `v` `[kv_dim]` at row `row` (= layer · ctx + pos).
    pub(crate) fn store(&mut self, row: usize, k: &[f32], v: &[f32]) {
        let d = k.len();
        let at = row * d..(row + 1) * d;
        match self {
            Self::F32 { k: kc, v: vc } => {
                kc[at.clone()].copy_from_slice(k);
                vc[at].copy_from_slice(v);
            }
            Self::F16 { k: kc, v: vc } => {
                for (c, x) in kc[at.clone()].iter_mut().zip(k) {
                    *c = f16::from_f32(*x);
                }
                for (c, x) in vc[at].iter_mut().zip(v) {
                    *c = f16::from_f32(*x);
                }
            }
            Self::I8 { k: kc, v: vc, ks, vs } => {
                kernels::quantize_i8(k, d, &mut kc[at.clone()], &mut ks[row..row + 1]);
                kernels::quantize_i8(v, d, &mut vc[at], &mut vs[row..row + 1]);
            }
        }
    }
}
