//! Arm DSP-extension int8 matmul (Cortex-M4/M7/M33/M55, ARMv7-A), bit-exact with
//! `generic::matvec_i8`.
//!
//! CMSIS-NN's inner loop: a word of four int8 is split by `SXTB16` into two words of two
//! sign-extended halfwords (bytes 0,2 and, rotated by 8, bytes 1,3), and `SMLAD` adds both
//! 16×16 products to the accumulator, exact for every i8 input (a pair is at most 32,768).
//!
//! The fast path (every group a whole number of words, word-aligned rows) splits the
//! activations once per call, into a buffer on the stack (`XBUF_COLS` inputs at a time), so a
//! row's eight inputs cost one `LDM` of four pre-split words, one `LDRD` of eight weights, four
//! `SXTB16` and four `SMLAD`: 10 instructions per 8 MACs. Each group then takes the scalar f32
//! step of the contract, groups in order; the f16 scale is widened by `VCVTB.F32.F16` where the
//! FPU has it (exact: every f16 is an f32). Other shapes take the word-at-a-time loop below.

use core::arch::asm;
use core::mem::MaybeUninit;

use half::f16;

/// Inputs split per pass of the fast path (two words per four inputs on the stack).
const XBUF_COLS: usize = 256;

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

/// Exact Σ w[j]·x[j] (any length, any alignment).
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

/// `h` widened to f32, exactly as `half` does: finite values by placing the f16 fields in an
/// f32 and multiplying by 2^112 (exact, subnormals included), infinities and NaNs by `half`.
#[inline(always)]
fn widen(h: f16) -> f32 {
    let b = u32::from(h.to_bits());
    if b & 0x7c00 == 0x7c00 {
        return h.to_f32();
    }
    f32::from_bits(((b & 0x8000) << 16) | ((b & 0x7fff) << 13)) * f32::from_bits(0x7780_0000)
}

/// `acc + isum · (ws · xs)`: `kernels::group_step` with [`widen`].
#[inline(always)]
fn step(acc: f32, isum: i32, ws: f16, xs: f32) -> f32 {
    acc + isum as f32 * (widen(ws) * xs)
}

/// Splits `x` (a whole number of words) into `buf`: per word, `SXTB16` of bytes 0,2 then of
/// bytes 1,3.
#[inline(always)]
fn split(x: &[i8], buf: &mut [MaybeUninit<u32>]) {
    for (w, o) in x.chunks_exact(4).zip(buf.chunks_exact_mut(2)) {
        let v = u32::from_le_bytes([w[0] as u8, w[1] as u8, w[2] as u8, w[3] as u8]);
        let (a, b): (u32, u32);
        // SAFETY: register-only arithmetic; SXTB16 exists wherever `chispa_dsp` is set.
        unsafe {
            asm!(
                "sxtb16 {a}, {v}",
                "sxtb16 {b}, {v}, ror #8",
                v = in(reg) v,
                a = out(reg) a,
                b = lateout(reg) b,
                options(pure, nomem, nostack),
            );
        }
        o[0].write(a);
        o[1].write(b);
    }
}

/// `acc + Σ` of eight products: weights at `*w` (8 bytes, word-aligned), split inputs at `*x`
/// (4 words); both pointers advance. Fixed registers because `LDM` lists ascend (this also
/// assembles in A32, where `LDRD` would need an even/odd pair).
///
/// # Safety
/// `*w` is word-aligned with 8 readable bytes, `*x` is word-aligned with 4 readable words.
#[inline(always)]
unsafe fn mac8(acc: i32, w: &mut *const u8, x: &mut *const u32) -> i32 {
    let out: i32;
    // SAFETY: the caller guarantees the 8 weight bytes and the 4 input words, both aligned as
    // LDM needs; r0–r5 are declared clobbered; no stack, flags untouched.
    unsafe {
        asm!(
            "ldm {x}!, {{r0, r1, r2, r3}}",
            "ldm {w}!, {{r4, r5}}",
            "sxtb16 {t}, r4",
            "sxtb16 r4, r4, ror #8",
            "smlad {acc}, {t}, r0, {acc}",
            "smlad {acc}, r4, r1, {acc}",
            "sxtb16 {t}, r5",
            "sxtb16 r5, r5, ror #8",
            "smlad {acc}, {t}, r2, {acc}",
            "smlad {acc}, r5, r3, {acc}",
            x = inout(reg) *x,
            w = inout(reg) *w,
            t = out(reg) _,
            acc = inout(reg) acc => out,
            out("r0") _,
            out("r1") _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            options(readonly, nostack, preserves_flags),
        );
    }
    out
}

