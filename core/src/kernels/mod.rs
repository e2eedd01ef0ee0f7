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
//! * `matvec_i4`: the same with 4-bit signed weights (−8..=7, two per byte, the even column
//!   in the low nibble; each row starts on a byte): `out[r] = (Σ_g m[r,g] · Σ_{j∈g}
//!   w4[r,j]·q[j]) as f32 · (row_scale · x_scale)`, the sum exact (a group's at most
//!   256 · 8 · 32768 = 2^26), rounded once. A backend without an int4 kernel runs the scalar
//!   one through the table: the same bits by construction.
//! * `matvec_f32` (the unquantized reference files only): for each row, `acc += w[j] · x[j]`
//!   for j = 0, 1, 2, … (no fused multiply-add).
//! * `scores2_i8` (attention over int8 keys): the query quantized like an activation (int16,
//!   scale `q_s`), `score[t] = (Σ_i q_i · k_t,i) as f32 · (row_scale_t · q_s / sqrt(head))`,
//!   the sum exact: any order.
//! * `exp` (softmax, SwiGLU): a fixed sequence of f32 operations, [`generic::exp`], not a libm;
//!   softmax sums in index order and divides.
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
//! No global: a [`Kernels`] table, chosen once and carried by each `Session`
//! ([`Kernels::default`]: the best backend the build and CPU run — x86 SIMD is detected with
//! the `std` feature only — or, with `std`, `$CHISPA_BACKEND` when it names a supported one).

//! The instruction-set modules are private: their functions are `unsafe fn`s that index with
//! raw pointers, reached only through the table's methods, which check every length first.
//! From outside the kernels they do not compile:
//!
//! ```compile_fail
//! let mut out = [0f32; 4];
//! let w = chispa_core::kernels::generic::I8Matrix {
//!     q: &[], row_scales: &[], mults: &[], cols: 64, group: 32,
//! };
//! chispa_core::kernels::avx2::matvec_i8(&mut out, &w, &[1; 64], 1.0);
//! ```

/// The directives that open an Arm assembly function `$name` (a global, in its own section),
/// assembled in `$mode` (the instruction set and CPU lines), then its label.
#[allow(unused_macros)]
macro_rules! asm_function {
    ($name:literal, $mode:expr) => {
        concat!(
            ".syntax unified\n.section .text.",
            $name,
            ",\"ax\",%progbits\n.globl ",
            $name,
            "\n.type ",
            $name,
            ",%function\n.p2align 2\n",
            $mode,
            "\n",
            $name,
            ":\n",
        )
    };
}

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
/// once (from i32 with `VCVT` when it fits, else shifted into i32 with a sticky bit first;
/// round to nearest even), times `row_scale · x_scale` (the input scale in s16), stored; then
/// the next row (label `1`) or the exit. `$store` is the bookkeeping that does it: it starts
/// at label `5` with the rounded sum in s0, and may use r2, r3 and s1 (see
/// [`row_store_fp!`], [`row_store_core!`]). Uses r2, r3, s0 and s1; keeps every other
/// register.
#[allow(unused_macros)]
macro_rules! row_end {
    ($lo:literal, $hi:literal, $store:expr) => {
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
            $store,
            "7:\n",
            // The sum does not fit i32: shifted right by k (1..=32, so that it does), the
            // bits shifted out kept as a sticky bit 0, converted (round to nearest even:
            // the sticky bit decides ties as the lost bits would), times 2^k (exact).
            "push {{r0, r1}}\n",
            "eor r2, ",
            $hi,
            ", ",
            $hi,
            ", asr #31\n",
            "clz r2, r2\n",
            "rsb r2, r2, #33\n",
            "rsb r3, r2, #32\n",
            "lsl r0, ",
            $lo,
            ", r3\n",
            "lsr r1, ",
            $lo,
            ", r2\n",
            "lsl r3, ",
            $hi,
            ", r3\n",
            "orr r1, r1, r3\n",
            "cmp r0, #0\n",
            "it ne\n",
            "orrne r1, r1, #1\n",
            "vmov s0, r1\n",
            "vcvt.f32.s32 s0, s0\n",
            "add r2, r2, #127\n",
            "lsl r2, r2, #23\n",
            "vmov s1, r2\n",
            "vmul.f32 s0, s0, s1\n",
            "pop {{r0, r1}}\n",
            "b 5b\n",
        )
    };
}

