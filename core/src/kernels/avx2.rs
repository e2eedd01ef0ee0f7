//! x86-64 AVX2 int8 matmul, bit-exact with `generic::matvec_i8`.
//!
//! Four rows at a time share each loaded slice of the int16 activations. Within a group, the
//! int8 weights are widened to i16 (`vpmovsxbw`) and multiplied pairwise into i32
//! (`vpmaddwd`): exact for every input, −128 included. The four rows' group sums are reduced into one 4-lane vector, times
//! the rows' group multipliers into 64-bit lanes (`vpmuldq`), summed exactly; each row ends in
//! `generic::finish_row`.
//!
//! int4 (`matvec_i4`): the int16 inputs split once per matmul into even and odd columns, so a
//! byte's low nibble meets an even input and its high nibble the odd one beside it: 16 bytes
//! are sign-extended to i16 (`vpmovsxbw`), shifted to their signed nibbles (`vpsllw` /
//! `vpsraw`), and multiplied pairwise with the even and the odd inputs (`vpmaddwd`); the rest
//! is the int8 kernel's.

use core::arch::x86_64::*;

use super::generic::{self, I4Matrix, I8Matrix};

/// Groups below this size take the scalar kernel (same bits): each of their few products pays
/// a vector reduction and a padded copy here, and the scalar loop is faster — measured with
/// `chispa bench` on stories260K converted with `--group-size 4`: scalar 1,727 tok/s, AVX2
/// 561, AVX-512 593; at 8 the vector kernels are level or ahead (loaded machine).
pub(super) const MIN_GROUP: usize = 8;

/// Whether the CPU has AVX2 and F16C (for the f16 KV cache).
pub(super) fn detected() -> bool {
    extern crate std;
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c")
}

/// AVX2's kernels into `k` (`Kernels::for_backend` has checked the CPU: [`detected`]).
pub(super) fn plug(k: &mut super::Kernels) {
    k.matvec_i8 = matvec_i8;
    k.matvec_i4 = matvec_i4;
    k.scores_f32 = scores_f32;
    k.mix_f32 = mix_f32;
    k.softmax = softmax;
    k.swiglu = swiglu;
}

/// See `generic::matvec_i8`.
///
/// # Safety
/// The lengths `Kernels::matvec_i8` checks hold (`w` holds `out.len()` rows, `xq` a row), and
/// the CPU runs this module's instructions.
pub(super) unsafe fn matvec_i8(out: &mut [f32], w: &I8Matrix<'_>, xq: &[i16], x_scale: f32) {
    if w.group < MIN_GROUP {
        return generic::matvec_i8(out, w, xq, x_scale);
    }
    // SAFETY: the caller's conditions: `w` holds `out.len()` rows, `xq` `w.cols` inputs, and
    // the CPU has AVX2.
    unsafe { by_four(out, w, xq, x_scale, rows4) }
}

