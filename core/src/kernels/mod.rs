//! Compute kernels: the contract every backend follows, and the selection point.
//!
//! # Contract (the numerics specification)
//!
//! Exactness across backends is free where the arithmetic is integer: an integer sum has one
//! value whatever the order. The matmul is integer up to one rounding per output.
//!
//! * `quantize_act`: int16, one scale per activation vector, `scale = max|x| / 32767` and
//!   `q = round_half_even(x · (32767 / max|x|))` (max below 2^-100, infinite or absent: zeros).
//! * `matvec_i8`: each weight row has an f32 scale and, per group of `group` inputs, a u8
//!   multiplier; `out[r] = (Σ_g m[r,g] · Σ_{j∈g} w[r,j]·q[j]) as f32 · (row_scale · x_scale)`,
//!   the sum exact (i32 within a group of at most 256, i64 across groups), rounded to f32 once (nearest even).
//!   Any order, any lane layout, any split across threads gives the same bits.
//! * `matvec_f32` (the unquantized reference files only): for each row, `acc += w[j] · x[j]`
//!   for j = 0, 1, 2, … (no fused multiply-add).
//!
//! `generic` is the scalar twin and the specification; every SIMD backend lives in its own file
//! beside it and is tested against it (exactly, for every i8 input including −128).
//!
//! # Backends and their selection
//!
//! | backend | file | where | chosen |
//! |---|---|---|---|
//! | `scalar` | `generic.rs` | everywhere | always available |
//! | `avx2` | `avx2.rs` | x86-64 with AVX2 | at run time (CPUID) |
//! | `avx512` | `avx512.rs` | x86-64 with AVX-512 BW + VNNI | at run time (CPUID) |
//! | `neon` | `neon.rs` | AArch64 (NEON is baseline) | at compile time |
//! | `dsp` | `dsp.rs` | Cortex-M4/M7/M33 (`SXTB16`/`SMLAD`) and ARMv7-A | `build.rs` cfg `chispa_dsp` |
//! | `mve` | `mve.rs` | Cortex-M55/M85 (Helium) | `build.rs` cfg `chispa_mve` |
//!
//! One process-wide choice, held in an atomic byte and read once per matmul. Without the `std`
//! feature the default is the best backend the build targets (`mve`, `dsp`, `neon`, else
//! `scalar`); x86 SIMD then needs an explicit [`set_backend`], which refuses a backend the CPU
//! lacks. With the `std` feature (the desktop runner, the tests) the first matmul resolves the
//! choice: `$CHISPA_BACKEND` if set to a supported name, else the best the CPU has.

//! The instruction-set modules are private: their functions index with raw pointers and are
//! reached only through the wrappers here, which check every length first. From outside the
//! kernels they do not compile:
//!
//! ```compile_fail
//! let mut out = [0f32; 4];
//! let w = chispa_core::kernels::generic::I8Matrix {
//!     q: &[], row_scales: &[], mults: &[], cols: 64, group: 32,
//! };
//! chispa_core::kernels::avx2::matvec_i8(&mut out, &w, &[1; 64], 1.0);
//! ```

use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

/// The entry of an Arm assembly row loop (`dsp.rs`, `mve.rs`; AAPCS, hard-float): saves
/// r4–r11, lr and s16–s19, loads the [`RowArgs`] at r0 (weights into `$w`, multipliers into
/// `$m`, output into s17, rows into s19, row scales into s18, the input scale into s16) and
/// leaves the inputs, whole groups per row and tail units on the stack (`[sp]`, `[sp, #4]`,
/// `[sp, #8]`).
#[allow(unused_macros)]
macro_rules! rows_prologue {
    ($w:literal, $m:literal) => {
        concat!(
            "push {{r4, r5, r6, r7, r8, r9, r10, r11, lr}}\n",
            "vpush {{s16, s17, s18, s19}}\n",
            "vldr s18, [r0, #28]\n",
            "vldr s16, [r0, #32]\n",
            "ldm r0, {{r1, r2, r3, r4, r5, r6, r7}}\n",
            "push {{r1, r2, r3}}\n",
            "vmov s17, r4\n",
            "vmov s19, r5\n",
            "mov ",
            $w,
            ", r6\n",
            "mov ",
            $m,
            ", r7\n",
        )
    };
}

