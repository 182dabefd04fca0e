//! Persistence under `--data-dir`: the definitions log (durable exchanges, queues,
//! bindings), one message log per durable queue, and the group-commit sync thread.
//!
//! Layout: `definitions.log`, `queues/<id>/*.seg`; the directory itself is held open and
//! locked while the broker runs.
//!
//! - `definitions`  durable topology as fsync'd JSON lines, compacted on start
//! - `segment`      CRC'd records in append-only segment files
//! - `queue_log`    one queue's log: publish / delivered / settled records
//! - `live`         which messages of a log are live, per segment
//! - `compact`      deleting segments kept by older ones, after moving what must stay
//! - `sync`         group commit: fdatasync rounds, then the confirms that waited
//! - `health`       the held data directory, and failures that end durability (sticky)
//! - `background`   the store's thread: compaction reads, segments created ahead

pub(crate) mod background;
mod compact;
#[cfg(test)]
mod compact_tests;
pub(crate) mod definitions;
pub(crate) mod health;
mod live;
pub(crate) mod log_task;
pub(crate) mod queue_log;
pub(crate) mod segment;
pub(crate) mod sync;

use definitions::{Def, DefinitionsLog, Topology};
use health::StoreHealth;
use live::Liveness;
use queue_log::{LogLimits, QueueLog};
use segment::Record;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use sync::Syncer;

/// The broker's persistence.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    /// The data directory, held open and flock'ed for the broker's lifetime: one broker
    /// per directory, whatever is deleted in it.
    _lock: File,
    /// Whether durability still holds (the directory is still ours, fsyncs succeed).
    pub(crate) health: Arc<StoreHealth>,
    defs: Mutex<DefinitionsLog>,
    pub(crate) syncer: Arc<Syncer>,
    /// Disk work off connections' tasks and locks (compaction, segment creation).
    pub(crate) background: Arc<background::Background>,
    /// Next queue directory id.
    next_id: AtomicU64,
    /// Passed to every queue log.
    limits: LogLimits,
}

/// A message found in a queue's log (its body stays on disk until the queue loads it).
#[derive(Debug)]
pub(crate) struct RecoveredMessage {
    pub(crate) seq: u64,
    pub(crate) segment: u64,
    /// Offset of its record in the segment.
    pub(crate) offset: u64,
    /// Body length.
    pub(crate) size: u32,
    /// The `priority` property (0 when absent).
    pub(crate) priority: u8,
    /// Absolute expiry in Unix ms, 0 for none.
    pub(crate) expires_unix_ms: u64,
    /// Delivered before the restart: it comes back with `redelivered=true`.
    pub(crate) delivered: bool,
}

/// What recovery keeps of a publish record: enough to queue it, not its body.
#[derive(Debug)]
struct PublishMeta {
    segment: u64,
    offset: u64,
    size: u32,
    priority: u8,
    expires_unix_ms: u64,
    /// Written by compaction (`live` tracks copies apart from publishes).
    copy: bool,
}

/// A durable queue with its log and the messages it still held.
#[derive(Debug)]
pub(crate) struct RecoveredQueue {
    pub(crate) vhost: String,
    pub(crate) name: String,
    pub(crate) id: u64,
    pub(crate) auto_delete: bool,
    pub(crate) args: String,
    /// In publish order.
    pub(crate) messages: Vec<RecoveredMessage>,
    /// Above every seq any record of the log names: new messages must not reuse a seq
    /// that a surviving settle or delivered record would apply to.
    pub(crate) next_seq: u64,
    pub(crate) log: QueueLog,
}

/// What `Store::open` found.
#[derive(Debug)]
pub(crate) struct Recovery {
    pub(crate) exchanges: Vec<Def>,
    pub(crate) bindings: Vec<Def>,
    pub(crate) queues: Vec<RecoveredQueue>,
    /// Torn tails truncated, corrupt records skipped, unreadable lines: each reported.
    pub(crate) problems: Vec<String>,
}

