//! Every supported backend against the scalar specification, bit for bit: extremes, zeros,
//! length 1, lengths that are not multiples of any vector width, short last groups, row counts
//! that are not multiples of the row blocking, and random property tests. Every case runs the
//! int4 matmul too, on the low nibbles of its weights (−8..=7), packed as the files store them.

use super::selftest::Rng;
use super::*;

const MAX_ROWS: usize = 67;
const MAX_COLS: usize = 300;

struct Case {
    rows: usize,
    cols: usize,
    group: usize,
    w: [i8; MAX_ROWS * MAX_COLS],
    rs: [f32; MAX_ROWS],
    mults: [u8; MAX_ROWS * MAX_COLS],
    xq: [i16; MAX_COLS],
    xs: f32,
}

impl Case {
    fn new(rows: usize, cols: usize, group: usize) -> Self {
        assert!(rows <= MAX_ROWS && cols <= MAX_COLS && group >= 1);
        Case {
            rows,
            cols,
            group,
            w: [0; MAX_ROWS * MAX_COLS],
            rs: [1.0; MAX_ROWS],
            mults: [1; MAX_ROWS * MAX_COLS],
            xq: [0; MAX_COLS],
            xs: 1.0,
        }
    }

    fn random(rng: &mut Rng, rows: usize, cols: usize, group: usize) -> Self {
        let mut c = Case::new(rows, cols, group);
        c.w.iter_mut().for_each(|v| *v = rng.i8());
        c.xq.iter_mut().for_each(|v| *v = rng.i16());
        c.rs.iter_mut().for_each(|v| *v = rng.f32() * 0.05);
        c.mults.iter_mut().for_each(|v| *v = rng.i8() as u8);
        c.xs = rng.f32() * 0.1;
        c
    }

    fn run(&self, b: Backend) -> [f32; MAX_ROWS] {
        self.run_at(b, 0)
    }

    /// Runs with the weights copied `offset` bytes past a 16-byte boundary (the Arm kernels
    /// take their word-aligned paths only when the weights allow it).
    fn run_at(&self, b: Backend, offset: usize) -> [f32; MAX_ROWS] {
        #[repr(C, align(16))]
        struct Aligned([i8; MAX_ROWS * MAX_COLS + 16]);
        let n = self.rows * self.cols;
        let mut a = Aligned([0; MAX_ROWS * MAX_COLS + 16]);
        a.0[offset..offset + n].copy_from_slice(&self.w[..n]);
        let groups = self.cols.div_ceil(self.group);
        let w = I8Matrix {
            q: &a.0[offset..offset + n],
            row_scales: &self.rs[..self.rows],
            mults: &self.mults[..self.rows * groups],
            cols: self.cols,
            group: self.group,
        };
        let mut out = [f32::NAN; MAX_ROWS];
        b.kernels().matvec_i8(&mut out[..self.rows], &w, &self.xq[..self.cols], self.xs);
        out
    }

    /// The int4 matmul on the low nibbles of the weights (packed two per byte, low nibble
    /// first, each row on a byte), the packed bytes `offset` bytes past a 16-byte boundary.
    fn run_i4_at(&self, b: Backend, offset: usize) -> [f32; MAX_ROWS] {
        #[repr(C, align(16))]
        struct Aligned([u8; MAX_ROWS * MAX_COLS / 2 + MAX_ROWS + 16]);
        let rb = self.cols.div_ceil(2);
        let mut a = Aligned([0; MAX_ROWS * MAX_COLS / 2 + MAX_ROWS + 16]);
        for r in 0..self.rows {
            let row = &self.w[r * self.cols..(r + 1) * self.cols];
            for (k, pair) in row.chunks(2).enumerate() {
                let hi = pair.get(1).map_or(0, |v| (*v as u8) << 4);
                a.0[offset + r * rb + k] = (pair[0] as u8 & 0x0f) | hi;
            }
        }
        let groups = self.cols.div_ceil(self.group);
        let w = I4Matrix {
            q: &a.0[offset..offset + self.rows * rb],
            row_scales: &self.rs[..self.rows],
            mults: &self.mults[..self.rows * groups],
            cols: self.cols,
            group: self.group,
        };
        let mut out = [f32::NAN; MAX_ROWS];
        b.kernels().matvec_i4(&mut out[..self.rows], &w, &self.xq[..self.cols], self.xs);
        out
    }

