//! Group-wise symmetric int8 quantization of weights, and what it costs.
//!
//! Each row is cut into groups of `group` inputs (the last group of a row may be shorter, so
//! every width works — stories260K's hidden_dim of 172 included); a group's scale is
//! `max|w| / 127` rounded to f16, and elements are rounded against that f16 scale, so the
//! file dequantizes to exactly what was measured here.

use half::f16;

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
    /// Elements `[rows, cols]`.
    pub q: Vec<i8>,
    /// Scales `[rows, cols.div_ceil(group)]`.
    pub scales: Vec<f16>,
    /// Error against the input.
    pub stats: QuantStats,
}

/// Squared error of `g` quantized with scale `s`.
fn group_error(g: &[f32], s: f32) -> f64 {
    g.iter()
        .map(|v| {
            let q = if s > 0.0 { (v / s).round().clamp(-127.0, 127.0) } else { 0.0 };
            ((q * s - v) as f64).powi(2)
        })
        .sum()
}

/// The f16 scale with the least squared error among `max|g| / 127 × f`, f = 1.00, 0.99, …,
/// 0.80: clipping the largest weight a little often rounds the rest better.
fn best_scale(g: &[f32]) -> f16 {
    let max = g.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut best = f16::from_f32(max / 127.0);
    let mut best_err = group_error(g, best.to_f32());
    for step in 1..=20 {
        let cand = f16::from_f32(max / 127.0 * (1.0 - 0.01 * step as f32));
        let err = group_error(g, cand.to_f32());
        if err < best_err {
            (best, best_err) = (cand, err);
        }
    }
    best
}

/// Quantizes `data` (`[rows, cols]`, row-major) in groups of `group` along each row.
pub fn quantize(data: &[f32], cols: usize, group: usize) -> Quantized {
    let mut q = Vec::with_capacity(data.len());
    let mut scales = Vec::with_capacity(data.len() / group + 1);
    let (mut signal, mut noise, mut max_err) = (0f64, 0f64, 0f32);
    for row in data.chunks(cols) {
        for g in row.chunks(group) {
            let s16 = best_scale(g);
            let s = s16.to_f32();
            scales.push(s16);
            for v in g {
                let qi = if s > 0.0 { (v / s).round().clamp(-127.0, 127.0) as i8 } else { 0 };
                q.push(qi);
                let err = (qi as f32 * s - v).abs();
                max_err = max_err.max(err);
                signal += (*v as f64).powi(2);
                noise += (err as f64).powi(2);
            }
        }
    }
    let snr_db = if noise == 0.0 { f64::INFINITY } else { 10.0 * (signal / noise).log10() };
    Quantized { q, scales, stats: QuantStats { snr_db, max_abs_err: max_err } }
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
        assert_eq!(r.scales.len(), 6);
        assert_eq!(*r.q.last().expect("non-empty"), 127);
        assert!((r.scales[5].to_f32() - 100.0 / 127.0).abs() < 1e-3);
        assert!(r.stats.snr_db > 40.0, "{:?}", r.stats);
    }

    #[test]
    fn zeros_are_exact() {
        let r = quantize(&[0.0; 8], 8, 4);
        assert!(r.q.iter().all(|v| *v == 0));
        assert_eq!(r.stats.snr_db, f64::INFINITY);
    }
}
