//! What policies and operator policies do, against `rmq serve` and — when
//! `RMQ_TEST_RABBITMQ_URL` is set — the same scenario against RabbitMQ 3.10 (its
//! management API on 127.0.0.1:15672): their effect on existing and new queues and its
//! end when cleared, which policy wins, how operator policies and arguments cap it, a
//! policy's alternate exchange. The API's side is `broker_policy_api`.
//!
//! RabbitMQ applies a policy change to a queue asynchronously and shows it in the API
//! with its statistics (every 5 s): each scenario waits, bounded, until the queue shows
//! the policy before it looks at the effect. Every name is unique and every pattern is
//! anchored to this run's names, so a shared RabbitMQ's other users are not touched.

use crate::support::policy::{
    GUEST, Target, bounded, call, channel, declare, delete, delete_queue, drain, get, publish,
    publish_all, put, targets,
};
use crate::support::{WAIT, unique};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Wait until `/api/queues` shows `field` of queue `q` as `want` (RabbitMQ: once the
/// queue process has taken the change and published its statistics).
async fn await_queue_field(t: &Target, q: &str, field: &str, want: Value) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (s, v) = call(&t.api, "GET", &format!("/api/queues/%2F/{q}"), None, GUEST).await;
        if s == 200 && v.get(field) == Some(&want) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{}: queue {q} never showed {field} = {want}: {v}",
            t.name
        );
        // Polling an API that has no change notification; not waiting for an event.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Take `n` messages from `q`, waiting for dead-lettered ones to arrive (RabbitMQ
