//! What a queue log knows of each segment without reading it: which of the messages
//! published into it are still live (a flag per publish record), which live messages
//! were copied into it by compaction, and how many records it holds. This is
//! what lets compaction pick segments and tell a live record from a dead one.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Set in `SegmentLive::others` for a delivered mark (seqs stay far below 2^63).
const DELIVERED_MARK: u64 = 1 << 63;

/// One segment's liveness.
#[derive(Debug, Default)]
pub(crate) struct SegmentLive {
    /// Seqs of the messages published (not copied) into it, ascending. Indexed by
    /// record rather than by seq: a queue's transient messages take seqs too, so a seq
    /// range could be far wider than the segment.
    seqs: Vec<u64>,
    /// Whether each of `seqs` is still live.
    flags: Vec<bool>,
    /// Live messages whose newest record is here: live publishes plus live copies.
    pub(crate) live: u64,
    /// Publish and copy records in the segment, live or not.
    pub(crate) records: u64,
    /// Seqs of every copy written into it, live or not: settle records for them must be
    /// kept while the segment exists.
    copied_in: HashSet<u64>,
    /// Marks written here for messages with no record here (seq, with `DELIVERED_MARK`
    /// set for a delivered mark): all that compaction may have to carry out of the segment
    /// once nothing live is left in it, so an emptied segment is compacted without
    /// reading it. A stream's marks mostly follow their publish into the same segment, so
    /// this holds the few that crossed a segment boundary.
    others: Vec<u64>,
    /// Recovery found damage in it: compaction leaves it alone (it goes from the front).
    pub(crate) damaged: bool,
    /// Compacted on the store's thread: what it held was copied forward, and it is
    /// deleted once those copies are synced (until then it is what recovery reads).
    pub(crate) awaiting_removal: bool,
}

impl SegmentLive {
    /// Where `seq` is or would go in `seqs`. Publishes come in seq order, so this is
    /// nearly always the end.
    fn slot(&self, seq: u64) -> Result<usize, usize> {
        match self.seqs.last() {
            Some(&last) if last < seq => Err(self.seqs.len()),
            None => Err(0),
            _ => self.seqs.binary_search(&seq),
        }
    }

    fn add(&mut self, seq: u64, live: bool) {
        self.records += 1;
        match self.slot(seq) {
            Ok(i) => {
                if live && !self.flags[i] {
                    self.flags[i] = true;
                    self.live += 1;
                }
            }
            Err(i) => {
                self.seqs.insert(i, seq);
                self.flags.insert(i, live);
                if live {
                    self.live += 1;
                }
            }
        }
    }

    /// A message published (not copied) into this segment.
    pub(crate) fn publish(&mut self, seq: u64) {
        self.add(seq, true);
    }

    /// Recovery: a publish record of this segment, not (yet) known to be live.
    pub(crate) fn dead_publish(&mut self, seq: u64) {
        self.add(seq, false);
    }

    /// A copy written into this segment; `live` when it is the message's newest record.
    pub(crate) fn copy(&mut self, seq: u64, live: bool) {
        self.copied_in.insert(seq);
        self.records += 1;
        if live {
            self.live += 1;
        }
    }

    /// Is `seq`'s publish record here and live?
    pub(crate) fn is_set(&self, seq: u64) -> bool {
        self.slot(seq).is_ok_and(|i| self.flags[i])
    }

    /// Mark `seq`'s publish record dead; true when it was live.
    pub(crate) fn clear(&mut self, seq: u64) -> bool {
        match self.slot(seq) {
            Ok(i) if self.flags[i] => {
                self.flags[i] = false;
                self.live = self.live.saturating_sub(1);
                true
            }
            _ => false,
        }
    }

    /// Does the segment hold a record (publish or copy) of `seq`?
    pub(crate) fn may_hold(&self, seq: u64) -> bool {
        self.slot(seq).is_ok() || self.copied_in.contains(&seq)
    }

    /// A mark (settled or delivered) of `seq` was written here.
    pub(crate) fn mark(&mut self, seq: u64, settled: bool) {
        if !self.may_hold(seq) {
            self.others
                .push(if settled { seq } else { seq | DELIVERED_MARK });
        }
    }

    /// The marks written here for messages with no record here: (seq, settled).
    pub(crate) fn others(&self) -> impl Iterator<Item = (u64, bool)> + '_ {
        self.others
            .iter()
            .map(|&m| (m & !DELIVERED_MARK, m & DELIVERED_MARK == 0))
    }

    /// Recovery: `seq`, whose publish record here was passed to `dead_publish`, is live.
    pub(crate) fn set_recovered(&mut self, seq: u64) {
        if let Ok(i) = self.slot(seq)
            && !self.flags[i]
        {
            self.flags[i] = true;
            self.live += 1;
        }
    }

    /// Recovery: the copy of `seq` here is its newest record and it is live.
    pub(crate) fn copy_recovered_live(&mut self) {
        self.live += 1;
    }

    /// Drop one live copy (settled or moved on).
    pub(crate) fn copy_gone(&mut self) {
        self.live = self.live.saturating_sub(1);
    }
}

/// The liveness of a whole log: segments by number, and where live copies are.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    pub(crate) segments: BTreeMap<u64, SegmentLive>,
    /// Live messages that were copied by compaction: seq → (segment, offset) of the copy.
    /// Entries in queues still name the original place; reads and settles look here first.
    pub(crate) moved: HashMap<u64, (u64, u64)>,
}

impl Liveness {
    /// Is `seq` live (not settled) anywhere in the log?
    pub(crate) fn is_live(&self, seq: u64) -> bool {
        self.moved.contains_key(&seq) || self.segments.values().any(|s| s.is_set(seq))
    }

    /// Might a segment older than `no` still hold a record of `seq`?
    pub(crate) fn held_before(&self, seq: u64, no: u64) -> bool {
        self.segments.range(..no).any(|(_, s)| s.may_hold(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_publishes_and_clears() {
        let mut s = SegmentLive::default();
        // Wide gaps (transient messages between) cost nothing.
        for seq in [10, 11, 75, 2_000_000_000] {
            s.publish(seq);
        }
        assert_eq!((s.live, s.records), (4, 4));
        assert!(s.is_set(75) && !s.is_set(12) && !s.is_set(9));
        assert!(s.clear(75) && !s.clear(75));
        assert_eq!(s.live, 3);
        assert!(s.may_hold(75) && s.may_hold(2_000_000_000) && !s.may_hold(12));
        s.copy(3, true);
        assert!(s.may_hold(3));
        assert_eq!((s.live, s.records), (4, 5));
        assert!(s.seqs.capacity() < 64);
    }

    #[test]
    fn only_marks_of_messages_held_elsewhere_are_kept() {
        let mut s = SegmentLive::default();
        s.publish(10);
        s.copy(3, true);
        s.mark(10, false);
        s.mark(10, true);
        s.mark(3, true);
        s.mark(7, false);
        s.mark(8, true);
        assert_eq!(s.others().collect::<Vec<_>>(), vec![(7, false), (8, true)]);
    }

    #[test]
    fn recovery_marks_the_live_ones_among_the_publishes() {
        let mut s = SegmentLive::default();
        for seq in [5, 6, 7, 8] {
            s.dead_publish(seq);
        }
        s.set_recovered(6);
        s.set_recovered(6);
        assert_eq!((s.live, s.records), (1, 4));
        assert!(s.is_set(6) && !s.is_set(5) && !s.is_set(8));
        assert!(s.may_hold(5) && s.may_hold(8) && !s.may_hold(9));
    }
}
