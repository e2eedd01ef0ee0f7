//! x86-64 AVX-512 (BW + VNNI) int8 matmul, bit-exact with `generic::matvec_i8`.
//!
//! Groups of 32 (llama.cpp's Q8_0 size, what `chispa-convert synth` and most converted
//! models use), `cols % 32 == 0`: eight rows and two groups per step ([`rows8_g32`]) —
//! weights offset to unsigned and multiplied by VNNI's `vpdpbusd`, the offset taken back out
//! exactly, eight rows' group sums reduced into one vector, then the contract's f32 step with
//! one row per lane. 43 GMAC/s on cache-resident matrices, 2.6× the AVX2 kernel (README).
//!
//! Every other shape: the AVX2 kernel's layout with 512-bit registers: 32 int8 per step
//! widened to i16 (`vpmovsxbw`) and multiply-accumulated pairwise into i32 by VNNI's
//! `vpdpwssd` — exact for every i8 input (|w·x| ≤ 16,384, a pair ≤ 32,768 summed in i32).
//! Group tails under 32 bytes and the per-lane f32 step are the AVX2 kernel's.

// The AVX-512 intrinsics are stable since Rust 1.89, above the workspace's rust-version (1.85):
// building this file needs 1.89 (rust-toolchain.toml pins stable). Raising rust-version touches
// lints in shared files, so it is left to a separate change.
#![allow(clippy::incompatible_msrv)]

use core::arch::x86_64::*;

use half::f16;

use super::avx2::{reduce4, step4, tail_sum, MIN_GROUP};
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
    if group < MIN_GROUP {
        return generic::matvec_i8(out, w, ws, xq, xs, cols, group);
    }
    let groups = cols.div_ceil(group);
    let rows = out.len();
    if group == 32 && cols % 32 == 0 && groups <= MAX_GROUPS_32 && rows >= 8 {
        return matvec_i8_g32(out, w, ws, xq, xs, cols);
    }
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

/// The most groups of 32 the `group == 32` path takes (a stack table of one i32 per group).
const MAX_GROUPS_32: usize = 1024;

/// How many eight-row tiles ahead [`rows8_g32`] prefetches its weights. Measured on the
/// 2-core AMD EPYC (`chispa bench`, stories42M / stories110M shapes, one thread): without
/// prefetching 195 / 82 tok/s; into L1 (`T0`) 1, 2, 4, 8 tiles ahead ≈ 240 / 87; into L2
/// (`T1`) 2 tiles ahead 480–570 / 175–187, more or fewer tiles no better.
const PREFETCH_TILES: usize = 2;

/// `matvec_i8` for groups of 32 and `cols % 32 == 0`, eight rows at a time (see [`rows8_g32`]);
/// rows past the last multiple of eight take the four-row path.
fn matvec_i8_g32(out: &mut [f32], w: &[i8], ws: &[f16], xq: &[i8], xs: &[f32], cols: usize) {
    let groups = cols / 32;
    // 128 · Σ x over each group: the unsigned-by-signed product sums (w + 128)·x, and this
    // takes the extra 128·x back out, exactly.
    let mut corr = [0i32; MAX_GROUPS_32];
    for (c, xg) in corr.iter_mut().zip(xq[..cols].chunks_exact(32)) {
        *c = 128 * xg.iter().map(|&v| i32::from(v)).sum::<i32>();
    }
    let rows = out.len();
    let main = rows - rows % 8;
    let (head, tail) = out.split_at_mut(main);
    for (blk, o) in head.chunks_exact_mut(8).enumerate() {
        let r = blk * 8;
        // SAFETY: `matvec_i8_with` checked `w.len() >= rows·cols`, `ws.len() >= rows·groups`,
        // `xq.len() >= cols`, `xs.len() >= groups` and the CPU features (`detected`); rows
        // r..r+8 exist; `corr` holds `groups` entries (`groups <= MAX_GROUPS_32`).
        let v = unsafe {
            rows8_g32(
                w.as_ptr().add(r * cols),
                ws.as_ptr().add(r * groups),
                xq.as_ptr(),
                xs.as_ptr(),
                corr.as_ptr(),
                groups,
            )
        };
        o.copy_from_slice(&v);
    }
    if !tail.is_empty() {
        matvec_i8(tail, &w[main * cols..], &ws[main * groups..], xq, xs, cols, 32);
    }
}

/// Sixteen i32 lanes of each of eight rows (`v[k]`: row k, lanes 0–7 one group and 8–15 the
/// next) summed to `[rows 0–7 of the first group | rows 0–7 of the second]`, exactly.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,f16c")]
fn reduce8x2(v: [__m512i; 8]) -> __m512i {
    // Per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3], then [a, b, c, d] each a lane's total.
    let pair = |a, b| _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    let quad = |a, b| _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
    // Rows 0–3, then 4–7: one row per i32 of each 128-bit lane.
    let lo = quad(pair(v[0], v[1]), pair(v[2], v[3]));
    let hi = quad(pair(v[4], v[5]), pair(v[6], v[7]));
    // 128-bit lanes 0, 1 hold the first group, 2, 3 the second: add 0 + 1 and 2 + 3, rows
    // 0–3 then 4–7.
    let first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    let second = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    _mm512_add_epi32(
        _mm512_permutex2var_epi32(lo, first, hi),
        _mm512_permutex2var_epi32(lo, second, hi),
    )
}

