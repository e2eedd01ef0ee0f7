//! Group-wise symmetric int8 and int4 quantization of weights, and what it costs.
//!
//! Each row is cut into groups of `group` inputs (the last group of a row may be shorter, so
//! every width works — stories260K's hidden_dim of 172 included). A group's scale is
//! `row_scale · m` with one f32 `row_scale` per row and a u8 multiplier `m` per group (so the
//! core sums a row in integers and scales it once): the row scale is the largest group scale
//! over 255, each multiplier the better of the two integers around the group's own scale, and
//! elements are rounded against that exact product, so the file dequantizes to exactly what
//! was measured here.

/// Quantization error of one tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QuantStats {
    /// Signal-to-noise ratio in dB (∞ when exact).
    pub snr_db: f64,
    /// Largest absolute error.
    pub max_abs_err: f32,
}

/// A quantized matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// Elements `[rows, cols]` (int4: each −8..=7, unpacked).
    pub q: Vec<i8>,
    /// One scale per row.
    pub row_scales: Vec<f32>,
    /// Multipliers `[rows, cols.div_ceil(group)]`.
    pub mults: Vec<u8>,
    /// Error against the input.
    pub stats: QuantStats,
}

/// The largest multiplier.
const M_MAX: f32 = 255.0;

/// The integer range of one element type and how far below its full-range scale the
/// clipping search goes.
#[derive(Clone, Copy, Debug)]
struct Levels {
    /// Smallest element.
    lo: f32,
    /// Largest element (the full-range scale is `max|g| / hi`).
    hi: f32,
    /// Candidate scales `max|g| / hi × (1 − 0.01 k)` for k in `0..=steps`.
    steps: usize,
}

/// int8: ±127, scales down to 0.80 of the full range.
const INT8: Levels = Levels { lo: -127.0, hi: 127.0, steps: 20 };
/// int4: −8..=7, scales down to 0.70 of `max|g| / 7` (0.875 of it puts the largest weight of
/// a negative-heavy group on −8 exactly); four bits leave more to gain from clipping.
const INT4: Levels = Levels { lo: -8.0, hi: 7.0, steps: 30 };

/// `v` rounded against scale `s` (0 for a zero scale), as the file stores it.
fn round_to(v: f32, s: f32, l: Levels) -> i8 {
    if s > 0.0 {
        (v / s).round().clamp(l.lo, l.hi) as i8
    } else {
        0
    }
}

/// Squared error of `g` quantized with scale `s`.
fn group_error(g: &[f32], s: f32, l: Levels) -> f64 {
    g.iter().map(|v| ((round_to(*v, s, l) as f32 * s - v) as f64).powi(2)).sum()
}

/// The scale with the least squared error among `max|g| / hi × f`, f = 1.00, 0.99, …:
/// clipping the largest weight a little often rounds the rest better.
fn best_scale(g: &[f32], l: Levels) -> f32 {
    let max = g.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut best = max / l.hi;
    let mut best_err = group_error(g, best, l);
    for step in 1..=l.steps {
        let cand = max / l.hi * (1.0 - 0.01 * step as f32);
        let err = group_error(g, cand, l);
        if err < best_err {
            (best, best_err) = (cand, err);
        }
    }
    best
}

/// The multiplier (of `row_scale`) with the least error for group `g` whose own best scale is
/// `s`: the integer below or above `s / row_scale`, within 1..=255.
fn best_mult(g: &[f32], s: f32, row_scale: f32, l: Levels) -> u8 {
    if s <= 0.0 || row_scale <= 0.0 {
        return 0;
    }
    let r = (s / row_scale).clamp(1.0, M_MAX);
    let (lo, hi) = (r.floor(), r.ceil());
    let err = |m: f32| group_error(g, row_scale * m, l);
    (if err(hi) < err(lo) { hi } else { lo }) as u8
}

/// Quantizes `data` (`[rows, cols]`, row-major) in groups of `group` along each row.
pub fn quantize(data: &[f32], cols: usize, group: usize) -> Quantized {
    quantize_levels(data, cols, group, INT8)
}

/// [`quantize`] to int4 (−8..=7): the same row scales and multipliers, the elements as i8
/// values in `q` (unpacked; [`pack_i4`] gives the file's bytes).
pub fn quantize_i4(data: &[f32], cols: usize, group: usize) -> Quantized {
    quantize_levels(data, cols, group, INT4)
}

/// int4 elements `[rows, cols]` (each −8..=7) packed as the file stores them: two per byte,
/// the even column in the low nibble, each row starting on a byte (a last high nibble of 0
/// when `cols` is odd).
pub fn pack_i4(q: &[i8], cols: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(q.len() / 2 + 1);
    for row in q.chunks(cols.max(1)) {
        for pair in row.chunks(2) {
            let lo = pair[0] as u8 & 0x0f;
            let hi = pair.get(1).map_or(0, |v| (*v as u8 & 0x0f) << 4);
            out.push(lo | hi);
        }
    }
    out
}

