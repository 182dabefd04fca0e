//! The error paths a client can trigger, over lapin: channel errors with RabbitMQ's
//! codes and texts that spare the connection, and connection errors that close only
//! that connection — the broker keeps serving everyone else.

use crate::support::amqp::bounded;
use crate::support::steps::{
    channel, connect, declare, get_body, next, publish, reply_code, reply_text, s,
};
use crate::support::{Broker, unique};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_errors_carry_rabbitmqs_codes_and_spare_the_connection() {
    let broker = Broker::start();
    let conn = connect(&broker.url()).await;
    let q = unique("errs");

    let ch = channel(&conn).await;
    let err = ch
        .queue_declare(
            s(&q),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), 404);
    assert_eq!(
        reply_text(&err),
        format!("NOT_FOUND - no queue '{q}' in vhost '/'")
    );

    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    let err = ch
        .queue_declare(
            s(&q),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), 406);
    assert_eq!(
        reply_text(&err),
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': received 'true' but current is 'false'"
        )
    );

    let ch = channel(&conn).await;
    let err = ch
        .queue_declare(
            s("amq.mine"),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), 403);

    let ch = channel(&conn).await;
    let err = ch
        .exchange_delete(s("amq.direct"), ExchangeDeleteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), 403);

    let ch = channel(&conn).await;
    let err = ch
        .exchange_declare(
            s("amq.direct"),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        reply_code(&err),
        406,
        "another type: 406 like RabbitMQ, not the spec's 530"
    );

    let ch = channel(&conn).await;
    publish(&ch, "", &q, b"one").await;
    let mut consumer = ch
        .basic_consume(
            s(&q),
            s("c"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let m = next(&mut consumer).await;
    ch.basic_ack(m.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    // Acking the same tag again: 406 unknown delivery tag. lapin hands the channel's close
    // reason to its consumers, so the consumer stream reports it without any race.
    ch.basic_ack(m.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    let err = bounded("channel close", consumer.next())
        .await
        .expect("consumer stream ends with the error")
        .unwrap_err();
    assert_eq!(reply_code(&err), 406);
    assert_eq!(
        reply_text(&err),
        format!(
            "PRECONDITION_FAILED - unknown delivery tag {}",
            m.delivery_tag
        )
    );

    let ch = channel(&conn).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let err = ch
        .basic_publish(
            s("no-such-x"),
            s(""),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await;
    // With confirms on, the channel close reaches the pending confirm: no race with a
    // follow-up method that lapin would refuse on a closing channel.
    let err = match err {
        Err(e) => e,
        Ok(confirm) => bounded("confirm", confirm).await.unwrap_err(),
    };
    assert_eq!(reply_code(&err), 404);

    // Exclusive queues belong to their connection: another one gets 405.
    let other = connect(&broker.url()).await;
    let och = channel(&other).await;
    let ex = unique("excl");
    och.queue_declare(
        s(&ex),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let ch = channel(&conn).await;
    let err = ch
        .basic_consume(
            s(&ex),
            s(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), 405);
    // ...and it goes when its connection closes.
    other.close(200, s("bye")).await.unwrap();
    let ch = channel(&conn).await;
    let err = ch
        .queue_declare(
            s(&ex),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), 404);

    // After all of that the connection still works.
    let ch = channel(&conn).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish(&ch, "", &q, b"still here").await;
    assert_eq!(get_body(&ch, &q).await.as_deref(), Some(&b"still here"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_close_only_that_connection() {
    let broker = Broker::start();
    let bystander = connect(&broker.url()).await;
    let bch = channel(&bystander).await;
    let q = unique("bystander");
    declare(&bch, &q).await;

    // Reusing a consumer tag on a channel is a 530 connection error.
    let conn = connect(&broker.url()).await;
    let ch = channel(&conn).await;
    declare(&ch, &q).await;
    // Held: lapin cancels a consumer when its handle is dropped, which would free the tag.
    let _first = ch
        .basic_consume(
            s(&q),
            s("dup"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let err = ch
        .basic_consume(
            s(&q),
            s("dup"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), 530);
    assert!(reply_text(&err).starts_with("NOT_ALLOWED - attempt to reuse consumer tag 'dup'"));

    // Unknown vhost: 530 on connection.open.
    let url = broker.url().replace("%2F", "no-such-vhost");
    let err = bounded(
        "connect",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(reply_code(&err), 530);

    // Wrong password: 403 ACCESS_REFUSED (lapin announces authentication_failure_close).
    let url = broker.url().replace("guest:guest", "guest:wrong");
    let err = bounded(
        "connect",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(reply_code(&err), 403, "{err:?}");

    // The bystander never noticed.
    bch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish(&bch, "", &q, b"ok").await;
    assert_eq!(get_body(&bch, &q).await.as_deref(), Some(&b"ok"[..]));
}
