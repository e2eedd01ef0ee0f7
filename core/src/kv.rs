//! The KV cache in f32, f16 or int8, and the row views attention reads it through.
//!
//! * `F32`: exact (the reference; identical to the engine before this type existed).
//! * `F16`: each element rounded to `half::f16` (round to nearest even).
//! * `I8`: each cached row `[kv_dim]` (one layer, one position) quantized with the kernels'
//!   `quantize_row_i8`: `scale = max|x| / 127` (f32, stored beside the row),
//!   `q = round_half_even(x · 127 / max|x|)`. Attention then quantizes each query head to
//!   int16 (`quantize_act`, scale `s_q`) and computes
//!   `score = (Σ_i q_i · k_i) as f32 · (scale_k · s_q / sqrt(hs))`, the sum exact (integers),
//!   and `out += (a · scale_v) · v_i`, t in order.
//! * `K10V7`: the same bytes as `I8` (72 per row of 32 keys and 32 values, scales included)
//!   spent where the error is: keys carry almost all of int8's KL, values little. Each head's
//!   key and value (head size a power of two) is first multiplied by the ±1 Walsh–Hadamard
//!   matrix `H` (`H·Hᵀ = hs·I`), which spreads a few large channels over all of them so one
//!   scale per row wastes fewer levels; then keys are rounded to 10-bit and values to 7-bit
//!   signed integers with one f16 scale each per row (`scale = max|x| / 511` or `/ 63`, rounded
//!   to f16; `q = round_half_away(x / scale)`, clamped), packed little-endian at bit `10·i`
//!   (`7·i`). Attention multiplies each query head by `H` once and quantizes it as for `I8`,
//!   so `score = (Σ_i (Hq)_i · k_i) as f32 · ((scale_k / hs) · s_q / sqrt(hs))`, the sum
//!   exact, and rotates each head's output back:
//!   `out = H · (Σ_t a_t · scale_v · v_t) / hs`.

use half::f16;

use crate::kernels::generic::dot_lanes;
use crate::kernels::{self, HeadRows, Kernels};

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
    /// Packed rows of [`K_ROW_BITS`]/[`V_ROW_BITS`] per element, one f16 scale each per row.
    K10V7 {
        k: &'a mut [u8],
        v: &'a mut [u8],
        ks: &'a mut [f16],
        vs: &'a mut [f16],
    },
}

/// Bits per key element of `K10V7`.
pub(crate) const K_ROW_BITS: usize = 10;
/// Bits per value element of `K10V7`.
pub(crate) const V_ROW_BITS: usize = 7;

/// Bytes of one packed row of `n` elements of `bits` bits.
pub(crate) fn packed_row_bytes(n: usize, bits: usize) -> Option<usize> {
    Some(n.checked_mul(bits)?.div_ceil(8))
}

/// Whether `K10V7` rotates heads of this size (the fast Walsh–Hadamard transform needs a
/// power of two; other sizes are stored unrotated).
pub(crate) fn rotates(head_size: usize) -> bool {
    head_size.is_power_of_two() && head_size > 1
}

/// In-place unnormalised Walsh–Hadamard transform of each `hs`-wide head of `x`
/// (butterflies in a fixed order, so the same bits everywhere).
pub(crate) fn hadamard_heads(x: &mut [f32], hs: usize) {
    for head in x.chunks_exact_mut(hs) {
        let mut h = 1;
        while h < hs {
            for block in head.chunks_exact_mut(2 * h) {
                let (lo, hi) = block.split_at_mut(h);
                for (a, b) in lo.iter_mut().zip(hi) {
                    let (x, y) = (*a, *b);
                    *a = x + y;
                    *b = x - y;
                }
            }
            h *= 2;
        }
    }
}

/// Rounds `x` to `bits`-bit signed integers with one f16 scale and packs them into `out`
/// (which it overwrites); returns the scale.
fn pack_row(x: &[f32], bits: usize, out: &mut [u8]) -> f16 {
    let qmax = ((1i32 << (bits - 1)) - 1) as f32;
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = f16::from_f32((amax / qmax).min(f16::MAX.to_f32()));
    let s = scale.to_f32();
    out.fill(0);
    let mask = (1u32 << bits) - 1;
    for (i, xi) in x.iter().enumerate() {
        let q = if s > 0.0 { libm::roundf(xi / s).clamp(-qmax, qmax) as i32 } else { 0 };
        let field = (q as u32 & mask) << ((i * bits) % 8);
        let at = i * bits / 8;
        for (j, byte) in out.iter_mut().skip(at).take(3).enumerate() {
            *byte |= (field >> (8 * j)) as u8;
        }
    }
    scale
}

