//! Running a parsed model on the desktop: arenas, teacher-forced evaluation, text output.

use anyhow::{bail, Context, Result};
use chispa_core::{Model, Piece, Session, SessionOptions};
use chispa_tools::aligned::AlignedBytes;

/// The largest arena the desktop allocates when `$CHISPA_MEMORY_LIMIT` is not set: 4 GiB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 4 << 30;

/// The environment variable that sets the arena limit in bytes (a number, optionally with
/// a `K`, `M` or `G` suffix for KiB, MiB, GiB).
pub const MEMORY_LIMIT_VAR: &str = "CHISPA_MEMORY_LIMIT";

/// Parses a byte count such as `4096`, `512M` or `8G`.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1u64 << shift)
}

/// The arena limit: `$CHISPA_MEMORY_LIMIT`, else [`DEFAULT_MEMORY_LIMIT`].
///
/// # Errors
/// The variable is set but is not a byte count.
pub fn memory_limit() -> Result<u64> {
    match std::env::var(MEMORY_LIMIT_VAR) {
        Ok(v) => parse_bytes(&v).ok_or_else(|| {
            anyhow::anyhow!("{MEMORY_LIMIT_VAR}={v:?} is not a byte count (e.g. 512M, 8G)")
        }),
        Err(_) => Ok(DEFAULT_MEMORY_LIMIT),
    }
}

/// A byte count for messages, in the largest binary unit that keeps it above 1.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The longest context whose arena fits `limit` bytes, if any does.
fn longest_context_within(model: &Model<'_>, options: &SessionOptions, limit: u64) -> usize {
    let fits = |ctx: usize| {
        model
            .plan(&SessionOptions { context: ctx, ..*options })
            .is_ok_and(|p| p.arena_bytes as u64 <= limit)
    };
    let (mut lo, mut hi) = (0usize, model.config().max_seq_len);
    // Invariant: `lo` fits (0 meaning none does), `hi + 1` does not or is past the maximum.
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// An arena sized and aligned for `model` with `options`, allocated only when it is within
/// the [memory limit](memory_limit) and the allocator provides it.
///
/// # Errors
/// The plan's errors (e.g. a context above the model's maximum), an arena above the limit
/// (the message gives the longest context that fits), or a failed allocation.
pub fn arena_for(model: &Model<'_>, options: &SessionOptions) -> Result<AlignedBytes> {
    let plan = model.plan(options).context("cannot plan the session")?;
    let limit = memory_limit()?;
    let need = plan.arena_bytes as u64;
    if need > limit {
        let fits = longest_context_within(model, options, limit);
        let hint = if fits > 0 {
            format!("give --context {fits} or less, or raise {MEMORY_LIMIT_VAR}")
        } else {
            format!("raise {MEMORY_LIMIT_VAR}")
        };
        bail!(
            "a session with context {} and a {} KV cache needs {need} bytes ({}), above the memory limit of {} ({MEMORY_LIMIT_VAR}, default 4G); {hint}",
            plan.context,
            plan.kv.name(),
            human_bytes(need),
            human_bytes(limit),
        );
    }
    AlignedBytes::try_zeroed(plan.arena_bytes).with_context(|| {
        format!("cannot allocate the session's {need} bytes ({})", human_bytes(need))
    })
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
    session.set_kernels(crate::threads::kernels());
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
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("512M"), Some(512 << 20));
        assert_eq!(parse_bytes("8g"), Some(8 << 30));
        assert_eq!(parse_bytes("-1"), None);
        assert_eq!(parse_bytes("99999999999999G"), None);
        assert_eq!(parse_bytes(""), None);
    }

    #[test]
    fn nll_of_a_certain_prediction_is_zero() {
        let rows = vec![vec![0.0, 100.0, 0.0]];
        assert!(mean_nll(&rows, &[0, 1]) < 1e-30);
    }
}
