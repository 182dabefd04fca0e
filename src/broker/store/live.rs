//! What a queue log knows of each segment without reading it: which of the messages
//! published into it are still live (one bit per seq of its publish range), which live
//! messages were copied into it by compaction, and how many records it holds. This is
//! what lets compaction pick segments and tell a live record from a dead one.

use std::collections::{BTreeMap, HashMap, HashSet};

/// One segment's liveness.
#[derive(Debug, Default)]
pub(crate) struct SegmentLive {
    /// Seq of the first message published into the segment; bit 0 of `bits`.
    first: u64,
    /// One past the last seq published into it (`first` when none was).
    end: u64,
    /// Live bits of the publish range (transient messages of the queue leave gaps).
    bits: Vec<u64>,
    /// Live messages whose newest record is here: set bits plus live copies.
    pub(crate) live: u64,
    /// Publish and copy records in the segment, live or not.
    pub(crate) records: u64,
    /// Seqs of every copy written into it, live or not: settle records for them must be
    /// kept while the segment exists.
    copied_in: HashSet<u64>,
    /// Recovery found damage in it: compaction leaves it alone (it goes from the front).
    pub(crate) damaged: bool,
}

impl SegmentLive {
    /// A message published (not copied) into this segment, in seq order.
    pub(crate) fn publish(&mut self, seq: u64) {
        if self.first == self.end {
            self.first = seq;
            self.bits.clear();
        }
        self.end = self.end.max(seq + 1);
        self.records += 1;
        self.set(seq);
    }

    fn set(&mut self, seq: u64) {
        let Some(i) = seq.checked_sub(self.first) else {
            return;
        };
        let word = (i / 64) as usize;
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << (i % 64)) == 0 {
            self.bits[word] |= 1 << (i % 64);
            self.live += 1;
        }
    }

    /// A publish record of this segment that is not live (recovery: it was settled or
    /// copied elsewhere); it still widens the publish range.
    pub(crate) fn dead_publish(&mut self, seq: u64) {
        if self.first == self.end {
            self.first = seq;
        }
        self.first = self.first.min(seq);
        self.end = self.end.max(seq + 1);
        self.records += 1;
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
        seq.checked_sub(self.first).is_some_and(|i| {
            self.bits
                .get((i / 64) as usize)
                .is_some_and(|w| w & (1 << (i % 64)) != 0)
        })
    }

    /// Clear `seq`'s bit; true when it was set.
    pub(crate) fn clear(&mut self, seq: u64) -> bool {
        if !self.is_set(seq) {
            return false;
        }
        let i = seq - self.first;
        self.bits[(i / 64) as usize] &= !(1 << (i % 64));
        self.live = self.live.saturating_sub(1);
        true
    }

    /// Could the segment hold a record (publish or copy) of `seq`?
    pub(crate) fn may_hold(&self, seq: u64) -> bool {
        (self.first <= seq && seq < self.end) || self.copied_in.contains(&seq)
    }

    /// Recovery: `seq`, whose publish record here was passed to `dead_publish`, is live.
    pub(crate) fn set_recovered(&mut self, seq: u64) {
        self.set(seq);
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
    fn bits_follow_publishes_and_clears() {
        let mut s = SegmentLive::default();
        for seq in [10, 11, 75, 200] {
            s.publish(seq);
        }
        assert_eq!((s.live, s.records), (4, 4));
        assert!(s.is_set(75) && !s.is_set(12) && !s.is_set(9));
        assert!(s.clear(75) && !s.clear(75));
        assert_eq!(s.live, 3);
        assert!(s.may_hold(12) && s.may_hold(200) && !s.may_hold(201) && !s.may_hold(9));
        s.copy(3, true);
        assert!(s.may_hold(3));
        assert_eq!((s.live, s.records), (4, 5));
    }

    #[test]
    fn recovered_bits_keep_the_whole_publish_range() {
        let mut s = SegmentLive::default();
        for seq in [5, 6, 7, 8] {
            s.dead_publish(seq);
        }
        s.set_recovered(6);
        assert_eq!((s.live, s.records), (1, 4));
        assert!(s.is_set(6) && !s.is_set(5) && !s.is_set(8));
        assert!(s.may_hold(5) && s.may_hold(8));
    }
}
