//! The store's own thread for disk work that must not run on a connection's task nor
//! under a lock connections take: reading a segment to compact it, creating the next
//! segment before it is needed, deleting a compacted segment once its copies are synced.
//! Jobs run one at a time, in order; each takes a queue's lock only for the short steps
//! that touch the queue's log in memory.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

/// Work for the store's thread.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Run blocking disk work that a connection's task must wait for (a declare's directory
/// and definitions record): on a multi-thread runtime the worker's other tasks move to
/// another thread meanwhile (`block_in_place`), so other connections are not held up.
/// Elsewhere (no runtime, a current-thread one) it simply runs.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[derive(Default)]
struct Jobs {
    queue: VecDeque<Job>,
    stop: bool,
}

/// The thread and its queue of jobs.
pub(crate) struct Background {
    jobs: Mutex<Jobs>,
    wake: Condvar,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background").finish_non_exhaustive()
    }
}

impl Background {
    /// Start the thread.
    pub(crate) fn start() -> std::io::Result<Arc<Background>> {
        let bg = Arc::new(Background {
            jobs: Mutex::new(Jobs::default()),
            wake: Condvar::new(),
        });
        let worker = bg.clone();
        std::thread::Builder::new()
            .name("rmq-store".into())
            .spawn(move || worker.run())?;
        Ok(bg)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue a job (dropped unrun once the store stops).
    pub(crate) fn push(&self, job: Job) {
        let mut jobs = self.lock();
        if !jobs.stop {
            jobs.queue.push_back(job);
            self.wake.notify_one();
        }
    }

    /// Let the thread finish the job under way and end.
    pub(crate) fn stop(&self) {
        let mut jobs = self.lock();
        jobs.stop = true;
        jobs.queue.clear();
        self.wake.notify_one();
    }

    fn run(&self) {
        loop {
            let job = {
                let mut jobs = self.lock();
                loop {
                    if jobs.stop {
                        return;
                    }
                    if let Some(job) = jobs.queue.pop_front() {
                        break job;
                    }
                    jobs = self.wake.wait(jobs).unwrap_or_else(|e| e.into_inner());
                }
            };
            // A job that panics (a bug) must not take the store's thread with it.
            if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
                tracing::error!(
                    "a store job failed: {}",
                    crate::broker::log::panic_text(&*panic)
                );
            }
        }
    }
}
