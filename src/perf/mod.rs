//! `rmq perf`: a throughput and latency tester in the spirit of RabbitMQ's PerfTest, on a
//! lean raw-AMQP path (pre-encoded frames, batched writes, big reads) so that the load
//! client is not what limits the measurement.
//!
//! - `wire`      minimal raw AMQP connection and publish templates
//! - `producer`  publishers: stamped frames, confirm window, rate
//! - `consumer`  consumers: latency, loss/duplicate tracking, batched acks
//! - `stats`     histogram, counters, sequence sets, CPU time
//! - `load`      the flow-control load test (`bench/load.sh`): many connections and queues
//! - `load_clients` its publisher and consumer connections

mod consumer;
pub mod load;
mod load_clients;
mod producer;
mod stats;
mod wire;

use anyhow::Context;
use consumer::ConsumerPlan;
use producer::{Blocked, ProducerPlan};
use serde::Serialize;
use stats::{Counters, Seen, cpu_seconds};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Everything `rmq perf` can be told (free of clap).
#[derive(Debug, Clone)]
pub struct PerfConfig {
    pub url: String,
    /// Producers (`-x`), each on its own connection.
    pub producers: u32,
    /// Consumers (`-y`), each on its own connection.
    pub consumers: u32,
    /// Message size in bytes (`-s`; at least 20 for the stamp).
    pub size: usize,
    /// Messages per second per producer (`-r`).
    pub rate: Option<f64>,
    /// Publisher-confirm window (`-c`); None: no confirms.
    pub confirm: Option<u64>,
    /// Consumers use no-ack (`-a`).
    pub auto_ack: bool,
    /// Ack with `multiple` every N messages (`-A`; 0 acks each one).
    pub multi_ack: u32,
    /// Consumer prefetch (`--qos`).
    pub prefetch: u16,
    /// Run time (`-z`).
    pub seconds: Option<f64>,
    /// Messages per producer (`-C`).
    pub producer_count: Option<u64>,
    /// Messages per consumer (`-D`).
    pub consumer_count: Option<u64>,
    /// delivery_mode 2 and durable queues (`-f persistent`).
    pub persistent: bool,
    /// Queue name (`-u`); default: generated, deleted at the end.
    pub queue: Option<String>,
    /// Exchange to publish to (`-e`), declared with `kind`; default: the default exchange.
    pub exchange: Option<String>,
    /// Exchange type (`-t`).
    pub kind: String,
    /// Number of queues (`--queues`); producers spread over them, consumers too.
    pub queues: u32,
    /// Arguments for the queues it declares (`--queue-args`).
    pub queue_args: amq_protocol::types::FieldTable,
    /// Print no per-second status lines.
    pub quiet: bool,
    /// Status lines go to stderr (stdout carries the JSON summary).
    pub status_to_stderr: bool,
    /// Told when the broker blocks and unblocks the publishers (`connection.blocked`).
    pub events: Option<crate::client::EventHook>,
}

/// The result of a run.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub seconds: f64,
    pub sent: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub received: u64,
    pub send_rate: f64,
    pub receive_rate: f64,
    /// Consumer latency percentiles, µs: min, 50, 75, 95, 99, max.
    pub latency_us: LatencySummary,
    /// Sent messages that never arrived (per queue they were routed to).
    pub lost: u64,
    /// Of those, the ones the broker had confirmed: a broken promise.
    pub lost_confirmed: u64,
    pub duplicates: u64,
    /// CPU time of this process per message handled (sent + received), µs.
    pub client_cpu_us_per_message: f64,
}

