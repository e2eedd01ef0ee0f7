//! Scalar kernels: the reference every other backend reproduces bit for bit.

/// Quantizes the activation vector `x` to int16 with one scale, which it returns:
/// `max = max |x_i|` (NaNs skipped); if `max` is at least [`ACT_MIN_MAX`] and finite,
/// `q_i = round_half_even(x_i · (32767 / max))` (a NaN gives 0) and the scale is
/// `max / 32767`; otherwise every `q_i` is 0 and the scale 0. Writes `q[..x.len()]`.
///
/// Sixteen bits cost the 32-bit cores nothing (`SMLAD` multiplies halfwords; int8 inputs are
/// widened to them anyway) and make the activations' rounding negligible beside the weights'.
/// The rounding is the FPU's own (`VCVTR`, `cvtps2dq`, `FCVTNS`); in portable code, adding and
/// subtracting 1.5 · 2^23 (exact for |y| < 2^22). The floor on `max` keeps every product away
/// from subnormal numbers, which Helium flushes to zero: below it, a subnormal input times
/// `32767 / max` is under 1/2 and rounds to 0 whether flushed or not.
pub fn quantize_act(x: &[f32], q: &mut [i16]) -> f32 {
    quantize_sym(x, q, 32767.0, |v| v as i16)
}

/// [`quantize_act`] to int8 (`127` in place of `32767`): one cached key or value row.
pub fn quantize_row_i8(x: &[f32], q: &mut [i8]) -> f32 {
    quantize_sym(x, q, 127.0, |v| v as i8)
}

/// Symmetric rounding of `x` to ±`qmax` with one scale (see [`quantize_act`]).
#[inline(always)]
fn quantize_sym<T: Copy + Default>(
    x: &[f32],
    q: &mut [T],
    qmax: f32,
    narrow: impl Fn(i32) -> T,
) -> f32 {
    debug_assert!(q.len() >= x.len());
    let max = max_abs(x);
    let q = &mut q[..x.len()];
    if !(ACT_MIN_MAX..=f32::MAX).contains(&max) {
        q.fill(T::default());
        return 0.0;
    }
    let inv = qmax / max;
    for (qi, xi) in q.iter_mut().zip(x) {
        *qi = narrow(round_half_even(*xi * inv));
    }
    max / qmax
}

/// The smallest `max |x|` [`quantize_act`] quantizes (2^-100); smaller vectors become zeros.
pub const ACT_MIN_MAX: f32 = f32::from_bits((127 - 100) << 23);

/// `max |x_i|` over the non-NaN elements (0 for none). Order-free: any lane layout gives it.
#[inline(always)]
pub fn max_abs(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| {
        let a = libm::fabsf(*v);
        if a > m {
            a
        } else {
            m
        }
    })
}

/// `y` rounded to the nearest integer, ties to even, for |y| ≤ 2^22 (NaN gives 0): the sum with
/// 1.5 · 2^23 drops the fraction in round-to-nearest-even, the difference is exact.
#[inline(always)]
pub fn round_half_even(y: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    ((y + MAGIC) - MAGIC) as i32
}

/// The largest group: 256 products of at most 128 · 32767 sum to under 2^31.
pub const MAX_GROUP: usize = 256;

/// An int8 matrix as the kernels read it: `q` `[rows, cols]` row-major, one f32 scale per row
/// and one u8 multiplier per row and group of `group` columns (the last group may be short).
/// Element `(r, j)` stands for `q[r, j] · (row_scales[r] · mults[r, j / group])`.
#[derive(Clone, Copy, Debug)]
pub struct I8Matrix<'a> {
    /// Elements `[rows, cols]`.
    pub q: &'a [i8],
    /// `[rows]` row scales.
    pub row_scales: &'a [f32],
    /// `[rows, groups]` multipliers.
    pub mults: &'a [u8],
    /// Input width.
    pub cols: usize,
    /// Columns per group (≥ 1).
    pub group: usize,
}

impl<'a> I8Matrix<'a> {
    /// Groups per row.
    #[inline(always)]
    pub fn groups(&self) -> usize {
        self.cols.div_ceil(self.group.max(1))
    }

    /// Whether the slices hold `rows` whole rows (what every kernel reads) and the group is
    /// one the contract covers (1 to [`MAX_GROUP`]).
    pub fn holds(&self, rows: usize) -> bool {
        let g = self.groups();
        (1..=MAX_GROUP).contains(&self.group)
            && rows.checked_mul(self.cols).is_some_and(|n| self.q.len() >= n)
            && self.row_scales.len() >= rows
            && rows.checked_mul(g).is_some_and(|n| self.mults.len() >= n)
    }

