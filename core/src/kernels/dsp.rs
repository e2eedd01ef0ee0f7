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

use super::generic::{self, I4Matrix, I8Matrix};
use super::HeadRows;
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
            row_end!("r8", "r9", row_store_fp!()),
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

/// Always: this file is built only for targets that have the instructions (see
/// `kernels::backends!`).
pub(super) fn detected() -> bool {
    true
}

/// The DSP extension's int8 matmul, and with a half-precision FPU its paired int8 attention
/// kernels, into `k` (`build.rs` enables `chispa_dsp` only for cores that have them).
pub(super) fn plug(k: &mut super::Kernels) {
    k.matvec_i8 = matvec_i8;
    k.matvec_i4 = matvec_i4;
    k.scores2_i8 = scores2_i8;
    #[cfg(chispa_vfp)]
    {
        k.softmax = softmax;
        k.swiglu = swiglu;
    }
    #[cfg(chispa_fp16)]
    {
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

/// `16 · Σ` of `words · 8` products: int4 weights at `*w` (a word a step: byte k holds
/// element 2k in its low nibble, 2k + 1 in its high one), inputs split by [`pairs_i4`] at `*x`
/// (four words a step); both pointers advance. Each nibble is moved to the top of its byte
/// (the low ones shifted up by 4, then both masked), so `SXTB16` sign-extends it times 16:
/// exact (a pair is at most 2 · 128 · 32768 = 2^23, a group of `MAX_GROUP` under 2^31).
/// 15 instructions per 8 products.
///
/// # Safety
/// `words ≥ 1`; `*w` has `4 · words` readable bytes (any alignment: `LDR`), `*x` is
/// word-aligned with `4 · words` readable words (`LDM`).
#[inline(always)]
unsafe fn sum_words_i4(words: usize, w: &mut *const u8, x: &mut *const u32) -> i32 {
    let acc: i32;
    // SAFETY: the caller guarantees the bytes and words read and `words ≥ 1` (the loop runs
    // at least once); r0–r3 are declared clobbered; no stack; the flags `subs` sets are not
    // read after the block.
    unsafe {
        asm!(
            "mov {acc}, #0",
            "2:",
            "ldr {lo}, [{w}], #4",
            "ldm {x}!, {{r0, r1, r2, r3}}",
            "and {hi}, {lo}, {mask}",
            "lsl {lo}, {lo}, #4",
            "and {lo}, {lo}, {mask}",
            "sxtb16 {t}, {lo}",
            "smlad {acc}, {t}, r0, {acc}",
            "sxtb16 {t}, {lo}, ror #8",
            "smlad {acc}, {t}, r1, {acc}",
            "sxtb16 {t}, {hi}",
            "smlad {acc}, {t}, r2, {acc}",
            "sxtb16 {t}, {hi}, ror #8",
            "smlad {acc}, {t}, r3, {acc}",
            "subs {n}, {n}, #1",
            "bne 2b",
            w = inout(reg) *w,
            x = inout(reg) *x,
            n = inout(reg) words => _,
            // A register, not an immediate: A32 cannot encode 0xf0f0f0f0 (T32 can).
            mask = in(reg) 0xf0f0_f0f0u32,
            lo = out(reg) _,
            hi = out(reg) _,
            t = out(reg) _,
            acc = out(reg) acc,
            out("r0") _,
            out("r1") _,
            out("r2") _,
            out("r3") _,
            options(nostack),
        );
    }
    acc
}

/// Eight int16 inputs as the four words [`sum_words_i4`] pairs with a weight word's nibbles:
/// `[x0, x4]`, `[x2, x6]` (the low nibbles of bytes 0, 2 and 1, 3), `[x1, x5]`, `[x3, x7]`
/// (the high ones), low halfword first.
#[inline(always)]
fn pairs_i4(x: &[i16], out: &mut [MaybeUninit<u32>]) {
    let h = |i: usize| u32::from(x[i] as u16);
    out[0].write(h(0) | h(4) << 16);
    out[1].write(h(2) | h(6) << 16);
    out[2].write(h(1) | h(5) << 16);
    out[3].write(h(3) | h(7) << 16);
}

/// The int4 matmul (`generic::matvec_i4`'s contract) with [`sum_words_i4`]: the inputs split once
/// (at most `XBUF_COLS`, a multiple of 4), then per row and group of a multiple of 8 the
/// exact sum a word (eight weights) at a time, divided by 16 (exact; a last 4 inputs in the
/// scalar code), times its multiplier added in i64, and the row ended as the scalar code
/// does. Other shapes run the scalar code.
///
/// # Safety
/// None beyond the slices' own (`kernels::matvec_i4` checked that `w` holds `out.len()` rows
/// and `xq` `w.cols` inputs); `unsafe` only for the kernel table's type.
pub(super) unsafe fn matvec_i4(out: &mut [f32], w: &I4Matrix<'_>, xq: &[i16], x_scale: f32) {
    let (cols, group) = (w.cols, w.group);
    // Whole groups of a multiple of 8; the last one may end in 4 inputs more (w2's 172 with
    // groups of 16), taken by the scalar code.
    let fast = cols % 4 == 0
        && group % 8 == 0
        && group > 0
        && cols <= XBUF_COLS
        && w.holds(out.len())
        && xq.len() >= cols;
    if !fast {
        return generic::matvec_i4(out, w, xq, x_scale);
    }
    let tail = cols % 8;
    let mut buf = [MaybeUninit::<u32>::uninit(); XBUF_COLS / 2];
    let xb = &mut buf[..(cols - tail) / 2];
    for (x8, o) in xq[..cols - tail].chunks_exact(8).zip(xb.chunks_exact_mut(4)) {
        pairs_i4(x8, o);
    }
    // SAFETY: the loop above wrote all `(cols - tail) / 2` words.
    let xb = unsafe { &*(xb as *const [MaybeUninit<u32>] as *const [u32]) };
    let (groups, rb) = (w.groups(), w.row_bytes());
    let (full, last) = (cols / group, cols % group);
    for (r, (o, rs)) in out.iter_mut().zip(w.row_scales).enumerate() {
        // SAFETY: row r's `rb` bytes are inside `w.q` (`holds`).
        let mut wp = unsafe { w.q.as_ptr().add(r * rb) };
        let mr = &w.mults[r * groups..(r + 1) * groups];
        let mut xp = xb.as_ptr();
        let mut acc = 0i64;
        for m in &mr[..full] {
            // SAFETY: one whole group (`group / 2` bytes, `group / 2` split words, `group` a
            // positive multiple of 8) inside the row and `xb`.
            let isum = unsafe { sum_words_i4(group / 8, &mut wp, &mut xp) };
            acc += i64::from(isum >> 4) * i64::from(*m);
        }
        if last > 0 {
            let words = last / 8;
            let mut isum = if words > 0 {
                // SAFETY: the short last group's whole words, the rest of the row and `xb`.
                unsafe { sum_words_i4(words, &mut wp, &mut xp) >> 4 }
            } else {
                0
            };
            let row = &w.q[r * rb..(r + 1) * rb];
            for j in cols - tail..cols {
                isum += i32::from(generic::nibble(row, j)) * i32::from(xq[j]);
            }
            acc += i64::from(isum) * i64::from(mr[full]);
        }
        *o = generic::finish_row(acc, *rs, x_scale);
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

/// The argument block of [`chispa_dsp_scores2_h8`]: the first row's head, the row stride in
/// bytes, the two heads' int16 queries as `SMLAD` pairs (`[q0, q2]`, `[q1, q3]`, `[q4, q6]`,
/// `[q5, q7]`, head a then head b), their factors `c`, the row scales, the outputs and the
/// number of rows (≥ 1).
#[cfg(chispa_vfp)]
#[repr(C)]
struct ScoreArgs {
    p: *const i8,
    stride: u32,
    q: [u32; 8],
    c: [f32; 2],
    ks: *const f32,
    out_a: *mut f32,
    out_b: *mut f32,
    n: u32,
}

// Two heads of 8 per row: the row's two words split by `SXTB16` once, four `SMUAD`/`SMLAD`
// per head (exact: 8 · 32767 · 128 < 2^31), the sums to f32 by `VCVT`, times `ks · c`. Head
// b's last two query pairs, the factors, the row-scale and output pointers and the count
// live in s4–s11 (caller-saved) and come into core registers when needed.
#[cfg(chispa_vfp)]
core::arch::global_asm!(
    asm_function!("chispa_dsp_scores2_h8", mode!()),
    "push {{r4, r5, r6, r7, r8, r9, r10, r11, lr}}",
    "add r1, r0, #32",
    "vldm r1, {{s4-s11}}",
    "add r1, r0, #8",
    "ldm r1, {{r2, r3, r4, r5, r6, r7}}",
    "ldr r1, [r0, #4]",
    "ldr r0, [r0]",
    "1:",
    "ldr r9, [r0]",
    "ldr r8, [r0, #4]",
    "add r0, r0, r1",
    "sxtb16 r10, r9",
    "sxtb16 r9, r9, ror #8",
    "sxtb16 r11, r8",
    "sxtb16 r8, r8, ror #8",
    "smuad r12, r10, r2",
    "smlad r12, r9, r3, r12",
    "smlad r12, r11, r4, r12",
    "smlad r12, r8, r5, r12",
    "smuad lr, r10, r6",
    "smlad lr, r9, r7, lr",
    "vmov r10, r9, s4, s5",
    "smlad lr, r11, r10, lr",
    "smlad lr, r8, r9, lr",
    "vmov s0, s1, r12, lr",
    "vcvt.f32.s32 s0, s0",
    "vcvt.f32.s32 s1, s1",
    "vmov r8, r9, s8, s9",
    "vldmia r8!, {{s2}}",
    "vmul.f32 s3, s2, s6",
    "vmul.f32 s2, s2, s7",
    "vmul.f32 s0, s0, s3",
    "vmul.f32 s1, s1, s2",
    "vstmia r9!, {{s0}}",
    "vmov r10, r11, s10, s11",
    "vstmia r10!, {{s1}}",
    "vmov s8, s9, r8, r9",
    "subs r11, r11, #1",
    "vmov s10, s11, r10, r11",
    "bne 1b",
    "pop {{r4, r5, r6, r7, r8, r9, r10, r11, pc}}",
    ".size chispa_dsp_scores2_h8, . - chispa_dsp_scores2_h8",
);

#[cfg(chispa_vfp)]
extern "C" {
    fn chispa_dsp_scores2_h8(a: *const ScoreArgs);
}

/// See `generic::scores2_i8`; heads of 8 run [`chispa_dsp_scores2_h8`] (hard-float builds),
/// other heads the scalar code.
///
/// # Safety
/// `kv` holds `att[0].len()` rows with a head of `q[0].len()` at `off` and a scale each,
/// `q[1]` and `att[1]` are as long as `q[0]` and `att[0]` (what `Kernels::scores2_i8`
/// checks).
pub(super) unsafe fn scores2_i8(
    kv: HeadRows<'_, i8>,
    q: [&[i16]; 2],
    c: [f32; 2],
    att: [&mut [f32]; 2],
) {
    #[cfg(chispa_vfp)]
    if let (Ok(qa), Ok(qb)) = (<&[i16; 8]>::try_from(q[0]), <&[i16; 8]>::try_from(q[1])) {
        let n = att[0].len();
        if n == 0 {
            return;
        }
        let [att_a, att_b] = att;
        let pair =
            |q: &[i16; 8], i: usize| u32::from(q[i] as u16) | u32::from(q[i + 2] as u16) << 16;
        let args = ScoreArgs {
            // SAFETY: `off` is inside the first row (checked by the caller).
            p: unsafe { kv.rows.as_ptr().add(kv.off) },
            stride: kv.row_len as u32,
            q: [
                pair(qa, 0),
                pair(qa, 1),
                pair(qa, 4),
                pair(qa, 5),
                pair(qb, 0),
                pair(qb, 1),
                pair(qb, 4),
                pair(qb, 5),
            ],
            c,
            ks: kv.scales.as_ptr(),
            out_a: att_a.as_mut_ptr(),
            out_b: att_b.as_mut_ptr(),
            n: n as u32,
        };
        // SAFETY: the caller's conditions: `n` rows from `p` on (8 bytes each, unaligned
        // loads), `n` scales and `n` outputs per head; the function keeps AAPCS's
        // callee-saved registers.
        return unsafe { chispa_dsp_scores2_h8(&args) };
    }
    generic::scores2_i8(kv, q, c, att)
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

/// `s4 = exp(s0)` (`generic::exp`'s operations in its order) for `t = s0 · log2(e)` from
/// `EXP_T_MIN` on, with the constants of [`EXP_K`] in s16–s25; else (and for NaN) a jump to
/// label `3` — `$upper` adds the check of `EXP_T_MAX` (in s28) where `t` can reach it. Uses
/// s1–s4, `{t0}` and `{t1}`.
#[cfg(chispa_vfp)]
macro_rules! vfp_exp {
    ($upper:literal) => {
        concat!(
            "vmul.f32 s1, s0, s16\n",
            "vcmp.f32 s1, s17\n",
            "vmrs APSR_nzcv, fpscr\n",
            "blt 3f\n",
            $upper,
            "vadd.f32 s2, s1, s18\n",
            "vsub.f32 s3, s2, s18\n",
            "vsub.f32 s3, s1, s3\n",
            "vmov {t0}, s2\n",
            "vmul.f32 s4, s3, s19\n",
            "vadd.f32 s4, s4, s20\n",
            "vmul.f32 s4, s4, s3\n",
            "vadd.f32 s4, s4, s21\n",
            "vmul.f32 s4, s4, s3\n",
            "vadd.f32 s4, s4, s22\n",
            "vmul.f32 s4, s4, s3\n",
            "vadd.f32 s4, s4, s23\n",
            "vmul.f32 s4, s4, s3\n",
            "vadd.f32 s4, s4, s24\n",
            "vmul.f32 s4, s4, s3\n",
            "vadd.f32 s4, s4, s25\n",
            "vmov {t1}, s4\n",
            "add {t1}, {t1}, {t0}, lsl #23\n",
            "vmov s4, {t1}\n",
        )
    };
}

/// The constants of [`exp_run`], in the order it loads them into s16–s25: `t = x · log2(e)`,
/// the lowest `t` it takes, the rounding constant, the polynomial's `c6` down to `c1`, and 1.
#[cfg(chispa_vfp)]
const EXP_K: [f32; 10] = [
    generic::EXP_LOG2E,
    generic::EXP_T_MIN,
    generic::EXP_MAGIC,
    generic::EXP_C[5],
    generic::EXP_C[4],
    generic::EXP_C[3],
    generic::EXP_C[2],
    generic::EXP_C[1],
    generic::EXP_C[0],
    1.0,
];

/// `x[i] = exp(x[i] - max)` (`generic::exp`: the same f32 operations in the same order, the
/// constants held in registers) and `sum += x[i]`, i in order, while `t = (x[i] - max) ·
/// log2(e)` is at least `EXP_T_MIN`. That covers every value but NaNs and those whose
/// exponential is 0 (`x[i] - max` is never positive: `max` is the maximum), which stop the
/// run: returns the values done and the sum.
#[cfg(chispa_vfp)]
fn exp_run(x: &mut [f32], max: f32, sum: f32) -> (usize, f32) {
    if x.is_empty() {
        return (0, sum);
    }
    let start = x.as_mut_ptr();
    let (end, sum_bits): (*mut f32, u32);
    // SAFETY: reads and writes `x` through `p`, one word per value done, at most `x.len()`;
    // reads `EXP_K` (10 words); the FP registers it writes are declared clobbered, the core
    // registers are operands.
    unsafe {
        asm!(
            "vldm {k}, {{s16-s25}}",
            "vmov s26, {mx}",
            "vmov s27, {sum}",
            "2:",
            "vldr s0, [{p}]",
            "vsub.f32 s0, s0, s26",
            vfp_exp!(""),
            "vadd.f32 s27, s27, s4",
            "vstmia {p}!, {{s4}}",
            "subs {n}, {n}, #1",
            "bne 2b",
            "3:",
            "vmov {sum}, s27",
            k = in(reg) EXP_K.as_ptr(),
            mx = in(reg) max.to_bits(),
            sum = inout(reg) sum.to_bits() => sum_bits,
            p = inout(reg) start => end,
            n = inout(reg) x.len() => _,
            t0 = out(reg) _,
            t1 = out(reg) _,
            out("s0") _,
            out("s1") _,
            out("s2") _,
            out("s3") _,
            out("s4") _,
            out("s16") _,
            out("s17") _,
            out("s18") _,
            out("s19") _,
            out("s20") _,
            out("s21") _,
            out("s22") _,
            out("s23") _,
            out("s24") _,
            out("s25") _,
            out("s26") _,
            out("s27") _,
        );
    }
    // SAFETY: `end` is `start` advanced by the values done, inside `x` or one past its end.
    (unsafe { end.offset_from(start) as usize }, f32::from_bits(sum_bits))
}

/// See `generic::softmax`: the same maximum, exponentials ([`exp_run`], the values that stop
/// it through the scalar code), sum and divisions.
///
/// # Safety
/// The CPU has a VFP unit (hard-float builds).
#[cfg(chispa_vfp)]
pub(super) unsafe fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, v| if *v > m { *v } else { m });
    let mut sum = 0.0f32;
    let mut i = 0;
    while i < x.len() {
        let (done, s) = exp_run(&mut x[i..], max, sum);
        i += done;
        sum = s;
        if let Some(v) = x.get_mut(i) {
            *v = generic::exp(*v - max);
            sum += *v;
            i += 1;
        }
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// Gate by gate, `g = g · (1 / (1 + exp(-g)))`, then `g = g · u` (`generic::swiglu`, the
/// exponential as in [`exp_run`]) while `-g · log2(e)` is in [`EXP_T_MIN`, `EXP_T_MAX`); a gate
/// outside (or NaN) stops the run: returns the gates done.
#[cfg(chispa_vfp)]
fn swiglu_run(gate: &mut [f32], up: &[f32]) -> usize {
    let n = gate.len().min(up.len());
    if n == 0 {
        return 0;
    }
    let start = gate.as_mut_ptr();
    let end: *mut f32;
    // SAFETY: reads and writes `gate[..n]` through `p` and reads `up[..n]` through `u`, one
    // word each per gate done; reads `EXP_K`; the FP registers it writes are declared
    // clobbered, the core registers are operands.
    unsafe {
        asm!(
            "vldm {k}, {{s16-s25}}",
            "vmov s28, {tmax}",
            "vmov.f32 s26, #1.0",
            "2:",
            "vldr s5, [{p}]",
            "vneg.f32 s0, s5",
            vfp_exp!("vcmp.f32 s1, s28\nvmrs APSR_nzcv, fpscr\nbge 3f\n"),
            "vadd.f32 s4, s4, s26",
            "vdiv.f32 s4, s26, s4",
            "vmul.f32 s5, s5, s4",
            "vldmia {u}!, {{s6}}",
            "vmul.f32 s5, s5, s6",
            "vstmia {p}!, {{s5}}",
            "subs {n}, {n}, #1",
            "bne 2b",
            "3:",
            k = in(reg) EXP_K.as_ptr(),
            tmax = in(reg) generic::EXP_T_MAX.to_bits(),
            p = inout(reg) start => end,
            u = inout(reg) up.as_ptr() => _,
            n = inout(reg) n => _,
            t0 = out(reg) _,
            t1 = out(reg) _,
            out("s0") _,
            out("s1") _,
            out("s2") _,
            out("s3") _,
            out("s4") _,
            out("s5") _,
            out("s6") _,
            out("s16") _,
            out("s17") _,
            out("s18") _,
            out("s19") _,
            out("s20") _,
            out("s21") _,
            out("s22") _,
            out("s23") _,
            out("s24") _,
            out("s25") _,
            out("s26") _,
            out("s28") _,
        );
    }
    // SAFETY: `end` is `start` advanced by the gates done, inside `gate` or one past its end.
    unsafe { end.offset_from(start) as usize }
}

/// See `generic::swiglu`: [`swiglu_run`], the gates that stop it through the scalar code.
///
/// # Safety
/// The CPU has a VFP unit (hard-float builds).
#[cfg(chispa_vfp)]
pub(super) unsafe fn swiglu(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let mut i = 0;
    while i < n {
        i += swiglu_run(&mut gate[i..n], &up[i..n]);
        if i < n {
            generic::swiglu(&mut gate[i..i + 1], &up[i..i + 1]);
            i += 1;
        }
    }
}
