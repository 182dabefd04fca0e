//! One durable queue's message log: persistent messages and what became of them, in
//! numbered segment files. The oldest segment is deleted once it holds no live message;
//! a segment kept past that by an older one (a message left unacked for long, low
//! priorities waiting under high ones) is compacted (`compact.rs`), so the disk follows
//! the queue's depth rather than its history.

use super::live::{Liveness, SegmentLive};
use super::segment::{self, Segment, StoredPublish};
use super::sync::Syncer;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// What a publish record holds: a message as the store sees it, borrowed. The store
/// takes parts rather than the model's `Message` so persistence depends on no layer above.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublishRecord<'a> {
    pub(crate) exchange: &'a str,
    pub(crate) routing_key: &'a str,
    pub(crate) cc: &'a [String],
    pub(crate) bcc: &'a [String],
    pub(crate) header: &'a [u8],
    pub(crate) body: &'a [u8],
}

/// Sizes a queue log works with (BrokerConfig).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogLimits {
    /// Body bytes the queue keeps in memory before paging out.
    pub(crate) resident_bytes: u64,
    /// A new segment is started past this size.
    pub(crate) segment_bytes: u64,
}

/// Disk work a queue log hands to the store's thread (`background.rs`), run by its queue
/// with the queue's lock taken only around the in-memory steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogTask {
    /// Compact the segment most worth it (read it outside the lock, then copy forward).
    Compact,
    /// Create segment N ahead of the roll that needs it.
    Prepare(u64),
    /// Delete compacted segment N: its copies are synced.
    Remove(u64),
}

/// Queues a `LogTask` for this log on the store's thread.
#[derive(Clone)]
pub(crate) struct Scheduler(pub(crate) Arc<dyn Fn(LogTask) + Send + Sync>);

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scheduler")
    }
}

/// The open log of a queue (lives inside the queue's state, under its lock).
#[derive(Debug)]
pub(crate) struct QueueLog {
    pub(super) dir: PathBuf,
    pub(super) syncer: Arc<Syncer>,
    pub(super) current: Arc<Segment>,
    /// Bytes in the current segment.
    size: u64,
    /// Which messages are live, per segment.
    pub(super) live: Liveness,
    /// Encoding scratch, reused.
    buf: Vec<u8>,
    /// Read handles of segments, for paged-out messages.
    pub(super) readers: HashMap<u64, File>,
    pub(super) segment_bytes: u64,
    /// Body bytes the queue keeps in memory before paging out (BrokerConfig).
    pub(crate) resident_limit: u64,
    /// Set while compacting: its own writes start no other compaction.
    pub(super) compacting: bool,
    /// Settled marks that met a full disk: written before anything else this log writes,
    /// so an acknowledgement is never forgotten while the broker runs (after a restart
    /// first, the message comes back, marked redelivered by its delivered mark).
    pending: Vec<u8>,
    /// Runs compaction and segment creation on the store's thread; None (unit tests,
    /// start-up) runs them inline.
    pub(super) scheduler: Option<Scheduler>,
    /// A `LogTask::Compact` is queued and not started yet.
    pub(super) compaction_scheduled: bool,
    /// The next segment, created ahead on the store's thread.
    prepared: Option<Arc<Segment>>,
    /// A `LogTask::Prepare` is queued.
    prepare_scheduled: bool,
    /// Tests: "crash" instead of deleting this segment (nothing is written after).
    #[cfg(test)]
    pub(super) crash_at_remove: Option<u64>,
    #[cfg(test)]
    pub(super) crashed: bool,
}

pub(crate) fn segment_path(dir: &Path, no: u64) -> PathBuf {
    dir.join(format!("{no:016}.seg"))
}

pub(crate) fn open_segment(dir: &Path, no: u64) -> io::Result<Arc<Segment>> {
    let path = segment_path(dir, no);
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    // The new name must be durable before anything synced into the file counts as on
    // disk (fdatasync of the file alone does not promise that on every filesystem).
    File::open(dir)?.sync_all()?;
    Ok(Arc::new(Segment {
        no,
        file,
        dirty: AtomicBool::new(false),
    }))
}

