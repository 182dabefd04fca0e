//! A queue: ready messages in order, consumers served round-robin while they have credit,
//! requeued messages back at their original position (by sequence number).
//!
//! Lock order: a queue's state, then a channel's delivery state (see `channel.rs`);
//! never the other way round, and no lock is held across an `.await`.

use super::channel::{ChannelShared, ConsumerCredit};
use super::message::MessageRef;
use amq_protocol::types::FieldTable;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// A message in a queue, with what the queue knows about its past.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The shared message.
    pub(crate) msg: MessageRef,
    /// Set once the message was delivered and came back (AMQP `redelivered`).
    pub(crate) redelivered: bool,
    /// Position in the queue's history: requeue puts a message back where it was.
    pub(crate) seq: u64,
}

/// A consumer attached to a queue.
#[derive(Debug, Clone)]
pub(crate) struct Consumer {
    /// Consumer tag, unique per channel.
    pub(crate) tag: Arc<str>,
    /// The channel deliveries go to.
    pub(crate) channel: Arc<ChannelShared>,
    /// no-ack consumers take messages without settling them.
    pub(crate) no_ack: bool,
    /// An exclusive consumer is the queue's only consumer.
    pub(crate) exclusive: bool,
    /// Per-consumer prefetch (basic.qos global=false at consume time).
    pub(crate) credit: Arc<ConsumerCredit>,
}

/// Mutable queue state, behind the queue's own lock.
#[derive(Debug, Default)]
struct QueueState {
    ready: VecDeque<Entry>,
    ready_bytes: u64,
    next_seq: u64,
    consumers: Vec<Consumer>,
    /// Index of the consumer to try first: fair round-robin among consumers with credit.
    next_consumer: usize,
    /// Delivered, not yet acked or requeued.
    unacked: usize,
    /// An auto-delete queue is deleted when its last consumer goes, only if it ever had one.
    had_consumer: bool,
    deleted: bool,
}

/// A queue in a vhost.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) name: String,
    pub(crate) vhost: String,
    pub(crate) durable: bool,
    /// Id of the owning connection for exclusive queues.
    pub(crate) exclusive_owner: Option<u64>,
    pub(crate) auto_delete: bool,
    pub(crate) arguments: FieldTable,
    state: Mutex<QueueState>,
}

/// Why a consumer could not be added.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ConsumeRefused {
    /// The queue (or the new consumer) is exclusive and someone else consumes.
    ExclusiveUse,
    /// The queue was deleted meanwhile.
    Deleted,
}

