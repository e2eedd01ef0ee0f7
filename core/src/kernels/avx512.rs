//! x86-64 AVX-512 (BW + VNNI) int8 matmul, bit-exact with `generic::matvec_i8`.
//!
//! The AVX2 kernel's layout with 512-bit registers: 32 int8 per step widened to i16
//! (`vpmovsxbw`) and multiply-accumulated pairwise into i32 by VNNI's `vpdpwssd` — exact for
//! every i8 input (|w·x| ≤ 16,384, a pair ≤ 32,768 summed in i32). Group tails under 32 bytes
//! and the per-lane f32 step are the AVX2 kernel's.

// The AVX-512 intrinsics are stable since Rust 1.89, above the workspace's rust-version (1.85):
// building this file needs 1.89 (rust-toolchain.toml pins stable). Raising rust-version touches
// lints in shared files, so it is left to a separate change.
#![allow(clippy::incompatible_msrv)]

use core::arch::x86_64::*;

use half::f16;

use super::avx2::{reduce4, step4, tail_sum};
use super::generic;

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
pub fn matvec_i8(
    out: &mut [f32],
    w: &[i8],
    ws: &[f16],
    xq: &[i8],
    xs: &[f32],
    cols: usize,
    group: usize,
) {
    let groups = cols.div_ceil(group);
    let rows = out.len();
    let main = rows - rows % 4;
    let (head, tail) = out.split_at_mut(main);
    for (blk, o) in head.chunks_exact_mut(4).enumerate() {
        let r = blk * 4;
        // SAFETY: `matvec_i8_with` checked `w.len() >= rows·cols`, `ws.len() >= rows·groups`,
        // `xq.len() >= cols`, `xs.len() >= groups` and the CPU features; rows r..r+4 exist.
        let v = unsafe {
            rows4(w.as_ptr().add(r * cols), ws.as_ptr().add(r * groups), xq, xs, cols, group)
        };
        o.copy_from_slice(&v);
    }
    if !tail.is_empty() {
        generic::matvec_i8(tail, &w[main * cols..], &ws[main * groups..], xq, xs, cols, group);
    }
}

/// Group sums of one row as 8 i32 lanes (their total is the exact group sum).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,f16c")]
unsafe fn row_group(w: *const i8, x: *const i8, n: usize) -> __m256i {
    // SAFETY: the caller guarantees `n` readable bytes at `w` and `x`.
    unsafe {
        let mut acc = _mm512_setzero_si512();
        let mut j = 0;
        while j + 32 <= n {
            let wv = _mm512_cvtepi8_epi16(_mm256_loadu_si256(w.add(j).cast()));
            let xv = _mm512_cvtepi8_epi16(_mm256_loadu_si256(x.add(j).cast()));
            acc = _mm512_dpwssd_epi32(acc, wv, xv);
            j += 32;
        }
        let mut s =
            _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64::<1>(acc));
        if j + 16 <= n {
            let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(j).cast()));
            let xv = _mm256_cvtepi8_epi16(_mm_loadu_si128(x.add(j).cast()));
            s = _mm256_add_epi32(s, _mm256_madd_epi16(wv, xv));
            j += 16;
        }
        if j < n {
            s = _mm256_add_epi32(s, tail_sum(w.add(j), x.add(j), n - j));
        }
        s
    }
}

/// Rows `r..r+4` (pointers already offset to row r): returns their four outputs.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,f16c")]
unsafe fn rows4(
    w: *const i8,
    ws: *const f16,
    xq: &[i8],
    xs: &[f32],
    cols: usize,
    group: usize,
) -> [f32; 4] {
    let groups = cols.div_ceil(group);
    let mut acc = _mm_setzero_ps();
    let x = xq.as_ptr();
    for (g, &x_scale) in xs.iter().enumerate().take(groups) {
        let j0 = g * group;
        let n = group.min(cols - j0);
        // SAFETY: rows r..r+4 each have `cols` bytes and `groups` scales (checked by the caller);
        // j0 + n <= cols.
        unsafe {
            let s0 = row_group(w.add(j0), x.add(j0), n);
            let s1 = row_group(w.add(cols + j0), x.add(j0), n);
            let s2 = row_group(w.add(2 * cols + j0), x.add(j0), n);
            let s3 = row_group(w.add(3 * cols + j0), x.add(j0), n);
            acc = step4(acc, reduce4(s0, s1, s2, s3), ws.add(g), groups, x_scale);
        }
    }
    let mut o = [0f32; 4];
    // SAFETY: `o` has room for four f32.
    unsafe { _mm_storeu_ps(o.as_mut_ptr(), acc) };
    o
}
