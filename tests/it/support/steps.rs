//! Short lapin steps the client-semantics tests share (the tutorials' flows and their
//! error paths), each bounded by `WAIT`.

use super::amqp::bounded;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

pub(crate) async fn connect(url: &str) -> Connection {
    bounded(
        "connect",
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .expect("connect")
}

pub(crate) async fn channel(conn: &Connection) -> Channel {
    bounded("channel.open", conn.create_channel())
        .await
        .expect("channel")
}

pub(crate) fn s(v: &str) -> ShortString {
    v.into()
}

/// The AMQP reply code inside a lapin error (channel or connection close).
pub(crate) fn reply_code(err: &lapin::Error) -> u16 {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => e.get_id(),
        other => panic!("expected an AMQP error, got {other:?}"),
    }
}

pub(crate) fn reply_text(err: &lapin::Error) -> String {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => e.get_message().to_string(),
        other => panic!("expected an AMQP error, got {other:?}"),
    }
}

pub(crate) async fn declare(ch: &Channel, name: &str) {
    bounded(
        "queue.declare",
        ch.queue_declare(
            s(name),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
}

pub(crate) async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    let confirm = bounded(
        "publish",
        ch.basic_publish(
            s(exchange),
            s(key),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        ),
    )
    .await
    .expect("publish");
    bounded("confirm", confirm).await.expect("confirm");
}

pub(crate) async fn get_body(ch: &Channel, queue: &str) -> Option<Vec<u8>> {
    let msg = bounded(
        "basic.get",
        ch.basic_get(s(queue), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("get");
    msg.map(|m| m.delivery.data)
}

pub(crate) async fn next(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    bounded("delivery", consumer.next())
        .await
        .expect("consumer ended")
        .expect("delivery")
}
