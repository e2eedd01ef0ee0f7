//! x86-64 AVX-512 (BW + VNNI) int8 matmul, bit-exact with `generic::matvec_i8`.
//!
//! Groups of 32 (llama.cpp's Q8_0 size, what `chispa-convert synth` and most converted models
//! use), `cols % 32 == 0`: eight rows and two groups per step ([`rows8_g32`]) — the int16
//! inputs split once per matmul into a low unsigned and a high signed byte, each multiplied by
//! VNNI's `vpdpbusd` (the weights offset to unsigned for the high byte, the offset taken back
//! out exactly), eight rows' group sums reduced into one vector, times the multipliers in
//! 64-bit lanes.
//!
//! Every other shape: the AVX2 kernel's layout with 512-bit registers: 32 int8 weights per
//! step widened to i16 (`vpmovsxbw`) and multiply-accumulated pairwise with the int16
//! activations into i32 by VNNI's `vpdpwssd` — exact for every input (a pair is at most
//! 2 · 128 · 32768 = 2^23). Group tails under 32 bytes and the per-row integer step are the
//! AVX2 kernel's.

// The AVX-512 intrinsics are stable since Rust 1.89, above the workspace's rust-version (1.85):
// building this file needs 1.89 (rust-toolchain.toml pins stable). Raising rust-version touches
// lints in shared files, so it is left to a separate change.
#![allow(clippy::incompatible_msrv)]

use core::arch::x86_64::*;

use super::avx2::{
    by_four, by_four_i4, i4_fits, rows4_i4_kernel, rows4_kernel, tail_i4, tail_sum, SplitI4,
    MIN_GROUP,
};
use super::generic::{self, I4Matrix, I8Matrix};

/// Whether the CPU has AVX-512 F/BW and VNNI (and AVX2, used for tails).
pub(super) fn detected() -> bool {
    extern crate std;
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vnni")
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("f16c")
}

/// AVX-512's int8 matmul and AVX2's attention kernels into `k` (`Kernels::for_backend` has
/// checked the CPU: [`detected`], which includes AVX2).
pub(super) fn plug(k: &mut super::Kernels) {
    super::avx2::plug(k);
    k.matvec_i8 = matvec_i8;
    k.matvec_i4 = matvec_i4;
}

/// See `generic::matvec_i4`: the AVX2 kernel's layout with 32 bytes (64 weights) per step,
/// sign-extended to i16 in 512-bit registers, shifted to their nibbles and multiply-accumulated
/// pairwise by VNNI's `vpdpwssd`.
///
/// # Safety
/// The lengths `Kernels::matvec_i4` checks hold (`w` holds `out.len()` rows, `xq` a row), and
/// the CPU has the features of [`detected`].
pub(super) unsafe fn matvec_i4(out: &mut [f32], w: &I4Matrix<'_>, xq: &[i16], x_scale: f32) {
    if !i4_fits(w) {
        return generic::matvec_i4(out, w, xq, x_scale);
    }
    let x = SplitI4::new(xq, w.cols);
    // SAFETY: the caller's conditions: `w` holds `out.len()` rows, `x` splits `w.cols` inputs,
    // and the CPU features (`detected`).
    unsafe { by_four_i4(out, w, &x, xq, x_scale, rows4_i4) }
}

rows4_i4_kernel!(rows4_i4, "avx512f,avx512bw,avx512vnni,avx2,f16c", row_group_i4);

/// One row's int4 group of `nb` bytes as 8 i32 lanes (their total is the exact group sum).
///
/// # Safety
/// `nb` readable bytes at `w` and inputs at `e`, `o`; the CPU has the features of `detected`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,f16c")]
unsafe fn row_group_i4(w: *const u8, e: *const i16, o: *const i16, nb: usize) -> __m256i {
    // SAFETY: the caller guarantees `nb` readable bytes and inputs.
    unsafe {
        let mut acc = _mm512_setzero_si512();
        let mut k = 0;
        while k + 32 <= nb {
            let v = _mm512_cvtepi8_epi16(_mm256_loadu_si256(w.add(k).cast()));
            let hi = _mm512_srai_epi16::<4>(v);
            let lo = _mm512_srai_epi16::<12>(_mm512_slli_epi16::<12>(v));
            acc = _mm512_dpwssd_epi32(acc, lo, _mm512_loadu_si512(e.add(k).cast()));
            acc = _mm512_dpwssd_epi32(acc, hi, _mm512_loadu_si512(o.add(k).cast()));
            k += 32;
        }
        let mut s =
            _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64::<1>(acc));
        if k + 16 <= nb {
            s = _mm256_add_epi32(s, super::avx2::step_i4(w.add(k), e.add(k), o.add(k)));
            k += 16;
        }
        if k < nb {
            s = _mm256_add_epi32(s, tail_i4(w.add(k), e.add(k), o.add(k), nb - k));
        }
        s
    }
}

