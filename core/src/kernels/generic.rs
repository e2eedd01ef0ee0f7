//! Scalar kernels: the reference every other backend reproduces bit for bit.

use half::f16;

/// Quantizes `x` to int8 in groups of `group`: writes `q[..x.len()]` and one scale per group.
///
/// `q.len() >= x.len()` and `scales.len() >= x.len().div_ceil(group)`.
pub fn quantize_i8(x: &[f32], group: usize, q: &mut [i8], scales: &mut [f32]) {
    debug_assert!(q.len() >= x.len() && scales.len() >= x.len().div_ceil(group));
    for ((xg, qg), s) in x.chunks(group).zip(q.chunks_mut(group)).zip(scales.iter_mut()) {
        // `m.max(|v|)`: NaNs are skipped (the maximum starts at 0 and never becomes NaN).
        let max = xg.iter().fold(0.0f32, |m, v| {
            let a = libm::fabsf(*v);
            if a > m {
                a
            } else {
                m
            }
        });
        if max > 0.0 {
            let inv = 127.0 / max;
            for (qi, xi) in qg.iter_mut().zip(xg) {
                *qi = round_clamp_i8(*xi * inv);
            }
            *s = max / 127.0;
        } else {
            qg.iter_mut().for_each(|v| *v = 0);
            *s = 0.0;
        }
    }
}

/// `libm::roundf(y).clamp(-127.0, 127.0) as i8` (round half away from zero; NaN gives 0), for
/// every `y` (checked on all 2^32 by an ignored test): `|y| + (1/2 - 2^-25)` rounds up past an
/// integer exactly when the fraction of `|y|` is at least 1/2, so its truncation is the
/// rounded magnitude (a sum with 1/2 itself would turn 0.49999997 into 1).
#[inline(always)]
fn round_clamp_i8(y: f32) -> i8 {
    const HALF_DOWN: f32 = f32::from_bits(0x3eff_ffff); // 0.49999997 = 1/2 - 2^-25
    let m = ((libm::fabsf(y) + HALF_DOWN) as i32).min(127); // NaN → 0, ∞ → i32::MAX
    (if y.is_sign_negative() { -m } else { m }) as i8
}

