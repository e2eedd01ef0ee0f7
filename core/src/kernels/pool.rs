//! A spinning worker pool for the desktop's matmuls (feature `std`): the table variant that
//! splits a matmul's rows across threads ([`Kernels::with_pool`]).
//!
//! A matmul of a small model takes tens of microseconds; waking a sleeping thread costs about
//! as much. So the workers do not sleep between matmuls: each spins on an epoch counter and
//! starts the moment the caller publishes a job, and parks only after [`SPIN`] without work
//! (between prompts, say). The calling thread takes a share itself. Rows are independent and
//! each keeps its own group order, so any split gives the one-thread bits.
//!
//! A job is a borrowed closure handed to the workers with its lifetime erased; [`Pool::run`]
//! does not return, and does not unwind, before every worker is done with it.
//!
//! [`Kernels::with_pool`]: super::Kernels::with_pool

extern crate std;

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use std::vec::Vec;

/// How long an idle worker spins before it parks.
pub const SPIN: Duration = Duration::from_millis(5);

/// Below this many multiply-accumulates a matmul stays on the calling thread: publishing a job
/// to spinning workers costs about a microsecond (cache lines crossing cores), what a core
/// needs for some tens of thousands of MACs.
pub const MIN_PARALLEL_MACS: usize = 1 << 16;

/// A job as the workers see it: a closure called with the worker's number, its lifetime erased.
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn(usize) + Sync + 'static));

// SAFETY: the closure behind the pointer is `Sync` (so callable from any thread), and
// `Pool::run` keeps it alive until every worker has returned from it.
unsafe impl Send for Job {}

/// `Shared::state`: the workers that joined the current job (low bits), whether it still
/// takes workers, and the job's epoch (high bits).
const JOINED: u64 = (1 << 16) - 1;
const OPEN: u64 = 1 << 16;
const EPOCH: u32 = 17;

/// What the caller and the workers share.
struct Shared {
    /// The current job's epoch, whether it is open, and the workers that joined it. A worker
    /// joins (and may read `job`) only while the job is open; the caller closes it when its
    /// own share is done and then waits only for the workers that joined: a worker the
    /// operating system has not run yet delays nothing.
    state: AtomicU64,
    job: Mutex<Option<Job>>,
    /// Workers done with the current job.
    finished: AtomicUsize,
    /// A worker's call panicked during the current job.
    panicked: AtomicBool,
    stop: AtomicBool,
    /// Workers parked (under the lock, so that a wake-up is never lost).
    sleepers: Mutex<usize>,
    wake: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `threads - 1` spinning worker threads; with the caller, up to `threads` run each job.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// One job at a time: a caller that finds the pool busy runs its job alone.
    busy: Mutex<()>,
}

impl core::fmt::Debug for Pool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool").field("threads", &self.threads()).finish()
    }
}

impl Pool {
    /// A pool of `threads` (1 to 1024) threads: the caller and `threads - 1` workers.
    ///
    /// # Errors
    /// The operating system refused to start a thread.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            job: Mutex::new(None),
            finished: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleepers: Mutex::new(0),
            wake: Condvar::new(),
        });
        let mut pool = Self { shared, workers: Vec::new(), busy: Mutex::new(()) };
        for i in 1..threads.clamp(1, 1024) {
            let s = Arc::clone(&pool.shared);
            let handle = thread::Builder::new()
                .name(std::format!("chispa-{i}"))
                .spawn(move || work(&s, i))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Threads that may run a job, the caller's included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `f(0)` on this thread and, at the same time, `f(i)` on each worker `i` that is
    /// ready before this thread's call returns (so each `i` at most once; a worker that comes
    /// later is not called). Returns when every call has; a worker's panic is raised here.
    /// All on this thread when another caller holds the pool.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        let Ok(_busy) = self.busy.try_lock() else {
            return f(0);
        };
        if self.workers.is_empty() {
            return f(0);
        }
        let s = &*self.shared;
        // SAFETY: only the lifetime changes (same fat pointer). `Done` below closes the job
        // and waits, on return and on unwind alike, until every worker that joined it has
        // finished its call; a worker that did not join never reads it. So no worker calls
        // the closure after this function returns.
        let job = unsafe {
            core::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const (dyn Fn(usize) + Sync)>(
                f,
            )
        };
        *lock(&s.job) = Some(Job(job));
        s.panicked.store(false, Ordering::Relaxed);
        s.finished.store(0, Ordering::Relaxed);
        let epoch = (s.state.load(Ordering::Relaxed) >> EPOCH).wrapping_add(1);
        s.state.store(epoch << EPOCH | OPEN, Ordering::Release);
        if *lock(&s.sleepers) > 0 {
            s.wake.notify_all();
        }
        let done = Done(s);
        f(0);
        drop(done);
        if s.panicked.load(Ordering::Acquire) {
            panic!("a chispa worker thread panicked");
        }
    }
}

/// Closes the current job and waits for the workers that joined it (also when the caller's
/// own share unwinds), then clears it.
struct Done<'a>(&'a Shared);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        let joined = (self.0.state.fetch_and(!OPEN, Ordering::AcqRel) & JOINED) as usize;
        let mut spins = 0u32;
        while self.0.finished.load(Ordering::Acquire) != joined {
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 {
                thread::yield_now();
            } else {
                core::hint::spin_loop();
            }
        }
        *lock(&self.0.job) = None;
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            let _parked = lock(&self.shared.sleepers);
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            // A worker that panicked outside a job has nothing left to report.
            let _ = w.join();
        }
    }
}

