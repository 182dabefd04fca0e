//! What a queue holds and hands out: its messages (`Entry`), its consumers, and what
//! became of a publish.

use crate::broker::model::delivery::{ChannelShared, ConsumerCredit};
use crate::broker::model::message::MessageRef;
use std::sync::Arc;
use tokio::time::Instant;

/// A message in a queue, with what the queue knows about its past.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The shared message; None while paged out to the queue's log (`stored`).
    pub(crate) msg: Option<MessageRef>,
    /// Set once the message was delivered and came back (AMQP `redelivered`).
    pub(crate) redelivered: bool,
    /// Position in the queue's history: requeue puts a message back where it was.
    pub(crate) seq: u64,
    /// When the message expires (queue or message TTL, whichever is first); kept on requeue.
    pub(crate) expires_at: Option<Instant>,
    /// Where the queue's log holds it, (segment, offset): persistent messages of
    /// durable queues.
    pub(crate) stored: Option<(u64, u64)>,
    /// Body length: limits and accounting without loading a paged-out message.
    pub(crate) size: u32,
    /// The message's priority property, for priority lanes.
    pub(crate) priority: u8,
    /// Times the message was returned to a quorum queue after a delivery (requeue,
    /// channel or connection gone): `x-delivery-count`, checked against `x-delivery-limit`.
    /// Kept in memory only, so it starts again from 0 after a broker restart.
    pub(crate) delivery_count: u32,
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
    /// `x-priority`: higher-priority consumers with credit are served first.
    pub(crate) priority: i64,
    /// Per-consumer prefetch (basic.qos global=false at consume time).
    pub(crate) credit: Arc<ConsumerCredit>,
}

/// What became of a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enqueued {
    /// Accepted (queued or delivered), in memory only.
    Accepted,
    /// Accepted and written to the queue's log: its confirm waits for the next fsync.
    Stored,
    /// Refused by `x-overflow: reject-publish[-dlx]`: confirming publishers get a nack.
    Rejected,
    /// The queue was deleted meanwhile.
    Gone,
}
