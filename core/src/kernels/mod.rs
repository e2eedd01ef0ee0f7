//! Compute kernels: the contract every backend follows, and the selection point.
//!
//! # Contract (the numerics specification)
//!
//! * `quantize_i8`: per group of `group` inputs, `scale = max|x| / 127` and
//!   `q = round_half_away(x * (127 / max|x|))` clamped to ±127; an all-zero group gets scale 0.
//! * `matvec_i8`: for each output row, in group order, `acc += (Σ w·q as i32) as f32 * (ws * xs)`
//!   with `ws` the row's f16 scale widened to f32 and `xs` the activation scale. The i32 sum of
//!   one group is exact (no overflow for groups up to 131,072); the f32 accumulation order is
//!   group 0, 1, 2, … and every backend must keep it, so results are identical bit for bit.
//! * `matvec_f32`: for each row, `acc += w[j] * x[j]` for j = 0, 1, 2, … (no fused multiply-add).
//!
//! `generic` is the scalar twin and the specification; SIMD backends, when added, live one per
//! file beside it and are tested against it.

pub mod generic;

pub use generic::{dequantize_row_i8, matvec_f32, matvec_i8, quantize_i8};