/// See `generic::matvec_i8`.
///
/// # Safety
/// The lengths `Kernels::matvec_i8` checks hold (`w` holds `out.len()` rows, `xq` a row), and
/// the CPU has the features of [`detected`].
pub(super) unsafe fn matvec_i8(out: &mut [f32], w: &I8Matrix<'_>, xq: &[i16], x_scale: f32) {
    if w.group < MIN_GROUP {
        return generic::matvec_i8(out, w, xq, x_scale);
    }
    if w.group == 32 && w.cols % 32 == 0 && w.cols <= MAX_COLS_32 && out.len() >= 8 {
        return matvec_i8_g32(out, w, xq, x_scale);
    }
    // SAFETY: the caller's conditions: `w` holds `out.len()` rows, `xq` `w.cols` inputs, and
    // the CPU features (`detected`).
    unsafe { by_four(out, w, xq, x_scale, rows4) }
}

/// The widest row the groups-of-32 path takes (its split inputs live on the stack).
const MAX_COLS_32: usize = 4096;

/// How many eight-row tiles ahead [`rows8_g32`] prefetches its weights (into L2: 2× on the
/// stories42M/110M shapes with the earlier kernel of the same layout).
const PREFETCH_TILES: usize = 2;

/// The int16 inputs split into bytes for VNNI's u8 × i8 products: `x = 256 · hi + lo`, `lo`
/// unsigned, `hi` signed; and per group `32768 · Σ hi`, the offset [`rows8_g32`] takes out.
struct Split {
    lo: [u8; MAX_COLS_32],
    hi: [i8; MAX_COLS_32],
    corr: [i32; MAX_COLS_32 / 32],
}

/// `matvec_i8` for groups of 32 and `cols % 32 == 0`, eight rows at a time (see [`rows8_g32`]);
/// rows past the last multiple of eight take the four-row path.
fn matvec_i8_g32(out: &mut [f32], w: &I8Matrix<'_>, xq: &[i16], x_scale: f32) {
    let (cols, groups) = (w.cols, w.groups());
    let mut x = Split { lo: [0; MAX_COLS_32], hi: [0; MAX_COLS_32], corr: [0; MAX_COLS_32 / 32] };
    for ((l, h), v) in x.lo.iter_mut().zip(x.hi.iter_mut()).zip(&xq[..cols]) {
        *l = *v as u8;
        *h = (*v >> 8) as i8;
    }
    for (c, h) in x.corr.iter_mut().zip(x.hi[..cols].chunks_exact(32)) {
        *c = 32768 * h.iter().map(|&v| i32::from(v)).sum::<i32>();
    }
    let rows = out.len();
    let main = rows - rows % 8;
    let (head, tail) = out.split_at_mut(main);
    for (blk, o) in head.chunks_exact_mut(8).enumerate() {
        let r = blk * 8;
        // SAFETY: `Kernels::matvec_i8` checked that `w` holds `out.len()` rows (`cols` bytes and
        // `groups` multipliers each) and the CPU features (`detected`); rows r..r+8 exist;
        // `x` holds `cols` split inputs and `groups` corrections (cols <= MAX_COLS_32).
        let acc = unsafe {
            rows8_g32(w.q.as_ptr().add(r * cols), w.mults.as_ptr().add(r * groups), &x, groups)
        };
        for ((o, a), rs) in o.iter_mut().zip(acc).zip(&w.row_scales[r..r + 8]) {
            *o = generic::finish_row(a, *rs, x_scale);
        }
    }
    if !tail.is_empty() {
        // SAFETY: as above, for the rows past `main`.
        unsafe { by_four(tail, &w.from_row(main), xq, x_scale, rows4) }
    }
}

