//! The kernels of one backend against the scalar specification, bit for bit, where they run:
//! the firmware calls [`run`] (feature `selftest`, `cargo xtask qemu --selftest`) because the
//! Helium kernels cannot run under the host's tests, and the host's tests call it for every
//! backend they have. Besides random data it feeds what takes the assembly kernels off their
//! fast paths: subnormal scales and products (Helium flushes them, so its kernels must
//! notice and redo the work), NaN and infinite scales, misaligned weights, short groups,
//! row and position counts that are not multiples of the kernels' blocks.
//!
//! No heap and about 11 KiB of stack.

use super::Backend;
use super::{generic, HeadRows, I4Matrix, I8Matrix};

/// What [`run`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Report {
    /// Outputs compared.
    pub checks: u32,
    /// Outputs that differ from the scalar code.
    pub failures: u32,
    /// The kind of the first case that failed.
    pub first_failure: Option<&'static str>,
}

impl Report {
    fn check(&mut self, what: &'static str, got: &[f32], want: &[f32]) {
        for (g, w) in got.iter().zip(want) {
            self.checks += 1;
            // NaN payloads are not specified: a NaN matches a NaN.
            if g.to_bits() != w.to_bits() && !(g.is_nan() && w.is_nan()) {
                self.failures += 1;
                self.first_failure.get_or_insert(what);
            }
        }
    }
}

