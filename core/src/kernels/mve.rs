//! Arm Helium (MVE, Cortex-M55/M85) int8 matmul, bit-exact with `generic::matvec_i8`.
//!
//! Integer sums: 16 int8 per step, two `VLDRB.8` loads and one `VMLADAV(A).S8`, which
//! multiplies the sixteen lane pairs and adds every product to a general register exactly
//! (32-bit, no saturation); groups of 8 load sign-extended halfwords (`VLDRB.S16`, `.S16`).
//!
//! The main path runs four rows at a time in one assembly loop: each group's four sums go to
//! the lanes of a vector and take the contract's f32 step lane by lane, `acc + isum · (ws ·
//! xs)` (the four f16 scales gathered with `VLDRH.U32` and widened by `VCVTB.F32.F16`, then
//! `VMUL`, `VMUL`, `VADD`: the same roundings as the scalar code, not fused). Helium's float
//! instructions flush subnormal inputs and results to zero (the architecture's "standard
//! FPSCR" behaviour, unlike scalar VFP), so the loop clears the FPSCR's input-denormal and
//! underflow flags first and checks them after: if either is set, the whole matmul is redone
//! by the exact row-by-row path below. NaN payloads may differ (any NaN stays a NaN, as the
//! tests accept). Other shapes (and rows beyond a multiple of four) take the row-by-row path:
//! `VMLADAVA` sums, scalar f32 steps, groups in order.

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

// Registers of the four-row loop (fixed: widening loads need r0–r7 bases, VMLADAV even
// accumulators): inputs r1, weights of rows 0–3 r2–r5, their sums r0, r8, r10, r12, scales
// r9, input scales r11, loop count lr; q0–q3 loads, q4 scale offsets, q5 scales, q6 sums,
// q7 the four rows' f32 accumulators.

/// One group of four rows, 16 inputs into the sums: `$op` is `vmladav` (first chunk) or
/// `vmladava`.
macro_rules! chunk16 {
    ($op:literal) => {
        concat!(
            "vldrb.u8 q0, [r1], #16\n",
            "vldrb.u8 q1, [r2], #16\n",
            $op,
            ".s8 r0, q1, q0\n",
            "vldrb.u8 q2, [r3], #16\n",
            $op,
            ".s8 r8, q2, q0\n",
            "vldrb.u8 q3, [r4], #16\n",
            $op,
            ".s8 r10, q3, q0\n",
            "vldrb.u8 q1, [r5], #16\n",
            $op,
            ".s8 r12, q1, q0\n",
        )
    };
}

/// Eight inputs, sign-extended to halfwords (groups of 8).
macro_rules! chunk8 {
    () => {
        concat!(
            "vldrb.s16 q0, [r1], #8\n",
            "vldrb.s16 q1, [r2], #8\n",
            "vmladav.s16 r0, q1, q0\n",
            "vldrb.s16 q2, [r3], #8\n",
            "vmladav.s16 r8, q2, q0\n",
            "vldrb.s16 q3, [r4], #8\n",
            "vmladav.s16 r10, q3, q0\n",
            "vldrb.s16 q1, [r5], #8\n",
            "vmladav.s16 r12, q1, q0\n",
        )
    };
}

/// The f32 step of one group for the four rows: sums to lanes (row i in lane i), the four
/// f16 scales gathered (`q4` holds the byte offsets of rows 0–3) and widened, times the
/// group's input scale (the next word at r11), times the sums, added to the accumulators.
macro_rules! f32_step {
    () => {
        concat!(
            "stm sp, {{r0, r8, r10, r12}}\n",
            "vldrw.u32 q6, [sp]\n",
            "vcvt.f32.s32 q6, q6\n",
            "vldrh.u32 q5, [r9, q4]\n",
            "add r9, r9, #2\n",
            "vcvtb.f32.f16 q5, q5\n",
            "ldr r0, [r11], #4\n",
            "vmul.f32 q5, q5, r0\n",
            "vmul.f32 q6, q6, q5\n",
            "vadd.f32 q7, q7, q6\n",
        )
    };
}