/// The `bits`-bit fields of a packed row from element `first` on, sign-extended, read as a
/// bit stream (a byte at a time; bytes past the row read as zero).
struct Fields<'r> {
    bytes: core::slice::Iter<'r, u8>,
    acc: u32,
    have: usize,
    bits: usize,
}

impl<'r> Fields<'r> {
    fn new(row: &'r [u8], bits: usize, first: usize) -> Self {
        let bit = first * bits;
        let mut f = Self { bytes: row.get(bit / 8..).unwrap_or(&[]).iter(), acc: 0, have: 0, bits };
        if bit % 8 != 0 {
            f.acc = u32::from(f.bytes.next().copied().unwrap_or(0)) >> (bit % 8);
            f.have = 8 - bit % 8;
        }
        f
    }
}

impl Iterator for Fields<'_> {
    type Item = i32;
    #[inline]
    fn next(&mut self) -> Option<i32> {
        while self.have < self.bits {
            self.acc |= u32::from(self.bytes.next().copied().unwrap_or(0)) << self.have;
            self.have += 8;
        }
        let field = ((self.acc << (32 - self.bits)) as i32) >> (32 - self.bits);
        self.acc >>= self.bits;
        self.have -= self.bits;
        Some(field)
    }
}

/// Element `i` of a packed row of `bits`-bit fields, sign-extended.
#[cfg(test)]
fn unpack(row: &[u8], bits: usize, i: usize) -> i32 {
    Fields::new(row, bits, i).next().unwrap_or(0)
}

/// One layer's rows, `[ctx, kv_dim]`, as attention reads them.
pub(crate) trait Rows {
    /// Whether the rows hold each head multiplied by the Walsh–Hadamard matrix.
    fn rotated(&self) -> bool {
        false
    }
    /// One head's scores `att[t]` for t < `att.len()`: `q · row(t)[off..] / scale` as the
    /// row type specifies it. `qq` (at least the head size) is scratch for rows that quantize
    /// the query.
    fn scores(
        &self,
        kern: &Kernels,
        off: usize,
        q: &[f32],
        qq: &mut [i16],
        scale: f32,
        att: &mut [f32],
    );
    /// One head's output: `out[i] += att[t] · row(t)[off + i]` for t in order.
    fn mix(&self, kern: &Kernels, off: usize, att: &[f32], out: &mut [f32]);
    /// Whether [`scores2`](Self::scores2) and [`mix2`](Self::mix2) do better than one head
    /// after the other (attention pairs heads only then; the defaults keep the code small).
    const PAIRS: bool = false;
    /// Two heads reading the same rows: [`scores`](Self::scores) for `q_a` into `att_a`,
    /// then for `q_b` into `att_b` (`qq`: scratch for two heads).
    fn scores2(
        &self,
        kern: &Kernels,
        off: usize,
        q: [&[f32]; 2],
        qq: &mut [i16],
        scale: f32,
        att: [&mut [f32]; 2],
    ) {
        let [att_a, att_b] = att;
        self.scores(kern, off, q[0], qq, scale, att_a);
        self.scores(kern, off, q[1], qq, scale, att_b);
    }
    /// Two heads reading the same rows: [`mix`](Self::mix) of `att_a` into `out_a`, then of
    /// `att_b` into `out_b`.
    fn mix2(&self, kern: &Kernels, off: usize, att: [&[f32]; 2], out: [&mut [f32]; 2]) {
        let [out_a, out_b] = out;
        self.mix(kern, off, att[0], out_a);
        self.mix(kern, off, att[1], out_b);
    }
}

/// f32 rows.
pub(crate) struct F32Rows<'c>(pub &'c [f32], pub usize);
/// f16 rows.
pub(crate) struct F16Rows<'c>(pub &'c [f16], pub usize);
/// int8 rows and their scales.
pub(crate) struct I8Rows<'c>(pub &'c [i8], pub &'c [f32], pub usize);
/// Packed rows: bytes, scales, bytes per row, bits per element, head size when rotated
/// (1 when not).
pub(crate) struct PackedRows<'c> {
    pub bytes: &'c [u8],
    pub scales: &'c [f16],
    pub row_bytes: usize,
    pub bits: usize,
    pub rotated_by: usize,
}

impl<'c> F32Rows<'c> {
    /// The head at `off` as the kernels read it.
    fn head(&self, off: usize) -> HeadRows<'c, f32> {
        HeadRows { rows: self.0, row_len: self.1, off, scales: &[] }
    }
}

impl<'c> I8Rows<'c> {
    /// The head at `off` as the kernels read it.
    fn head(&self, off: usize) -> HeadRows<'c, i8> {
        HeadRows { rows: self.0, row_len: self.2, off, scales: self.1 }
    }
}