    /// Rows `from..` of the matrix (empty slices past the end).
    pub fn from_row(&self, from: usize) -> Self {
        let g = self.groups();
        Self {
            q: self.q.get(from * self.cols..).unwrap_or_default(),
            row_scales: self.row_scales.get(from..).unwrap_or_default(),
            mults: self.mults.get(from * g..).unwrap_or_default(),
            ..*self
        }
    }
}

/// The end of a row of [`matvec_i8`]: the exact integer sum `acc` rounded to f32 (nearest even),
/// times `row_scale · x_scale`. A sum that fits in i32 converts from i32 (the same value, so
/// the same rounding) — what a 32-bit core does in one instruction.
#[inline(always)]
pub fn finish_row(acc: i64, row_scale: f32, x_scale: f32) -> f32 {
    let a = match i32::try_from(acc) {
        // `black_box` keeps the i32 conversion: the compiler would otherwise merge both arms
        // into the i64 one, a library call on 32-bit cores.
        Ok(a) => core::hint::black_box(a) as f32,
        Err(_) => acc as f32,
    };
    a * (row_scale * x_scale)
}

/// `out[r] = (Σ_g m[r,g] · Σ_{j∈g} w[r,j]·xq[j]) · (row_scales[r] · x_scale)`: the sum exact in
/// integers (so any order and any lane layout gives it), rounded once to f32 by [`finish_row`].
///
/// `w` holds `out.len()` rows and `xq` `w.cols` elements (checked by `kernels::matvec_i8`).
/// A group's i32 sum is exact (groups ≤ [`MAX_GROUP`]); the weighted sum fits i64 for any
/// width.
pub fn matvec_i8(out: &mut [f32], w: &I8Matrix<'_>, xq: &[i16], x_scale: f32) {
    let (cols, group, groups) = (w.cols, w.group.max(1), w.groups());
    let rows = w.q.chunks_exact(cols.max(1)).zip(w.mults.chunks_exact(groups.max(1)));
    for ((o, (wr, mr)), rs) in out.iter_mut().zip(rows).zip(w.row_scales) {
        let mut acc = 0i64;
        for ((wg, xg), m) in wr.chunks(group).zip(xq.chunks(group)).zip(mr) {
            // Exact for groups up to MAX_GROUP; wrapping (never a panic) past them.
            let mut isum = 0i32;
            for (a, b) in wg.iter().zip(xg) {
                isum = isum.wrapping_add(*a as i32 * *b as i32);
            }
            acc += i64::from(isum) * i64::from(*m);
        }
        *o = finish_row(acc, *rs, x_scale);
    }
}

/// An int4 matrix as the kernels read it: like [`I8Matrix`], with 4-bit signed elements
/// (−8..=7) packed two to a byte, the even column in the low nibble, the odd one in the high
/// nibble; each row starts on a byte (`cols.div_ceil(2)` bytes per row, a last high nibble
/// of 0 when `cols` is odd). Element `(r, j)` stands for
/// `w4[r, j] · (row_scales[r] · mults[r, j / group])`.
#[derive(Clone, Copy, Debug)]
pub struct I4Matrix<'a> {
    /// Packed elements, `[rows, cols.div_ceil(2)]` bytes.
    pub q: &'a [u8],
    /// `[rows]` row scales.
    pub row_scales: &'a [f32],
    /// `[rows, groups]` multipliers.
    pub mults: &'a [u8],
    /// Input width.
    pub cols: usize,
    /// Columns per group (≥ 1).
    pub group: usize,
}

impl<'a> I4Matrix<'a> {
    /// Bytes per packed row.
    #[inline(always)]
    pub fn row_bytes(&self) -> usize {
        self.cols.div_ceil(2)
    }

    /// Groups per row.
    #[inline(always)]
    pub fn groups(&self) -> usize {
        self.cols.div_ceil(self.group.max(1))
    }

    /// Whether the slices hold `rows` whole rows and the group is one the contract covers
    /// (1 to [`MAX_GROUP`]), as [`I8Matrix::holds`].
    pub fn holds(&self, rows: usize) -> bool {
        let g = self.groups();
        (1..=MAX_GROUP).contains(&self.group)
            && rows.checked_mul(self.row_bytes()).is_some_and(|n| self.q.len() >= n)
            && self.row_scales.len() >= rows
            && rows.checked_mul(g).is_some_and(|n| self.mults.len() >= n)
    }

    /// Rows `from..` of the matrix (empty slices past the end).
    pub fn from_row(&self, from: usize) -> Self {
        let g = self.groups();
        Self {
            q: self.q.get(from * self.row_bytes()..).unwrap_or_default(),
            row_scales: self.row_scales.get(from..).unwrap_or_default(),
            mults: self.mults.get(from * g..).unwrap_or_default(),
            ..*self
        }
    }
}