/// The kernel of four rows: pointers offset to the first row's weights and multipliers; returns
/// their exact sums `Σ_g m_g · isum_g`.
pub(super) type Rows4 = unsafe fn(*const i8, *const u8, &[i16], &I8Matrix<'_>) -> [i64; 4];

/// Rows four at a time with `rows4`, the rest by the scalar kernel.
///
/// # Safety
/// `w` holds `out.len()` rows, `xq` `w.cols` inputs, and the CPU has what `rows4` needs.
#[inline(always)]
pub(super) unsafe fn by_four(
    out: &mut [f32],
    w: &I8Matrix<'_>,
    xq: &[i16],
    x_scale: f32,
    rows4: Rows4,
) {
    let (cols, groups) = (w.cols, w.groups());
    let main = out.len() - out.len() % 4;
    let (head, tail) = out.split_at_mut(main);
    for (blk, o) in head.chunks_exact_mut(4).enumerate() {
        let r = blk * 4;
        // SAFETY: rows r..r+4 exist (the caller's guarantee), with `cols` bytes and `groups`
        // multipliers each.
        let acc =
            unsafe { rows4(w.q.as_ptr().add(r * cols), w.mults.as_ptr().add(r * groups), xq, w) };
        for ((o, a), rs) in o.iter_mut().zip(acc).zip(&w.row_scales[r..r + 4]) {
            *o = generic::finish_row(a, *rs, x_scale);
        }
    }
    if !tail.is_empty() {
        generic::matvec_i8(tail, &w.from_row(main), xq, x_scale);
    }
}

/// Defines a [`Rows4`] kernel `$name` with the target features `$features` from a function
/// `$row_group(w, x, n)` giving 8 i32 lanes that sum to one row's group of `n` products.
macro_rules! rows4_kernel {
    ($name:ident, $features:literal, $row_group:ident) => {
        /// Rows `r..r+4` (pointers offset to row r): their exact sums `Σ_g m_g · isum_g`.
        ///
        /// # Safety
        /// The four rows at `wp` / `mp` have `w.cols` bytes and `w.groups()` multipliers each,
        /// `xq` holds `w.cols` inputs, and the CPU has the target features.
        #[target_feature(enable = $features)]
        unsafe fn $name(wp: *const i8, mp: *const u8, xq: &[i16], w: &I8Matrix<'_>) -> [i64; 4] {
            let (cols, group, groups) = (w.cols, w.group, w.groups());
            let x = xq.as_ptr();
            let mut acc = [0i64; 4];
            // SAFETY: within the caller's rows and inputs (j0 + n <= cols); the features are
            // there.
            unsafe {
                let mut acc64 = _mm256_setzero_si256();
                for g in 0..groups {
                    let j0 = g * group;
                    let n = group.min(cols - j0);
                    let s0 = $row_group(wp.add(j0), x.add(j0), n);
                    let s1 = $row_group(wp.add(cols + j0), x.add(j0), n);
                    let s2 = $row_group(wp.add(2 * cols + j0), x.add(j0), n);
                    let s3 = $row_group(wp.add(3 * cols + j0), x.add(j0), n);
                    acc64 = super::avx2::step4(
                        acc64,
                        super::avx2::reduce4(s0, s1, s2, s3),
                        mp.add(g),
                        groups,
                    );
                }
                _mm256_storeu_si256(acc.as_mut_ptr().cast(), acc64);
            }
            acc
        }
    };
}
pub(super) use rows4_kernel;

rows4_kernel!(rows4, "avx2,f16c", row_group);

/// Σ over `n` (< 16) elements of `w[j]·x[j]` in i32 lanes: one 8-element step, then
/// zero-padded copies (padding adds 0).
///
/// # Safety
/// `n` readable elements at `w` and `x`, n < 16; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn tail_sum(w: *const i8, x: *const i16, n: usize) -> __m256i {
    let mut acc = _mm_setzero_si128();
    let mut j = 0;
    // SAFETY: the caller guarantees `n` readable elements at `w` and `x`, and n < 16.
    unsafe {
        if n >= 8 {
            let wv = _mm_cvtepi8_epi16(_mm_loadl_epi64(w.cast()));
            acc = _mm_madd_epi16(wv, _mm_loadu_si128(x.cast()));
            j = 8;
        }
        if j < n {
            let mut wb = [0i8; 8];
            let mut xb = [0i16; 8];
            core::ptr::copy_nonoverlapping(w.add(j), wb.as_mut_ptr(), n - j);
            core::ptr::copy_nonoverlapping(x.add(j), xb.as_mut_ptr(), n - j);
            let wv = _mm_cvtepi8_epi16(_mm_loadl_epi64(wb.as_ptr().cast()));
            acc = _mm_add_epi32(acc, _mm_madd_epi16(wv, _mm_loadu_si128(xb.as_ptr().cast())));
        }
        _mm256_inserti128_si256::<0>(_mm256_setzero_si256(), acc)
    }
}

/// Group sums of one row as 8 i32 lanes (their total is the exact group sum): 16 weights
/// widened to i16 (`vpmovsxbw`) times 16 inputs, pairwise into i32 (`vpmaddwd`; a pair is at
/// most 2 · 128 · 32768 = 2^23).
///
/// # Safety
/// `n` readable elements at `w` and `x`; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn row_group(w: *const i8, x: *const i16, n: usize) -> __m256i {
    // SAFETY: the caller guarantees `n` readable elements at `w` and `x`.
    unsafe {
        let mut acc = _mm256_setzero_si256();
        let mut j = 0;
        while j + 16 <= n {
            let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(j).cast()));
            let xv = _mm256_loadu_si256(x.add(j).cast());
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

