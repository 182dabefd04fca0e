//! AMQP helpers over lapin for the broker's tests; every wait is bounded by `WAIT`.

use super::{Broker, WAIT, unique};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::future::Future;
use std::path::PathBuf;

/// `fut`, or a panic naming `what` once `WAIT` has passed.
pub(crate) async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A connection and a channel on it.
pub(crate) async fn connect(url: &str) -> (Connection, Channel) {
    let conn = bounded(
        "connect",
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .expect("connect");
    let ch = bounded("channel", conn.create_channel())
        .await
        .expect("channel");
    (conn, ch)
}

/// A connection, or the broker's refusal (to assert on).
pub(crate) async fn try_connect(url: &str) -> lapin::Result<Connection> {
    bounded(
        "connect",
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
}

/// `url` of `broker` as `user` in `vhost`.
pub(crate) fn url(broker: &Broker, user: &str, pass: &str, vhost: &str) -> String {
    let vhost = vhost.replace('/', "%2F");
    format!("amqp://{user}:{pass}@{}/{vhost}", broker.addr)
}

/// The reply code and text of a channel or connection error.
pub(crate) fn code_and_text(e: &lapin::Error) -> (u16, String) {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => (p.get_id(), p.get_message().to_string()),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// A fresh directory under the system's temp directory.
pub(crate) fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// delivery_mode 2.
pub(crate) fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// A durable queue, default arguments.
pub(crate) async fn declare_durable(ch: &Channel, q: &str) {
    bounded(
        "declare",
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
}

/// Every message left in `q`: (body, redelivered), taken with no-ack basic.get.
pub(crate) async fn drain(ch: &Channel, q: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(m) = bounded(
        "get",
        ch.basic_get(q.into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    {
        out.push((
            String::from_utf8(m.delivery.data.clone()).unwrap(),
            m.delivery.redelivered,
        ));
    }
    out
}

/// A channel on `conn`.
pub(crate) async fn channel(conn: &Connection) -> Channel {
    bounded("channel", conn.create_channel()).await.unwrap()
}

/// A queue.declare with default flags, or the broker's refusal.
pub(crate) async fn try_declare(ch: &Channel, q: &str) -> lapin::Result<()> {
    bounded(
        "queue.declare",
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .map(|_| ())
}