/// `acc + Σ` of four products: weights at `*w` (one word), split inputs at `*x` (2 words).
///
/// # Safety
/// `*w` is word-aligned with 4 readable bytes, `*x` is word-aligned with 2 readable words.
#[inline(always)]
unsafe fn mac4p(acc: i32, w: &mut *const u8, x: &mut *const u32) -> i32 {
    let out: i32;
    // SAFETY: the caller guarantees the weight word and the 2 input words, aligned; r0, r1, r4
    // are declared clobbered; no stack, flags untouched.
    unsafe {
        asm!(
            "ldm {x}!, {{r0, r1}}",
            "ldr r4, [{w}], #4",
            "sxtb16 {t}, r4",
            "sxtb16 r4, r4, ror #8",
            "smlad {acc}, {t}, r0, {acc}",
            "smlad {acc}, r4, r1, {acc}",
            x = inout(reg) *x,
            w = inout(reg) *w,
            t = out(reg) _,
            acc = inout(reg) acc => out,
            out("r0") _,
            out("r1") _,
            out("r4") _,
            options(readonly, nostack, preserves_flags),
        );
    }
    out
}

/// Exact sum of `n` products (`n` a multiple of 4), pointers advanced past them.
///
/// # Safety
/// As [`mac8`], for `n` bytes and `n / 2` words.
#[inline(always)]
unsafe fn sum_words(n: usize, w: &mut *const u8, x: &mut *const u32) -> i32 {
    let mut acc = 0i32;
    for _ in 0..n / 8 {
        // SAFETY: within the caller's `n` bytes / `n / 2` words.
        acc = unsafe { mac8(acc, w, x) };
    }
    if n & 4 != 0 {
        // SAFETY: the last word of the caller's range.
        acc = unsafe { mac4p(acc, w, x) };
    }
    acc
}

/// One pass of the fast path over columns `c0..c0 + xb.len()` (whole groups, `xb` split),
/// groups `g0..`, for every row; `G` is the group (0: read `group`).
///
/// # Safety
/// `kernels::matvec_i8_with`'s length checks hold, `w` is word-aligned, `cols` and `group`
/// are multiples of 4, `c0` a multiple of `group`, and `xb` holds the split inputs of the pass.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn pass<const G: usize>(
    out: &mut [f32],
    w: &[i8],
    ws: &[f16],
    xs: &[f32],
    cols: usize,
    group: usize,
    c0: usize,
    xb: &[u32],
) {
    let group = if G == 0 { group } else { G };
    let n = xb.len() * 2; // columns in this pass
    let groups = cols.div_ceil(group);
    let (full, last) = (n / group, n % group);
    let g0 = c0 / group;
    let xs = &xs[g0..g0 + full + usize::from(last > 0)];
    for (r, o) in out.iter_mut().enumerate() {
        // SAFETY: row r's columns c0..c0 + n are inside `w` (checked lengths).
        let mut wp = unsafe { w.as_ptr().add(r * cols + c0) } as *const u8;
        let sr = &ws[r * groups + g0..r * groups + g0 + xs.len()];
        let mut xp = xb.as_ptr();
        let mut acc = if c0 == 0 { 0.0 } else { *o };
        for (s, x_scale) in sr[..full].iter().zip(&xs[..full]) {
            // SAFETY: `group` bytes of row r and `group / 2` split words remain in the pass.
            let isum = unsafe { sum_words(group, &mut wp, &mut xp) };
            acc = step(acc, isum, *s, *x_scale);
        }
        if last > 0 {
            // SAFETY: the short last group, inside the pass likewise.
            let isum = unsafe { sum_words(last, &mut wp, &mut xp) };
            acc = step(acc, isum, sr[full], xs[full]);
        }
        *o = acc;
    }
}

