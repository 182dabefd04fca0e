//! A `rmq perf` publisher: pre-encoded publish frames stamped in place (sequence, send
//! time, producer id) and written in batches, a confirm window, an optional rate.

use super::stats::Counters;
use super::wire::{self, Conn, Reader};
use crate::client::{EventHook, LinkEvent};
use amq_protocol::protocol::{AMQPClass, basic, connection};
use bytes::BytesMut;
use lapin::uri::AMQPUri;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Bytes of each body taken by the stamp.
pub(crate) const STAMP: usize = 14;

/// What one producer does.
#[derive(Debug, Clone)]
pub(crate) struct ProducerPlan {
    pub(crate) id: u32,
    pub(crate) uri: AMQPUri,
    pub(crate) exchange: String,
    /// Routing keys used round-robin (one per queue, or a single one).
    pub(crate) routing_keys: Vec<String>,
    pub(crate) size: usize,
    pub(crate) persistent: bool,
    /// Outstanding unconfirmed publishes allowed; None: no confirms.
    pub(crate) confirm: Option<u64>,
    /// Messages per second; None: as fast as possible.
    pub(crate) rate: Option<f64>,
    /// Stop after this many messages.
    pub(crate) count: Option<u64>,
    /// Time zero of the send stamps (shared with consumers).
    pub(crate) epoch: Instant,
    /// Where `connection.blocked` and `unblocked` are told (the CLI's notice and
    /// `--blocked-timeout`), shared by every producer.
    pub(crate) blocked: Blocked,
}

/// The producers' `connection.blocked` state, told once for all of them: a broker
/// alarm blocks every publishing connection, and one line says so.
#[derive(Debug, Clone, Default)]
pub(crate) struct Blocked {
    pub(crate) hook: Option<EventHook>,
    /// The broker's `host:port`, for the notice.
    pub(crate) target: String,
    /// Producers blocked right now.
    pub(crate) now: Arc<AtomicU64>,
}

impl Blocked {
    fn change(&self, m: &connection::AMQPMethod) {
        let event = match m {
            connection::AMQPMethod::Blocked(b) => {
                if self.now.fetch_add(1, Ordering::SeqCst) != 0 {
                    return;
                }
                LinkEvent::Blocked(b.reason.to_string())
            }
            connection::AMQPMethod::Unblocked(_) => {
                // An unblock without a block (a confused broker) changes nothing.
                let before = self
                    .now
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
                if before != Ok(1) {
                    return;
                }
                LinkEvent::Unblocked
            }
            _ => return,
        };
        if let Some(hook) = &self.hook {
            (hook.0)(&self.target, event);
        }
    }
}

/// Publishes confirmed so far: everything up to `upto`, plus single acks beyond it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Confirmed {
    /// Every tag up to here is confirmed.
    pub(crate) upto: u64,
    /// Tags confirmed singly beyond `upto`.
    pub(crate) singles: BTreeSet<u64>,
}

impl Confirmed {
    pub(crate) fn ack(&mut self, tag: u64, multiple: bool) -> u64 {
        let before = self.count();
        if multiple {
            self.upto = self.upto.max(tag);
            let upto = self.upto;
            self.singles.retain(|t| *t > upto);
        } else if tag == self.upto + 1 {
            self.upto += 1;
            while self.singles.remove(&(self.upto + 1)) {
                self.upto += 1;
            }
        } else if tag > self.upto {
            self.singles.insert(tag);
        }
        self.count() - before
    }

    pub(crate) fn count(&self) -> u64 {
        self.upto + self.singles.len() as u64
    }
}

/// Read confirms until told to stop (then hand the reader back for a clean close) or
/// the connection ends; publish the count through `done`. Returns the reader (when
/// stopped) and the confirmed prefix: every sequence number below it was confirmed.
async fn read_confirms(
    mut reader: Reader,
    counters: Arc<Counters>,
    done: Arc<AtomicU64>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    blocked: Blocked,
) -> (Option<Reader>, u64) {
    let mut confirmed = Confirmed::default();
    loop {
        let f = tokio::select! {
            f = reader.frame() => match f {
                Ok(f) => f,
                Err(_) => break,
            },
            _ = stop.changed() => return (Some(reader), confirmed.upto),
        };
        if f.kind != wire::METHOD {
            continue;
        }
        let Ok(m) = crate::codec::decode_method(&f.payload) else {
            break;
        };
        let newly = match m {
            AMQPClass::Connection(c) => {
                blocked.change(&c);
                0
            }
            AMQPClass::Basic(basic::AMQPMethod::Ack(a)) => {
                confirmed.ack(a.delivery_tag, a.multiple)
            }
            AMQPClass::Basic(basic::AMQPMethod::Nack(n)) => {
                let k = confirmed.ack(n.delivery_tag, n.multiple);
                counters.nacked.fetch_add(k, Ordering::Relaxed);
                k
            }
            _ => 0,
        };
        if newly > 0 {
            counters.confirmed.fetch_add(newly, Ordering::Relaxed);
            done.store(confirmed.count(), Ordering::Release);
            wake.notify_one();
        }
    }
    // Connection gone: release a waiting publisher.
    done.store(u64::MAX, Ordering::Release);
    wake.notify_one();
    (None, confirmed.upto)
}

