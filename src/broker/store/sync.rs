//! Group commit: one thread runs `fdatasync` for every file written since its last round,
//! then runs the callbacks (publisher confirms, tx.commit-ok) that waited for those
//! writes. Many publishers share one sync; callbacks run in the order they were queued.

use super::segment::Segment;
use crate::broker::log;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Work to run once everything written before it is on disk.
pub(crate) type AfterSync = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Pending {
    dirty: Vec<Arc<Segment>>,
    waiting: Vec<AfterSync>,
    stop: bool,
}

/// Shared between the broker and the sync thread.
pub(crate) struct Syncer {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// fdatasync calls made (benchmarks report syncs per second).
    pub(crate) syncs: AtomicU64,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("syncs", &self.syncs)
            .finish()
    }
}

impl Syncer {
    /// Start the sync thread.
    pub(crate) fn start() -> std::io::Result<Arc<Syncer>> {
        let s = Arc::new(Syncer {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            syncs: AtomicU64::new(0),
        });
        let worker = s.clone();
        std::thread::Builder::new()
            .name("rmq-sync".into())
            .spawn(move || worker.run())?;
        Ok(s)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A file was written and must be flushed by the next round.
    pub(crate) fn dirty(&self, segment: Arc<Segment>) {
        self.lock().dirty.push(segment);
    }

    /// Run `then` once everything written so far is on disk.
    pub(crate) fn after_sync(&self, then: AfterSync) {
        self.lock().waiting.push(then);
        self.wake.notify_one();
    }

    /// Flush what is dirty and stop the thread after its last round.
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_one();
    }

    fn run(&self) {
        loop {
            let (dirty, waiting, stop) = {
                let mut p = self.lock();
                while p.waiting.is_empty() && !p.stop {
                    p = self.wake.wait(p).unwrap_or_else(|e| e.into_inner());
                }
                (
                    std::mem::take(&mut p.dirty),
                    std::mem::take(&mut p.waiting),
                    p.stop,
                )
            };
            for seg in &dirty {
                // Cleared before the sync: a write racing with it registers again.
                seg.dirty.store(false, Ordering::Release);
                let result = seg.file.sync_data();
                self.syncs.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = result {
                    // Confirms must not claim durability we could not get: stop confirming.
                    log::error(format_args!("fdatasync failed: {e}; confirms are withheld"));
                    return;
                }
            }
            for then in waiting {
                then();
            }
            if stop {
                return;
            }
        }
    }
}
