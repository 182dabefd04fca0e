//! A queue: ready messages in order (by priority for `x-max-priority` queues), consumers
//! served round-robin by consumer priority while they have credit, requeued messages back
//! at their original position, TTL expiry at the head, length limits, dead-lettering.
//!
//! Lock order: a queue's state, then a channel's delivery state (see `model/delivery.rs`);
//! never the other way round, and no lock is held across an `.await`. Dead-lettering
//! publishes into other queues, so it always runs after the queue's own lock is released.

mod dispatch;
mod entry;
pub(crate) mod expiry;
mod log_tasks;
mod policy;
pub(crate) mod ready;
mod settle;
mod snapshot;

pub(crate) use entry::{Consumer, Enqueued, Entry};

use expiry::Expiry;

use crate::broker::model::args::{Overflow, PackedTable, QueueArgs};
use crate::broker::model::deadletter::Reason;
use crate::broker::model::delivery::ChannelShared;
use crate::broker::model::message::MessageRef;
use crate::broker::model::policy::{Applied, effective_args};
use crate::broker::model::queue::ready::Ready;
use crate::broker::model::vhost::VHost;
use crate::broker::ops::counters::{QueueCounters, Stat};
use crate::broker::store::queue_log::QueueLog;
use amq_protocol::types::FieldTable;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// Mutable queue state, behind the queue's own lock.
#[derive(Debug)]
struct QueueState {
    ready: Ready,
    next_seq: u64,
    /// Sorted by priority, highest first (registration order within a priority).
    consumers: Vec<Consumer>,
    /// Round-robin position among consumers of the same priority.
    next_consumer: usize,
    /// Delivered, not yet acked or requeued.
    unacked: usize,
    /// Body bytes of those (RabbitMQ's `message_bytes_unacknowledged`).
    unacked_bytes: u64,
    /// An auto-delete queue is deleted when its last consumer goes, only if it ever had one.
    had_consumer: bool,
    deleted: bool,
    /// The earliest armed TTL timer, so one is not spawned per message.
    timer_at: Option<Instant>,
    /// Last use (declare, get, consumer gone) for `x-expires`.
    last_used: Instant,
    /// Messages to dead-letter once the lock is released.
    dead: Vec<(MessageRef, Reason)>,
    /// The message log of a durable queue under `--data-dir`.
    log: Option<QueueLog>,
    /// The policies that apply now (`policy.rs`), for listings.
    applied: Option<Arc<Applied>>,
    /// The arguments in force: the declared ones combined with `applied`. TTL, limits,
    /// overflow, dead-lettering, expiry and the delivery limit are read from here.
    eff: QueueArgs,
}

impl QueueState {
    /// Deliveries came back (acked, rejected or requeued): no longer unacked.
    fn settled_deliveries(&mut self, entries: &[Entry]) {
        self.unacked = self.unacked.saturating_sub(entries.len());
        let bytes: u64 = entries.iter().map(|e| u64::from(e.size)).sum();
        self.unacked_bytes = self.unacked_bytes.saturating_sub(bytes);
    }

    /// Record that a stored message left the queue for good.
    fn settle_stored(&mut self, e: &Entry) {
        if let (Some(log), Some((seg, _))) = (&mut self.log, e.stored)
            && let Err(err) = log.settled(e.seq, seg)
        {
            tracing::error!("cannot write a queue log: {err}");
        }
    }

    /// Record that a stored message is handed to a consumer (ack mode); false when it
    /// cannot be, and then it must not be handed out.
    fn mark_delivered(&mut self, e: &Entry) -> bool {
        match (&mut self.log, e.stored) {
            (Some(log), Some(_)) => log.record_delivery(e.seq, false),
            _ => true,
        }
    }
}

