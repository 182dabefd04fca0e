//! A topology fixture: an exchange and a queue bound to it, under names unique to the
//! test, declared over AMQP (the broker under test decides what they become).

use super::amqp::bounded;
use super::unique;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};

/// An exchange of some kind, a queue, and the binding between them.
#[derive(Debug, Clone)]
pub struct Topology {
    pub exchange: String,
    pub queue: String,
    pub key: String,
}

impl Topology {
    /// Declare a non-durable `kind` exchange and queue named from `prefix`, bound by
    /// the key `prefix.key`.
    pub async fn declare(ch: &Channel, kind: ExchangeKind, prefix: &str) -> Topology {
        let t = Topology {
            exchange: unique(&format!("{prefix}-x")),
            queue: unique(&format!("{prefix}-q")),
            key: format!("{prefix}.key"),
        };
        bounded(
            "exchange.declare",
            ch.exchange_declare(
                t.exchange.as_str().into(),
                kind,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("exchange.declare");
        bounded(
            "queue.declare",
            ch.queue_declare(
                t.queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("queue.declare");
        bounded(
            "queue.bind",
            ch.queue_bind(
                t.queue.as_str().into(),
                t.exchange.as_str().into(),
                t.key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("queue.bind");
        t
    }
}