/// Eight products of one row into `{acc}`: four split input words (`LDM` into r0–r3), two
/// weight words (r4, r5), four `SXTB16`, four `SMLAD`; `$first` starts the sum (`SMUAD`) or
/// continues it.
#[cfg(chispa_fp16)]
macro_rules! mac8 {
    ($first:literal) => {
        concat!(
            "ldm {xp}!, {{r0, r1, r2, r3}}\n",
            "ldm {wp}!, {{r4, r5}}\n",
            "sxtb16 {t}, r4\n",
            "sxtb16 r4, r4, ror #8\n",
            $first,
            "\n",
            "smlad {acc}, r4, r1, {acc}\n",
            "sxtb16 {t}, r5\n",
            "sxtb16 r5, r5, ror #8\n",
            "smlad {acc}, {t}, r2, {acc}\n",
            "smlad {acc}, r5, r3, {acc}\n",
        )
    };
}

/// The f32 step of one group, the contract's `acc + isum · (ws · xs)` with `acc` in s2:
/// widen the row's next f16 scale (`VCVTB`, exact), multiply by the group's input scale (the
/// word after its split inputs), then `VMLA`, which rounds the product before the addition
/// (not fused), so it is the scalar code's multiply and add.
#[cfg(chispa_fp16)]
macro_rules! f32_step {
    () => {
        concat!(
            "ldrh {t}, [{sc}], #2\n",
            "vmov s0, {t}\n",
            "vcvtb.f32.f16 s0, s0\n",
            "vldmia {xp}!, {{s1}}\n",
            "vmul.f32 s0, s0, s1\n",
            "vmov s1, {acc}\n",
            "vcvt.f32.s32 s1, s1\n",
            "vmla.f32 s2, s1, s0\n",
        )
    };
}

/// A short last group of `[sp, #8]` words (0: none), four products per iteration.
#[cfg(chispa_fp16)]
macro_rules! tail {
    () => {
        concat!(
            "ldr {gc}, [sp, #8]\n",
            "cmp {gc}, #0\n",
            "beq 5f\n",
            "movs {acc}, #0\n",
            "4:\n",
            "ldm {xp}!, {{r0, r1}}\n",
            "ldr r4, [{wp}], #4\n",
            "sxtb16 {t}, r4\n",
            "sxtb16 r4, r4, ror #8\n",
            "smlad {acc}, {t}, r0, {acc}\n",
            "smlad {acc}, r4, r1, {acc}\n",
            "subs {gc}, {gc}, #1\n",
            "bne 4b\n",
            f32_step!(),
            "5:\n",
        )
    };
}

/// Defines `$name(k, wp, sc)`: every row of a single-pass matmul whose groups take `$group`
/// (the unrolled products of one whole group) and whose short last group, if any, takes
/// `$tail`. `k` = [split-input buffer, whole groups per row (≥ 1), words in the short group,
/// `out` start, `out` end]; `wp` and `sc` point at row 0's weights and f16 scales, and every
/// later row follows the one before it in both.
#[cfg(chispa_fp16)]
macro_rules! rows_kernel {
    ($name:ident, $group:expr, $tail:expr) => {
        /// # Safety
        /// See [`rows_asm`].
        #[inline(always)]
        unsafe fn $name(k: [usize; 5], wp: *const u8, sc: *const f16) {
            // SAFETY: the caller (`rows_asm`) guarantees every read: the rows' weights
            // (word-aligned, `LDM`), their scales, the split buffer, and the `out` words
            // written. The asm saves and restores the FP registers it uses (s0–s2) and pops
            // what it pushes; r0–r5 are declared clobbered, the rest are operands.
            unsafe {
                asm!(
                    "vpush {{s0, s1, s2}}",
                    "push {{r0, r1, r2, r3, r4}}",
                    "2:",
                    "ldr {xp}, [sp]",
                    "ldr {gc}, [sp, #4]",
                    "movs {t}, #0",
                    "vmov s2, {t}",
                    "3:",
                    $group,
                    f32_step!(),
                    "subs {gc}, {gc}, #1",
                    "bne 3b",
                    $tail,
                    "ldr {t}, [sp, #12]",
                    "vstmia {t}!, {{s2}}",
                    "str {t}, [sp, #12]",
                    "ldr {gc}, [sp, #16]",
                    "cmp {t}, {gc}",
                    "bne 2b",
                    "add sp, sp, #20",
                    "vpop {{s0, s1, s2}}",
                    wp = inout(reg) wp => _,
                    sc = inout(reg) sc => _,
                    xp = out(reg) _,
                    gc = out(reg) _,
                    t = out(reg) _,
                    acc = out(reg) _,
                    inout("r0") k[0] => _,
                    inout("r1") k[1] => _,
                    inout("r2") k[2] => _,
                    inout("r3") k[3] => _,
                    inout("r4") k[4] => _,
                    out("r5") _,
                );
            }
        }
    };
}