/// The end of a row in an Arm assembly row loop: the exact sum in `$lo:$hi` rounded to f32
/// once (from i32 with `VCVT` when it fits, else by `__aeabi_l2f`, round to nearest even),
/// times `row_scale · x_scale`, stored; then the next row (label `1`) or the exit. Uses r2,
/// r3, s0 and s1; keeps every other register (the library call's are saved around it).
#[allow(unused_macros)]
macro_rules! row_end {
    ($lo:literal, $hi:literal) => {
        concat!(
            "cmp ",
            $hi,
            ", ",
            $lo,
            ", asr #31\n",
            "bne 7f\n",
            "vmov s0, ",
            $lo,
            "\n",
            "vcvt.f32.s32 s0, s0\n",
            "5:\n",
            "vmov r2, r3, s17, s18\n",
            "vldmia r3!, {{s1}}\n",
            "vmul.f32 s1, s1, s16\n",
            "vmul.f32 s0, s0, s1\n",
            "vstmia r2!, {{s0}}\n",
            "vmov s17, s18, r2, r3\n",
            "vmov r2, s19\n",
            "subs r2, r2, #1\n",
            "vmov s19, r2\n",
            "bne 1b\n",
            "add sp, sp, #12\n",
            "vpop {{s16, s17, s18, s19}}\n",
            "pop {{r4, r5, r6, r7, r8, r9, r10, r11, pc}}\n",
            "7:\n",
            "push {{r0, r1, r2, r3, r12, lr}}\n",
            "mov r0, ",
            $lo,
            "\n",
            "mov r1, ",
            $hi,
            "\n",
            "bl __aeabi_l2f\n",
            "vmov s0, r0\n",
            "pop {{r0, r1, r2, r3, r12, lr}}\n",
            "b 5b\n",
        )
    };
}

#[cfg(all(target_arch = "x86_64", any(feature = "std", test)))]
#[allow(unsafe_code)]
mod avx2;
#[cfg(all(target_arch = "x86_64", any(feature = "std", test)))]
#[allow(unsafe_code)]
mod avx512;
#[cfg(chispa_dsp)]
#[allow(unsafe_code)]
mod dsp;
pub mod generic;
#[cfg(chispa_mve)]
#[allow(unsafe_code)]
mod mve;
#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
mod neon;
#[cfg(any(test, feature = "selftest"))]
pub mod selftest;

pub use generic::{
    dequantize_row_i8, matvec_f32, quantize_act, quantize_row_i8, I8Matrix, MAX_GROUP,
};

/// A kernel implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Backend {
    /// Portable scalar code (`generic.rs`): the specification.
    Scalar = 0,
    /// x86-64 AVX2.
    Avx2 = 1,
    /// x86-64 AVX-512 (BW, VL, VNNI).
    Avx512 = 2,
    /// AArch64 NEON.
    Neon = 3,
    /// Arm DSP extension (`SXTB16`/`SMLAD`).
    Dsp = 4,
    /// Arm Helium (M-profile vector extension).
    Mve = 5,
}

/// Every backend, in order of preference from worst to best.
pub const ALL_BACKENDS: [Backend; 6] =
    [Backend::Scalar, Backend::Avx2, Backend::Avx512, Backend::Neon, Backend::Dsp, Backend::Mve];

/// A backend this build or this CPU cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Unsupported(pub Backend);

impl core::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "backend {} is not available on this build or CPU", self.0.name())
    }
}

impl core::error::Error for Unsupported {}

