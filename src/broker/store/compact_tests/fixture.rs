//! What the compaction tests stand on: owned message records, a log opened fresh or
//! recovered, a replayable generator, and the store thread's tasks run by hand.

use super::super::live::Liveness;
use super::super::log_task::{self, LogAccess};
use super::super::queue_log::{LogLimits, LogTask, PublishRecord, QueueLog, Scheduler};
use super::super::sync::Syncer;
use crate::codec::header::encode_header;
use amq_protocol::protocol::BasicProperties;
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub(super) const SEGMENT: u64 = 1024;

pub(super) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rmq-compact-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub(super) fn body(seq: u64) -> Vec<u8> {
    format!("message {seq:06} {}", "x".repeat((seq % 90) as usize)).into_bytes()
}

/// A persistent message's record parts, owned (the tests keep the store below the model).
pub(super) struct Owned {
    header: Bytes,
    body: Bytes,
}

impl Owned {
    pub(super) fn record(&self) -> PublishRecord<'_> {
        PublishRecord {
            exchange: "",
            routing_key: "q",
            cc: &[],
            bcc: &[],
            header: &self.header,
            body: &self.body,
        }
    }
}

pub(super) fn message(seq: u64) -> Owned {
    let properties = BasicProperties::default().with_delivery_mode(2);
    let body = body(seq);
    Owned {
        header: encode_header(body.len() as u64, &properties),
        body: Bytes::from(body),
    }
}

pub(super) fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .count()
}

/// What recovery found: live seq → ((segment, offset), delivered), and the reopened log.
pub(super) type Found = BTreeMap<u64, ((u64, u64), bool)>;

pub(super) fn recover(dir: &Path, syncer: &Arc<Syncer>) -> (Found, QueueLog) {
    let (found, log, _) = recover_seq(dir, syncer);
    (found, log)
}

/// `recover`, and the seq new messages continue from (as `Queue::restore` uses it).
pub(super) fn recover_seq(dir: &Path, syncer: &Arc<Syncer>) -> (Found, QueueLog, u64) {
    let mut problems = Vec::new();
    let (messages, next, live, next_seq) = super::super::read_queue(dir, &mut problems).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let found = messages
        .iter()
        .map(|m| (m.seq, ((m.segment, m.offset), m.delivered)))
        .collect();
    let log = QueueLog::open(dir.to_path_buf(), syncer.clone(), next, live, limits()).unwrap();
    (found, log, next_seq)
}

pub(super) fn limits() -> LogLimits {
    LogLimits {
        resident_bytes: 0,
        segment_bytes: SEGMENT,
    }
}

pub(super) fn fresh(dir: &Path, syncer: &Arc<Syncer>) -> QueueLog {
    QueueLog::open(
        dir.to_path_buf(),
        syncer.clone(),
        1,
        Liveness::default(),
        limits(),
    )
    .unwrap()
}

/// A little deterministic generator, so that a failure replays.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Tasks a scheduled log queued for the store's thread: run when the test says, or lost
/// in a "crash" (a restart with some of them never run).
#[derive(Clone, Default)]
pub(super) struct Tasks(pub(super) Arc<Mutex<VecDeque<LogTask>>>);

impl Tasks {
    pub(super) fn attach(&self, log: &mut QueueLog) {
        self.0.lock().unwrap().clear();
        let tasks = self.0.clone();
        log.set_scheduler(Scheduler(Arc::new(move |t| {
            tasks.lock().unwrap().push_back(t)
        })));
    }

    /// Run the oldest queued task, as the store's thread would; false when none was.
    pub(super) fn run_one(&self, log: QueueLog) -> (QueueLog, bool) {
        let Some(task) = self.0.lock().unwrap().pop_front() else {
            return (log, false);
        };
        let local = Local(RefCell::new(log));
        log_task::run(task, &local);
        (local.0.into_inner(), true)
    }
}

impl Tasks {
    /// Run tasks until none is queued and none waits for a sync round.
    pub(super) fn drain(&self, mut log: QueueLog, syncer: &Arc<Syncer>) -> QueueLog {
        for _ in 0..1000 {
            // A round run after this call has run every callback registered before it.
            let (tx, rx) = std::sync::mpsc::channel();
            syncer.after_sync(Box::new(move |_| {
                let _ = tx.send(());
            }));
            rx.recv_timeout(std::time::Duration::from_secs(10))
                .expect("a sync round");
            let mut ran_any = false;
            loop {
                let ran;
                (log, ran) = self.run_one(log);
                if !ran {
                    break;
                }
                ran_any = true;
            }
            if !ran_any && log.live.segments.values().all(|s| !s.awaiting_removal) {
                return log;
            }
        }
        panic!("the store's tasks never settled");
    }
}

/// A log reached the way the store's thread reaches a queue's.
pub(super) struct Local(pub(super) RefCell<QueueLog>);

impl LogAccess for Local {
    fn with_log<T>(&self, f: impl FnOnce(&mut QueueLog) -> T) -> Option<T> {
        Some(f(&mut self.0.borrow_mut()))
    }
}
