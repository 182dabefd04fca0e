//! A queue's ready messages: one FIFO lane, or one lane per priority for
//! `x-max-priority` queues (highest first, FIFO within a priority). Requeued messages go
//! back to their original position by sequence number.

use crate::broker::model::message::MessageRef;
use crate::broker::model::queue::Entry;
use std::collections::VecDeque;

/// Ready messages in delivery order.
#[derive(Debug, Default)]
pub(crate) struct Ready {
    /// lanes[p] holds priority p; a plain queue has a single lane.
    lanes: Vec<VecDeque<Entry>>,
    /// Messages in all lanes.
    len: usize,
    /// Body bytes in all lanes (x-max-length-bytes).
    bytes: u64,
    /// Body bytes held in memory (the rest is paged out to the queue's log).
    resident: u64,
}

impl Ready {
    /// `max_priority` None: one lane.
    pub(crate) fn new(max_priority: Option<u8>) -> Ready {
        let n = max_priority.map_or(1, |p| usize::from(p) + 1);
        Ready {
            lanes: (0..n).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: 0,
            resident: 0,
        }
    }

    fn lane_of(&self, e: &Entry) -> usize {
        if self.lanes.len() == 1 {
            return 0;
        }
        // A priority above the maximum counts as the maximum (RabbitMQ).
        usize::from(e.priority).min(self.lanes.len() - 1)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn resident(&self) -> u64 {
        self.resident
    }

    fn count_in(&mut self, e: &Entry) {
        self.len += 1;
        self.bytes += u64::from(e.size);
        if e.msg.is_some() {
            self.resident += u64::from(e.size);
        }
    }

    fn count_out(&mut self, e: &Entry) {
        self.len -= 1;
        self.bytes -= u64::from(e.size);
        if e.msg.is_some() {
            self.resident -= u64::from(e.size);
        }
    }

    /// The head was loaded from disk: keep it in memory until it is delivered.
    pub(crate) fn set_front_msg(&mut self, msg: MessageRef) {
        let lane = self.lanes.iter_mut().rev().find(|l| !l.is_empty());
        if let Some(e) = lane.and_then(|l| l.front_mut())
            && e.msg.is_none()
        {
            self.resident += u64::from(e.size);
            e.msg = Some(msg);
        }
    }

    pub(crate) fn push_back(&mut self, e: Entry) {
        let lane = self.lane_of(&e);
        self.count_in(&e);
        self.lanes[lane].push_back(e);
    }

    /// Put a requeued entry back where its sequence number says.
    pub(crate) fn insert_requeued(&mut self, e: Entry) {
        let lane = self.lane_of(&e);
        self.count_in(&e);
        let l = &mut self.lanes[lane];
        let pos = l.partition_point(|r| r.seq < e.seq);
        l.insert(pos, e);
    }

    /// The next message to deliver.
    pub(crate) fn front(&self) -> Option<&Entry> {
        self.lanes.iter().rev().find_map(|l| l.front())
    }

    pub(crate) fn pop_front(&mut self) -> Option<Entry> {
        let e = self.lanes.iter_mut().rev().find_map(|l| l.pop_front())?;
        self.count_out(&e);
        Some(e)
    }

    /// Remove everything.
    pub(crate) fn drain(&mut self) -> Vec<Entry> {
        self.len = 0;
        self.bytes = 0;
        self.resident = 0;
        self.lanes.iter_mut().flat_map(|l| l.drain(..)).collect()
    }
}
