//! Threads of the big kernels.
//!
//! The caller chooses how many threads one kernel call may use:
//! - [`with_threads`] for the calling thread only (Rust callers, tests), else
//! - [`set_threads`] for the whole process (`quant_set_threads` in C), else
//! - 1: by default a kernel runs on the calling thread alone and starts no thread.
//!
//! 0 means all the cores of the machine (`std::thread::available_parallelism`). A call with `t > 1`
//! splits its rows (or, for the casts, its elements) into at most `t` contiguous blocks, runs the first
//! on the calling thread and each other one on a thread started with `std::thread::scope`: every thread
//! is joined before the call returns; there is no pool and nothing outlives the call. Inputs too small to
//! be worth a thread (under [`MIN_PER_THREAD`] elements a block) use fewer threads.
//!
//! Every row (every element of a cast) is computed by the same code whatever block it falls in, so the
//! results are bit-identical for any thread count. For the same reason an engine may run the kernels
//! itself on disjoint row ranges from its own threads (with 1 thread each): the result is the same as
//! one call on the whole matrix.
use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{QuantError, Result};
use crate::kernels::simd::{simd_level, SimdLevel};

/// What one kernel call runs with: the SIMD level and the thread count (0 = all cores), read once at
/// the start of the call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exec {
    pub(crate) level: SimdLevel,
    pub(crate) threads: usize,
}

impl Exec {
    /// The level and thread count in force for the calling thread.
    pub(crate) fn current() -> Self {
        Exec {
            level: simd_level(),
            threads: threads(),
        }
    }

    /// Threads for `work` elements in at most `units` blocks.
    pub(crate) fn threads_for(&self, work: usize, units: usize) -> usize {
        effective(self.threads, work, units)
    }
}

/// Fewest elements a thread is given: below this, starting a thread costs more than it saves.
pub(crate) const MIN_PER_THREAD: usize = 1 << 16;

/// Largest thread count accepted anywhere (`quant_set_threads`, `quant_options_set_threads`).
pub const QUANT_MAX_THREADS: usize = 1024;

static GLOBAL: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static SCOPED: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Checks a thread count (0 = all cores): `InvalidArgument` above [`QUANT_MAX_THREADS`].
pub(crate) fn check(n: usize) -> Result<()> {
    if n > QUANT_MAX_THREADS {
        return Err(QuantError::invalid(format!(
            "threads is {n}: at most {QUANT_MAX_THREADS} (0 = all cores)"
        )));
    }
    Ok(())
}

/// Sets the process-wide thread count of the kernels (0 = all cores; default 1). `InvalidArgument` above
/// [`QUANT_MAX_THREADS`].
pub fn set_threads(n: usize) -> Result<()> {
    check(n)?;
    GLOBAL.store(n, Ordering::Relaxed);
    Ok(())
}

/// The thread count in force for the calling thread, as set (0 = all cores).
pub fn threads() -> usize {
    SCOPED
        .with(|s| s.get())
        .unwrap_or(GLOBAL.load(Ordering::Relaxed))
}

/// Runs `f` with the thread count `n` (0 = all cores) for kernel calls made by the calling thread.
pub fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> Result<R> {
    check(n)?;
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SCOPED.with(|s| s.replace(Some(n))));
    Ok(f())
}

/// The number of threads to use for `work` elements split in at most `units` blocks.
pub(crate) fn effective(threads: usize, work: usize, units: usize) -> usize {
    let t = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    t.min(units).min(work / MIN_PER_THREAD).max(1)
}

/// `n` split into `t` contiguous near-equal ranges, each (but the last) a multiple of `align`.
pub(crate) fn split(n: usize, t: usize, align: usize) -> Vec<Range<usize>> {
    let per = n.div_ceil(t).div_ceil(align) * align;
    let mut out = Vec::with_capacity(t);
    let mut start = 0;
    while start < n {
        let end = (start + per).min(n);
        out.push(start..end);
        start = end;
    }
    out
}

/// Runs `f` on every job, on the calling thread and up to `jobs.len() - 1` scoped threads that take
/// jobs from a shared queue (see [`run_on`]).
pub(crate) fn run<T: Send>(jobs: Vec<T>, f: impl Fn(T) + Sync) {
    let workers = jobs.len();
    run_on(jobs, workers, f)
}

