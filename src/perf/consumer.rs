//! A `rmq perf` consumer: reads deliveries in big batches, takes each message's stamp
//! (sequence, send time, producer) for latency and loss/duplicate tracking, and acks in
//! batches (per message, every N with `multiple`, or not at all with auto-ack).

use super::producer::STAMP;
use super::stats::{Counters, Histogram, Seen};
use super::wire::{self, CH, Conn};
use amq_protocol::protocol::{AMQPClass, basic};
use bytes::BytesMut;
use lapin::uri::AMQPUri;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;

/// What one consumer does.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerPlan {
    pub(crate) uri: AMQPUri,
    pub(crate) queue: String,
    pub(crate) prefetch: u16,
    pub(crate) auto_ack: bool,
    /// Ack with `multiple` every N messages (0: every message on its own).
    pub(crate) multi_ack: u32,
    /// Stop after this many messages.
    pub(crate) count: Option<u64>,
    /// Time zero of the send stamps.
    pub(crate) epoch: Instant,
}

/// `delivery_tag` of a basic.deliver payload, parsed by hand: this is the hot path.
fn delivery_tag(payload: &[u8]) -> Option<u64> {
    let ctag = usize::from(*payload.get(4)?);
    let at = 5 + ctag;
    Some(u64::from_be_bytes(
        payload.get(at..at + 8)?.try_into().ok()?,
    ))
}

fn put_ack(out: &mut BytesMut, tag: u64, multiple: bool) {
    crate::codec::put_method(
        out,
        CH,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: tag,
            multiple,
        })),
    );
}

/// Consume until `stop` turns true or the count is reached; returns what was seen.
pub(crate) async fn run(
    plan: ConsumerPlan,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Seen> {
    let mut conn = Conn::open(&plan.uri).await?;
    if !plan.auto_ack || plan.prefetch > 0 {
        conn.qos(plan.prefetch).await?;
    }
    conn.consume(&plan.queue, plan.auto_ack).await?;
    let Conn {
        mut reader,
        mut writer,
        ..
    } = conn;
    let mut seen = Seen::default();
    let mut latencies = Histogram::default();
    let mut acks = BytesMut::with_capacity(16 * 1024);
    let (mut tag, mut unacked, mut received) = (0u64, 0u32, 0u64);
    // Content assembly: (delivery tag, body bytes still expected, stamp bytes so far).
    let mut stamp = [0u8; STAMP];
    let mut stamp_len = 0usize;
    let mut remaining: u64 = 0;
    let mut counted = 0u64;
    let mut last_flush = Instant::now();
    loop {
        if plan.count.is_some_and(|c| received >= c) {
            break;
        }
        let frame = match reader.buffered()? {
            Some(f) => f,
            None => {
                // Before waiting for more bytes: send the acks this batch earned and
                // publish the counts.
                if !acks.is_empty() {
                    writer.write_all(&acks).await?;
                    acks.clear();
                }
                counters
                    .received
                    .fetch_add(received - counted, Ordering::Relaxed);
                counted = received;
                if latencies.count() > 0 && last_flush.elapsed().as_millis() >= 50 {
                    counters.add_latencies(&latencies);
                    latencies = Histogram::default();
                    last_flush = Instant::now();
                }
                tokio::select! {
                    f = reader.frame() => f?,
                    _ = stop.changed() => break,
                }
            }
        };
        match frame.kind {
            wire::METHOD => {
                if let Some(t) = delivery_tag(&frame.payload)
                    .filter(|_| frame.payload.get(2..4) == Some(&[0, 60]))
                {
                    tag = t;
                    stamp_len = 0;
                }
            }
            wire::HEADER => {
                remaining = frame
                    .payload
                    .get(4..12)
                    .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
            }
            wire::BODY => {
                let take = (STAMP - stamp_len).min(frame.payload.len());
                stamp[stamp_len..stamp_len + take].copy_from_slice(&frame.payload[..take]);
                stamp_len += take;
                remaining = remaining.saturating_sub(frame.payload.len() as u64);
                if remaining > 0 {
                    continue;
                }
                received += 1;
                if stamp_len == STAMP {
                    let seq =
                        u64::from(u32::from_be_bytes(stamp[0..4].try_into().unwrap_or([0; 4])));
                    let sent_at = u64::from_be_bytes(stamp[4..12].try_into().unwrap_or([0; 8]));
                    let producer = u32::from(u16::from_be_bytes(
                        stamp[12..14].try_into().unwrap_or([0; 2]),
                    ));
                    let now = plan.epoch.elapsed().as_nanos() as u64;
                    latencies.record(now.saturating_sub(sent_at));
                    seen.mark(producer, seq);
                }
                if !plan.auto_ack {
                    unacked += 1;
                    if plan.multi_ack == 0 {
                        put_ack(&mut acks, tag, false);
                        unacked = 0;
                    } else if unacked >= plan.multi_ack {
                        put_ack(&mut acks, tag, true);
                        unacked = 0;
                    }
                }
            }
            _ => {}
        }
    }
    if unacked > 0 {
        put_ack(&mut acks, tag, true);
    }
    if !acks.is_empty() {
        let _ = writer.write_all(&acks).await;
    }
    counters
        .received
        .fetch_add(received - counted, Ordering::Relaxed);
    counters.add_latencies(&latencies);
    let _ = writer.shutdown().await;
    Ok(seen)
}