/// Element `j` of a packed int4 row: the low nibble of byte `j / 2` for even `j`, the high
/// one for odd `j`, sign-extended (−8..=7). 0 past the row.
#[inline(always)]
pub fn nibble(row: &[u8], j: usize) -> i8 {
    let b = row.get(j / 2).copied().unwrap_or(0);
    let v = if j % 2 == 0 { b << 4 } else { b & 0xf0 };
    (v as i8) >> 4
}

/// `out[r] = (Σ_g m[r,g] · Σ_{j∈g} w4[r,j]·xq[j]) · (row_scales[r] · x_scale)`: the int8
/// contract ([`matvec_i8`]) with int4 elements — the sum exact in integers (a group's in i32,
/// at most 256 · 8 · 32768 = 2^26; the rows' in i64), rounded once to f32 by [`finish_row`].
/// Any order, lane layout or split gives the same bits.
///
/// `w` holds `out.len()` rows and `xq` `w.cols` elements (checked by `kernels::matvec_i4`).
pub fn matvec_i4(out: &mut [f32], w: &I4Matrix<'_>, xq: &[i16], x_scale: f32) {
    let (cols, group, groups, rb) = (w.cols, w.group.max(1), w.groups(), w.row_bytes());
    let rows = w.q.chunks_exact(rb.max(1)).zip(w.mults.chunks_exact(groups.max(1)));
    for ((o, (wr, mr)), rs) in out.iter_mut().zip(rows).zip(w.row_scales) {
        let mut acc = 0i64;
        for (g, (xg, m)) in xq.get(..cols).unwrap_or(xq).chunks(group).zip(mr).enumerate() {
            acc += i64::from(group_sum_i4(wr, g * group, xg)) * i64::from(*m);
        }
        *o = finish_row(acc, *rs, x_scale);
    }
}

/// `out[r] = Σ_j w[r,j]·x[j]`, j in order. `w` is `[out.len(), x.len()]` row-major.
pub fn matvec_f32(out: &mut [f32], w: &[f32], x: &[f32]) {
    let cols = x.len();
    debug_assert!(w.len() >= out.len() * cols);
    for (o, wr) in out.iter_mut().zip(w.chunks_exact(cols)) {
        let mut acc = 0.0f32;
        for (a, b) in wr.iter().zip(x) {
            acc += a * b;
        }
        *o = acc;
    }
}

/// The contract's exponential: a fixed sequence of f32 operations (each rounded to nearest
/// even, no fused multiply-add), so every backend computes it bit for bit, lane by lane.
///
/// `t = x · log2(e)`; `t < -125` (and −∞) gives 0, `t ≥ 127.5` gives +∞, NaN gives NaN. Else
/// `u = t + 1.5·2^23` and `r = u - 1.5·2^23` round `t` to the integer `n = r` (half to even),
/// `f = t - r` ∈ [-1/2, 1/2] (exact), `p = 1 + f·(c1 + f·(c2 + f·(c3 + f·(c4 + f·(c5 + f·c6)))))`
/// with `c_k = ln(2)^k / k!` rounded to f32 (2^f to a few ulps: the next term is below 1.3e-7),
/// and the result is `p · 2^n`, made by adding `n` to `p`'s exponent field (`p` ∈ [0.70, 1.42]
/// and `n` ∈ [-125, 127], so the result is a normal number: no subnormals, which Helium flushes).
/// Relative error against the true e^x at most `2.5e-7 + 9e-8·|x|` for |x| < 86.5 (tested): a
/// few ulps, plus the rounding of `t`, which grows with |x| (softmax arguments are mostly
/// within -20..0).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let t = x * EXP_LOG2E;
    if x.is_nan() {
        return x;
    }
    if t < EXP_T_MIN {
        return 0.0;
    }
    if t >= EXP_T_MAX {
        return f32::INFINITY;
    }
    exp2_in_range(t)
}

/// log2(e) in f32 (1.44269502): [`exp`]'s `t = x · log2(e)`.
pub(crate) const EXP_LOG2E: f32 = f32::from_bits(0x3fb8_aa3b);
/// 1.5 · 2^23: adding and subtracting it rounds to an integer, half to even.
pub(crate) const EXP_MAGIC: f32 = 12_582_912.0;
/// `ln(2)^k / k!` for k = 1..=6, rounded to f32: [`exp`]'s polynomial.
pub(crate) const EXP_C: [f32; 6] = [
    f32::from_bits(0x3f31_7218), // 0.693147182
    f32::from_bits(0x3e75_fdf0), // 0.240226507
    f32::from_bits(0x3d63_5847), // 0.0555041087
    f32::from_bits(0x3c1d_955b), // 0.00961812911
    f32::from_bits(0x3aae_c3ff), // 0.00133335582
    f32::from_bits(0x3921_8489), // 0.000154035304
];
/// Below it [`exp`] gives 0.
pub(crate) const EXP_T_MIN: f32 = -125.0;
/// From it on [`exp`] gives +∞.
pub(crate) const EXP_T_MAX: f32 = 127.5;

