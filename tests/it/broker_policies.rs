//! Policies, operator policies and topic permissions, against `rmq serve` and — when
//! `RMQ_TEST_RABBITMQ_URL` is set — the same scenario against RabbitMQ 3.10 (its
//! management API on 127.0.0.1:15672): what a policy does to existing and new queues
//! and stops doing when cleared, which policy wins, how operator policies cap, the
//! validation texts, the API's gates, definitions and restarts, topic permissions.
//!
//! RabbitMQ applies a policy change to a queue asynchronously and shows it in the API
//! with its statistics (every 5 s): each scenario waits, bounded, until the queue shows
//! the policy before it looks at the effect. Every name is unique and every pattern is
//! anchored to this run's names, so a shared RabbitMQ's other users are not touched.

use crate::broker_access::code_and_text;
use crate::support::{Broker, WAIT, unique};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Value, json};
use std::future::Future;
use std::time::{Duration, Instant};

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A broker under test: its AMQP URL and management API, and the embedded broker that
/// serves them when it is rmq's.
struct Target {
    name: &'static str,
    amqp: String,
    api: String,
    _broker: Option<Broker>,
}

impl Target {
    /// `host:port` of the AMQP listener, for other users' URLs.
    fn amqp_host(&self) -> &str {
        let rest = self.amqp.split_once('@').map_or("", |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }

    fn is_rmq(&self) -> bool {
        self._broker.is_some()
    }
}

fn targets() -> Vec<Target> {
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
async fn call(
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

const GUEST: (&str, &str) = ("guest", "guest");

async fn put(t: &Target, path: &str, body: Value) -> u16 {
    let (s, v) = call(&t.api, "PUT", path, Some(body), GUEST).await;
    assert!(s == 201 || s == 204, "{}: PUT {path}: {s} {v}", t.name);
    s
}

async fn delete(t: &Target, path: &str) {
    let (s, v) = call(&t.api, "DELETE", path, None, GUEST).await;
    assert_eq!(s, 204, "{}: DELETE {path}: {v}", t.name);
}

async fn get(t: &Target, path: &str) -> Value {
    let (s, v) = call(&t.api, "GET", path, None, GUEST).await;
    assert_eq!(s, 200, "{}: GET {path}: {v}", t.name);
    v
}

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

async fn channel(url: &str) -> (Connection, Channel) {
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

async fn declare(ch: &Channel, q: &str, args: FieldTable) {
    bounded(
        "queue.declare",
        ch.queue_declare(q.into(), QueueDeclareOptions::default(), args),
    )
    .await
    .unwrap();
}

async fn delete_queue(ch: &Channel, q: &str) {
    bounded(
        "queue.delete",
        ch.queue_delete(q.into(), QueueDeleteOptions::default()),
    )
    .await
    .unwrap();
}

/// Publish and wait for the broker's confirm.
async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str) -> lapin::Result<()> {
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
async fn drain(ch: &Channel, q: &str) -> Vec<String> {
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

async fn publish_all(ch: &Channel, q: &str, bodies: &[&str]) {
    for b in bodies {
        publish(ch, "", q, b).await.unwrap();
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_policies_are_refused_with_rabbitmqs_texts() {
    for t in targets() {
        let p = unique("pol-bad");
        let path = format!("/api/policies/%2F/{p}");
        let refused = |body: Value| {
            let (api, path) = (t.api.clone(), path.clone());
            async move { call(&api, "PUT", &path, Some(body), GUEST).await }
        };
        let bad = |reason: &str| (400u16, json!({"error": "bad_request", "reason": reason}));
        let pattern = format!("^{p}$");
        assert_eq!(
            refused(json!({"pattern": pattern, "definition": {"foo": "x", "bar": 1}})).await,
            bad(
                "Validation failed\n\n[{&lt;&lt;\"bar\"&gt;&gt;,1},{&lt;&lt;\"foo\"&gt;&gt;,&lt;&lt;\"x\"&gt;&gt;}] are not recognised policy settings\n"
            ),
            "{}",
            t.name
        );
        assert_eq!(
            refused(json!({"pattern": pattern, "definition": {"federation-upstream": "up"}})).await,
            bad(
                "Validation failed\n\n[{&lt;&lt;\"federation-upstream\"&gt;&gt;,&lt;&lt;\"up\"&gt;&gt;}] are not recognised policy settings\n"
            ),
            "{}",
            t.name
        );
        assert_eq!(
            refused(json!({"pattern": pattern, "definition": {"message-ttl": -1}})).await,
            bad("Validation failed\n\n-1 is not a valid message TTL\n"),
            "{}",
            t.name
        );
        assert_eq!(
            refused(json!({"pattern": "(", "definition": {"max-length": "x"}, "apply-to": "x", "priority": "a"})).await,
            bad("Validation failed\n\n&lt;&lt;\"x\"&gt;&gt; is not a valid maximum length\napply-to 'x' unrecognised; should be 'queues', 'exchanges' or 'all'\npattern should be regular expression but is invalid: {\"missing )\",1}\npriority should be a number, actually was &lt;&lt;\"a\"&gt;&gt;\n"),
            "{}",
            t.name
        );
        assert_eq!(
            refused(json!({"pattern": pattern, "definition": {}})).await,
            bad("Validation failed\n\nno policy provided\n"),
            "{}",
            t.name
        );
        assert_eq!(
            refused(json!({"apply-to": "all"})).await,
            bad("[{key_missing,pattern},{key_missing,definition}]"),
            "{}",
            t.name
        );
        // Operator policies take limits only, and their texts are not HTML-escaped.
        let (s, v) = call(
            &t.api,
            "PUT",
            &format!("/api/operator-policies/%2F/{p}"),
            Some(json!({"pattern": pattern, "definition": {"overflow": "reject-publish"}})),
            GUEST,
        )
        .await;
        assert_eq!(
            (s, v),
            bad(
                "Validation failed\n\n[{<<\"overflow\">>,<<\"reject-publish\">>}] are not recognised policy settings\n"
            ),
            "{}",
            t.name
        );
        let (s, v) = call(
            &t.api,
            "PUT",
            &format!("/api/policies/{p}-no-vhost/{p}"),
            Some(json!({"pattern": pattern, "definition": {"max-length": 1}})),
            GUEST,
        )
        .await;
        assert_eq!(
            (s, v),
            (
                404,
                json!({"error": "not_found", "reason": "vhost_not_found"})
            ),
            "{}",
            t.name
        );
        for method in ["GET", "DELETE"] {
            let (s, v) = call(&t.api, method, &path, None, GUEST).await;
            assert_eq!(
                (s, v),
                (
                    404,
                    json!({"error": "Object Not Found", "reason": "Not Found"})
                ),
                "{}: {method}",
                t.name
            );
        }
        // Nothing was stored by any of these.
        let all = get(&t, "/api/policies").await;
        assert!(
            !all.as_array().unwrap().iter().any(|x| x["name"] == p),
            "{}",
            t.name
        );
        if t.is_rmq() {
            // rmq does not mirror queues: refused rather than accepted and ignored
            // (RabbitMQ 3.10 accepts ha-mode).
            assert_eq!(
                refused(json!({"pattern": pattern, "definition": {"ha-mode": "all"}})).await,
                bad(
                    "Validation failed\n\n[{&lt;&lt;\"ha-mode\"&gt;&gt;,&lt;&lt;\"all\"&gt;&gt;}] are not recognised policy settings\n"
                ),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_the_policymakers_and_operator_policies_the_administrators() {
    for t in targets() {
        let p = unique("pol-who");
        let (manager, maker) = (format!("{p}-mgmt"), format!("{p}-maker"));
        for (u, tag) in [(&manager, "management"), (&maker, "policymaker")] {
            put(
                &t,
                &format!("/api/users/{u}"),
                json!({"password": "pw", "tags": tag}),
            )
            .await;
        }
        let policy = format!("/api/policies/%2F/{p}");
        let body = json!({"pattern": format!("^{p}$"), "definition": {"max-length": 1}});
        let as_user = |u: &str, method: &'static str, path: String, body: Option<Value>| {
            let (api, u) = (t.api.clone(), u.to_string());
            async move { call(&api, method, &path, body, (&u, "pw")).await }
        };
        let object =
            json!({"error": "not_authorised", "reason": "User not authorised to access object"});
        // A management user lists policies but may not touch one.
        assert_eq!(
            as_user(&manager, "GET", "/api/policies".into(), None)
                .await
                .0,
            200
        );
        assert_eq!(
            as_user(&manager, "PUT", policy.clone(), Some(body.clone())).await,
            (401, object.clone()),
            "{}",
            t.name
        );
        // A policymaker needs a permission in the vhost.
        assert_eq!(
            as_user(&maker, "PUT", policy.clone(), Some(body.clone())).await,
            (401, object.clone()),
            "{}",
            t.name
        );
        put(
            &t,
            &format!("/api/permissions/%2F/{maker}"),
            json!({"configure": "", "write": "", "read": ""}),
        )
        .await;
        assert_eq!(
            as_user(&maker, "PUT", policy.clone(), Some(body.clone()))
                .await
                .0,
            201,
            "{}",
            t.name
        );
        assert_eq!(
            as_user(
                &maker,
                "PUT",
                format!("/api/operator-policies/%2F/{p}"),
                Some(body.clone())
            )
            .await,
            (
                401,
                json!({"error": "not_authorised", "reason": "Not administrator user"})
            ),
            "{}",
            t.name
        );
        assert_eq!(
            as_user(&maker, "DELETE", policy.clone(), None).await.0,
            204,
            "{}",
            t.name
        );
        for u in [&manager, &maker] {
            delete(&t, &format!("/api/users/{u}")).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_permissions_refuse_other_routing_and_binding_keys() {
    for t in targets() {
        let p = unique("tp");
        let user = format!("{p}-u");
        put(
            &t,
            &format!("/api/users/{user}"),
            json!({"password": "pw", "tags": "management"}),
        )
        .await;
        put(
            &t,
            &format!("/api/permissions/%2F/{user}"),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .await;
        let tp = format!("/api/topic-permissions/%2F/{user}");
        let created = put(
            &t,
            &tp,
            json!({"exchange": "amq.topic", "write": "^{username}\\.", "read": "^r\\."}),
        )
        .await;
        assert_eq!(created, 201, "{}", t.name);
        assert_eq!(
            get(&t, &tp).await,
            json!([{"user": user, "vhost": "/", "exchange": "amq.topic",
                    "write": "^{username}\\.", "read": "^r\\."}]),
            "{}",
            t.name
        );
        let url = format!("amqp://{user}:pw@{}/%2F", t.amqp_host());
        let (conn, ch) = channel(&url).await;
        let q = format!("{p}-q");
        declare(&ch, &q, FieldTable::default()).await;
        publish(&ch, "amq.topic", &format!("{user}.ok"), "x")
            .await
            .unwrap();
        let refused = |key: &str| {
            (
                403u16,
                format!(
                    "ACCESS_REFUSED - access to topic '{key}' in exchange 'amq.topic' in vhost '/' refused for user '{user}'"
                ),
            )
        };
        let err = publish(&ch, "amq.topic", "someone-else.x", "x")
            .await
            .unwrap_err();
        assert_eq!(code_and_text(&err), refused("someone-else.x"), "{}", t.name);
        let ch = bounded("channel", conn.create_channel()).await.unwrap();
        let bind = |key: &'static str| {
            let (ch, q) = (ch.clone(), q.clone());
            async move {
                bounded(
                    "queue.bind",
                    ch.queue_bind(
                        q.as_str().into(),
                        "amq.topic".into(),
                        key.into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    ),
                )
                .await
            }
        };
        bind("r.#").await.unwrap();
        let err = bind("#").await.unwrap_err();
        assert_eq!(code_and_text(&err), refused("#"), "{}", t.name);
        // Other exchanges, and exchanges that are not topic ones, are not restricted.
        let ch = bounded("channel", conn.create_channel()).await.unwrap();
        bounded(
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .unwrap();
        publish(&ch, "amq.direct", "anything", "x").await.unwrap();
        // The API publishes as its caller, with the same check.
        let (s, v) = call(
            &t.api,
            "POST",
            "/api/exchanges/%2F/amq.topic/publish",
            Some(json!({"properties": {}, "routing_key": "nope", "payload": "x", "payload_encoding": "string"})),
            (&user, "pw"),
        )
        .await;
        assert_eq!(
            (s, v),
            (
                400,
                json!({"error": "bad_request", "reason": format!("403 {}", refused("nope").1)})
            ),
            "{}",
            t.name
        );
        delete(&t, &format!("/api/users/{user}")).await;
        let (_c, ch) = channel(&t.amqp).await;
        delete_queue(&ch, &q).await;
        drop(conn);
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_topic_permissions_survive_a_restart() {
    let data = std::env::temp_dir().join(unique("pol-restart"));
    let start = || {
        let data = data.clone();
        Broker::start_with(move |c| c.data_dir = Some(data))
    };
    let q = unique("pol-kept");
    let target = |b: &Broker| Target {
        name: "rmq",
        amqp: b.url(),
        api: b.api_url(),
        _broker: None,
    };
    {
        let broker = start();
        let t = target(&broker);
        put(
            &t,
            "/api/policies/%2F/kept",
            json!({"pattern": format!("^{q}$"), "definition": {"max-length": 1}}),
        )
        .await;
        put(
            &t,
            "/api/operator-policies/%2F/kept-op",
            json!({"pattern": format!("^{q}$"), "definition": {"expires": 3600000}}),
        )
        .await;
        put(&t, "/api/users/erin", json!({"password": "pw", "tags": ""})).await;
        put(
            &t,
            "/api/topic-permissions/%2F/erin",
            json!({"exchange": "amq.topic", "write": "^erin\\.", "read": ".*"}),
        )
        .await;
        put(
            &t,
            &format!("/api/queues/%2F/{q}"),
            json!({"durable": true}),
        )
        .await;
        let (_conn, ch) = channel(&t.amqp).await;
        for body in ["1", "2"] {
            let props = BasicProperties::default().with_delivery_mode(2);
            let confirm = bounded(
                "publish",
                ch.basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props,
                ),
            )
            .await
            .unwrap();
            bounded("confirm", confirm).await.unwrap();
        }
    }
    let broker = start();
    let t = target(&broker);
    let shown = get(&t, &format!("/api/queues/%2F/{q}")).await;
    assert_eq!(
        (&shown["policy"], &shown["operator_policy"]),
        (&json!("kept"), &json!("kept-op"))
    );
    assert_eq!(shown["messages"], 1, "max-length 1 held the newest only");
    assert_eq!(
        get(&t, "/api/topic-permissions/%2F/erin").await[0]["write"],
        "^erin\\."
    );
    let (_conn, ch) = channel(&t.amqp).await;
    publish_all(&ch, &q, &["3", "4"]).await;
    assert_eq!(drain(&ch, &q).await, ["4"]);
    let _ = std::fs::remove_dir_all(&data);
}