impl Queue {
    pub(crate) fn new(
        name: String,
        vhost: &str,
        durable: bool,
        exclusive_owner: Option<u64>,
        auto_delete: bool,
        arguments: FieldTable,
    ) -> Queue {
        Queue {
            name,
            vhost: vhost.to_string(),
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            state: Mutex::new(QueueState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic elsewhere must not wedge the queue: the state stays consistent per operation.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enqueue a published message and hand it to a consumer if one has credit.
    /// Returns false if the queue was deleted meanwhile.
    pub(crate) fn publish(self: &Arc<Self>, msg: MessageRef) -> bool {
        let mut st = self.lock();
        if st.deleted {
            return false;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.ready_bytes += msg.body.len() as u64;
        st.ready.push_back(Entry {
            msg,
            redelivered: false,
            seq,
        });
        self.dispatch(&mut st);
        true
    }

    /// Put unacked messages back at their original positions, marked redelivered.
    pub(crate) fn requeue(self: &Arc<Self>, entries: Vec<Entry>) {
        let mut st = self.lock();
        st.unacked = st.unacked.saturating_sub(entries.len());
        if st.deleted {
            return;
        }
        for mut e in entries {
            e.redelivered = true;
            st.ready_bytes += e.msg.body.len() as u64;
            // Requeued messages are usually older than everything ready: search from the front.
            let pos = st.ready.partition_point(|r| r.seq < e.seq);
            st.ready.insert(pos, e);
        }
        self.dispatch(&mut st);
    }

    /// `n` deliveries were acked (or dropped): free their slots and deliver more.
    pub(crate) fn settle(self: &Arc<Self>, n: usize) {
        let mut st = self.lock();
        st.unacked = st.unacked.saturating_sub(n);
        self.dispatch(&mut st);
    }

    /// Credit may have appeared (a channel acked, a writer drained): try to deliver.
    pub(crate) fn kick(self: &Arc<Self>) {
        let mut st = self.lock();
        self.dispatch(&mut st);
    }

    /// Attach a consumer; `on_added` runs (under the queue's lock) before the first
    /// delivery, so basic.consume-ok precedes every basic.deliver. Deliveries start at once.
    pub(crate) fn add_consumer(
        self: &Arc<Self>,
        consumer: Consumer,
        on_added: impl FnOnce(),
    ) -> Result<(), ConsumeRefused> {
        let mut st = self.lock();
        if st.deleted {
            return Err(ConsumeRefused::Deleted);
        }
        if (consumer.exclusive && !st.consumers.is_empty())
            || st.consumers.iter().any(|c| c.exclusive)
        {
            return Err(ConsumeRefused::ExclusiveUse);
        }
        st.consumers.push(consumer);
        st.had_consumer = true;
        on_added();
        self.dispatch(&mut st);
        Ok(())
    }

    /// Detach a consumer. Returns true when an auto-delete queue just lost its last consumer.
    pub(crate) fn remove_consumer(&self, channel: &Arc<ChannelShared>, tag: &str) -> bool {
        let mut st = self.lock();
        st.consumers
            .retain(|c| !(Arc::ptr_eq(&c.channel, channel) && &*c.tag == tag));
        if st.next_consumer >= st.consumers.len() {
            st.next_consumer = 0;
        }
        self.auto_delete && st.had_consumer && st.consumers.is_empty() && !st.deleted
    }

    /// Take the head message for basic.get: (entry, messages left).
    pub(crate) fn get(&self, ack: bool) -> Option<(Entry, u32)> {
        let mut st = self.lock();
        let e = st.ready.pop_front()?;
        st.ready_bytes -= e.msg.body.len() as u64;
        if ack {
            st.unacked += 1;
        }
        Some((e, st.ready.len() as u32))
    }

    /// Drop every ready message; returns how many.
    pub(crate) fn purge(&self) -> u32 {
        let mut st = self.lock();
        let n = st.ready.len();
        st.ready.clear();
        st.ready_bytes = 0;
        n as u32
    }

    /// Mark deleted and return (ready count, consumers to notify).
    pub(crate) fn mark_deleted(&self) -> (u32, Vec<Consumer>) {
        let mut st = self.lock();
        st.deleted = true;
        let n = st.ready.len() as u32;
        st.ready.clear();
        st.ready_bytes = 0;
        (n, std::mem::take(&mut st.consumers))
    }

    /// (ready, unacked, consumers) right now.
    pub(crate) fn counts(&self) -> (u32, u32, u32) {
        let st = self.lock();
        (
            st.ready.len() as u32,
            st.unacked as u32,
            st.consumers.len() as u32,
        )
    }

    /// Deliver ready messages to consumers with credit, round-robin, until either runs out.
    fn dispatch(self: &Arc<Self>, st: &mut QueueState) {
        'outer: while let Some(head) = st.ready.front() {
            let n = st.consumers.len();
            if n == 0 {
                return;
            }
            let head = head.clone();
            for i in 0..n {
                let idx = (st.next_consumer + i) % n;
                let consumer = &st.consumers[idx];
                if consumer.channel.try_deliver(self, consumer, &head) {
                    st.ready.pop_front();
                    st.ready_bytes -= head.msg.body.len() as u64;
                    if !consumer.no_ack {
                        st.unacked += 1;
                    }
                    st.next_consumer = (idx + 1) % n;
                    continue 'outer;
                }
            }
            return;
        }
    }
}