/// `2^t` for `t` in [`EXP_T_MIN`, `EXP_T_MAX`): [`exp`]'s operations after `t`.
#[inline(always)]
fn exp2_in_range(t: f32) -> f32 {
    let u = t + EXP_MAGIC;
    let r = u - EXP_MAGIC;
    let f = t - r;
    let n = u.to_bits().wrapping_sub(EXP_MAGIC.to_bits()) as i32;
    let c = EXP_C;
    let p = 1.0 + f * (c[0] + f * (c[1] + f * (c[2] + f * (c[3] + f * (c[4] + f * c[5])))));
    f32::from_bits((p.to_bits() as i32).wrapping_add(n.wrapping_shl(23)) as u32)
}

/// [`exp`] with its range checks as selects instead of branches: the same operations on
/// every input, then the pick of 0, +∞ or NaN, so a loop of it vectorises (the x86 softmax).
/// Bit for bit [`exp`] (tested); the scalar cores keep the branches, which cost them less.
#[cfg_attr(not(all(target_arch = "x86_64", any(feature = "std", test))), allow(dead_code))]
#[inline(always)]
pub(crate) fn exp_selects(x: f32) -> f32 {
    let t = x * EXP_LOG2E;
    let y = exp2_in_range(t);
    let y = if t < EXP_T_MIN { 0.0 } else { y };
    let y = if t >= EXP_T_MAX { f32::INFINITY } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// In-place softmax: the maximum (NaNs skipped), [`exp`]`(v - max)`, summed in order, then
/// each divided by the sum.
pub fn softmax(x: &mut [f32]) {
    // NaNs are skipped, as `f32::max` skips them; which zero wins a tie of +0 and -0 does not
    // matter (`x - max` is then ±0 or the same value, and exp(±0) = 1).
    let max = x.iter().fold(f32::NEG_INFINITY, |m, v| if *v > m { *v } else { m });
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = exp(*v - max);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// `gate = silu(gate) ⊙ up` (SwiGLU): `g · (1 / (1 + exp(-g)))`, then `· u`, with [`exp`].
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g *= 1.0 / (1.0 + exp(-*g));
        *g *= u;
    }
}

/// Most elements of a head whose int8 scores [`scores2_i8`] sums in 32 bits: `512 · 32767 ·
/// 128 < 2^31`. Longer heads sum in 64 bits (the same exact value).
pub const I32_SCORE_HEAD: usize = 512;

/// Attention scores of two heads over int8 rows, as integer dot products. The queries are
/// quantized per head with [`quantize_act`] (`q[0]`, `q[1]`, the same length, the head size),
/// and `c[h]` is that head's quantization scale divided by `sqrt(head_size)`. For t <
/// `att[0].len()`:
///
/// `att[h][t] = (Σ_i q[h][i] · k_t[i]) as f32 · (row_scales[t] · c[h])`
///
/// with `k_t` the elements `off..` of row t (`rows` of `row_len`, one f32 scale per row), the
/// sum exact (any order: integers), rounded to f32 once (nearest even), then two multiplies.
/// `att[1]` is as long as `att[0]`, and `kv` holds their rows.
pub fn scores2_i8(kv: super::HeadRows<'_, i8>, q: [&[i16]; 2], c: [f32; 2], att: [&mut [f32]; 2]) {
    let [att_a, att_b] = att;
    scores_i8(kv, q[0], c[0], att_a);
    scores_i8(kv, q[1], c[1], att_b);
}

/// One head of [`scores2_i8`]: `att[t] = (Σ_i q[i] · k_t[i]) as f32 · (row_scales[t] · c)`.
pub fn scores_i8(kv: super::HeadRows<'_, i8>, q: &[i16], c: f32, att: &mut [f32]) {
    let keys = kv.rows.chunks(kv.row_len.max(1));
    for ((a, row), s) in att.iter_mut().zip(keys).zip(kv.scales) {
        let Some(k) = row.get(kv.off..kv.off + q.len()) else { break };
        *a = dot_i16_i8(q, k) * (s * c);
    }
}

