//! x86-64 AVX-512 (BW + VNNI) int8 matmul, bit-exact with `generic::matvec_i8`.
//!
//! The AVX2 kernel's layout with 512-bit registers: 32 int8 weights per step widened to i16
//! (`vpmovsxbw`) and multiply-accumulated pairwise with the int16 activations into i32 by
//! VNNI's `vpdpwssd` — exact for every input (a pair is at most 2 · 128 · 32768 = 2^23).
//! Group tails under 32 bytes and the per-row integer step are the AVX2 kernel's.

// The AVX-512 intrinsics are stable since Rust 1.89, above the workspace's rust-version (1.85):
// building this file needs 1.89 (rust-toolchain.toml pins stable). Raising rust-version touches
// lints in shared files, so it is left to a separate change.
#![allow(clippy::incompatible_msrv)]

use core::arch::x86_64::*;

use super::avx2::{by_four, rows4_kernel, tail_sum, MIN_GROUP};
use super::generic::{self, I8Matrix};

/// Whether the CPU has AVX-512 F/BW and VNNI (and AVX2, used for tails).
pub fn detected() -> bool {
    extern crate std;
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vnni")
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("f16c")
}

/// See `generic::matvec_i8`. The caller (`kernels::matvec_i8_with`) has checked every length
/// and the CPU features (`detected`).
pub fn matvec_i8(out: &mut [f32], w: &I8Matrix<'_>, xq: &[i16], x_scale: f32) {
    if w.group < MIN_GROUP {
        return generic::matvec_i8(out, w, xq, x_scale);
    }
    // SAFETY: `matvec_i8_with` checked that `w` holds `out.len()` rows, `xq` `w.cols` inputs
    // and the CPU features (`detected`).
    unsafe { by_four(out, w, xq, x_scale, rows4) }
}

/// Group sums of one row as 8 i32 lanes (their total is the exact group sum).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,f16c")]
unsafe fn row_group(w: *const i8, x: *const i16, n: usize) -> __m256i {
    // SAFETY: the caller guarantees `n` readable bytes at `w` and `x`.
    unsafe {
        let mut acc = _mm512_setzero_si512();
        let mut j = 0;
        while j + 32 <= n {
            let wv = _mm512_cvtepi8_epi16(_mm256_loadu_si256(w.add(j).cast()));
            let xv = _mm512_loadu_si512(x.add(j).cast());
            acc = _mm512_dpwssd_epi32(acc, wv, xv);
            j += 32;
        }
        let mut s =
            _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64::<1>(acc));
        if j + 16 <= n {
            let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(j).cast()));
            let xv = _mm256_loadu_si256(x.add(j).cast());
            s = _mm256_add_epi32(s, _mm256_madd_epi16(wv, xv));
            j += 16;
        }
        if j < n {
            s = _mm256_add_epi32(s, tail_sum(w.add(j), x.add(j), n - j));
        }
        s
    }
}

rows4_kernel!(rows4, "avx512f,avx512bw,avx512vnni,avx2,f16c", row_group);
