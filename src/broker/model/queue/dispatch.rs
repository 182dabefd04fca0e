//! The inside of a queue: dispatch to consumers by priority and credit, loading
//! paged-out heads, TTL expiry and its timer, length limits, dead-lettering, and the
//! `x-expires` watch. Runs under the queue's lock unless it says otherwise.

use super::{Entry, Queue, QueueState};
use crate::broker::model::args::Overflow;
use crate::broker::model::deadletter::{self, Reason};
use crate::broker::model::message::{Message, MessageRef};
use crate::broker::ops::counters::Stat;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl Queue {
    /// The message of `e`, read back from the log when paged out.
    pub(super) fn load(&self, st: &mut QueueState, e: &Entry) -> Option<MessageRef> {
        if let Some(m) = &e.msg {
            return Some(m.clone());
        }
        let (segment, offset) = e.stored?;
        let read = st.log.as_mut()?.read(e.seq, segment, offset);
        match read.map(Message::from_stored) {
            Ok(Some(m)) => Some(Arc::new(m)),
            Ok(None) => {
                tracing::error!(
                    "queue '{}': unreadable content header in its log",
                    self.name
                );
                None
            }
            Err(err) => {
                tracing::error!("queue '{}': cannot read its log: {err}", self.name);
                None
            }
        }
    }

    /// A message leaves the queue without delivery: settle it in the log and dead-letter
    /// it when the queue has a dead-letter exchange.
    pub(super) fn drop_entry(&self, st: &mut QueueState, e: &Entry, reason: Reason) {
        st.settle_stored(e);
        if st.eff.dead_letter_exchange.is_some()
            && let Some(m) = self.load(st, e)
        {
            st.dead.push((m, reason));
        }
    }

    /// Drop expired messages at the head (RabbitMQ expires only at the head).
    pub(super) fn expire_head(&self, st: &mut QueueState, now: Instant) {
        while st
            .ready
            .front()
            .is_some_and(|e| e.expires_at.is_some_and(|t| t < now))
        {
            if let Some(e) = st.ready.pop_front() {
                self.drop_entry(st, &e, Reason::Expired);
            }
        }
    }

    /// drop-head overflow: remove the oldest ready messages beyond the limits.
    pub(super) fn enforce_limits(&self, st: &mut QueueState) {
        if st.eff.overflow_mode() != Overflow::DropHead {
            return;
        }
        let over = |st: &QueueState| {
            st.eff.max_length.is_some_and(|m| st.ready.len() as u64 > m)
                || st
                    .eff
                    .max_length_bytes
                    .is_some_and(|m| st.ready.bytes() > m)
        };
        while over(st) {
            match st.ready.pop_front() {
                Some(e) => self.drop_entry(st, &e, Reason::Maxlen),
                None => break,
            }
        }
    }

    /// Deliver ready messages to consumers with credit until either runs out: the
    /// highest consumer priority first, round-robin within a priority.
    pub(super) fn dispatch(self: &Arc<Self>, st: &mut QueueState, now: Instant) {
        loop {
            self.expire_head(st, now);
            if st.consumers.is_empty() {
                return;
            }
            if let Some(e) = st.ready.front().filter(|e| e.msg.is_none()).cloned() {
                match self.load(st, &e) {
                    Some(m) => st.ready.set_front_msg(m),
                    None => {
                        // Unreadable (reported by load): skip it rather than wedge the queue.
                        st.ready.pop_front();
                        st.settle_stored(&e);
                        continue;
                    }
                }
            }
            let Some(head) = st.ready.front().cloned() else {
                return;
            };
            let end = if self.args.single_active_consumer {
                st.consumers.len().min(1)
            } else {
                st.consumers.len()
            };
            let mut start = 0;
            // Some(no_ack) once a consumer took the head.
            let mut delivered = None;
            // A stored message is recorded before it is handed over; one that cannot be
            // (a full disk, even past the reserve) is not delivered now.
            let mut log = st.log.take();
            let mut record = |no_ack: bool| match (&mut log, head.stored) {
                (Some(log), Some(_)) => log.record_delivery(head.seq, no_ack),
                _ => true,
            };
            'levels: while start < end {
                let priority = st.consumers[start].priority;
                let stop = start
                    + st.consumers[start..end]
                        .iter()
                        .take_while(|c| c.priority == priority)
                        .count();
                let len = stop - start;
                for i in 0..len {
                    let idx = start + (st.next_consumer + i) % len;
                    let consumer = &st.consumers[idx];
                    let no_ack = consumer.no_ack;
                    if consumer
                        .channel
                        .try_deliver(self, consumer, &head, &mut record)
                    {
                        if !no_ack {
                            st.unacked += 1;
                            st.unacked_bytes += u64::from(head.size);
                        }
                        self.count_delivery(
                            if no_ack {
                                Stat::DeliverNoAck
                            } else {
                                Stat::Deliver
                            },
                            head.redelivered,
                        );
                        st.next_consumer = idx - start + 1;
                        delivered = Some(no_ack);
                        break 'levels;
                    }
                }
                start = stop;
            }
            st.log = log;
            let Some(no_ack) = delivered else { return };
            if let Some(e) = st.ready.pop_front()
                && e.stored.is_some()
            {
                // A no-ack delivery is the end of the message; an ack-mode one may come
                // back (its delivered mark is written).
                if no_ack {
                    st.settle_stored(&e);
                }
            }
        }
    }

    /// Make sure a timer fires when the head message expires, so expired messages are
    /// removed (and dead-lettered) even when nobody touches the queue.
    pub(super) fn arm_ttl_timer(self: &Arc<Self>, st: &mut QueueState) {
        let Some(at) = st.ready.front().and_then(|e| e.expires_at) else {
            return;
        };
        if st.deleted || st.timer_at.is_some_and(|t| t <= at) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        st.timer_at = Some(at);
        let weak = Arc::downgrade(self);
        rt.spawn(async move {
            // Just past the deadline: expiry is `expires_at < now`.
            tokio::time::sleep_until(at + Duration::from_millis(1)).await;
            if let Some(q) = weak.upgrade() {
                q.with(|q, st| {
                    if st.timer_at == Some(at) {
                        st.timer_at = None;
                    }
                    q.expire_head(st, Instant::now());
                });
            }
        });
    }

    /// Republish dropped messages to the dead-letter exchange `dlx` (with the routing
    /// key `dlrk`, else their own), if the queue has one.
    pub(super) fn dead_letter(
        &self,
        dead: Vec<(MessageRef, Reason)>,
        dlx: Option<String>,
        dlrk: Option<String>,
    ) {
        let Some(dlx) = &dlx else {
            return;
        };
        let Some(vhost) = self.vhost_ref.upgrade() else {
            return;
        };
        // A missing dead-letter exchange drops the messages, as in RabbitMQ.
        let Some(exchange) = vhost.exchange(dlx) else {
            return;
        };
        let dlrk = dlrk.as_deref();
        for (msg, reason) in dead {
            let out = Arc::new(deadletter::dead_lettered(
                &msg, &self.name, reason, dlx, dlrk,
            ));
            for q in vhost.route_message(&exchange, &out) {
                if !deadletter::is_cycle(&out, &q.name, reason) {
                    q.publish(out.clone(), None);
                }
            }
        }
    }
}