/// `Σ q[i] · k[i]` exactly (in 32 bits up to [`I32_SCORE_HEAD`] elements, else 64), rounded
/// to f32 once.
#[inline(always)]
pub fn dot_i16_i8(q: &[i16], k: &[i8]) -> f32 {
    let products = q.iter().zip(k).map(|(q, k)| i32::from(*q) * i32::from(*k));
    if q.len().min(k.len()) <= I32_SCORE_HEAD {
        products.sum::<i32>() as f32
    } else {
        products.map(i64::from).sum::<i64>() as f32
    }
}

/// Attention outputs of two heads of 8 over int8 rows (as [`scores2_i8`]): for t in order,
/// `a = att_a[t] · row_scales[t]`, then `out_a[i] += a · v_t[i]` for i in order (no fused
/// multiply-add), and likewise `out_b` with `att_b`.
#[allow(clippy::too_many_arguments)]
pub fn mix2_i8(
    rows: &[i8],
    row_len: usize,
    off: usize,
    row_scales: &[f32],
    att_a: &[f32],
    att_b: &[f32],
    out_a: &mut [f32; 8],
    out_b: &mut [f32; 8],
) {
    let (mut oa, mut ob) = (*out_a, *out_b);
    let values = rows.chunks(row_len.max(1));
    for (((a, b), row), s) in att_a.iter().zip(att_b).zip(values).zip(row_scales) {
        let Some(v) = row.get(off..off + 8) else { break };
        let mut vf = [0.0f32; 8];
        for (f, v) in vf.iter_mut().zip(v) {
            *f = f32::from(*v);
        }
        let (a, b) = (a * s, b * s);
        for i in 0..8 {
            oa[i] += a * vf[i];
            ob[i] += b * vf[i];
        }
    }
    *out_a = oa;
    *out_b = ob;
}

/// `Σ_i q[i] · f(k[i])` in the order every backend keeps: eight partial sums from 0.0 (lane j
/// takes the i ≡ j mod 8, i in order, multiply then add, never fused), then the lanes added
/// 0 to 7 from 0.0 ([`sum_lanes`]). Eight lanes let a head's dot product vectorise (a single
/// sum in order is one long chain of dependent adds); with 8 elements or fewer each lane holds
/// one product and this is the plain sum in order, bit for bit.
#[inline(always)]
pub fn dot_lanes<K: Copy>(q: &[f32], k: &[K], f: impl Fn(K) -> f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (qc, kc) = (q.chunks_exact(8), k.chunks_exact(8));
    let (qr, kr) = (qc.remainder(), kc.remainder());
    for (qa, ka) in qc.zip(kc) {
        for ((l, qi), ki) in lanes.iter_mut().zip(qa).zip(ka) {
            *l += qi * f(*ki);
        }
    }
    for ((l, qi), ki) in lanes.iter_mut().zip(qr).zip(kr) {
        *l += qi * f(*ki);
    }
    sum_lanes(lanes)
}

/// The lanes of [`dot_lanes`] added in order from 0.0.
#[inline(always)]
pub fn sum_lanes(lanes: [f32; 8]) -> f32 {
    lanes.iter().fold(0.0, |s, v| s + v)
}

/// Attention scores of one head over f32 rows (`rows` of `row_len`, the head at
/// `off..off + q.len()`): `att[t] = dot_lanes(q, k_t) / scale` for t < `att.len()`.
/// `rows` holds `att.len()` rows.
#[inline(always)]
pub fn scores_f32(
    rows: &[f32],
    row_len: usize,
    off: usize,
    q: &[f32],
    scale: f32,
    att: &mut [f32],
) {
    let hs = q.len();
    for (a, row) in att.iter_mut().zip(rows.chunks(row_len.max(1))) {
        let Some(k) = row.get(off..off + hs) else { break };
        *a = dot_lanes(q, k, |v| v) / scale;
    }
}

/// Attention output of one head over f32 rows (as [`scores_f32`]): for t in order,
/// `out[i] += att[t] · v_t[i]` (multiply then add). Computed 64, 32, 16 or 8 outputs at a time
/// with every t, so the sums stay in registers as independent chains; each output's
/// additions keep their order.
#[inline(always)]
pub fn mix_f32(rows: &[f32], row_len: usize, off: usize, att: &[f32], out: &mut [f32]) {
    let mut i0 = 0;
    while i0 < out.len() {
        let rest = &mut out[i0..];
        i0 += match rest.len() {
            64.. => mix_pass::<64>(rows, row_len, off + i0, att, rest),
            32.. => mix_pass::<32>(rows, row_len, off + i0, att, rest),
            16.. => mix_pass::<16>(rows, row_len, off + i0, att, rest),
            8.. => mix_pass::<8>(rows, row_len, off + i0, att, rest),
            _ => {
                for (a, row) in att.iter().zip(rows.chunks(row_len.max(1))) {
                    let Some(v) = row.get(off + i0..off + i0 + rest.len()) else { break };
                    for (o, v) in rest.iter_mut().zip(v) {
                        *o += a * v;
                    }
                }
                rest.len()
            }
        };
    }
}

