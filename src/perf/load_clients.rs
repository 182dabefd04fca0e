//! The load test's clients on the lean wire path: a publisher connection stamps each
//! message with (queue, per-queue sequence) and keeps a confirm window; a consumer
//! connection consumes its queues at a capped rate, checking every queue's sequence
//! arrives in order exactly once, and acks each read batch with one multi-ack.

use super::producer::Confirmed;
use super::wire::{self, Conn};
use crate::codec::decode_method;
use amq_protocol::protocol::{AMQPClass, basic, connection};
use amq_protocol::types::FieldTable;
use bytes::BytesMut;
use lapin::uri::AMQPUri;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

/// Bytes of each body taken by the stamp: queue (u32), sequence (u64).
pub(crate) const STAMP: usize = 12;

/// Shared between all clients of a run.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Per queue: messages published (the last sequence number used).
    pub(crate) sent: Vec<AtomicU64>,
    /// Per queue: messages delivered in order (the last sequence number seen).
    pub(crate) delivered: Vec<AtomicU64>,
    /// Deliveries whose sequence was not the next one: duplicates or after a gap.
    pub(crate) out_of_order: AtomicU64,
    pub(crate) confirmed: AtomicU64,
    pub(crate) nacked: AtomicU64,
    /// Publishers currently blocked by the broker (connection.blocked).
    pub(crate) blocked_now: AtomicU64,
}

impl Tally {
    pub(crate) fn new(queues: usize) -> Tally {
        let zeros = || (0..queues).map(|_| AtomicU64::new(0)).collect();
        Tally {
            sent: zeros(),
            delivered: zeros(),
            out_of_order: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            blocked_now: AtomicU64::new(0),
        }
    }

    pub(crate) fn total(v: &[AtomicU64]) -> u64 {
        v.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }
}

/// What a publisher reports at the end.
#[derive(Debug)]
pub(crate) struct PublisherEnd {
    /// Its queues, in round-robin order: tag t went to `queues[(t-1) % len]`.
    pub(crate) queues: Vec<usize>,
    pub(crate) confirmed: Confirmed,
    /// Time spent blocked by the broker.
    pub(crate) blocked: Duration,
    pub(crate) blocked_times: u64,
}

/// Confirms and connection.blocked/unblocked, read beside the publishing loop.
struct ConfirmState {
    confirmed: Confirmed,
    blocked_since: Option<Instant>,
    blocked: Duration,
    blocked_times: u64,
}