impl QueueLog {
    /// Open a log in `dir` whose segments up to `next_segment - 1` exist as `live` says.
    pub(crate) fn open(
        dir: PathBuf,
        syncer: Arc<Syncer>,
        next_segment: u64,
        live: Liveness,
        limits: LogLimits,
    ) -> io::Result<QueueLog> {
        fs::create_dir_all(&dir)?;
        let current = open_segment(&dir, next_segment)?;
        let mut live = live;
        live.segments.insert(next_segment, SegmentLive::default());
        let mut log = QueueLog {
            dir,
            syncer,
            current,
            size: 0,
            live,
            buf: Vec::with_capacity(4096),
            readers: HashMap::new(),
            segment_bytes: limits.segment_bytes.max(1),
            resident_limit: limits.resident_bytes,
            compacting: false,
            pending: Vec::new(),
            scheduler: None,
            compaction_scheduled: false,
            prepared: None,
            prepare_scheduled: false,
            #[cfg(test)]
            crash_at_remove: None,
            #[cfg(test)]
            crashed: false,
        };
        log.drop_settled_segments();
        log.maybe_compact();
        Ok(log)
    }

    /// Append encoded records to the current segment, starting a new one past the size
    /// limit: (segment, offset) of the first byte, and whether a segment was started.
    /// Pending marks go first. A write that meets a full disk is cut back off the file (no
    /// torn record is left for later records to follow) and, for marks, retried once in
    /// the space the reserve held; any other write error fails the store.
    pub(super) fn append(&mut self, bytes: &[u8]) -> io::Result<(u64, u64, bool)> {
        self.append_after_pending(bytes, false)
    }

