//! Rates for `message_stats`: every `SAMPLE_EVERY` the sampler reads the counters of
//! every queue and vhost (relaxed loads, no queue lock) and stores rate = growth / time.
//! Totals are always read live; only the `_details.rate` values are as of the last sample.

use super::json::rate;
use crate::broker::model::vhost::VHost;
use crate::broker::ops::counters::{ALL, Counters, Stat};
use crate::broker::state::BrokerState;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// RabbitMQ's default collection interval is 5 s.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Counted at the exchange (by connections), not by queues.
const EXCHANGE_STATS: [Stat; 4] = [
    Stat::Publish,
    Stat::Confirm,
    Stat::ReturnUnroutable,
    Stat::DropUnroutable,
];

/// A vhost's totals right now: its exchange-side counts, plus every live queue's
/// delivery-side counts, plus those of its deleted queues.
pub(crate) fn vhost_totals(v: &VHost) -> [u64; 11] {
    let mut t = v.counters.exchange.totals();
    let mut add = |c: &Counters| {
        for s in ALL {
            if !EXCHANGE_STATS.contains(&s) {
                t[s as usize] += c.get(s);
            }
        }
    };
    add(&v.counters.retired);
    for q in v.queues.read().unwrap_or_else(|e| e.into_inner()).values() {
        add(&q.counters.own);
    }
    t
}

/// The broker's totals: every vhost's.
pub(crate) fn broker_totals(broker: &BrokerState) -> [u64; 11] {
    let mut t = [0u64; 11];
    for v in broker
        .vhosts
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
    {
        for (i, n) in vhost_totals(v).iter().enumerate() {
            t[i] += n;
        }
    }
    t
}

/// Sample forever (the caller aborts the task on shutdown).
pub(crate) async fn run_sampler(broker: Arc<BrokerState>) {
    let mut last = Instant::now();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let secs = last.elapsed().as_secs_f64();
        last = Instant::now();
        sample(&broker, secs);
    }
}

fn sample(broker: &BrokerState, secs: f64) {
    let vhosts: Vec<_> = broker
        .vhosts
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    let mut all = [0u64; 11];
    for v in vhosts {
        let queues: Vec<_> = v.queue_list();
        for q in queues {
            let own = &q.counters.own;
            own.sample(secs, &own.totals());
        }
        let t = vhost_totals(&v);
        v.counters.sampled.sample_aggregate(secs, &t);
        for (i, n) in t.iter().enumerate() {
            all[i] += n;
        }
    }
    broker.counters.sample_aggregate(secs, &all);
}

/// A `message_stats` object: each stat with its `_details.rate`, plus RabbitMQ's
/// derived `deliver_get` (every delivery and get). `only` limits which stats appear.
pub(crate) fn message_stats(totals: &[u64; 11], rates: &Counters, only: &[Stat]) -> Value {
    let mut m = Map::new();
    for s in ALL.iter().filter(|s| only.contains(s)) {
        m.insert(s.name().into(), json!(totals[*s as usize]));
        m.insert(format!("{}_details", s.name()), rate(rates.rate(*s)));
    }
    let dg = [Stat::Deliver, Stat::DeliverNoAck, Stat::Get, Stat::GetNoAck];
    if dg.iter().all(|s| only.contains(s)) {
        let total: u64 = dg.iter().map(|s| totals[*s as usize]).sum();
        let r: f64 = dg.iter().map(|s| rates.rate(*s)).sum();
        m.insert("deliver_get".into(), json!(total));
        m.insert("deliver_get_details".into(), rate(r));
    }
    Value::Object(m)
}

/// The stats a queue reports (a queue sees no confirms or unroutables).
pub(crate) const QUEUE_STATS: [Stat; 8] = [
    Stat::Ack,
    Stat::Deliver,
    Stat::DeliverNoAck,
    Stat::Get,
    Stat::GetEmpty,
    Stat::GetNoAck,
    Stat::Publish,
    Stat::Redeliver,
];
