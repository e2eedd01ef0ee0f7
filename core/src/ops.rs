//! The f32 operations around the matmuls, each with a fixed order of floating-point work, and
//! the matmul dispatch (f32 or int8 with activations quantized once per input vector).

use crate::format::groups_per_row;
use crate::kernels;
use crate::model::{Matrix, Weights};

/// A matmul input: f32 as is, or quantized once and shared by every matrix that reads it.
pub(crate) enum Act<'b> {
    F32(&'b [f32]),
    I8(&'b [i8], &'b [f32]),
}

/// Quantizes `x` (if `w` is int8) with the group of `w`, the first matrix that reads it.
pub(crate) fn prepare<'b>(
    x: &'b [f32],
    w: &Matrix<'_>,
    xq: &'b mut [i8],
    xs: &'b mut [f32],
) -> Act<'b> {
    match w.weights {
        Weights::F32(_) => Act::F32(x),
        Weights::I8 { .. } => {
            let g = w.group;
            let (q, s) = (&mut xq[..x.len()], &mut xs[..groups_per_row(x.len(), g)]);
            kernels::quantize_i8(x, g, q, s);
            Act::I8(q, s)
        }
    }
}

/// `out = w · x`.
pub(crate) fn matvec(out: &mut [f32], w: &Matrix<'_>, x: &Act<'_>) {
    match (w.weights, x) {
        (Weights::F32(m), Act::F32(x)) => kernels::matvec_f32(out, m, x),
        (Weights::I8 { q, scales }, Act::I8(xq, xs)) => {
            kernels::matvec_i8(out, q, scales, xq, xs, w.cols, w.group)
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
        Weights::I8 { q, scales } => {
            let gpr = groups_per_row(dim, table.group);
            let (q, s) = (&q[row * dim..(row + 1) * dim], &scales[row * gpr..(row + 1) * gpr]);
            kernels::dequantize_row_i8(q, s, table.group, out);
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

/// In-place softmax: subtract the maximum, exponentiate (`libm::expf`), normalise.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// `gate = silu(gate) ⊙ up` (SwiGLU).
pub(crate) fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g *= 1.0 / (1.0 + libm::expf(-*g));
        *g *= u;
    }
}

/// `x += d`.
pub(crate) fn add(x: &mut [f32], d: &[f32]) {
    for (x, d) in x.iter_mut().zip(d) {
        *x += d;
    }
}