/// The first `W` outputs of [`mix_f32`] (`out` holds at least `W`, the rows' values start at
/// `col`); returns `W`.
#[inline(always)]
fn mix_pass<const W: usize>(
    rows: &[f32],
    row_len: usize,
    col: usize,
    att: &[f32],
    out: &mut [f32],
) -> usize {
    let Some(Ok(out)) = out.get_mut(..W).map(<&mut [f32; W]>::try_from) else { return W };
    let mut acc = *out;
    for (a, row) in att.iter().zip(rows.chunks(row_len.max(1))) {
        let Some(Ok(v)) = row.get(col..col + W).map(<&[f32; W]>::try_from) else { break };
        for (o, v) in acc.iter_mut().zip(v) {
            *o += a * v;
        }
    }
    *out = acc;
    W
}

/// Widens one quantized row back to f32: `out[j] = q[j] · (row_scale · mults[j / group])`.
pub fn dequantize_row_i8(q: &[i8], row_scale: f32, mults: &[u8], group: usize, out: &mut [f32]) {
    for ((og, qg), m) in out.chunks_mut(group.max(1)).zip(q.chunks(group.max(1))).zip(mults) {
        let s = row_scale * f32::from(*m);
        for (o, v) in og.iter_mut().zip(qg) {
            *o = *v as f32 * s;
        }
    }
}

/// `Σ_k w4[j0 + k] · xg[k]` over one group of a packed int4 row, exact in i32 for groups
/// up to [`MAX_GROUP`] (wrapping, never a panic, past them).
#[inline(always)]
pub fn group_sum_i4(row: &[u8], j0: usize, xg: &[i16]) -> i32 {
    let mut isum = 0i32;
    if j0 % 2 == 0 {
        // Whole bytes: the low nibble for the even column, the high one for the odd.
        let bytes = row.get(j0 / 2..).unwrap_or_default();
        let pairs = xg.chunks_exact(2);
        let last = pairs.remainder();
        for (b, x) in bytes.iter().zip(pairs) {
            let lo = i32::from(((*b << 4) as i8) >> 4);
            let hi = i32::from((*b as i8) >> 4);
            isum = isum.wrapping_add(lo * i32::from(x[0])).wrapping_add(hi * i32::from(x[1]));
        }
        // An odd group (a row's last, `cols` odd): the low nibble of one more byte.
        if let ([x0], Some(b)) = (last, bytes.get(xg.len() / 2)) {
            isum = isum.wrapping_add(i32::from(((*b << 4) as i8) >> 4) * i32::from(*x0));
        }
    } else {
        for (k, x) in xg.iter().enumerate() {
            isum = isum.wrapping_add(i32::from(nibble(row, j0 + k)) * i32::from(*x));
        }
    }
    isum
}

