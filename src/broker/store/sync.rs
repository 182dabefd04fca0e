//! Group commit: one thread runs `fdatasync` for every file written since its last round,
//! then runs the callbacks (publisher confirms, tx.commit-ok) that waited for those
//! writes. Many publishers share one sync; callbacks run in the order they were queued.
//! A failed fsync, or a data directory gone from under us, fails the store (`health`):
//! every callback of that round and after is told the writes are not durable.

use super::health::StoreHealth;
use super::segment::Segment;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Work to run once everything written before it is on disk: `Ok`, or why it is not.
pub(crate) type AfterSync = Box<dyn FnOnce(Result<(), &str>) + Send>;

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
    health: Arc<StoreHealth>,
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
    pub(crate) fn start(health: Arc<StoreHealth>) -> std::io::Result<Arc<Syncer>> {
        let s = Arc::new(Syncer {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            syncs: AtomicU64::new(0),
            health,
        });
        let worker = s.clone();
        std::thread::Builder::new()
            .name("rmq-sync".into())
            .spawn(move || worker.run())?;
        Ok(s)
    }

    /// A syncer whose health watches a throwaway directory of its own (unit tests).
    #[cfg(test)]
    pub(crate) fn for_tests() -> Arc<Syncer> {
        use std::sync::atomic::AtomicUsize;
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rmq-syncer-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (health, _lock) = StoreHealth::open(&dir).expect("health");
        Syncer::start(Arc::new(health)).expect("sync thread")
    }

    /// The store's health (queue logs refuse to write once it failed).
    pub(crate) fn health(&self) -> &StoreHealth {
        &self.health
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
            let result = self.round(&dirty);
            let result = match &result {
                Ok(()) => Ok(()),
                Err(why) => Err(why.as_str()),
            };
            for then in waiting {
                then(result);
            }
            if stop {
                return;
            }
        }
    }

    /// One group-commit round: sync every dirty file, then check the directory is still
    /// ours. Once the store failed, no round succeeds again (see `health`).
    fn round(&self, dirty: &[Arc<Segment>]) -> Result<(), String> {
        if let Some(why) = self.health.failure() {
            return Err(why);
        }
        for seg in dirty {
            // Cleared before the sync: a write racing with it registers again.
            seg.dirty.store(false, Ordering::Release);
            let result = sync_data(seg, self.health.inject);
            self.syncs.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = result {
                self.health.fail(format_args!("fdatasync failed: {e}"));
                return Err(self.health.failure().unwrap_or_default());
            }
        }
        if !self.health.check_dir() {
            return Err(self.health.failure().unwrap_or_default());
        }
        Ok(())
    }
}

/// fdatasync one segment; tests inject failures into stores whose path names a failpoint.
fn sync_data(seg: &Segment, inject: bool) -> io::Result<()> {
    let _ = inject; // read by the failpoint only in test builds
    fail::fail_point!("store-fdatasync", inject, |_| Err(io::Error::other(
        "injected fdatasync failure (EIO)"
    )));
    seg.file.sync_data()
}