/// A worker's life: wait for each new job, join it if it is still open, run its share,
/// report it done.
fn work(s: &Shared, me: usize) {
    let mut seen = 0u64;
    while let Some(epoch) = next_job(s, seen) {
        seen = epoch;
        if !join(s, epoch) {
            continue;
        }
        let job = *lock(&s.job);
        if let Some(Job(f)) = job {
            // SAFETY: this worker joined the open job of `epoch`, whose closure `Pool::run`
            // published before opening it and keeps alive until every joined worker has
            // counted itself in `finished` (below).
            let call = || unsafe { (*f)(me) };
            if catch_unwind(AssertUnwindSafe(call)).is_err() {
                s.panicked.store(true, Ordering::Release);
            }
        }
        s.finished.fetch_add(1, Ordering::AcqRel);
    }
}

/// Joins the job of `epoch` if it is still open.
fn join(s: &Shared, epoch: u64) -> bool {
    let mut now = s.state.load(Ordering::Acquire);
    while now >> EPOCH == epoch && now & OPEN != 0 && now & JOINED < JOINED {
        match s.state.compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(v) => now = v,
        }
    }
    false
}

/// The epoch of the next job after `seen` (spinning, then parked), or `None` when the pool
/// stops.
fn next_job(s: &Shared, seen: u64) -> Option<u64> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let e = s.state.load(Ordering::Acquire) >> EPOCH;
        if e != seen {
            return Some(e);
        }
        if s.stop.load(Ordering::Acquire) {
            return None;
        }
        spins = spins.wrapping_add(1);
        if spins % 256 != 0 || start.elapsed() < SPIN {
            core::hint::spin_loop();
            continue;
        }
        let mut parked = lock(&s.sleepers);
        *parked += 1;
        while s.state.load(Ordering::Acquire) >> EPOCH == seen && !s.stop.load(Ordering::Acquire) {
            parked = s.wake.wait(parked).unwrap_or_else(PoisonError::into_inner);
        }
        *parked -= 1;
    }
}

/// Splits `out` into one block of rows per thread (whole multiples of `align` rows) and runs
/// `f(first_row, block)` for each on `pool`: every thread that joins takes blocks until none
/// is left, so a late worker delays nothing (the caller does its blocks).
pub(super) fn split_rows(
    pool: &Pool,
    out: &mut [f32],
    align: usize,
    f: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    let per = out.len().div_ceil(pool.threads()).div_ceil(align.max(1)) * align.max(1);
    let blocks = Mutex::new(out.chunks_mut(per.max(1)).enumerate());
    pool.run(&|_| loop {
        let next = lock(&blocks).next();
        let Some((i, block)) = next else { break };
        f(i * per, block);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shares one job ran (the caller's share gives the workers up to a millisecond to
    /// join).
    fn shares(pool: &Pool) -> Vec<usize> {
        let seen: Vec<AtomicUsize> = (0..pool.threads()).map(|_| AtomicUsize::new(0)).collect();
        pool.run(&|i| {
            seen[i].fetch_add(1, Ordering::Relaxed);
            let start = Instant::now();
            while i == 0
                && seen[1..].iter().any(|n| n.load(Ordering::Relaxed) == 0)
                && start.elapsed() < Duration::from_millis(1)
            {
                core::hint::spin_loop();
            }
        });
        seen.iter().map(|n| n.load(Ordering::Relaxed)).collect()
    }

    #[test]
    fn each_share_runs_at_most_once_and_the_caller_always() {
        let pool = Pool::new(3).expect("threads");
        let mut workers_ran = 0;
        for _ in 0..300 {
            let s = shares(&pool);
            assert_eq!(s[0], 1);
            assert!(s.iter().all(|n| *n <= 1), "{s:?}");
            workers_ran += s[1] + s[2];
        }
        assert!(workers_ran > 0, "no worker ever joined");
    }

    #[test]
    fn split_rows_covers_every_row_once() {
        let pool = Pool::new(3).expect("threads");
        for rows in [0usize, 1, 7, 8, 9, 23, 24, 25, 1000, 100_000] {
            let mut out = std::vec![0f32; rows];
            split_rows(&pool, &mut out, 8, &|first, block| {
                for (j, o) in block.iter_mut().enumerate() {
                    *o += (first + j) as f32 + 1.0;
                }
            });
            let want: Vec<f32> = (0..rows).map(|r| r as f32 + 1.0).collect();
            assert_eq!(out, want, "{rows} rows");
        }
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_and_the_pool_goes_on() {
        let pool = Pool::new(2).expect("threads");
        // The caller waits for the worker to join, then the worker's share panics.
        let joined = AtomicBool::new(false);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|i| {
                if i == 1 {
                    joined.store(true, Ordering::Release);
                    panic!("worker share");
                }
                while !joined.load(Ordering::Acquire) {
                    core::hint::spin_loop();
                }
            })
        }));
        assert!(r.is_err());
        assert_eq!(shares(&pool)[0], 1);
    }

    #[test]
    fn workers_wake_after_parking() {
        let pool = Pool::new(2).expect("threads");
        thread::sleep(SPIN * 3);
        let joined = AtomicBool::new(false);
        pool.run(&|i| {
            if i == 1 {
                joined.store(true, Ordering::Release);
            }
            while !joined.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
        });
    }
}
