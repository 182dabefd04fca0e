//! An open connection's state machine: channel table, frame routing, content assembly,
//! channel vs connection exceptions. Method handlers live in `methods_*.rs`.

use crate::broker::access::Access;
use crate::broker::access::Resource;
use crate::broker::access::grant::Grant;
use crate::broker::amqp::channel::{Channel, Content};
use crate::broker::amqp::handshake::Negotiated;
use crate::broker::error::{AmqpError, AmqpResult, code};
use crate::broker::model::queue::Queue;
use crate::broker::model::vhost::VHost;
use crate::broker::state::BrokerState;
use crate::broker::wire::outbound::ConnShared;
use crate::codec::{
    self, DecodeError, FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, RawFrame,
};
use amq_protocol::protocol::{AMQPClass, channel, connection};
use bytes::BytesMut;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

/// How a connection ends.
#[derive(Debug)]
pub(crate) enum End {
    /// We close it with this error (connection exception or shutdown).
    Close(AmqpError),
    /// The client sent connection.close and we answered close-ok.
    ClientClosed,
    /// The socket is gone or the peer is dead.
    PeerGone(String),
}

/// An open connection.
#[derive(Debug)]
pub(crate) struct Session {
    pub(super) broker: Arc<BrokerState>,
    pub(super) conn: Arc<ConnShared>,
    pub(super) vhost: Arc<VHost>,
    pub(super) user: String,
    /// The user's permission in this vhost, re-read when it changes.
    pub(super) grant: Grant,
    pub(super) frame_max: u32,
    pub(super) channel_max: u16,
    pub(super) channels: HashMap<u16, Channel>,
    /// Exclusive queues this connection declared: deleted when it closes.
    pub(super) exclusive_queues: Vec<Arc<Queue>>,
    /// A message of this read batch went to a queue log: confirms wait for the fsync.
    pub(super) awaiting_sync: bool,
    /// Confirm batches handed to the sync thread and not yet sent: while any is
    /// outstanding, later confirms queue behind it so acks never overtake each other.
    pub(super) sync_outstanding: Arc<AtomicUsize>,
    /// A complete message arrived since the read loop last asked (resource alarms block
    /// a connection that publishes).
    pub(super) published: bool,
    /// Channels whose close crossed ours: the client's close was answered and the channel
    /// released, but the client's close-ok for our close is still due (and is ignored).
    pub(super) crossed_close: std::collections::HashSet<u16>,
    /// Set by a connection task: handlers may wait for disk work off the runtime's
    /// threads (`session_disk`); false runs it in place.
    pub(super) waits_for_disk: bool,
    /// A handler waiting for its disk work: nothing more is handled until it finished.
    pub(super) disk_wait: Option<crate::broker::amqp::session_disk::DiskWait>,
    /// Class and method ids of the channel method being handled.
    pub(super) handling: (u16, u16),
    /// The connection's place under `--max-connections`: freed when the session goes.
    _slot: crate::broker::ops::conn_limit::ConnSlot,
    /// Its place under the vhost's `max-connections`: freed when the session goes.
    _vhost_slot: Option<crate::broker::ops::vhost_limits::VhostConnSlot>,
}

impl Session {
    /// Tests drive one session with other frame sizes than negotiated.
    #[cfg(test)]
    pub(crate) fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    pub(crate) fn new(broker: Arc<BrokerState>, conn: Arc<ConnShared>, neg: Negotiated) -> Session {
        let grant = Grant::new(&broker.auth, &neg.user, &neg.vhost.name);
        Session {
            broker,
            conn,
            vhost: neg.vhost,
            user: neg.user,
            grant,
            frame_max: neg.frame_max,
            channel_max: neg.channel_max,
            channels: HashMap::new(),
            exclusive_queues: Vec::new(),
            awaiting_sync: false,
            sync_outstanding: Arc::new(AtomicUsize::new(0)),
            published: false,
            crossed_close: std::collections::HashSet::new(),
            waits_for_disk: false,
            disk_wait: None,
            handling: (0, 0),
            _slot: neg.slot,
            _vhost_slot: neg.vhost_slot,
        }
    }

    /// 403 unless this connection's user may do `access` to the named resource.
    pub(crate) fn permit(&mut self, access: Access, kind: Resource, name: &str) -> AmqpResult {
        self.grant.check(&self.broker.auth, access, kind, name)
    }