/// Rows `r..r+8` for groups of 32 (pointers offset to row r): their exact sums
/// `Σ_g m_g · isum_g`. Two groups per step: each row's 64 weights times the inputs' low bytes
/// (`vpdpbusd`, unsigned × signed) and, offset by 128 to unsigned (`xor 0x80`), times their
/// high bytes; `256 · high + low` per lane (at most 2^25), eight rows reduced to one vector,
/// the offsets taken out (`x.corr`), leaving each group's exact sum (|isum| ≤ 2^27); times
/// the rows' multipliers in 64-bit lanes (`vpmuldq`, even and odd rows apart), summed.
///
/// # Safety
/// Eight rows of `32 · groups` bytes and `groups` multipliers at `w` / `m`; `x` holds
/// `32 · groups` split inputs and `groups` corrections; the CPU has the features of `detected`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,f16c")]
unsafe fn rows8_g32(w: *const i8, m: *const u8, x: &Split, groups: usize) -> [i64; 8] {
    let cols = groups * 32;
    let flip = _mm512_set1_epi8(-128);
    let zero = _mm512_setzero_si512();
    let spread = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    let (lo, hi) = (x.lo.as_ptr(), x.hi.as_ptr());
    // 64-bit lanes: rows 0, 2, 4, 6 (even) or 1, 3, 5, 7 (odd) of group g (lanes 0–3) and
    // g + 1 (lanes 4–7).
    let (mut even, mut odd) = (zero, zero);
    let mut g = 0;
    // SAFETY: the caller guarantees eight rows of `cols` bytes at `w`, their multipliers at
    // `m` and `cols` split inputs in `x`; every access is at group g or g + 1 < groups (the
    // last, odd group by a 32-byte masked load).
    unsafe {
        while g < groups {
            let two = g + 1 < groups;
            let j = g * 32;
            let mask: __mmask64 = if two { !0 } else { 0xffff_ffff };
            let xl = _mm512_maskz_loadu_epi8(mask, lo.add(j).cast());
            let xh = _mm512_maskz_loadu_epi8(mask, hi.add(j));
            let mut v = [zero; 8];
            for (k, vk) in v.iter_mut().enumerate() {
                let wk = _mm512_maskz_loadu_epi8(mask, w.add(k * cols + j));
                let l = _mm512_dpbusd_epi32(zero, xl, wk);
                let h = _mm512_dpbusd_epi32(zero, _mm512_xor_si512(wk, flip), xh);
                *vk = _mm512_add_epi32(_mm512_slli_epi32::<8>(h), l);
                // The same line PREFETCH_TILES eight-row tiles ahead, into L2. A prefetch
                // never faults, and the address is only formed, not dereferenced.
                let ahead = w.wrapping_add((8 * PREFETCH_TILES + k) * cols + j);
                _mm_prefetch::<_MM_HINT_T1>(ahead.cast());
            }
            // Masked-off bytes gave 128 · 0 and 0 · 0: their lanes hold 0 minus no offset.
            let c = if two {
                _mm512_castsi128_si512(_mm_loadl_epi64(x.corr.as_ptr().add(g).cast()))
            } else {
                _mm512_maskz_set1_epi32(1, *x.corr.as_ptr().add(g))
            };
            let isum = _mm512_sub_epi32(reduce8x2(v), _mm512_permutexvar_epi32(spread, c));
            let mut mv = [0i32; 16];
            for k in 0..8 {
                mv[k] = i32::from(*m.add(k * groups + g));
                if two {
                    mv[8 + k] = i32::from(*m.add(k * groups + g + 1));
                }
            }
            let mv = _mm512_loadu_si512(mv.as_ptr().cast());
            even = _mm512_add_epi64(even, _mm512_mul_epi32(isum, mv));
            let (is, ms) = (_mm512_srli_epi64::<32>(isum), _mm512_srli_epi64::<32>(mv));
            odd = _mm512_add_epi64(odd, _mm512_mul_epi32(is, ms));
            g += 2;
        }
    }
    let (mut e, mut o) = ([0i64; 8], [0i64; 8]);
    // SAFETY: `e` and `o` have room for eight i64 each.
    unsafe {
        _mm512_storeu_si512(e.as_mut_ptr().cast(), even);
        _mm512_storeu_si512(o.as_mut_ptr().cast(), odd);
    }
    let mut rows = [0i64; 8];
    for i in 0..4 {
        rows[2 * i] = e[i] + e[i + 4];
        rows[2 * i + 1] = o[i] + o[i + 4];
    }
    rows
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
