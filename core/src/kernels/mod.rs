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

/// [`generic::softmax`] with the active backend.
pub fn softmax(x: &mut [f32]) {
    softmax_with(backend(), x)
}

/// [`generic::softmax`] with backend `b` (the scalar code where `b` has none).
pub fn softmax_with(b: Backend, x: &mut [f32]) {
    let _ = b;
    #[allow(unreachable_patterns)] // with `chispa_mve`, `Mve` is taken by the first arm
    match b {
        #[cfg(chispa_mve)]
        Backend::Mve => mve::softmax(x),
        #[cfg(chispa_fp16)]
        Backend::Dsp | Backend::Mve => dsp::softmax(x),
        _ => generic::softmax(x),
    }
}

/// [`generic::swiglu`] with the active backend.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    swiglu_with(backend(), gate, up)
}

/// [`generic::swiglu`] with backend `b` (the scalar code where `b` has none).
pub fn swiglu_with(b: Backend, gate: &mut [f32], up: &[f32]) {
    let _ = b;
    match b {
        #[cfg(chispa_mve)]
        Backend::Mve => mve::swiglu(gate, up),
        _ => generic::swiglu(gate, up),
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

/// The argument block of the Arm assembly row loops (`dsp.rs`, `mve.rs`), laid out as the
/// first words of their stack frame: the inputs as the loop reads them, whole groups per row,
/// the short last group in the loop's units, where each row's exact i64 sum goes, rows, then
/// the weights and the multipliers (both read in order, row after row).
#[allow(dead_code)] // used only by the Arm back ends
#[repr(C)]
pub(crate) struct RowArgs {
    x: *const u8,
    full: u32,
    tail: u32,
    acc: *mut i64,
    rows: u32,
    w: *const u8,
    mults: *const u8,
}

/// An assembly row loop: `RowArgs::rows` (≥ 1) rows, each `full` (≥ 1) whole groups and the
/// tail, sums stored at `acc`; AAPCS callee-saved registers kept.
#[allow(dead_code)] // used only by the Arm back ends
pub(crate) type RowLoop = unsafe extern "C" fn(*const RowArgs);

/// Rows per call of a [`RowLoop`] (their i64 sums wait on the stack for
/// [`generic::finish_row`]).
#[allow(dead_code)] // used only by the Arm back ends
const ROW_BLOCK: usize = 32;

/// Runs `f` over `out.len()` rows in blocks of [`ROW_BLOCK`] and ends each row as the scalar
/// code does. `tail_unit`: the inputs per unit of [`RowArgs::tail`].
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
    let (cols, groups) = (w.cols, w.groups());
    let mut acc = [0i64; ROW_BLOCK];
    for (c, outs) in out.chunks_mut(ROW_BLOCK).enumerate() {
        let first = c * ROW_BLOCK;
        let args = RowArgs {
            x,
            full: (cols / w.group) as u32,
            tail: (cols % w.group / tail_unit) as u32,
            acc: acc.as_mut_ptr(),
            rows: outs.len() as u32,
            w: w.q[first * cols..].as_ptr() as *const u8,
            mults: w.mults[first * groups..].as_ptr(),
        };
        // SAFETY: the caller's conditions, for rows `first..first + outs.len()`; the call
        // writes `outs.len()` ≤ ROW_BLOCK sums into `acc`.
        unsafe { f(&args) };
        let rs = &w.row_scales[first..first + outs.len()];
        for ((o, a), r) in outs.iter_mut().zip(&acc).zip(rs) {
            *o = generic::finish_row(*a, *r, x_scale);
        }
    }
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
