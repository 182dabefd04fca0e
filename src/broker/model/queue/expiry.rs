//! `x-expires` for all the queues of a vhost with one timer task and a heap of
//! deadlines, instead of a task per queue (which cost ~0.8 KiB per idle queue).
//!
//! A queue expires once it has had no consumers and no use (declare, basic.get) for its
//! `x-expires` period. A deadline that arrives early (the queue was used meanwhile, or
//! has consumers) is pushed back, never polled in a loop.

use super::Queue;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

#[derive(Debug)]
struct Due {
    at: Instant,
    queue: Weak<Queue>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

#[derive(Debug, Default)]
struct Inner {
    heap: BinaryHeap<Reverse<Due>>,
    /// A timer task is running (it stops when the heap is empty).
    running: bool,
}

/// One vhost's `x-expires` deadlines.
#[derive(Debug, Default)]
pub(crate) struct Expiry {
    inner: Mutex<Inner>,
    /// An earlier deadline arrived: the task re-reads the heap.
    wake: Notify,
}

/// When to look at a queue again, or None when it has expired now.
/// With consumers the queue cannot expire before they leave, and leaving counts as use,
/// so a full period from now is the earliest it could.
pub(super) fn next_check(
    last_used: Instant,
    after: Duration,
    has_consumers: bool,
    now: Instant,
) -> Option<Instant> {
    if has_consumers {
        Some(now + after)
    } else if last_used + after <= now {
        None
    } else {
        Some(last_used + after)
    }
}

impl Expiry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Look at `queue` again at `at`. Outside a tokio runtime nothing expires (there is
    /// no broker running to delete anything).
    pub(super) fn watch(self: &Arc<Self>, queue: Weak<Queue>, at: Instant) {
        let mut inner = self.lock();
        let earlier = inner.heap.peek().is_none_or(|top| at < top.0.at);
        inner.heap.push(Reverse(Due { at, queue }));
        if !inner.running {
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                return;
            };
            inner.running = true;
            rt.spawn(self.clone().run());
        } else if earlier {
            self.wake.notify_one();
        }
    }

    async fn run(self: Arc<Self>) {
        loop {
            let next = {
                let mut inner = self.lock();
                match inner.heap.peek() {
                    Some(top) => top.0.at,
                    None => {
                        inner.running = false;
                        return;
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = self.wake.notified() => continue,
            }
            let now = Instant::now();
            let due: Vec<Weak<Queue>> = {
                let mut inner = self.lock();
                let mut due = Vec::new();
                while inner.heap.peek().is_some_and(|top| top.0.at <= now) {
                    if let Some(Reverse(d)) = inner.heap.pop() {
                        due.push(d.queue);
                    }
                }
                due
            };
            for q in due.iter().filter_map(Weak::upgrade) {
                q.check_expiry(&self, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_with_consumers_is_looked_at_a_period_later_not_at_once() {
        let now = Instant::now();
        let after = Duration::from_millis(200);
        let long_ago = now - Duration::from_secs(10);
        // The old per-queue loop recomputed `last_used + after` (long past) and woke
        // every timer tick while a consumer stayed attached.
        assert_eq!(next_check(long_ago, after, true, now), Some(now + after));
        assert_eq!(next_check(long_ago, after, false, now), None);
        let recent = now - Duration::from_millis(50);
        assert_eq!(next_check(recent, after, false, now), Some(recent + after));
    }
}
