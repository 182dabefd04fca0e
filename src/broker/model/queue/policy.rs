//! A queue under a changed policy: the new arguments in force at once.

use super::Queue;
use crate::broker::model::policy::{self, Applied};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl Queue {
    /// The policies that apply changed (RabbitMQ's policy_changed): the new limits act
    /// at once (drop-head trims the queue, dead-lettering what it drops), a new expiry
    /// counts from now; TTLs apply to messages published from now on, as RabbitMQ
    /// computes a message's expiry when it is enqueued.
    pub(crate) fn apply_policy(self: &Arc<Self>, applied: Option<Arc<Applied>>) {
        let expires = self.with(|q, st| {
            if policy::same(st.applied.as_ref(), applied.as_ref()) {
                return None;
            }
            let before = st.eff.expires;
            st.eff = policy::effective_args(&q.args, applied.as_deref());
            st.applied = applied;
            let now = Instant::now();
            q.enforce_limits(st);
            q.expire_head(st, now);
            q.dispatch(st, now);
            match st.eff.expires {
                Some(ms) if st.eff.expires != before && !st.deleted => {
                    st.last_used = now;
                    Some(now + Duration::from_millis(ms))
                }
                _ => None,
            }
        });
        if let (Some(at), Some(vhost)) = (expires, self.vhost_ref.upgrade()) {
            vhost.expiry.watch(Arc::downgrade(self), at);
        }
    }
}
