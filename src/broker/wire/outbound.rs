//! A connection's outbound frames: the buffer queues and channels encode into, the
//! hand-off to the connection's writer task, direct writes to idle TCP sockets at the end
//! of a read batch, and the backpressure that stops queues delivering to a slow reader.

use crate::broker::error::AmqpError;
use crate::codec;
use amq_protocol::protocol::AMQPClass;
use bytes::{Bytes, BytesMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::Notify;

/// Above this many bytes waiting for the socket, queues stop delivering to a connection
/// until its writer drains: a slow reader must not make the broker buffer without bound.
pub(crate) const OUTBOUND_HIGH_WATER: usize = 4 * 1024 * 1024;

/// Above this many bytes waiting for the socket, the connection is not read either (a
/// peer that sends requests and never reads their replies stays bounded). Well above the
/// delivery mark: deliveries alone stop near `OUTBOUND_HIGH_WATER` (plus one message), and
/// a consumer that writes acks while it reads must never find its acks unread because
/// its deliveries filled the buffer — a client blocked writing acks, not reading, would
/// then deadlock with us.
const READ_STOP: usize = 4 * OUTBOUND_HIGH_WATER;

/// Up to this many queued bytes, the task that produced them writes them straight to an
/// idle plain-TCP socket (see `deferring`); more go to the writer task, which then runs
/// on the other core in parallel with whoever keeps producing.
const DIRECT_MAX: usize = 64 * 1024;

/// Frames waiting for the connection's writer.
#[derive(Default)]
struct OutBuf {
    /// Encoded frames in order; the writer takes all of it at once.
    buf: BytesMut,
    /// Set once the connection is closing: write what is here, then close the socket.
    shutdown: bool,
    /// Someone (the writer task or a direct write) is writing to the socket: bytes must
    /// not overtake each other, so everyone else leaves the socket alone meanwhile.
    busy: bool,
    /// What a direct write could not finish; the writer sends it before `buf`.
    carry: Option<Bytes>,
    /// The socket, for direct non-blocking writes (plain TCP only).
    direct: Option<Arc<dyn DirectWrite>>,
}

impl std::fmt::Debug for OutBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutBuf")
            .field("queued", &self.buf.len())
            .field("shutdown", &self.shutdown)
            .field("busy", &self.busy)
            .field("direct", &self.direct.is_some())
            .finish()
    }
}

/// A socket other tasks may write to without blocking (a TCP write half).
pub(crate) trait DirectWrite: Send + Sync {
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize>;
}

impl DirectWrite for tokio::net::tcp::OwnedWriteHalf {
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        tokio::net::tcp::OwnedWriteHalf::try_write(self, buf)
    }
}

thread_local! {
    /// Connections that got frames while this thread runs `deferring`: flushed at its end.
    static DEFERRED: std::cell::RefCell<Option<Vec<Arc<ConnShared>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Run `f` (a connection handling one read batch), holding back writer wake-ups for
/// the frames it produces; afterwards write them straight to each idle socket from this
/// task. At low rates this saves a task wake-up and a thread hand-off per message —
/// most of a delivery's latency and broker CPU.
pub(crate) fn deferring<R>(f: impl FnOnce() -> R) -> R {
    /// Flushes even when `f` panics, so no connection is left waiting for a wake-up.
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            let list = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
            for conn in list {
                conn.deferred.store(false, Ordering::SeqCst);
                conn.flush();
            }
        }
    }
    DEFERRED.with(|d| *d.borrow_mut() = Some(Vec::new()));
    let _flush = Flush;
    f()
}

/// Something that held back work because a connection's writer was over its high-water
/// mark, woken when the writer drains. Owned here so the socket layer never names the
/// model's queues: a queue implements it.
pub(crate) trait DrainWaiter: Send + Sync {
    fn drained(self: Arc<Self>);
}