/// The short last group of k[6] inputs (a multiple of 4 below 16), predicated: no lane
/// beyond it is read.
macro_rules! tail {
    () => {
        concat!(
            "ldr lr, [sp, #40]\n",
            "vctp.8 lr\n",
            "vpstttt\n",
            "vldrbt.u8 q0, [r1]\n",
            "vldrbt.u8 q1, [r2]\n",
            "vmladavt.s8 r0, q1, q0\n",
            "vldrbt.u8 q2, [r3]\n",
            "vpstttt\n",
            "vmladavt.s8 r8, q2, q0\n",
            "vldrbt.u8 q3, [r4]\n",
            "vmladavt.s8 r10, q3, q0\n",
            "vldrbt.u8 q1, [r5]\n",
            "vpst\n",
            "vmladavt.s8 r12, q1, q0\n",
            "add r2, lr\n",
            "add r3, lr\n",
            "add r4, lr\n",
            "add r5, lr\n",
            f32_step!(),
        )
    };
}

/// Defines `$name(k, w, sc)`: a single-pass matmul of whole blocks of four rows whose groups
/// take `$group` and whose short last group takes `$tail`. `k` = [`cols`, bytes of three
/// rows' scales, bytes of one row's scales, inputs, input scales, whole groups per row
/// (>= 1), short group length (0: none), `out`, blocks]. Returns FPSCR after the loop.
macro_rules! blocks_kernel {
    ($name:ident, $group:expr, $tail:expr) => {
        /// # Safety
        /// See [`blocks`].
        #[inline(always)]
        unsafe fn $name(k: &[usize; 9], w: *const i8, sc: *const f16) -> u32 {
            let fpscr: u32;
            // SAFETY: the caller (`blocks`) guarantees every read (each block's four rows of
            // weights and scales, the inputs and their scales) and the `out` words written.
            // The parameters are copied from `k` to the stack and dropped at the end; every
            // register written is an operand or declared clobbered (all vector registers).
            unsafe {
                asm!(
                    // k[0..9] to the stack.
                    "add r0, r1, #16",
                    "ldm r0, {{r0, r3, r4, r5, r8}}",
                    "push {{r0, r3, r4, r5, r8}}",
                    "ldm r1, {{r0, r3, r4, r5}}",
                    "push {{r0, r3, r4, r5}}",
                    // 16 bytes of scratch below them: k[i] is at [sp, #16 + 4i].
                    "sub sp, sp, #16",
                    // Clear the cumulative FP exception flags (bits 0-4, 7).
                    "vmrs r0, fpscr",
                    "bic r0, r0, #0x9f",
                    "vmsr fpscr, r0",
                    // q4 = byte offsets of rows 0..3's scales: [0, 1, 2, 3] · stride.
                    "movs r0, #0",
                    "vidup.u32 q4, r0, #1",
                    "ldr r0, [sp, #24]",
                    "vmul.i32 q4, q4, r0",
                    "2:",
                    "ldr r1, [sp, #28]",
                    "ldr r11, [sp, #32]",
                    "ldr r0, [sp, #16]",
                    "add r3, r2, r0",
                    "add r4, r3, r0",
                    "add r5, r4, r0",
                    "vmov.i32 q7, #0",
                    "ldr lr, [sp, #36]",
                    "dls lr, lr",
                    "3:",
                    $group,
                    f32_step!(),
                    "le lr, 3b",
                    $tail,
                    "ldr r0, [sp, #44]",
                    "vstrw.32 q7, [r0], #16",
                    "str r0, [sp, #44]",
                    "mov r2, r5",
                    "ldr r0, [sp, #20]",
                    "add r9, r0",
                    "ldr r0, [sp, #48]",
                    "subs r0, #1",
                    "str r0, [sp, #48]",
                    "bne 2b",
                    "add sp, sp, #52",
                    "vmrs r0, fpscr",
                    inout("r1") k.as_ptr() => _,
                    inout("r2") w => _,
                    inout("r9") sc => _,
                    lateout("r0") fpscr,
                    out("r3") _,
                    out("r4") _,
                    out("r5") _,
                    out("r8") _,
                    out("r10") _,
                    out("r11") _,
                    out("r12") _,
                    out("lr") _,
                    out("d0") _,
                    out("d1") _,
                    out("d2") _,
                    out("d3") _,
                    out("d4") _,
                    out("d5") _,
                    out("d6") _,
                    out("d7") _,
                    out("d8") _,
                    out("d9") _,
                    out("d10") _,
                    out("d11") _,
                    out("d12") _,
                    out("d13") _,
                    out("d14") _,
                    out("d15") _,
                );
            }
            fpscr
        }
    };
}

