//! The management API's live views over real HTTP: connections, channels and consumers
//! (and closing a connection from outside), paging, columns and sorting of lists, and
//! the overview and `/metrics` moving with traffic.

use crate::support::amqp::bounded;
use crate::support::api::{amqp, assert_shape, call, get, send};
use crate::support::{Broker, metric, unique};
use futures_lite::StreamExt;
use lapin::BasicProperties;
use lapin::options::*;
use lapin::types::FieldTable;
use serde_json::json;

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
