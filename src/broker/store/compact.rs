//! Compaction of a queue's log, so its disk footprint follows the queue's depth.
//!
//! Segments normally go from the front, once the oldest holds no live message. One old
//! message left unacked (or low priorities waiting under a stream of high ones) would
//! then keep every later segment on disk. Compacting a segment S deletes it after
//! writing to the current segment what recovery would otherwise lose with it:
//! 1. every live message whose newest record is in S (a `copy` record, same seq),
//! 2. S's delivered marks of live messages (their `redelivered` flag after a restart),
//! 3. S's settle records of messages an older segment may still hold (else those would
//!    come back after a restart),
//!
//! and fdatasyncing that before the delete. The oldest segment needs only (2), and only
//! once copies exist (before that a live message's records are all newer than it).

use super::live::SegmentLive;
use super::queue_log::{LogTask, QueueLog, segment_path};
use super::segment::{self, ReadOutcome, Record, Segment};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Sealed segments kept without a look: slack, so that segments emptied a little out of
/// order (several consumers, requeues) still go from the front, without copying.
const SLACK_SEGMENTS: usize = 2;
/// Compact once sealed segments hold more than this many records per live message.
pub(super) const DEAD_RATIO: u64 = 4;
/// Compactions per trigger, so that one publish or ack never pays for many segments.
const PER_TRIGGER: usize = 2;

impl QueueLog {
    /// Delete segments from the front while they hold nothing live.
    pub(super) fn drop_settled_segments(&mut self) {
        while let Some((&no, s)) = self.live.segments.first_key_value() {
            if s.live > 0 || no >= self.current.no || s.awaiting_removal {
                break;
            }
            if !s.damaged && !self.live.moved.is_empty() {
                if self.scheduler.is_some() {
                    // Its marks are carried on the store's thread, then it goes.
                    self.schedule_compaction();
                    break;
                }
                if let Err(e) = self.compact(no) {
                    report(&e, no);
                    break;
                }
                if !self.live.segments.contains_key(&no) {
                    continue;
                }
            }
            if self.scheduler.is_some() {
                // Unlinking a 16 MiB file is disk work too: the store's thread does it,
                // outside the queue's lock; the next one goes when it is done.
                self.await_removal(no, false);
                break;
            }
            self.remove_segment(no);
            if self.live.segments.contains_key(&no) {
                break; // could not delete it (reported): next time
            }
        }
    }

    /// Compact the segments most worth it, if the log is past its slack.
    pub(super) fn maybe_compact(&mut self) {
        if self.compacting {
            return;
        }
        if self.scheduler.is_some() {
            if self.pick().is_some() {
                self.schedule_compaction();
            }
            return;
        }
        for _ in 0..PER_TRIGGER {
            let Some(no) = self.pick() else {
                return;
            };
            if let Err(e) = self.compact(no) {
                report(&e, no);
                return;
            }
            self.drop_settled_segments();
        }
    }

    /// A segment emptied behind an older one, else the sparsest when sealed segments are
    /// mostly dead. Only segments that hold publish records are candidates: one holding
    /// marks only frees nothing (its needed marks would just move, and the segment they
    /// fill would be picked next); it goes from the front once older ones are gone.
    fn pick(&self) -> Option<u64> {
        let sealed: Vec<(u64, &SegmentLive)> = self
            .live
            .segments
            .range(..self.current.no)
            .filter(|(_, s)| !s.damaged && !s.awaiting_removal)
            .map(|(&no, s)| (no, s))
            .collect();
        if sealed.len() <= SLACK_SEGMENTS {
            return None;
        }
        if let Some(&(no, _)) = sealed.iter().find(|(_, s)| s.live == 0 && s.records > 0) {
            return Some(no);
        }
        let live: u64 = sealed.iter().map(|(_, s)| s.live).sum();
        let records: u64 = sealed.iter().map(|(_, s)| s.records).sum();
        if records <= live.saturating_mul(DEAD_RATIO) {
            return None;
        }
        sealed
            .iter()
            .filter(|(_, s)| s.records > 0)
            .min_by_key(|(_, s)| s.live.saturating_mul(1 << 20) / s.records)
            .map(|&(no, _)| no)
    }

