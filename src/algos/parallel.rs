//! Scoped worker threads for the algorithms: no global pool, every thread ends with the call.
//!
//! Work is cut into items whose boundaries never depend on the thread count, so a result is bit
//! identical whatever `threads` is: a thread count only decides who computes an item, not how.

/// `threads`, or the number of available cores when it is 0 (at least 1).
pub(crate) fn resolve_threads(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// Runs `f` on every job, on up to `threads` scoped threads (0 = all cores), the calling thread among
/// them, all joined before it returns ([`crate::kernels::par::run_on`]). Jobs are taken in order from a
/// shared queue. Each job gets its own output through the job value itself (disjoint `&mut` slices),
/// so no synchronisation is needed beyond the queue.
pub(crate) fn for_each_job<J: Send, F: Fn(J) + Sync>(jobs: Vec<J>, threads: usize, f: F) {
    crate::kernels::par::run_on(jobs, resolve_threads(threads), f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_job_runs_once_whatever_the_thread_count() {
        for threads in [0, 1, 2, 7] {
            let mut out = vec![0usize; 100];
            let jobs: Vec<_> = out.chunks_mut(7).enumerate().collect();
            let count = AtomicUsize::new(0);
            for_each_job(jobs, threads, |(i, chunk)| {
                count.fetch_add(1, Ordering::Relaxed);
                chunk.iter_mut().for_each(|v| *v += i + 1);
            });
            assert_eq!(count.load(Ordering::Relaxed), 15);
            assert!(out.iter().enumerate().all(|(k, &v)| v == k / 7 + 1));
        }
    }
}