    /// Every supported backend equals `generic` bit for bit.
    fn check(&self, what: &str) {
        self.check_at(what, 0);
    }

    /// [`Case::check`] with the weights `offset` bytes past an aligned address.
    fn check_at(&self, what: &str, offset: usize) {
        self.compare(what, "int8", |b| self.run_at(b, offset));
        self.compare(what, "int4", |b| self.run_i4_at(b, offset));
    }

    /// `run(b)` for every supported backend equals `run(Backend::Scalar)` bit for bit.
    fn compare(&self, what: &str, dtype: &str, run: impl Fn(Backend) -> [f32; MAX_ROWS]) {
        let want = run(Backend::Scalar);
        for b in ALL_BACKENDS.iter().copied().filter(|b| b.is_supported()) {
            let got = run(b);
            for r in 0..self.rows {
                // NaN payloads are not specified by Rust (Miri randomises them): a NaN
                // matches a NaN; every other value matches bit for bit.
                let same =
                    got[r].to_bits() == want[r].to_bits() || (got[r].is_nan() && want[r].is_nan());
                assert!(
                    same,
                    "{what} ({dtype}): backend {} row {r} of {}x{} group {}: {} vs {}",
                    b.name(),
                    self.rows,
                    self.cols,
                    self.group,
                    got[r],
                    want[r]
                );
            }
        }
    }
}

const GROUPS: [usize; 16] = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 256];

#[test]
fn extremes_are_exact() {
    let (lo, hi) = (i16::MIN, i16::MAX);
    for &(wv, xv) in &[(-128i8, lo), (127, hi), (-128, hi), (127, lo)] {
        for &cols in &[1usize, 16, 33, 64, 255, 300] {
            for &group in &GROUPS {
                let mut c = Case::new(9, cols, group.min(cols));
                c.w.iter_mut().for_each(|v| *v = wv);
                c.xq.iter_mut().for_each(|v| *v = xv);
                c.mults.iter_mut().for_each(|v| *v = 255);
                c.check("extremes");
                // And the known value: −128 · −32768 · 255 per column.
                if wv == -128 && xv == lo {
                    let want = (128i64 * 32768 * 255 * cols as i64) as f32;
                    assert_eq!(c.run(Backend::best())[0], want);
                }
            }
        }
    }
}

#[test]
fn int4_extremes_are_exact() {
    // −8 and 7 (the nibbles 0x8 and 0x7) against both int16 extremes, multipliers 255.
    let (lo, hi) = (i16::MIN, i16::MAX);
    for &(wv, xv) in &[(-8i8, lo), (7, hi), (-8, hi), (7, lo)] {
        for &cols in &[1usize, 16, 33, 64, 255, 300] {
            for &group in &GROUPS {
                let mut c = Case::new(9, cols, group.min(cols));
                c.w.iter_mut().for_each(|v| *v = wv);
                c.xq.iter_mut().for_each(|v| *v = xv);
                c.mults.iter_mut().for_each(|v| *v = 255);
                c.check("int4 extremes");
                if wv == -8 && xv == lo {
                    let want = (8i64 * 32768 * 255 * cols as i64) as f32;
                    assert_eq!(c.run_i4_at(Backend::best(), 0)[0], want);
                    assert_eq!(c.run_i4_at(Backend::Scalar, 0)[0], want);
                }
            }
        }
    }
}

