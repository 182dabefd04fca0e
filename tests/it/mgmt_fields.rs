//! The management API's JSON against RabbitMQ's, live: the same state on both brokers
//! (a queue with 2 ready and 1 unacked message, a consumer, a topic exchange bound to it),
//! then every field RabbitMQ's answer has — at every depth — must be in rmq's answer with
//! the same JSON type, except the fields RabbitMQ derives from Erlang internals (listed
//! below, and in the README). Needs `RMQ_TEST_RABBITMQ_URL` (CI sets it); without it the
//! shapes are covered by `mgmt_api`'s fixed field lists.

use crate::support::{Broker, WAIT, eventually, unique};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use std::collections::BTreeMap;

/// RabbitMQ fields rmq does not produce, by name (any depth), and why. Everything else
/// RabbitMQ answers must be there with the same type. The README lists these too.
const NOT_PRODUCED: &[&str] = &[
    // Erlang VM internals: no meaning outside the BEAM.
    "memory",
    "reductions",
    "reductions_details",
    "garbage_collection",
    "backing_queue_status",
    "erlang_version",
    "erlang_full_version",
    // Classic-queue storage internals (RAM vs paged, the message index) and mirroring.
    "messages_ram",
    "messages_ready_ram",
    "messages_unacknowledged_ram",
    "message_bytes_ram",
    "messages_persistent",
    "message_bytes_persistent",
    "messages_paged_out",
    "message_bytes_paged_out",
    "head_message_timestamp",
    "recoverable_slaves",
    "pending_raft_commands",
    "cluster_state",
    // TLS session details of amqps connections (rmq reports `ssl` only).
    "ssl_protocol",
    "ssl_key_exchange",
    "ssl_cipher",
    "ssl_hash",
    "peer_cert_subject",
    "peer_cert_issuer",
    "peer_cert_validity",
    // Statistics rmq does not collect: socket byte and packet counts, queue-depth rates,
    // per-channel and per-exchange message stats, fine-grained rate breakdowns, idleness,
    // consumer utilisation, and the audit user of a declaration.
    "recv_oct",
    "recv_oct_details",
    "recv_cnt",
    "send_oct",
    "send_oct_details",
    "send_cnt",
    "send_pend",
    "messages_details",
    "messages_ready_details",
    "messages_unacknowledged_details",
    "deliveries",
    "incoming",
    "outgoing",
    "idle_since",
    "consumer_capacity",
    "consumer_utilisation",
    "user_who_performed_action",
    "churn_rates",
    "disk_reads",
    "disk_reads_details",
    "disk_writes",
    "disk_writes_details",
];

/// Endpoints whose `message_stats` rmq does not collect (RabbitMQ has them per channel
/// and per exchange; rmq per queue, vhost and broker).
const NO_MESSAGE_STATS: &[&str] = &["/api/channels", "/api/exchanges/"];