impl Store {
    /// Lock `dir`, replay the definitions and every durable queue's log.
    pub(crate) fn open(dir: &Path, limits: LogLimits) -> io::Result<(Arc<Store>, Recovery)> {
        fs::create_dir_all(dir.join("queues")).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create data directory {}: {e}", dir.display()),
            )
        })?;
        let (health, lock) = StoreHealth::open(dir)?;
        let health = Arc::new(health);
        // Before anything else takes the space (best effort: a full disk starts without).
        health.take_reserve();
        // Earlier rmq versions locked this file; the directory itself is locked now.
        let _ = fs::remove_file(dir.join("lock"));
        let (defs, topology) = DefinitionsLog::open(dir)?;
        let syncer = Syncer::start(health.clone())?;
        let background = background::Background::start()?;
        let Topology {
            exchanges,
            queues,
            bindings,
            skipped,
        } = topology;
        let mut problems = skipped;
        let mut recovered = Vec::new();
        let mut known = HashSet::new();
        let mut next_id = 1;
        for q in queues {
            let Def::Queue {
                vhost,
                name,
                id,
                auto_delete,
                args,
            } = q
            else {
                continue;
            };
            known.insert(id);
            next_id = next_id.max(id + 1);
            let qdir = dir.join("queues").join(id.to_string());
            let (messages, next_segment, live, next_seq) = read_queue(&qdir, &mut problems)?;
            let log = QueueLog::open(qdir, syncer.clone(), next_segment, live, limits)?;
            recovered.push(RecoveredQueue {
                vhost,
                name,
                id,
                auto_delete,
                args,
                messages,
                next_seq,
                log,
            });
        }
        // Logs of queues deleted while a removal failed: nothing refers to them.
        if let Ok(entries) = fs::read_dir(dir.join("queues")) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().parse::<u64>().ok();
                if id.is_none_or(|id| !known.contains(&id)) {
                    problems.push(format!(
                        "removed the log of a deleted queue: {}",
                        e.path().display()
                    ));
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let store = Arc::new(Store {
            dir: dir.to_path_buf(),
            _lock: lock,
            health,
            defs: Mutex::new(defs),
            syncer,
            background,
            next_id: AtomicU64::new(next_id),
            limits,
        });
        Ok((
            store,
            Recovery {
                exchanges,
                bindings,
                queues: recovered,
                problems,
            },
        ))
    }

    /// Make a topology change durable. A change that cannot be is an error for the
    /// caller to report (a declare is refused); a failed sync fails the store.
    pub(crate) fn record(&self, d: &Def) -> io::Result<()> {
        if !self.health.check_dir() {
            return Err(self.health.error());
        }
        let result = self
            .defs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(d);
        if let Err(e) = &result {
            tracing::error!("cannot write the definitions log: {e}");
            if e.kind() != io::ErrorKind::StorageFull {
                self.health
                    .fail(format_args!("cannot write the definitions log: {e}"));
            }
        }
        result
    }

    /// A log for a new durable queue: (directory id, log).
    pub(crate) fn new_queue_log(&self) -> io::Result<(u64, QueueLog)> {
        if !self.health.check_dir() {
            return Err(self.health.error());
        }
        // Tests hold a declare's disk work here (a slow disk) in stores whose path names a
        // failpoint.
        fail::fail_point!("store-new-queue-log", self.health.inject, |_| Err(
            io::Error::other("injected failure creating a queue log")
        ));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.join("queues").join(id.to_string());
        // A stale directory with this id cannot hold anything of the new queue.
        let _ = fs::remove_dir_all(&dir);
        let log = QueueLog::open(
            dir,
            self.syncer.clone(),
            1,
            Liveness::default(),
            self.limits,
        )?;
        Ok((id, log))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.background.stop();
        self.syncer.stop();
    }
}