#[cfg(chispa_fp16)]
rows_kernel!(rows_g8, mac8!("smuad {acc}, {t}, r0"), "");
#[cfg(chispa_fp16)]
rows_kernel!(rows_g8_tail, mac8!("smuad {acc}, {t}, r0"), tail!());
#[cfg(chispa_fp16)]
rows_kernel!(
    rows_g16,
    concat!(mac8!("smuad {acc}, {t}, r0"), mac8!("smlad {acc}, {t}, r0, {acc}")),
    ""
);
#[cfg(chispa_fp16)]
rows_kernel!(
    rows_g16_tail,
    concat!(mac8!("smuad {acc}, {t}, r0"), mac8!("smlad {acc}, {t}, r0, {acc}")),
    tail!()
);
#[cfg(chispa_fp16)]
rows_kernel!(
    rows_g32,
    concat!(
        mac8!("smuad {acc}, {t}, r0"),
        mac8!("smlad {acc}, {t}, r0, {acc}"),
        mac8!("smlad {acc}, {t}, r0, {acc}"),
        mac8!("smlad {acc}, {t}, r0, {acc}")
    ),
    ""
);
#[cfg(chispa_fp16)]
rows_kernel!(
    rows_g32_tail,
    concat!(
        mac8!("smuad {acc}, {t}, r0"),
        mac8!("smlad {acc}, {t}, r0, {acc}"),
        mac8!("smlad {acc}, {t}, r0, {acc}"),
        mac8!("smlad {acc}, {t}, r0, {acc}")
    ),
    tail!()
);

/// Split-input words (and one scale word per group) the single-pass kernel holds.
#[cfg(chispa_fp16)]
const KBUF_WORDS: usize = XBUF_COLS / 2 + XBUF_COLS / 8 + 1;

