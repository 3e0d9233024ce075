//! Scoped worker threads for the algorithms: no global pool, every thread ends with the call.
//!
//! Work is cut into items whose boundaries never depend on the thread count, so a result is bit
//! identical whatever `threads` is: a thread count only decides who computes an item, not how.
use std::sync::Mutex;

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

/// Runs `f` on every job, on up to `threads` scoped threads (0 = all cores). Jobs are taken in order
/// from a shared queue. Each job gets its own output through the job value itself (disjoint `&mut`
/// slices), so no synchronisation is needed beyond the queue.
pub(crate) fn for_each_job<J: Send, F: Fn(J) + Sync>(jobs: Vec<J>, threads: usize, f: F) {
    let workers = resolve_threads(threads).min(jobs.len());
    if workers <= 1 {
        jobs.into_iter().for_each(f);
        return;
    }
    let queue = Mutex::new(jobs.into_iter());
    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).next();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    while let Some(job) = next() {
                        f(job);
                    }
                })
            })
            .collect();
        for h in handles {
            // A panicking job is re-raised on the caller's thread (and caught by the FFI boundary).
            if let Err(payload) = h.join() {
                std::panic::resume_unwind(payload);
            }
        }
    });
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