/// dead-letters after it has answered the publish).
async fn take(ch: &Channel, q: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < n {
        out.extend(drain(ch, q).await);
        assert!(
            Instant::now() < deadline,
            "only {out:?} of {n} messages arrived in {q}"
        );
        if out.len() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    out
}

fn max_length(n: i32) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-max-length".into(), AMQPValue::LongInt(n));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policys_max_length_and_dead_lettering_act_on_old_and_new_queues_until_cleared() {
    for t in targets() {
        let p = unique("pol-len");
        let (old, new, dlq) = (
            format!("{p}-q-old"),
            format!("{p}-q-new"),
            format!("{p}-dlq"),
        );
        let (_conn, ch) = channel(&t.amqp).await;
        declare(&ch, &old, FieldTable::default()).await;
        declare(&ch, &dlq, FieldTable::default()).await;
        let policy = format!("/api/policies/%2F/{p}");
        let def = json!({"pattern": format!("^{p}-q-"), "apply-to": "queues", "definition": {
            "max-length": 2, "dead-letter-exchange": "", "dead-letter-routing-key": dlq}});
        assert_eq!(put(&t, &policy, def).await, 201);

        // An existing queue: trimmed to two, the oldest dead-lettered.
        await_queue_field(&t, &old, "policy", json!(p)).await;
        publish_all(&ch, &old, &["1", "2", "3"]).await;
        assert_eq!(drain(&ch, &old).await, ["2", "3"], "{}", t.name);
        assert_eq!(take(&ch, &dlq, 1).await, ["1"], "{}", t.name);

        // A queue declared afterwards gets it from the start.
        declare(&ch, &new, FieldTable::default()).await;
        await_queue_field(&t, &new, "policy", json!(p)).await;
        publish_all(&ch, &new, &["a", "b", "c"]).await;
        assert_eq!(drain(&ch, &new).await, ["b", "c"], "{}", t.name);
        assert_eq!(take(&ch, &dlq, 1).await, ["a"], "{}", t.name);

        // Cleared: no limit, nothing dead-lettered.
        delete(&t, &policy).await;
        await_queue_field(&t, &old, "policy", Value::Null).await;
        publish_all(&ch, &old, &["4", "5", "6"]).await;
        assert_eq!(drain(&ch, &old).await, ["4", "5", "6"], "{}", t.name);
        assert!(drain(&ch, &dlq).await.is_empty(), "{}", t.name);
        for q in [&old, &new, &dlq] {
            delete_queue(&ch, q).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policys_message_ttl_expires_what_is_published_until_cleared() {
    for t in targets() {
        let p = unique("pol-ttl");
        let (q, dlq) = (format!("{p}-q"), format!("{p}-dlq"));
        let (_conn, ch) = channel(&t.amqp).await;
        declare(&ch, &q, FieldTable::default()).await;
        declare(&ch, &dlq, FieldTable::default()).await;
        let policy = format!("/api/policies/%2F/{p}");
        // TTL 0: a message nobody is waiting for expires on arrival (no timing involved).
        put(
            &t,
            &policy,
            json!({"pattern": format!("^{q}$"), "definition": {
                "message-ttl": 0, "dead-letter-exchange": "", "dead-letter-routing-key": dlq}}),
        )
        .await;
        await_queue_field(&t, &q, "policy", json!(p)).await;
        publish(&ch, "", &q, "expires").await.unwrap();
        assert!(drain(&ch, &q).await.is_empty(), "{}", t.name);
        assert_eq!(take(&ch, &dlq, 1).await, ["expires"], "{}", t.name);

        delete(&t, &policy).await;
        await_queue_field(&t, &q, "policy", Value::Null).await;
        publish(&ch, "", &q, "stays").await.unwrap();
        assert_eq!(drain(&ch, &q).await, ["stays"], "{}", t.name);
        delete_queue(&ch, &q).await;
        delete_queue(&ch, &dlq).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_highest_priority_wins_operator_policies_and_arguments_cap_it() {
    for t in targets() {
        let p = unique("pol-prio");
        let (q, q_arg) = (format!("{p}-q"), format!("{p}-arg"));
        let (_conn, ch) = channel(&t.amqp).await;
        declare(&ch, &q, FieldTable::default()).await;
        declare(&ch, &q_arg, max_length(1)).await;
        let (low, high, op) = (format!("{p}-low"), format!("{p}-high"), format!("{p}-op"));
        let pattern = format!("^{p}-");
        put(
            &t,
            &format!("/api/policies/%2F/{low}"),
            json!({"pattern": pattern, "definition": {"max-length": 1}, "priority": 1}),
        )
        .await;
        put(
            &t,
            &format!("/api/policies/%2F/{high}"),
            json!({"pattern": pattern, "definition": {"max-length": 3}, "priority": 5, "apply-to": "queues"}),
        )
        .await;
        assert_eq!(
            get(&t, &format!("/api/policies/%2F/{high}")).await,
            json!({"vhost": "/", "name": high, "pattern": pattern, "apply-to": "queues",
                   "definition": {"max-length": 3}, "priority": 5}),
            "{}",
            t.name
        );
        let shown = await_queue_field(&t, &q, "policy", json!(high)).await;
        assert_eq!(
            shown["effective_policy_definition"],
            json!({"max-length": 3})
        );
        assert_eq!(shown["operator_policy"], Value::Null, "{}", t.name);
        publish_all(&ch, &q, &["1", "2", "3", "4", "5"]).await;
        assert_eq!(drain(&ch, &q).await, ["3", "4", "5"], "{}", t.name);

        // x-max-length 1 under a policy of 3: the lower applies.
        await_queue_field(&t, &q_arg, "policy", json!(high)).await;
        publish_all(&ch, &q_arg, &["a", "b", "c"]).await;
        assert_eq!(drain(&ch, &q_arg).await, ["c"], "{}", t.name);

        // An operator policy's lower limit wins over the user's.
        put(
            &t,
            &format!("/api/operator-policies/%2F/{op}"),
            json!({"pattern": pattern, "definition": {"max-length": 2, "expires": 3600000}, "apply-to": "queues"}),
        )
        .await;
        let shown = await_queue_field(&t, &q, "operator_policy", json!(op)).await;
        assert_eq!(shown["policy"], json!(high), "{}", t.name);
        assert_eq!(
            shown["effective_policy_definition"],
            json!({"expires": 3600000, "max-length": 2}),
            "{}",
            t.name
        );
        publish_all(&ch, &q, &["6", "7", "8"]).await;
        assert_eq!(drain(&ch, &q).await, ["7", "8"], "{}", t.name);
        let listed = get(&t, "/api/operator-policies/%2F").await;
        assert!(
            listed.as_array().unwrap().iter().any(|x| x["name"] == op),
            "{}: {listed}",
            t.name
        );

        delete(&t, &format!("/api/operator-policies/%2F/{op}")).await;
        delete(&t, &format!("/api/policies/%2F/{high}")).await;
        // With the high one gone the low one applies.
        await_queue_field(&t, &q, "policy", json!(low)).await;
        publish_all(&ch, &q, &["9", "10"]).await;
        assert_eq!(drain(&ch, &q).await, ["10"], "{}", t.name);
        delete(&t, &format!("/api/policies/%2F/{low}")).await;
        delete_queue(&ch, &q).await;
        delete_queue(&ch, &q_arg).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policys_alternate_exchange_catches_what_an_exchange_routes_nowhere() {
    for t in targets() {
        let p = unique("pol-ae");
        let (x, ae, q) = (format!("{p}-x"), format!("{p}-ae"), format!("{p}-q"));
        let (_conn, ch) = channel(&t.amqp).await;
        for (name, kind) in [(&x, ExchangeKind::Direct), (&ae, ExchangeKind::Fanout)] {
            bounded(
                "exchange.declare",
                ch.exchange_declare(
                    name.as_str().into(),
                    kind,
                    ExchangeDeclareOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
        }
        declare(&ch, &q, FieldTable::default()).await;
        bounded(
            "queue.bind",
            ch.queue_bind(
                q.as_str().into(),
                ae.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let policy = format!("/api/policies/%2F/{p}");
        put(
            &t,
            &policy,
            json!({"pattern": format!("^{x}$"), "apply-to": "exchanges",
                   "definition": {"alternate-exchange": ae}}),
        )
        .await;
        // Exchanges take a policy before the API answers, in both brokers.
        let shown = get(&t, &format!("/api/exchanges/%2F/{x}")).await;
        assert_eq!(shown["policy"], json!(p), "{}", t.name);
        publish(&ch, &x, "nowhere", "caught").await.unwrap();
        assert_eq!(take(&ch, &q, 1).await, ["caught"], "{}", t.name);
        delete(&t, &policy).await;
        let shown = get(&t, &format!("/api/exchanges/%2F/{x}")).await;
        assert!(shown.get("policy").is_none(), "{}: {shown}", t.name);
        publish(&ch, &x, "nowhere", "dropped").await.unwrap();
        assert!(drain(&ch, &q).await.is_empty(), "{}", t.name);
        delete_queue(&ch, &q).await;
        for name in [&x, &ae] {
            bounded(
                "exchange.delete",
                ch.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default()),
            )
            .await
            .unwrap();
        }
    }
}
