//! What queues share with a channel: its delivery counter, unacked map and prefetch
//! credit (`ChannelShared`); the connection's outbound frames are `outbound.rs`. The
//! connection task owns the rest of the channel (see `session.rs`).

use crate::broker::model::message::MessageRef;
use crate::broker::model::queue::{Consumer, Entry, Queue};
use crate::broker::wire::outbound::ConnShared;
use crate::codec;
use amq_protocol::protocol::{AMQPClass, basic};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// How deliveries are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// basic.ack: done with.
    Ack,
    /// nack/reject with requeue, recover, channel close: back to the queue, redelivered.
    Requeue,
    /// nack/reject without requeue: dropped or dead-lettered.
    Reject,
}

/// Per-consumer prefetch accounting (basic.qos global=false).
#[derive(Debug, Default)]
pub(crate) struct ConsumerCredit {
    /// 0 = unlimited.
    pub(crate) prefetch: u32,
    /// Deliveries to this consumer not yet settled.
    pub(crate) unacked: AtomicU32,
}

/// A delivery awaiting ack.
#[derive(Debug)]
pub(crate) struct Unacked {
    pub(crate) queue: Arc<Queue>,
    pub(crate) entry: Entry,
    /// The consumer whose credit this delivery uses (None for basic.get).
    pub(crate) credit: Option<Arc<ConsumerCredit>>,
    /// When it was delivered: the consumer acknowledgement timeout counts from here.
    pub(crate) at: tokio::time::Instant,
}

/// Delivery state shared between the connection task and the queues delivering to it.
#[derive(Debug, Default)]
pub(crate) struct DeliveryState {
    /// Last delivery tag used; tags count from 1 per channel.
    pub(crate) last_tag: u64,
    /// Unacked deliveries by tag, ordered so `multiple` acks take a prefix.
    pub(crate) unacked: BTreeMap<u64, Unacked>,
    /// Channel-wide prefetch (basic.qos global=true), 0 = unlimited.
    pub(crate) global_prefetch: u32,
    /// Consumers of this channel by tag, with their queue (None: direct reply-to).
    pub(crate) consumers: HashMap<Arc<str>, Option<Arc<Queue>>>,
    /// Consumer tag of the direct reply-to consumer, if any.
    pub(crate) reply_consumer: Option<Arc<str>>,
    /// Cleared when the channel closes: queues must not deliver to it any more.
    pub(crate) open: bool,
}

/// A channel as seen by queues.
#[derive(Debug)]
pub(crate) struct ChannelShared {
    pub(crate) id: u16,
    pub(crate) conn: Arc<ConnShared>,
    state: Mutex<DeliveryState>,
}