#[test]
fn int4_rows_wider_than_the_split_inputs_run_the_scalar_kernel() {
    // Past the x86 kernels' stack of split inputs: the scalar kernel, the same bits.
    let cols = 8194;
    let q = [0x9fu8; 4097];
    let x: [i16; 8194] = core::array::from_fn(|j| (j as i16).wrapping_mul(77));
    let mults = [3u8; 8194 / 32 + 1];
    let w = I4Matrix { q: &q, row_scales: &[0.5], mults: &mults, cols, group: 32 };
    let mut want = [0f32];
    generic::matvec_i4(&mut want, &w, &x, 0.25);
    for b in ALL_BACKENDS.iter().copied().filter(|b| b.is_supported()) {
        let mut got = [0f32];
        b.kernels().matvec_i4(&mut got, &w, &x, 0.25);
        assert_eq!(got[0].to_bits(), want[0].to_bits(), "{}", b.name());
    }
}

#[test]
fn zeros_give_zero() {
    for &group in &GROUPS {
        let c = Case::new(9, 300, group);
        c.check("zeros");
        assert!(c.run(Backend::best())[..9].iter().all(|v| v.to_bits() == 0));
    }
}

#[test]
fn length_one_and_every_small_shape() {
    let mut rng = Rng(7);
    // Miri interprets every instruction: a sample of the shapes there, all of them natively.
    let (max_rows, max_cols) = if cfg!(miri) { (3, 9) } else { (11, 70) };
    for rows in 1..=max_rows {
        for cols in 1..=max_cols {
            let group = 1 + rng.below(cols);
            Case::random(&mut rng, rows, cols, group).check("small");
            Case::random(&mut rng, rows, cols, cols).check("whole row");
        }
    }
}

#[test]
fn random_shapes_match_the_scalar_kernel() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..if cfg!(miri) { 4 } else { 400 } {
        let rows = 1 + rng.below(MAX_ROWS);
        let cols = 1 + rng.below(MAX_COLS);
        let group = if rng.below(2) == 0 {
            GROUPS[rng.below(GROUPS.len())]
        } else {
            1 + rng.below(cols.min(MAX_GROUP))
        };
        Case::random(&mut rng, rows, cols, group.min(cols)).check("random");
    }
}

#[test]
fn model_shapes_aligned_or_not() {
    // stories260K's matmuls (64 inputs in groups of 32 or 8, 172 in groups of 16: a short
    // last group of 12), their neighbours, and widths past the Arm fast path's 256 inputs,
    // with the weights word-aligned (the Arm kernels' fast paths) and not.
    let mut rng = Rng(0x5eed);
    let shapes = [(64, 32), (64, 8), (172, 16), (64, 16), (60, 32), (68, 8), (172, 32), (256, 8)];
    let more = [(260, 16), (300, 32), (288, 8), (296, 4), (264, 12)];
    for &(cols, group) in shapes.iter().chain(&more) {
        // 33 and 67 rows: past the Arm row loops' blocks of 32.
        for rows in [1, 2, 7, 33, MAX_ROWS] {
            for offset in 0..4 {
                Case::random(&mut rng, rows, cols, group).check_at("model shape", offset);
            }
        }
    }
}

#[test]
fn special_scales_propagate_identically() {
    let mut rng = Rng(99);
    let specials = [0.0f32, -0.0, 1e-40, 65504.0, f32::INFINITY, f32::NAN, 6e-8, f32::MAX];
    for (i, &s) in specials.iter().enumerate() {
        for rows in [6, MAX_ROWS] {
            let mut c = Case::random(&mut rng, rows, 96, 32);
            c.rs[i % rows] = s;
            c.rs[rows - 1] = s;
            c.xs = s;
            c.check("special scales");
            c.xs = 1e-30;
            c.check("special scales, tiny input scale");
        }
    }
}

#[test]
fn sums_past_i32_are_exact() {
    // 300 columns of 127 · 32767 · 255 reach 3.2e11: the i64 sum, then one rounding.
    let mut c = Case::new(MAX_ROWS, 300, 8);
    c.w.iter_mut().for_each(|v| *v = 127);
    c.xq.iter_mut().for_each(|v| *v = i16::MAX);
    c.mults.iter_mut().for_each(|v| *v = 255);
    c.check("past i32");
    assert_eq!(c.run(Backend::best())[0], (127i64 * 32767 * 255 * 300) as f32);
}