/// Runs `f` on every job, on the calling thread and up to `workers - 1` scoped threads that take jobs
/// from a shared queue. A thread the OS refuses (no memory for its stack, a process limit) is not an
/// error: the threads that did start, and the calling one, take its jobs (`Scope::spawn` would panic
/// instead). Every job is independent, so the result does not depend on who runs it. Every thread is
/// joined before this returns (not only finished with its jobs: `scope` alone waits for the closures,
/// and the OS thread could still be exiting), and a panicking job is re-raised on the caller's thread
/// (where the FFI boundary catches it).
pub(crate) fn run_on<T: Send>(jobs: Vec<T>, workers: usize, f: impl Fn(T) + Sync) {
    let workers = workers.min(jobs.len());
    if workers <= 1 {
        jobs.into_iter().for_each(f);
        return;
    }
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).next();
    let work = || {
        while let Some(job) = next() {
            f(job);
        }
    };
    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(workers - 1);
        for _ in 1..workers {
            match std::thread::Builder::new().spawn_scoped(s, work) {
                Ok(h) => handles.push(h),
                Err(_) => break,
            }
        }
        work();
        for h in handles {
            if let Err(payload) = h.join() {
                std::panic::resume_unwind(payload);
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn for_rows<A: Send, B: Send, C: Send>(
    t: usize,
    rows: usize,
    (mut a, sa): (&mut [A], usize),
    (mut b, sb): (&mut [B], usize),
    (mut c, sc): (&mut [C], usize),
    f: impl Fn(Range<usize>, &mut [A], &mut [B], &mut [C]) + Sync,
) {
    if t <= 1 {
        f(
            0..rows,
            &mut a[..rows * sa],
            &mut b[..rows * sb],
            &mut c[..rows * sc],
        );
        return;
    }
    let mut jobs = Vec::with_capacity(t);
    for r in split(rows, t, 1) {
        let n = r.len();
        let (a0, a1) = std::mem::take(&mut a).split_at_mut(n * sa);
        let (b0, b1) = std::mem::take(&mut b).split_at_mut(n * sb);
        let (c0, c1) = std::mem::take(&mut c).split_at_mut(n * sc);
        (a, b, c) = (a1, b1, c1);
        jobs.push((r, a0, b0, c0));
    }
    run(jobs, |(r, a, b, c)| f(r, a, b, c));
}

/// Runs `f(range, out)` over `t` contiguous blocks of `0..n` (each but the last a multiple of 64
/// elements), `out` being the block's part of `dst` (`dst.len() >= n`).
pub(crate) fn for_elements<D: Send>(
    t: usize,
    n: usize,
    dst: &mut [D],
    f: impl Fn(Range<usize>, &mut [D]) + Sync,
) {
    if t <= 1 {
        f(0..n, &mut dst[..n]);
        return;
    }
    let mut rest = &mut dst[..n];
    let mut jobs = Vec::with_capacity(t);
    for r in split(n, t, 64) {
        let (d0, d1) = std::mem::take(&mut rest).split_at_mut(r.len());
        rest = d1;
        jobs.push((r, d0));
    }
    run(jobs, |(r, d)| f(r, d));
}

/// `f` over `t` contiguous blocks of `src`, results combined in block order by `combine`.
pub(crate) fn reduce<T: Sync, R: Send>(
    t: usize,
    src: &[T],
    f: impl Fn(&[T]) -> R + Sync,
    combine: impl Fn(R, R) -> R,
) -> R {
    if t <= 1 {
        return f(src);
    }
    let ranges = split(src.len(), t, 64);
    let mut results: Vec<Option<R>> = (0..ranges.len()).map(|_| None).collect();
    let jobs: Vec<_> = ranges.into_iter().zip(results.iter_mut()).collect();
    run(jobs, |(r, out)| *out = Some(f(&src[r])));
    results
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .reduce(combine)
        .expect("at least one block")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_everything_once() {
        for n in [1usize, 63, 64, 65, 1000, 4097] {
            for t in 1..6 {
                for align in [1, 64] {
                    let r = split(n, t, align);
                    assert!(r.len() <= t);
                    assert_eq!(r[0].start, 0);
                    assert_eq!(r.last().unwrap().end, n);
                    for w in r.windows(2) {
                        assert_eq!(w[0].end, w[1].start);
                        assert_eq!(w[0].len() % align, 0);
                    }
                }
            }
        }
    }

    #[test]
    fn thread_counts() {
        assert_eq!(effective(4, 10, 100), 1);
        assert_eq!(effective(4, 100 * MIN_PER_THREAD, 2), 2);
        assert!(effective(0, 100 * MIN_PER_THREAD, 100) >= 1);
        assert!(set_threads(QUANT_MAX_THREADS + 1).is_err());
        with_threads(3, || assert_eq!(threads(), 3)).unwrap();
        let v: Vec<u32> = (0..1_000_000).collect();
        let s = reduce(
            3,
            &v,
            |c| c.iter().map(|&x| x as u64).sum::<u64>(),
            |a, b| a + b,
        );
        assert_eq!(s, 999_999 * 1_000_000 / 2);
    }
}