/// The single-pass assembly kernels (groups of 8, 16, 32; `cols <= XBUF_COLS`): splits `xq`
/// group by group, each group's words followed by its input scale, then runs every row.
/// Returns false (nothing done) for other shapes.
#[cfg(chispa_fp16)]
fn rows_asm(
    out: &mut [f32],
    w: &[i8],
    ws: &[f16],
    xq: &[i8],
    xs: &[f32],
    cols: usize,
    group: usize,
) -> bool {
    let (full, last) = (cols / group, cols % group);
    let groups = full + usize::from(last > 0);
    if !matches!(group, 8 | 16 | 32) || cols > XBUF_COLS || full == 0 || out.is_empty() {
        return false;
    }
    // Whole rows, their scales and the inputs must be there (`matvec_i8_with` checks them
    // too; the kernel relies on them).
    if w.len() < out.len() * cols || ws.len() < out.len() * groups || xs.len() < groups {
        return false;
    }
    // Written before it is read (the first `at` words); not zeroed, which would cost more
    // than the split.
    let mut buf = [MaybeUninit::<u32>::uninit(); KBUF_WORDS];
    let mut at = 0;
    for (xg, s) in xq[..cols].chunks(group).zip(xs) {
        split(xg, &mut buf[at..at + xg.len() / 2]);
        buf[at + xg.len() / 2].write(s.to_bits());
        at += xg.len() / 2 + 1;
    }
    let range = out.as_mut_ptr_range();
    let k = [buf.as_ptr() as usize, full, last / 4, range.start as usize, range.end as usize];
    let (wp, sc) = (w.as_ptr() as *const u8, ws.as_ptr());
    // SAFETY: `w` is word-aligned and holds `out.len()` rows of `cols` (a multiple of 4)
    // bytes, `ws` their `groups` scales each, `buf` the split inputs and scales of every group
    // (`at` words), `out` the rows written; `full >= 1` and `out` is not empty, as the loops
    // need.
    unsafe {
        match (group, last > 0) {
            (8, false) => rows_g8(k, wp, sc),
            (8, true) => rows_g8_tail(k, wp, sc),
            (16, false) => rows_g16(k, wp, sc),
            (16, true) => rows_g16_tail(k, wp, sc),
            (32, false) => rows_g32(k, wp, sc),
            _ => rows_g32_tail(k, wp, sc),
        }
    }
    true
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
    let fast = cols % 4 == 0
        && group % 4 == 0
        && group <= XBUF_COLS
        && (w.as_ptr() as usize) % 4 == 0
        && w.len() >= out.len() * cols
        && ws.len() >= out.len() * cols.div_ceil(group)
        && xs.len() >= cols.div_ceil(group)
        && xq.len() >= cols;
    if !fast {
        return super::rows_by_group(out, w, ws, xq, xs, cols, group, group_sum);
    }
    #[cfg(chispa_fp16)]
    if rows_asm(out, w, ws, xq, xs, cols, group) {
        return;
    }
    let mut buf = [MaybeUninit::<u32>::uninit(); XBUF_COLS / 2];
    let per_pass = XBUF_COLS / group * group;
    let mut c0 = 0;
    while c0 < cols {
        let n = per_pass.min(cols - c0);
        let xb = &mut buf[..n / 2];
        split(&xq[c0..c0 + n], xb);
        // SAFETY: `split` wrote all `n / 2` words (`n` is a multiple of 4).
        let xb = unsafe { &*(xb as *const [MaybeUninit<u32>] as *const [u32]) };
        // SAFETY: the conditions of `fast` are `pass`'s; c0 advances by whole groups.
        // Unrolled for the common groups where this is the main path (no `chispa_fp16`);
        // with it, only other shapes come here and one loop keeps the code small.
        unsafe {
            match group {
                #[cfg(not(chispa_fp16))]
                8 => pass::<8>(out, w, ws, xs, cols, group, c0, xb),
                #[cfg(not(chispa_fp16))]
                16 => pass::<16>(out, w, ws, xs, cols, group, c0, xb),
                #[cfg(not(chispa_fp16))]
                32 => pass::<32>(out, w, ws, xs, cols, group, c0, xb),
                _ => pass::<0>(out, w, ws, xs, cols, group, c0, xb),
            }
        }
        c0 += n;
    }
}

/// Eight int8 at `{p}` (one head's elements of a cached row) widened to f32 in s0–s7, then
/// `{p}` moved to the next row (`{stride}` bytes on): `LDRSB` pairs, `VMOV` two core registers
/// to two S registers, `VCVT` (exact: every i8 is an f32).
#[cfg(chispa_fp16)]
macro_rules! widen8 {
    () => {
        concat!(
            "ldrsb {t0}, [{p}]\n",
            "ldrsb {t1}, [{p}, #1]\n",
            "vmov s0, s1, {t0}, {t1}\n",
            "ldrsb {t0}, [{p}, #2]\n",
            "ldrsb {t1}, [{p}, #3]\n",
            "vmov s2, s3, {t0}, {t1}\n",
            "ldrsb {t0}, [{p}, #4]\n",
            "ldrsb {t1}, [{p}, #5]\n",
            "vmov s4, s5, {t0}, {t1}\n",
            "ldrsb {t0}, [{p}, #6]\n",
            "ldrsb {t1}, [{p}, #7]\n",
            "vmov s6, s7, {t0}, {t1}\n",
            "add {p}, {p}, {stride}\n",
            "vcvt.f32.s32 s0, s0\n",
            "vcvt.f32.s32 s1, s1\n",
            "vcvt.f32.s32 s2, s2\n",
            "vcvt.f32.s32 s3, s3\n",
            "vcvt.f32.s32 s4, s4\n",
            "vcvt.f32.s32 s5, s5\n",
            "vcvt.f32.s32 s6, s6\n",
            "vcvt.f32.s32 s7, s7\n",
        )
    };
}

