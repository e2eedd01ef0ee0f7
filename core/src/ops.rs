//! The f32 operations around the matmuls, each with a fixed order of floating-point work, and
//! the matmul dispatch (f32, or int8 or int4 with activations quantized once per input vector):
//! the one place where a matrix's element type picks its kernel.

use crate::format::groups_per_row;
use crate::kernels::{self, Kernels};
use crate::model::{Matrix, Weights};

/// A matmul input: f32 as is, or quantized once and shared by every matrix that reads it.
pub(crate) enum Act<'b> {
    F32(&'b [f32]),
    /// The int16 elements and their one scale.
    I8(&'b [i16], f32),
}

/// Quantizes `x` (if `w` is int8 or int4) once for every matrix that reads it (the same int16
/// vector for both: a mixed file's matrices may differ in element type).
pub(crate) fn prepare<'b>(x: &'b [f32], w: &Matrix<'_>, xq: &'b mut [i16]) -> Act<'b> {
    match w.weights {
        Weights::F32(_) => Act::F32(x),
        Weights::I8 { .. } | Weights::I4 { .. } => {
            let q = &mut xq[..x.len()];
            let s = kernels::quantize_act(x, q);
            Act::I8(q, s)
        }
    }
}

/// `out = w · x`.
pub(crate) fn matvec(kern: &Kernels, out: &mut [f32], w: &Matrix<'_>, x: &Act<'_>) {
    match (w.weights, x) {
        (Weights::F32(m), Act::F32(x)) => kernels::matvec_f32(out, m, x),
        (Weights::I8 { q, row_scales, mults }, Act::I8(xq, xs)) => {
            let m = kernels::I8Matrix { q, row_scales, mults, cols: w.cols, group: w.group };
            kern.matvec_i8(out, &m, xq, *xs)
        }
        (Weights::I4 { q, row_scales, mults }, Act::I8(xq, xs)) => {
            let m = kernels::I4Matrix { q, row_scales, mults, cols: w.cols, group: w.group };
            kern.matvec_i4(out, &m, xq, *xs)
        }
        // `parse` guarantees f32 matrices only in f32 files, which quantize nothing.
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
        Weights::I4 { q, row_scales, mults } => {
            let (gpr, rb) = (groups_per_row(dim, table.group), dim.div_ceil(2));
            let (q, m) = (&q[row * rb..(row + 1) * rb], &mults[row * gpr..(row + 1) * gpr]);
            kernels::dequantize_row_i4(q, row_scales[row], m, table.group, out);
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

/// In-place softmax: subtract the maximum, exponentiate (the contract's `kernels::generic::exp`),
/// normalise (`kernels::generic::softmax`).
pub fn softmax(x: &mut [f32]) {
    kernels::generic::softmax(x);
}

/// `x += d`.
pub(crate) fn add(x: &mut [f32], d: &[f32]) {
    for (x, d) in x.iter_mut().zip(d) {
        *x += d;
    }
}
