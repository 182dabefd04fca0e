//! Giving freed memory back to the operating system while the memory alarm is on.
//!
//! The alarm watches the process RSS, as RabbitMQ does. A thread-caching allocator
//! (mimalloc) keeps memory freed by other threads until its owning thread allocates
//! again — and with every publisher blocked, nobody does: the queues drain, the RSS
//! stays up, and the alarm never clears. So while the alarm is on, each runtime worker
//! collects its heap once per alarm sample, when it goes idle. The collecting itself is
//! the allocator's business and is passed in by the binary (`rmq::cli::main_with`).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped once per alarm sample while memory is over the watermark.
static WANTED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static DONE: Cell<u64> = const { Cell::new(0) };
}

/// Ask every worker to collect at its next idle moment.
pub(crate) fn request() {
    WANTED.fetch_add(1, Ordering::Relaxed);
}

/// For a runtime's `on_thread_park`: run `collect` if asked since this thread last did.
pub fn on_park(collect: fn()) {
    let wanted = WANTED.load(Ordering::Relaxed);
    if DONE.get() != wanted {
        DONE.set(wanted);
        collect();
    }
}