/// `acc + isum · m` per 64-bit lane (one row per lane), exact: the four rows' multipliers at
/// `m`, `m + groups`, `m + 2·groups`, `m + 3·groups`.
///
/// # Safety
/// Those four bytes are readable; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn step4(acc: __m256i, isum: __m128i, m: *const u8, groups: usize) -> __m256i {
    // SAFETY: the caller guarantees the four multipliers.
    let mv = unsafe {
        _mm_setr_epi32(
            i32::from(*m),
            i32::from(*m.add(groups)),
            i32::from(*m.add(2 * groups)),
            i32::from(*m.add(3 * groups)),
        )
    };
    let p = _mm256_mul_epi32(_mm256_cvtepi32_epi64(isum), _mm256_cvtepi32_epi64(mv));
    _mm256_add_epi64(acc, p)
}

/// The widest row the int4 kernels take (their split inputs live on the stack); wider rows
/// run the scalar kernel (same bits).
pub(super) const MAX_COLS_I4: usize = 8192;

/// The int16 inputs split into even and odd columns for the int4 kernels (`[k]`: columns
/// 2k and 2k + 1; 0 past the row).
pub(super) struct SplitI4 {
    pub(super) even: [i16; MAX_COLS_I4 / 2],
    pub(super) odd: [i16; MAX_COLS_I4 / 2],
}

impl SplitI4 {
    /// `xq[..cols]` split (cols ≤ [`MAX_COLS_I4`], `xq` at least that long).
    #[inline(always)]
    pub(super) fn new(xq: &[i16], cols: usize) -> Self {
        let mut x = Self { even: [0; MAX_COLS_I4 / 2], odd: [0; MAX_COLS_I4 / 2] };
        for ((e, o), p) in x.even.iter_mut().zip(x.odd.iter_mut()).zip(xq[..cols].chunks(2)) {
            *e = p[0];
            *o = p.get(1).copied().unwrap_or(0);
        }
        x
    }
}

/// Whether the int4 kernels take `w`: groups of an even size of at least [`MIN_GROUP`]
/// (so every group but a row's last starts and ends on a byte) and rows of at most
/// [`MAX_COLS_I4`].
pub(super) fn i4_fits(w: &I4Matrix<'_>) -> bool {
    w.group >= MIN_GROUP && w.group % 2 == 0 && w.cols <= MAX_COLS_I4
}

/// See `generic::matvec_i4`.
///
/// # Safety
/// The lengths `Kernels::matvec_i4` checks hold (`w` holds `out.len()` rows, `xq` a row), and
/// the CPU runs this module's instructions.
pub(super) unsafe fn matvec_i4(out: &mut [f32], w: &I4Matrix<'_>, xq: &[i16], x_scale: f32) {
    if !i4_fits(w) {
        return generic::matvec_i4(out, w, xq, x_scale);
    }
    let x = SplitI4::new(xq, w.cols);
    // SAFETY: the caller's conditions: `w` holds `out.len()` rows, `x` splits `w.cols` inputs,
    // and the CPU has AVX2.
    unsafe { by_four_i4(out, w, &x, xq, x_scale, rows4_i4) }
}

