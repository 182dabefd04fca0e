//! The management HTTP API of `rmq serve` over real HTTP: JSON shapes with RabbitMQ's
//! field names and types, auth, RabbitMQ's error bodies, paging, and changes made over
//! HTTP seen over AMQP (lapin) and the other way round.

use crate::support::amqp::bounded;
use crate::support::api::{amqp, assert_shape, call, get, send};
use crate::support::{Broker, unique};
use lapin::options::*;
use lapin::types::FieldTable;
use serde_json::{Value, json};

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