/// `$a += $qa · s_i` and `$b += $qb · s_i` for i = 0..8 (s0–s7), i in order, with the two
/// heads' eight factors in s16–s23 and s24–s31. `VMLA` rounds the product before adding (it is
/// not fused), so each step is the scalar `x + q · k`.
#[cfg(chispa_fp16)]
macro_rules! mla16 {
    ($a:literal, $b:literal) => {
        concat!(
            "vmla.f32 ",
            $a,
            ", s16, s0\n",
            "vmla.f32 ",
            $b,
            ", s24, s0\n",
            "vmla.f32 ",
            $a,
            ", s17, s1\n",
            "vmla.f32 ",
            $b,
            ", s25, s1\n",
            "vmla.f32 ",
            $a,
            ", s18, s2\n",
            "vmla.f32 ",
            $b,
            ", s26, s2\n",
            "vmla.f32 ",
            $a,
            ", s19, s3\n",
            "vmla.f32 ",
            $b,
            ", s27, s3\n",
            "vmla.f32 ",
            $a,
            ", s20, s4\n",
            "vmla.f32 ",
            $b,
            ", s28, s4\n",
            "vmla.f32 ",
            $a,
            ", s21, s5\n",
            "vmla.f32 ",
            $b,
            ", s29, s5\n",
            "vmla.f32 ",
            $a,
            ", s22, s6\n",
            "vmla.f32 ",
            $b,
            ", s30, s6\n",
            "vmla.f32 ",
            $a,
            ", s23, s7\n",
            "vmla.f32 ",
            $b,
            ", s31, s7\n",
        )
    };
}

/// See `generic::scores2_i8` (lengths checked by `kernels::scores2_i8_with`): each row widened
/// once, the two heads' queries held in s16–s31.
#[cfg(chispa_fp16)]
#[allow(clippy::too_many_arguments)]
pub fn scores2_i8(
    rows: &[i8],
    row_len: usize,
    off: usize,
    row_scales: &[f32],
    q_a: &[f32; 8],
    q_b: &[f32; 8],
    scale: f32,
    att_a: &mut [f32],
    att_b: &mut [f32],
) {
    let n = att_a.len().min(att_b.len());
    if n == 0 {
        return;
    }
    // SAFETY: `kernels::scores2_i8_with` checked that `rows` holds `n` rows of `row_len` with
    // `off + 8 <= row_len` and `row_scales` `n` scales; `att_a`/`att_b` take `n` words each.
    // The FP registers used (s0–s13, s16–s31) are saved and restored, the core registers are
    // operands.
    unsafe {
        asm!(
            "vpush {{s0-s13}}",
            "vpush {{s16-s31}}",
            "vldm {qa}, {{s16-s23}}",
            "vldm {qb}, {{s24-s31}}",
            "vmov s12, {t0}",
            "movs {t0}, #0",
            "vmov s13, {t0}",
            "2:",
            widen8!(),
            "vmov.f32 s8, s13",
            "vmov.f32 s9, s13",
            mla16!("s8", "s9"),
            "vldmia {ks}!, {{s10}}",
            "vmul.f32 s8, s8, s10",
            "vmul.f32 s9, s9, s10",
            "vdiv.f32 s8, s8, s12",
            "vdiv.f32 s9, s9, s12",
            "vstmia {oa}!, {{s8}}",
            "vstmia {ob}!, {{s9}}",
            "subs {n}, {n}, #1",
            "bne 2b",
            "vpop {{s16-s31}}",
            "vpop {{s0-s13}}",
            p = inout(reg) rows.as_ptr().add(off) => _,
            stride = in(reg) row_len,
            ks = inout(reg) row_scales.as_ptr() => _,
            qa = in(reg) q_a.as_ptr(),
            qb = in(reg) q_b.as_ptr(),
            oa = inout(reg) att_a.as_mut_ptr() => _,
            ob = inout(reg) att_b.as_mut_ptr() => _,
            n = inout(reg) n => _,
            t0 = inout(reg) scale.to_bits() => _,
            t1 = out(reg) _,
        );
    }
}