/// A queue in a vhost.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) name: String,
    pub(crate) vhost: String,
    /// For dead-lettering and `x-expires` self-deletion.
    vhost_ref: Weak<VHost>,
    pub(crate) durable: bool,
    /// Id of the owning connection for exclusive queues.
    pub(crate) exclusive_owner: Option<u64>,
    pub(crate) auto_delete: bool,
    /// Directory id of the message log when the queue is persisted (`queues/<id>`).
    pub(crate) log_id: Option<u64>,
    /// The declare arguments as received (redeclare equivalence, listing).
    pub(crate) arguments: PackedTable,
    /// The declared arguments, validated: the queue's type and the settings no policy
    /// changes (priorities, single active consumer). What policies may change is in
    /// the state's `eff`.
    pub(crate) args: QueueArgs,
    state: Mutex<QueueState>,
    /// Publish/deliver/ack counts for the management API (relaxed atomics).
    pub(crate) counters: QueueCounters,
}

/// What a queue is declared as.
#[derive(Debug)]
pub(crate) struct QueueSpec {
    pub(crate) name: String,
    pub(crate) durable: bool,
    /// The owning connection of an exclusive queue.
    pub(crate) exclusive_owner: Option<u64>,
    pub(crate) auto_delete: bool,
    /// The arguments as received.
    pub(crate) arguments: FieldTable,
    /// The same, validated.
    pub(crate) args: QueueArgs,
}

/// Why a consumer could not be added.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ConsumeRefused {
    /// The queue (or the new consumer) is exclusive and someone else consumes.
    ExclusiveUse,
    /// The queue was deleted meanwhile.
    Deleted,
}

impl Queue {
    /// A new queue under the policies `applied` to it; starts its `x-expires` watch
    /// when it has one.
    pub(crate) fn create(
        spec: QueueSpec,
        vhost: &Arc<VHost>,
        log: Option<(u64, QueueLog)>,
        applied: Option<Arc<Applied>>,
    ) -> Arc<Queue> {
        let QueueSpec {
            name,
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            args,
        } = spec;
        let (log_id, log) = match log {
            Some((id, l)) => (Some(id), Some(l)),
            None => (None, None),
        };
        let q = Arc::new(Queue {
            name,
            vhost: vhost.name.clone(),
            vhost_ref: Arc::downgrade(vhost),
            durable,
            exclusive_owner,
            auto_delete,
            log_id,
            arguments: PackedTable::pack(&arguments),
            state: Mutex::new(QueueState {
                ready: Ready::new(args.max_priority),
                next_seq: 0,
                unacked_bytes: 0,
                consumers: Vec::new(),
                next_consumer: 0,
                unacked: 0,
                had_consumer: false,
                deleted: false,
                timer_at: None,
                last_used: Instant::now(),
                dead: Vec::new(),
                log,
                eff: effective_args(&args, applied.as_deref()),
                applied,
            }),
            args,
            counters: QueueCounters::new(vhost.counters.retired.clone()),
        });
        q.hand_disk_work_to_the_store(vhost);
        let expires = q.lock().eff.expires;
        if let Some(ms) = expires {
            let at = Instant::now() + Duration::from_millis(ms);
            vhost.expiry.watch(Arc::downgrade(&q), at);
        }
        q
    }

