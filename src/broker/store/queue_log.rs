//! One durable queue's message log: persistent messages and what became of them, in
//! numbered segment files. A segment is deleted once it and every older one hold no
//! live message: deleting from the front only means a settle record is never lost while
//! the message it settles still exists on disk.

use super::segment::{self, Segment};
use super::sync::Syncer;
use crate::broker::message::Message;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Start a new segment past this size.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// The open log of a queue (lives inside the queue's state, under its lock).
#[derive(Debug)]
pub(crate) struct QueueLog {
    dir: PathBuf,
    syncer: Arc<Syncer>,
    current: Arc<Segment>,
    /// Bytes in the current segment.
    size: u64,
    /// Live (unsettled) messages per segment, oldest first.
    live: BTreeMap<u64, u64>,
    /// Encoding scratch, reused.
    buf: Vec<u8>,
}

pub(crate) fn segment_path(dir: &Path, no: u64) -> PathBuf {
    dir.join(format!("{no:016}.seg"))
}

fn open_segment(dir: &Path, no: u64) -> io::Result<Arc<Segment>> {
    let path = segment_path(dir, no);
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    Ok(Arc::new(Segment {
        no,
        file,
        dirty: AtomicBool::new(false),
    }))
}

impl QueueLog {
    /// Open a log in `dir` whose segments up to `next_segment - 1` exist with `live` counts.
    pub(crate) fn open(
        dir: PathBuf,
        syncer: Arc<Syncer>,
        next_segment: u64,
        live: BTreeMap<u64, u64>,
    ) -> io::Result<QueueLog> {
        fs::create_dir_all(&dir)?;
        let current = open_segment(&dir, next_segment)?;
        let mut live = live;
        live.insert(next_segment, 0);
        let mut log = QueueLog {
            dir,
            syncer,
            current,
            size: 0,
            live,
            buf: Vec::with_capacity(4096),
        };
        log.drop_settled_segments();
        Ok(log)
    }

    fn write(&mut self) -> io::Result<()> {
        if self.size >= SEGMENT_BYTES {
            let next = self.current.no + 1;
            self.current = open_segment(&self.dir, next)?;
            self.live.insert(next, 0);
            self.size = 0;
        }
        segment::append(&self.current, &self.buf)?;
        self.size += self.buf.len() as u64;
        self.buf.clear();
        if self.current.mark_dirty() {
            self.syncer.dirty(self.current.clone());
        }
        Ok(())
    }

    /// Persist a message; returns the segment it went to.
    pub(crate) fn publish(
        &mut self,
        seq: u64,
        msg: &Message,
        expires_unix_ms: u64,
    ) -> io::Result<u64> {
        segment::encode_publish(
            &mut self.buf,
            seq,
            expires_unix_ms,
            &msg.exchange,
            &msg.routing_key,
            &msg.cc,
            &msg.bcc,
            &msg.header,
            &msg.body,
        );
        self.write()?;
        // After write(): the record may have opened a new segment.
        let no = self.current.no;
        *self.live.entry(no).or_insert(0) += 1;
        Ok(no)
    }

    /// The message was delivered (recovery marks it redelivered).
    pub(crate) fn delivered(&mut self, seq: u64) -> io::Result<()> {
        segment::encode_mark(&mut self.buf, false, seq);
        self.write()
    }

    /// The message left the queue for good (acked, rejected, expired, dropped, purged).
    pub(crate) fn settled(&mut self, seq: u64, segment_no: u64) -> io::Result<()> {
        segment::encode_mark(&mut self.buf, true, seq);
        self.write()?;
        if let Some(n) = self.live.get_mut(&segment_no) {
            *n = n.saturating_sub(1);
        }
        self.drop_settled_segments();
        Ok(())
    }

    /// Delete segments from the front while they hold nothing live.
    fn drop_settled_segments(&mut self) {
        while let Some((&no, &n)) = self.live.first_key_value() {
            if n > 0 || no >= self.current.no {
                break;
            }
            self.live.remove(&no);
            // A failed delete only costs disk space; recovery skips settled records.
            let _ = fs::remove_file(segment_path(&self.dir, no));
        }
    }

    /// The queue was deleted: remove its files.
    pub(crate) fn destroy(&self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
