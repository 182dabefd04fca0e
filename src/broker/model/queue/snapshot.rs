//! A queue's state as the management API and `queue.declare-ok` report it.

use super::{Consumer, Queue};
use crate::broker::model::policy::Applied;
use std::sync::Arc;
use tokio::time::Instant;

/// A queue's state for the management API.
#[derive(Debug)]
pub(crate) struct QueueSnapshot {
    /// Ready messages.
    pub(crate) ready: u64,
    /// Body bytes of the ready messages.
    pub(crate) ready_bytes: u64,
    /// Delivered, not yet settled.
    pub(crate) unacked: u64,
    /// Body bytes of the unacked messages.
    pub(crate) unacked_bytes: u64,
    /// The consumers, highest priority first.
    pub(crate) consumers: Vec<Consumer>,
    /// `x-single-active-consumer`: only the first consumer gets messages.
    pub(crate) single_active: bool,
    /// The policy and operator policy in force.
    pub(crate) applied: Option<Arc<Applied>>,
}

impl Queue {
    /// What the management API shows of this queue right now (one lock, no copies of
    /// messages), expired messages excluded.
    pub(crate) fn snapshot(self: &Arc<Self>) -> QueueSnapshot {
        self.with(|q, st| {
            q.expire_head(st, Instant::now());
            QueueSnapshot {
                ready: st.ready.len() as u64,
                ready_bytes: st.ready.bytes(),
                unacked: st.unacked as u64,
                unacked_bytes: st.unacked_bytes,
                consumers: st.consumers.clone(),
                single_active: q.args.single_active_consumer,
                applied: st.applied.clone(),
            }
        })
    }

    /// (ready, unacked, consumers) right now, expired messages excluded.
    pub(crate) fn counts(self: &Arc<Self>) -> (u32, u32, u32) {
        self.with(|q, st| {
            q.expire_head(st, Instant::now());
            (
                st.ready.len() as u32,
                st.unacked as u32,
                st.consumers.len() as u32,
            )
        })
    }
}