#[test]
fn an_int4_matrix_that_does_not_hold_its_rows_is_refused() {
    // 4 rows of 5 columns need 12 bytes (3 per row, each starting on a byte).
    let q = [0x11u8; 11];
    let m = I4Matrix { q: &q, row_scales: &[1.0; 4], mults: &[1; 8], cols: 5, group: 4 };
    for b in ALL_BACKENDS.iter().copied().filter(|b| b.is_supported()) {
        let mut out = [0f32; 4];
        b.kernels().matvec_i4(&mut out, &m, &[1; 5], 1.0);
        assert!(out.iter().all(|v| v.is_nan()), "{}", b.name());
        let mut out = [0f32; 3];
        b.kernels().matvec_i4(&mut out, &m, &[1; 4], 1.0);
        assert!(out.iter().all(|v| v.is_nan()), "short input: {}", b.name());
        let mut out = [0f32; 3];
        b.kernels().matvec_i4(&mut out, &I4Matrix { group: 5, ..m }, &[1; 5], 1.0);
        assert!(out.iter().all(|v| !v.is_nan()), "a group of the whole row: {}", b.name());
        b.kernels().matvec_i4(&mut out, &I4Matrix { group: 257, ..m }, &[1; 5], 1.0);
        assert!(out.iter().all(|v| v.is_nan()), "group past MAX_GROUP: {}", b.name());
    }
}

#[test]
fn a_matrix_that_does_not_hold_its_rows_is_refused() {
    // Short slices or an over-long group: every backend leaves NaN, none reads past a slice.
    let w = [1i8; 10];
    let m = I8Matrix { q: &w, row_scales: &[1.0; 4], mults: &[1; 4], cols: 4, group: 4 };
    for b in ALL_BACKENDS.iter().copied().filter(|b| b.is_supported()) {
        let mut out = [0f32; 4];
        b.kernels().matvec_i8(&mut out, &m, &[1; 4], 1.0);
        assert!(out.iter().all(|v| v.is_nan()), "{}", b.name());
        let mut out = [0f32; 4];
        b.kernels().matvec_i8(&mut out, &I8Matrix { q: &[], ..m }, &[1; 4], 1.0);
        assert!(out.iter().all(|v| v.is_nan()), "{}", b.name());
        let wide = [1i8; 300];
        let m = I8Matrix { q: &wide, row_scales: &[1.0], mults: &[1], cols: 300, group: 300 };
        let mut out = [0f32; 1];
        b.kernels().matvec_i8(&mut out, &m, &[1; 300], 1.0);
        assert!(out[0].is_nan(), "{}", b.name());
    }
}

#[test]
fn groups_of_32_in_blocks_of_eight_rows() {
    // The AVX-512 path for groups of 32 takes eight rows and two groups per step, an odd last
    // group alone: every row count around 8, even and odd group counts, with extremes.
    let mut rng = Rng(0x3232);
    for rows in 7..=MAX_ROWS {
        for groups in 1..=9 {
            Case::random(&mut rng, rows, 32 * groups, 32).check("groups of 32");
            let mut c = Case::random(&mut rng, rows, 32 * groups, 32);
            for (j, v) in c.w.iter_mut().enumerate() {
                *v = if j % 3 == 0 { -128 } else { 127 };
            }
            c.xq.iter_mut().enumerate().for_each(|(j, v)| {
                *v = if j % 2 == 0 { i16::MIN } else { i16::MAX };
            });
            c.mults.iter_mut().for_each(|v| *v = 255);
            c.check("groups of 32, extremes");
        }
    }
}