    /// Topic permissions on `exchange` for `key`, when it is a topic exchange (write:
    /// publish; read: bind and unbind), as RabbitMQ checks them after the resource's.
    pub(crate) fn permit_topic(
        &mut self,
        access: Access,
        exchange: &crate::broker::model::exchange::Exchange,
        key: &str,
    ) -> AmqpResult {
        if exchange.kind != crate::broker::model::exchange::ExchangeKind::Topic {
            return Ok(());
        }
        self.grant
            .check_topic(&self.broker.auth, access, &exchange.name, key)
    }

    /// Handle every complete frame in `buf`, then send the confirms they earned.
    pub(crate) fn process(&mut self, buf: &mut BytesMut) -> Result<(), End> {
        let result = loop {
            match codec::next_frame(buf, self.frame_max) {
                Ok(Some(frame)) => {
                    if let Err(end) = self.handle_frame(frame) {
                        break Err(end);
                    }
                    if self.disk_wait.is_some() {
                        // The rest waits for that handler's reply (`session_disk`).
                        break Ok(());
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(End::Close(e)),
            }
        };
        self.flush_confirms();
        result
    }

    fn handle_frame(&mut self, frame: RawFrame) -> Result<(), End> {
        let ch = frame.channel;
        match frame.kind {
            FRAME_HEARTBEAT if ch == 0 => Ok(()),
            FRAME_HEARTBEAT => Err(End::Close(AmqpError::new(
                code::UNEXPECTED_FRAME,
                codec::describe_frame(FRAME_HEARTBEAT, &frame.payload),
            ))),
            FRAME_METHOD => {
                let method = match codec::decode_method(&frame.payload) {
                    Ok(m) => m,
                    // RabbitMQ drops a peer that sends an undefined method, without a close.
                    Err(DecodeError::Unknown(c, m)) => {
                        return Err(End::PeerGone(format!(
                            "unknown method (class {c}, method {m})"
                        )));
                    }
                    Err(DecodeError::Malformed(e)) => return Err(End::Close(e)),
                };
                if ch == 0 {
                    self.connection_method(method)
                } else {
                    self.channel_method(ch, method, &frame.payload)
                }
            }
            FRAME_HEADER | FRAME_BODY => self.content_frame(ch, frame.kind, frame.payload),
            _ => Err(End::Close(AmqpError::new(
                code::FRAME_ERROR,
                "unknown frame type",
            ))),
        }
    }

    fn connection_method(&mut self, method: AMQPClass) -> Result<(), End> {
        let ids = (method.get_amqp_class_id(), method.get_amqp_method_id());
        match method {
            AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
                tracing::debug!(
                    "connection {} closed by client: {} {}",
                    self.conn.id,
                    c.reply_code,
                    c.reply_text
                );
                // Release first: once close-ok is on the wire (written at the end of this
                // batch), the client may act on the connection being gone — its exclusive
                // queues must be gone and its unacked messages requeued by then.
                self.teardown();
                self.conn.send_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                Err(End::ClientClosed)
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Err(End::ClientClosed),
            // RabbitMQ 3.10 answers update-secret-ok whatever the secret: its internal
            // backend keeps the user it authenticated (only token backends re-check).
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(u)) => {
                tracing::debug!("connection {}: update-secret ({})", self.conn.id, u.reason);
                self.conn.send_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                        connection::UpdateSecretOk {},
                    )),
                );
                Ok(())
            }
            // Whatever else arrives on channel 0 once the connection runs (channel.open
            // included): RabbitMQ's 504 from rabbit_reader.
            _ => Err(End::Close(
                AmqpError::new(
                    code::CHANNEL_ERROR,
                    "unexpected method in connection state running",
                )
                .on_method(ids.0, ids.1),
            )),
        }
    }

    fn channel_method(&mut self, ch: u16, method: AMQPClass, payload: &[u8]) -> Result<(), End> {
        let ids = (method.get_amqp_class_id(), method.get_amqp_method_id());
        let hard = |e: AmqpError| End::Close(e.on_method(ids.0, ids.1));
        if let AMQPClass::Channel(channel::AMQPMethod::Open(_)) = method {
            if self.channels.contains_key(&ch) {
                return Err(hard(AmqpError::new(
                    code::CHANNEL_ERROR,
                    "second 'channel.open' seen",
                )));
            }
            // RabbitMQ (rabbit_reader) limits how many channels are open, not their
            // numbers: channel 65535 opens after negotiating 2047. The error names no method.
            let open = self.channels.len();
            if self.channel_max != 0 && open >= usize::from(self.channel_max) {
                return Err(End::Close(AmqpError::new(
                    code::NOT_ALLOWED,
                    format_args!(
                        "number of channels opened ({open}) has reached the negotiated channel_max ({})",
                        self.channel_max
                    ),
                )));
            }
            self.crossed_close.remove(&ch);
            let chan = Channel::new(ch, self.conn.clone());
            self.broker.registry.channel_opened(&chan.settings);
            self.channels.insert(ch, chan);
            self.conn.send_method(
                ch,
                AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
            );
            return Ok(());
        }
        let Some(chan) = self.channels.get_mut(&ch) else {
            // The close-ok for our channel.close, when the client's own close crossed it:
            // the channel is already gone (we answered the client's close), and the late
            // close-ok is part of the handshake (§2.2.4), ignored as RabbitMQ does.
            if matches!(method, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)))
                && self.crossed_close.remove(&ch)
            {
                return Ok(());
            }
            return Err(hard(AmqpError::new(
                code::CHANNEL_ERROR,
                "expected 'channel.open'",
            )));
        };
        if chan.closing {
            // AMQP 0-9-1 §2.2.4: after channel.close, discard all but close and close-ok.
            match method {
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                    self.channels.remove(&ch);
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                    self.conn.send_method(
                        ch,
                        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    );
                    self.channels.remove(&ch);
                    // Our close still waits for its close-ok, which comes next.
                    self.crossed_close.insert(ch);
                }
                _ => {}
            }
            return Ok(());
        }
        if !matches!(chan.content, Content::Idle) {
            return Err(hard(AmqpError::new(
                code::UNEXPECTED_FRAME,
                "expected content header for class 60, got non content header frame instead",
            )));
        }
        self.handling = ids;
        let result = self.dispatch(ch, method, payload);
        self.finish(ch, ids, result)
    }

    /// A channel method's outcome: a channel exception closes the channel, a hard one
    /// the connection.
    pub(crate) fn finish(
        &mut self,
        ch: u16,
        ids: (u16, u16),
        result: AmqpResult,
    ) -> Result<(), End> {
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = e.on_method(ids.0, ids.1);
                if e.is_hard() {
                    Err(End::Close(e))
                } else {
                    self.close_channel(ch, e);
                    Ok(())
                }
            }
        }
    }

    /// Route a channel method to its handler.
    fn dispatch(&mut self, ch: u16, method: AMQPClass, payload: &[u8]) -> AmqpResult {
        match method {
            AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                if let Some(mut chan) = self.channels.remove(&ch) {
                    self.release_channel(&mut chan);
                }
                self.conn.send_method(
                    ch,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                );
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => Ok(()),
            AMQPClass::Channel(channel::AMQPMethod::Flow(f)) => {
                if !f.active {
                    // RabbitMQ refuses client-initiated flow control the same way.
                    return Err(AmqpError::not_implemented("active=false"));
                }
                self.conn.send_method(
                    ch,
                    AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                        active: true,
                    })),
                );
                Ok(())
            }
            AMQPClass::Exchange(m) => self.exchange_method(ch, m),
            AMQPClass::Queue(m) => self.queue_method(ch, m),
            AMQPClass::Basic(m) => self.basic_method(ch, m, payload),
            AMQPClass::Confirm(m) => self.confirm_method(ch, m),
            AMQPClass::Tx(m) => self.tx_method(ch, m),
            AMQPClass::Access(_) => {
                // access.request is deprecated; RabbitMQ answers request-ok.
                self.conn.send_method(
                    ch,
                    AMQPClass::Access(amq_protocol::protocol::access::AMQPMethod::RequestOk(
                        amq_protocol::protocol::access::RequestOk {},
                    )),
                );
                Ok(())
            }
            other => Err(AmqpError::new(
                code::COMMAND_INVALID,
                format_args!("unexpected method {} on channel {ch}", method_name(&other)),
            )),
        }
    }

    pub(crate) fn chan(&mut self, ch: u16) -> &mut Channel {
        self.channels
            .get_mut(&ch)
            .expect("dispatch only runs for open channels")
    }

    pub(crate) fn reply(&self, ch: u16, method: AMQPClass) {
        self.conn.send_method(ch, method);
    }
}

/// `class.method` for error texts.
pub(crate) fn method_name(m: &AMQPClass) -> String {
    let dbg = format!("{m:?}");
    // e.g. `Basic(Deliver(Deliver { ... }))` → `basic.deliver`
    let mut parts = dbg.split(['(', ' ', '{']).filter(|s| !s.is_empty());
    let class = parts.next().unwrap_or("?").to_lowercase();
    let method = parts.next().unwrap_or("?").to_lowercase();
    format!("{class}.{method}")
}
