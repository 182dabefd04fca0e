//! How a `LogTask` runs on the store's thread: the in-memory steps under the queue's
//! lock, the disk work between them without it — a 16 MiB read and its parse, a
//! segment's creation, an unlink — so that the queue's publishers and consumers (and
//! the runtime threads they would block) never wait for the disk.

use super::queue_log::{LogTask, QueueLog, open_segment};
use super::segment;

/// The log of a queue, reached under its lock.
pub(crate) trait LogAccess {
    /// `f` on the log under the lock; None once the queue (or its log) is gone.
    fn with_log<T>(&self, f: impl FnOnce(&mut QueueLog) -> T) -> Option<T>;
}

/// Run `task` against `log`.
pub(crate) fn run(task: LogTask, log: &impl LogAccess) {
    match task {
        LogTask::Compact => {
            let Some(Some((no, path))) = log.with_log(QueueLog::plan_compaction) else {
                return;
            };
            // The segment is sealed: nothing writes it while it is read here.
            let read = std::fs::read(&path).map(|data| {
                let found = segment::read_records(&data);
                (data, found)
            });
            log.with_log(|l| l.apply_compaction(no, read));
        }
        LogTask::Prepare(no) => {
            let Some(dir) = log.with_log(|l| l.dir().to_path_buf()) else {
                return;
            };
            let segment = open_segment(&dir, no);
            log.with_log(|l| l.offer_prepared(segment));
        }
        LogTask::Remove(no) => {
            let Some(Some(path)) = log.with_log(|l| l.removal(no)) else {
                return;
            };
            let unlinked = std::fs::remove_file(path);
            log.with_log(|l| l.removed(no, unlinked));
        }
    }
}