impl Backend {
    /// The name used by `--backend` and `$CHISPA_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
            Self::Neon => "neon",
            Self::Dsp => "dsp",
            Self::Mve => "mve",
        }
    }

    /// The backend called `name` (`generic` is accepted for `scalar`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "generic" => Some(Self::Scalar),
            _ => ALL_BACKENDS.iter().copied().find(|b| b.name() == name),
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        ALL_BACKENDS.get(v as usize).copied()
    }

    /// Whether this build can run the backend on this CPU.
    pub fn is_supported(self) -> bool {
        match self {
            Self::Scalar => true,
            #[cfg(all(target_arch = "x86_64", any(feature = "std", test)))]
            Self::Avx2 => avx2::detected(),
            #[cfg(all(target_arch = "x86_64", any(feature = "std", test)))]
            Self::Avx512 => avx512::detected(),
            #[cfg(target_arch = "aarch64")]
            Self::Neon => true,
            #[cfg(chispa_dsp)]
            Self::Dsp => true,
            #[cfg(chispa_mve)]
            Self::Mve => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The fastest supported backend.
    pub fn best() -> Self {
        ALL_BACKENDS.iter().rev().copied().find(|b| b.is_supported()).unwrap_or(Self::Scalar)
    }
}

/// Not yet resolved (only with `std`: resolved on first use).
#[cfg(any(feature = "std", test))]
const UNSET: u8 = u8::MAX;

#[cfg(any(feature = "std", test))]
static ACTIVE: AtomicU8 = AtomicU8::new(UNSET);
#[cfg(not(any(feature = "std", test)))]
static ACTIVE: AtomicU8 = AtomicU8::new(compile_time_best() as u8);

#[cfg(not(any(feature = "std", test)))]
const fn compile_time_best() -> Backend {
    if cfg!(chispa_mve) {
        Backend::Mve
    } else if cfg!(chispa_dsp) {
        Backend::Dsp
    } else if cfg!(target_arch = "aarch64") {
        Backend::Neon
    } else {
        Backend::Scalar
    }
}

/// Selects the backend every later matmul uses (process-wide).
pub fn set_backend(b: Backend) -> Result<(), Unsupported> {
    if !b.is_supported() {
        return Err(Unsupported(b));
    }
    ACTIVE.store(b as u8, Ordering::Relaxed);
    Ok(())
}

/// `$CHISPA_BACKEND` if set: `Ok(None)` when unset, an error for an unknown or unsupported name.
#[cfg(any(feature = "std", test))]
pub fn backend_from_env() -> Result<Option<Backend>, EnvBackendError> {
    extern crate std;
    match std::env::var("CHISPA_BACKEND") {
        Err(_) => Ok(None),
        Ok(s) if s.is_empty() => Ok(None),
        Ok(s) => match Backend::from_name(&s) {
            None => Err(EnvBackendError::Unknown),
            Some(b) if !b.is_supported() => Err(EnvBackendError::Unsupported(b)),
            Some(b) => Ok(Some(b)),
        },
    }
}

/// A bad `$CHISPA_BACKEND`.
#[cfg(any(feature = "std", test))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvBackendError {
    /// Not a backend name.
    Unknown,
    /// A backend this build or CPU cannot run.
    Unsupported(Backend),
}

/// The backend in use.
pub fn backend() -> Backend {
    let v = ACTIVE.load(Ordering::Relaxed);
    if let Some(b) = Backend::from_u8(v) {
        return b;
    }
    resolve()
}

#[cfg(any(feature = "std", test))]
#[cold]
fn resolve() -> Backend {
    // A bad `$CHISPA_BACKEND` falls back to the specification; the runner reports it first.
    let b = match backend_from_env() {
        Ok(Some(b)) => b,
        Ok(None) => Backend::best(),
        Err(_) => Backend::Scalar,
    };
    ACTIVE.store(b as u8, Ordering::Relaxed);
    b
}