/// The parts of a connection that queues and channels need.
#[derive(Debug)]
pub(crate) struct ConnShared {
    /// Broker-wide connection id (exclusive queue ownership).
    pub(crate) id: u64,
    /// Negotiated frame_max: body frames are split to fit.
    pub(crate) frame_max: u32,
    /// Whether the client advertised `consumer_cancel_notify`.
    pub(crate) cancel_notify: bool,
    /// Frames are encoded straight into this buffer (one copy of each body, no allocation
    /// per frame) and the writer swaps it out whole.
    out: Mutex<OutBuf>,
    /// Ourselves, for the deferred-flush list.
    me: Weak<ConnShared>,
    /// On some thread's deferred-flush list already.
    deferred: AtomicBool,
    /// Wakes the writer; a notify without a waiter leaves a permit, so none is lost.
    wake: Notify,
    /// Bytes handed to the writer and not yet written.
    pending: AtomicUsize,
    /// Queues that held back deliveries because `pending` was high; kicked on drain.
    stalled: Mutex<Vec<Weak<dyn DrainWaiter>>>,
    /// Wakes the read loop when `pending` falls below the low-water mark again.
    drained: Notify,
    /// An error raised outside the connection's task (the store failed under a confirm
    /// it waited for): the read loop closes the connection with it.
    fatal: Mutex<Option<AmqpError>>,
    fatal_raised: Notify,
}

/// What the writer gets from `ConnShared::take`.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Frames to write, in order.
    Data(Bytes),
    /// Nothing queued yet.
    Idle,
    /// The connection is closing and everything has been handed out.
    Shutdown,
}

impl ConnShared {
    pub(crate) fn new(id: u64, frame_max: u32, cancel_notify: bool) -> Arc<ConnShared> {
        Arc::new_cyclic(|me| ConnShared {
            id,
            frame_max,
            cancel_notify,
            out: Mutex::new(OutBuf::default()),
            me: me.clone(),
            deferred: AtomicBool::new(false),
            wake: Notify::new(),
            pending: AtomicUsize::new(0),
            stalled: Mutex::new(Vec::new()),
            drained: Notify::new(),
            fatal: Mutex::new(None),
            fatal_raised: Notify::new(),
        })
    }

    fn lock_out(&self) -> MutexGuard<'_, OutBuf> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Allow (or, with None, stop) direct writes to the socket.
    pub(crate) fn set_direct(&self, direct: Option<Arc<dyn DirectWrite>>) {
        self.lock_out().direct = direct;
    }

    /// Wake the writer, or leave it to the end of the current `deferring` batch.
    fn wake_or_defer(&self) {
        let deferred = DEFERRED.with(|d| match d.borrow_mut().as_mut() {
            Some(list) => {
                if !self.deferred.swap(true, Ordering::SeqCst)
                    && let Some(me) = self.me.upgrade()
                {
                    list.push(me);
                }
                true
            }
            None => false,
        });
        if !deferred {
            self.wake.notify_one();
        }
    }

    /// Write what is queued straight to the socket when nobody else is writing and it
    /// is small; otherwise (or for what the socket would not take now) wake the writer.
    fn flush(&self) {
        let (data, direct) = {
            let mut out = self.lock_out();
            let Some(direct) = out.direct.clone() else {
                drop(out);
                self.wake.notify_one();
                return;
            };
            // A carry left by an unfinished direct write must go out first: only the
            // writer sends it, and everything queued after it waits its turn.
            if out.busy || out.carry.is_some() || out.buf.is_empty() || out.buf.len() > DIRECT_MAX {
                drop(out);
                self.wake.notify_one();
                return;
            }
            out.busy = true;
            (std::mem::take(&mut out.buf).freeze(), direct)
        };
        let mut done = 0;
        while done < data.len() {
            match direct.try_write(&data[done..]) {
                Ok(n) if n > 0 => done += n,
                // Would block, failed or closed: the writer finishes (or meets the error).
                _ => break,
            }
        }
        if done > 0 {
            self.written(done);
        }
        let more = {
            let mut out = self.lock_out();
            out.busy = false;
            if done < data.len() {
                debug_assert!(out.carry.is_none(), "a second carry would drop bytes");
                out.carry = Some(data.slice(done..));
            }
            out.carry.is_some() || !out.buf.is_empty() || out.shutdown
        };
        if more {
            self.wake.notify_one();
        }
    }

    /// Encode frames in place at the end of the outbound buffer and wake the writer.
    pub(crate) fn send_with(&self, encode: impl FnOnce(&mut BytesMut)) {
        {
            let mut out = self.lock_out();
            if out.shutdown {
                // The connection is going away; the frames have nowhere to go.
                return;
            }
            if out.buf.capacity() - out.buf.len() < 4096 {
                // Small for a quiet connection, doubling up to 64 KiB for a busy one.
                let grow = out.buf.len().clamp(8 * 1024, 64 * 1024);
                out.buf.reserve(grow);
            }
            let before = out.buf.len();
            encode(&mut out.buf);
            // Counted under the lock: a writer on another thread may take and write
            // these bytes (and subtract them) as soon as it is released.
            self.pending
                .fetch_add(out.buf.len() - before, Ordering::Relaxed);
        };
        self.wake_or_defer();
    }