impl Rows for F32Rows<'_> {
    fn scores(
        &self,
        kern: &Kernels,
        off: usize,
        q: &[f32],
        _qq: &mut [i16],
        scale: f32,
        att: &mut [f32],
    ) {
        kern.scores_f32(self.head(off), q, scale, att);
    }
    fn mix(&self, kern: &Kernels, off: usize, att: &[f32], out: &mut [f32]) {
        kern.mix_f32(self.head(off), att, out);
    }
}

impl F16Rows<'_> {
    /// `Σ_i q[i] · row(t)[off + i]` in the order of [`dot_lanes`].
    fn dot(&self, t: usize, off: usize, q: &[f32]) -> f32 {
        let r = t * self.1 + off;
        dot_lanes(q, &self.0[r..r + q.len()], f16::to_f32)
    }
}

impl Rows for F16Rows<'_> {
    fn scores(
        &self,
        _kern: &Kernels,
        off: usize,
        q: &[f32],
        _qq: &mut [i16],
        scale: f32,
        att: &mut [f32],
    ) {
        for (t, a) in att.iter_mut().enumerate() {
            *a = self.dot(t, off, q) / scale;
        }
    }
    fn mix(&self, _kern: &Kernels, off: usize, att: &[f32], out: &mut [f32]) {
        for (t, a) in att.iter().enumerate() {
            let (r, n) = (t * self.1 + off, out.len());
            for (o, v) in out.iter_mut().zip(&self.0[r..r + n]) {
                *o += a * v.to_f32();
            }
        }
    }
}

/// One query head quantized for the integer scores: `q` to int16 in `qq` (`quantize_act`),
/// returning the factor `c = q_scale / scale` that turns an integer dot product into a score.
fn quantize_query(q: &[f32], qq: &mut [i16], scale: f32) -> f32 {
    kernels::quantize_act(q, qq) / scale
}

impl Rows for I8Rows<'_> {
    const PAIRS: bool = true;
    fn mix(&self, _kern: &Kernels, off: usize, att: &[f32], out: &mut [f32]) {
        for (t, a) in att.iter().enumerate() {
            let (r, n, a) = (t * self.2 + off, out.len(), a * self.1[t]);
            for (o, v) in out.iter_mut().zip(&self.0[r..r + n]) {
                *o += a * f32::from(*v);
            }
        }
    }
    fn scores(
        &self,
        _kern: &Kernels,
        off: usize,
        q: &[f32],
        qq: &mut [i16],
        scale: f32,
        att: &mut [f32],
    ) {
        let hs = q.len();
        let c = quantize_query(q, &mut qq[..hs], scale);
        kernels::generic::scores_i8(self.head(off), &qq[..hs], c, att);
    }
    fn scores2(
        &self,
        kern: &Kernels,
        off: usize,
        q: [&[f32]; 2],
        qq: &mut [i16],
        scale: f32,
        att: [&mut [f32]; 2],
    ) {
        let hs = q[0].len();
        let (qa, qb) = qq[..2 * hs].split_at_mut(hs);
        let c = [quantize_query(q[0], qa, scale), quantize_query(&q[1][..hs], qb, scale)];
        kern.scores2_i8(self.head(off), [qa, qb], c, att);
    }
    fn mix2(&self, kern: &Kernels, off: usize, att: [&[f32]; 2], out: [&mut [f32]; 2]) {
        let [out_a, out_b] = out;
        if let (Ok(oa), Ok(ob)) =
            (<&mut [f32; 8]>::try_from(&mut *out_a), <&mut [f32; 8]>::try_from(&mut *out_b))
        {
            if att[0].len() == att[1].len() {
                return kern.mix2_i8(self.head(off), att, [oa, ob]);
            }
        }
        self.mix(kern, off, att[0], out_a);
        self.mix(kern, off, att[1], out_b);
    }
}