/// What one producer did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Published {
    /// Messages written (sequence numbers 0..sent).
    pub(crate) sent: u64,
    /// Sequence numbers 0..confirmed were confirmed by the broker (0 without confirms).
    pub(crate) confirmed: u64,
}

/// Publish until `stop` turns true or the count is reached.
pub(crate) async fn run(
    plan: ProducerPlan,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Published> {
    // Asking for connection.blocked: without the capability a blocked broker says nothing
    // and the run looks hung.
    let mut conn = Conn::open_with(&plan.uri, &["connection.blocked"]).await?;
    if plan.confirm.is_some() {
        conn.confirm_select().await?;
    }
    let body = vec![b'x'; plan.size.max(STAMP)];
    let templates: Vec<(BytesMut, usize)> = plan
        .routing_keys
        .iter()
        .map(|k| wire::publish_template(&plan.exchange, k, &body, plan.persistent, conn.frame_max))
        .collect();
    let Conn {
        reader, mut writer, ..
    } = conn;
    let done = Arc::new(AtomicU64::new(0));
    let wake = Arc::new(Notify::new());
    let (stop_reader, reader_stop) = watch::channel(false);
    let confirm_task = tokio::spawn(read_confirms(
        reader,
        counters.clone(),
        done.clone(),
        wake.clone(),
        reader_stop,
        plan.blocked.clone(),
    ));
    let started = Instant::now();
    let mut sent = 0u64;
    let mut batch = BytesMut::with_capacity(256 * 1024);
    // A batch cut short by the stop: the stream ends mid-frame, so no clean close follows.
    let mut torn = false;
    'publish: loop {
        if *stop.borrow() || plan.count.is_some_and(|c| sent >= c) {
            break;
        }
        let mut n: u64 = 128;
        if let Some(c) = plan.count {
            n = n.min(c - sent);
        }
        if let Some(window) = plan.confirm {
            loop {
                let confirmed = done.load(Ordering::Acquire);
                if confirmed == u64::MAX {
                    break 'publish;
                }
                let room = window.saturating_sub(sent - confirmed.min(sent));
                if room > 0 {
                    n = n.min(room);
                    break;
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = stop.changed() => continue 'publish,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
        if let Some(rate) = plan.rate {
            let due = (rate * started.elapsed().as_secs_f64()) as u64;
            if due <= sent {
                // Rate control, not synchronisation: wait for the next message's slot.
                let next = started + Duration::from_secs_f64((sent + 1) as f64 / rate);
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            n = n.min(due - sent);
        }
        batch.clear();
        for i in 0..n {
            let seq = sent + i;
            let (template, body_at) = &templates[(seq % templates.len() as u64) as usize];
            let at = batch.len() + body_at;
            batch.extend_from_slice(template);
            let now = plan.epoch.elapsed().as_nanos() as u64;
            // The stamp: sequence (u32), send time (ns, u64), producer (u16) = 14 bytes.
            batch[at..at + 4].copy_from_slice(&(seq as u32).to_be_bytes());
            batch[at + 4..at + 12].copy_from_slice(&now.to_be_bytes());
            batch[at + 12..at + 14].copy_from_slice(&(plan.id as u16).to_be_bytes());
        }
        // A blocked broker stops reading, and the write then waits for it: the end of the
        // run must not. Stopped mid-write, a reading broker takes the rest at once.
        let written = {
            let write = writer.write_all(&batch);
            tokio::pin!(write);
            tokio::select! {
                r = &mut write => Some(r),
                _ = stop.changed() => tokio::time::timeout(Duration::from_secs(1), &mut write)
                    .await
                    .ok(),
            }
        };
        match written {
            Some(Ok(())) => {}
            Some(Err(_)) => break,
            None => {
                torn = true;
                break;
            }
        }
        sent += n;
        counters.sent.fetch_add(n, Ordering::Relaxed);
    }
    // Let outstanding confirms arrive (bounded), so the summary counts them; a blocked
    // broker sends none.
    let blocked = plan.blocked.now.load(Ordering::SeqCst) > 0;
    if plan.confirm.is_some() && !torn && !blocked {
        let deadline = Instant::now() + Duration::from_secs(10);
        while done.load(Ordering::Acquire) < sent && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(100), wake.notified()).await;
        }
    }
    // Close the connection properly: a socket just dropped makes a broker discard what
    // it had not processed yet, which would show up as lost messages.
    let _ = stop_reader.send(true);
    let (reader, confirmed) = confirm_task.await.unwrap_or((None, 0));
    if let Some(reader) = reader
        && !torn
    {
        let frame_max = 131_072;
        Conn {
            reader,
            writer,
            frame_max,
        }
        .close()
        .await;
    }
    Ok(Published {
        sent,
        confirmed: confirmed.min(sent),
    })
}

#[cfg(test)]
mod tests {
    use super::Confirmed;

    #[test]
    fn confirms_count_multiple_and_single_acks() {
        let mut c = Confirmed::default();
        assert_eq!(c.ack(3, true), 3);
        assert_eq!(c.ack(5, false), 1);
        assert_eq!(c.ack(4, false), 1);
        assert_eq!(c.upto, 5);
        assert_eq!(c.ack(10, true), 5);
    }
}
