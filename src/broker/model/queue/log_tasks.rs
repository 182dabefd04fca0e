//! A durable queue's log work on the store's thread (`store::background`, run by
//! `store::log_task`): compaction, the next segment created ahead of its roll, segments
//! unlinked. Publishers and consumers of the queue — and every other connection on the
//! same runtime threads — never wait for a 16 MiB read, an unlink or an fsync.

use super::Queue;
use crate::broker::model::vhost::VHost;
use crate::broker::store::log_task::{self, LogAccess};
use crate::broker::store::queue_log::{QueueLog, Scheduler};
use std::sync::Arc;

impl Queue {
    /// From now on, this queue's log runs its disk work on the store's thread.
    pub(super) fn hand_disk_work_to_the_store(self: &Arc<Self>, vhost: &Arc<VHost>) {
        let Some(store) = &vhost.store else {
            return;
        };
        let background = store.background.clone();
        let queue = Arc::downgrade(self);
        let scheduler = Scheduler(Arc::new(move |task| {
            let queue = queue.clone();
            background.push(Box::new(move || {
                if let Some(q) = queue.upgrade() {
                    log_task::run(task, &*q);
                }
            }));
        }));
        if let Some(log) = self.lock().log.as_mut() {
            log.set_scheduler(scheduler);
        }
    }
}

impl LogAccess for Queue {
    fn with_log<T>(&self, f: impl FnOnce(&mut QueueLog) -> T) -> Option<T> {
        let mut st = self.lock();
        if st.deleted {
            return None;
        }
        st.log.as_mut().map(f)
    }
}