/// The int4 kernel of four rows: pointers offset to the first row's bytes and multipliers;
/// returns their exact sums `Σ_g m_g · isum_g`.
pub(super) type Rows4I4 = unsafe fn(*const u8, *const u8, &SplitI4, &I4Matrix<'_>) -> [i64; 4];

/// int4 rows four at a time with `rows4`, the rest by the scalar kernel.
///
/// # Safety
/// `w` holds `out.len()` rows, `x` splits its `w.cols` inputs (`xq`), [`i4_fits`] holds, and
/// the CPU has what `rows4` needs.
#[inline(always)]
pub(super) unsafe fn by_four_i4(
    out: &mut [f32],
    w: &I4Matrix<'_>,
    x: &SplitI4,
    xq: &[i16],
    x_scale: f32,
    rows4: Rows4I4,
) {
    let (rb, groups) = (w.row_bytes(), w.groups());
    let main = out.len() - out.len() % 4;
    let (head, tail) = out.split_at_mut(main);
    for (blk, o) in head.chunks_exact_mut(4).enumerate() {
        let r = blk * 4;
        // SAFETY: rows r..r+4 exist (the caller's guarantee), with `rb` bytes and `groups`
        // multipliers each.
        let acc =
            unsafe { rows4(w.q.as_ptr().add(r * rb), w.mults.as_ptr().add(r * groups), x, w) };
        for ((o, a), rs) in o.iter_mut().zip(acc).zip(&w.row_scales[r..r + 4]) {
            *o = generic::finish_row(a, *rs, x_scale);
        }
    }
    if !tail.is_empty() {
        generic::matvec_i4(tail, &w.from_row(main), xq, x_scale);
    }
}

/// Defines a [`Rows4I4`] kernel `$name` with the target features `$features` from a function
/// `$row_group(w, even, odd, nb)` giving 8 i32 lanes that sum to one row's group of `nb`
/// bytes.
macro_rules! rows4_i4_kernel {
    ($name:ident, $features:literal, $row_group:ident) => {
        /// int4 rows `r..r+4` (pointers offset to row r): their exact sums `Σ_g m_g · isum_g`.
        ///
        /// # Safety
        /// The four rows at `wp` / `mp` have `w.row_bytes()` bytes and `w.groups()`
        /// multipliers each, `x` splits `w.cols` inputs, `i4_fits(w)`, and the CPU has the
        /// target features.
        #[target_feature(enable = $features)]
        unsafe fn $name(
            wp: *const u8,
            mp: *const u8,
            x: &super::avx2::SplitI4,
            w: &I4Matrix<'_>,
        ) -> [i64; 4] {
            let (cols, group, groups, rb) = (w.cols, w.group, w.groups(), w.row_bytes());
            let (xe, xo) = (x.even.as_ptr(), x.odd.as_ptr());
            let mut acc = [0i64; 4];
            // SAFETY: within the caller's rows and inputs: groups start on a byte (even
            // groups), b0 + nb <= rb = cols.div_ceil(2) <= MAX_COLS_I4 / 2; the features are
            // there.
            unsafe {
                let mut acc64 = _mm256_setzero_si256();
                for g in 0..groups {
                    let j0 = g * group;
                    let (b0, nb) = (j0 / 2, group.min(cols - j0).div_ceil(2));
                    let (e, o) = (xe.add(b0), xo.add(b0));
                    let s0 = $row_group(wp.add(b0), e, o, nb);
                    let s1 = $row_group(wp.add(rb + b0), e, o, nb);
                    let s2 = $row_group(wp.add(2 * rb + b0), e, o, nb);
                    let s3 = $row_group(wp.add(3 * rb + b0), e, o, nb);
                    acc64 = super::avx2::step4(
                        acc64,
                        super::avx2::reduce4(s0, s1, s2, s3),
                        mp.add(g),
                        groups,
                    );
                }
                _mm256_storeu_si256(acc.as_mut_ptr().cast(), acc64);
            }
            acc
        }
    };
}
pub(super) use rows4_i4_kernel;

rows4_i4_kernel!(rows4_i4, "avx2,f16c", row_group_i4);

/// 16 packed bytes times their inputs in i32 lanes: sign-extended to i16, the high nibble by
/// an arithmetic shift of 4, the low one by a shift left of 12 and back; pairs of products
/// with the even and the odd inputs (`vpmaddwd`; a pair is at most 2 · 8 · 32768 = 2^19).
///
/// # Safety
/// 16 readable bytes at `w` and inputs at `e`, `o`; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn step_i4(w: *const u8, e: *const i16, o: *const i16) -> __m256i {
    // SAFETY: the caller guarantees the 16 bytes and inputs.
    unsafe {
        let v = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.cast()));
        let hi = _mm256_srai_epi16::<4>(v);
        let lo = _mm256_srai_epi16::<12>(_mm256_slli_epi16::<12>(v));
        let pe = _mm256_madd_epi16(lo, _mm256_loadu_si256(e.cast()));
        let po = _mm256_madd_epi16(hi, _mm256_loadu_si256(o.cast()));
        _mm256_add_epi32(pe, po)
    }
}