impl ChannelShared {
    pub(crate) fn new(id: u16, conn: Arc<ConnShared>) -> ChannelShared {
        ChannelShared {
            id,
            conn,
            state: Mutex::new(DeliveryState {
                open: true,
                ..DeliveryState::default()
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, DeliveryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by a queue (holding its own lock): deliver `entry` to `consumer` if the
    /// channel is open, the consumer and channel have credit and the socket keeps up.
    /// `before_send(no_ack)` runs once the consumer can take the message, just before it
    /// is handed over; false cancels the delivery (the queue could not record it).
    pub(crate) fn try_deliver(
        &self,
        queue: &Arc<Queue>,
        consumer: &Consumer,
        entry: &Entry,
        before_send: &mut dyn FnMut(bool) -> bool,
    ) -> bool {
        // The queue loads a paged-out head before offering it.
        let Some(msg) = &entry.msg else {
            return false;
        };
        let mut st = self.lock();
        if !st.open {
            return false;
        }
        if !consumer.no_ack {
            let c = &consumer.credit;
            if c.prefetch != 0 && c.unacked.load(Ordering::Relaxed) >= c.prefetch {
                return false;
            }
            if st.global_prefetch != 0 && st.unacked.len() as u32 >= st.global_prefetch {
                return false;
            }
        }
        if self.conn.over_high_water(queue) {
            return false;
        }
        if !before_send(consumer.no_ack) {
            return false;
        }
        st.last_tag += 1;
        let tag = st.last_tag;
        if !consumer.no_ack {
            consumer.credit.unacked.fetch_add(1, Ordering::Relaxed);
            st.unacked.insert(
                tag,
                Unacked {
                    queue: queue.clone(),
                    entry: entry.clone(),
                    credit: Some(consumer.credit.clone()),
                    at: tokio::time::Instant::now(),
                },
            );
        }
        drop(st);
        if queue.args.quorum && entry.delivery_count > 0 {
            let counted = Arc::new(msg.with_delivery_count(entry.delivery_count));
            self.send_delivery(&consumer.tag, tag, entry.redelivered, &counted);
        } else {
            self.send_delivery(&consumer.tag, tag, entry.redelivered, msg);
        }
        true
    }

    /// Encode basic.deliver plus content straight into the connection's outbound buffer.
    pub(crate) fn send_delivery(
        &self,
        consumer_tag: &str,
        tag: u64,
        redelivered: bool,
        msg: &MessageRef,
    ) {
        let (id, frame_max) = (self.id, self.conn.frame_max);
        self.conn.send_with(|out| {
            codec::put_deliver(
                out,
                id,
                consumer_tag,
                tag,
                redelivered,
                &msg.exchange,
                &msg.routing_key,
            );
            codec::put_content(out, id, &msg.header, &msg.body, frame_max);
        });
    }

    /// Deliver a direct reply-to message to this channel's reply consumer (no ack).
    pub(crate) fn deliver_reply(&self, msg: &MessageRef) -> bool {
        let mut st = self.lock();
        let Some(tag) = st.reply_consumer.clone().filter(|_| st.open) else {
            return false;
        };
        st.last_tag += 1;
        let n = st.last_tag;
        drop(st);
        self.send_delivery(&tag, n, false, msg);
        true
    }

    /// Record a basic.get delivery (ack mode) and return its tag.
    pub(crate) fn record_get(&self, queue: &Arc<Queue>, entry: &Entry, ack: bool) -> u64 {
        let mut st = self.lock();
        st.last_tag += 1;
        let tag = st.last_tag;
        if ack {
            st.unacked.insert(
                tag,
                Unacked {
                    queue: queue.clone(),
                    entry: entry.clone(),
                    credit: None,
                    at: tokio::time::Instant::now(),
                },
            );
        }
        tag
    }

    /// Take the deliveries an ack/nack/reject names. `None` when the tag is unknown
    /// (RabbitMQ: 406 "unknown delivery tag N"); tag 0 with `multiple` means all.
    pub(crate) fn take_unacked(&self, tag: u64, multiple: bool) -> Option<Vec<(u64, Unacked)>> {
        let mut st = self.lock();
        let taken: Vec<(u64, Unacked)> = if multiple && tag == 0 {
            std::mem::take(&mut st.unacked).into_iter().collect()
        } else if !st.unacked.contains_key(&tag) {
            return None;
        } else if multiple {
            let rest = st.unacked.split_off(&(tag + 1));
            std::mem::replace(&mut st.unacked, rest)
                .into_iter()
                .collect()
        } else {
            st.unacked.remove_entry(&tag).into_iter().collect()
        };
        Some(taken)
    }

    /// Put deliveries taken by an ack inside a transaction back (tx.rollback).
    pub(crate) fn restore_unacked(&self, taken: Vec<(u64, Unacked)>) {
        self.lock().unacked.extend(taken);
    }

    /// Take every unacked delivery (channel closing, basic.recover).
    pub(crate) fn take_all_unacked(&self) -> Vec<Unacked> {
        std::mem::take(&mut self.lock().unacked)
            .into_values()
            .collect()
    }

    /// Settle taken deliveries. Must be called without holding any lock.
    pub(crate) fn settle(&self, taken: Vec<Unacked>, how: Settle) {
        if taken.is_empty() {
            return;
        }
        let mut by_queue: Vec<(Arc<Queue>, Vec<Entry>)> = Vec::new();
        for u in taken {
            if let Some(c) = &u.credit {
                c.unacked.fetch_sub(1, Ordering::Relaxed);
            }
            match by_queue.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
                Some((_, v)) => v.push(u.entry),
                None => by_queue.push((u.queue, vec![u.entry])),
            }
        }
        for (q, entries) in &mut by_queue {
            match how {
                Settle::Ack => q.ack(std::mem::take(entries)),
                Settle::Requeue => q.requeue(std::mem::take(entries)),
                Settle::Reject => q.reject(std::mem::take(entries)),
            }
        }
        // With a channel-wide prefetch, freed credit may let *other* queues deliver here.
        let others: Vec<Arc<Queue>> = {
            let st = self.lock();
            if st.global_prefetch == 0 {
                Vec::new()
            } else {
                st.consumers
                    .values()
                    .flatten()
                    .filter(|q| !by_queue.iter().any(|(b, _)| Arc::ptr_eq(b, q)))
                    .cloned()
                    .collect()
            }
        };
        for q in others {
            q.kick();
        }
    }

    /// The server cancels a consumer (its queue was deleted): forget it and tell the
    /// client if it advertised `consumer_cancel_notify`.
    pub(crate) fn cancel_by_server(&self, tag: &str) {
        let removed = self.lock().consumers.remove(tag).is_some();
        if removed && self.conn.cancel_notify {
            self.conn.send_method(
                self.id,
                AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag: tag.into(),
                    nowait: true,
                })),
            );
        }
    }
}
