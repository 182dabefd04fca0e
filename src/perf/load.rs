//! The flow-control load test behind `bench/load.sh`: many connections (one channel
//! each), thousands of queues, publishers with confirms outrunning rate-capped
//! consumers for a fixed time; the broker's RSS sampled from /proc; then a drain and a
//! per-queue check that every confirmed message was delivered exactly once.

use super::load_clients::{PublisherEnd, Tally, consumer, publisher};
use anyhow::{Context, bail};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What to run (free of clap).
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub url: String,
    /// Connections in all, one channel each: `publishers` publish, the rest consume.
    pub connections: u32,
    pub publishers: u32,
    pub queues: u32,
    /// Body size in bytes (at least the 12-byte stamp, at most one frame).
    pub size: usize,
    /// Publishing time before the drain.
    pub seconds: f64,
    /// Unconfirmed publishes each publisher may have outstanding.
    pub window: u64,
    /// Consumer prefetch (per consumer; each consumer connection has one per queue).
    pub prefetch: u16,
    /// All consumers together, messages per second, while publishing.
    pub consume_rate: f64,
    /// The broker's process, for its RSS (`/proc/<pid>/status`).
    pub broker_pid: Option<u32>,
    /// Longest the drain may take.
    pub drain_timeout: Duration,
}

/// The figures of a run.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub connections: u32,
    pub publishers: u32,
    pub consumers: u32,
    pub queues: u32,
    pub seconds: f64,
    pub published: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub delivered: u64,
    /// Confirmed but never delivered (must be 0).
    pub lost_confirmed: u64,
    /// Deliveries out of sequence: duplicates or after a gap (must be 0).
    pub out_of_order: u64,
    pub publish_rate: f64,
    pub deliver_rate_during_run: f64,
    pub drain_seconds: f64,
    /// Highest broker RSS seen, bytes (0 without a pid).
    pub peak_rss: u64,
    /// Time each publisher spent blocked, averaged, in seconds.
    pub blocked_seconds_avg: f64,
    pub blocked_events: u64,
    pub max_blocked_publishers: u64,
}

/// VmRSS of `pid` in bytes.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Confirmed tags of one publisher whose message never arrived. Its t-th publish went
/// to slot `(t-1) % n` with that queue's sequence `(t-1) / n + 1`.
fn lost_confirmed(end: &PublisherEnd, delivered: &[AtomicU64]) -> u64 {
    let n = end.queues.len() as u64;
    let upto = end.confirmed.upto;
    let got = |slot: u64| delivered[end.queues[slot as usize]].load(Ordering::Relaxed);
    let mut lost = 0;
    for slot in 0..n {
        let confirmed_here = if upto > slot {
            (upto - 1 - slot) / n + 1
        } else {
            0
        };
        lost += confirmed_here.saturating_sub(got(slot));
    }
    for &t in &end.confirmed.singles {
        if (t - 1) / n + 1 > got((t - 1) % n) {
            lost += 1;
        }
    }
    lost
}