/// [`row_end!`]'s bookkeeping with the output and row-scale pointers and the rows left in
/// s17, s18 and s19 (for loops that need every core register).
#[allow(unused_macros)]
macro_rules! row_store_fp {
    () => {
        concat!(
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
        )
    };
}

/// [`row_end!`]'s bookkeeping with the output and row-scale pointers and the rows left in
/// r8, r9 and r10 (set from s17–s19 by [`rows_in_core!`]), for loops that leave them free.
#[allow(unused_macros)]
macro_rules! row_store_core {
    () => {
        concat!(
            "vldmia r9!, {{s1}}\n",
            "vmul.f32 s1, s1, s16\n",
            "vmul.f32 s0, s0, s1\n",
            "vstmia r8!, {{s0}}\n",
            "subs r10, r10, #1\n",
            "bne 1b\n",
            "add sp, sp, #12\n",
            "vpop {{s16, s17, s18, s19}}\n",
            "pop {{r4, r5, r6, r7, r8, r9, r10, r11, pc}}\n",
        )
    };
}

/// After [`rows_prologue!`]: the output and row-scale pointers and the row count into r8, r9
/// and r10, for [`row_store_core!`].
#[allow(unused_macros)]
macro_rules! rows_in_core {
    () => {
        "vmov r8, s17\nvmov r9, s18\nvmov r10, s19\n"
    };
}

