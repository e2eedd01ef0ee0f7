//! Arm DSP-extension int8 matmul (Cortex-M4/M7/M33/M55, ARMv7-A), bit-exact with
//! `generic::matvec_i8`.
//!
//! CMSIS-NN's inner loop: a word of four int8 weights is split by `SXTB16` into two words of
//! two sign-extended halfwords (bytes 0,2 and, rotated by 8, bytes 1,3), and `SMLAD` adds both
//! 16×16 products with the int16 inputs (paired to match, once per matmul) to the accumulator,
//! exact for every input (a pair is at most 2 · 128 · 32768 = 2^23).
//!
//! The fast path (every group a whole number of words, word-aligned rows, at most `XBUF_COLS`
//! inputs) splits the activations once per call, into a buffer on the stack, so a row's eight
//! inputs cost two `LDM`s (four pre-split words, eight weights), four `SXTB16` and four
//! `SMLAD`: 10 instructions per 8 MACs. On hard-float targets groups of 8, 16, 32 and 64 run
//! as one assembly function over all rows (`rows_fn!`): each group's sum times its multiplier
//! is added in integers (`SMLAL`) and each row ends as in the scalar code (`row_end!`). Other
//! groups take the Rust loop [`pass`], other shapes the word-at-a-time loop below.

use core::arch::asm;
use core::mem::MaybeUninit;

use super::generic::I8Matrix;
#[cfg(chispa_vfp)]
use super::RowArgs;
use super::RowLoop;

/// Most inputs the fast path splits (two words per four inputs on the stack).
const XBUF_COLS: usize = 256;

/// `acc + Σ_{i<4} w_i·x_i` for one word of four int8 weights and four int16 inputs given as
/// the halfword pairs `[x0, x2]`, `[x1, x3]` (see [`pairs`]).
#[inline(always)]
fn mac4(acc: i32, w: u32, xa: u32, xb: u32) -> i32 {
    let out: i32;
    // SAFETY: register-only arithmetic (no memory, no stack, no flags read); SXTB16 and SMLAD
    // exist on every target `build.rs` enables `chispa_dsp` for.
    unsafe {
        asm!(
            "sxtb16 {wa}, {w}",
            "sxtb16 {wb}, {w}, ror #8",
            "smlad {acc}, {wa}, {xa}, {acc}",
            "smlad {acc}, {wb}, {xb}, {acc}",
            w = in(reg) w,
            xa = in(reg) xa,
            xb = in(reg) xb,
            wa = out(reg) _,
            wb = out(reg) _,
            acc = inout(reg) acc => out,
            options(pure, nomem, nostack),
        );
    }
    out
}

/// Four int16 inputs as the two words `SMLAD` pairs with a weight word's `SXTB16` halves:
/// `[x0, x2]` (bytes 0, 2 of the weights) and `[x1, x3]` (bytes 1, 3), low halfword first.
#[inline(always)]
fn pairs(x: &[i16]) -> (u32, u32) {
    let h = |i: usize| u32::from(x.get(i).copied().unwrap_or(0) as u16);
    (h(0) | h(2) << 16, h(1) | h(3) << 16)
}

/// Exact Σ w[j]·x[j] (any length, any alignment).
#[inline]
fn group_sum(w: &[i8], x: &[i16]) -> i32 {
    let n = w.len().min(x.len());
    let (w, x) = (&w[..n], &x[..n]);
    let mut acc = 0i32;
    let mut wc = w.chunks_exact(4);
    let mut xc = x.chunks_exact(4);
    for (a, b) in (&mut wc).zip(&mut xc) {
        let wa = u32::from_le_bytes([a[0] as u8, a[1] as u8, a[2] as u8, a[3] as u8]);
        let (xa, xb) = pairs(b);
        acc = mac4(acc, wa, xa, xb);
    }
    for (a, b) in wc.remainder().iter().zip(xc.remainder()) {
        acc += *a as i32 * *b as i32;
    }
    acc
}