    /// Pending marks first, then `bytes` (marks may use the reserve).
    fn append_after_pending(&mut self, bytes: &[u8], mark: bool) -> io::Result<(u64, u64, bool)> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            match self.append_with_reserve(&pending, true) {
                Ok((no, _, _)) => {
                    let seg = self.live.segments.entry(no).or_default();
                    for (_, record) in segment::read_records(&pending).records {
                        if let segment::Record::Settled(seq) = record {
                            seg.mark(seq, true);
                        }
                    }
                }
                Err(e) => {
                    self.pending = pending;
                    return Err(e);
                }
            }
        }
        self.append_with_reserve(bytes, mark)
    }

    fn append_with_reserve(&mut self, bytes: &[u8], mark: bool) -> io::Result<(u64, u64, bool)> {
        match self.append_once(bytes) {
            Err(e)
                if e.kind() == io::ErrorKind::StorageFull
                    && mark
                    && self.syncer.health().release_reserve() =>
            {
                self.append_once(bytes)
            }
            other => other,
        }
    }

    fn append_once(&mut self, bytes: &[u8]) -> io::Result<(u64, u64, bool)> {
        #[cfg(test)]
        if self.crashed {
            return Err(io::Error::other("crashed"));
        }
        // A failed store writes nothing more: what it would write could not be made durable.
        if !self.syncer.health().ok() {
            return Err(self.syncer.health().error());
        }
        let mut started = false;
        if self.size >= self.segment_bytes {
            let next = self.current.no + 1;
            self.current = match self.prepared.take() {
                Some(seg) if seg.no == next => seg,
                _ => open_segment(&self.dir, next)?,
            };
            self.live.segments.insert(next, SegmentLive::default());
            self.size = 0;
            started = true;
        }
        let at = self.size;
        if let Err(e) = segment::append(&self.current, bytes) {
            // Shrinking needs no space; a torn record would hide every later one.
            if let Err(cut) = self.current.file.set_len(at) {
                self.syncer.health().fail(format_args!(
                    "cannot cut a failed write off a segment: {cut}"
                ));
            } else if e.kind() != io::ErrorKind::StorageFull {
                self.syncer
                    .health()
                    .fail(format_args!("cannot write a queue log: {e}"));
            }
            return Err(e);
        }
        self.size += bytes.len() as u64;
        if self.current.mark_dirty() {
            self.syncer.dirty(self.current.clone());
        }
        // Halfway through a segment, the next one is created on the store's thread: the
        // roll then only swaps it in (no create and directory fsync under the lock).
        if self.size >= self.segment_bytes / 2
            && self.prepared.is_none()
            && !self.prepare_scheduled
            && let Some(s) = &self.scheduler
        {
            self.prepare_scheduled = true;
            (s.0)(LogTask::Prepare(self.current.no + 1));
        }
        Ok((self.current.no, at, started))
    }

    /// Run disk work on the store's thread from now on.
    pub(crate) fn set_scheduler(&mut self, scheduler: Scheduler) {
        self.scheduler = Some(scheduler);
    }

    /// The directory of this log (for work done outside the queue's lock).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// A segment created ahead (`LogTask::Prepare`): kept if it is still the next one.
    pub(crate) fn offer_prepared(&mut self, seg: io::Result<Arc<Segment>>) {
        self.prepare_scheduled = false;
        match seg {
            Ok(seg) if seg.no == self.current.no + 1 => self.prepared = Some(seg),
            // Rolled past it inline meanwhile (that roll opened the same file): nothing to do.
            Ok(_) => {}
            Err(e) => tracing::error!("cannot create a segment of {}: {e}", self.dir.display()),
        }
    }

    /// Append what is in `buf` (marks may use the reserve): (segment, offset) of the
    /// record, and whether it started a segment. When it did, the caller updates liveness
    /// and then calls `maybe_compact` (in that order: compaction must see the new record
    /// as live).
    fn write(&mut self, mark: bool) -> io::Result<(u64, u64, bool)> {
        let buf = std::mem::take(&mut self.buf);
        let written = self.append_after_pending(&buf, mark);
        self.buf = buf;
        self.buf.clear();
        written
    }

    /// Persist a message; returns (segment, offset) of its record.
    pub(crate) fn publish(
        &mut self,
        seq: u64,
        msg: PublishRecord<'_>,
        expires_unix_ms: u64,
    ) -> io::Result<(u64, u64)> {
        segment::encode_publish(
            &mut self.buf,
            seq,
            expires_unix_ms,
            msg.exchange,
            msg.routing_key,
            msg.cc,
            msg.bcc,
            msg.header,
            msg.body,
        );
        let (no, at, started) = self.write(false)?;
        self.live.segments.entry(no).or_default().publish(seq);
        if started {
            self.maybe_compact();
        }
        Ok((no, at))
    }

    /// The message is about to be delivered (recovery marks it redelivered). An error
    /// means it must not be: a message delivered before never comes back looking new.
    pub(crate) fn delivered(&mut self, seq: u64) -> io::Result<()> {
        segment::encode_mark(&mut self.buf, false, seq);
        let (no, _, started) = self.write(true)?;
        self.live.segments.entry(no).or_default().mark(seq, false);
        if started {
            self.maybe_compact();
        }
        Ok(())
    }

    /// Record that stored message `seq` is handed out; false when it must not be yet. An
    /// ack-mode delivery needs its delivered mark written first (so it never comes back
    /// looking new); a no-ack one settles it afterwards, which waits for no earlier mark.
    /// A failed store waits for nothing: its marks cannot be made durable any more, so
    /// consumers drain what is in memory and a restart recovers from what is on disk.
    pub(crate) fn record_delivery(&mut self, seq: u64, no_ack: bool) -> bool {
        if self.failed() {
            return true;
        }
        if no_ack {
            self.pending.is_empty()
        } else {
            self.delivered(seq).is_ok()
        }
    }

    /// The store failed (see `health`).
    fn failed(&self) -> bool {
        !self.syncer.health().ok()
    }

    /// The message left the queue for good (acked, rejected, expired, dropped, purged).
    /// `segment_no` is where it was published: a message compacted since is found by seq.
    pub(crate) fn settled(&mut self, seq: u64, segment_no: u64) -> io::Result<()> {
        let moved = if self.live.moved.is_empty() {
            None
        } else {
            self.live.moved.remove(&seq)
        };
        let no = match moved {
            Some((no, _)) => {
                if let Some(s) = self.live.segments.get_mut(&no) {
                    s.copy_gone();
                }
                no
            }
            None => {
                if let Some(s) = self.live.segments.get_mut(&segment_no) {
                    s.clear(seq);
                }
                segment_no
            }
        };
        if self.failed() {
            return Ok(()); // logged once, loudly, when the store failed
        }
        segment::encode_mark(&mut self.buf, true, seq);
        let started = match self.write(true) {
            Ok((written, _, started)) => {
                self.live
                    .segments
                    .entry(written)
                    .or_default()
                    .mark(seq, true);
                started
            }
            Err(e) if e.kind() == io::ErrorKind::StorageFull => {
                // Kept, and written before anything else this log writes. Segments it
                // empties may still go: a deleted publish record needs no settle mark.
                segment::encode_mark(&mut self.pending, true, seq);
                false
            }
            Err(e) => return Err(e),
        };
        if self.live.segments.get(&no).is_some_and(|s| s.live == 0) {
            self.drop_settled_segments();
            self.maybe_compact();
        } else if started {
            self.maybe_compact();
        }
        Ok(())
    }

    /// Read back a message written by `publish` at (segment, offset), or wherever
    /// compaction has moved it since.
    pub(crate) fn read(
        &mut self,
        seq: u64,
        segment_no: u64,
        offset: u64,
    ) -> io::Result<StoredPublish> {
        let (segment_no, offset) = self
            .live
            .moved
            .get(&seq)
            .copied()
            .unwrap_or((segment_no, offset));
        let file = match self.readers.entry(segment_no) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(File::open(segment_path(&self.dir, segment_no))?)
            }
        };
        segment::read_publish_at(file, offset)
    }

    /// The queue was deleted: remove its files.
    pub(crate) fn destroy(&self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