/// Declares the kernel table: per operation its function type, its scalar specification and
/// the self-test check that compares a backend's kernel with it, bit for bit. From one list it
/// makes [`Kernels`] (a field per operation), [`Kernels::generic`] (every field the
/// specification) and `CHECKS`, which `selftest::run` runs on the board and the host tests
/// run for every backend and operation: an operation cannot enter the table without its test.
macro_rules! kernel_table {
    ($($(#[doc = $doc:literal])* $op:ident: $ty:ty = $spec:path, check $check:path;)*) => {
        /// The kernel table: one function per operation, chosen once (after sonos/tract's
        /// `linalg`): [`Kernels::generic`] fills it with the scalar specification, then a
        /// backend's `plug` (one per instruction-set file) replaces what that backend does
        /// better. A [`Session`] carries one, so two sessions can run different backends;
        /// every method checks the lengths its kernels rely on, so no call through the table
        /// can read out of bounds.
        ///
        /// Adding a backend: its file with `detected()`, `plug(&mut Kernels)` and `unsafe fn`
        /// kernels, and its line in the `backends!` table at the top of this module. Adding
        /// an operation: its line in the `kernel_table!` list, with its self-test check.
        ///
        /// [`Session`]: crate::Session
        #[derive(Clone, Copy)]
        pub struct Kernels {
            backend: Backend,
            $($(#[doc = $doc])* $op: $ty,)*
            /// Threads that share the matmuls' rows (the desktop's table variant).
            #[cfg(feature = "std")]
            pool: Option<&'static pool::Pool>,
        }

        impl Kernels {
            /// The scalar specification for every operation.
            pub fn generic() -> Self {
                Self {
                    backend: Backend::Scalar,
                    $($op: $spec,)*
                    #[cfg(feature = "std")]
                    pool: None,
                }
            }
        }

        /// Every operation's self-test check, in the table's order: the operation's name and
        /// the function that runs backend `b`'s kernel against the scalar one.
        #[cfg(any(test, feature = "selftest"))]
        pub(crate) const CHECKS: &[(&str, fn(Backend, &mut selftest::Report))] =
            &[$((stringify!($op), $check)),*];
    };
}

/// The backends: one line each (after the scalar specification, which is always there), in
/// order of preference from worst to best: the variant, its number, its `--backend` name, its
/// file (a private module with `detected()`, `plug(&mut Kernels)` and `unsafe fn` kernels)
/// and the `cfg` under which the file is built. This one table declares the module, the
/// [`Backend`] variant, its name, its detection and its place in [`Kernels::for_backend`].
macro_rules! backends {
    ($($(#[doc = $doc:literal])* $variant:ident = $n:literal, $name:literal, $module:ident,
        cfg($($cfg:tt)*);)*) => {
        $(
            #[cfg($($cfg)*)]
            #[allow(unsafe_code)]
            mod $module;
        )*

        /// A kernel implementation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[repr(u8)]
        pub enum Backend {
            /// Portable scalar code (`generic.rs`): the specification.
            Scalar = 0,
            $($(#[doc = $doc])* $variant = $n,)*
        }

        /// Every backend, in order of preference from worst to best.
        pub const ALL_BACKENDS: [Backend; 1 + [$($n),*].len()] =
            [Backend::Scalar, $(Backend::$variant),*];

        impl Backend {
            /// The name used by `--backend` and `$CHISPA_BACKEND`.
            pub fn name(self) -> &'static str {
                match self {
                    Self::Scalar => "scalar",
                    $(Self::$variant => $name,)*
                }
            }

            /// Whether this build can run the backend on this CPU.
            pub fn is_supported(self) -> bool {
                match self {
                    Self::Scalar => true,
                    $(
                        #[cfg($($cfg)*)]
                        Self::$variant => $module::detected(),
                    )*
                    #[allow(unreachable_patterns)]
                    _ => false,
                }
            }

            /// Replaces in `k` what this backend does better than the scalar code (nothing for
            /// the scalar backend, or for one this build does not have).
            #[allow(unused_variables)] // a build with no backend file
            fn plug(self, k: &mut Kernels) {
                match self {
                    $(
                        #[cfg($($cfg)*)]
                        Self::$variant => $module::plug(k),
                    )*
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }
        }
    };
}

backends! {
    /// x86-64 AVX2.
    Avx2 = 1, "avx2", avx2, cfg(all(target_arch = "x86_64", any(feature = "std", test)));
    /// x86-64 AVX-512 (BW, VL, VNNI).
    Avx512 = 2, "avx512", avx512, cfg(all(target_arch = "x86_64", any(feature = "std", test)));
    /// AArch64 NEON.
    Neon = 3, "neon", neon, cfg(target_arch = "aarch64");
    /// Arm DSP extension (`SXTB16`/`SMLAD`).
    Dsp = 4, "dsp", dsp, cfg(chispa_dsp);
    /// Arm Helium (M-profile vector extension).
    Mve = 5, "mve", mve, cfg(chispa_mve);
}

pub mod generic;
#[cfg(feature = "std")]
#[allow(unsafe_code)]
pub mod pool;
#[cfg(any(test, feature = "selftest"))]
pub mod selftest;

pub use generic::{
    dequantize_row_i4, dequantize_row_i8, matvec_f32, quantize_act, quantize_row_i8, I4Matrix,
    I8Matrix, MAX_GROUP,
};

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
    /// The backend called `name` (`generic` is accepted for `scalar`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "generic" => Some(Self::Scalar),
            _ => ALL_BACKENDS.iter().copied().find(|b| b.name() == name),
        }
    }

    /// This backend's kernel table ([`Kernels::for_backend`]; the scalar one where this build
    /// or CPU cannot run it).
    pub fn kernels(self) -> Kernels {
        Kernels::for_backend(self).unwrap_or_else(|_| Kernels::generic())
    }

    /// The fastest supported backend.
    pub fn best() -> Self {
        ALL_BACKENDS.iter().rev().copied().find(|b| b.is_supported()).unwrap_or(Self::Scalar)
    }
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

/// An ISA module's int8 matmul. # Safety: the lengths [`Kernels::matvec_i8`] checks hold and
/// the CPU runs the module's instructions.
type MatvecFn = unsafe fn(&mut [f32], &I8Matrix<'_>, &[i16], f32);
/// An ISA module's int4 matmul. # Safety: the lengths [`Kernels::matvec_i4`] checks hold and
/// the CPU runs the module's instructions.
type MatvecI4Fn = unsafe fn(&mut [f32], &I4Matrix<'_>, &[i16], f32);
/// An ISA module's f32 attention scores (as [`generic::scores_f32`]). # Safety: the CPU runs
/// the module's instructions.
type ScoresF32Fn = unsafe fn(&[f32], usize, usize, &[f32], f32, &mut [f32]);
/// An ISA module's f32 attention output (as [`generic::mix_f32`]). # Safety: as [`ScoresF32Fn`].
type MixF32Fn = unsafe fn(&[f32], usize, usize, &[f32], &mut [f32]);
/// An ISA module's paired int8 attention scores (as [`generic::scores2_i8`]). # Safety: the
/// lengths [`Kernels::scores2_i8`] checks hold and the CPU runs the module's instructions.
type Scores2I8Fn = unsafe fn(HeadRows<'_, i8>, [&[i16]; 2], [f32; 2], [&mut [f32]; 2]);
/// An ISA module's paired int8 attention output (as [`generic::mix2_i8`]). # Safety: as
/// [`Scores2I8Fn`], for [`Kernels::mix2_i8`].
type Mix2I8Fn =
    unsafe fn(&[i8], usize, usize, &[f32], &[f32], &[f32], &mut [f32; 8], &mut [f32; 8]);

/// An ISA module's softmax (as [`generic::softmax`]). # Safety: the CPU runs the module's
/// instructions.
type SoftmaxFn = unsafe fn(&mut [f32]);
/// An ISA module's SwiGLU (as [`generic::swiglu`]). # Safety: as [`SoftmaxFn`].
type SwigluFn = unsafe fn(&mut [f32], &[f32]);

/// Cached rows as attention reads them: `rows` of `row_len` elements each (one layer's
/// `[ctx, kv_dim]`), one head's elements from `off` on, and (int8 rows) one scale per row.
#[derive(Clone, Copy, Debug)]
pub struct HeadRows<'a, T> {
    /// The rows, one after the other.
    pub rows: &'a [T],
    /// Elements per row.
    pub row_len: usize,
    /// The head's first element in a row.
    pub off: usize,
    /// One scale per row (int8 rows; empty for f32).
    pub scales: &'a [f32],
}

// The operations (the table's documentation is in `kernel_table!`).
kernel_table! {
    /// int8 matmul ([`generic::matvec_i8`]).
    matvec_i8: MatvecFn = generic::matvec_i8, check selftest::matvec_i8;
    /// int4 matmul ([`generic::matvec_i4`]).
    matvec_i4: MatvecI4Fn = generic::matvec_i4, check selftest::matvec_i4;
    /// f32 attention scores ([`generic::scores_f32`]).
    scores_f32: ScoresF32Fn = generic::scores_f32, check selftest::scores_f32;
    /// f32 attention output ([`generic::mix_f32`]).
    mix_f32: MixF32Fn = generic::mix_f32, check selftest::mix_f32;
    /// Paired int8 attention scores ([`generic::scores2_i8`]).
    scores2_i8: Scores2I8Fn = generic::scores2_i8, check selftest::scores2_i8;
    /// Paired int8 attention output ([`generic::mix2_i8`]).
    mix2_i8: Mix2I8Fn = generic::mix2_i8, check selftest::mix2_i8;
    /// Softmax ([`generic::softmax`]).
    softmax: SoftmaxFn = generic::softmax, check selftest::softmax;
    /// SwiGLU ([`generic::swiglu`]).
    swiglu: SwigluFn = generic::swiglu, check selftest::swiglu;
}

impl core::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kernels")
            .field("backend", &self.backend)
            .field("threads", &self.threads())
            .finish()
    }
}

impl Default for Kernels {
    /// [`Kernels::best`]; with `std`, `$CHISPA_BACKEND` when it names a supported backend.
    fn default() -> Self {
        #[cfg(any(feature = "std", test))]
        if let Ok(Some(b)) = backend_from_env() {
            if let Ok(k) = Self::for_backend(b) {
                return k;
            }
        }
        Self::best()
    }
}

impl Kernels {
    /// Backend `b`'s table: the scalar code, then what `b` replaces.
    ///
    /// # Errors
    /// `b` is not available on this build or CPU.
    pub fn for_backend(b: Backend) -> Result<Self, Unsupported> {
        if !b.is_supported() {
            return Err(Unsupported(b));
        }
        let mut k = Self::generic();
        k.backend = b;
        b.plug(&mut k);
        Ok(k)
    }

    /// The fastest backend this build and CPU run (x86 SIMD is detected with `std` only).
    pub fn best() -> Self {
        Backend::best().kernels()
    }

    /// The backend whose kernels these are.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The same table with its matmuls' rows split across `pool`'s threads (`None`: one
    /// thread). Any split gives the one-thread bits (rows are independent).
    #[cfg(feature = "std")]
    pub fn with_pool(mut self, pool: Option<&'static pool::Pool>) -> Self {
        self.pool = pool.filter(|p| p.threads() > 1);
        self
    }

    /// Threads that share a matmul.
    pub fn threads(&self) -> usize {
        #[cfg(feature = "std")]
        if let Some(p) = self.pool {
            return p.threads();
        }
        1
    }

    /// `f(first_row, rows)` over all of `out` (rows of `cols` inputs): in blocks of whole
    /// multiples of 8 rows (the x86 kernels' blocking) across the pool's threads when there
    /// is one and the matmul is large enough, else `f(0, out)` on this thread.
    fn by_rows(&self, out: &mut [f32], cols: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        #[cfg(feature = "std")]
        if let Some(p) = self.pool.filter(|_| out.len() * cols >= pool::MIN_PARALLEL_MACS) {
            return pool::split_rows(p, out, 8, f);
        }
        let _ = cols;
        f(0, out)
    }

    /// `out[r]` for every row of the int4 matrix `w` (see the contract in
    /// [`generic::matvec_i4`]), with the same checks and threads as [`Kernels::matvec_i8`]: a
    /// matrix whose slices do not hold `out.len()` rows, a group over [`MAX_GROUP`] or `xq`
    /// shorter than a row sets `out` to NaN.
    #[allow(unsafe_code)]
    pub fn matvec_i4(&self, out: &mut [f32], w: &I4Matrix<'_>, xq: &[i16], x_scale: f32) {
        if !(w.holds(out.len()) && xq.len() >= w.cols) {
            return out.fill(f32::NAN);
        }
        let f = self.matvec_i4;
        self.by_rows(out, w.cols, &|first, block| {
            // SAFETY: the lengths checked above hold for every block of rows `first..`;
            // `for_backend` plugged this backend's kernels only after checking the CPU runs
            // them.
            unsafe { f(block, &w.from_row(first), xq, x_scale) }
        });
    }

    /// `out[r]` for every row of `w` (see the contract in [`generic::matvec_i8`]). A matrix
    /// whose slices do not hold `out.len()` rows, a group over [`MAX_GROUP`] or `xq` shorter
    /// than a row sets `out` to NaN (`Model::parse` rules all three out).
    #[allow(unsafe_code)]
    pub fn matvec_i8(&self, out: &mut [f32], w: &I8Matrix<'_>, xq: &[i16], x_scale: f32) {
        // The SIMD kernels index with raw pointers: check every length they rely on here, once.
        if !(w.holds(out.len()) && xq.len() >= w.cols) {
            return out.fill(f32::NAN);
        }
        let f = self.matvec_i8;
        self.by_rows(out, w.cols, &|first, block| {
            // SAFETY: the lengths checked above hold for every block of rows `first..`;
            // `for_backend` plugged this backend's kernels only after checking the CPU runs
            // them.
            unsafe { f(block, &w.from_row(first), xq, x_scale) }
        });
    }

    /// One head's f32 attention scores (see [`generic::scores_f32`]).
    #[allow(unsafe_code)]
    pub fn scores_f32(&self, kv: HeadRows<'_, f32>, q: &[f32], scale: f32, att: &mut [f32]) {
        // SAFETY: the f32 kernels read through slices (bounds-checked); the CPU runs them
        // (`for_backend`).
        unsafe { (self.scores_f32)(kv.rows, kv.row_len, kv.off, q, scale, att) }
    }

    /// One head's f32 attention output (see [`generic::mix_f32`]).
    #[allow(unsafe_code)]
    pub fn mix_f32(&self, kv: HeadRows<'_, f32>, att: &[f32], out: &mut [f32]) {
        // SAFETY: as in `scores_f32`.
        unsafe { (self.mix_f32)(kv.rows, kv.row_len, kv.off, att, out) }
    }

    /// Two heads over int8 rows (see [`generic::scores2_i8`]): `att[0]` for `q[0]`, `att[1]`
    /// for `q[1]`. Arguments the kernels cannot read whole run the scalar code.
    #[allow(unsafe_code)]
    pub fn scores2_i8(
        &self,
        kv: HeadRows<'_, i8>,
        q: [&[i16]; 2],
        c: [f32; 2],
        att: [&mut [f32]; 2],
    ) {
        let (n, hs) = (att[0].len(), q[0].len());
        let f = if att[1].len() == n && q[1].len() == hs && attention_fits(&kv, n, hs) {
            self.scores2_i8
        } else {
            generic::scores2_i8
        };
        // SAFETY: `attention_fits` checked every row the kernels read (else the scalar code,
        // which reads through slices, runs); the CPU runs them (`for_backend`).
        unsafe { f(kv, q, c, att) }
    }

    /// Two heads of 8 over int8 rows (see [`generic::mix2_i8`]), as [`Kernels::scores2_i8`].
    #[allow(unsafe_code)]
    pub fn mix2_i8(&self, kv: HeadRows<'_, i8>, att: [&[f32]; 2], out: [&mut [f32; 8]; 2]) {
        let [out_a, out_b] = out;
        let f = if att[1].len() == att[0].len() && attention_fits(&kv, att[0].len(), 8) {
            self.mix2_i8
        } else {
            generic::mix2_i8
        };
        // SAFETY: as in `scores2_i8`.
        unsafe { f(kv.rows, kv.row_len, kv.off, kv.scales, att[0], att[1], out_a, out_b) }
    }

    /// In-place softmax (see [`generic::softmax`]).
    #[allow(unsafe_code)]
    pub fn softmax(&self, x: &mut [f32]) {
        // SAFETY: the kernels read and write through `x`; the CPU runs them (`for_backend`).
        unsafe { (self.softmax)(x) }
    }

    /// `gate = silu(gate) ⊙ up` (see [`generic::swiglu`]).
    #[allow(unsafe_code)]
    pub fn swiglu(&self, gate: &mut [f32], up: &[f32]) {
        // SAFETY: the kernels read and write through the slices; the CPU runs them
        // (`for_backend`).
        unsafe { (self.swiglu)(gate, up) }
    }
}

/// Whether `n` rows of `kv` hold a head of `hs` at `off` and a scale each.
fn attention_fits(kv: &HeadRows<'_, i8>, n: usize, hs: usize) -> bool {
    n == 0
        || (kv.off.checked_add(hs).is_some_and(|end| end <= kv.row_len)
            && kv.scales.len() >= n
            && (n - 1).checked_mul(kv.row_len).is_some_and(|r| r + kv.row_len <= kv.rows.len()))
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
