//! AArch64 NEON int8 matmul, bit-exact with `generic::matvec_i8`.
//!
//! Per row and group: 16 bytes at a time, `smull`/`smull2` (i8·i8 → i16, exact: |w·x| ≤ 16,384)
//! then `sadalp` (pairwise add into i32 lanes); an 8-byte step and scalar bytes for the tail; the
//! lanes are summed exactly (`addv`) and the f32 step is the scalar one, groups in order.

use core::arch::aarch64::*;

use half::f16;

/// Exact Σ w[j]·x[j] over `n` bytes.
#[inline]
fn group_sum(w: &[i8], x: &[i8]) -> i32 {
    let n = w.len().min(x.len());
    let mut j = 0;
    // SAFETY: NEON is part of the AArch64 baseline; every load reads `j..j+16` or `j..j+8`
    // with that range inside both slices (checked by the loop conditions).
    let mut s = unsafe {
        let mut acc = vdupq_n_s32(0);
        while j + 16 <= n {
            let a = vld1q_s8(w.as_ptr().add(j));
            let b = vld1q_s8(x.as_ptr().add(j));
            acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
            acc = vpadalq_s16(acc, vmull_high_s8(a, b));
            j += 16;
        }
        if j + 8 <= n {
            let a = vld1_s8(w.as_ptr().add(j));
            let b = vld1_s8(x.as_ptr().add(j));
            acc = vpadalq_s16(acc, vmull_s8(a, b));
            j += 8;
        }
        vaddvq_s32(acc)
    };
    for (a, b) in w[j..n].iter().zip(&x[j..n]) {
        s += *a as i32 * *b as i32;
    }
    s
}

/// See `generic::matvec_i8` (lengths checked by `kernels::matvec_i8_with`).
pub fn matvec_i8(
    out: &mut [f32],
    w: &[i8],
    ws: &[f16],
    xq: &[i8],
    xs: &[f32],
    cols: usize,
    group: usize,
) {
    super::rows_by_group(out, w, ws, xq, xs, cols, group, group_sum);
}
