//! Segment files: append-only records `len:u32 | crc32:u32 | body`, so a torn or
//! corrupted record is recognised on recovery instead of being read as data.
//!
//! Record bodies: `1` publish (seq, expiry, routing, raw content header, body),
//! `2` delivered (seq), `3` settled (seq: acked, rejected, expired, dropped), `4` copy
//! (a publish record moved out of a segment being compacted; same layout as `1`).

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

const PUBLISH: u8 = 1;
const DELIVERED: u8 = 2;
const SETTLED: u8 = 3;
const COPY: u8 = 4;
/// Record header: length and CRC.
const HEAD: usize = 8;

/// An open segment file of a queue.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Position in the queue's log: segments are read back in this order.
    pub(crate) no: u64,
    pub(crate) file: File,
    /// Written since the last fdatasync: the sync thread must flush it.
    pub(crate) dirty: AtomicBool,
}

impl Segment {
    /// Mark dirty; returns true when it was clean (the caller registers it for sync).
    pub(crate) fn mark_dirty(&self) -> bool {
        !self.dirty.swap(true, Ordering::AcqRel)
    }
}

/// A published message as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredPublish {
    pub(crate) seq: u64,
    /// Absolute expiry in Unix milliseconds, 0 for none.
    pub(crate) expires_unix_ms: u64,
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    pub(crate) cc: Vec<String>,
    pub(crate) bcc: Vec<String>,
    /// The content header payload exactly as delivered.
    pub(crate) header: Vec<u8>,
    pub(crate) body: Vec<u8>,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    Publish(StoredPublish),
    /// A live message relocated by compaction: the newest record of a seq wins.
    Copy(StoredPublish),
    Delivered(u64),
    Settled(u64),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(255)];
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

fn put_strs(out: &mut Vec<u8>, v: &[String]) {
    out.extend_from_slice(&(v.len().min(u16::MAX as usize) as u16).to_be_bytes());
    for s in v.iter().take(u16::MAX as usize) {
        put_str(out, s);
    }
}

fn begin(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0u8; HEAD]);
    at
}

fn finish(out: &mut [u8], at: usize) {
    let body = &out[at + HEAD..];
    let len = body.len() as u32;
    let crc = crc32fast::hash(body);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    out[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Append an encoded publish record to `out`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_publish(
    out: &mut Vec<u8>,
    seq: u64,
    expires_unix_ms: u64,
    exchange: &str,
    routing_key: &str,
    cc: &[String],
    bcc: &[String],
    header: &[u8],
    body: &[u8],
) {
    let at = begin(out);
    out.push(PUBLISH);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&expires_unix_ms.to_be_bytes());
    put_str(out, exchange);
    put_str(out, routing_key);
    put_strs(out, cc);
    put_strs(out, bcc);
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    finish(out, at);
}

/// Append a copy of a publish (or copy) record, given that record's body.
pub(crate) fn encode_copy(out: &mut Vec<u8>, publish_body: &[u8]) {
    let at = begin(out);
    out.push(COPY);
    out.extend_from_slice(publish_body.get(1..).unwrap_or_default());
    finish(out, at);
}

/// The body of the record starting at `offset` of a segment's bytes (as `read_records`
/// found it, so it is complete).
pub(crate) fn record_body(data: &[u8], offset: u64) -> &[u8] {
    let at = offset as usize;
    let len = data
        .get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    data.get(at + HEAD..at + HEAD + len).unwrap_or_default()
}

/// Append a delivered or settled record for `seq`.
pub(crate) fn encode_mark(out: &mut Vec<u8>, settled: bool, seq: u64) {
    let at = begin(out);
    out.push(if settled { SETTLED } else { DELIVERED });
    out.extend_from_slice(&seq.to_be_bytes());
    finish(out, at);
}

/// A little cursor over a record body; every read is checked.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::from(self.u8()?);
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.u16()?;
        (0..n).map(|_| self.string()).collect()
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        self.take(n).map(<[u8]>::to_vec)
    }
}

fn decode_body(body: &[u8]) -> Option<Record> {
    let mut c = Cursor(body);
    let kind = c.u8()?;
    let record = match kind {
        PUBLISH | COPY => {
            let p = StoredPublish {
                seq: c.u64()?,
                expires_unix_ms: c.u64()?,
                exchange: c.string()?,
                routing_key: c.string()?,
                cc: c.strings()?,
                bcc: c.strings()?,
                header: c.bytes()?,
                body: c.bytes()?,
            };
            if kind == COPY {
                Record::Copy(p)
            } else {
                Record::Publish(p)
            }
        }
        DELIVERED => Record::Delivered(c.u64()?),
        SETTLED => Record::Settled(c.u64()?),
        _ => return None,
    };
    c.0.is_empty().then_some(record)
}