/// Splits `x` (a whole number of fours) into `buf`: per four inputs, the two words of
/// [`pairs`].
#[inline(always)]
fn split(x: &[i16], buf: &mut [MaybeUninit<u32>]) {
    for (w, o) in x.chunks_exact(4).zip(buf.chunks_exact_mut(2)) {
        let (a, b) = pairs(w);
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

/// The fast path over all columns (whole groups but perhaps a short last one, `xb` split),
/// for every row (groups without an assembly row loop, and soft-float targets).
///
/// # Safety
/// `Kernels::matvec_i8`'s length checks hold, `w.q` is word-aligned, `cols` and `group`
/// are multiples of 4, and `xb` holds the `cols / 2` split input words.
#[inline(always)]
unsafe fn pass(out: &mut [f32], w: &I8Matrix<'_>, xb: &[u32], x_scale: f32) {
    let group = w.group;
    let (cols, groups) = (w.cols, w.groups());
    let (full, last) = (cols / group, cols % group);
    for (r, (o, rs)) in out.iter_mut().zip(w.row_scales).enumerate() {
        // SAFETY: row r's columns are inside `w.q` (checked lengths).
        let mut wp = unsafe { w.q.as_ptr().add(r * cols) } as *const u8;
        let mr = &w.mults[r * groups..(r + 1) * groups];
        let mut xp = xb.as_ptr();
        let mut acc = 0i64;
        for m in &mr[..full] {
            // SAFETY: `group` bytes of row r and `group / 2` split words remain.
            let isum = unsafe { sum_words(group, &mut wp, &mut xp) };
            acc += i64::from(isum) * i64::from(*m);
        }
        if last > 0 {
            // SAFETY: the short last group, inside the row likewise.
            let isum = unsafe { sum_words(last, &mut wp, &mut xp) };
            acc += i64::from(isum) * i64::from(mr[full]);
        }
        *o = super::generic::finish_row(acc, *rs, x_scale);
    }
}

/// Eight products added to r7 (`SMUAD` starts the group's sum, `SMLAD` goes on): `LDM` of
/// four split input words and two weight words, four `SXTB16`, four multiply-adds.
#[cfg(chispa_vfp)]
macro_rules! mac8_asm {
    ($first:literal) => {
        concat!(
            "ldm r11!, {{r0, r1, r2, r3}}\n",
            "ldm r10!, {{r4, r5}}\n",
            "sxtb16 r6, r4\n",
            "sxtb16 r4, r4, ror #8\n",
            $first,
            "smlad r7, r4, r1, r7\n",
            "sxtb16 r6, r5\n",
            "sxtb16 r5, r5, ror #8\n",
            "smlad r7, r6, r2, r7\n",
            "smlad r7, r5, r3, r7\n",
        )
    };
}

/// One assembly row loop for groups of `8 · (1 + number of $more)` inputs: for each row, each
/// whole group's exact sum (r7) times its multiplier is added to the row's i64 (r8:r9,
/// `SMLAL`), then the short last group a word at a time; the row ends as the scalar code's
/// (`row_end!`) and the next row follows in the same call (weights and multipliers are
/// contiguous). Assembles as A32 and T32 alike.
#[cfg(chispa_vfp)]
macro_rules! rows_fn {
    ($name:literal, $($more:literal)*) => {
        core::arch::global_asm!(
            asm_function!($name, mode!()),
            rows_prologue!("r10", "r12"),
            "1:",
            "ldm sp, {{r11, lr}}",
            "mov r8, #0",
            "mov r9, #0",
            "2:",
            mac8_asm!("smuad r7, r6, r0\n"),
            $(mac8_asm!($more),)*
            "ldrb r6, [r12], #1",
            "smlal r8, r9, r7, r6",
            "subs lr, lr, #1",
            "bne 2b",
            "ldr lr, [sp, #8]",
            "cmp lr, #0",
            "beq 4f",
            "mov r7, #0",
            "3:",
            "ldm r11!, {{r0, r1}}",
            "ldr r4, [r10], #4",
            "sxtb16 r6, r4",
            "sxtb16 r4, r4, ror #8",
            "smlad r7, r6, r0, r7",
            "smlad r7, r4, r1, r7",
            "subs lr, lr, #1",
            "bne 3b",
            "ldrb r6, [r12], #1",
            "smlal r8, r9, r7, r6",
            "4:",
            row_end!("r8", "r9"),
            concat!(".size ", $name, ", . - ", $name),
        );
    };
}

/// The instruction set of the row loops: Thumb on M-profile, A32 on ARMv7-A Linux.
#[cfg(all(chispa_vfp, chispa_thumb))]
macro_rules! mode {
    () => {
        concat!(env!("CHISPA_ASM_PRELUDE"), "\n.thumb\n.thumb_func")
    };
}
#[cfg(all(chispa_vfp, not(chispa_thumb)))]
macro_rules! mode {
    () => {
        concat!(env!("CHISPA_ASM_PRELUDE"), "\n.arm")
    };
}

#[cfg(chispa_vfp)]
rows_fn!("chispa_dsp_rows_g8",);
#[cfg(chispa_vfp)]
rows_fn!("chispa_dsp_rows_g16", "smlad r7, r6, r0, r7\n");
#[cfg(chispa_vfp)]
rows_fn!("chispa_dsp_rows_g32", "smlad r7, r6, r0, r7\n" "smlad r7, r6, r0, r7\n" "smlad r7, r6, r0, r7\n");
#[cfg(chispa_vfp)]
rows_fn!(
    "chispa_dsp_rows_g64",
    "smlad r7, r6, r0, r7\n" "smlad r7, r6, r0, r7\n" "smlad r7, r6, r0, r7\n"
    "smlad r7, r6, r0, r7\n" "smlad r7, r6, r0, r7\n" "smlad r7, r6, r0, r7\n"
    "smlad r7, r6, r0, r7\n"
);

#[cfg(chispa_vfp)]
extern "C" {
    fn chispa_dsp_rows_g8(a: *const RowArgs);
    fn chispa_dsp_rows_g16(a: *const RowArgs);
    fn chispa_dsp_rows_g32(a: *const RowArgs);
    fn chispa_dsp_rows_g64(a: *const RowArgs);
}

/// The assembly row loops for groups of 8, 16, 32 or 64 (`None` for other groups, and on
/// soft-float targets, where the Rust loop [`pass`] runs).
fn row_loop(group: usize) -> Option<RowLoop> {
    #[cfg(chispa_vfp)]
    return Some(match group {
        8 => chispa_dsp_rows_g8,
        16 => chispa_dsp_rows_g16,
        32 => chispa_dsp_rows_g32,
        64 => chispa_dsp_rows_g64,
        _ => return None,
    });
    #[cfg(not(chispa_vfp))]
    {
        let _ = group;
        None
    }
}

/// The DSP extension's int8 matmul, and with a half-precision FPU its paired int8 attention
/// kernels, into `k` (`build.rs` enables `chispa_dsp` only for cores that have them).
pub(super) fn plug(k: &mut super::Kernels) {
    k.matvec_i8 = matvec_i8;
    #[cfg(chispa_fp16)]
    {
        k.scores2_i8 = scores2_i8;
        k.mix2_i8 = mix2_i8;
    }
}

/// See `generic::matvec_i8`.
///
/// # Safety
/// The lengths `Kernels::matvec_i8` checks hold (`w` holds `out.len()` rows, `xq` a row).
pub(super) unsafe fn matvec_i8(out: &mut [f32], w: &I8Matrix<'_>, xq: &[i16], x_scale: f32) {
    let (cols, group) = (w.cols, w.group);
    let fast = cols % 4 == 0
        && group % 4 == 0
        && cols <= XBUF_COLS
        && (w.q.as_ptr() as usize) % 4 == 0
        && w.holds(out.len())
        && xq.len() >= cols;
    if !fast {
        return super::rows_by_group(out, w, xq, x_scale, group_sum);
    }
    let mut buf = [MaybeUninit::<u32>::uninit(); XBUF_COLS / 2];
    let xb = &mut buf[..cols / 2];
    split(&xq[..cols], xb);
    // SAFETY: `split` wrote all `cols / 2` words (`cols` is a multiple of 4).
    let xb = unsafe { &*(xb as *const [MaybeUninit<u32>] as *const [u32]) };
    match row_loop(group) {
        // SAFETY: `fast` (word-aligned weights, `cols` and `group` multiples of 4, the checked
        // lengths) and the `cols / 2` split words the loop reads per row.
        Some(f) if cols >= group => unsafe {
            super::row_blocks(out, w, xb.as_ptr() as *const u8, x_scale, 4, f)
        },
        // SAFETY: the conditions of `fast` are `pass`'s.
        _ => unsafe { pass(out, w, xb, x_scale) },
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

/// See `generic::scores2_i8`: each row widened
/// once, the two heads' queries held in s16–s31.
#[cfg(chispa_fp16)]
///
/// # Safety
/// `rows` holds `att_a.len()` rows of `row_len` with a head of 8 at `off`, `row_scales` as
/// many scales, and `att_b` is as long as `att_a` (what `Kernels::scores2_i8` checks).
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores2_i8(
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
    // SAFETY: `Kernels::scores2_i8` checked that `rows` holds `n` rows of `row_len` with
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

/// See `generic::mix2_i8`: each row widened once,
/// the two heads' outputs held in s16–s31.
#[cfg(chispa_fp16)]
///
/// # Safety
/// `rows` holds `att_a.len()` rows of `row_len` with a head of 8 at `off`, `row_scales` as
/// many scales, and `att_b` is as long as `att_a` (what `Kernels::mix2_i8` checks).
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn mix2_i8(
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
    // SAFETY: as `scores2_i8`: `n` rows and scales checked by `Kernels::mix2_i8`, `n`
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