impl Rows for PackedRows<'_> {
    /// Integer scores: the query quantized with `quantize_act` (scale `s_q`), then
    /// `att[t] = (Σ_i q_i · k_i) as f32 · ((scale_k / rotated_by) · (s_q / scale))`, the sum
    /// exact.
    fn scores(
        &self,
        _kern: &Kernels,
        off: usize,
        q: &[f32],
        qq: &mut [i16],
        scale: f32,
        att: &mut [f32],
    ) {
        let hs = q.len();
        let c = quantize_query(q, &mut qq[..hs], scale);
        for (t, a) in att.iter_mut().enumerate() {
            let row = &self.bytes[t * self.row_bytes..(t + 1) * self.row_bytes];
            let fields = qq[..hs].iter().zip(Fields::new(row, self.bits, off));
            let sum: i64 = fields.map(|(q, k)| i64::from(*q) * i64::from(k)).sum();
            *a = sum as f32 * ((self.scales[t].to_f32() / self.rotated_by as f32) * c);
        }
    }
    fn mix(&self, _kern: &Kernels, off: usize, att: &[f32], out: &mut [f32]) {
        for (t, a) in att.iter().enumerate() {
            let row = &self.bytes[t * self.row_bytes..(t + 1) * self.row_bytes];
            let a = a * self.scales[t].to_f32();
            for (o, v) in out.iter_mut().zip(Fields::new(row, self.bits, off)) {
                *o += a * v as f32;
            }
        }
    }
    fn rotated(&self) -> bool {
        self.rotated_by > 1
    }
}

impl KvCache<'_> {
    /// Stores key `k` and value `v` `[kv_dim]` at row `row` (= layer · ctx + pos); `K10V7`
    /// rotates them in place first (heads of `head_size`).
    pub(crate) fn store(&mut self, row: usize, k: &mut [f32], v: &mut [f32], head_size: usize) {
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
                ks[row] = kernels::quantize_row_i8(k, &mut kc[at.clone()]);
                vs[row] = kernels::quantize_row_i8(v, &mut vc[at]);
            }
            Self::K10V7 { k: kc, v: vc, ks, vs } => {
                if rotates(head_size) {
                    hadamard_heads(k, head_size);
                    hadamard_heads(v, head_size);
                }
                let kb = kc.len() / ks.len();
                let vb = vc.len() / vs.len();
                ks[row] = pack_row(k, K_ROW_BITS, &mut kc[row * kb..(row + 1) * kb]);
                vs[row] = pack_row(v, V_ROW_BITS, &mut vc[row * vb..(row + 1) * vb]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random f32 in [-1, 1) (xorshift), several magnitudes apart so order matters.
    fn values(seed: u64, n: usize) -> [f32; 80] {
        let mut s = seed;
        let mut out = [0f32; 80];
        for (i, v) in out.iter_mut().take(n).enumerate() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let mag = [1.0, 1e-3, 1e3][i % 3];
            *v = ((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * mag;
        }
        out
    }

    #[test]
    fn dot_lanes_is_the_plain_sum_up_to_eight_and_eight_lanes_beyond() {
        for n in 0..=80 {
            let (q, k) = (values(1 + n as u64, n), values(100 + n as u64, n));
            let got = dot_lanes(&q[..n], &k[..n], |v| v);
            // The definition, written out: lane j takes i ≡ j (mod 8) in order.
            let mut lanes = [0f32; 8];
            for i in 0..n {
                lanes[i % 8] += q[i] * k[i];
            }
            let mut want = 0.0f32;
            for l in lanes {
                want += l;
            }
            assert_eq!(got.to_bits(), want.to_bits(), "n = {n}");
            if n <= 8 {
                let plain = q[..n].iter().zip(&k[..n]).fold(0.0f32, |s, (a, b)| s + a * b);
                assert_eq!(got.to_bits(), plain.to_bits(), "n = {n}: not the plain sum");
            }
        }
    }

    #[test]
    fn packed_fields_round_trip_at_every_bit_offset() {
        for bits in [K_ROW_BITS, V_ROW_BITS] {
            let qmax = (1i32 << (bits - 1)) - 1;
            const N: usize = 37;
            let mut x = [0.0f32; N];
            for (i, xi) in x.iter_mut().enumerate() {
                *xi = ((i * 7919) % (2 * qmax as usize + 1)) as f32 - qmax as f32;
            }
            x[5] = qmax as f32; // the extremes, whatever the pattern gives
            x[6] = -qmax as f32;
            let mut row = [0u8; 47];
            let row = &mut row[..packed_row_bytes(N, bits).unwrap_or(0)];
            let scale = pack_row(&x, bits, row).to_f32();
            assert_eq!(scale, 1.0, "max |x| = qmax gives scale 1");
            for (i, xi) in x.iter().enumerate() {
                assert_eq!(unpack(row, bits, i), *xi as i32, "bits {bits}, element {i}");
            }
        }
    }

    #[test]
    fn hadamard_twice_is_head_size_times_identity() {
        let mut x = [0.0f32; 16];
        for (i, v) in x.iter_mut().enumerate() {
            *v = i as f32 - 3.5;
        }
        let orig = x;
        hadamard_heads(&mut x, 8);
        assert_ne!(x, orig);
        hadamard_heads(&mut x, 8);
        for (a, b) in x.iter().zip(&orig) {
            assert_eq!(*a, 8.0 * b);
        }
    }
}