blocks_kernel!(blocks_g8, chunk8!(), "");
blocks_kernel!(blocks_g8_tail, chunk8!(), tail!());
blocks_kernel!(blocks_g16, chunk16!("vmladav"), "");
blocks_kernel!(blocks_g16_tail, chunk16!("vmladav"), tail!());
blocks_kernel!(blocks_g32, concat!(chunk16!("vmladav"), chunk16!("vmladava")), "");
blocks_kernel!(blocks_g32_tail, concat!(chunk16!("vmladav"), chunk16!("vmladava")), tail!());

/// The four-row assembly path for groups of 8, 16 and 32 (a short last group below 16, a
/// multiple of 4): whole blocks of four rows; returns the rows done (0: nothing done, as for
/// other shapes, or when a flushed subnormal made the lanes differ from the scalar code).
fn blocks(
    out: &mut [f32],
    w: &[i8],
    ws: &[f16],
    xq: &[i8],
    xs: &[f32],
    cols: usize,
    group: usize,
) -> usize {
    let (full, last) = (cols / group, cols % group);
    let groups = full + usize::from(last > 0);
    let n_blocks = out.len() / 4;
    if !matches!(group, 8 | 16 | 32)
        || full == 0
        || n_blocks == 0
        || last % 4 != 0
        || last >= 16
        || w.len() < out.len() * cols
        || ws.len() < out.len() * groups
        || xs.len() < groups
        || xq.len() < cols
    {
        return 0;
    }
    let k = [
        cols,
        3 * groups * 2,
        groups * 2,
        xq.as_ptr() as usize,
        xs.as_ptr() as usize,
        full,
        last,
        out.as_mut_ptr() as usize,
        n_blocks,
    ];
    let (wp, sc) = (w.as_ptr(), ws.as_ptr());
    // SAFETY: `out` holds `4 · n_blocks` rows, `w` their `cols` weights each and `ws` their
    // `groups` scales each; `xq` and `xs` hold one row's inputs and scales; `full >= 1`.
    let fpscr = unsafe {
        match (group, last > 0) {
            (8, false) => blocks_g8(&k, wp, sc),
            (8, true) => blocks_g8_tail(&k, wp, sc),
            (16, false) => blocks_g16(&k, wp, sc),
            (16, true) => blocks_g16_tail(&k, wp, sc),
            (32, false) => blocks_g32(&k, wp, sc),
            _ => blocks_g32_tail(&k, wp, sc),
        }
    };
    // IDC (bit 7) or UFC (bit 3): a subnormal was flushed somewhere; redo exactly.
    if fpscr & 0x88 != 0 {
        return 0;
    }
    4 * n_blocks
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
    let done = blocks(out, w, ws, xq, xs, cols, group);
    let groups = cols.div_ceil(group);
    let (out, w, ws) = (&mut out[done..], &w[done * cols..], &ws[done * groups..]);
    super::rows_by_group(out, w, ws, xq, xs, cols, group, group_sum);
}