/// xorshift64*: deterministic test data on every target (the unit tests use it too).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Below `n` (`n > 0`).
    #[cfg(test)]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() >> 33) as usize % n
    }
    pub(crate) fn i16(&mut self) -> i16 {
        (self.next() >> 48) as u16 as i16
    }

    pub(crate) fn i8(&mut self) -> i8 {
        (self.next() >> 56) as u8 as i8
    }
    /// Uniform in [-1, 1).
    pub(crate) fn f32(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

const ROWS: usize = 9;
const COLS: usize = 300;
const GROUPS: usize = COLS;

/// Weights 16-byte aligned, so an offset gives any alignment.
#[repr(C, align(16))]
struct Weights([i8; ROWS * COLS + 16]);

/// Special values for the row scales: subnormal, zero, NaN, infinity, large.
const SPECIAL_WS: [f32; 6] = [3.0e-39, 6.0e-45, 0.0, f32::NAN, f32::INFINITY, 65504.0];

/// Every kernel of backend `b` against the scalar code (`b` unsupported: the scalar code
/// against itself): each operation's check from the kernel table (`kernel_table!`).
pub fn run(b: Backend) -> Report {
    let mut r = Report::default();
    for (_, check) in super::CHECKS {
        check(b, &mut r);
    }
    r
}

/// One int8 matmul case and the same weights' int4 nibbles: what, matrices, inputs, scale.
type MatvecCase<'a> = (&'static str, &'a I8Matrix<'a>, &'a I4Matrix<'a>, &'a [i16], f32);

/// `matvec_i8` of backend `b` against the scalar code.
pub(crate) fn matvec_i8(b: Backend, r: &mut Report) {
    matvec_cases(&mut |(what, m, _, xq, xs)| {
        let rows = m.row_scales.len();
        let (mut want, mut got) = ([f32::NAN; ROWS], [f32::NAN; ROWS]);
        generic::matvec_i8(&mut want[..rows], m, xq, xs);
        b.kernels().matvec_i8(&mut got[..rows], m, xq, xs);
        r.check(what, &got[..rows], &want[..rows]);
    });
}

/// `matvec_i4` of backend `b` against the scalar code.
pub(crate) fn matvec_i4(b: Backend, r: &mut Report) {
    matvec_cases(&mut |(what, _, m, xq, xs)| {
        let rows = m.row_scales.len();
        let (mut want, mut got) = ([f32::NAN; ROWS], [f32::NAN; ROWS]);
        generic::matvec_i4(&mut want[..rows], m, xq, xs);
        b.kernels().matvec_i4(&mut got[..rows], m, xq, xs);
        r.check(what, &got[..rows], &want[..rows]);
    });
}

/// The matmul cases, the same on every call (a fixed seed).
fn matvec_cases(each: &mut dyn FnMut(MatvecCase<'_>)) {
    let mut rng = Rng(0x5e1f_7e57);
    // (rows, cols, group): the model's shapes (64 in groups of 32 or 8, 172 in 16 with a
    // short group of 12), rows that are not a multiple of 4, short groups of every kind,
    // several passes (over 256 inputs), odd groups.
    let shapes: [(usize, usize, usize); 13] = [
        (8, 64, 32),
        (8, 64, 8),
        (8, 172, 16),
        (9, 64, 32),
        (5, 172, 16),
        (4, 60, 32),
        (4, 68, 16),
        (4, 76, 32),
        (6, 300, 32),
        (3, 264, 8),
        (4, 96, 12),
        (2, 33, 7),
        (1, 5, 2),
    ];
    let mut w = Weights([0; ROWS * COLS + 16]);
    let mut rs = [0f32; ROWS];
    let mut mults = [0u8; ROWS * GROUPS];
    let mut xq = [0i16; COLS];
    for (variant, &(rows, cols, group)) in (0..5).flat_map(|v| shapes.iter().map(move |s| (v, s))) {
        let groups = cols.div_ceil(group);
        let offset = variant % 4;
        w.0.iter_mut().for_each(|v| *v = rng.i8());
        xq.iter_mut().for_each(|v| *v = rng.i16());
        rs.iter_mut().for_each(|v| *v = rng.f32() * 0.05);
        mults.iter_mut().for_each(|v| *v = rng.i8() as u8);
        let mut xs = rng.f32() * 0.1;
        let what = match variant {
            0 => "matvec",
            1 => {
                // Subnormal row scales here and there.
                for (i, v) in rs.iter_mut().enumerate().step_by(3) {
                    *v = SPECIAL_WS[i % 2];
                }
                "matvec, subnormal scales"
            }
            2 => {
                // An input scale so small that the products are subnormal.
                xs *= 1.0e-34;
                "matvec, subnormal products"
            }
            3 => {
                for (i, s) in SPECIAL_WS.iter().enumerate() {
                    rs[i % rows] = *s;
                }
                xs = f32::NAN;
                "matvec, special scales"
            }
            _ => {
                // Rows whose exact sums pass i32 (most), or not (one weight left), of both
                // signs, with low bits that matter for the rounding to f32.
                for r in 0..rows {
                    let sign = if r % 2 == 0 { 1 } else { -1 };
                    let keep = if r % 3 == 1 { 1 } else { cols };
                    for (j, v) in
                        w.0[offset + r * cols..offset + (r + 1) * cols].iter_mut().enumerate()
                    {
                        *v = if j < keep { sign * (120 + (rng.next() % 8) as i8) } else { 0 };
                    }
                }
                xq.iter_mut().for_each(|v| *v = i16::MAX - (rng.next() % 16) as i16);
                mults.iter_mut().for_each(|v| *v = 255 - (rng.next() % 4) as u8);
                "matvec, sums past i32"
            }
        };
        let m = I8Matrix {
            q: &w.0[offset..offset + rows * cols],
            row_scales: &rs[..rows],
            mults: &mults[..rows * groups],
            cols,
            group,
        };
        // The int4 matmul on the same case: each weight's low nibble (the sums past i32:
        // −8 or 7 by sign), packed two per byte at the same offset.
        let mut p = Packed([0; ROWS * COLS.div_ceil(2) + 16]);
        let rb = cols.div_ceil(2);
        for row in 0..rows {
            let wr = &w.0[offset + row * cols..offset + (row + 1) * cols];
            for (k, pair) in wr.chunks(2).enumerate() {
                let nib = |v: i8| match (variant, v.signum()) {
                    (4, 1) => 0x7,
                    (4, -1) => 0x8,
                    _ => v as u8 & 0x0f,
                };
                p.0[offset + row * rb + k] = nib(pair[0]) | pair.get(1).map_or(0, |v| nib(*v) << 4);
            }
        }
        let m4 = I4Matrix {
            q: &p.0[offset..offset + rows * rb],
            row_scales: &rs[..rows],
            mults: &mults[..rows * groups],
            cols,
            group,
        };
        each((what, &m, &m4, &xq[..cols], xs));
    }
}

/// Packed int4 weights, 16-byte aligned (as [`Weights`]).
#[repr(C, align(16))]
struct Packed([u8; ROWS * COLS.div_ceil(2) + 16]);

const POS: usize = 70;

/// Head sizes and row layouts (elements per row, the head's offset) the attention kernels are
/// fed: heads of 8 (the SIMD kernels') at every kind of offset and stride, and the other head
/// sizes models have, which the table sends to the scalar code.
const ATTENTION_SHAPES: [(usize, usize, usize); 9] = [
    (8, 32, 0),
    (8, 32, 24),
    (8, 8, 0),
    (8, 13, 5),
    (12, 40, 4),
    (16, 40, 8),
    (32, 40, 0),
    (48, 56, 8),
    (64, 64, 0),
];

/// One int8 attention case: what (scores, output), the rows, the two query heads, the
/// scores' scales, the two heads' attention weights.
struct AttentionCase<'a> {
    what: (&'static str, &'static str),
    kv: HeadRows<'a, i8>,
    q: [&'a [i16]; 2],
    c: [f32; 2],
    w: [&'a [f32]; 2],
}

/// `scores2_i8` of backend `b` against the scalar code.
pub(crate) fn scores2_i8(b: Backend, r: &mut Report) {
    attention_cases(&mut |a| {
        let n = a.w[0].len();
        let (mut want_a, mut want_b) = ([0f32; POS], [0f32; POS]);
        let (mut got_a, mut got_b) = ([f32::NAN; POS], [f32::NAN; POS]);
        generic::scores2_i8(a.kv, a.q, a.c, [&mut want_a[..n], &mut want_b[..n]]);
        b.kernels().scores2_i8(a.kv, a.q, a.c, [&mut got_a[..n], &mut got_b[..n]]);
        r.check(a.what.0, &got_a[..n], &want_a[..n]);
        r.check(a.what.0, &got_b[..n], &want_b[..n]);
    });
}

/// `mix2_i8` of backend `b` against the scalar code (heads of 8, the kernels' size).
pub(crate) fn mix2_i8(b: Backend, r: &mut Report) {
    attention_cases(&mut |a| {
        if a.q[0].len() != 8 {
            return;
        }
        let HeadRows { rows, row_len, off, scales } = a.kv;
        let (mut want_a, mut want_b) = ([0.5f32; 8], [-0.25f32; 8]);
        let (mut got_a, mut got_b) = ([0.5f32; 8], [-0.25f32; 8]);
        let [wa, wb] = a.w;
        generic::mix2_i8(rows, row_len, off, scales, wa, wb, &mut want_a, &mut want_b);
        b.kernels().mix2_i8(a.kv, a.w, [&mut got_a, &mut got_b]);
        r.check(a.what.1, &got_a, &want_a);
        r.check(a.what.1, &got_b, &want_b);
    });
}

/// The int8 attention cases, the same on every call (a fixed seed).
fn attention_cases(each: &mut dyn FnMut(AttentionCase<'_>)) {
    let mut rng = Rng(0xa77e_5e1f);
    let mut rows = [0i8; POS * 40];
    let mut scales = [0f32; POS];
    let (mut q_a, mut q_b) = ([0i16; 64], [0i16; 64]);
    let (mut w_a, mut w_b) = ([0f32; POS], [0f32; POS]);
    for variant in 0..3 {
        for &(hs, row_len, off) in &ATTENTION_SHAPES {
            rows.iter_mut().for_each(|v| *v = rng.i8());
            scales.iter_mut().for_each(|v| *v = rng.f32() * 0.05);
            q_a.iter_mut().chain(q_b.iter_mut()).for_each(|v| *v = rng.i16());
            w_a.iter_mut().chain(w_b.iter_mut()).for_each(|v| *v = rng.f32().abs());
            let mut c = [rng.f32().abs() * 1e-3, rng.f32().abs() * 1e-3];
            let what = match variant {
                0 => ("attention scores", "attention output"),
                1 => {
                    // Extreme queries and rows: the sums' widest values.
                    q_a[..hs].fill(i16::MIN);
                    q_b[..hs].fill(i16::MAX);
                    rows[..row_len].fill(i8::MIN);
                    ("attention scores, extreme inputs", "attention output, extreme inputs")
                }
                _ => {
                    // Products that are subnormal (Helium flushes them) or zero.
                    scales[2] = 1.0e-37;
                    c[1] = 1.0e-30;
                    w_b[5] = 2.0e-39;
                    w_a[9] = 1.0e-30;
                    q_a[..hs].fill(0);
                    ("attention scores, subnormal products", "attention output, subnormal products")
                }
            };
            let most = (rows.len() / row_len).min(POS);
            for n in [1, 3, 4, 5, 8, 13, most] {
                let rows = &rows[..n * row_len];
                let kv = HeadRows { rows, row_len, off, scales: &scales };
                let q = [&q_a[..hs], &q_b[..hs]];
                each(AttentionCase { what, kv, q, c, w: [&w_a[..n], &w_b[..n]] });
            }
        }
    }
}

/// One f32 attention case: the rows, the query head, the attention weights.
type F32Case<'a> = (HeadRows<'a, f32>, &'a [f32], &'a [f32]);

/// The f32 attention cases: head sizes around the 8 lanes and the 16 outputs per pass, row
/// offsets, every kind of position count; rows mixing magnitudes.
fn f32_cases(each: &mut dyn FnMut(F32Case<'_>)) {
    const N: usize = 33;
    const ROW: usize = 48;
    let mut rng = Rng(0xf32a);
    let mut rows = [0f32; N * ROW];
    rows.iter_mut().enumerate().for_each(|(i, v)| *v = rng.f32() * [1.0, 1e-3, 1e3][i % 3]);
    for &(hs, off) in &[(1usize, 0usize), (7, 3), (8, 8), (9, 0), (16, 16), (17, 24), (48, 0)] {
        let mut q = [0f32; ROW];
        q.iter_mut().for_each(|v| *v = rng.f32() * 3.0);
        let mut att = [0f32; N];
        att.iter_mut().for_each(|v| *v = rng.f32().abs());
        for n in [1, 2, 7, 8, 9, 17, N] {
            let kv = HeadRows { rows: &rows[..n * ROW], row_len: ROW, off, scales: &[] };
            each((kv, &q[..hs], &att[..n]));
        }
    }
}

/// `scores_f32` of backend `b` against the scalar code.
pub(crate) fn scores_f32(b: Backend, r: &mut Report) {
    let (k, spec) = (b.kernels(), super::Kernels::generic());
    f32_cases(&mut |(kv, q, att)| {
        let n = att.len();
        let (mut want, mut got) = ([0f32; 33], [f32::NAN; 33]);
        spec.scores_f32(kv, q, 1.7, &mut want[..n]);
        k.scores_f32(kv, q, 1.7, &mut got[..n]);
        r.check("f32 attention scores", &got[..n], &want[..n]);
    });
}

/// `mix_f32` of backend `b` against the scalar code.
pub(crate) fn mix_f32(b: Backend, r: &mut Report) {
    let (k, spec) = (b.kernels(), super::Kernels::generic());
    f32_cases(&mut |(kv, q, att)| {
        let hs = q.len();
        let (mut want, mut got) = ([0.25f32; 48], [0.25f32; 48]);
        spec.mix_f32(kv, att, &mut want[..hs]);
        k.mix_f32(kv, att, &mut got[..hs]);
        r.check("f32 attention output", &got[..hs], &want[..hs]);
    });
}

/// `softmax` of backend `b` against the scalar code.
pub(crate) fn softmax(b: Backend, r: &mut Report) {
    let k = b.kernels();
    let mut rng = Rng(0x50f7_5e1f);
    let mut x = [0f32; POS];
    for n in [1, 2, 3, 4, 5, 7, 8, 9, 16, 33, POS] {
        for spread in [0.001f32, 0.3, 1.0, 3.0, 30.0, 120.0] {
            x.iter_mut().for_each(|v| *v = rng.f32() * spread);
            let (mut want, mut got) = (x, x);
            generic::softmax(&mut want[..n]);
            k.softmax(&mut got[..n]);
            r.check("softmax", &got[..n], &want[..n]);
        }
        // x - max across the exponential's lower edge (t = -125: results near 2^-125, then
        // 0), subnormal differences, and specials.
        for (i, v) in x.iter_mut().enumerate() {
            *v = -86.64 + (i % 9) as f32 * 0.003 - if i % 5 == 0 { 0.01 } else { 0.0 };
        }
        x[0] = 0.0;
        x[1 % n] = 1.0e-39;
        let (mut want, mut got) = (x, x);
        generic::softmax(&mut want[..n]);
        k.softmax(&mut got[..n]);
        r.check("softmax, lower edge", &got[..n], &want[..n]);
        for special in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0] {
            x.iter_mut().for_each(|v| *v = rng.f32() * 5.0);
            x[n / 2] = special;
            let (mut want, mut got) = (x, x);
            generic::softmax(&mut want[..n]);
            k.softmax(&mut got[..n]);
            r.check("softmax, specials", &got[..n], &want[..n]);
        }
    }
}

/// `swiglu` of backend `b` against the scalar code.
pub(crate) fn swiglu(b: Backend, r: &mut Report) {
    let k = b.kernels();
    let mut rng = Rng(0x5111_5e1f);
    let (mut g, mut u) = ([0f32; POS], [0f32; POS]);
    for n in [1, 3, 4, 5, 8, 13, POS] {
        for spread in [0.01f32, 1.0, 4.0, 30.0, 100.0] {
            g.iter_mut().for_each(|v| *v = rng.f32() * spread);
            u.iter_mut().for_each(|v| *v = rng.f32() * 2.0);
            let (mut want, mut got) = (g, g);
            generic::swiglu(&mut want[..n], &u[..n]);
            k.swiglu(&mut got[..n], &u[..n]);
            r.check("swiglu", &got[..n], &want[..n]);
        }
        // Gates where exp(-g) overflows or vanishes, tiny products, specials.
        for (i, v) in g.iter_mut().enumerate() {
            *v = [87.2f32, -87.2, 86.0, -90.0, 1.0e-39, f32::NAN, 0.0, -0.0][i % 8];
        }
        u.iter_mut().enumerate().for_each(|(i, v)| *v = if i % 3 == 0 { 1.0e-30 } else { 0.7 });
        let (mut want, mut got) = (g, g);
        generic::swiglu(&mut want[..n], &u[..n]);
        k.swiglu(&mut got[..n], &u[..n]);
        r.check("swiglu, extremes", &got[..n], &want[..n]);
    }
}
