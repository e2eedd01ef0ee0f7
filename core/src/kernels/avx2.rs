//! x86-64 AVX2 int8 matmul, bit-exact with `generic::matvec_i8`.
//!
//! Four rows at a time share each loaded slice of activations. Within a group, int8 values are
//! widened to i16 (`vpmovsxbw`) and multiplied pairwise into i32 (`vpmaddwd`): exact for every
//! i8 input, −128 included. The four rows' group sums are reduced into one 4-lane vector, and the
//! f32 step `acc += isum · (ws · xs)` runs with one row per lane — each lane is one row's scalar
//! accumulation, groups in order, plain multiply then add (never fused), as the contract says.

use core::arch::x86_64::*;

use half::f16;

use super::generic;

/// Groups below this size take the scalar kernel (same bits): each of their few products pays
/// a vector reduction and a padded copy here, and the scalar loop is faster — measured with
/// `chispa bench` on stories260K converted with `--group-size 4`: scalar 1,727 tok/s, AVX2
/// 561, AVX-512 593; at 8 the vector kernels are level or ahead (loaded machine).
pub(super) const MIN_GROUP: usize = 8;

/// Whether the CPU has AVX2 and F16C (for the weight scales).
pub fn detected() -> bool {
    extern crate std;
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c")
}

/// See `generic::matvec_i8`. The caller (`kernels::matvec_i8_with`) has checked every length
/// and that the CPU has AVX2.
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
    let main = rows - rows % 4;
    let (head, tail) = out.split_at_mut(main);
    for (blk, o) in head.chunks_exact_mut(4).enumerate() {
        let r = blk * 4;
        // SAFETY: `matvec_i8_with` checked `w.len() >= rows·cols`, `ws.len() >= rows·groups`,
        // `xq.len() >= cols`, `xs.len() >= groups` and that the CPU has AVX2; rows r..r+4 exist.
        let v = unsafe {
            rows4(w.as_ptr().add(r * cols), ws.as_ptr().add(r * groups), xq, xs, cols, group)
        };
        o.copy_from_slice(&v);
    }
    if !tail.is_empty() {
        generic::matvec_i8(tail, &w[main * cols..], &ws[main * groups..], xq, xs, cols, group);
    }
}

/// Σ over `n` (< 16) bytes of `w[j]·x[j]` in i32 lanes: one 8-byte step, then zero-padded
/// copies (padding adds 0).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn tail_sum(w: *const i8, x: *const i8, n: usize) -> __m256i {
    let mut acc = _mm256_setzero_si256();
    let mut j = 0;
    // SAFETY: the caller guarantees `n` readable bytes at `w` and `x`, and n < 16.
    unsafe {
        if n >= 8 {
            let wv = _mm_cvtepi8_epi16(_mm_loadl_epi64(w.cast()));
            let xv = _mm_cvtepi8_epi16(_mm_loadl_epi64(x.cast()));
            acc = _mm256_castsi128_si256(_mm_madd_epi16(wv, xv));
            j = 8;
        }
        if j < n {
            let mut wb = [0i8; 8];
            let mut xb = [0i8; 8];
            core::ptr::copy_nonoverlapping(w.add(j), wb.as_mut_ptr(), n - j);
            core::ptr::copy_nonoverlapping(x.add(j), xb.as_mut_ptr(), n - j);
            let wv = _mm_cvtepi8_epi16(_mm_loadl_epi64(wb.as_ptr().cast()));
            let xv = _mm_cvtepi8_epi16(_mm_loadl_epi64(xb.as_ptr().cast()));
            let p = _mm256_castsi128_si256(_mm_madd_epi16(wv, xv));
            // The upper 128 bits of a cast are undefined: keep only the lower half.
            acc = _mm256_add_epi32(acc, _mm256_inserti128_si256::<1>(p, _mm_setzero_si128()));
        }
        _mm256_inserti128_si256::<1>(acc, _mm_setzero_si128())
    }
}

/// Group sums of one row as 8 i32 lanes (their total is the exact group sum).
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn row_group(w: *const i8, x: *const i8, n: usize) -> __m256i {
    // SAFETY: the caller guarantees `n` readable bytes at `w` and `x`.
    unsafe {
        let mut acc = _mm256_setzero_si256();
        let mut j = 0;
        while j + 16 <= n {
            let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(j).cast()));
            let xv = _mm256_cvtepi8_epi16(_mm_loadu_si128(x.add(j).cast()));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(wv, xv));
            j += 16;
        }
        if j < n {
            acc = _mm256_add_epi32(acc, tail_sum(w.add(j), x.add(j), n - j));
        }
        acc
    }
}

/// Four rows' 8-lane group sums reduced to `[s0, s1, s2, s3]`, exact.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) fn reduce4(s0: __m256i, s1: __m256i, s2: __m256i, s3: __m256i) -> __m128i {
    // [s0 lo, s1 lo, s2 lo, s3 lo | s0 hi, s1 hi, s2 hi, s3 hi] (each a 4-lane sum).
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(s0, s1), _mm256_hadd_epi32(s2, s3));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}

/// `acc + isum · (ws · xs)` per lane (one row per lane), multiply then add, never fused.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn step4(
    acc: __m128,
    isum: __m128i,
    ws: *const f16,
    groups: usize,
    xs: f32,
) -> __m128 {
    // SAFETY: the caller guarantees scales at ws, ws + groups, ws + 2·groups, ws + 3·groups.
    // F16C's widening is exact, like `f16::to_f32`.
    let wsc = unsafe {
        _mm_cvtph_ps(_mm_set_epi16(
            0,
            0,
            0,
            0,
            (*ws.add(3 * groups)).to_bits() as i16,
            (*ws.add(2 * groups)).to_bits() as i16,
            (*ws.add(groups)).to_bits() as i16,
            (*ws).to_bits() as i16,
        ))
    };
    let scale = _mm_mul_ps(wsc, _mm_set1_ps(xs));
    _mm_add_ps(acc, _mm_mul_ps(_mm_cvtepi32_ps(isum), scale))
}

/// Rows `r..r+4` (pointers already offset to row r): returns their four outputs.
#[target_feature(enable = "avx2,f16c")]
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

/// `generic::scores_f32` compiled for AVX2: the same source, so the same operations in the
/// same order (Rust never fuses a multiply and an add), with 8-lane vectors.
pub fn scores_f32(
    rows: &[f32],
    row_len: usize,
    off: usize,
    q: &[f32],
    scale: f32,
    att: &mut [f32],
) {
    #[target_feature(enable = "avx2")]
    fn inner(rows: &[f32], row_len: usize, off: usize, q: &[f32], scale: f32, att: &mut [f32]) {
        generic::scores_f32(rows, row_len, off, q, scale, att)
    }
    // SAFETY: the caller (`kernels::scores_f32_with`) checked that the CPU has AVX2.
    unsafe { inner(rows, row_len, off, q, scale, att) }
}

/// `generic::mix_f32` compiled for AVX2 (as [`scores_f32`]).
pub fn mix_f32(rows: &[f32], row_len: usize, off: usize, att: &[f32], out: &mut [f32]) {
    #[target_feature(enable = "avx2")]
    fn inner(rows: &[f32], row_len: usize, off: usize, att: &[f32], out: &mut [f32]) {
        generic::mix_f32(rows, row_len, off, att, out)
    }
    // SAFETY: the caller (`kernels::mix_f32_with`) checked that the CPU has AVX2.
    unsafe { inner(rows, row_len, off, att, out) }
}
