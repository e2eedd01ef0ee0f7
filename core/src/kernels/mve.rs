//! Arm Helium (MVE, Cortex-M55/M85) int8 matmul, softmax and SwiGLU, bit-exact with the
//! scalar code.
//!
//! Integer sums: 8 weights per step widened by their load (`VLDRB.S16`), 8 int16 inputs
//! (`VLDRH.S16`) and one `VMLADAVA.S16`, which multiplies the eight lane pairs and adds every
//! product to a general register exactly (32-bit, no saturation).
//!
//! Each group's sum times its multiplier is added in integers and each row ends as in the
//! scalar code (the assembly row loops, `rows_fn!`; `kernels::rows_by_group` for other
//! groups). Helium's float instructions flush subnormal inputs
//! and results to zero (the architecture's "standard FPSCR" behaviour, unlike scalar VFP):
//! the float kernels below clear the FPSCR's input-denormal and underflow flags first and
//! check them after, and redo a flushed step with the scalar code.

use core::arch::asm;

use super::generic::{self, I8Matrix};
use super::{HeadRows, RowArgs, RowLoop};

/// Exact Σ w[j]·x[j]: eight at a time, the weights widened by the load (`VLDRB.S16`), the
/// products of the eight halfword lanes added to a general register (`VMLADAVA.S16`, exact).
#[inline]
fn group_sum(w: &[i8], x: &[i16]) -> i32 {
    let n = w.len().min(x.len());
    let mut acc = 0i32;
    let mut j = 0;
    while j + 8 <= n {
        // SAFETY: reads 8 bytes at w[j..] and 8 halfwords at x[j..], inside both slices
        // (j + 8 <= n); only q0/q1 (d0–d3) are written and declared clobbered; MVE exists on
        // every target `build.rs` enables `chispa_mve` for. VMLADAVA needs an even
        // accumulator: r0.
        unsafe {
            asm!(
                "vldrb.s16 q0, [{w}]",
                "vldrh.s16 q1, [{x}]",
                "vmladava.s16 r0, q0, q1",
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
        j += 8;
    }
    for (a, b) in w[j..n].iter().zip(&x[j..n]) {
        acc += *a as i32 * *b as i32;
    }
    acc
}

/// Eight products added to r2: eight weights widened by their load, eight int16 inputs, one
/// `VMLADAVA.S16` (`VMLADAV` starts a group). Widening loads take low base registers: r0 walks
/// the weights, r1 the inputs.
macro_rules! mac8_mve {
    ($op:literal) => {
        concat!("vldrb.s16 q0, [r0], #8\n", "vldrh.s16 q1, [r1], #16\n", $op, " r2, q0, q1\n")
    };
}

/// One assembly row loop for groups of `8 · (1 + number of $more)` inputs, as the DSP one
/// (`dsp.rs`): per whole group (a low-overhead loop, `DLS`/`LE`) the exact sum (r2) times its
/// multiplier (r3, read through r6) is added to the row's i64 (r4:r5, `SMLAL`); the short last group (`tail` inputs, a
/// multiple of 4) runs eight lanes at a time, the last step predicated on the lanes left
/// (`VCTP`). q0, q1 and the VPR are the caller's to lose (AAPCS).
macro_rules! rows_fn {
    ($name:literal, $($more:literal)*) => {
        core::arch::global_asm!(
            asm_function!($name, concat!(env!("CHISPA_ASM_PRELUDE"), "\n.thumb\n.thumb_func")),
            rows_prologue!("r0", "r6"),
            rows_in_core!(),
            "1:",
            "ldm sp, {{r1, lr}}",
            "mov r4, #0",
            "mov r5, #0",
            "dls lr, lr",
            "2:",
            mac8_mve!("vmladav.s16"),
            $(mac8_mve!($more),)*
            "ldrb r3, [r6], #1",
            "smlal r4, r5, r2, r3",
            "le lr, 2b",
            "ldr lr, [sp, #8]",
            "cmp lr, #0",
            "beq 4f",
            "mov r2, #0",
            "3:",
            "vctp.16 lr",
            "vpstt",
            "vldrbt.s16 q0, [r0]",
            "vldrht.s16 q1, [r1]",
            "vpst",
            "vmladavat.s16 r2, q0, q1",
            "cmp lr, #8",
            "ite ge",
            "movge r3, #8",
            "movlt r3, lr",
            "add r0, r0, r3",
            "add r1, r1, r3, lsl #1",
            "subs lr, lr, r3",
            "bne 3b",
            "ldrb r3, [r6], #1",
            "smlal r4, r5, r2, r3",
            "4:",
            row_end!("r4", "r5", row_store_core!()),
            concat!(".size ", $name, ", . - ", $name),
        );
    };
}

rows_fn!("chispa_mve_rows_g8",);
rows_fn!("chispa_mve_rows_g16", "vmladava.s16");
rows_fn!("chispa_mve_rows_g32", "vmladava.s16" "vmladava.s16" "vmladava.s16");
rows_fn!(
    "chispa_mve_rows_g64",
    "vmladava.s16" "vmladava.s16" "vmladava.s16" "vmladava.s16" "vmladava.s16"
    "vmladava.s16" "vmladava.s16"
);

extern "C" {
    fn chispa_mve_rows_g8(a: *const RowArgs);
    fn chispa_mve_rows_g16(a: *const RowArgs);
    fn chispa_mve_rows_g32(a: *const RowArgs);
    fn chispa_mve_rows_g64(a: *const RowArgs);
}

/// Always: this file is built only for targets that have the instructions (see
/// `kernels::backends!`).
pub(super) fn detected() -> bool {
    true
}

/// Helium's int8 matmul and paired int8 attention kernels into `k` (`build.rs` enables
/// `chispa_mve` only for Helium cores), and the DSP extension's int4 matmul (the Helium
/// cores have it too).
pub(super) fn plug(k: &mut super::Kernels) {
    k.matvec_i8 = matvec_i8;
    #[cfg(chispa_dsp)]
    {
        k.matvec_i4 = super::dsp::matvec_i4;
    }
    k.scores2_i8 = scores2_i8;
    k.mix2_i8 = mix2_i8;
    k.softmax = softmax;
    k.swiglu = swiglu;
}

/// See `generic::matvec_i8`: for groups of 8,
/// 16, 32 or 64 and widths a multiple of 4, the assembly row loops above; otherwise
/// `VMLADAV` group sums in the shared row driver.
///
/// # Safety
/// The lengths `Kernels::matvec_i8` checks hold (`w` holds `out.len()` rows, `xq` a row).
pub(super) unsafe fn matvec_i8(out: &mut [f32], w: &I8Matrix<'_>, xq: &[i16], x_scale: f32) {
    let (cols, group) = (w.cols, w.group);
    let f: RowLoop = match group {
        8 => chispa_mve_rows_g8,
        16 => chispa_mve_rows_g16,
        32 => chispa_mve_rows_g32,
        64 => chispa_mve_rows_g64,
        _ => return super::rows_by_group(out, w, xq, x_scale, group_sum),
    };
    if cols % 4 != 0 || cols < group || !w.holds(out.len()) || xq.len() < cols {
        return super::rows_by_group(out, w, xq, x_scale, group_sum);
    }
    // SAFETY: the checked lengths: each row's `cols` weights and multipliers, and the `cols`
    // int16 inputs the loop reads per row (no alignment needed by VLDRB/VLDRH).
    unsafe { super::row_blocks(out, w, xq.as_ptr() as *const u8, x_scale, 1, f) }
}

/// The constants of [`exp_run4`], by their bits: c6, c5, c4, c3, c2, c1, 1, -125, 127.5, +∞,
/// log2(e), 1.5·2^23 (as in `generic::exp`).
static VEXP: [u32; 12] = [
    generic::EXP_C[5].to_bits(),
    generic::EXP_C[4].to_bits(),
    generic::EXP_C[3].to_bits(),
    generic::EXP_C[2].to_bits(),
    generic::EXP_C[1].to_bits(),
    generic::EXP_C[0].to_bits(),
    1.0f32.to_bits(),
    generic::EXP_T_MIN.to_bits(),
    generic::EXP_T_MAX.to_bits(),
    f32::INFINITY.to_bits(),
    generic::EXP_LOG2E.to_bits(),
    generic::EXP_MAGIC.to_bits(),
];

/// `q4 = exp(q0)` lane by lane (`generic::exp`: the same f32 operations in the same order, its
/// range checks as lane selects). Uses q1–q5, {t0} and {t1}; needs {c} = `VEXP`, {log2e} and
/// {magic} (`VEXP[10]`, `VEXP[11]`).
macro_rules! vexp {
    () => {
        concat!(
            "vmul.f32 q1, q0, {log2e}\n",
            "vadd.f32 q2, q1, {magic}\n",
            "vsub.f32 q3, q2, {magic}\n",
            "vsub.f32 q3, q1, q3\n",
            "ldrd {t0}, {t1}, [{c}]\n",
            "vmul.f32 q4, q3, {t0}\n",
            "vadd.f32 q4, q4, {t1}\n",
            "vmul.f32 q4, q4, q3\n",
            "ldrd {t0}, {t1}, [{c}, #8]\n",
            "vadd.f32 q4, q4, {t0}\n",
            "vmul.f32 q4, q4, q3\n",
            "vadd.f32 q4, q4, {t1}\n",
            "vmul.f32 q4, q4, q3\n",
            "ldrd {t0}, {t1}, [{c}, #16]\n",
            "vadd.f32 q4, q4, {t0}\n",
            "vmul.f32 q4, q4, q3\n",
            "vadd.f32 q4, q4, {t1}\n",
            "vmul.f32 q4, q4, q3\n",
            "ldrd {t0}, {t1}, [{c}, #24]\n",
            "vadd.f32 q4, q4, {t0}\n",
            "vsub.i32 q2, q2, {magic}\n",
            "vshl.i32 q2, q2, #23\n",
            "vadd.i32 q4, q4, q2\n",
            "vmov.i32 q5, #0\n",
            "vcmp.f32 lt, q1, {t1}\n",
            "vpsel q4, q5, q4\n",
            "ldrd {t0}, {t1}, [{c}, #32]\n",
            "vdup.32 q5, {t1}\n",
            "vcmp.f32 ge, q1, {t0}\n",
            "vpsel q4, q5, q4\n",
            "vcmp.f32 ne, q0, q0\n",
            "vpsel q4, q0, q4\n",
        )
    };
}

/// Four at a time, `x[i] = exp(x[i] - max)` (`generic::exp`, lane by lane: the same f32
/// operations in the same order, its range checks as lane selects) and `sum += x[i]` (i in
/// order, scalar adds), while no subnormal was flushed (FPSCR's IDC/UFC stay clear); stops
/// before the first block that flushed one. Returns the values done and the sum.
fn exp_run4(x: &mut [f32], max: f32, sum: f32) -> (usize, f32) {
    let blocks = x.len() / 4;
    if blocks == 0 {
        return (0, sum);
    }
    let start = x.as_mut_ptr();
    let (end, sum_bits): (*mut f32, u32);
    // SAFETY: reads and writes `x[..4 · blocks]` through `p`, 16 bytes per block done; reads
    // `VEXP`; every vector register it writes is declared clobbered, the core registers are
    // operands.
    unsafe {
        asm!(
            "vmrs {t0}, fpscr",
            "bic {t0}, {t0}, #0x9f",
            "vmsr fpscr, {t0}",
            "2:",
            "vldrw.u32 q0, [{p}]",
            "vsub.f32 q0, q0, {mx}",
            vexp!(),
            "vmrs {t0}, fpscr",
            "tst {t0}, #0x88",
            "bne 3f",
            "vstrw.32 q4, [{p}], #16",
            "vmov s0, {sm}",
            "vadd.f32 s0, s0, s16",
            "vadd.f32 s0, s0, s17",
            "vadd.f32 s0, s0, s18",
            "vadd.f32 s0, s0, s19",
            "vmov {sm}, s0",
            "subs {n}, {n}, #1",
            "bne 2b",
            "3:",
            c = in(reg) VEXP.as_ptr(),
            mx = in(reg) max.to_bits(),
            log2e = in(reg) VEXP[10],
            magic = in(reg) VEXP[11],
            sm = inout(reg) sum.to_bits() => sum_bits,
            p = inout(reg) start => end,
            n = inout(reg) blocks => _,
            t0 = out(reg) _,
            t1 = out(reg) _,
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
        );
    }
    // SAFETY: `end` is `start` advanced by the values done, inside `x` or one past its end.
    let done = unsafe { end.offset_from(start) } as usize;
    (done, f32::from_bits(sum_bits))
}

/// The maximum of `x` (NaNs skipped) with `VMAXNM` four lanes at a time, or `None` if a lane
/// was flushed (a subnormal: FPSCR.IDC) or signalled (a signalling NaN: FPSCR.IOC, which
/// `VMAXNM` would not skip). A tie of +0 and -0 may resolve either way, which softmax does
/// not see (`x - max` is then ±0 or the same value, and exp(±0) = 1).
fn max_run4(x: &[f32]) -> Option<f32> {
    let blocks = x.len() / 4;
    let mut m = f32::NEG_INFINITY.to_bits();
    let mut fpscr = 0u32;
    if blocks > 0 {
        // SAFETY: reads `x[..4 · blocks]`; q0, q1 declared clobbered; core registers are
        // operands.
        unsafe {
            asm!(
                "vmrs {f}, fpscr",
                "bic {f}, {f}, #0x9f",
                "vmsr fpscr, {f}",
                "vdup.32 q0, {m}",
                "2:",
                "vldrw.u32 q1, [{p}], #16",
                "vmaxnm.f32 q0, q0, q1",
                "subs {n}, {n}, #1",
                "bne 2b",
                "vmaxnmv.f32 {m}, q0",
                "vmrs {f}, fpscr",
                p = inout(reg) x.as_ptr() => _,
                n = inout(reg) blocks => _,
                m = inout(reg) m,
                f = inout(reg) fpscr,
                out("d0") _,
                out("d1") _,
                out("d2") _,
                out("d3") _,
            );
        }
    }
    if fpscr & 0x81 != 0 {
        return None;
    }
    let m = f32::from_bits(m);
    Some(x[4 * blocks..].iter().fold(m, |m, v| if *v > m { *v } else { m }))
}

/// `x[i] /= sum` for every i (scalar `VDIV`s on the lanes of four-value loads: exact).
fn div_run4(x: &mut [f32], sum: f32) {
    let blocks = x.len() / 4;
    if blocks > 0 {
        // SAFETY: reads and writes `x[..4 · blocks]`; q0 and s4 (q1) declared clobbered.
        unsafe {
            asm!(
                "vmov s4, {s}",
                "2:",
                "vldrw.u32 q0, [{p}]",
                "vdiv.f32 s0, s0, s4",
                "vdiv.f32 s1, s1, s4",
                "vdiv.f32 s2, s2, s4",
                "vdiv.f32 s3, s3, s4",
                "vstrw.32 q0, [{p}], #16",
                "subs {n}, {n}, #1",
                "bne 2b",
                p = inout(reg) x.as_mut_ptr() => _,
                n = inout(reg) blocks => _,
                s = in(reg) sum.to_bits(),
                out("d0") _,
                out("d1") _,
                out("d2") _,
                out("d3") _,
            );
        }
    }
    for v in &mut x[4 * blocks..] {
        *v /= sum;
    }
}

/// Four at a time, `g = g · (1 / (1 + exp(-g)))`, then `g = g · u` (`generic::swiglu`: `-g` by
/// flipping the sign bit, [`vexp!`], scalar `VDIV`s), while no subnormal was flushed (FPSCR's
/// IDC/UFC stay clear); stops before the first block that flushed one. Returns the values
/// done.
fn swiglu_run4(gate: &mut [f32], up: &[f32]) -> usize {
    let blocks = gate.len().min(up.len()) / 4;
    if blocks == 0 {
        return 0;
    }
    let start = gate.as_mut_ptr();
    let end: *mut f32;
    // SAFETY: reads and writes `gate[..4 · blocks]` through `p` and reads `up[..4 · blocks]`
    // through `u`, 16 bytes per block; reads `VEXP`; every vector register it writes is
    // declared clobbered, the core registers are operands.
    unsafe {
        asm!(
            "vmrs {t0}, fpscr",
            "bic {t0}, {t0}, #0x9f",
            "vmsr fpscr, {t0}",
            "2:",
            "vldrw.u32 q6, [{p}]",
            "vmov.i32 q0, #0x80000000",
            "veor q0, q0, q6",
            vexp!(),
            "vadd.f32 q4, q4, {one}",
            "vmov s20, {one}",
            "vdiv.f32 s16, s20, s16",
            "vdiv.f32 s17, s20, s17",
            "vdiv.f32 s18, s20, s18",
            "vdiv.f32 s19, s20, s19",
            "vmul.f32 q6, q6, q4",
            "vldrw.u32 q7, [{u}], #16",
            "vmul.f32 q6, q6, q7",
            "vmrs {t0}, fpscr",
            "tst {t0}, #0x88",
            "bne 3f",
            "vstrw.32 q6, [{p}], #16",
            "subs {n}, {n}, #1",
            "bne 2b",
            "3:",
            c = in(reg) VEXP.as_ptr(),
            log2e = in(reg) VEXP[10],
            magic = in(reg) VEXP[11],
            one = in(reg) VEXP[6],
            p = inout(reg) start => end,
            u = inout(reg) up.as_ptr() => _,
            n = inout(reg) blocks => _,
            t0 = out(reg) _,
            t1 = out(reg) _,
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
    // SAFETY: `end` is `start` advanced by the values done, inside `gate` or one past its end.
    unsafe { end.offset_from(start) as usize }
}

/// See `generic::swiglu`: blocks of four through [`swiglu_run4`], a block that flushed a
/// subnormal and the last values through the scalar code.
///
/// # Safety
/// The CPU has Helium (as every other function of this module assumes).
pub(super) unsafe fn swiglu(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let mut i = 0;
    while i < n {
        i += swiglu_run4(&mut gate[i..n], &up[i..n]);
        let end = (i + 4).min(n);
        generic::swiglu(&mut gate[i..end], &up[i..end]);
        i = end;
    }
}

/// See `generic::softmax`: the same maximum ([`max_run4`]), exponentials (blocks of four
/// through [`exp_run4`], a block that flushed a subnormal and the last values through the
/// scalar code), sum and divisions ([`div_run4`]).
///
/// # Safety
/// The CPU has Helium (as every other function of this module assumes).
pub(super) unsafe fn softmax(x: &mut [f32]) {
    let max = max_run4(x)
        .unwrap_or_else(|| x.iter().fold(f32::NEG_INFINITY, |m, v| if *v > m { *v } else { m }));
    let mut sum = 0.0f32;
    let mut i = 0;
    while i < x.len() {
        let (done, s) = exp_run4(&mut x[i..], max, sum);
        i += done;
        sum = s;
        // The block that stopped the run (or the last values), one by one.
        let end = (i + 4).min(x.len());
        for v in &mut x[i..end] {
            *v = generic::exp(*v - max);
            sum += *v;
        }
        i = end;
    }
    div_run4(x, sum);
}

/// See `generic::scores2_i8`: heads of 8, four rows per step. Each row's eight bytes widen
/// to int16 (`VLDRB.S16`), one `VMLADAV.S16` per head gives its exact sum, the four sums of a
/// head go into one vector, to f32 (`VCVT`), times `ks · c` lane by lane. If a product was
/// subnormal (FPSCR's IDC/UFC: Helium flushes it), and for the last rows short of four, the
/// DSP kernel does the work; other heads run the scalar code.
///
/// # Safety
/// As `dsp::scores2_i8` (what `Kernels::scores2_i8` checks).
pub(super) unsafe fn scores2_i8(
    kv: HeadRows<'_, i8>,
    q: [&[i16]; 2],
    c: [f32; 2],
    att: [&mut [f32]; 2],
) {
    let (Ok(qa), Ok(qb)) = (<&[i16; 8]>::try_from(q[0]), <&[i16; 8]>::try_from(q[1])) else {
        return generic::scores2_i8(kv, q, c, att);
    };
    let [att_a, att_b] = att;
    let n = att_a.len();
    let blocks = n / 4;
    let done = 4 * blocks;
    if blocks > 0 {
        let fpscr: u32;
        let mut sums = [0i32; 8];
        // SAFETY: the caller's conditions: `4 · blocks` rows of 8 bytes from `off` on, as
        // many scales (read 4 words at a time, aligned) and outputs per head; the queries
        // are read in full. Every vector register used is declared clobbered, the sums'
        // even registers r0/r2 too.
        unsafe {
            asm!(
                "vmrs r0, fpscr",
                "bic r0, r0, #0x9f",
                "vmsr fpscr, r0",
                "vldrh.u16 q4, [{qa}]",
                "vldrh.u16 q5, [{qb}]",
                "2:",
                "vldrb.s16 q0, [r1]",
                "add r1, {stride}",
                "vldrb.s16 q1, [r1]",
                "add r1, {stride}",
                "vldrb.s16 q2, [r1]",
                "add r1, {stride}",
                "vldrb.s16 q3, [r1]",
                "add r1, {stride}",
                "vmladav.s16 r0, q0, q4",
                "vmladav.s16 r2, q2, q4",
                "str r0, [{s}]",
                "str r2, [{s}, #8]",
                "vmladav.s16 r0, q1, q4",
                "vmladav.s16 r2, q3, q4",
                "str r0, [{s}, #4]",
                "str r2, [{s}, #12]",
                "vmladav.s16 r0, q0, q5",
                "vmladav.s16 r2, q2, q5",
                "str r0, [{s}, #16]",
                "str r2, [{s}, #24]",
                "vmladav.s16 r0, q1, q5",
                "vmladav.s16 r2, q3, q5",
                "str r0, [{s}, #20]",
                "str r2, [{s}, #28]",
                "vldrw.u32 q6, [{s}]",
                "vldrw.u32 q7, [{s}, #16]",
                "vcvt.f32.s32 q6, q6",
                "vcvt.f32.s32 q7, q7",
                "vldrw.u32 q0, [{ks}], #16",
                "vmul.f32 q1, q0, {ca}",
                "vmul.f32 q0, q0, {cb}",
                "vmul.f32 q6, q6, q1",
                "vmul.f32 q7, q7, q0",
                "vstrw.32 q6, [{oa}], #16",
                "vstrw.32 q7, [{ob}], #16",
                "subs {n}, #1",
                "bne 2b",
                "vmrs {s}, fpscr",
                inout("r1") kv.rows.as_ptr().add(kv.off) => _,
                stride = in(reg) kv.row_len,
                ks = inout(reg) kv.scales.as_ptr() => _,
                qa = in(reg) qa.as_ptr(),
                qb = in(reg) qb.as_ptr(),
                ca = in(reg) c[0].to_bits(),
                cb = in(reg) c[1].to_bits(),
                oa = inout(reg) att_a.as_mut_ptr() => _,
                ob = inout(reg) att_b.as_mut_ptr() => _,
                n = inout(reg) blocks => _,
                s = inout(reg) sums.as_mut_ptr() => fpscr,
                out("r0") _,
                out("r2") _,
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
        if fpscr & 0x88 != 0 {
            // SAFETY: this function's own conditions, which are the DSP kernel's.
            return unsafe { super::dsp::scores2_i8(kv, q, c, [att_a, att_b]) };
        }
    }
    if done < n {
        let kv = HeadRows { rows: &kv.rows[done * kv.row_len..], scales: &kv.scales[done..], ..kv };
        // SAFETY: the rows from `done` on, with their scales: the caller's conditions for them.
        unsafe { super::dsp::scores2_i8(kv, q, c, [&mut att_a[done..], &mut att_b[done..]]) };
    }
}

/// One position `t` (lane `$j` of the weights block) of [`mix2_i8`]: the row's 8 values
/// (at r0) widened in two halves, times each head's weight, added to the outputs (head a in
/// q0, q1; head b in q2, q3); r0 moves to the next row.
macro_rules! mix_step {
    ($sa:literal, $sb:literal) => {
        concat!(
            "vmov {ra}, ",
            $sa,
            "\n",
            "vmov {rb}, ",
            $sb,
            "\n",
            "vldrb.s32 q6, [r0]\n",
            "vcvt.f32.s32 q6, q6\n",
            "vmul.f32 q7, q6, {ra}\n",
            "vadd.f32 q0, q0, q7\n",
            "vmul.f32 q7, q6, {rb}\n",
            "vadd.f32 q2, q2, q7\n",
            "vldrb.s32 q6, [r0, #4]\n",
            "vcvt.f32.s32 q6, q6\n",
            "vmul.f32 q7, q6, {ra}\n",
            "vadd.f32 q1, q1, q7\n",
            "vmul.f32 q7, q6, {rb}\n",
            "vadd.f32 q3, q3, q7\n",
            "add r0, {stride}\n",
        )
    };
}

/// See `generic::mix2_i8`: the outputs in
/// vectors (output element i in a lane: the scalar order per element), four positions per
/// step with their weights times the row scales computed as a vector. If a subnormal was
/// flushed (FPSCR's IDC/UFC) the scalar kernel redoes the work; it also takes the last
/// positions short of four.
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
    let blocks = n / 4;
    let done = 4 * blocks;
    if blocks > 0 {
        let (start_a, start_b) = (*out_a, *out_b);
        let fpscr: u32;
        // SAFETY: `Kernels::mix2_i8` checked that `rows` holds `n` rows of `row_len`
        // with `off + 8 <= row_len` and `row_scales` `n` scales; 4·blocks rows, weights and
        // scales are read, the 8 words of each output read and written. Every vector register
        // is declared clobbered, the core registers are operands (r0: widening loads need a
        // low register).
        unsafe {
            asm!(
                "vmrs {ra}, fpscr",
                "bic {ra}, {ra}, #0x9f",
                "vmsr fpscr, {ra}",
                "vldrw.u32 q0, [{oa}]",
                "vldrw.u32 q1, [{oa}, #16]",
                "vldrw.u32 q2, [{ob}]",
                "vldrw.u32 q3, [{ob}, #16]",
                "2:",
                "vldrw.u32 q4, [{aa}], #16",
                "vldrw.u32 q5, [{ab}], #16",
                "vldrw.u32 q6, [{vs}], #16",
                "vmul.f32 q4, q4, q6",
                "vmul.f32 q5, q5, q6",
                mix_step!("s16", "s20"),
                mix_step!("s17", "s21"),
                mix_step!("s18", "s22"),
                mix_step!("s19", "s23"),
                "subs {n}, {n}, #1",
                "bne 2b",
                "vstrw.32 q0, [{oa}]",
                "vstrw.32 q1, [{oa}, #16]",
                "vstrw.32 q2, [{ob}]",
                "vstrw.32 q3, [{ob}, #16]",
                "vmrs {ra}, fpscr",
                inout("r0") rows.as_ptr().add(off) => _,
                stride = in(reg) row_len,
                aa = inout(reg) att_a.as_ptr() => _,
                ab = inout(reg) att_b.as_ptr() => _,
                vs = inout(reg) row_scales.as_ptr() => _,
                oa = in(reg) out_a.as_mut_ptr(),
                ob = in(reg) out_b.as_mut_ptr(),
                n = inout(reg) blocks => _,
                ra = out(reg) fpscr,
                rb = out(reg) _,
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
        if fpscr & 0x88 != 0 {
            *out_a = start_a;
            *out_b = start_b;
            // SAFETY: this function's own conditions, which are the DSP kernel's.
            return unsafe {
                super::dsp::mix2_i8(rows, row_len, off, row_scales, att_a, att_b, out_a, out_b)
            };
        }
    }
    if done < n {
        // SAFETY: the rows from `done` on, with their scales: the caller's conditions for them.
        unsafe {
            super::dsp::mix2_i8(
                &rows[done * row_len..],
                row_len,
                off,
                &row_scales[done..],
                &att_a[done..n],
                &att_b[done..n],
                out_a,
                out_b,
            )
        };
    }
}