/// Rows `r..r+8` for groups of 32 (pointers offset to row r; `corr[g] = 128 · Σ x` over group
/// g). Two groups per step: each row's 64 weights, offset by 128 to unsigned (`xor 0x80`),
/// multiply-accumulate against the signed activations by VNNI's `vpdpbusd` (four products per
/// i32 lane, at most 4 · 255 · 128 — exact, no saturation in this form), eight rows reduced
/// to one vector, the offset taken out; then the f32 step of the contract with one row per
/// lane, the first group then the second, multiply then add (never fused).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,f16c")]
unsafe fn rows8_g32(
    w: *const i8,
    ws: *const f16,
    x: *const i8,
    xs: *const f32,
    corr: *const i32,
    groups: usize,
) -> [f32; 8] {
    let cols = groups * 32;
    let flip = _mm512_set1_epi8(-128);
    let zero = _mm512_setzero_si512();
    // Byte offsets of each row's scales from row 0's, for the gather of (g, g + 1) pairs.
    let stride = (groups * 2) as i32;
    let ws_off =
        _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
    // [g, g+1] pairs of rows 0..8 → rows 0..8 of g, then of g + 1.
    let deinterleave = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    let spread = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    let mut acc = _mm256_setzero_ps();
    let mut g = 0;
    // SAFETY: the caller guarantees rows of `cols` bytes and `groups` scales for eight rows
    // at w / ws, `cols` activations at x, and `groups` entries at xs and corr; every access
    // below is at group g or g + 1 < groups (or a 32-byte masked load of the last group).
    unsafe {
        while g + 2 <= groups {
            let j = g * 32;
            let xv = _mm512_loadu_si512(x.add(j).cast());
            let mut v = [zero; 8];
            for (k, vk) in v.iter_mut().enumerate() {
                let wk = _mm512_xor_si512(_mm512_loadu_si512(w.add(k * cols + j).cast()), flip);
                *vk = _mm512_dpbusd_epi32(zero, wk, xv);
                // The same line PREFETCH_TILES eight-row tiles ahead, into L2. A prefetch
                // never faults, and the address is only formed, not dereferenced.
                let ahead = w.wrapping_add((8 * PREFETCH_TILES + k) * cols + j);
                _mm_prefetch::<_MM_HINT_T1>(ahead.cast());
            }
            let c = _mm512_permutexvar_epi32(
                spread,
                _mm512_castsi128_si512(_mm_loadl_epi64(corr.add(g).cast())),
            );
            let isum = _mm512_sub_epi32(reduce8x2(v), c);
            // The rows' (g, g + 1) scale pairs, widened exactly (F16C), times [xs_g, xs_g+1].
            let pairs = _mm256_i32gather_epi32::<1>(ws.add(g).cast(), ws_off);
            let xsp = _mm512_castpd_ps(_mm512_set1_pd(core::ptr::read_unaligned(
                xs.add(g).cast::<f64>(),
            )));
            let scale =
                _mm512_permutexvar_ps(deinterleave, _mm512_mul_ps(_mm512_cvtph_ps(pairs), xsp));
            let p = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), scale);
            acc = _mm256_add_ps(acc, _mm512_castps512_ps256(p));
            acc = _mm256_add_ps(
                acc,
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(p))),
            );
            g += 2;
        }
        if g < groups {
            // The last, odd group: the same step on 32 bytes, the upper half zero (0 · x).
            let j = g * 32;
            let m: __mmask64 = 0xffff_ffff;
            let xv = _mm512_maskz_loadu_epi8(m, x.add(j));
            let mut v = [zero; 8];
            for (k, vk) in v.iter_mut().enumerate() {
                let wk = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, w.add(k * cols + j)), flip);
                *vk = _mm512_dpbusd_epi32(zero, wk, xv);
            }
            let isum = _mm512_sub_epi32(reduce8x2(v), _mm512_set1_epi32(*corr.add(g)));
            let mut s = [0u16; 8];
            for (k, sk) in s.iter_mut().enumerate() {
                *sk = (*ws.add(k * groups + g)).to_bits();
            }
            let wsf = _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().cast()));
            let scale = _mm256_mul_ps(wsf, _mm256_set1_ps(*xs.add(g)));
            let p = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm512_castsi512_si256(isum)), scale);
            acc = _mm256_add_ps(acc, p);
        }
    }
    let mut o = [0f32; 8];
    // SAFETY: `o` has room for eight f32.
    unsafe { _mm256_storeu_ps(o.as_mut_ptr(), acc) };
    o
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
