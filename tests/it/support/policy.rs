//! Policies and topic permissions against `rmq serve` and, with
//! `RMQ_TEST_RABBITMQ_URL`, RabbitMQ: the targets, API calls and AMQP steps the policy
//! tests share.

use super::Broker;
pub(crate) use super::amqp::bounded;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::Value;

/// A broker under test: its AMQP URL and management API, and the embedded broker that
/// serves them when it is rmq's.
pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) amqp: String,
    pub(crate) api: String,
    pub(crate) _broker: Option<Broker>,
}

impl Target {
    /// `host:port` of the AMQP listener, for other users' URLs.
    pub(crate) fn amqp_host(&self) -> &str {
        let rest = self.amqp.split_once('@').map_or("", |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }

    pub(crate) fn is_rmq(&self) -> bool {
        self._broker.is_some()
    }
}

pub(crate) fn targets() -> Vec<Target> {
    let broker = Broker::start();
    let mut out = vec![Target {
        name: "rmq",
        amqp: broker.url(),
        api: broker.api_url(),
        _broker: Some(broker),
    }];
    if let Ok(url) = std::env::var("RMQ_TEST_RABBITMQ_URL")
        && !url.is_empty()
    {
        out.push(Target {
            name: "RabbitMQ",
            amqp: url,
            api: "http://127.0.0.1:15672".into(),
            _broker: None,
        });
    }
    out
}

/// A management API request; (status, JSON body or Null).
pub(crate) async fn call(
    api: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    (user, pass): (&str, &str),
) -> (u16, Value) {
    let mut req = crate::support::http()
        .request(method.parse().unwrap(), format!("{api}{path}"))
        .basic_auth(user, Some(pass));
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = bounded(path, req.send()).await.expect("HTTP request");
    let status = resp.status().as_u16();
    let text = bounded(path, resp.text()).await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub(crate) const GUEST: (&str, &str) = ("guest", "guest");

pub(crate) async fn put(t: &Target, path: &str, body: Value) -> u16 {
    let (s, v) = call(&t.api, "PUT", path, Some(body), GUEST).await;
    assert!(s == 201 || s == 204, "{}: PUT {path}: {s} {v}", t.name);
    s
}

pub(crate) async fn delete(t: &Target, path: &str) {
    let (s, v) = call(&t.api, "DELETE", path, None, GUEST).await;
    assert_eq!(s, 204, "{}: DELETE {path}: {v}", t.name);
}

pub(crate) async fn get(t: &Target, path: &str) -> Value {
    let (s, v) = call(&t.api, "GET", path, None, GUEST).await;
    assert_eq!(s, 200, "{}: GET {path}: {v}", t.name);
    v
}

pub(crate) async fn channel(url: &str) -> (Connection, Channel) {
    let conn = bounded(
        "connect",
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .unwrap();
    let ch = bounded("channel", conn.create_channel()).await.unwrap();
    bounded(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .unwrap();
    (conn, ch)
}

pub(crate) async fn declare(ch: &Channel, q: &str, args: FieldTable) {
    bounded(
        "queue.declare",
        ch.queue_declare(q.into(), QueueDeclareOptions::default(), args),
    )
    .await
    .unwrap();
}

pub(crate) async fn delete_queue(ch: &Channel, q: &str) {
    bounded(
        "queue.delete",
        ch.queue_delete(q.into(), QueueDeleteOptions::default()),
    )
    .await
    .unwrap();
}

/// Publish and wait for the broker's confirm.
pub(crate) async fn publish(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &str,
) -> lapin::Result<()> {
    let confirm = bounded(
        "publish",
        ch.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default(),
        ),
    )
    .await?;
    bounded("confirm", confirm).await.map(|_| ())
}

/// Take every ready message of `q` (no-ack), in order.
pub(crate) async fn drain(ch: &Channel, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = bounded(
        "basic.get",
        ch.basic_get(q.into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    out
}

pub(crate) async fn publish_all(ch: &Channel, q: &str, bodies: &[&str]) {
    for b in bodies {
        publish(ch, "", q, b).await.unwrap();
    }
}
