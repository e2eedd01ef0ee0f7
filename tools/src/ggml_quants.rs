//! Dequantization of ggml's block types, exactly as ggml's reference `dequantize_row_*`:
//! Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (blocks of 32) and the k-quants Q4_K, Q5_K, Q6_K (super-blocks
//! of 256).

use anyhow::{bail, ensure, Result};
use half::f16;

/// ggml type ids.
pub const Q4_0: u32 = 2;
/// ggml type id.
pub const Q4_1: u32 = 3;
/// ggml type id.
pub const Q5_0: u32 = 6;
/// ggml type id.
pub const Q5_1: u32 = 7;
/// ggml type id.
pub const Q8_0: u32 = 8;
/// ggml type id.
pub const Q4_K: u32 = 12;
/// ggml type id.
pub const Q5_K: u32 = 13;
/// ggml type id.
pub const Q6_K: u32 = 14;

/// `(elements, bytes)` of one block of type `ty`, and its name; `None` for a type that is not
/// block-quantized here.
pub fn block(ty: u32) -> Option<(usize, usize, &'static str)> {
    Some(match ty {
        Q4_0 => (32, 18, "Q4_0"),
        Q4_1 => (32, 20, "Q4_1"),
        Q5_0 => (32, 22, "Q5_0"),
        Q5_1 => (32, 24, "Q5_1"),
        Q8_0 => (32, 34, "Q8_0"),
        Q4_K => (256, 144, "Q4_K"),
        Q5_K => (256, 176, "Q5_K"),
        Q6_K => (256, 210, "Q6_K"),
        _ => return None,
    })
}

fn half(b: &[u8], at: usize) -> f32 {
    match b.get(at..at + 2) {
        Some([x, y]) => f16::from_le_bytes([*x, *y]).to_f32(),
        _ => 0.0,
    }
}

/// The byte at `i` (blocks are length-checked before decoding, so always present).
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// Scale and minimum `j` (0..8) of a Q4_K / Q5_K super-block's 12 packed bytes.
fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    let (sc, m) = if j < 4 {
        (at(q, j) & 63, at(q, j + 4) & 63)
    } else {
        (
            (at(q, j + 4) & 0xF) | ((at(q, j - 4) >> 6) << 4),
            (at(q, j + 4) >> 4) | ((at(q, j) >> 6) << 4),
        )
    };
    (f32::from(sc), f32::from(m))
}

fn block_into(ty: u32, b: &[u8], out: &mut Vec<f32>) {
    match ty {
        Q4_0 | Q4_1 => {
            let d = half(b, 0);
            let (m, qs) = if ty == Q4_1 { (half(b, 2), 4) } else { (0.0, 2) };
            let off = if ty == Q4_0 { 8.0 } else { 0.0 };
            let lo = (0..16).map(|j| (f32::from(at(b, qs + j) & 0xF) - off) * d + m);
            let hi = (0..16).map(|j| (f32::from(at(b, qs + j) >> 4) - off) * d + m);
            out.extend(lo.collect::<Vec<_>>());
            out.extend(hi.collect::<Vec<_>>());
        }
        Q5_0 | Q5_1 => {
            let d = half(b, 0);
            let (m, qh_at) = if ty == Q5_1 { (half(b, 2), 4) } else { (0.0, 2) };
            let qh = u32::from_le_bytes([
                at(b, qh_at),
                at(b, qh_at + 1),
                at(b, qh_at + 2),
                at(b, qh_at + 3),
            ]);
            let qs = qh_at + 4;
            let off = if ty == Q5_0 { 16.0 } else { 0.0 };
            let mut hi = [0f32; 16];
            for j in 0..16 {
                let h0 = ((qh >> j) << 4) & 0x10;
                let h1 = (qh >> (j + 12)) & 0x10;
                let q = u32::from(at(b, qs + j));
                out.push((((q & 0xF) | h0) as f32 - off) * d + m);
                if let Some(x) = hi.get_mut(j) {
                    *x = (((q >> 4) | h1) as f32 - off) * d + m;
                }
            }
            out.extend(hi);
        }
        Q8_0 => {
            let d = half(b, 0);
            out.extend((0..32).map(|j| f32::from(at(b, 2 + j) as i8) * d));
        }
        Q4_K | Q5_K => {
            let (d, dmin) = (half(b, 0), half(b, 2));
            let scales = b.get(4..16).unwrap_or(&[]);
            // Q5_K: the high bits qh[32] at 16, the low nibbles at 48; Q4_K: nibbles at 16.
            let mut ql = if ty == Q5_K { 48usize } else { 16 };
            let (mut u1, mut u2) = (1u8, 2u8);
            for is in (0..8).step_by(2) {
                let (sc1, m1) = scale_min_k4(is, scales);
                let (sc2, m2) = scale_min_k4(is + 1, scales);
                let (d1, m1, d2, m2) = (d * sc1, dmin * m1, d * sc2, dmin * m2);
                let high =
                    |l: usize, u: u8| if ty == Q5_K && at(b, 16 + l) & u != 0 { 16.0 } else { 0.0 };
                for l in 0..32 {
                    out.push(d1 * (f32::from(at(b, ql + l) & 0xF) + high(l, u1)) - m1);
                }
                for l in 0..32 {
                    out.push(d2 * (f32::from(at(b, ql + l) >> 4) + high(l, u2)) - m2);
                }
                ql += 32;
                u1 <<= 2;
                u2 <<= 2;
            }
        }
        Q6_K => {
            let d = half(b, 208);
            let mut y = [0f32; 256];
            for n in 0..2 {
                let (ql, qh, sc, y0) = (n * 64, 128 + n * 32, 192 + n * 8, n * 128);
                for l in 0..32 {
                    let is = l / 16;
                    let (a, c, h) = (at(b, ql + l), at(b, ql + l + 32), at(b, qh + l));
                    let q1 = i32::from((a & 0xF) | ((h & 3) << 4)) - 32;
                    let q2 = i32::from((c & 0xF) | (((h >> 2) & 3) << 4)) - 32;
                    let q3 = i32::from((a >> 4) | (((h >> 4) & 3) << 4)) - 32;
                    let q4 = i32::from((c >> 4) | (((h >> 6) & 3) << 4)) - 32;
                    let s = |k: usize| f32::from(at(b, sc + is + k) as i8);
                    for (k, q) in [(0, q1), (2, q2), (4, q3), (6, q4)] {
                        if let Some(v) = y.get_mut(y0 + l + 16 * k) {
                            *v = d * s(k) * q as f32;
                        }
                    }
                }
            }
            out.extend(y);
        }
        _ => {}
    }
}

/// Dequantizes `n` elements of type `ty` from `bytes` (exactly `n / block elements` blocks).
///
/// # Errors
/// An unknown type, `n` not a whole number of blocks, or too few bytes.
pub fn dequantize(ty: u32, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    let Some((elems, size, name)) = block(ty) else { bail!("ggml type {ty} is not a block type") };
    ensure!(n % elems == 0, "{name}: {n} elements are not whole blocks of {elems}");
    let blocks = n / elems;
    ensure!(
        bytes.len() >= blocks * size,
        "{name}: {} bytes, {blocks} blocks need {}",
        bytes.len(),
        blocks * size
    );
    let mut out = Vec::with_capacity(n);
    for b in bytes.chunks_exact(size).take(blocks) {
        block_into(ty, b, &mut out);
    }
    Ok(out)
}
