//! Desktop threads for the int8 matmuls: rows split across `n` threads — the calling thread
//! and `n - 1` spinning workers of one persistent pool (`chispa_core::kernels::pool`, started
//! once per thread count by [`set_threads`]; a matmul pays no wake-up) — each running the
//! session's kernel on its own rows: a variant of the kernel table ([`threaded`]). Rows are
//! independent and each keeps its own group order, so the result is bit-identical to one
//! thread (tested in `std-runner/tests/threads.rs`). The runner's backend choice is kept here
//! too ([`select`], [`kernels`]).

use std::sync::{Mutex, RwLock};

use chispa_core::kernels::pool::Pool;
use chispa_core::kernels::Kernels;

pub use chispa_core::kernels::pool::MIN_PARALLEL_MACS;

/// The pool in use (`None`: one thread).
static POOL: RwLock<Option<&'static Pool>> = RwLock::new(None);
/// Every pool started, one per thread count, kept for the process's life (a session's table
/// holds a reference to one).
static STARTED: Mutex<Vec<&'static Pool>> = Mutex::new(Vec::new());
/// The backend's table chosen by `--backend` / `$CHISPA_BACKEND` ([`select`]).
static SELECTED: RwLock<Option<Kernels>> = RwLock::new(None);

/// Uses `n` threads (1 = the core's direct call) for every later int8 matmul.
///
/// # Errors
/// The operating system refused to start the threads.
pub fn set_threads(n: usize) -> std::io::Result<()> {
    let pool = if n > 1 {
        let mut started = STARTED.lock().unwrap_or_else(|p| p.into_inner());
        match started.iter().find(|p| p.threads() == n) {
            Some(p) => Some(*p),
            None => {
                let p: &'static Pool = Box::leak(Box::new(Pool::new(n)?));
                started.push(p);
                Some(p)
            }
        }
    } else {
        None
    };
    match POOL.write() {
        Ok(mut p) => *p = pool,
        Err(poisoned) => *poisoned.into_inner() = pool,
    }
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
    k.with_pool(pool())
}

fn pool() -> Option<&'static Pool> {
    POOL.read().ok().and_then(|p| *p)
}

/// Threads in use.
pub fn threads() -> usize {
    pool().map_or(1, Pool::threads)
}