/// [`step_i4`] over `n` < 16 bytes: zero-padded copies (padding adds 0).
///
/// # Safety
/// `n` readable bytes at `w` and inputs at `e`, `o`, n < 16; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn tail_i4(w: *const u8, e: *const i16, o: *const i16, n: usize) -> __m256i {
    let (mut wb, mut eb, mut ob) = ([0u8; 16], [0i16; 16], [0i16; 16]);
    // SAFETY: the caller guarantees `n` (< 16) readable bytes and inputs; the copies hold 16.
    unsafe {
        core::ptr::copy_nonoverlapping(w, wb.as_mut_ptr(), n);
        core::ptr::copy_nonoverlapping(e, eb.as_mut_ptr(), n);
        core::ptr::copy_nonoverlapping(o, ob.as_mut_ptr(), n);
        step_i4(wb.as_ptr(), eb.as_ptr(), ob.as_ptr())
    }
}

/// One row's int4 group of `nb` bytes as 8 i32 lanes (their total is the exact group sum).
///
/// # Safety
/// `nb` readable bytes at `w` and inputs at `e`, `o`; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn row_group_i4(w: *const u8, e: *const i16, o: *const i16, nb: usize) -> __m256i {
    // SAFETY: the caller guarantees `nb` readable bytes and inputs.
    unsafe {
        let mut acc = _mm256_setzero_si256();
        let mut k = 0;
        while k + 16 <= nb {
            acc = _mm256_add_epi32(acc, step_i4(w.add(k), e.add(k), o.add(k)));
            k += 16;
        }
        if k < nb {
            acc = _mm256_add_epi32(acc, tail_i4(w.add(k), e.add(k), o.add(k), nb - k));
        }
        acc
    }
}

/// `generic::scores_f32` compiled for AVX2: the same source, so the same operations in the
/// same order (Rust never fuses a multiply and an add), with 8-lane vectors.
///
/// # Safety
/// The CPU has AVX2.
pub(super) unsafe fn scores_f32(
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
    // SAFETY: the caller's condition: the CPU has AVX2.
    unsafe { inner(rows, row_len, off, q, scale, att) }
}

/// `generic::mix_f32` compiled for AVX2 (as [`scores_f32`]).
///
/// # Safety
/// The CPU has AVX2.
pub(super) unsafe fn mix_f32(
    rows: &[f32],
    row_len: usize,
    off: usize,
    att: &[f32],
    out: &mut [f32],
) {
    #[target_feature(enable = "avx2")]
    fn inner(rows: &[f32], row_len: usize, off: usize, att: &[f32], out: &mut [f32]) {
        generic::mix_f32(rows, row_len, off, att, out)
    }
    // SAFETY: the caller's condition: the CPU has AVX2.
    unsafe { inner(rows, row_len, off, att, out) }
}

/// `generic::softmax` compiled for AVX2 with the exponential's range checks as selects
/// (`generic::exp_selects`, the same bits), so the exponentials run eight lanes at a time;
/// the maximum and the divisions are order-free, the sum stays in index order.
///
/// # Safety
/// The CPU has AVX2.
pub(super) unsafe fn softmax(x: &mut [f32]) {
    #[target_feature(enable = "avx2")]
    fn inner(x: &mut [f32]) {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, v| if *v > m { *v } else { m });
        for v in x.iter_mut() {
            *v = generic::exp_selects(*v - max);
        }
        let sum = x.iter().fold(0.0f32, |s, v| s + v);
        for v in x.iter_mut() {
            *v /= sum;
        }
    }
    // SAFETY: the caller's condition: the CPU has AVX2.
    unsafe { inner(x) }
}

/// `generic::swiglu` compiled for AVX2 with [`generic::exp_selects`] (the same bits), eight
/// lanes at a time.
///
/// # Safety
/// The CPU has AVX2.
pub(super) unsafe fn swiglu(gate: &mut [f32], up: &[f32]) {
    #[target_feature(enable = "avx2")]
    fn inner(gate: &mut [f32], up: &[f32]) {
        for (g, u) in gate.iter_mut().zip(up) {
            *g *= 1.0 / (1.0 + generic::exp_selects(-*g));
            *g *= u;
        }
    }
    // SAFETY: the caller's condition: the CPU has AVX2.
    unsafe { inner(gate, up) }
}
