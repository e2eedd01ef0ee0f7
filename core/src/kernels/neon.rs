//! AArch64 NEON int8 matmul, bit-exact with `generic::matvec_i8`.
//!
//! Per row and group: 8 weights at a time widened to i16 (`sxtl`) and multiply-accumulated
//! with the int16 activations into i32 lanes (`smlal`/`smlal2`, exact); scalar elements for the
//! tail; the lanes are summed exactly (`addv`); the integer sum over groups and the end of each row are
//! the scalar code's (`kernels::rows_by_group`).

use core::arch::aarch64::*;

use super::generic::I8Matrix;

/// Exact Σ w[j]·x[j] over `n` elements.
#[inline]
fn group_sum(w: &[i8], x: &[i16]) -> i32 {
    let n = w.len().min(x.len());
    let mut j = 0;
    // SAFETY: NEON is part of the AArch64 baseline; every load reads `j..j+8` with that range
    // inside both slices (checked by the loop condition).
    let mut s = unsafe {
        let mut acc = vdupq_n_s32(0);
        while j + 8 <= n {
            let a = vmovl_s8(vld1_s8(w.as_ptr().add(j)));
            let b = vld1q_s16(x.as_ptr().add(j));
            acc = vmlal_s16(acc, vget_low_s16(a), vget_low_s16(b));
            acc = vmlal_high_s16(acc, a, b);
            j += 8;
        }
        vaddvq_s32(acc)
    };
    for (a, b) in w[j..n].iter().zip(&x[j..n]) {
        s += *a as i32 * *b as i32;
    }
    s
}

/// Always: this file is built only for targets that have the instructions (see
/// `kernels::backends!`).
pub(super) fn detected() -> bool {
    true
}

/// NEON's int8 matmul into `k` (NEON is baseline on AArch64).
pub(super) fn plug(k: &mut super::Kernels) {
    k.matvec_i8 = matvec_i8;
}

/// See `generic::matvec_i8`.
///
/// # Safety
/// The lengths `Kernels::matvec_i8` checks hold (`w` holds `out.len()` rows, `xq` a row).
pub(super) unsafe fn matvec_i8(out: &mut [f32], w: &I8Matrix<'_>, xq: &[i16], x_scale: f32) {
    super::rows_by_group(out, w, xq, x_scale, group_sum);
}
