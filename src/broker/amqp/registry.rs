//! Open connections and their channels, as the management API lists them, and the way to
//! close one from outside (`DELETE /api/connections/{name}`). Touched on connection and
//! channel open/close only, never per message.

use crate::broker::model::delivery::ChannelShared;
use crate::broker::wire::outbound::ConnShared;
use amq_protocol::types::FieldTable;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Every open connection, by broker-wide id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Ordered by id, so listings come out in connection order.
    conns: Mutex<BTreeMap<u64, Arc<ConnEntry>>>,
}

/// What the management API knows about one open connection.
#[derive(Debug)]
pub(crate) struct ConnEntry {
    /// RabbitMQ's connection name: `"peer -> local"`, the key of `DELETE /api/connections/{name}`.
    pub(crate) name: String,
    /// Authenticated user.
    pub(crate) user: String,
    /// The vhost it opened.
    pub(crate) vhost: String,
    /// The client's address (`peer_host`, `peer_port`).
    pub(crate) peer: SocketAddr,
    /// Our end (`host`, `port`).
    pub(crate) local: SocketAddr,
    /// Over amqps (`ssl`).
    pub(crate) tls: bool,
    /// What the client announced in connection.start-ok.
    pub(crate) client_properties: FieldTable,
    /// Unix time in milliseconds (`connected_at`).
    pub(crate) connected_at: u64,
    /// Negotiated limits, listed as RabbitMQ lists them.
    pub(crate) frame_max: u32,
    pub(crate) channel_max: u16,
    pub(crate) heartbeat: u16,
    /// The connection's outbound side (its id keys consumers and exclusive queues).
    pub(crate) shared: Arc<ConnShared>,
    /// Open channels by number.
    channels: Mutex<BTreeMap<u16, Arc<ChannelEntry>>>,
    /// `running`, `blocking` or `blocked` (resource alarms), kept by its throttle.
    pub(crate) flow: crate::broker::wire::flow::FlowCell,
    /// Woken to close the connection with 320 CONNECTION_FORCED (the read loop waits on it).
    pub(crate) close: Notify,
    /// The reason given with the forced close (`X-Reason`).
    close_reason: Mutex<Option<String>>,
}

/// One open channel's settings: the one copy, which the connection task changes and
/// reads and the management API lists.
#[derive(Debug)]
pub(crate) struct ChannelEntry {
    /// Unacked deliveries, consumers and global prefetch live here.
    shared: Arc<ChannelShared>,
    /// basic.qos global=false: the prefetch new consumers get.
    prefetch: AtomicU32,
    /// confirm.select seen.
    confirm: AtomicBool,
    /// tx.select seen.
    transactional: AtomicBool,
}

/// Fields of a new connection entry (everything known once the handshake is done).
#[derive(Debug)]
pub(crate) struct NewConn {
    /// Over amqps.
    pub(crate) tls: bool,
    pub(crate) user: String,
    pub(crate) vhost: String,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) client_properties: FieldTable,
    pub(crate) frame_max: u32,
    pub(crate) channel_max: u16,
    pub(crate) heartbeat: u16,
    pub(crate) shared: Arc<ConnShared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    pub(crate) fn add(&self, c: NewConn) -> Arc<ConnEntry> {
        let entry = Arc::new(ConnEntry {
            name: format!("{} -> {}", c.peer, c.local),
            user: c.user,
            vhost: c.vhost,
            peer: c.peer,
            local: c.local,
            tls: c.tls,
            client_properties: c.client_properties,
            connected_at: crate::broker::model::queue::unix_ms(),
            frame_max: c.frame_max,
            channel_max: c.channel_max,
            heartbeat: c.heartbeat,
            channels: Mutex::new(BTreeMap::new()),
            flow: crate::broker::wire::flow::FlowCell::default(),
            close: Notify::new(),
            close_reason: Mutex::new(None),
            shared: c.shared,
        });
        lock(&self.conns).insert(entry.shared.id, entry.clone());
        entry
    }

    pub(crate) fn remove(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }

    /// Every open connection, in connection order.
    pub(crate) fn connections(&self) -> Vec<Arc<ConnEntry>> {
        lock(&self.conns).values().cloned().collect()
    }

    pub(crate) fn get(&self, id: u64) -> Option<Arc<ConnEntry>> {
        lock(&self.conns).get(&id).cloned()
    }

    /// A channel of connection `id` (for its qos/confirm/tx settings).
    /// List a channel under its connection (when the connection is listed).
    pub(crate) fn channel_opened(&self, entry: &Arc<ChannelEntry>) {
        if let Some(c) = self.get(entry.shared.conn.id) {
            lock(&c.channels).insert(entry.shared.id, entry.clone());
        }
    }

    pub(crate) fn channel_closed(&self, conn: u64, ch: u16) {
        if let Some(c) = self.get(conn) {
            lock(&c.channels).remove(&ch);
        }
    }
}

impl ConnEntry {
    /// Open channels in number order.
    pub(crate) fn channels(&self) -> Vec<Arc<ChannelEntry>> {
        lock(&self.channels).values().cloned().collect()
    }

    /// Ask the connection to close with 320 CONNECTION_FORCED and `reason`.
    pub(crate) fn force_close(&self, reason: String) {
        *lock(&self.close_reason) = Some(reason);
        // notify_one keeps a permit, so a close asked before the loop waits still lands.
        self.close.notify_one();
    }

    /// The reason given to `force_close`.
    pub(crate) fn close_reason(&self) -> String {
        lock(&self.close_reason)
            .clone()
            .unwrap_or_else(|| "Closed via management plugin".to_string())
    }

    /// `name (N)`, RabbitMQ's channel name.
    pub(crate) fn channel_name(&self, ch: u16) -> String {
        format!("{} ({ch})", self.name)
    }
}

impl ChannelEntry {
    pub(crate) fn new(shared: Arc<ChannelShared>) -> Arc<ChannelEntry> {
        Arc::new(ChannelEntry {
            shared,
            prefetch: AtomicU32::new(0),
            confirm: AtomicBool::new(false),
            transactional: AtomicBool::new(false),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<ChannelShared> {
        &self.shared
    }

    /// The prefetch consumers created from now on get (basic.qos global=false).
    pub(crate) fn prefetch(&self) -> u32 {
        self.prefetch.load(Ordering::Relaxed)
    }

    pub(crate) fn set_prefetch(&self, n: u32) {
        self.prefetch.store(n, Ordering::Relaxed);
    }

    /// In confirm mode (confirm.select).
    pub(crate) fn confirm(&self) -> bool {
        self.confirm.load(Ordering::Relaxed)
    }

    pub(crate) fn select_confirm(&self) {
        self.confirm.store(true, Ordering::Relaxed);
    }

    /// Transactional (tx.select).
    pub(crate) fn transactional(&self) -> bool {
        self.transactional.load(Ordering::Relaxed)
    }

    pub(crate) fn select_tx(&self) {
        self.transactional.store(true, Ordering::Relaxed);
    }
}