#[cfg(not(any(feature = "std", test)))]
fn resolve() -> Backend {
    Backend::Scalar
}

/// The signature of `matvec_i8`, for a host's replacement (see [`set_matvec_i8_hook`]).
pub type MatvecI8 = fn(&mut [f32], &I8Matrix<'_>, &[i16], f32);

/// A host's replacement for `matvec_i8`, or null.
static HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Routes every later `matvec_i8` through `f` (process-wide; `None` restores the direct call).
///
/// The core stays single-threaded: this is how the desktop runner splits rows across threads.
/// `f` must compute what [`matvec_i8_with`] computes (e.g. by calling it on row ranges).
pub fn set_matvec_i8_hook(f: Option<MatvecI8>) {
    HOOK.store(f.map_or(core::ptr::null_mut(), |f| f as *mut ()), Ordering::Release);
}

/// `matvec_i8` (see the contract) with the active backend, or the host's hook if one is set.
#[inline]
#[allow(unsafe_code)]
pub fn matvec_i8(out: &mut [f32], w: &I8Matrix<'_>, xq: &[i16], x_scale: f32) {
    let h = HOOK.load(Ordering::Acquire);
    if !h.is_null() {
        // SAFETY: only `set_matvec_i8_hook` stores a non-null value, and it stores a `MatvecI8`
        // function pointer cast to `*mut ()`; fn pointers and data pointers have one size here.
        let f = unsafe { core::mem::transmute::<*mut (), MatvecI8>(h) };
        return f(out, w, xq, x_scale);
    }
    matvec_i8_with(backend(), out, w, xq, x_scale)
}

/// `matvec_i8` with backend `b`; an unsupported `b` runs the scalar code. A matrix whose slices
/// do not hold `out.len()` rows, a group over [`MAX_GROUP`] or `xq` shorter than a row sets
/// `out` to NaN (`Model::parse` rules all three out).
pub fn matvec_i8_with(b: Backend, out: &mut [f32], w: &I8Matrix<'_>, xq: &[i16], x_scale: f32) {
    // The SIMD kernels index with raw pointers: check every length they rely on here, once.
    if !(w.holds(out.len()) && xq.len() >= w.cols) {
        return out.fill(f32::NAN);
    }
    match b {
        #[cfg(all(target_arch = "x86_64", any(feature = "std", test)))]
        Backend::Avx2 if avx2::detected() => avx2::matvec_i8(out, w, xq, x_scale),
        #[cfg(all(target_arch = "x86_64", any(feature = "std", test)))]
        Backend::Avx512 if avx512::detected() => avx512::matvec_i8(out, w, xq, x_scale),
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => neon::matvec_i8(out, w, xq, x_scale),
        #[cfg(chispa_dsp)]
        Backend::Dsp => dsp::matvec_i8(out, w, xq, x_scale),
        #[cfg(chispa_mve)]
        Backend::Mve => mve::matvec_i8(out, w, xq, x_scale),
        _ => generic::matvec_i8(out, w, xq, x_scale),
    }
}

/// Whether the arguments of [`scores2_i8`]/[`mix2_i8`] cover what the kernels read.
fn attention_fits(rows: &[i8], row_len: usize, off: usize, scales: &[f32], n: usize) -> bool {
    n == 0
        || (off + 8 <= row_len
            && scales.len() >= n
            && (n - 1).checked_mul(row_len).is_some_and(|r| r + row_len <= rows.len()))
}

/// [`generic::scores_f32`] with the active backend.
pub fn scores_f32(
    rows: &[f32],
    row_len: usize,
    off: usize,
    q: &[f32],
    scale: f32,
    att: &mut [f32],
) {
    scores_f32_with(backend(), rows, row_len, off, q, scale, att)
}

/// [`generic::scores_f32`] with backend `b` (the scalar code where `b` has none).
pub fn scores_f32_with(
    b: Backend,
    rows: &[f32],
    row_len: usize,
    off: usize,
    q: &[f32],
    scale: f32,
    att: &mut [f32],
) {
    let _ = b;
    match b {
        #[cfg(all(target_arch = "x86_64", any(feature = "std", test)))]
        Backend::Avx2 | Backend::Avx512 if avx2::detected() => {
            avx2::scores_f32(rows, row_len, off, q, scale, att)
        }
        _ => generic::scores_f32(rows, row_len, off, q, scale, att),
    }
}

/// [`generic::mix_f32`] with the active backend.
pub fn mix_f32(rows: &[f32], row_len: usize, off: usize, att: &[f32], out: &mut [f32]) {
    mix_f32_with(backend(), rows, row_len, off, att, out)
}

/// [`generic::mix_f32`] with backend `b` (the scalar code where `b` has none).
pub fn mix_f32_with(
    b: Backend,
    rows: &[f32],
    row_len: usize,
    off: usize,
    att: &[f32],
    out: &mut [f32],
) {
    let _ = b;
    match b {
        #[cfg(all(target_arch = "x86_64", any(feature = "std", test)))]
        Backend::Avx2 | Backend::Avx512 if avx2::detected() => {
            avx2::mix_f32(rows, row_len, off, att, out)
        }
        _ => generic::mix_f32(rows, row_len, off, att, out),
    }
}

/// [`generic::scores2_i8`] with the active backend.
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
    scores2_i8_with(backend(), rows, row_len, off, row_scales, q_a, q_b, scale, att_a, att_b)
}

