//! Desktop threads for the int8 matmuls: rows split across `n` threads, each running the
//! active kernel on its own rows. Rows are independent and each keeps its own group order, so
//! the result is bit-identical to one thread (tested in `tests/tests/threads.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};

use chispa_core::kernels::{self, Backend};
use half::f16;

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Below this many multiply-accumulates a matmul stays on the calling thread. Threads are
/// started per matmul (scoped, no `unsafe`), which cost 100–200 µs each on the loaded 2-core
/// CI machine (criterion `kernels` bench): only matrices like the 32,000-row classifiers are
/// worth it. A persistent pool is the next step.
pub const MIN_PARALLEL_MACS: usize = 4 * 1024 * 1024;

/// Uses `n` threads (1 = the core's direct call) for every later int8 matmul.
pub fn set_threads(n: usize) {
    let n = n.max(1);
    THREADS.store(n, Ordering::Relaxed);
    kernels::set_matvec_i8_hook(if n > 1 { Some(parallel_matvec_i8) } else { None });
}

/// Threads in use.
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

fn parallel_matvec_i8(
    out: &mut [f32],
    w: &[i8],
    ws: &[f16],
    xq: &[i8],
    xs: &[f32],
    cols: usize,
    group: usize,
) {
    let b: Backend = kernels::backend();
    let n = threads();
    let rows = out.len();
    let groups = cols.div_ceil(group.max(1));
    let fits = group > 0 && w.len() >= rows * cols && ws.len() >= rows * groups;
    if n <= 1 || !fits || rows * cols < MIN_PARALLEL_MACS || rows < 2 * n {
        return kernels::matvec_i8_with(b, out, w, ws, xq, xs, cols, group);
    }
    // Whole blocks of 4 rows per thread (the x86 kernels' blocking), the last takes the rest.
    let per = rows.div_ceil(n).div_ceil(4) * 4;
    std::thread::scope(|s| {
        let mut parts = out.chunks_mut(per).enumerate();
        let first = parts.next();
        for (i, o) in parts {
            let r0 = i * per;
            let (w, ws) = (&w[r0 * cols..], &ws[r0 * groups..]);
            s.spawn(move || kernels::matvec_i8_with(b, o, w, ws, xq, xs, cols, group));
        }
        if let Some((_, o)) = first {
            kernels::matvec_i8_with(b, o, w, ws, xq, xs, cols, group);
        }
    });
}
