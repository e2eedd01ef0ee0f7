//! Running a parsed model on the desktop: arenas, teacher-forced evaluation, text output.

use anyhow::{Context, Result};
use chispa_core::{Model, Piece, Session, SessionOptions};
use chispa_tools::aligned::AlignedBytes;

/// An arena sized and aligned for `model` with `options`.
///
/// # Errors
/// The plan's errors (e.g. a context above the model's maximum).
pub fn arena_for(model: &Model<'_>, options: &SessionOptions) -> Result<AlignedBytes> {
    let plan = model.plan(options).context("cannot plan the session")?;
    Ok(AlignedBytes::zeroed(plan.arena_bytes))
}

/// Runs `ids` through the model one position at a time and returns the logits after each,
/// `[ids.len(), vocab]` (row t = logits after feeding `ids[0..=t]`).
///
/// # Errors
/// Ids outside the vocabulary, or more ids than the model's context.
pub fn teacher_forced(model: &Model<'_>, ids: &[u32]) -> Result<Vec<Vec<f32>>> {
    let options = SessionOptions { context: ids.len().max(1), ..Default::default() };
    let mut arena = arena_for(model, &options)?;
    let mut session = Session::new(model, &options, arena.as_mut_slice())?;
    let mut rows = Vec::with_capacity(ids.len());
    for (pos, id) in ids.iter().enumerate() {
        rows.push(session.forward(*id, pos)?.to_vec());
    }
    Ok(rows)
}

/// Mean negative log-likelihood of each next id under `logits` rows (natural log).
pub fn mean_nll(logits: &[Vec<f32>], ids: &[u32]) -> f64 {
    let mut total = 0f64;
    let mut n = 0usize;
    for (row, next) in logits.iter().zip(ids.iter().skip(1)) {
        total -= log_softmax(row).get(*next as usize).copied().unwrap_or(f64::NEG_INFINITY);
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        total / n as f64
    }
}

/// log softmax in f64.
pub fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v as f64));
    let lse = max + row.iter().map(|v| (*v as f64 - max).exp()).sum::<f64>().ln();
    row.iter().map(|v| *v as f64 - lse).collect()
}

/// The bytes to show for a decoded piece: like llama2.c's `safe_printf`, a lone control byte
/// (other than whitespace) is dropped; bytes ≥ 0x80 pass so multi-byte characters survive.
pub fn printable(piece: Piece<'_>) -> &[u8] {
    match piece {
        Piece::Byte(b) if b < 0x80 && !(b.is_ascii_graphic() || b.is_ascii_whitespace()) => &[],
        _ => piece.bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_are_dropped_whitespace_kept() {
        assert_eq!(printable(Piece::Byte(0x07)), b"");
        assert_eq!(printable(Piece::Byte(b'\n')), b"\n");
        assert_eq!(printable(Piece::Byte(0xF0)), &[0xF0]);
        assert_eq!(printable(Piece::Text(b"hi")), b"hi");
    }

    #[test]
    fn nll_of_a_certain_prediction_is_zero() {
        let rows = vec![vec![0.0, 100.0, 0.0]];
        assert!(mean_nll(&rows, &[0, 1]) < 1e-30);
    }
}