/// [`generic::scores2_i8`] with backend `b` (the scalar code where `b` has none).
#[allow(clippy::too_many_arguments)]
pub fn scores2_i8_with(
    b: Backend,
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
    let n = att_a.len();
    if att_b.len() != n || !attention_fits(rows, row_len, off, row_scales, n) {
        return generic::scores2_i8(rows, row_len, off, row_scales, q_a, q_b, scale, att_a, att_b);
    }
    let _ = b;
    #[allow(unreachable_patterns)] // with `chispa_mve`, `Mve` is taken by the first arm
    match b {
        #[cfg(chispa_mve)]
        Backend::Mve => {
            mve::scores2_i8(rows, row_len, off, row_scales, q_a, q_b, scale, att_a, att_b)
        }
        #[cfg(chispa_fp16)]
        Backend::Dsp | Backend::Mve => {
            dsp::scores2_i8(rows, row_len, off, row_scales, q_a, q_b, scale, att_a, att_b)
        }
        _ => generic::scores2_i8(rows, row_len, off, row_scales, q_a, q_b, scale, att_a, att_b),
    }
}

/// [`generic::mix2_i8`] with the active backend.
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
    mix2_i8_with(backend(), rows, row_len, off, row_scales, att_a, att_b, out_a, out_b)
}

/// [`generic::mix2_i8`] with backend `b` (the scalar code where `b` has none).
#[allow(clippy::too_many_arguments)]
pub fn mix2_i8_with(
    b: Backend,
    rows: &[i8],
    row_len: usize,
    off: usize,
    row_scales: &[f32],
    att_a: &[f32],
    att_b: &[f32],
    out_a: &mut [f32; 8],
    out_b: &mut [f32; 8],
) {
    let n = att_a.len();
    if att_b.len() != n || !attention_fits(rows, row_len, off, row_scales, n) {
        return generic::mix2_i8(rows, row_len, off, row_scales, att_a, att_b, out_a, out_b);
    }
    let _ = b;
    #[allow(unreachable_patterns)] // with `chispa_mve`, `Mve` is taken by the first arm
    match b {
        #[cfg(chispa_mve)]
        Backend::Mve => mve::mix2_i8(rows, row_len, off, row_scales, att_a, att_b, out_a, out_b),
        #[cfg(chispa_fp16)]
        Backend::Dsp | Backend::Mve => {
            dsp::mix2_i8(rows, row_len, off, row_scales, att_a, att_b, out_a, out_b)
        }
        _ => generic::mix2_i8(rows, row_len, off, row_scales, att_a, att_b, out_a, out_b),
    }
}

