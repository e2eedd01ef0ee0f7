//! Desktop threads for the int8 matmuls: rows split across `n` threads — the calling thread
//! and `n - 1` of one persistent pool (rayon; started once by [`set_threads`], so a matmul
//! pays a wake-up, not a spawn) — each running the session's kernel on its own rows: a variant of
//! the kernel table ([`threaded`]). Rows are independent and each keeps its own group order, so
//! the result is bit-identical to one thread (tested in `std-runner/tests/threads.rs`). The
//! runner's backend choice is kept here too ([`select`], [`kernels`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use chispa_core::kernels::{I4Matrix, I8Matrix, Kernels};

static THREADS: AtomicUsize = AtomicUsize::new(1);
static POOL: RwLock<Option<rayon::ThreadPool>> = RwLock::new(None);
/// The backend's table chosen by `--backend` / `$CHISPA_BACKEND` ([`select`]).
static SELECTED: RwLock<Option<Kernels>> = RwLock::new(None);

/// Below this many multiply-accumulates a matmul stays on the calling thread. Waking a pool
/// thread costs tens of microseconds when it has gone to sleep between matmuls, which is
/// what a core needs for about a million MACs with the AVX-512 kernel; measured (`chispa
/// bench --threads 2`, synth shapes, 2-core EPYC): with 64 K every model ran slower on two
/// threads than on one; with 1 M stories15M / 42M gain 1.1–1.2× (stories110M, whose
/// matrices stream from DRAM, gains nothing: two cores read only 1.16× what one reads).
pub const MIN_PARALLEL_MACS: usize = 1 << 20;

/// Uses `n` threads (1 = the core's direct call) for every later int8 matmul.
///
/// # Errors
/// The operating system refused to start the threads.
pub fn set_threads(n: usize) -> Result<(), rayon::ThreadPoolBuildError> {
    let n = n.max(1);
    // The calling thread takes one share of every matmul itself: the pool holds the others.
    let pool = if n > 1 {
        Some(rayon::ThreadPoolBuilder::new().num_threads(n - 1).build()?)
    } else {
        None
    };
    match POOL.write() {
        Ok(mut p) => *p = pool,
        Err(poisoned) => *poisoned.into_inner() = pool,
    }
    THREADS.store(n, Ordering::Relaxed);
    Ok(())
}

/// Makes `k` the table [`kernels`] hands to every later session of this process.
pub fn select(k: Kernels) {
    match SELECTED.write() {
        Ok(mut s) => *s = Some(k),
        Err(poisoned) => *poisoned.into_inner() = Some(k),
    }
}

/// The table a session of this process runs: the [`select`]ed one (else
/// [`Kernels::default`]), its int8 matmul split across the threads of [`set_threads`] when
/// there are several.
pub fn kernels() -> Kernels {
    let k = SELECTED.read().ok().and_then(|s| *s).unwrap_or_default();
    threaded(k)
}

/// `k` with its int8 matmul split across the threads of [`set_threads`] (as it is for one).
pub fn threaded(k: Kernels) -> Kernels {
    let many = threads() > 1;
    k.with_host_matvec(if many { Some(parallel_matvec_i8) } else { None })
        .with_host_matvec_i4(if many { Some(parallel_matvec_i4) } else { None })
}

/// Threads in use.
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// The table's int8 matmul on row ranges, one per thread (`k` is the table without this
/// function).
fn parallel_matvec_i8(k: &Kernels, out: &mut [f32], w: &I8Matrix<'_>, xq: &[i16], x_scale: f32) {
    let fits = w.holds(out.len());
    split_rows(out, w.cols, fits, |o, from| k.matvec_i8(o, &w.from_row(from), xq, x_scale));
}

/// [`parallel_matvec_i8`] for the int4 matmul.
fn parallel_matvec_i4(k: &Kernels, out: &mut [f32], w: &I4Matrix<'_>, xq: &[i16], x_scale: f32) {
    let fits = w.holds(out.len());
    split_rows(out, w.cols, fits, |o, from| k.matvec_i4(o, &w.from_row(from), xq, x_scale));
}

/// Runs `rows(out_part, first_row)` over row ranges of `out`, one per thread (all on this
/// thread when the matrix is small, or does not hold its rows: `fits` false).
fn split_rows(
    out: &mut [f32],
    cols: usize,
    fits: bool,
    rows_fn: impl Fn(&mut [f32], usize) + Sync,
) {
    let n = threads();
    let rows = out.len();
    if n <= 1 || !fits || rows * cols < MIN_PARALLEL_MACS || rows < 2 * n {
        return rows_fn(out, 0);
    }
    let guard = POOL.read();
    let Some(pool) = guard.as_ref().ok().and_then(|p| p.as_ref()) else {
        return rows_fn(out, 0);
    };
    // Whole blocks of 8 rows per thread (the x86 kernels' blocking), the last takes the rest.
    let per = rows.div_ceil(n).div_ceil(8) * 8;
    let run = |i: usize, o: &mut [f32]| rows_fn(o, i * per);
    let mut shares = out.chunks_mut(per).enumerate();
    let first = shares.next();
    pool.in_place_scope(|s| {
        for (i, o) in shares {
            s.spawn(move |_| run(i, o));
        }
        // This thread's share, while the pool runs the rest.
        if let Some((i, o)) = first {
            run(i, o);
        }
    });
}