/// See `generic::mix2_i8` (lengths checked by `kernels::mix2_i8_with`): each row widened once,
/// the two heads' outputs held in s16–s31.
#[cfg(chispa_fp16)]
#[allow(clippy::too_many_arguments)]
pub fn mix2_i8(
    rows: &[i8],
    row_len: usize,
    off: usize,
    row_scales: &[f32],
    att_a: &[f32],
    att_b: &[f32],
    out_a: &mut [f32; 8],
    out_b: &mut [f32; 8],
) {
    let n = att_a.len().min(att_b.len());
    if n == 0 {
        return;
    }
    // SAFETY: as `scores2_i8`: `n` rows and scales checked by `kernels::mix2_i8_with`, `n`
    // weights in each of `att_a`/`att_b`, 8 words in each output; the FP registers used are
    // saved and restored, the core registers are operands.
    unsafe {
        asm!(
            "vpush {{s0-s10}}",
            "vpush {{s16-s31}}",
            "vldm {oa}, {{s16-s23}}",
            "vldm {ob}, {{s24-s31}}",
            "2:",
            widen8!(),
            "vldmia {aa}!, {{s8}}",
            "vldmia {ab}!, {{s9}}",
            "vldmia {vs}!, {{s10}}",
            "vmul.f32 s8, s8, s10",
            "vmul.f32 s9, s9, s10",
            "vmla.f32 s16, s8, s0",
            "vmla.f32 s24, s9, s0",
            "vmla.f32 s17, s8, s1",
            "vmla.f32 s25, s9, s1",
            "vmla.f32 s18, s8, s2",
            "vmla.f32 s26, s9, s2",
            "vmla.f32 s19, s8, s3",
            "vmla.f32 s27, s9, s3",
            "vmla.f32 s20, s8, s4",
            "vmla.f32 s28, s9, s4",
            "vmla.f32 s21, s8, s5",
            "vmla.f32 s29, s9, s5",
            "vmla.f32 s22, s8, s6",
            "vmla.f32 s30, s9, s6",
            "vmla.f32 s23, s8, s7",
            "vmla.f32 s31, s9, s7",
            "subs {n}, {n}, #1",
            "bne 2b",
            "vstm {oa}, {{s16-s23}}",
            "vstm {ob}, {{s24-s31}}",
            "vpop {{s16-s31}}",
            "vpop {{s0-s10}}",
            p = inout(reg) rows.as_ptr().add(off) => _,
            stride = in(reg) row_len,
            vs = inout(reg) row_scales.as_ptr() => _,
            aa = inout(reg) att_a.as_ptr() => _,
            ab = inout(reg) att_b.as_ptr() => _,
            oa = in(reg) out_a.as_mut_ptr(),
            ob = in(reg) out_b.as_mut_ptr(),
            n = inout(reg) n => _,
            t0 = out(reg) _,
            t1 = out(reg) _,
        );
    }
}

/// `libm::expf`'s constants (by their bits) and the others the softmax loop keeps in
/// s16–s23: 1/ln2, -1/2, ln2 (high part), ln2 (low part), P1, P2, 2, 1.
#[cfg(chispa_fp16)]
static EXP_CONSTANTS: [u32; 8] = [
    0x3fb8_aa3b,
    0xbf00_0000,
    0x3f31_7200,
    0x35bf_be8e,
    0x3e2a_aa8f,
    0xbb35_5215,
    0x4000_0000,
    0x3f80_0000,
];

