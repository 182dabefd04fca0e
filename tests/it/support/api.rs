//! The management API as a test calls it.

use super::Broker;
use super::amqp::bounded;
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::Value;

/// A request to the management API; (status, JSON body or Null).
pub(crate) async fn api(
    broker: &Broker,
    method: &str,
    path: &str,
    body: Option<Value>,
    (user, pass): (&str, &str),
) -> (u16, Value) {
    let url = format!("{}{path}", broker.api_url());
    let mut req = crate::support::http()
        .request(method.parse().unwrap(), url)
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

/// The administrator the access tests seed.
pub(crate) const ADMIN: (&str, &str) = ("admin", "adm1n");

/// A request as guest; (status, JSON body or Null, Location header).
pub(crate) async fn call(
    broker: &Broker,
    method: &str,
    path: &str,
    body: Option<&str>,
    auth: Option<(&str, &str)>,
) -> (u16, Value, Option<String>) {
    let client = super::http();
    let url = format!("{}{path}", broker.api_url());
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, Some(p));
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = bounded(path, req.send()).await.expect("HTTP request");
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|h| h.to_str().unwrap().to_string());
    let text = bounded(path, resp.text()).await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, v, location)
}

pub(crate) async fn get(broker: &Broker, path: &str) -> Value {
    let (status, v, _) = call(broker, "GET", path, None, Some(("guest", "guest"))).await;
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

pub(crate) async fn send(broker: &Broker, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (s, v, _) = call(broker, method, path, Some(body), Some(("guest", "guest"))).await;
    (s, v)
}

pub(crate) async fn amqp(broker: &Broker) -> (Connection, Channel) {
    let conn = bounded(
        "connect",
        Connection::connect(&broker.url(), ConnectionProperties::default()),
    )
    .await
    .unwrap();
    let ch = bounded("channel", conn.create_channel()).await.unwrap();
    (conn, ch)
}

/// Every key of `fields` is in `obj` with a value of the same JSON type.
pub(crate) fn assert_shape(obj: &Value, fields: &[(&str, &str)]) {
    for (k, ty) in fields {
        let v = obj
            .get(*k)
            .unwrap_or_else(|| panic!("no field {k} in {obj}"));
        let actual = match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        assert_eq!(actual, *ty, "field {k} of {obj}");
    }
}