/// `out[r] = Σ_g (Σ_{j∈g} w[r,j]·xq[j]) · (ws[r,g] · xs[g])`, groups in order.
///
/// `w` is `[out.len(), cols]` row-major int8, `ws` is `[out.len(), cols.div_ceil(group)]`.
pub fn matvec_i8(
    out: &mut [f32],
    w: &[i8],
    ws: &[f16],
    xq: &[i8],
    xs: &[f32],
    cols: usize,
    group: usize,
) {
    let groups = cols.div_ceil(group);
    debug_assert!(w.len() >= out.len() * cols && ws.len() >= out.len() * groups);
    for ((o, wr), sr) in out.iter_mut().zip(w.chunks_exact(cols)).zip(ws.chunks_exact(groups)) {
        let mut acc = 0.0f32;
        for (((wg, xg), s), x_scale) in
            wr.chunks(group).zip(xq.chunks(group)).zip(sr).zip(xs.iter())
        {
            let mut isum = 0i32;
            for (a, b) in wg.iter().zip(xg) {
                isum += *a as i32 * *b as i32;
            }
            acc = super::group_step(acc, isum, *s, *x_scale);
        }
        *o = acc;
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

/// In-place softmax: the maximum (NaNs skipped), `exp(v - max)` with [`crate::ops::expf`]
/// (`libm::expf` bit for bit), summed in order, then each divided by the sum.
pub fn softmax(x: &mut [f32]) {
    // NaNs are skipped, as `f32::max` skips them; which zero wins a tie of +0 and -0 does not
    // matter (`x - max` is then ±0 or the same value, and exp(±0) = 1).
    let max = x.iter().fold(f32::NEG_INFINITY, |m, v| if *v > m { *v } else { m });
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = crate::ops::expf(*v - max);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// `gate = silu(gate) ⊙ up` (SwiGLU): `g · (1 / (1 + expf(-g)))`, then `· u`, with
/// [`crate::ops::expf`] (`libm::expf` bit for bit).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g *= 1.0 / (1.0 + crate::ops::expf(-*g));
        *g *= u;
    }
}

/// Attention scores of two heads of 8 over int8 rows (`rows` of `row_len`, each with an f32
/// scale in `row_scales`; the heads read elements `off..off + 8`): for t < `att_a.len()`,
/// `att_a[t] = ((Σ_i q_a[i] · k_t[i]) · row_scales[t]) / scale`, the sum from 0.0 with i in
/// order (no fused multiply-add), and likewise `att_b` with `q_b`. `att_b` is as long as
/// `att_a`, and `rows` holds their rows.
#[allow(clippy::too_many_arguments)]
pub fn scores2_i8(
    rows: &[i8],
    row_len: usize,
    off: usize,
    row_scales: &[f32],
    q_a: &[f32; 8],
    q_b: &[f32; 8],
    scale: f32,
    att_a: &mut [f32],
    att_b: &mut [f32],
) {
    let (q_a, q_b) = (*q_a, *q_b);
    let keys = rows.chunks(row_len.max(1));
    for (((a, b), row), s) in att_a.iter_mut().zip(att_b.iter_mut()).zip(keys).zip(row_scales) {
        let Some(k) = row.get(off..off + 8) else { break };
        let mut kf = [0.0f32; 8];
        for (f, k) in kf.iter_mut().zip(k) {
            *f = f32::from(*k);
        }
        let (mut sa, mut sb) = (0.0f32, 0.0f32);
        for i in 0..8 {
            sa += q_a[i] * kf[i];
            sb += q_b[i] * kf[i];
        }
        *a = sa * s / scale;
        *b = sb * s / scale;
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

/// Widens one quantized row back to f32: `out[j] = q[j] · scale[j / group]`.
pub fn dequantize_row_i8(q: &[i8], scales: &[f16], group: usize, out: &mut [f32]) {
    for ((og, qg), s) in out.chunks_mut(group).zip(q.chunks(group)).zip(scales) {
        let s = s.to_f32();
        for (o, v) in og.iter_mut().zip(qg) {
            *o = *v as f32 * s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_round_trips_within_half_a_step() {
        let x: [f32; 7] = [0.5, -1.0, 0.25, 0.0, 3.0, -3.0, 0.001];
        let mut q = [0i8; 7];
        let mut s = [0f32; 3];
        quantize_i8(&x, 3, &mut q, &mut s);
        assert_eq!(q[1], -127);
        assert_eq!(q[4], 127);
        assert_eq!(q[5], -127);
        assert_eq!(q[6], 127);
        for (i, v) in x.iter().enumerate() {
            let back = q[i] as f32 * s[i / 3];
            assert!((back - v).abs() <= s[i / 3] * 0.5 + 1e-7, "{i}: {back} vs {v}");
        }
    }

    #[test]
    fn round_clamp_is_libm_roundf_clamped() {
        // Every 257th bit pattern (all signs and exponents; a sparser sample under Miri) and
        // the halves around each integer.
        let want = |y: f32| libm::roundf(y).clamp(-127.0, 127.0) as i8;
        let step = if cfg!(miri) { 40_000_003 } else { 257 };
        let mut b = 0u32;
        loop {
            let y = f32::from_bits(b);
            assert_eq!(round_clamp_i8(y), want(y), "{y} ({b:#x})");
            match b.checked_add(step) {
                Some(n) => b = n,
                None => break,
            }
        }
        for i in -130i32..=130 {
            let h = i as f32 + 0.5;
            for y in [h, f32::from_bits(h.to_bits() - 1), f32::from_bits(h.to_bits() + 1)] {
                assert_eq!(round_clamp_i8(y), want(y), "{y}");
            }
        }
    }

    /// All 2^32 inputs (seconds with optimisations): `cargo test -p chispa-core --release
    /// round_clamp_everywhere -- --ignored`.
    #[test]
    #[ignore]
    fn round_clamp_everywhere() {
        let want = |y: f32| libm::roundf(y).clamp(-127.0, 127.0) as i8;
        let bad = (0..=u32::MAX)
            .filter(|b| round_clamp_i8(f32::from_bits(*b)) != want(f32::from_bits(*b)))
            .count();
        assert_eq!(bad, 0);
    }

    #[test]
    fn all_zero_group_has_zero_scale() {
        let mut q = [1i8; 4];
        let mut s = [1f32; 2];
        quantize_i8(&[0.0, 0.0, 1.0, 0.0], 2, &mut q, &mut s);
        assert_eq!(s[0], 0.0);
        assert_eq!(&q[..2], &[0, 0]);
    }

    #[test]
    fn matvec_i8_handles_a_short_last_group() {
        // 1 row, 5 columns, groups of 2 → groups [2, 2, 1].
        let w = [1i8, 2, 3, 4, 5];
        let ws = [f16::from_f32(1.0), f16::from_f32(0.5), f16::from_f32(2.0)];
        let xq = [1i8, 1, 1, 1, -1];
        let xs = [1.0f32, 2.0, 4.0];
        let mut out = [0f32];
        matvec_i8(&mut out, &w, &ws, &xq, &xs, 5, 2);
        assert_eq!(out[0], 3.0 * 1.0 + 7.0 * 1.0 + -5.0 * 8.0);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let n = 4096;
        let w = [-128i8; 4096];
        let xq = [-128i8; 4096];
        let ws = [f16::from_f32(1.0); 1];
        let xs = [1.0f32; 1];
        let mut out = [0f32];
        matvec_i8(&mut out, &w, &ws, &xq, &xs, n, n);
        assert_eq!(out[0], (128 * 128 * n) as f32);
    }

    #[test]
    fn matvec_f32_sums_in_order() {
        let w = [1.0f32, 1e8, -1e8, 1.0];
        let mut out = [0f32; 1];
        matvec_f32(&mut out, &w, &[1.0, 1.0, 1.0, 1.0]);
        // ((1 + 1e8) - 1e8) + 1 = 0 + 1 in f32: the order is part of the contract.
        assert_eq!(out[0], 1.0);
    }
}
