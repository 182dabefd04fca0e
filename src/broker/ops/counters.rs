//! Message counters for the management API's `message_stats` and `/metrics`: relaxed
//! atomics bumped on the hot path (no lock, no allocation), and rates derived from them
//! by the management sampler every few seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What is counted, with RabbitMQ's `message_stats` names (see `Stat::name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stat {
    /// Messages published (to a vhost's exchanges, or into a queue).
    Publish,
    /// Deliveries to consumers in ack mode.
    Deliver,
    /// Deliveries to no-ack consumers.
    DeliverNoAck,
    /// basic.get answered with a message, ack mode.
    Get,
    /// basic.get answered with a message, no-ack.
    GetNoAck,
    /// basic.get on an empty queue.
    GetEmpty,
    /// Deliveries acknowledged.
    Ack,
    /// Deliveries of messages that were delivered before.
    Redeliver,
    /// Mandatory publishes returned as unroutable.
    ReturnUnroutable,
    /// Non-mandatory publishes dropped as unroutable.
    DropUnroutable,
    /// Publishes confirmed to confirm-mode publishers.
    Confirm,
}

/// Every stat, in the order RabbitMQ's JSON lists them (alphabetical).
pub(crate) const ALL: [Stat; 11] = [
    Stat::Ack,
    Stat::Confirm,
    Stat::Deliver,
    Stat::DeliverNoAck,
    Stat::DropUnroutable,
    Stat::Get,
    Stat::GetEmpty,
    Stat::GetNoAck,
    Stat::Publish,
    Stat::Redeliver,
    Stat::ReturnUnroutable,
];

impl Stat {
    /// The field name in RabbitMQ's `message_stats`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stat::Publish => "publish",
            Stat::Deliver => "deliver",
            Stat::DeliverNoAck => "deliver_no_ack",
            Stat::Get => "get",
            Stat::GetNoAck => "get_no_ack",
            Stat::GetEmpty => "get_empty",
            Stat::Ack => "ack",
            Stat::Redeliver => "redeliver",
            Stat::ReturnUnroutable => "return_unroutable",
            Stat::DropUnroutable => "drop_unroutable",
            Stat::Confirm => "confirm",
        }
    }
}

/// A set of counters with their last sampled rates.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Running totals, indexed by `Stat as usize`.
    counts: [AtomicU64; 11],
    /// Totals at the previous sample, for the rate.
    prev: [AtomicU64; 11],
    /// Per-second rates at the last sample, as `f64` bits.
    rates: [AtomicU64; 11],
}

impl Counters {
    /// Count `n` events (relaxed: totals only need to be eventually exact).
    #[inline]
    pub(crate) fn add(&self, stat: Stat, n: u64) {
        self.counts[stat as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self, stat: Stat) -> u64 {
        self.counts[stat as usize].load(Ordering::Relaxed)
    }

    /// The rate per second at the last sample.
    pub(crate) fn rate(&self, stat: Stat) -> f64 {
        f64::from_bits(self.rates[stat as usize].load(Ordering::Relaxed))
    }

    /// Take a sample `secs` after the previous one: rate = growth / time.
    pub(crate) fn sample(&self, secs: f64, totals: &[u64; 11]) {
        for (i, &now) in totals.iter().enumerate() {
            let before = self.prev[i].swap(now, Ordering::Relaxed);
            let rate = if secs > 0.0 {
                now.saturating_sub(before) as f64 / secs
            } else {
                0.0
            };
            self.rates[i].store(rate.to_bits(), Ordering::Relaxed);
        }
    }

    /// Record totals summed elsewhere (a vhost's, the broker's) as this set's, with rates.
    pub(crate) fn sample_aggregate(&self, secs: f64, totals: &[u64; 11]) {
        for (i, &now) in totals.iter().enumerate() {
            self.counts[i].store(now, Ordering::Relaxed);
        }
        self.sample(secs, totals);
    }

    /// The running totals, indexed by `Stat as usize`.
    pub(crate) fn totals(&self) -> [u64; 11] {
        std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }

    /// Add every total of `other` into this set.
    pub(crate) fn absorb(&self, other: &Counters) {
        for (i, c) in other.counts.iter().enumerate() {
            self.counts[i].fetch_add(c.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// A queue's counters; when the queue goes, its totals move to its vhost's, so the
/// vhost-wide and broker-wide totals never go backwards.
#[derive(Debug)]
pub(crate) struct QueueCounters {
    /// This queue's own counts.
    pub(crate) own: Counters,
    /// Where the totals go when the queue is dropped (the vhost's `retired`).
    retire_to: Arc<Counters>,
}

impl QueueCounters {
    pub(crate) fn new(retire_to: Arc<Counters>) -> QueueCounters {
        QueueCounters {
            own: Counters::default(),
            retire_to,
        }
    }
}

impl Drop for QueueCounters {
    fn drop(&mut self) {
        self.retire_to.absorb(&self.own);
    }
}

/// A vhost's counters: its publishes (counted at the exchange), and the totals of its
/// deleted queues. Live queues' counts are summed when sampled, so the hot path of a
/// delivery touches only its own queue's cache line.
#[derive(Debug, Default)]
pub(crate) struct VhostCounters {
    /// Publishes, confirms and unroutables counted by connections.
    pub(crate) exchange: Counters,
    /// Deliveries, gets and acks of queues that no longer exist.
    pub(crate) retired: Arc<Counters>,
    /// The vhost-wide totals and rates as of the last sample (exchange + queues).
    pub(crate) sampled: Counters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_growth_between_samples() {
        let c = Counters::default();
        c.add(Stat::Publish, 10);
        c.sample(2.0, &c.totals());
        assert_eq!(c.rate(Stat::Publish), 5.0);
        c.sample(2.0, &c.totals());
        assert_eq!(c.rate(Stat::Publish), 0.0);
    }

    #[test]
    fn a_dropped_queue_hands_its_totals_on() {
        let retired = Arc::new(Counters::default());
        let q = QueueCounters::new(retired.clone());
        q.own.add(Stat::Ack, 3);
        drop(q);
        assert_eq!(retired.get(Stat::Ack), 3);
    }
}
