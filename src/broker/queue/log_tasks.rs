//! A durable queue's log work on the store's thread (`store::background`): compaction
//! reads its segment without the queue's lock and takes the lock only to plan and to
//! copy forward; the next segment is created ahead of its roll; a compacted segment is
//! deleted once its copies are synced. Publishers and consumers of the queue — and every
//! other connection on the same runtime threads — never wait for a 16 MiB read or an
//! fsync.

use super::Queue;
use crate::broker::store::queue_log::{LogTask, QueueLog, Scheduler, open_segment};
use crate::broker::vhost::VHost;
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
                    q.run_log_task(task);
                }
            }));
        }));
        if let Some(log) = self.lock().log.as_mut() {
            log.set_scheduler(scheduler);
        }
    }

    /// `f` on the queue's log, under its lock (None once the queue is gone).
    fn with_log<T>(&self, f: impl FnOnce(&mut QueueLog) -> T) -> Option<T> {
        let mut st = self.lock();
        if st.deleted {
            return None;
        }
        st.log.as_mut().map(f)
    }

    fn run_log_task(&self, task: LogTask) {
        match task {
            LogTask::Compact => {
                let Some(Some((no, path))) = self.with_log(QueueLog::plan_compaction) else {
                    return;
                };
                // The segment is sealed: nothing writes it while it is read here.
                let data = std::fs::read(&path);
                self.with_log(|log| log.apply_compaction(no, data));
            }
            LogTask::Prepare(no) => {
                let Some(dir) = self.with_log(|log| log.dir().to_path_buf()) else {
                    return;
                };
                let segment = open_segment(&dir, no);
                self.with_log(|log| log.offer_prepared(segment));
            }
            LogTask::Remove(no) => {
                self.with_log(|log| log.remove_compacted(no));
            }
        }
    }
}
