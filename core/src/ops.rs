//! The f32 operations around the matmuls, each with a fixed order of floating-point work, and
//! the matmul dispatch (f32 or int8 with activations quantized once per input vector).

use crate::format::groups_per_row;
use crate::kernels;
use crate::model::{Matrix, Weights};

/// A matmul input: f32 as is, or quantized once and shared by every matrix that reads it.
pub(crate) enum Act<'b> {
    F32(&'b [f32]),
    /// The int16 elements and their one scale.
    I8(&'b [i16], f32),
}

/// Quantizes `x` (if `w` is int8) once for every matrix that reads it.
pub(crate) fn prepare<'b>(x: &'b [f32], w: &Matrix<'_>, xq: &'b mut [i16]) -> Act<'b> {
    match w.weights {
        Weights::F32(_) => Act::F32(x),
        Weights::I8 { .. } => {
            let q = &mut xq[..x.len()];
            let s = kernels::quantize_act(x, q);
            Act::I8(q, s)
        }
    }
}

/// `out = w · x`.
pub(crate) fn matvec(out: &mut [f32], w: &Matrix<'_>, x: &Act<'_>) {
    match (w.weights, x) {
        (Weights::F32(m), Act::F32(x)) => kernels::matvec_f32(out, m, x),
        (Weights::I8 { q, row_scales, mults }, Act::I8(xq, xs)) => {
            let m = kernels::I8Matrix { q, row_scales, mults, cols: w.cols, group: w.group };
            kernels::matvec_i8(out, &m, xq, *xs)
        }
        // `parse` guarantees one element type for every matrix.
        _ => out.fill(0.0),
    }
}

/// Row `row` of an embedding table, widened to f32.
pub(crate) fn embed(table: &Matrix<'_>, row: usize, out: &mut [f32]) {
    let dim = table.cols;
    match table.weights {
        Weights::F32(w) => out.copy_from_slice(&w[row * dim..(row + 1) * dim]),
        Weights::I8 { q, row_scales, mults } => {
            let gpr = groups_per_row(dim, table.group);
            let (q, m) = (&q[row * dim..(row + 1) * dim], &mults[row * gpr..(row + 1) * gpr]);
            kernels::dequantize_row_i8(q, row_scales[row], m, table.group, out);
        }
    }
}

/// `o = w ⊙ x / sqrt(mean(x²) + eps)`, sums in order (llama2.c's `rmsnorm`).
pub(crate) fn rmsnorm(o: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let mut ss = 0.0f32;
    for v in x {
        ss += v * v;
    }
    ss /= x.len() as f32;
    ss += eps;
    let ss = 1.0 / libm::sqrtf(ss);
    for ((o, x), w) in o.iter_mut().zip(x).zip(w) {
        *o = w * (ss * x);
    }
}

/// Rotates adjacent pairs `(v[2i], v[2i+1])` of every head by the angles in `cos`/`sin`.
pub(crate) fn rope(v: &mut [f32], head_size: usize, cos: &[f32], sin: &[f32]) {
    for head in v.chunks_exact_mut(head_size) {
        for ((pair, c), s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * c - b * s;
            pair[1] = a * s + b * c;
        }
    }
}

/// In-place softmax: subtract the maximum, exponentiate (`expf`, which is `libm::expf` bit for bit),
/// normalise (`kernels::generic::softmax`, with the active backend).
pub fn softmax(x: &mut [f32]) {
    kernels::softmax(x);
}

/// `gate = silu(gate) ⊙ up` (SwiGLU; `kernels::generic::swiglu`, with the active backend).
pub(crate) fn swiglu(gate: &mut [f32], up: &[f32]) {
    kernels::swiglu(gate, up);
}

/// `libm::expf`, bit for bit, for every input: the same operations (FreeBSD's `e_expf.c`) in
/// the same order, inlined, with its final `scalbnf(y, k)` written as the one multiplication
/// by 2^k it is for the exponents reached here (|x| < 87.34, so -126 <= k <= 126). Larger
/// |x| and NaN go to `libm::expf` itself. Checked against it on all 2^32 inputs (an ignored
/// test; a sample runs with the others).
#[inline(always)]
pub(crate) fn expf(x: f32) -> f32 {
    // libm's constants, by their bits.
    const LN2_HI: f32 = f32::from_bits(0x3f31_7200); // 6.9314575195e-01
    const LN2_LO: f32 = f32::from_bits(0x35bf_be8e); // 1.4286067653e-06
    const INV_LN2: f32 = f32::from_bits(0x3fb8_aa3b); // 1.4426950216e+00
    const P1: f32 = f32::from_bits(0x3e2a_aa8f); // 1.6666625440e-1
    const P2: f32 = f32::from_bits(0xbb35_5215); // -2.7667332906e-3
    let bits = x.to_bits();
    let hx = bits & 0x7fff_ffff;
    let negative = bits >> 31 != 0;
    if hx >= 0x42ae_ac50 {
        // |x| >= 87.34 or NaN: overflow, underflow, subnormal results.
        return libm::expf(x);
    }
    let (k, hi, lo) = if hx > 0x3eb1_7218 {
        // |x| > ln2 / 2
        let k = if hx > 0x3f85_1592 {
            // |x| > 1.5 ln2
            (INV_LN2 * x + if negative { -0.5 } else { 0.5 }) as i32
        } else if negative {
            -1
        } else {
            1
        };
        let kf = k as f32;
        (k, x - kf * LN2_HI, kf * LN2_LO)
    } else if hx > 0x3900_0000 {
        // |x| > 2^-14
        (0, x, 0.0)
    } else {
        return 1.0 + x;
    };
    let x = hi - lo;
    let xx = x * x;
    let c = x - xx * (P1 + xx * P2);
    let y = 1.0 + (x * c / (2.0 - c) - lo + hi);
    if k == 0 {
        y
    } else {
        // scalbnf(y, k) for -126 <= k <= 127: y · 2^k, one rounding.
        y * f32::from_bits(((0x7f + k) as u32) << 23)
    }
}

/// `x += d`.
pub(crate) fn add(x: &mut [f32], d: &[f32]) {
    for (x, d) in x.iter_mut().zip(d) {
        *x += d;
    }
}

#[cfg(test)]
mod tests {
    use super::expf;

    fn same(x: f32) -> bool {
        let (a, b) = (expf(x), libm::expf(x));
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn expf_is_libm_expf_on_a_sample() {
        // Every 4099th bit pattern (both signs, every exponent; a sparser sample under Miri)
        // and the branch boundaries.
        let step = if cfg!(miri) { 40_000_003 } else { 4099 };
        let mut bad = 0u32;
        let mut b = 0u32;
        loop {
            bad += u32::from(!same(f32::from_bits(b)));
            match b.checked_add(step) {
                Some(n) => b = n,
                None => break,
            }
        }
        for edge in
            [0x42ae_ac50u32, 0x3eb1_7218, 0x3f85_1592, 0x3900_0000, 0x42b1_7218, 0x42cf_f1b5]
        {
            for d in 0..8 {
                for sign in [0, 0x8000_0000] {
                    let e = (edge + d - 4) | sign;
                    bad += u32::from(!same(f32::from_bits(e)));
                }
            }
        }
        assert_eq!(bad, 0);
    }

    /// All 2^32 inputs (about a minute with optimisations): `cargo test -p chispa-core
    /// --release expf_is_libm_expf_everywhere -- --ignored`.
    #[test]
    #[ignore]
    fn expf_is_libm_expf_everywhere() {
        let bad = (0..=u32::MAX).filter(|b| !same(f32::from_bits(*b))).count();
        assert_eq!(bad, 0);
    }
}
