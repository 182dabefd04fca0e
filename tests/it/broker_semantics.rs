//! Refusals a client can trigger, pinned against RabbitMQ (the same checks run against
//! it when `RMQ_TEST_RABBITMQ_URL` is set): internal exchanges, exclusive consumers,
//! `exchange.delete` if-unused, channel.flow; and a queue type rmq serve does not
//! implement is refused without leaving a queue behind.

use crate::support::amqp::{bounded, code_and_text, try_connect};
use crate::support::{Broker, targets, unique};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

async fn channel(conn: &Connection) -> Channel {
    bounded("channel", conn.create_channel()).await.unwrap()
}

async fn exchange(ch: &Channel, name: &str, internal: bool) {
    bounded(
        "exchange.declare",
        ch.exchange_declare(
            name.into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                internal,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
}

async fn queue(ch: &Channel, name: &str) {
    bounded(
        "queue.declare",
        ch.queue_declare(
            name.into(),
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_rabbitmqs_codes_and_texts() {
    for (url, _broker) in targets() {
        let conn = try_connect(&url).await.unwrap();

        // Publishing to an internal exchange: 403 on the channel.
        let ch = channel(&conn).await;
        let ix = unique("internal");
        exchange(&ch, &ix, true).await;
        // With confirms on, the refusal reaches the publish's confirm.
        bounded(
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .unwrap();
        let publish = ch
            .basic_publish(
                ix.as_str().into(),
                "k".into(),
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default(),
            )
            .await;
        let err = match publish {
            Ok(confirm) => bounded("close", confirm).await.unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(
            code_and_text(&err),
            (
                403,
                format!("ACCESS_REFUSED - cannot publish to internal exchange '{ix}' in vhost '/'")
            ),
            "{url}"
        );

        // A second consumer on a queue consumed exclusively: 403.
        let ch = channel(&conn).await;
        let q = unique("excl");
        queue(&ch, &q).await;
        let _first = bounded(
            "consume",
            ch.basic_consume(
                q.as_str().into(),
                "one".into(),
                BasicConsumeOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let other = channel(&conn).await;
        let err = bounded(
            "consume",
            other.basic_consume(
                q.as_str().into(),
                "two".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(
            code_and_text(&err),
            (
                403,
                format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")
            ),
            "{url}"
        );

        // exchange.delete if-unused while a queue is bound: 406, and it stays.
        let ch = channel(&conn).await;
        let x = unique("used");
        exchange(&ch, &x, false).await;
        let bq = unique("bound");
        queue(&ch, &bq).await;
        bounded(
            "bind",
            ch.queue_bind(
                bq.as_str().into(),
                x.as_str().into(),
                "k".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let err = bounded(
            "exchange.delete",
            ch.exchange_delete(
                x.as_str().into(),
                ExchangeDeleteOptions {
                    if_unused: true,
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(
            code_and_text(&err),
            (
                406,
                format!("PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use")
            ),
            "{url}"
        );
        let ch = channel(&conn).await;
        bounded(
            "passive exchange.declare",
            ch.exchange_declare(
                x.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .expect("the exchange is still there");

        // channel.flow: active=true is acknowledged; active=false is a 540 connection error.
        let ch = channel(&conn).await;
        bounded(
            "flow on",
            ch.channel_flow(ChannelFlowOptions { active: true }),
        )
        .await
        .unwrap();
        let err = bounded(
            "flow off",
            ch.channel_flow(ChannelFlowOptions { active: false }),
        )
        .await
        .unwrap_err();
        assert_eq!(code_and_text(&err).0, 540, "{url}");
        // Only that connection closed: a new one works.
        let conn = try_connect(&url).await.unwrap();
        queue(&channel(&conn).await, &unique("after")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_queue_type_is_refused_and_creates_nothing() {
    let broker = Broker::start();
    for durable in [true, false] {
        // 540 is a connection error: a connection per attempt.
        let conn = try_connect(&broker.url()).await.unwrap();
        let q = unique("stream");
        let ch = channel(&conn).await;
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("stream".into()),
        );
        let err = bounded(
            "declare",
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable,
                    ..Default::default()
                },
                args,
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(code_and_text(&err).0, 540, "durable={durable}");
        let conn = try_connect(&broker.url()).await.unwrap();
        let ch = channel(&conn).await;
        let err = bounded(
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
        .unwrap_err();
        assert_eq!(
            code_and_text(&err).0,
            404,
            "durable={durable}: no queue left"
        );
    }
    // The management API refuses it too, and creates nothing.
    let client = crate::support::http();
    let q = unique("stream-http");
    let put = bounded(
        "PUT",
        client
            .put(format!("{}/api/queues/%2F/{q}", broker.api_url()))
            .basic_auth("guest", Some("guest"))
            .header("content-type", "application/json")
            .body(r#"{"durable":true,"arguments":{"x-queue-type":"stream"}}"#)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(put.status().as_u16(), 400);
    let get = bounded(
        "GET",
        client
            .get(format!("{}/api/queues/%2F/{q}", broker.api_url()))
            .basic_auth("guest", Some("guest"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(get.status().as_u16(), 404);
}