/// What reading a segment found.
#[derive(Debug, Default)]
pub(crate) struct ReadOutcome {
    /// Records with the offset each starts at.
    pub(crate) records: Vec<(u64, Record)>,
    /// Length of the valid prefix: a torn tail starts here.
    pub(crate) valid_len: u64,
    /// An incomplete record at the very end (a write cut short by a crash).
    pub(crate) torn_tail: bool,
    /// Complete records whose checksum or contents were wrong: (offset, length), skipped.
    pub(crate) corrupt: Vec<(u64, u64)>,
}

/// Decode every record of a segment's bytes. A record that does not fit in what is left
/// is a torn tail; a complete record with a bad checksum is skipped and reported, and
/// reading goes on after it.
pub(crate) fn read_records(data: &[u8]) -> ReadOutcome {
    let mut out = ReadOutcome::default();
    let mut at = 0usize;
    while at < data.len() {
        let rest = &data[at..];
        if rest.len() < HEAD {
            out.torn_tail = true;
            break;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if rest.len() < HEAD + len {
            out.torn_tail = true;
            break;
        }
        let body = &rest[HEAD..HEAD + len];
        match (crc32fast::hash(body) == crc)
            .then(|| decode_body(body))
            .flatten()
        {
            Some(r) => out.records.push((at as u64, r)),
            None => out.corrupt.push((at as u64, (HEAD + len) as u64)),
        }
        at += HEAD + len;
        if out.corrupt.is_empty() {
            out.valid_len = at as u64;
        }
    }
    if out.corrupt.is_empty() && !out.torn_tail {
        out.valid_len = data.len() as u64;
    }
    out
}

/// Read the publish record at `offset` of `file` (a paged-out message).
pub(crate) fn read_publish_at(file: &std::fs::File, offset: u64) -> io::Result<StoredPublish> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; HEAD];
    file.read_exact_at(&mut head, offset)?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let mut body = vec![0u8; len];
    file.read_exact_at(&mut body, offset + HEAD as u64)?;
    if crc32fast::hash(&body) != crc {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("checksum mismatch at offset {offset}"),
        ));
    }
    match decode_body(&body) {
        Some(Record::Publish(p) | Record::Copy(p)) => Ok(p),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no publish record at offset {offset}"),
        )),
    }
}

/// Append bytes to a segment file (no sync: the sync thread does that).
pub(crate) fn append(seg: &Segment, bytes: &[u8]) -> io::Result<()> {
    (&seg.file).write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        encode_publish(
            &mut v,
            7,
            0,
            "x",
            "rk",
            &["cc".into()],
            &[],
            b"HDR",
            b"body",
        );
        encode_mark(&mut v, false, 7);
        encode_mark(&mut v, true, 7);
        v
    }

    #[test]
    fn records_round_trip() {
        let r = read_records(&sample());
        assert_eq!(r.records.len(), 3);
        assert!(!r.torn_tail && r.corrupt.is_empty());
        match &r.records[0].1 {
            Record::Publish(p) => {
                assert_eq!(
                    (p.seq, p.routing_key.as_str(), &p.body[..]),
                    (7, "rk", &b"body"[..])
                );
                assert_eq!(p.cc, vec!["cc".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.records[2].1, Record::Settled(7));
    }

    #[test]
    fn a_copy_reads_back_as_the_same_message() {
        let data = sample();
        let mut copy = Vec::new();
        encode_copy(&mut copy, record_body(&data, 0));
        let r = read_records(&copy);
        match (&read_records(&data).records[0].1, &r.records[0].1) {
            (Record::Publish(a), Record::Copy(b)) => assert_eq!(a, b),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_torn_tail_is_found_at_every_cut() {
        let full = sample();
        for cut in 1..full.len() {
            let r = read_records(&full[..cut]);
            assert!(r.corrupt.is_empty(), "cut {cut}");
            assert!(r.valid_len <= cut as u64);
        }
    }

    #[test]
    fn a_flipped_byte_is_reported_and_skipped() {
        let mut data = sample();
        data[HEAD + 3] ^= 0xff; // inside the first record's body
        let r = read_records(&data);
        assert_eq!(r.corrupt.len(), 1);
        let records: Vec<Record> = r.records.into_iter().map(|(_, r)| r).collect();
        assert_eq!(records, vec![Record::Delivered(7), Record::Settled(7)]);
    }
}
