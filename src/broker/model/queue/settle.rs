//! What becomes of delivered messages: acked (gone, settled in the log), rejected
//! (dead-lettered), or requeued at their original position as redelivered — counted
//! against a quorum queue's delivery limit.

use super::{Entry, Queue};
use crate::broker::model::deadletter::Reason;
use crate::broker::ops::counters::Stat;
use std::sync::Arc;
use tokio::time::Instant;

impl Queue {
    /// Put unacked messages back at their original positions, marked redelivered.
    pub(crate) fn requeue(self: &Arc<Self>, entries: Vec<Entry>) {
        self.with(|q, st| {
            st.settled_deliveries(&entries);
            if st.deleted {
                return;
            }
            for mut e in entries {
                e.redelivered = true;
                if q.args.quorum {
                    // RabbitMQ's rabbit_fifo: every return counts; past the limit the
                    // message is dropped, or dead-lettered with reason delivery_limit.
                    e.delivery_count = e.delivery_count.saturating_add(1);
                    if st
                        .eff
                        .delivery_limit
                        .is_some_and(|limit| u64::from(e.delivery_count) > limit)
                    {
                        q.drop_entry(st, &e, Reason::DeliveryLimit);
                        continue;
                    }
                }
                st.ready.insert_requeued(e);
            }
            q.dispatch(st, Instant::now());
            q.enforce_limits(st);
        })
    }

    /// Deliveries were acked: forget them and deliver more.
    pub(crate) fn ack(self: &Arc<Self>, entries: Vec<Entry>) {
        self.counters.own.add(Stat::Ack, entries.len() as u64);
        self.with(|q, st| {
            st.settled_deliveries(&entries);
            for e in &entries {
                st.settle_stored(e);
            }
            q.dispatch(st, Instant::now());
        })
    }

    /// Deliveries rejected without requeue: dead-letter them (reason `rejected`).
    pub(crate) fn reject(self: &Arc<Self>, entries: Vec<Entry>) {
        self.with(|q, st| {
            st.settled_deliveries(&entries);
            if !st.deleted {
                for e in &entries {
                    q.drop_entry(st, e, Reason::Rejected);
                }
            }
            q.dispatch(st, Instant::now());
        })
    }
}
