//! A channel as its connection's task sees it: content being assembled, confirm and tx
//! state, the last declared queue. What queues share with it is `model::delivery`;
//! its settings the management API lists are the registry's `ChannelEntry`.

use crate::broker::amqp::registry::ChannelEntry;
use crate::broker::model::delivery::{ChannelShared, Settle, Unacked};
use crate::broker::model::message::MessageRef;
use crate::broker::wire::outbound::ConnShared;
use amq_protocol::protocol::BasicProperties;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;

/// A basic.publish waiting for its content.
#[derive(Debug)]
pub(crate) struct PendingPublish {
    pub(super) exchange: String,
    pub(super) routing_key: String,
    pub(super) mandatory: bool,
}

/// Content assembly (AMQP 0-9-1 §4.2.6): method, then header, then body frames.
#[derive(Debug, Default)]
pub(crate) enum Content {
    #[default]
    Idle,
    Header(PendingPublish),
    Body {
        publish: PendingPublish,
        header: Bytes,
        /// Boxed: the variant would otherwise dwarf `Idle` in every channel.
        properties: Box<BasicProperties>,
        size: u64,
        body: BytesMut,
    },
}

/// A checked publish waiting for tx.commit.
#[derive(Debug)]
pub(crate) struct TxPublish {
    pub(super) msg: MessageRef,
    /// The message's own TTL (`expiration`), in milliseconds.
    pub(super) ttl: Option<u64>,
    pub(super) mandatory: bool,
}

/// A channel as the connection task sees it.
#[derive(Debug)]
pub(crate) struct Channel {
    pub(super) shared: Arc<ChannelShared>,
    /// We sent channel.close and wait for close-ok; other frames are dropped.
    pub(super) closing: bool,
    pub(super) content: Content,
    /// Prefetch for new consumers, confirm and tx mode: kept once, in the registry's
    /// entry the management API lists.
    pub(super) settings: Arc<ChannelEntry>,
    /// Publishes counted since confirm.select (confirm delivery tags).
    pub(super) publish_seq: u64,
    /// Highest publish not yet confirmed to the client.
    pub(super) unconfirmed: Option<u64>,
    /// Publishes of this batch refused by a queue (reject-publish): nacked, not acked.
    pub(super) nacks: Vec<u64>,
    /// Highest publish already confirmed (acked or nacked).
    pub(super) confirmed_upto: u64,
    /// Publishes held until tx.commit.
    pub(super) tx_publishes: Vec<TxPublish>,
    /// Settlements held until tx.commit (tx.rollback puts them back as unacked).
    pub(super) tx_acks: Vec<(Vec<(u64, Unacked)>, Settle)>,
    /// The channel's last declared queue: an empty queue name in later methods means it.
    pub(super) last_queue: Option<String>,
    /// Direct reply-to token registered for this channel.
    pub(super) reply_token: Option<String>,
}

impl Channel {
    pub(super) fn new(id: u16, conn: Arc<ConnShared>) -> Channel {
        let shared = Arc::new(ChannelShared::new(id, conn));
        let settings = ChannelEntry::new(shared.clone());
        Channel {
            shared,
            closing: false,
            content: Content::Idle,
            settings,
            publish_seq: 0,
            unconfirmed: None,
            nacks: Vec::new(),
            confirmed_upto: 0,
            tx_publishes: Vec::new(),
            tx_acks: Vec::new(),
            last_queue: None,
            reply_token: None,
        }
    }
}