    /// Move what must outlive segment `no` to the current segment, then delete it. A
    /// segment recovery found damaged is left alone (marked, so it is not picked again).
    fn compact(&mut self, no: u64) -> io::Result<()> {
        if no >= self.current.no {
            return Ok(());
        }
        if self.live.segments.get(&no).is_some_and(|s| s.live == 0) {
            if self.carry_marks(no)? {
                self.current.file.sync_data()?;
            }
            self.remove_segment(no);
            return Ok(());
        }
        let path = segment_path(&self.dir, no);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.remove_segment(no);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let found = segment::read_records(&data);
        if found.torn_tail || !found.corrupt.is_empty() {
            if let Some(s) = self.live.segments.get_mut(&no) {
                s.damaged = true;
            }
            return Ok(());
        }
        self.compacting = true;
        let written = self.move_out(no, &data, &found.records);
        self.compacting = false;
        for seg in written? {
            seg.file.sync_data()?;
        }
        self.remove_segment(no);
        Ok(())
    }

    /// Compaction of an emptied segment (nothing live in it), from memory alone: of what
    /// the module comment lists only marks of other segments' messages can be needed
    /// (a live message or a settle record of its own would make it non-empty), and the
    /// segment's liveness keeps those. Appends the ones still needed; whether any were.
    fn carry_marks(&mut self, no: u64) -> io::Result<bool> {
        let marks: Vec<(u64, bool)> = match self.live.segments.get(&no) {
            Some(s) => s.others().collect(),
            None => return Ok(false),
        };
        let mut out = Vec::new();
        let mut carried = Vec::new();
        for (seq, settled) in marks {
            let needed = if settled {
                self.live.held_before(seq, no)
            } else {
                self.live.is_live(seq)
            };
            if needed {
                segment::encode_mark(&mut out, settled, seq);
                carried.push((seq, settled));
            }
        }
        if out.is_empty() {
            return Ok(false);
        }
        self.compacting = true;
        let written = self.append(&out);
        self.compacting = false;
        let (to, _, _) = written?;
        let seg = self.live.segments.entry(to).or_default();
        for (seq, settled) in carried {
            seg.mark(seq, settled);
        }
        Ok(true)
    }

    /// Steps 1–3 of the module comment; returns the segments written to.
    fn move_out(
        &mut self,
        no: u64,
        data: &[u8],
        records: &[(u64, Record)],
    ) -> io::Result<Vec<Arc<Segment>>> {
        let mut written: Vec<Arc<Segment>> = Vec::new();
        let mut out = Vec::new();
        for (offset, record) in records {
            out.clear();
            match record {
                Record::Publish(p) | Record::Copy(p) => {
                    let newest_here = match self.live.moved.get(&p.seq) {
                        Some(&(s, o)) => s == no && o == *offset,
                        None => {
                            matches!(record, Record::Publish(_))
                                && self.live.segments.get(&no).is_some_and(|s| s.is_set(p.seq))
                        }
                    };
                    if !newest_here {
                        continue;
                    }
                    segment::encode_copy(&mut out, segment::record_body(data, *offset));
                    let (to, at, _) = self.append(&out)?;
                    if let Some(s) = self.live.segments.get_mut(&no)
                        && !s.clear(p.seq)
                    {
                        s.copy_gone();
                    }
                    self.live.segments.entry(to).or_default().copy(p.seq, true);
                    self.live.moved.insert(p.seq, (to, at));
                }
                Record::Delivered(seq) if self.live.is_live(*seq) => {
                    segment::encode_mark(&mut out, false, *seq);
                    let (to, _, _) = self.append(&out)?;
                    self.live.segments.entry(to).or_default().mark(*seq, false);
                }
                Record::Settled(seq) if self.live.held_before(*seq, no) => {
                    segment::encode_mark(&mut out, true, *seq);
                    let (to, _, _) = self.append(&out)?;
                    self.live.segments.entry(to).or_default().mark(*seq, true);
                }
                Record::Delivered(_) | Record::Settled(_) => continue,
            }
            if written.last().is_none_or(|s| s.no != self.current.no) {
                written.push(self.current.clone());
            }
        }
        Ok(written)
    }

    /// Queue a `LogTask::Compact` unless one is waiting already.
    fn schedule_compaction(&mut self) {
        if self.compaction_scheduled {
            return;
        }
        if let Some(s) = &self.scheduler {
            self.compaction_scheduled = true;
            (s.0)(LogTask::Compact);
        }
    }