#[test]
fn backend_names_round_trip() {
    for b in ALL_BACKENDS {
        assert_eq!(Backend::from_name(b.name()), Some(b));
    }
    assert_eq!(Backend::from_name("generic"), Some(Backend::Scalar));
    assert_eq!(Backend::from_name("avx3"), None);
    assert!(Backend::Scalar.is_supported());
    assert!(Backend::best().is_supported());
}

#[test]
fn the_target_kernels_are_compiled_in() {
    #[cfg(target_arch = "aarch64")]
    assert!(Backend::Neon.is_supported());
    #[cfg(chispa_dsp)]
    assert!(Backend::Dsp.is_supported());
    #[cfg(chispa_mve)]
    assert!(Backend::Mve.is_supported());
}

/// Every operation of the kernel table (`kernel_table!`), for every backend this build and
/// CPU run: its self-test check compares outputs (a check that compares nothing fails) and
/// finds no bit different from the scalar code.
#[test]
fn selftest_passes_for_every_backend_and_operation() {
    for b in ALL_BACKENDS.iter().copied().filter(|b| b.is_supported()) {
        for (op, check) in super::CHECKS {
            let mut r = selftest::Report::default();
            check(b, &mut r);
            assert!(r.checks > 100, "{} {op}: {r:?}", b.name());
            assert_eq!(r.failures, 0, "{} {op}: {r:?}", b.name());
        }
        let r = selftest::run(b);
        assert_eq!(r.failures, 0, "{}: {r:?}", b.name());
    }
}

/// The f32 attention kernels of every backend against their definitions, bit for bit: head
/// sizes around the 8 lanes and the 16 outputs per pass, every position count to 40.
#[test]
fn f32_attention_kernels_match_their_definitions() {
    const N: usize = 40;
    const ROW: usize = 80;
    let mut rng = Rng(0xf32a);
    let mut rows = [0f32; N * ROW];
    rows.iter_mut().enumerate().for_each(|(i, v)| *v = rng.f32() * [1.0, 1e-3, 1e3][i % 3]);
    for &(hs, off) in
        &[(1usize, 0usize), (7, 3), (8, 8), (9, 0), (16, 16), (17, 40), (48, 32), (64, 16), (80, 0)]
    {
        let mut q = [0f32; ROW];
        q.iter_mut().for_each(|v| *v = rng.f32() * 3.0);
        let q = &q[..hs];
        let mut att = [0f32; N];
        att.iter_mut().for_each(|v| *v = rng.f32().abs());
        for n in [1, 2, 7, 8, 9, 33, N] {
            let rows = &rows[..n * ROW];
            let mut want_s = [0f32; N];
            for (t, w) in want_s.iter_mut().take(n).enumerate() {
                let k = &rows[t * ROW + off..t * ROW + off + hs];
                *w = generic::dot_lanes(q, k, |v| v) / 1.7;
            }
            let mut want_m = [0.25f32; ROW];
            for (t, a) in att.iter().take(n).enumerate() {
                for (o, v) in want_m.iter_mut().zip(&rows[t * ROW + off..t * ROW + off + hs]) {
                    *o += a * v;
                }
            }
            for b in ALL_BACKENDS.iter().copied().filter(|b| b.is_supported()) {
                let mut got_s = [0f32; N];
                let kv = HeadRows { rows, row_len: ROW, off, scales: &[] };
                b.kernels().scores_f32(kv, q, 1.7, &mut got_s[..n]);
                let mut got_m = [0.25f32; ROW];
                b.kernels().mix_f32(kv, &att[..n], &mut got_m[..hs]);
                for t in 0..n {
                    assert_eq!(
                        got_s[t].to_bits(),
                        want_s[t].to_bits(),
                        "{}: scores hs {hs} n {n} t {t}",
                        b.name()
                    );
                }
                for i in 0..hs {
                    assert_eq!(
                        got_m[i].to_bits(),
                        want_m[i].to_bits(),
                        "{}: mix hs {hs} n {n} i {i}",
                        b.name()
                    );
                }
            }
        }
    }
}
