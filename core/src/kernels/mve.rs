//! Arm Helium (MVE, Cortex-M55/M85) int8 matmul, bit-exact with `generic::matvec_i8`.
//!
//! 16 int8 per step: two `VLDRB.8` loads and one `VMLADAVA.S8`, which multiplies the sixteen
//! lane pairs and adds every product to a general register exactly (32-bit, no saturation).
//! Tail bytes are scalar; the f32 step is the scalar one, groups in order.

use core::arch::asm;

use half::f16;

/// Exact Σ w[j]·x[j].
#[inline]
fn group_sum(w: &[i8], x: &[i8]) -> i32 {
    let n = w.len().min(x.len());
    let mut acc = 0i32;
    let mut j = 0;
    while j + 16 <= n {
        // SAFETY: reads 16 bytes at w[j..] and x[j..], inside both slices (j + 16 <= n); only
        // q0/q1 (d0–d3) are written and declared clobbered; MVE exists on every target
        // `build.rs` enables `chispa_mve` for. VMLADAVA needs an even accumulator: r0.
        unsafe {
            asm!(
                "vldrb.u8 q0, [{w}]",
                "vldrb.u8 q1, [{x}]",
                "vmladava.s8 r0, q0, q1",
                w = in(reg) w.as_ptr().add(j),
                x = in(reg) x.as_ptr().add(j),
                inout("r0") acc,
                out("d0") _,
                out("d1") _,
                out("d2") _,
                out("d3") _,
                options(pure, readonly, nostack),
            );
        }
        j += 16;
    }
    for (a, b) in w[j..n].iter().zip(&x[j..n]) {
        acc += *a as i32 * *b as i32;
    }
    acc
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