    /// An `x-expires` deadline arrived: delete the queue if it really expired, else
    /// watch it again (see `expiry::next_check`).
    fn check_expiry(self: &Arc<Self>, expiry: &Arc<Expiry>, now: Instant) {
        let next = {
            let st = self.lock();
            // A policy may have lifted the expiry since this watch was set.
            let Some(ms) = st.eff.expires else {
                return;
            };
            if st.deleted {
                return;
            }
            expiry::next_check(
                st.last_used,
                Duration::from_millis(ms),
                !st.consumers.is_empty(),
                now,
            )
        };
        match next {
            Some(at) => expiry.watch(Arc::downgrade(self), at),
            None => {
                if let Some(vhost) = self.vhost_ref.upgrade() {
                    vhost.delete_queue(self);
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic elsewhere must not wedge the queue: the state stays consistent per operation.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` under the lock, then re-arm the TTL timer and dead-letter what `f` dropped.
    fn with<T>(self: &Arc<Self>, f: impl FnOnce(&Arc<Self>, &mut QueueState) -> T) -> T {
        let (out, dead) = {
            let mut st = self.lock();
            let out = f(self, &mut st);
            self.arm_ttl_timer(&mut st);
            let dead = std::mem::take(&mut st.dead);
            // Where they go is decided now, under the policies they were dropped under.
            let target = (!dead.is_empty()).then(|| {
                (
                    st.eff.dead_letter_exchange.clone(),
                    st.eff.dead_letter_routing_key.clone(),
                )
            });
            (out, target.map(|t| (dead, t)))
        };
        if let Some((dead, (dlx, dlrk))) = dead {
            self.dead_letter(dead, dlx, dlrk);
        }
        out
    }

    /// Enqueue a published message (`ttl_ms`: its own `expiration`) and hand it to a
    /// consumer if one has credit.
    pub(crate) fn publish(self: &Arc<Self>, msg: MessageRef, ttl_ms: Option<u64>) -> Enqueued {
        self.with(|q, st| {
            if st.deleted {
                return Enqueued::Gone;
            }
            let (overflow, queue_ttl) = (st.eff.overflow_mode(), st.eff.message_ttl);
            // reject-publish refuses a message that would take the queue past a limit.
            if overflow != Overflow::DropHead
                && (st
                    .eff
                    .max_length
                    .is_some_and(|m| st.ready.len() as u64 >= m)
                    || st
                        .eff
                        .max_length_bytes
                        .is_some_and(|m| st.ready.bytes() + msg.body.len() as u64 > m))
            {
                if overflow == Overflow::RejectPublishDlx {
                    st.dead.push((msg, Reason::Maxlen));
                }
                return Enqueued::Rejected;
            }
            // TTL 0 still reaches a waiting consumer: expiry is judged against `now`,
            // taken before the message was queued.
            let now = Instant::now();
            let ttl = match (queue_ttl, ttl_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            q.counters.own.add(Stat::Publish, 1);
            let seq = st.next_seq;
            st.next_seq += 1;
            let stored = match &mut st.log {
                Some(log) if msg.is_persistent() => {
                    let expires = ttl.map_or(0, |ms| unix_ms().saturating_add(ms));
                    match log.publish(seq, msg.record(), expires) {
                        Ok(at) => Some(at),
                        Err(e) => {
                            // Not on disk, so not accepted: the publisher gets a nack.
                            tracing::error!("cannot write queue '{}' log: {e}", q.name);
                            return Enqueued::Rejected;
                        }
                    }
                }
                _ => None,
            };
            // Past the resident limit a stored message lives on disk only, so a deep
            // durable queue costs memory per message, not per byte.
            let (size, priority) = (
                msg.body.len() as u32,
                msg.properties.priority().unwrap_or(0),
            );
            let paged = stored.is_some()
                && st
                    .log
                    .as_ref()
                    .is_some_and(|l| st.ready.resident() >= l.resident_limit);
            st.ready.push_back(Entry {
                msg: (!paged).then_some(msg),
                redelivered: false,
                seq,
                expires_at: ttl.map(|ms| now + Duration::from_millis(ms)),
                stored,
                size,
                priority,
                delivery_count: 0,
            });
            q.dispatch(st, now);
            q.enforce_limits(st);
            q.expire_head(st, Instant::now());
            if stored.is_some() {
                Enqueued::Stored
            } else {
                Enqueued::Accepted
            }
        })
    }

    /// Load messages recovered from the log (at start-up, before clients connect): the
    /// first ones into memory, the rest stay paged out. New messages get seqs from
    /// `next_seq` on: lower ones may still be named by settle records in the log.
    pub(crate) fn restore(self: &Arc<Self>, entries: Vec<Entry>, next_seq: u64) {
        self.with(|q, st| {
            st.next_seq = st.next_seq.max(next_seq);
            for mut e in entries {
                st.next_seq = st.next_seq.max(e.seq + 1);
                if st
                    .log
                    .as_ref()
                    .is_some_and(|l| st.ready.resident() < l.resident_limit)
                {
                    e.msg = q.load(st, &e);
                }
                st.ready.push_back(e);
            }
            q.expire_head(st, Instant::now());
        })
    }

    /// Credit may have appeared (a channel acked, a writer drained): try to deliver.
    pub(crate) fn kick(self: &Arc<Self>) {
        self.with(|q, st| q.dispatch(st, Instant::now()))
    }

    /// Mark the queue used now (declare, basic.get): postpones `x-expires`.
    pub(crate) fn touch(&self) {
        self.lock().last_used = Instant::now();
    }

    /// Attach a consumer; `on_added` runs (under the queue's lock) before the first
    /// delivery, so basic.consume-ok precedes every basic.deliver. Deliveries start at once.
    pub(crate) fn add_consumer(
        self: &Arc<Self>,
        consumer: Consumer,
        on_added: impl FnOnce(),
    ) -> Result<(), ConsumeRefused> {
        self.with(|q, st| {
            if st.deleted {
                return Err(ConsumeRefused::Deleted);
            }
            if (consumer.exclusive && !st.consumers.is_empty())
                || st.consumers.iter().any(|c| c.exclusive)
            {
                return Err(ConsumeRefused::ExclusiveUse);
            }
            // Single active consumer: registration order decides, priorities don't.
            let at = if q.args.single_active_consumer {
                st.consumers.len()
            } else {
                st.consumers
                    .partition_point(|c| c.priority >= consumer.priority)
            };
            st.consumers.insert(at, consumer);
            st.had_consumer = true;
            on_added();
            q.dispatch(st, Instant::now());
            Ok(())
        })
    }

    /// Detach a consumer. Returns true when an auto-delete queue just lost its last consumer.
    pub(crate) fn remove_consumer(
        self: &Arc<Self>,
        channel: &Arc<ChannelShared>,
        tag: &str,
    ) -> bool {
        self.with(|q, st| {
            st.consumers
                .retain(|c| !(Arc::ptr_eq(&c.channel, channel) && &*c.tag == tag));
            if st.consumers.is_empty() {
                st.last_used = Instant::now();
            }
            // With a single active consumer, the next one may take over now.
            q.dispatch(st, Instant::now());
            q.auto_delete && st.had_consumer && st.consumers.is_empty() && !st.deleted
        })
    }

    /// Take the head message for basic.get: (entry, messages left).
    pub(crate) fn get(self: &Arc<Self>, ack: bool) -> Option<(Entry, u32)> {
        self.with(|q, st| {
            st.last_used = Instant::now();
            q.expire_head(st, Instant::now());
            let Some(mut e) = st.ready.pop_front() else {
                q.counters.own.add(Stat::GetEmpty, 1);
                return None;
            };
            q.count_delivery(if ack { Stat::Get } else { Stat::GetNoAck }, e.redelivered);
            if e.msg.is_none() {
                e.msg = q.load(st, &e);
                if e.msg.is_none() {
                    // Unreadable from the log (reported by load): it cannot be delivered.
                    st.settle_stored(&e);
                    return None;
                }
            }
            if ack {
                if !st.mark_delivered(&e) {
                    // Not recordable now (a full disk): it stays at the head.
                    st.ready.insert_requeued(e);
                    return None;
                }
                st.unacked += 1;
                st.unacked_bytes += u64::from(e.size);
            } else {
                st.settle_stored(&e);
            }
            Some((e, st.ready.len() as u32))
        })
    }

    /// Drop every ready message; returns how many.
    pub(crate) fn purge(&self) -> u32 {
        let mut st = self.lock();
        let purged = st.ready.drain();
        for e in &purged {
            st.settle_stored(e);
        }
        purged.len() as u32
    }

    /// Mark deleted and return (ready count, consumers to notify).
    pub(crate) fn mark_deleted(&self) -> (u32, Vec<Consumer>) {
        let (n, consumers, log) = {
            let mut st = self.lock();
            st.deleted = true;
            let n = st.ready.drain().len() as u32;
            (n, std::mem::take(&mut st.consumers), st.log.take())
        };
        // Its files go without the queue's lock held.
        if let Some(log) = log {
            log.destroy();
        }
        (n, consumers)
    }

    fn count_delivery(&self, stat: Stat, redelivered: bool) {
        self.counters.own.add(stat, 1);
        if redelivered {
            self.counters.own.add(Stat::Redeliver, 1);
        }
    }
}

/// Milliseconds since the Unix epoch (stored expiry survives restarts; Instants do not).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A consumer's writer drained below its high-water mark: deliveries held back resume.
impl crate::broker::wire::outbound::DrainWaiter for Queue {
    fn drained(self: Arc<Self>) {
        self.kick();
    }
}