    /// `LogTask::Compact`, step 1 (under the queue's lock): the segment to compact — the
    /// oldest when it only waits for its marks to be carried, else the one `pick`
    /// chooses. An emptied one is compacted here and now, from memory (`carry_marks`: a
    /// few marks at most); one still holding live messages is returned with its path, to
    /// be read and parsed outside the lock.
    pub(crate) fn plan_compaction(&mut self) -> Option<(u64, PathBuf)> {
        self.compaction_scheduled = false;
        let front = self
            .live
            .segments
            .first_key_value()
            .filter(|(no, s)| {
                s.live == 0
                    && **no < self.current.no
                    && !s.damaged
                    && !s.awaiting_removal
                    && !self.live.moved.is_empty()
            })
            .map(|(&no, _)| no);
        let no = front.or_else(|| self.pick())?;
        if self.live.segments.get(&no).is_some_and(|s| s.live == 0) {
            match self.carry_marks(no) {
                Ok(carried) => self.await_removal(no, carried),
                Err(e) => report(&e, no),
            }
            self.maybe_compact();
            return None;
        }
        Some((no, segment_path(&self.dir, no)))
    }

    /// `LogTask::Compact`, step 3 (under the lock again): move out what must outlive
    /// segment `no`, read and parsed (step 2) outside the lock. The segment is deleted
    /// once the copies are synced (`LogTask::Remove`).
    pub(crate) fn apply_compaction(&mut self, no: u64, read: io::Result<(Vec<u8>, ReadOutcome)>) {
        let known = self
            .live
            .segments
            .get(&no)
            .is_some_and(|s| !s.awaiting_removal && !s.damaged);
        if !known || no >= self.current.no {
            return;
        }
        let (data, found) = match read {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.remove_segment(no);
                return;
            }
            Err(e) => {
                report(&e, no);
                return;
            }
        };
        if found.torn_tail || !found.corrupt.is_empty() {
            if let Some(s) = self.live.segments.get_mut(&no) {
                s.damaged = true;
            }
            return;
        }
        self.compacting = true;
        let written = self.move_out(no, &data, &found.records);
        self.compacting = false;
        match written {
            Err(e) => report(&e, no),
            Ok(written) => self.await_removal(no, !written.is_empty()),
        }
        self.maybe_compact();
    }

    /// Segment `no` goes on the store's thread (`LogTask::Remove`): at once, or once the
    /// round that syncs what was just copied out of it has run. Until then it is still
    /// what recovery reads, and is known as such.
    fn await_removal(&mut self, no: u64, after_sync: bool) {
        let Some(s) = self.scheduler.clone() else {
            return;
        };
        match self.live.segments.get_mut(&no) {
            Some(seg) if !seg.awaiting_removal => seg.awaiting_removal = true,
            _ => return,
        }
        if after_sync {
            // The copies were registered dirty before this: the round that runs this
            // callback has synced them.
            self.syncer.after_sync(Box::new(move |synced| {
                if synced.is_ok() {
                    (s.0)(LogTask::Remove(no));
                }
            }));
        } else {
            (s.0)(LogTask::Remove(no));
        }
    }

    /// `LogTask::Remove`, step 1 (under the lock): the path to unlink, if segment `no`
    /// still waits for it.
    pub(crate) fn removal(&self, no: u64) -> Option<PathBuf> {
        self.live
            .segments
            .get(&no)
            .is_some_and(|s| s.awaiting_removal)
            .then(|| segment_path(&self.dir, no))
    }

    /// `LogTask::Remove`, step 3 (under the lock): the unlink (step 2) is done; what it
    /// freed lets the next segments go.
    pub(crate) fn removed(&mut self, no: u64, unlinked: io::Result<()>) {
        self.forget_segment(no, unlinked);
        self.drop_settled_segments();
        self.maybe_compact();
    }

    fn remove_segment(&mut self, no: u64) {
        #[cfg(test)]
        if self.crashed || self.crash_at_remove == Some(no) {
            self.crashed = true;
            self.live.segments.remove(&no);
            return;
        }
        let unlinked = fs::remove_file(segment_path(&self.dir, no));
        self.forget_segment(no, unlinked);
    }

    /// After the unlink of segment `no`: forget it, or, when it is still on disk, keep
    /// knowing it (it is still what recovery reads: older segments' settle records are
    /// carried while it may hold their messages) and try again once it is the oldest.
    fn forget_segment(&mut self, no: u64, unlinked: io::Result<()>) {
        match unlinked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                report(&e, no);
                if let Some(s) = self.live.segments.get_mut(&no) {
                    s.damaged = true;
                    s.awaiting_removal = false;
                }
                return;
            }
        }
        self.live.segments.remove(&no);
        self.readers.remove(&no);
    }
}

fn report(e: &io::Error, no: u64) {
    tracing::error!("cannot compact segment {no} of a queue log: {e}");
}
