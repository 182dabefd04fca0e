//! The management HTTP API of `rmq serve` over real HTTP: JSON shapes with RabbitMQ's
//! field names and types, auth, RabbitMQ's error bodies, paging, and changes made over
//! HTTP seen over AMQP (lapin) and the other way round.

use crate::support::{Broker, WAIT, metric, unique};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};
use std::future::Future;

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A request as guest; (status, JSON body or Null, Location header).
async fn call(
    broker: &Broker,
    method: &str,
    path: &str,
    body: Option<&str>,
    auth: Option<(&str, &str)>,
) -> (u16, Value, Option<String>) {
    let client = crate::support::http();
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

async fn get(broker: &Broker, path: &str) -> Value {
    let (status, v, _) = call(broker, "GET", path, None, Some(("guest", "guest"))).await;
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

async fn send(broker: &Broker, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (s, v, _) = call(broker, method, path, Some(body), Some(("guest", "guest"))).await;
    (s, v)
}

async fn amqp(broker: &Broker) -> (Connection, Channel) {
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
fn assert_shape(obj: &Value, fields: &[(&str, &str)]) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_basic_with_the_brokers_users() {
    let broker = Broker::start();
    let (s, v, _) = call(&broker, "GET", "/api/overview", None, None).await;
    assert_eq!((s, v), (401, Value::Null));
    let (s, v, _) = call(&broker, "GET", "/api/queues", None, Some(("guest", "nope"))).await;
    assert_eq!(s, 401);
    assert_eq!(
        v,
        json!({"error": "not_authorized", "reason": "Login failed"})
    );
    let v = get(&broker, "/api/whoami").await;
    assert_eq!(v["name"], "guest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_declare_publish_get_purge_delete_over_http_are_seen_over_amqp() {
    let broker = Broker::start();
    let (_conn, ch) = amqp(&broker).await;
    let q = unique("mq");
    let path = format!("/api/queues/%2F/{q}");
    let (s, _) = send(
        &broker,
        "PUT",
        &path,
        r#"{"durable":false,"arguments":{"x-max-length":5}}"#,
    )
    .await;
    assert_eq!(s, 201);
    // Redeclaring the same is fine (204); a different one is RabbitMQ's 400.
    assert_eq!(
        send(&broker, "PUT", &path, r#"{"arguments":{"x-max-length":5}}"#)
            .await
            .0,
        204
    );
    let (s, v) = send(&broker, "PUT", &path, r#"{"durable":true}"#).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"], "bad_request");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("inequivalent arg 'durable'"),
        "{v}"
    );
    // Malformed JSON changes nothing.
    let (s, v) = send(&broker, "PUT", &format!("/api/queues/%2F/{q}-bad"), "{bad").await;
    assert_eq!(
        (s, v),
        (400, json!({"error": "bad_request", "reason": "not_json"}))
    );
    assert_eq!(
        call(
            &broker,
            "GET",
            &format!("/api/queues/%2F/{q}-bad"),
            None,
            Some(("guest", "guest"))
        )
        .await
        .0,
        404
    );
    // The queue exists for AMQP clients (passive declare).
    let ok = bounded(
        "passive declare",
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(ok.message_count(), 0);
    let (s, v) = send(
        &broker,
        "POST",
        "/api/exchanges/%2F/amq.default/publish",
        &format!(r#"{{"properties":{{"delivery_mode":2,"headers":{{"h":1}}}},"routing_key":"{q}","payload":"hi","payload_encoding":"string"}}"#),
    )
    .await;
    assert_eq!((s, v), (200, json!({"routed": true})));
    let (_, v) = send(&broker, "POST", "/api/exchanges/%2F/amq.default/publish", r#"{"properties":{},"routing_key":"nowhere-at-all","payload":"x","payload_encoding":"string"}"#).await;
    assert_eq!(v, json!({"routed": false}));
    let v = get(&broker, &path).await;
    assert_shape(
        &v,
        &[
            ("name", "string"),
            ("vhost", "string"),
            ("durable", "bool"),
            ("auto_delete", "bool"),
            ("exclusive", "bool"),
            ("arguments", "object"),
            ("type", "string"),
            ("state", "string"),
            ("node", "string"),
            ("consumers", "number"),
            ("messages", "number"),
            ("messages_ready", "number"),
            ("messages_unacknowledged", "number"),
            ("message_bytes", "number"),
            ("message_stats", "object"),
            ("policy", "null"),
            ("exclusive_consumer_tag", "null"),
        ],
    );
    assert_eq!(v["messages_ready"], 1);
    assert_eq!(v["arguments"], json!({"x-max-length": 5}));
    assert_eq!(v["message_stats"]["publish"], 1);
    assert_shape(
        &v["message_stats"]["publish_details"],
        &[("rate", "number")],
    );
    // get with requeue leaves it there, redelivered; ack_requeue_false takes it.
    let get_path = format!("{path}/get");
    let (s, v) = send(
        &broker,
        "POST",
        &get_path,
        r#"{"count":5,"ackmode":"ack_requeue_true","encoding":"auto","truncate":50000}"#,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["payload"], "hi");
    assert_eq!(v[0]["payload_encoding"], "string");
    assert_eq!(v[0]["payload_bytes"], 2);
    assert_eq!(v[0]["redelivered"], false);
    assert_eq!(v[0]["message_count"], 0);
    assert_eq!(
        v[0]["properties"],
        json!({"delivery_mode": 2, "headers": {"h": 1}})
    );
    let (_, v) = send(
        &broker,
        "POST",
        &get_path,
        r#"{"count":1,"ackmode":"ack_requeue_false","encoding":"base64"}"#,
    )
    .await;
    assert_eq!(v[0]["redelivered"], true);
    assert_eq!(v[0]["payload"], "aGk=");
    assert_eq!(get(&broker, &path).await["messages"], 0);
    // Purge and delete with if-empty.
    for _ in 0..2 {
        send(&broker, "POST", "/api/exchanges/%2F/amq.default/publish", &format!(r#"{{"properties":{{}},"routing_key":"{q}","payload":"x","payload_encoding":"string"}}"#)).await;
    }
    let (s, v, _) = call(
        &broker,
        "DELETE",
        &format!("{path}?if-empty=true"),
        None,
        Some(("guest", "guest")),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["reason"], format!("queue '{q}' in vhost '/' not empty"));
    assert_eq!(
        call(
            &broker,
            "DELETE",
            &format!("{path}/contents"),
            None,
            Some(("guest", "guest"))
        )
        .await
        .0,
        204
    );
    let got = bounded(
        "basic.get",
        ch.basic_get(q.as_str().into(), BasicGetOptions::default()),
    )
    .await
    .unwrap();
    assert!(got.is_none(), "purged over HTTP, empty over AMQP");
    assert_eq!(
        call(
            &broker,
            "DELETE",
            &format!("{path}?if-empty=true"),
            None,
            Some(("guest", "guest"))
        )
        .await
        .0,
        204
    );
    let (s, v, _) = call(&broker, "GET", &path, None, Some(("guest", "guest"))).await;
    assert_eq!(
        (s, v),
        (
            404,
            json!({"error": "Object Not Found", "reason": "Not Found"})
        )
    );
    let (s, v, _) = call(
        &broker,
        "GET",
        "/api/queues/no-such-vhost",
        None,
        Some(("guest", "guest")),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            404,
            json!({"error": "Object Not Found", "reason": "Not Found"})
        )
    );
    let (s, v) = send(&broker, "PUT", "/api/queues/no-such-vhost/q", "{}").await;
    assert_eq!(
        (s, v),
        (
            404,
            json!({"error": "not_found", "reason": "vhost_not_found"})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_and_bindings_of_every_kind() {
    let broker = Broker::start();
    let (x, y, q) = (unique("mx"), unique("my"), unique("mbq"));
    assert_eq!(
        send(
            &broker,
            "PUT",
            &format!("/api/exchanges/%2F/{x}"),
            r#"{"type":"topic","durable":true}"#
        )
        .await
        .0,
        201
    );
    assert_eq!(
        send(
            &broker,
            "PUT",
            &format!("/api/exchanges/%2F/{y}"),
            r#"{"type":"fanout"}"#
        )
        .await
        .0,
        201
    );
    let (s, v) = send(
        &broker,
        "PUT",
        &format!("/api/exchanges/%2F/{x}-bad"),
        r#"{"type":"nonsense"}"#,
    )
    .await;
    assert_eq!(
        (s, v["reason"].as_str()),
        (400, Some("unknown exchange type 'nonsense'"))
    );
    assert_eq!(
        send(&broker, "PUT", &format!("/api/queues/%2F/{q}"), "{}")
            .await
            .0,
        201
    );
    let v = get(&broker, &format!("/api/exchanges/%2F/{x}")).await;
    assert_shape(
        &v,
        &[
            ("name", "string"),
            ("vhost", "string"),
            ("type", "string"),
            ("durable", "bool"),
            ("auto_delete", "bool"),
            ("internal", "bool"),
            ("arguments", "object"),
        ],
    );
    assert_eq!(v["type"], "topic");
    let (s, _, loc) = call(
        &broker,
        "POST",
        &format!("/api/bindings/%2F/e/{x}/q/{q}"),
        Some(r##"{"routing_key":"a.#"}"##),
        Some(("guest", "guest")),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(loc.as_deref(), Some(format!("{q}/a.%2523").as_str()));
    assert_eq!(
        call(
            &broker,
            "POST",
            &format!("/api/bindings/%2F/e/{x}/e/{y}"),
            Some(r#"{"routing_key":""}"#),
            Some(("guest", "guest"))
        )
        .await
        .0,
        201
    );
    let (s, v, _) = call(
        &broker,
        "POST",
        &format!("/api/bindings/%2F/e/{x}/q/{q}-missing"),
        Some("{}"),
        Some(("guest", "guest")),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(v["reason"], format!("no queue '{q}-missing' in vhost '/'"));
    let qb = get(&broker, &format!("/api/queues/%2F/{q}/bindings")).await;
    assert_eq!(qb.as_array().unwrap().len(), 2, "default + topic: {qb}");
    assert_eq!(
        qb[0],
        json!({"source": "", "vhost": "/", "destination": q, "destination_type": "queue", "routing_key": q, "arguments": {}, "properties_key": q})
    );
    assert_eq!(qb[1]["properties_key"], "a.%23");
    let src = get(&broker, &format!("/api/exchanges/%2F/{x}/bindings/source")).await;
    assert_eq!(src.as_array().unwrap().len(), 2);
    let dst = get(
        &broker,
        &format!("/api/exchanges/%2F/{y}/bindings/destination"),
    )
    .await;
    assert_eq!(dst[0]["properties_key"], "~");
    // Publishing to x routes through the topic binding.
    let (_, v) = send(
        &broker,
        "POST",
        &format!("/api/exchanges/%2F/{x}/publish"),
        r#"{"properties":{},"routing_key":"a.b","payload":"m","payload_encoding":"string"}"#,
    )
    .await;
    assert_eq!(v, json!({"routed": true}));
    assert_eq!(
        call(
            &broker,
            "DELETE",
            &format!("/api/bindings/%2F/e/{x}/q/{q}/a.%2523"),
            None,
            Some(("guest", "guest"))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &broker,
            "DELETE",
            &format!("/api/bindings/%2F/e/{x}/q/{q}/a.%2523"),
            None,
            Some(("guest", "guest"))
        )
        .await
        .0,
        404
    );
    let (_, v) = send(
        &broker,
        "POST",
        &format!("/api/exchanges/%2F/{x}/publish"),
        r#"{"properties":{},"routing_key":"a.b","payload":"m","payload_encoding":"string"}"#,
    )
    .await;
    assert_eq!(v, json!({"routed": false}), "the binding is gone");
    let (s, _, _) = call(
        &broker,
        "DELETE",
        &format!("/api/exchanges/%2F/{x}?if-unused=true"),
        None,
        Some(("guest", "guest")),
    )
    .await;
    assert_eq!(s, 400, "x still has its exchange binding");
    assert_eq!(
        call(
            &broker,
            "DELETE",
            &format!("/api/exchanges/%2F/{x}"),
            None,
            Some(("guest", "guest"))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &broker,
            "DELETE",
            "/api/exchanges/%2F/amq.direct",
            None,
            Some(("guest", "guest"))
        )
        .await
        .0,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_channels_consumers_and_forced_close() {
    let broker = Broker::start();
    let (conn, ch) = amqp(&broker).await;
    let q = unique("mc");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_qos(7, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            q.as_str().into(),
            "tag-1".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions::default(),
        b"m",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let d = bounded("delivery", consumer.next()).await.unwrap().unwrap();
    assert_eq!(d.data, b"m");
    let conns = get(&broker, "/api/connections").await;
    let c = &conns[0];
    assert_shape(
        c,
        &[
            ("name", "string"),
            ("user", "string"),
            ("vhost", "string"),
            ("peer_host", "string"),
            ("peer_port", "number"),
            ("channels", "number"),
            ("client_properties", "object"),
            ("connected_at", "number"),
            ("state", "string"),
            ("protocol", "string"),
        ],
    );
    let name = c["name"].as_str().unwrap().to_string();
    assert!(name.ends_with(&format!(" -> {}", broker.addr)), "{name}");
    assert_eq!(c["channels"], 1);
    assert_eq!(c["client_properties"]["product"], "lapin");
    let chans = get(&broker, "/api/channels").await;
    assert_eq!(chans[0]["name"], format!("{name} (1)"));
    assert_eq!(chans[0]["prefetch_count"], 7);
    assert_eq!(chans[0]["messages_unacknowledged"], 1);
    let cons = get(&broker, "/api/consumers/%2F").await;
    assert_eq!(cons[0]["consumer_tag"], "tag-1");
    assert_eq!(cons[0]["queue"], json!({"name": q, "vhost": "/"}));
    assert_eq!(cons[0]["ack_required"], true);
    assert_eq!(cons[0]["prefetch_count"], 7);
    assert_eq!(cons[0]["channel_details"]["connection_name"], name.as_str());
    let q_json = get(&broker, &format!("/api/queues/%2F/{q}")).await;
    assert_eq!(
        (
            q_json["messages_unacknowledged"].as_u64(),
            q_json["consumers"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // DELETE closes exactly that connection, with 320 and our reason.
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let resp = crate::support::http()
        .delete(format!("{}/api/connections/{encoded}", broker.api_url()))
        .basic_auth("guest", Some("guest"))
        .header("X-Reason", "maintenance window")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    bounded("connection closed", async {
        while conn.status().connected() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await; // polling a state, bounded above
        }
    })
    .await;
    let err = ch
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("maintenance window") || !conn.status().connected(),
        "{err}"
    );
    bounded("registry emptied", async {
        loop {
            if get(&broker, "/api/connections")
                .await
                .as_array()
                .unwrap()
                .is_empty()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await; // polling, bounded above
        }
    })
    .await;
    assert_eq!(
        get(&broker, &format!("/api/queues/%2F/{q}")).await["messages_ready"],
        1,
        "unacked requeued"
    );
    let (s, _, _) = call(
        &broker,
        "DELETE",
        "/api/connections/nope",
        None,
        Some(("guest", "guest")),
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_columns_sort_and_overview_and_metrics_move() {
    let broker = Broker::start();
    let prefix = unique("pg");
    for i in 0..5 {
        send(
            &broker,
            "PUT",
            &format!("/api/queues/%2F/{prefix}-{i}"),
            "{}",
        )
        .await;
    }
    let v = get(
        &broker,
        &format!("/api/queues/%2F?page=2&page_size=2&name={prefix}&use_regex=false"),
    )
    .await;
    assert_eq!(v["page"], 2);
    assert_eq!(v["page_size"], 2);
    assert_eq!(v["page_count"], 3);
    assert_eq!(v["filtered_count"], 5);
    assert_eq!(v["item_count"], 2);
    assert_eq!(v["total_count"], 5);
    assert_eq!(v["items"][0]["name"], format!("{prefix}-2"));
    let (s, v, _) = call(
        &broker,
        "GET",
        "/api/queues?page=9&page_size=2",
        None,
        Some(("guest", "guest")),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("page_out_of_range")));
    let v = get(
        &broker,
        "/api/queues?columns=name,messages&sort=name&sort_reverse=true",
    )
    .await;
    assert_eq!(v[0], json!({"name": format!("{prefix}-4"), "messages": 0}));
    let before = broker.metrics().await;
    for _ in 0..3 {
        send(&broker, "POST", "/api/exchanges/%2F/amq.default/publish", &format!(r#"{{"properties":{{}},"routing_key":"{prefix}-0","payload":"x","payload_encoding":"string"}}"#)).await;
    }
    let after = broker.metrics().await;
    assert_eq!(
        metric(&after, "rabbitmq_global_messages_received_total")
            - metric(&before, "rabbitmq_global_messages_received_total"),
        3.0
    );
    assert_eq!(metric(&after, "rabbitmq_queue_messages_ready"), 3.0);
    assert_eq!(metric(&after, "rabbitmq_queues"), 5.0);
    let o = get(&broker, "/api/overview").await;
    assert_shape(
        &o,
        &[
            ("product_name", "string"),
            ("management_version", "string"),
            ("rabbitmq_version", "string"),
            ("node", "string"),
            ("object_totals", "object"),
            ("queue_totals", "object"),
            ("message_stats", "object"),
            ("listeners", "array"),
        ],
    );
    assert_eq!(o["queue_totals"]["messages_ready"], 3);
    assert_eq!(o["object_totals"]["queues"], 5);
    assert_eq!(o["message_stats"]["publish"], 3);
    assert_eq!(o["listeners"][0]["port"], broker.addr.port());
    let vh = get(&broker, "/api/vhosts").await;
    assert_eq!(vh[0]["name"], "/");
    assert_eq!(get(&broker, "/api/users").await[0]["name"], "guest");
}