async fn read_confirms(
    mut reader: wire::Reader,
    tally: Arc<Tally>,
    done: Arc<AtomicU64>,
    wake: Arc<Notify>,
) -> ConfirmState {
    let mut st = ConfirmState {
        confirmed: Confirmed::default(),
        blocked_since: None,
        blocked: Duration::ZERO,
        blocked_times: 0,
    };
    while let Ok(f) = reader.frame().await {
        if f.kind != wire::METHOD {
            continue;
        }
        let Ok(m) = decode_method(&f.payload) else {
            break;
        };
        match m {
            AMQPClass::Basic(basic::AMQPMethod::Ack(a)) => {
                let n = st.confirmed.ack(a.delivery_tag, a.multiple);
                tally.confirmed.fetch_add(n, Ordering::Relaxed);
            }
            AMQPClass::Basic(basic::AMQPMethod::Nack(a)) => {
                let n = st.confirmed.ack(a.delivery_tag, a.multiple);
                tally.nacked.fetch_add(n, Ordering::Relaxed);
            }
            AMQPClass::Connection(connection::AMQPMethod::Blocked(_)) => {
                st.blocked_since = Some(Instant::now());
                st.blocked_times += 1;
                tally.blocked_now.fetch_add(1, Ordering::Relaxed);
            }
            AMQPClass::Connection(connection::AMQPMethod::Unblocked(_)) => {
                if let Some(t) = st.blocked_since.take() {
                    st.blocked += t.elapsed();
                    tally.blocked_now.fetch_sub(1, Ordering::Relaxed);
                }
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => break,
            _ => continue,
        }
        done.store(st.confirmed.count(), Ordering::Release);
        wake.notify_one();
    }
    done.store(u64::MAX, Ordering::Release);
    wake.notify_one();
    st
}

/// Declare `queues`, wait for `start`, publish round-robin to them until `stop`, then
/// wait (bounded) for the outstanding confirms and close.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn publisher(
    uri: AMQPUri,
    names: Arc<Vec<String>>,
    queues: Vec<usize>,
    size: usize,
    window: u64,
    tally: Arc<Tally>,
    mut start: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    mut abort: watch::Receiver<bool>,
    ready: mpsc::UnboundedSender<()>,
) -> anyhow::Result<PublisherEnd> {
    let mut conn = Conn::open_with(&uri, &["connection.blocked"]).await?;
    for &q in &queues {
        conn.declare_queue(&names[q], false, &FieldTable::default())
            .await?;
    }
    conn.confirm_select().await?;
    let _ = ready.send(());
    let body = vec![b'x'; size.max(STAMP)];
    let templates: Vec<_> = queues
        .iter()
        .map(|&q| wire::publish_template("", &names[q], &body, false, conn.frame_max))
        .collect();
    let Conn {
        reader, mut writer, ..
    } = conn;
    let done = Arc::new(AtomicU64::new(0));
    let wake = Arc::new(Notify::new());
    let confirms = tokio::spawn(read_confirms(
        reader,
        tally.clone(),
        done.clone(),
        wake.clone(),
    ));
    let _ = start.wait_for(|s| *s).await;
    let mut sent = 0u64;
    let mut batch = BytesMut::with_capacity(64 * 1024);
    'publish: while !*stop.borrow() {
        let n = loop {
            let confirmed = done.load(Ordering::Acquire);
            if confirmed == u64::MAX {
                break 'publish;
            }
            let room = window.saturating_sub(sent - confirmed.min(sent));
            if room > 0 {
                break room.min(64);
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = stop.changed() => continue 'publish,
            }
        };
        batch.clear();
        for i in 0..n {
            let slot = ((sent + i) % queues.len() as u64) as usize;
            let q = queues[slot];
            let seq = tally.sent[q].fetch_add(1, Ordering::Relaxed) + 1;
            let (template, body_at) = &templates[slot];
            let at = batch.len() + body_at;
            batch.extend_from_slice(template);
            batch[at..at + 4].copy_from_slice(&(q as u32).to_be_bytes());
            batch[at + 4..at + 12].copy_from_slice(&seq.to_be_bytes());
        }
        // A blocked connection's write waits here until the broker reads again (after
        // `stop` too: the drain lifts the alarm); only `abort` gives up on it.
        tokio::select! {
            r = writer.write_all(&batch) => if r.is_err() { break },
            _ = abort.wait_for(|a| *a) => anyhow::bail!("publisher still blocked at the end"),
        }
        sent += n;
    }
    // Outstanding confirms, bounded; the drain phase lifts any alarm meanwhile.
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::Acquire) < sent && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(100), wake.notified()).await;
    }
    // Delete the queues elsewhere (after draining); here just close politely.
    let close = AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    }));
    let mut out = BytesMut::new();
    crate::codec::put_method(&mut out, 0, close);
    let _ = writer.write_all(&out).await;
    let st = match tokio::time::timeout(Duration::from_secs(5), confirms).await {
        Ok(Ok(st)) => st,
        _ => anyhow::bail!("publisher connection did not close"),
    };
    let blocked = st.blocked + st.blocked_since.map_or(Duration::ZERO, |t| t.elapsed());
    Ok(PublisherEnd {
        queues,
        confirmed: st.confirmed,
        blocked,
        blocked_times: st.blocked_times,
    })
}

/// Consume `queues` (already declared), at most `rate` messages per second (`None`:
/// unlimited, also once `unlimit` turns true), until `stop`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn consumer(
    uri: AMQPUri,
    names: Arc<Vec<String>>,
    queues: Vec<usize>,
    prefetch: u16,
    rate: f64,
    tally: Arc<Tally>,
    mut unlimit: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    ready: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let mut conn = Conn::open(&uri).await?;
    conn.qos(prefetch).await?;
    for &q in &queues {
        conn.consume(&names[q], false).await?;
    }
    let _ = ready.send(());
    let started = Instant::now();
    let (mut received, mut acked_upto, mut last_tag) = (0u64, 0u64, 0u64);
    let mut expect_body = false;
    loop {
        let f = tokio::select! {
            f = conn.reader.frame() => f?,
            _ = stop.changed() => break,
        };
        let mut next = Some(f);
        while let Some(f) = next {
            if f.kind == wire::METHOD {
                if let Ok(AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) =
                    decode_method(&f.payload)
                {
                    last_tag = d.delivery_tag;
                    expect_body = true;
                }
            } else if f.kind == wire::BODY && expect_body && f.payload.len() >= STAMP {
                expect_body = false;
                let p = &f.payload;
                let q = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
                let seq = u64::from_be_bytes(p[4..12].try_into().unwrap_or([0; 8]));
                if let Some(seen) = tally.delivered.get(q) {
                    // One consumer per queue, one publisher per queue: strictly in order.
                    if seen.load(Ordering::Relaxed) + 1 == seq {
                        seen.store(seq, Ordering::Relaxed);
                    } else {
                        tally.out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                }
                received += 1;
            }
            next = conn.reader.buffered()?;
        }
        if last_tag > acked_upto {
            let ack = AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: last_tag,
                multiple: true,
            }));
            let mut out = BytesMut::new();
            crate::codec::put_method(&mut out, wire::CH, ack);
            conn.writer.write_all(&out).await?;
            acked_upto = last_tag;
        }
        if !*unlimit.borrow() {
            // Rate cap, not synchronisation: the consumer is meant to be slow.
            let due = started + Duration::from_secs_f64(received as f64 / rate);
            if due > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = unlimit.changed() => {}
                    _ = stop.changed() => break,
                }
            }
        }
    }
    conn.close().await;
    Ok(())
}