#[derive(Debug, Serialize)]
pub struct LatencySummary {
    pub min: f64,
    pub p50: f64,
    pub p75: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

fn latency_line(h: &stats::Histogram) -> String {
    let us = |q: f64| h.quantile(q) as f64 / 1000.0;
    format!(
        "{:.0}/{:.0}/{:.0}/{:.0}/{:.0} µs",
        us(0.0),
        us(0.5),
        us(0.75),
        us(0.95),
        us(0.99)
    )
}

/// Run a test and return its summary.
pub async fn run(cfg: PerfConfig) -> anyhow::Result<Summary> {
    let uri = crate::client::parse_url(&cfg.url)?;
    if uri.scheme == lapin::uri::AMQPScheme::AMQPS {
        // The load generator speaks raw AMQP over its own sockets, without a TLS layer.
        return Err(crate::exit::coded(
            crate::exit::USAGE,
            "rmq perf does not support amqps:// yet: point it at the broker's plain amqp:// port",
        ));
    }
    let blocked = Blocked {
        hook: cfg.events.clone(),
        target: format!("{}:{}", uri.authority.host, uri.authority.port),
        now: Arc::default(),
    };
    let generated = cfg.queue.is_none();
    let base = cfg
        .queue
        .clone()
        .unwrap_or_else(|| format!("rmq-perf-{}", std::process::id()));
    let queues: Vec<String> = if cfg.queues <= 1 {
        vec![base]
    } else {
        (1..=cfg.queues).map(|i| format!("{base}-{i}")).collect()
    };
    let fanout = cfg.exchange.is_some() && matches!(cfg.kind.as_str(), "fanout" | "headers");
    // Topology, on a setup connection.
    let mut setup = wire::Conn::open(&uri).await.with_context(|| {
        format!(
            "cannot reach the broker at {}",
            crate::client::redact(&cfg.url)
        )
    })?;
    for q in &queues {
        setup
            .declare_queue(q, cfg.persistent, &cfg.queue_args)
            .await?;
    }
    if let Some(x) = &cfg.exchange {
        setup.declare_exchange(x, &cfg.kind, cfg.persistent).await?;
        for q in &queues {
            setup.bind(q, x, if fanout { "" } else { q }).await?;
        }
    }
    let routing_keys = if fanout {
        vec![String::new()]
    } else {
        queues.clone()
    };
    let epoch = Instant::now();
    let counters = Arc::new(Counters::default());
    let (stop_producers, producers_stop) = watch::channel(false);
    let (stop_consumers, consumers_stop) = watch::channel(false);
    let mut consumer_tasks = Vec::new();
    for i in 0..cfg.consumers {
        let plan = ConsumerPlan {
            uri: uri.clone(),
            queue: queues[i as usize % queues.len()].clone(),
            prefetch: cfg.prefetch,
            auto_ack: cfg.auto_ack,
            multi_ack: cfg.multi_ack,
            count: cfg.consumer_count,
            epoch,
        };
        let queue_index = i as usize % queues.len();
        let task = tokio::spawn(consumer::run(
            plan,
            counters.clone(),
            consumers_stop.clone(),
        ));
        consumer_tasks.push((queue_index, task));
    }
    let cpu_start = cpu_seconds();
    let started = Instant::now();
    let mut producer_tasks = Vec::new();
    for id in 0..cfg.producers {
        let plan = ProducerPlan {
            id,
            uri: uri.clone(),
            exchange: cfg.exchange.clone().unwrap_or_default(),
            routing_keys: routing_keys.clone(),
            size: cfg.size,
            persistent: cfg.persistent,
            confirm: cfg.confirm,
            rate: cfg.rate,
            count: cfg.producer_count,
            epoch,
            blocked: blocked.clone(),
        };
        producer_tasks.push(tokio::spawn(producer::run(
            plan,
            counters.clone(),
            producers_stop.clone(),
        )));
    }
    // One status line per second until the time is up or every producer is done.
    let deadline = cfg.seconds.map(|s| started + Duration::from_secs_f64(s));
    let mut tick =
        tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    let (mut last_sent, mut last_received) = (0, 0);
    let report = |line: String| {
        if cfg.status_to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    loop {
        let producers_done = producer_tasks.iter().all(|t| t.is_finished());
        let consumers_done =
            cfg.consumer_count.is_some() && consumer_tasks.iter().all(|(_, t)| t.is_finished());
        let idle = cfg.producers == 0 && cfg.consumers == 0;
        if idle
            || deadline.is_some_and(|d| Instant::now() >= d)
            || (producers_done && (cfg.producers > 0 || consumers_done))
        {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::cli::signals::stop_signal() => break,
        }
        let (sent, received) = (
            counters.get(&counters.sent),
            counters.get(&counters.received),
        );
        let h = counters.take_interval();
        if !cfg.quiet {
            report(format!(
                "time {:.1} s, sent: {} msg/s, received: {} msg/s, min/median/75th/95th/99th consumer latency: {}",
                started.elapsed().as_secs_f64(),
                sent - last_sent,
                received - last_received,
                latency_line(&h)
            ));
        }
        (last_sent, last_received) = (sent, received);
    }
    let _ = stop_producers.send(true);
    let mut sent_per_producer = Vec::new();
    for t in producer_tasks {
        sent_per_producer.push(t.await.context("producer task")??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Let consumers drain what was sent (bounded), then stop them.
    let copies = if fanout { queues.len() as u64 } else { 1 };
    let sent_total: u64 = sent_per_producer.iter().map(|p| p.sent).sum();
    let expected = if cfg.consumers == 0 {
        0
    } else {
        sent_total * copies
    };
    // A backlog drains as long as it moves; three seconds without progress ends the wait.
    let (mut seen, mut last_progress) = (counters.get(&counters.received), Instant::now());
    while seen < expected && last_progress.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await; // polling counters, bounded
        let now = counters.get(&counters.received);
        if now != seen {
            (seen, last_progress) = (now, Instant::now());
        }
    }
    let _ = stop_consumers.send(true);
    let mut per_queue: Vec<Seen> = vec![Seen::default(); queues.len()];
    for (q, t) in consumer_tasks {
        let seen = t.await.context("consumer task")??;
        per_queue[q].merge(&seen);
    }
    let cpu = cpu_seconds() - cpu_start;
    let received = counters.get(&counters.received);
    let (mut lost, mut lost_confirmed, mut duplicates) = (0, 0, 0);
    if cfg.consumers > 0 {
        let merged;
        let seen: &[Seen] = if fanout {
            &per_queue
        } else {
            let mut all = Seen::default();
            for seen in &per_queue {
                all.merge(seen);
            }
            merged = [all];
            &merged
        };
        for seen in seen {
            duplicates += seen.duplicates;
            for (p, published) in sent_per_producer.iter().enumerate() {
                lost += seen.missing(p as u32, published.sent);
                lost_confirmed += seen.missing(p as u32, published.confirmed);
            }
        }
    }
    if generated {
        for q in &queues {
            let _ = setup.delete_queue(q).await;
        }
    }
    setup.close().await;
    let total = counters
        .total
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let us = |q: f64| total.quantile(q) as f64 / 1000.0;
    Ok(Summary {
        seconds: elapsed,
        sent: sent_total,
        confirmed: counters.get(&counters.confirmed),
        nacked: counters.get(&counters.nacked),
        received,
        send_rate: sent_total as f64 / elapsed,
        receive_rate: received as f64 / elapsed,
        latency_us: LatencySummary {
            min: us(0.0),
            p50: us(0.5),
            p75: us(0.75),
            p95: us(0.95),
            p99: us(0.99),
            max: us(1.0),
        },
        lost,
        lost_confirmed,
        duplicates,
        client_cpu_us_per_message: cpu * 1e6 / (sent_total + received).max(1) as f64,
    })
}