/// `path → JSON type` for every field of `v`, recursing into objects and the first
/// element of arrays.
fn shape(v: &Value, path: &str, out: &mut BTreeMap<String, &'static str>) {
    let kind = match v {
        Value::Null => "null",
        // RabbitMQ writes an empty Erlang proplist (e.g. the channel_details of a channel
        // that just went) as [], where a full one is an object.
        Value::Array(a) if a.is_empty() => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if !path.is_empty() {
        out.insert(path.to_string(), kind);
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                shape(x, &format!("{path}/{k}"), out);
            }
        }
        Value::Array(a) => {
            if let Some(first) = a.first() {
                shape(first, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

/// Fields of RabbitMQ's answer missing or typed differently in rmq's.
fn differences(rabbit: &Value, ours: &Value) -> Vec<String> {
    let (mut theirs, mut mine) = (BTreeMap::new(), BTreeMap::new());
    shape(rabbit, "", &mut theirs);
    shape(ours, "", &mut mine);
    let mut out = Vec::new();
    for (path, kind) in &theirs {
        let skipped = path
            .split(['/', '['])
            .any(|seg| NOT_PRODUCED.contains(&seg.trim_end_matches(']')));
        // Arguments and client properties hold whatever the declaring client sent.
        if skipped || path.contains("/arguments/") || path.contains("/client_properties/") {
            continue;
        }
        match mine.get(path) {
            None => out.push(format!("{path} ({kind}) missing")),
            // RabbitMQ answers null where it has no value yet; any value of ours will do.
            Some(m) if m != kind && *kind != "null" && *m != "null" => {
                out.push(format!("{path}: RabbitMQ {kind}, rmq {m}"))
            }
            _ => {}
        }
    }
    out
}

async fn get(api: &str, path: &str) -> Value {
    let resp = crate::support::http()
        .get(format!("{api}{path}"))
        .basic_auth("guest", Some("guest"))
        .timeout(WAIT)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {api}{path}: {e}"));
    resp.json()
        .await
        .unwrap_or_else(|e| panic!("GET {api}{path}: not JSON: {e}"))
}

/// Queue `q` with 2 ready + 1 unacked (held by the returned channel's consumer), bound
/// from topic exchange `x`.
async fn build(url: &str, q: &str, x: &str) -> (Connection, Channel, lapin::Consumer) {
    // Named, as the rmq commands name theirs: RabbitMQ then lists `user_provided_name`
    // (other tests' rmq commands on the shared RabbitMQ have one too).
    let props = ConnectionProperties::default().with_connection_name(format!("{q}-conn").into());
    let conn = Connection::connect(url, props).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        q.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_declare(
        x.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        q.into(),
        x.into(),
        "k.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for i in 0..3 {
        let c = ch
            .basic_publish(
                x.into(),
                "k.a".into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        c.await.unwrap();
    }
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            q.into(),
            "fields".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    (conn, ch, consumer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_rabbitmq_answers_is_in_rmqs_answer_with_its_type() {
    let Some(rabbit_url) = std::env::var("RMQ_TEST_RABBITMQ_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("mgmt_fields: RMQ_TEST_RABBITMQ_URL is not set; nothing to compare with");
        return;
    };
    let rabbit_api = "http://127.0.0.1:15672".to_string();
    let broker = Broker::start();
    let (q, x) = (unique("fields-q"), unique("fields-x"));
    let _rabbit = build(&rabbit_url, &q, &x).await;
    let _ours = build(&broker.url(), &q, &x).await;
    // RabbitMQ's statistics lag by its collection interval (5 s): wait for them.
    let path = format!("/api/queues/%2F/{q}");
    let rt = tokio::runtime::Handle::current();
    eventually(WAIT, "RabbitMQ's queue statistics", || {
        let v = tokio::task::block_in_place(|| rt.block_on(get(&rabbit_api, &path)));
        v["messages_unacknowledged"] == 1 && v["messages_ready"] == 2 && v["consumers"] == 1
    });
    let paths = [
        format!("/api/queues/%2F/{q}"),
        format!("/api/exchanges/%2F/{x}"),
        format!("/api/bindings/%2F/e/{x}/q/{q}"),
        format!("/api/queues/%2F/{q}/bindings"),
        "/api/consumers/%2F".to_string(),
        "/api/connections".to_string(),
        "/api/channels".to_string(),
        "/api/vhosts/%2F".to_string(),
        "/api/whoami".to_string(),
        "/api/overview".to_string(),
        "/api/users".to_string(),
        "/api/exchanges/%2F".to_string(),
        "/api/bindings/%2F".to_string(),
        // The paging envelope, around this test's queue only.
        format!("/api/queues/%2F?page=1&page_size=10&name={q}"),
    ];
    let mut report = Vec::new();
    for p in &paths {
        // Lists may hold other tests' objects on the shared RabbitMQ: compare ours.
        let mine = |v: Value| match v {
            Value::Array(items) if p.starts_with("/api/consumers") => Value::Array(
                items
                    .into_iter()
                    .filter(|c| c["queue"]["name"] == q.as_str())
                    .collect(),
            ),
            other => other,
        };
        let theirs = mine(get(&rabbit_api, p).await);
        let ours = mine(get(&broker.api_url(), p).await);
        let skip_stats = NO_MESSAGE_STATS.iter().any(|e| p.starts_with(e));
        for d in differences(&theirs, &ours) {
            if skip_stats && d.contains("message_stats") {
                continue;
            }
            report.push(format!("{p}: {d}"));
        }
    }
    // The same state gives the same values, not only the same fields.
    let theirs = get(&rabbit_api, &path).await;
    let ours = get(&broker.api_url(), &path).await;
    for field in [
        "messages",
        "messages_ready",
        "messages_unacknowledged",
        "message_bytes",
        "message_bytes_ready",
        "message_bytes_unacknowledged",
        "consumers",
        "durable",
        "auto_delete",
        "exclusive",
        "state",
    ] {
        assert_eq!(ours[field], theirs[field], "{path}: {field}");
    }
    assert_eq!(
        (
            ours["messages_ready"].as_u64(),
            ours["messages_unacknowledged"].as_u64(),
            ours["message_bytes"].as_u64()
        ),
        (Some(2), Some(1), Some(6))
    );
    assert!(
        report.is_empty(),
        "fields of RabbitMQ's answers that rmq lacks:\n{}",
        report.join("\n")
    );
}