/// Segment numbers in `dir`, ascending.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(no) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
                    out.push(no);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort_unstable();
    Ok(out)
}

/// Read a queue's segments: its live messages in order, the next segment number, which
/// messages are live in which segment, and the seq to continue from. The newest publish
/// or copy record of a seq says where it is; a settle record anywhere ends it.
#[allow(clippy::type_complexity)]
pub(super) fn read_queue(
    dir: &Path,
    problems: &mut Vec<String>,
) -> io::Result<(Vec<RecoveredMessage>, u64, Liveness, u64)> {
    let segs = segments(dir)?;
    let mut live = Liveness::default();
    let mut published: BTreeMap<u64, PublishMeta> = BTreeMap::new();
    let mut delivered = HashSet::new();
    let mut settled = HashSet::new();
    let mut next_seq = 0u64;
    for (i, &no) in segs.iter().enumerate() {
        let path = queue_log::segment_path(dir, no);
        let data = fs::read(&path)?;
        let outcome = segment::read_records(&data);
        // Damaged unless the only damage is a torn tail cut off below.
        let truncated = outcome.torn_tail && i + 1 == segs.len() && outcome.corrupt.is_empty();
        let seg = live.segments.entry(no).or_default();
        seg.damaged = (outcome.torn_tail && !truncated) || !outcome.corrupt.is_empty();
        for (at, len) in &outcome.corrupt {
            problems.push(format!(
                "skipped a corrupt record ({len} bytes at offset {at}) in {}",
                path.display()
            ));
        }
        if outcome.torn_tail {
            let cut = data.len() as u64 - outcome.valid_len;
            if truncated {
                // A write cut short by a crash: nothing in it was ever confirmed.
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(outcome.valid_len)?;
                problems.push(format!(
                    "truncated a torn final record ({cut} bytes) of {}",
                    path.display()
                ));
            } else {
                problems.push(format!(
                    "skipped {cut} unreadable bytes at the end of {}",
                    path.display()
                ));
            }
        }
        for (offset, r) in outcome.records {
            let copy = matches!(r, Record::Copy(_));
            match r {
                Record::Publish(p) | Record::Copy(p) => {
                    next_seq = next_seq.max(p.seq + 1);
                    let seg = live.segments.entry(no).or_default();
                    if copy {
                        seg.copy(p.seq, false);
                    } else {
                        seg.dead_publish(p.seq);
                    }
                    let priority = crate::codec::header::decode_header(&p.header)
                        .ok()
                        .and_then(|(_, _, props)| *props.priority())
                        .unwrap_or(0);
                    published.insert(
                        p.seq,
                        PublishMeta {
                            segment: no,
                            offset,
                            size: p.body.len() as u32,
                            priority,
                            expires_unix_ms: p.expires_unix_ms,
                            copy,
                        },
                    );
                }
                Record::Delivered(seq) => {
                    next_seq = next_seq.max(seq + 1);
                    delivered.insert(seq);
                    live.segments.entry(no).or_default().mark(seq, false);
                }
                Record::Settled(seq) => {
                    next_seq = next_seq.max(seq + 1);
                    settled.insert(seq);
                    live.segments.entry(no).or_default().mark(seq, true);
                }
            }
        }
    }
    let mut messages = Vec::new();
    for (seq, m) in published {
        if settled.contains(&seq) {
            continue;
        }
        let seg = live.segments.entry(m.segment).or_default();
        if m.copy {
            seg.copy_recovered_live();
            live.moved.insert(seq, (m.segment, m.offset));
        } else {
            seg.set_recovered(seq);
        }
        messages.push(RecoveredMessage {
            seq,
            segment: m.segment,
            offset: m.offset,
            size: m.size,
            priority: m.priority,
            expires_unix_ms: m.expires_unix_ms,
            delivered: delivered.contains(&seq),
        });
    }
    let next = segs.last().map_or(1, |n| n + 1);
    Ok((messages, next, live, next_seq))
}