/// Row of an int4 table widened to f32: `out[j] = w4[j] · (row_scale · mults[j / group])`
/// (the packed row as [`I4Matrix`] stores it).
pub fn dequantize_row_i4(q: &[u8], row_scale: f32, mults: &[u8], group: usize, out: &mut [f32]) {
    let group = group.max(1);
    for (g, (og, m)) in out.chunks_mut(group).zip(mults).enumerate() {
        let s = row_scale * f32::from(*m);
        for (k, o) in og.iter_mut().enumerate() {
            *o = f32::from(nibble(q, g * group + k)) * s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_round_trips_within_half_a_step() {
        let x: [f32; 7] = [0.5, -1.0, 0.25, 0.0, 3.0, -3.0, 0.00001];
        let mut q = [0i16; 7];
        let s = quantize_act(&x, &mut q);
        assert_eq!(s, 3.0 / 32767.0);
        assert_eq!(q[4], 32767);
        assert_eq!(q[5], -32767);
        assert_eq!(q[6], 0);
        for (qi, v) in q.iter().zip(x) {
            let back = *qi as f32 * s;
            assert!((back - v).abs() <= s * 0.5 + 1e-9, "{back} vs {v}");
        }
        let mut q8 = [0i8; 7];
        assert_eq!(quantize_row_i8(&x, &mut q8), 3.0 / 127.0);
        assert_eq!(q8, [21, -42, 11, 0, 127, -127, 0]);
    }

    #[test]
    fn quantize_rounds_ties_to_even() {
        // max 127: the inputs are their own quantized values, halves included.
        let x = [127.0f32, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5];
        let mut q = [0i8; 8];
        assert_eq!(quantize_row_i8(&x, &mut q), 1.0);
        assert_eq!(q, [127, 0, 2, 2, 0, -2, -2, 126]);
    }

    #[test]
    fn round_half_even_is_rintf() {
        // Every 257th bit pattern below 2^22 in magnitude (a sparser sample under Miri), and
        // the halves around each integer up to 130.
        let step = if cfg!(miri) { 40_000_003 } else { 257 };
        let limit = 4_194_304.0f32;
        let mut b = 0u32;
        loop {
            let y = f32::from_bits(b);
            if libm::fabsf(y) <= limit {
                assert_eq!(round_half_even(y), libm::rintf(y) as i32, "{y} ({b:#x})");
            }
            match b.checked_add(step) {
                Some(n) => b = n,
                None => break,
            }
        }
        for i in -130i32..=130 {
            let h = i as f32 + 0.5;
            for y in [h, f32::from_bits(h.to_bits() - 1), f32::from_bits(h.to_bits() + 1)] {
                assert_eq!(round_half_even(y), libm::rintf(y) as i32, "{y}");
            }
        }
        assert_eq!(round_half_even(f32::NAN), 0);
    }

    #[test]
    fn tiny_infinite_and_nan_vectors_quantize_to_zero() {
        let mut q = [1i16; 3];
        assert_eq!(quantize_act(&[0.0, 0.0, 0.0], &mut q), 0.0);
        assert_eq!(q, [0, 0, 0]);
        q = [1; 3];
        assert_eq!(quantize_act(&[ACT_MIN_MAX / 2.0, 0.0, -1e-35], &mut q), 0.0);
        assert_eq!(q, [0, 0, 0]);
        q = [1; 3];
        assert_eq!(quantize_act(&[f32::INFINITY, 1.0, 0.0], &mut q), 0.0);
        assert_eq!(q, [0, 0, 0]);
        assert_eq!(quantize_act(&[f32::NAN, 1.0, -1.0], &mut q), 1.0 / 32767.0);
        assert_eq!(q, [0, 32767, -32767]);
        // At the floor itself, subnormal neighbours still round to zero.
        let sub = f32::from_bits(0x007f_ffff);
        assert_eq!(quantize_act(&[ACT_MIN_MAX, sub, -sub], &mut q), ACT_MIN_MAX / 32767.0);
        assert_eq!(q, [32767, 0, 0]);
    }

    #[test]
    fn matvec_i8_handles_a_short_last_group() {
        // 1 row, 5 columns, groups of 2 → groups [2, 2, 1] with multipliers 1, 2, 8.
        let w = [1i8, 2, 3, 4, 5];
        let m = I8Matrix { q: &w, row_scales: &[0.5], mults: &[1, 2, 8], cols: 5, group: 2 };
        let xq = [1i16, 1, 1, 1, -1];
        let mut out = [0f32];
        matvec_i8(&mut out, &m, &xq, 4.0);
        assert_eq!(out[0], (3.0 * 1.0 + 7.0 * 2.0 + -5.0 * 8.0) * 2.0);
    }

    #[test]
    fn extremes_do_not_overflow() {
        // 65,536 columns of −128 · −32768 in the largest groups, multipliers 255.
        let n = 65_536;
        let w = [-128i8; 65_536];
        let x = [i16::MIN; 65_536];
        let mults = [255u8; 65_536 / MAX_GROUP];
        let m = I8Matrix { q: &w, row_scales: &[1.0], mults: &mults, cols: n, group: MAX_GROUP };
        let mut out = [0f32];
        matvec_i8(&mut out, &m, &x, 1.0);
        assert_eq!(out[0], (128i64 * 32768 * 255 * n as i64) as f32);
    }

    #[test]
    fn matvec_i4_unpacks_low_nibble_first_and_sums_exactly() {
        // 1 row, 5 columns (3 bytes, the last high nibble padding), groups of 2 with
        // multipliers 1, 2, 8: elements 7, -8, -1, 3, 5.
        let q = [0x87u8, 0x3f, 0x05];
        let m = I4Matrix { q: &q, row_scales: &[0.5], mults: &[1, 2, 8], cols: 5, group: 2 };
        let xq = [1i16, 1, 1, 1, -1];
        let mut out = [0f32];
        matvec_i4(&mut out, &m, &xq, 4.0);
        assert_eq!(out[0], (-1.0 + 2.0 * 2.0 + -5.0 * 8.0) * 2.0);
        let mut row = [0f32; 5];
        dequantize_row_i4(&q, 0.5, &[1, 2, 8], 2, &mut row);
        assert_eq!(row, [3.5, -4.0, -1.0, 3.0, 20.0]);
        // −8 · −32768 · 255 over the widest rows fits.
        let q = [0x88u8; 32_768];
        let mults = [255u8; 65_536 / MAX_GROUP];
        let m = I4Matrix { q: &q, row_scales: &[1.0], mults: &mults, cols: 65_536, group: 256 };
        matvec_i4(&mut out, &m, &[i16::MIN; 65_536], 1.0);
        assert_eq!(out[0], (8i64 * 32768 * 255 * 65_536) as f32);
    }

    #[test]
    fn matvec_i4_is_the_sum_of_its_elements_for_every_group_and_width() {
        // Against the plainest form of the contract: element by element through `nibble`.
        let mut seed = 0x9e37_79b9u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        // Miri interprets every instruction: the narrow widths there.
        for cols in 1..if cfg!(miri) { 12usize } else { 40 } {
            for group in 1..=cols {
                let rb = cols.div_ceil(2);
                let q: [u8; 60] = core::array::from_fn(|_| next() as u8);
                let x: [i16; 40] = core::array::from_fn(|_| next() as i16);
                let mults: [u8; 120] = core::array::from_fn(|_| next() as u8);
                let g = cols.div_ceil(group);
                let m = I4Matrix { q: &q, row_scales: &[1.0; 3], mults: &mults, cols, group };
                let mut out = [0f32; 3];
                matvec_i4(&mut out, &m, &x, 1.0);
                for (r, o) in out.iter().enumerate() {
                    let row = &q[r * rb..(r + 1) * rb];
                    let want: i64 = (0..cols)
                        .map(|j| {
                            i64::from(nibble(row, j))
                                * i64::from(x[j])
                                * i64::from(mults[r * g + j / group])
                        })
                        .sum();
                    assert_eq!(*o, want as f32, "cols {cols} group {group} row {r}");
                }
            }
        }
    }

    #[test]
    fn finish_row_rounds_once_from_the_exact_sum() {
        // 2^24 + 1 is not an f32: nearest even is 2^24, from i32 and from i64 alike.
        assert_eq!(finish_row((1 << 24) + 1, 1.0, 1.0), 16_777_216.0);
        assert_eq!(finish_row((1 << 40) + 1, 1.0, 1.0), (1u64 << 40) as f32);
        assert_eq!(finish_row(-3, 0.5, 2.0), -3.0);
    }

    #[test]
    fn matvec_f32_sums_in_order() {
        let w = [1.0f32, 1e8, -1e8, 1.0];
        let mut out = [0f32; 1];
        matvec_f32(&mut out, &w, &[1.0, 1.0, 1.0, 1.0]);
        // ((1 + 1e8) - 1e8) + 1 = 0 + 1 in f32: the order is part of the contract.
        assert_eq!(out[0], 1.0);
    }

    #[test]
    fn exp_is_within_its_stated_error_of_the_true_exponential() {
        // Every 97th bit pattern of |x| < 86.5 (t > -125 for both signs; a sparse sample under
        // Miri).
        let step = if cfg!(miri) { 1_000_003 } else { 97 };
        let mut worst = 0.0f64;
        for bits in (0u32..0x42ad_0000).step_by(step) {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                let got = exp(x) as f64;
                let want = (x as f64).exp();
                // The stated bound: a few ulps plus the rounding of t = x · log2(e).
                let bound = 2.5e-7 + 9e-8 * (x as f64).abs();
                let e = ((got - want) / want).abs() / bound;
                worst = worst.max(e);
            }
        }
        assert!(worst <= 1.0, "worst error {worst} times the bound");
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-87.0), 0.0, "t < -125: zero rather than a subnormal");
        assert!(exp(-86.0) > 0.0 && exp(-86.0).is_normal());
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert!(exp(88.0).is_finite());
        assert!(exp(f32::NAN).is_nan());
        // Monotone across the rounding of t to an integer.
        let mut prev = 0.0f32;
        for i in -2000..2000 {
            let v = exp(i as f32 * 0.01);
            assert!(v >= prev, "exp not monotone at {}", i as f32 * 0.01);
            prev = v;
        }
    }

    #[test]
    fn exp_selects_is_exp() {
        let step = if cfg!(miri) { 10_000_019 } else { 61 };
        let specials = [0u32, 0x8000_0000, 0x7f80_0000, 0xff80_0000, 0x7fc0_0000, 0xc2fa_0000];
        let sample = (0..=u32::MAX).step_by(step).chain(specials);
        for b in sample {
            let x = f32::from_bits(b);
            let (a, e) = (exp_selects(x), exp(x));
            assert!(a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan()), "{x} ({b:#x})");
        }
    }
}