fn quantize_levels(data: &[f32], cols: usize, group: usize, l: Levels) -> Quantized {
    let mut q = Vec::with_capacity(data.len());
    let mut row_scales = Vec::with_capacity(data.len() / cols.max(1));
    let mut mults = Vec::with_capacity(data.len() / group + 1);
    let (mut signal, mut noise, mut max_err) = (0f64, 0f64, 0f32);
    for row in data.chunks(cols) {
        let best: Vec<f32> = row.chunks(group).map(|g| best_scale(g, l)).collect();
        let rs = best.iter().fold(0f32, |m, s| m.max(*s)) / M_MAX;
        row_scales.push(rs);
        for (g, s) in row.chunks(group).zip(&best) {
            let m = best_mult(g, *s, rs, l);
            mults.push(m);
            // The product the core forms (`dequantize_row_i8`, `dequantize_row_i4`).
            let s = rs * f32::from(m);
            for v in g {
                let qi = round_to(*v, s, l);
                q.push(qi);
                let err = (qi as f32 * s - v).abs();
                max_err = max_err.max(err);
                signal += (*v as f64).powi(2);
                noise += (err as f64).powi(2);
            }
        }
    }
    let snr_db = if noise == 0.0 { f64::INFINITY } else { 10.0 * (signal / noise).log10() };
    Quantized { q, row_scales, mults, stats: QuantStats { snr_db, max_abs_err: max_err } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_last_group_is_quantized_too() {
        // 172 columns in groups of 32: the last group has 12 elements and its own scale.
        let cols = 172;
        let data: Vec<f32> =
            (0..cols).map(|i| if i >= 160 { 100.0 } else { 0.01 * i as f32 }).collect();
        let r = quantize(&data, cols, 32);
        assert_eq!(r.mults.len(), 6);
        assert_eq!(r.row_scales.len(), 1);
        assert_eq!(*r.q.last().expect("non-empty"), 127);
        assert_eq!(r.mults[5], 255);
        assert!((r.row_scales[0] * 255.0 - 100.0 / 127.0).abs() < 1e-3);
        assert!(r.stats.snr_db > 40.0, "{:?}", r.stats);
    }

    #[test]
    fn zeros_are_exact() {
        let r = quantize(&[0.0; 8], 8, 4);
        assert!(r.q.iter().all(|v| *v == 0));
        assert_eq!(r.stats.snr_db, f64::INFINITY);
    }
}

#[cfg(test)]
mod int4_tests {
    use super::*;

    #[test]
    fn int4_uses_minus_eight_and_seven_and_packs_low_nibble_first() {
        // A group whose largest weight is negative reaches −8 exactly.
        let data = [-8.0f32, 7.0, 0.0, 1.0, -1.0];
        let r = quantize_i4(&data, 5, 8);
        assert_eq!(r.q, [-8, 7, 0, 1, -1]);
        assert_eq!(pack_i4(&r.q, 5), [0x78, 0x10, 0x0f]);
        // Every element within half a step of its group's scale, or clipped at the ends.
        let data: Vec<f32> = (0..64).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
        let r = quantize_i4(&data, 32, 16);
        for (j, v) in data.iter().enumerate() {
            let s = r.row_scales[j / 32] * f32::from(r.mults[j / 16]);
            let q = r.q[j];
            assert!((-8..=7).contains(&q));
            assert!((q as f32 * s - v).abs() <= s * 0.5 + 1e-6 || q == 7 || q == -8, "{j}");
        }
        assert!(r.stats.snr_db > 15.0, "{:?}", r.stats);
    }
}

#[cfg(test)]
mod multiplier_tests {
    use super::*;

    #[test]
    fn groups_of_different_sizes_keep_their_own_scale() {
        // Two groups 100× apart: the small one's multiplier is about 255 / 100.
        let data: Vec<f32> =
            (0..64).map(|i| if i < 32 { 0.01 } else { 1.0 } * (i as f32 - 31.5)).collect();
        let r = quantize(&data, 64, 32);
        assert_eq!(r.mults[1], 255);
        assert!((2..=3).contains(&r.mults[0]), "{:?}", r.mults);
        // Every element dequantizes within half of its group's step.
        for (j, v) in data.iter().enumerate() {
            let s = r.row_scales[0] * f32::from(r.mults[j / 32]);
            assert!((r.q[j] as f32 * s - v).abs() <= s * 0.5 + 1e-6, "{j}");
        }
    }
}