/// Run the test.
pub async fn run(cfg: LoadConfig) -> anyhow::Result<LoadReport> {
    if cfg.publishers == 0 || cfg.publishers >= cfg.connections {
        bail!("need at least one publisher and one consumer connection");
    }
    let uri = crate::client::parse_url(&cfg.url)?;
    let consumers = cfg.connections - cfg.publishers;
    let names: Arc<Vec<String>> = Arc::new(
        (0..cfg.queues)
            .map(|k| format!("load-{}-{k}", std::process::id()))
            .collect(),
    );
    let tally = Arc::new(Tally::new(cfg.queues as usize));
    let (start_tx, start) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    // Consumers stop only after the drain.
    let (drained_tx, drained) = watch::channel(false);
    let (abort_tx, abort) = watch::channel(false);
    let (unlimit_tx, unlimit) = watch::channel(false);
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let share = |of: u32, i: u32| -> Vec<usize> {
        (0..cfg.queues)
            .filter(|k| k % of == i)
            .map(|k| k as usize)
            .collect()
    };
    let setup = Instant::now();
    let mut pubs = Vec::new();
    for j in 0..cfg.publishers {
        pubs.push(tokio::spawn(publisher(
            uri.clone(),
            names.clone(),
            share(cfg.publishers, j),
            cfg.size,
            cfg.window,
            tally.clone(),
            start.clone(),
            stop.clone(),
            abort.clone(),
            ready_tx.clone(),
        )));
    }
    let wait_ready = async |ready: &mut mpsc::UnboundedReceiver<()>, n: u32, what: &str| {
        for _ in 0..n {
            tokio::time::timeout(Duration::from_secs(120), ready.recv())
                .await
                .ok()
                .flatten()
                .with_context(|| format!("{what} did not get ready"))?;
        }
        anyhow::Ok(())
    };
    wait_ready(&mut ready, cfg.publishers, "publishers").await?;
    let per_consumer = cfg.consume_rate / f64::from(consumers);
    let mut cons = Vec::new();
    for c in 0..consumers {
        cons.push(tokio::spawn(consumer(
            uri.clone(),
            names.clone(),
            share(consumers, c),
            cfg.prefetch,
            per_consumer,
            tally.clone(),
            unlimit.clone(),
            drained.clone(),
            ready_tx.clone(),
        )));
    }
    wait_ready(&mut ready, consumers, "consumers").await?;
    eprintln!(
        "setup: {} connections, {} queues in {:.1} s",
        cfg.connections,
        cfg.queues,
        setup.elapsed().as_secs_f64()
    );

    let peak_rss = Arc::new(AtomicU64::new(0));
    let max_blocked = Arc::new(AtomicU64::new(0));
    let (sampler_stop_tx, mut sampler_stop) = watch::channel(false);
    let sampler = tokio::spawn({
        let (tally, peak_rss, max_blocked, pid) = (
            tally.clone(),
            peak_rss.clone(),
            max_blocked.clone(),
            cfg.broker_pid,
        );
        async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut last = (0, 0, 0);
            let mut n = 0u64;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = sampler_stop.changed() => return,
                }
                let rss = pid.and_then(rss_of).unwrap_or(0);
                peak_rss.fetch_max(rss, Ordering::Relaxed);
                let blocked = tally.blocked_now.load(Ordering::Relaxed);
                max_blocked.fetch_max(blocked, Ordering::Relaxed);
                n += 1;
                if n.is_multiple_of(10) {
                    let now = (
                        Tally::total(&tally.sent),
                        tally.confirmed.load(Ordering::Relaxed),
                        Tally::total(&tally.delivered),
                    );
                    eprintln!(
                        "{:5.1} s  published {:>7}/s  confirmed {:>7}/s  delivered {:>7}/s  broker RSS {:>4} MiB  blocked publishers {blocked}",
                        started.elapsed().as_secs_f64(),
                        now.0 - last.0,
                        now.1 - last.1,
                        now.2 - last.2,
                        rss >> 20,
                    );
                    last = now;
                }
            }
        }
    });

    let started = Instant::now();
    let _ = start_tx.send(true);
    tokio::time::sleep(Duration::from_secs_f64(cfg.seconds)).await; // the run's length
    let _ = stop_tx.send(true);
    let _ = unlimit_tx.send(true);
    let run_time = started.elapsed().as_secs_f64();
    let delivered_during_run = Tally::total(&tally.delivered);
    let drain_started = Instant::now();
    let drain_deadline = drain_started + cfg.drain_timeout;
    let mut ends = Vec::new();
    let mut failures = Vec::new();
    for p in pubs {
        let left = drain_deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, p).await {
            Ok(Ok(Ok(end))) => ends.push(end),
            Ok(Ok(Err(e))) => failures.push(format!("{e:#}")),
            Ok(Err(e)) => failures.push(e.to_string()),
            Err(_) => {
                let _ = abort_tx.send(true);
                failures.push("a publisher did not finish in the drain time".into());
            }
        }
    }
    let published = Tally::total(&tally.sent);
    while Tally::total(&tally.delivered) + tally.out_of_order.load(Ordering::Relaxed) < published
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await; // polling counters, bounded
    }
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    let _ = drained_tx.send(true);
    for c in cons {
        match tokio::time::timeout(Duration::from_secs(10), c).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => failures.push(format!("consumer: {e:#}")),
            _ => failures.push("a consumer did not finish".into()),
        }
    }
    let _ = sampler_stop_tx.send(true);
    let _ = sampler.await;
    // Leave nothing behind on a shared broker.
    let mut cleanup = super::wire::Conn::open(&uri).await?;
    for q in names.iter() {
        cleanup.delete_queue(q).await?;
    }
    cleanup.close().await;
    if !failures.is_empty() {
        failures.dedup();
        bail!("load test failed: {}", failures.join("; "));
    }
    let lost = ends
        .iter()
        .map(|e| lost_confirmed(e, &tally.delivered))
        .sum();
    let blocked: f64 = ends.iter().map(|e| e.blocked.as_secs_f64()).sum();
    Ok(LoadReport {
        connections: cfg.connections,
        publishers: cfg.publishers,
        consumers,
        queues: cfg.queues,
        seconds: run_time,
        published,
        confirmed: tally.confirmed.load(Ordering::Relaxed),
        nacked: tally.nacked.load(Ordering::Relaxed),
        delivered: Tally::total(&tally.delivered),
        lost_confirmed: lost,
        out_of_order: tally.out_of_order.load(Ordering::Relaxed),
        publish_rate: published as f64 / run_time,
        deliver_rate_during_run: delivered_during_run as f64 / run_time,
        drain_seconds,
        peak_rss: peak_rss.load(Ordering::Relaxed),
        blocked_seconds_avg: blocked / f64::from(cfg.publishers),
        blocked_events: ends.iter().map(|e| e.blocked_times).sum(),
        max_blocked_publishers: max_blocked.load(Ordering::Relaxed),
    })
}