    /// Queue encoded frames for the writer.
    pub(crate) fn send(&self, data: Bytes) {
        self.send_with(|b| b.extend_from_slice(&data));
    }

    /// Encode and queue one method frame.
    pub(crate) fn send_method(&self, channel: u16, method: AMQPClass) {
        self.send_with(|b| codec::put_method(b, channel, method));
    }

    /// Write what is queued, then close the socket.
    pub(crate) fn shutdown(&self) {
        self.lock_out().shutdown = true;
        self.wake.notify_one();
    }

    /// For the writer: everything queued so far, which it then owns the socket to write
    /// (until `released`). Idle while a direct write is under way: it wakes the writer
    /// when it leaves something behind.
    pub(crate) fn take(&self) -> Outbound {
        let mut out = self.lock_out();
        if out.busy {
            return Outbound::Idle;
        }
        if let Some(carry) = out.carry.take() {
            out.busy = true;
            Outbound::Data(carry)
        } else if !out.buf.is_empty() {
            out.busy = true;
            // Taken whole, allocation included: an idle connection then holds no
            // buffer (1,000 idle connections kept ~64 MiB resident otherwise).
            Outbound::Data(std::mem::take(&mut out.buf).freeze())
        } else if out.shutdown {
            out.direct = None;
            Outbound::Shutdown
        } else {
            Outbound::Idle
        }
    }

    /// The writer finished writing what `take` gave it.
    pub(crate) fn released(&self) {
        self.lock_out().busy = false;
    }

    /// Wait until something may have been queued (or the connection shuts down).
    pub(crate) async fn queued(&self) {
        self.wake.notified().await;
    }

    /// The writer wrote `n` bytes; when below the mark again, let stalled queues deliver.
    pub(crate) fn written(&self, n: usize) {
        let before = self.pending.fetch_sub(n, Ordering::Relaxed);
        if before - n < OUTBOUND_HIGH_WATER / 2 {
            if before >= OUTBOUND_HIGH_WATER / 2 {
                // A permit is kept if the read loop is not waiting yet: no lost wake-up.
                self.drained.notify_one();
            }
            let stalled =
                std::mem::take(&mut *self.stalled.lock().unwrap_or_else(|e| e.into_inner()));
            for q in stalled.iter().filter_map(Weak::upgrade) {
                q.drained();
            }
        }
    }

    /// Close the connection with `err` (from any thread; the first error wins).
    pub(crate) fn fail(&self, err: AmqpError) {
        let mut fatal = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if fatal.is_none() {
            *fatal = Some(err);
            self.fatal_raised.notify_one();
        }
    }

    /// Wait for an error raised by `fail`, and take it.
    pub(crate) async fn failed(&self) -> AmqpError {
        loop {
            if let Some(err) = self.fatal.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return err;
            }
            self.fatal_raised.notified().await;
        }
    }

    /// More is waiting for the socket than `READ_STOP`: stop reading the peer.
    pub(crate) fn backlogged(&self) -> bool {
        self.pending.load(Ordering::Relaxed) >= READ_STOP
    }

    /// Wait until the backlog fell below the low-water mark (half the high-water mark).
    pub(crate) async fn drained(&self) {
        self.drained.notified().await;
    }

    /// Over the high-water mark: `waiter` is remembered (once) and woken on drain.
    pub(crate) fn over_high_water<W: DrainWaiter + 'static>(&self, waiter: &Arc<W>) -> bool {
        if self.pending.load(Ordering::Relaxed) < OUTBOUND_HIGH_WATER {
            return false;
        }
        let mut stalled = self.stalled.lock().unwrap_or_else(|e| e.into_inner());
        let me = Arc::as_ptr(waiter) as *const ();
        if !stalled.iter().any(|w| w.as_ptr() as *const () == me) {
            let weak: Weak<dyn DrainWaiter> = Arc::downgrade(waiter) as Weak<dyn DrainWaiter>;
            stalled.push(weak);
        }
        true
    }
}