/// `x[i] = expf(x[i] - max)` and `sum += x[i]` for i in order while `x[i] - max` is in
/// `expf`'s main range with a negative sign (1.5·ln2 < |x| < 87.34: `k = (x/ln2 - 1/2) as i32`,
/// -126 <= k <= -2, and `scalbnf(y, k)` is the one multiplication by 2^k); stops at the first
/// other value. Returns how many were done and the sum. The operations are
/// `crate::ops::expf`'s, in its order (`VCVT.S32.F32` truncates and saturates like `as i32`).
#[cfg(chispa_fp16)]
fn exp_run(x: &mut [f32], max: f32, sum: f32) -> (usize, f32) {
    let n = x.len();
    if n == 0 {
        return (0, sum);
    }
    let start = x.as_mut_ptr();
    let (end, sum_bits): (*mut f32, u32);
    // SAFETY: reads and writes `x[..n]` through `p` (one word per iteration, at most `n`);
    // reads the 8 words of `EXP_CONSTANTS`; the FP registers used (s0–s8, s16–s25) are saved
    // and restored; the core registers are operands.
    unsafe {
        asm!(
            "vpush {{s0-s8}}",
            "vpush {{s16-s25}}",
            "vldm {c}, {{s16-s23}}",
            "vmov s24, {mx}",
            "vmov s25, {sm}",
            "2:",
            "vldr s0, [{p}]",
            "vsub.f32 s0, s0, s24",
            "vmov {b}, s0",
            "cmp {b}, {lo}",
            "bls 3f",
            "cmp {b}, {hi}",
            "bhs 3f",
            "vmul.f32 s1, s0, s16",
            "vadd.f32 s1, s1, s17",
            "vcvt.s32.f32 s1, s1",
            "vmov {b}, s1",
            "vcvt.f32.s32 s1, s1",
            "vmul.f32 s2, s1, s18",
            "vsub.f32 s2, s0, s2",
            "vmul.f32 s3, s1, s19",
            "vsub.f32 s4, s2, s3",
            "vmul.f32 s5, s4, s4",
            "vmul.f32 s6, s5, s21",
            "vadd.f32 s6, s20, s6",
            "vmul.f32 s6, s5, s6",
            "vsub.f32 s6, s4, s6",
            "vmul.f32 s7, s4, s6",
            "vsub.f32 s8, s22, s6",
            "vdiv.f32 s7, s7, s8",
            "vsub.f32 s7, s7, s3",
            "vadd.f32 s7, s7, s2",
            "vadd.f32 s7, s23, s7",
            "add {b}, {one}, {b}, lsl #23",
            "vmov s8, {b}",
            "vmul.f32 s7, s7, s8",
            "vstmia {p}!, {{s7}}",
            "vadd.f32 s25, s25, s7",
            "subs {n}, {n}, #1",
            "bne 2b",
            "3:",
            "vmov {sm}, s25",
            "vpop {{s16-s25}}",
            "vpop {{s0-s8}}",
            c = in(reg) EXP_CONSTANTS.as_ptr(),
            mx = in(reg) max.to_bits(),
            sm = inout(reg) sum.to_bits() => sum_bits,
            p = inout(reg) start => end,
            n = inout(reg) n => _,
            b = out(reg) _,
            lo = in(reg) 0xbf85_1592u32,
            hi = in(reg) 0xc2ae_ac50u32,
            one = in(reg) 0x3f80_0000u32,
        );
    }
    // SAFETY: `end` is `start` advanced by the words done, inside `x` or one past its end.
    let done = unsafe { end.offset_from(start) } as usize;
    (done, f32::from_bits(sum_bits))
}

/// `x[i] /= sum` for every i, eight at a time (`VLDM`, eight `VDIV`, `VSTM`).
#[cfg(chispa_fp16)]
fn div_run8(x: &mut [f32], sum: f32) {
    let blocks = x.len() / 8;
    if blocks > 0 {
        // SAFETY: reads and writes `x[..8 · blocks]`; s0–s8 are saved and restored.
        unsafe {
            asm!(
                "vpush {{s0-s8}}",
                "vmov s8, {s}",
                "2:",
                "vldm {p}, {{s0-s7}}",
                "vdiv.f32 s0, s0, s8",
                "vdiv.f32 s1, s1, s8",
                "vdiv.f32 s2, s2, s8",
                "vdiv.f32 s3, s3, s8",
                "vdiv.f32 s4, s4, s8",
                "vdiv.f32 s5, s5, s8",
                "vdiv.f32 s6, s6, s8",
                "vdiv.f32 s7, s7, s8",
                "vstmia {p}!, {{s0-s7}}",
                "subs {n}, {n}, #1",
                "bne 2b",
                "vpop {{s0-s8}}",
                p = inout(reg) x.as_mut_ptr() => _,
                n = inout(reg) blocks => _,
                s = in(reg) sum.to_bits(),
            );
        }
    }
    for v in &mut x[8 * blocks..] {
        *v /= sum;
    }
}

/// See `generic::softmax`: the same maximum, exponentials, sum and divisions; runs of values
/// in `expf`'s main range go through [`exp_run`], the others through `crate::ops::expf`.
#[cfg(chispa_fp16)]
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, v| if *v > m { *v } else { m });
    let mut sum = 0.0f32;
    let mut i = 0;
    while i < x.len() {
        let (done, s) = exp_run(&mut x[i..], max, sum);
        i += done;
        sum = s;
        if let Some(v) = x.get_mut(i) {
            *v = crate::ops::expf(*v - max);
            sum += *v;
            i += 1;
        }
    }
    div_run8(x, sum);
}