/// The argument block of the Arm assembly row loops (`dsp.rs`, `mve.rs`; see
/// [`rows_prologue!`]): the inputs as the loop reads them, whole groups per row, the short
/// last group in the loop's units, the output, rows, then the weights and the multipliers
/// (both read in order, row after row), the row scales and the input scale.
#[allow(dead_code)] // used only by the Arm back ends
#[repr(C)]
pub(crate) struct RowArgs {
    x: *const u8,
    full: u32,
    tail: u32,
    out: *mut f32,
    rows: u32,
    w: *const u8,
    mults: *const u8,
    row_scales: *const f32,
    x_scale: f32,
}

/// An assembly row loop: `RowArgs::rows` (≥ 1) rows, each `full` (≥ 1) whole groups and the
/// tail, each row ended as [`generic::finish_row`] does; AAPCS callee-saved registers kept.
#[allow(dead_code)] // used only by the Arm back ends
pub(crate) type RowLoop = unsafe extern "C" fn(*const RowArgs);

/// Runs `f` over the `out.len()` rows. `tail_unit`: the inputs per unit of `RowArgs::tail`.
///
/// # Safety
/// `w.holds(out.len())`, `w.cols >= w.group`, and `f` may read, for each of those rows, its
/// `cols` weights, its multipliers and the inputs at `x` (as `f` lays them out).
#[allow(dead_code, unsafe_code)] // used only by the Arm back ends; calls their assembly
#[inline(always)]
pub(crate) unsafe fn row_blocks(
    out: &mut [f32],
    w: &I8Matrix<'_>,
    x: *const u8,
    x_scale: f32,
    tail_unit: usize,
    f: RowLoop,
) {
    if out.is_empty() {
        return;
    }
    let args = RowArgs {
        x,
        full: (w.cols / w.group) as u32,
        tail: (w.cols % w.group / tail_unit) as u32,
        out: out.as_mut_ptr(),
        rows: out.len() as u32,
        w: w.q.as_ptr() as *const u8,
        mults: w.mults.as_ptr(),
        row_scales: w.row_scales.as_ptr(),
        x_scale,
    };
    // SAFETY: the caller's conditions for the `out.len()` (≥ 1) rows; the call writes
    // `out.len()` outputs and reads as many row scales (`w.holds`).
    unsafe { f(&args) };
}

/// The row driver of kernels that vectorise within a group (NEON, DSP, Helium): for each row,
/// `group_sum` (exact i32) of every group times its multiplier, summed in i64, then
/// [`generic::finish_row`]. Only `group_sum` differs between them.
#[allow(dead_code)] // used only by the Arm back ends
#[inline(always)]
pub(crate) fn rows_by_group(
    out: &mut [f32],
    w: &I8Matrix<'_>,
    xq: &[i16],
    x_scale: f32,
    group_sum: impl Fn(&[i8], &[i16]) -> i32,
) {
    let (cols, group, groups) = (w.cols, w.group.max(1), w.groups());
    let rows = w.q.chunks_exact(cols.max(1)).zip(w.mults.chunks_exact(groups.max(1)));
    for ((o, (wr, mr)), rs) in out.iter_mut().zip(rows).zip(w.row_scales) {
        let mut acc = 0i64;
        for ((wg, xg), m) in wr.chunks(group).zip(xq[..cols].chunks(group)).zip(mr) {
            acc += i64::from(group_sum(wg, xg)) * i64::from(*m);
        }
        *o = generic::finish_row(acc, *rs, x_scale);
    }
}

#[cfg(test)]
mod tests;
