//! Arm DSP-extension int8 matmul (Cortex-M4/M7/M33/M55, ARMv7-A), bit-exact with
//! `generic::matvec_i8`.
//!
//! CMSIS-NN's inner loop: a word of four int8 is split by `SXTB16` into two words of two
//! sign-extended halfwords (bytes 0,2 and, rotated by 8, bytes 1,3), and `SMLAD` adds both
//! 16×16 products to the accumulator — 4 MACs in 6 instructions plus 2 loads, exact for every
//! i8 input (a pair is at most 32,768). Tail bytes are scalar; the f32 step is the scalar one.

use core::arch::asm;

use half::f16;

/// `acc + Σ_{i<4} w_i·x_i` for one word of four int8 each.
#[inline(always)]
fn mac4(acc: i32, w: u32, x: u32) -> i32 {
    let out: i32;
    // SAFETY: register-only arithmetic (no memory, no stack, no flags read); SXTB16 and SMLAD
    // exist on every target `build.rs` enables `chispa_dsp` for.
    unsafe {
        asm!(
            "sxtb16 {wa}, {w}",
            "sxtb16 {wb}, {w}, ror #8",
            "sxtb16 {xa}, {x}",
            "sxtb16 {xb}, {x}, ror #8",
            "smlad {acc}, {wa}, {xa}, {acc}",
            "smlad {acc}, {wb}, {xb}, {acc}",
            w = in(reg) w,
            x = in(reg) x,
            wa = out(reg) _,
            wb = out(reg) _,
            xa = out(reg) _,
            xb = out(reg) _,
            acc = inout(reg) acc => out,
            options(pure, nomem, nostack),
        );
    }
    out
}

/// Exact Σ w[j]·x[j].
#[inline]
fn group_sum(w: &[i8], x: &[i8]) -> i32 {
    let n = w.len().min(x.len());
    let (w, x) = (&w[..n], &x[..n]);
    let mut acc = 0i32;
    let mut wc = w.chunks_exact(4);
    let mut xc = x.chunks_exact(4);
    for (a, b) in (&mut wc).zip(&mut xc) {
        let wa = u32::from_le_bytes([a[0] as u8, a[1] as u8, a[2] as u8, a[3] as u8]);
        let xa = u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8]);
        acc = mac4(acc, wa, xa);
    }
    for (a, b) in wc.remainder().iter().zip(xc.remainder()) {
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
