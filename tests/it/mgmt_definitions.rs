//! Definitions export and import carrying policies, operator policies and topic
//! permissions, against `rmq serve` and (with `RMQ_TEST_RABBITMQ_URL`) RabbitMQ 3.10,
//! and an invalid policy in a definitions file refused with RabbitMQ's text.

use crate::support::policy::{GUEST, Target, bounded, call, channel, get, publish, put, targets};
use crate::support::{Broker, unique};
use lapin::BasicProperties;
use lapin::options::*;
use serde_json::{Value, json};

/// The policies, operator policies and topic permissions of a definitions document,
/// without the rest (the parameters of component `operator_policy` only).
fn policy_parts(doc: &Value) -> Value {
    let ops: Vec<&Value> = doc["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["component"] == "operator_policy")
        .collect();
    json!({"policies": doc["policies"], "operator": ops, "topic": doc["topic_permissions"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_carry_policies_operator_policies_and_topic_permissions() {
    let targets = targets();
    let t = &targets[0];
    let p = unique("pol-defs");
    let q = format!("{p}-q");
    put(
        t,
        &format!("/api/policies/%2F/{p}"),
        json!({"pattern": format!("^{p}-"), "apply-to": "queues", "priority": 3, "definition": {
            "max-length": 2, "message-ttl": 60000, "overflow": "reject-publish",
            "dead-letter-exchange": "dlx", "queue-mode": "lazy"}}),
    )
    .await;
    put(
        t,
        &format!("/api/operator-policies/%2F/{p}-op"),
        json!({"pattern": format!("^{p}-"), "definition": {"max-length": 1}}),
    )
    .await;
    put(t, "/api/users/carol", json!({"password": "pw", "tags": ""})).await;
    put(
        t,
        "/api/topic-permissions/%2F/carol",
        json!({"exchange": "amq.topic", "write": "^carol\\.", "read": ""}),
    )
    .await;
    put(t, &format!("/api/queues/%2F/{q}"), json!({"durable": true})).await;
    let exported = get(t, "/api/definitions").await;
    let parts = policy_parts(&exported);
    assert_eq!(parts["policies"].as_array().unwrap().len(), 1, "{parts}");
    assert_eq!(
        parts["operator"][0]["value"]["definition"],
        json!({"max-length": 1})
    );
    assert_eq!(parts["topic"][0]["write"], "^carol\\.");

    // Into a fresh broker: the same policies, applied to the imported queue.
    let other = Broker::start();
    let (s, v) = call(
        &other.api_url(),
        "POST",
        "/api/definitions",
        Some(exported.clone()),
        GUEST,
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let fresh = Target {
        name: "rmq (imported)",
        amqp: other.url(),
        api: other.api_url(),
        _broker: None,
    };
    assert_eq!(policy_parts(&get(&fresh, "/api/definitions").await), parts);
    let shown = get(&fresh, &format!("/api/queues/%2F/{q}")).await;
    assert_eq!(
        (&shown["policy"], &shown["operator_policy"]),
        (&json!(p), &json!(format!("{p}-op")))
    );
    assert_eq!(shown["effective_policy_definition"]["max-length"], 1);
    let (_conn, ch) = channel(&fresh.amqp).await;
    publish(&ch, "", &q, "1").await.unwrap();
    // reject-publish at max-length 1: the second is refused (nacked).
    let confirm = bounded(
        "publish",
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"2",
            BasicProperties::default(),
        ),
    )
    .await
    .unwrap();
    assert!(bounded("confirm", confirm).await.unwrap().is_nack());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_in_definitions_is_refused_with_rabbitmqs_text() {
    for t in targets() {
        let p = unique("pol-imp");
        let doc = json!({"policies": [{"vhost": "/", "name": p, "pattern": format!("^{p}$"),
                                       "definition": {"foo": 1}, "priority": 0, "apply-to": "all"}]});
        let (s, v) = call(&t.api, "POST", "/api/definitions", Some(doc), GUEST).await;
        assert_eq!(
            (s, v),
            (
                400,
                json!({"error": "bad_request", "reason": format!(
                    "Validation failed\n\n[{{&lt;&lt;\"foo\"&gt;&gt;,1}}] are not recognised policy settings\n (//{p})"
                )})
            ),
            "{}",
            t.name
        );
        let doc = json!({"parameters": [{"vhost": "/", "component": "operator_policy", "name": p,
                                         "value": {"pattern": format!("^{p}$"), "definition": {"max-length": 1}}}]});
        let (s, v) = call(&t.api, "POST", "/api/definitions", Some(doc), GUEST).await;
        assert_eq!(
            (s, v),
            (
                400,
                json!({"error": "bad_request", "reason": format!(
                    "Validation failed\n\nKey \"priority\" not found in {p}\n (//operator_policy/{p})"
                )})
            ),
            "{}",
            t.name
        );
    }
}
