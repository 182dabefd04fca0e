//! A queue's ready messages: one FIFO lane, or one lane per priority for
//! `x-max-priority` queues (highest first, FIFO within a priority). Requeued messages go
//! back to their original position by sequence number.

use super::queue::Entry;
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
}

impl Ready {
    /// `max_priority` None: one lane.
    pub(crate) fn new(max_priority: Option<u8>) -> Ready {
        let n = max_priority.map_or(1, |p| usize::from(p) + 1);
        Ready {
            lanes: (0..n).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: 0,
        }
    }

    fn lane_of(&self, e: &Entry) -> usize {
        if self.lanes.len() == 1 {
            return 0;
        }
        // A priority above the maximum counts as the maximum (RabbitMQ).
        usize::from(e.msg.properties.priority().unwrap_or(0)).min(self.lanes.len() - 1)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn push_back(&mut self, e: Entry) {
        let lane = self.lane_of(&e);
        self.len += 1;
        self.bytes += e.msg.body.len() as u64;
        self.lanes[lane].push_back(e);
    }

    /// Put a requeued entry back where its sequence number says.
    pub(crate) fn insert_requeued(&mut self, e: Entry) {
        let lane = self.lane_of(&e);
        self.len += 1;
        self.bytes += e.msg.body.len() as u64;
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
        self.len -= 1;
        self.bytes -= e.msg.body.len() as u64;
        Some(e)
    }

    /// Remove everything.
    pub(crate) fn drain(&mut self) -> Vec<Entry> {
        self.len = 0;
        self.bytes = 0;
        self.lanes.iter_mut().flat_map(|l| l.drain(..)).collect()
    }
}
