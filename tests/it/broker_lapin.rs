//! lapin (a third-party Rust client) against the embedded broker: the tutorial flows,
//! confirms, returns, requeue order, large bodies, and the error paths a client can
//! trigger — each asserting RabbitMQ's reply code and that the broker keeps serving.

use crate::support::{Broker, WAIT, unique};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use std::future::Future;

/// Bound every await: a broken broker fails the test instead of hanging it.
async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

async fn connect(url: &str) -> Connection {
    bounded(
        "connect",
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .expect("connect")
}

async fn channel(conn: &Connection) -> Channel {
    bounded("channel.open", conn.create_channel())
        .await
        .expect("channel")
}

fn s(v: &str) -> ShortString {
    v.into()
}

/// The AMQP reply code inside a lapin error (channel or connection close).
fn reply_code(err: &lapin::Error) -> u16 {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => e.get_id(),
        other => panic!("expected an AMQP error, got {other:?}"),
    }
}

fn reply_text(err: &lapin::Error) -> String {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => e.get_message().to_string(),
        other => panic!("expected an AMQP error, got {other:?}"),
    }
}

async fn declare(ch: &Channel, name: &str) {
    bounded(
        "queue.declare",
        ch.queue_declare(
            s(name),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    let confirm = bounded(
        "publish",
        ch.basic_publish(
            s(exchange),
            s(key),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        ),
    )
    .await
    .expect("publish");
    bounded("confirm", confirm).await.expect("confirm");
}

async fn get_body(ch: &Channel, queue: &str) -> Option<Vec<u8>> {
    let msg = bounded(
        "basic.get",
        ch.basic_get(s(queue), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("get");
    msg.map(|m| m.delivery.data)
}

async fn next(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    bounded("delivery", consumer.next())
        .await
        .expect("consumer ended")
        .expect("delivery")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_world_with_confirms_properties_and_large_body() {
    let broker = Broker::start();
    let conn = connect(&broker.url()).await;
    let ch = channel(&conn).await;
    bounded(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .unwrap();
    let q = unique("hello");
    declare(&ch, &q).await;
    let mut headers = FieldTable::default();
    headers.insert(s("x-trace"), AMQPValue::LongString("abc".into()));
    headers.insert(s("n"), AMQPValue::LongInt(-7));
    let props = BasicProperties::default()
        .with_content_type(s("text/plain"))
        .with_correlation_id(s("c-1"))
        .with_headers(headers.clone());
    // 1 MiB + 1 spans several body frames at frame_max 131072.
    let big = vec![b'x'; (1 << 20) + 1];
    for body in [b"Hello World!".to_vec(), big.clone()] {
        let confirm = bounded(
            "publish",
            ch.basic_publish(
                s(""),
                s(&q),
                BasicPublishOptions::default(),
                &body,
                props.clone(),
            ),
        )
        .await
        .unwrap();
        assert!(matches!(
            bounded("confirm", confirm).await.unwrap(),
            Confirmation::Ack(None)
        ));
    }
    let mut consumer = bounded(
        "consume",
        ch.basic_consume(
            s(&q),
            s(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    assert!(consumer.tag().as_str().starts_with("amq.ctag-"));
    let d = next(&mut consumer).await;
    assert_eq!(d.data, b"Hello World!");
    assert_eq!(
        d.properties.content_type().as_ref().unwrap().as_str(),
        "text/plain"
    );
    assert_eq!(
        d.properties.correlation_id().as_ref().unwrap().as_str(),
        "c-1"
    );
    assert_eq!(d.properties.headers().as_ref().unwrap(), &headers);
    assert!(!d.redelivered);
    d.acker.ack(BasicAckOptions::default()).await.unwrap();
    let d = next(&mut consumer).await;
    assert_eq!(d.data.len(), big.len());
    d.acker.ack(BasicAckOptions::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_is_fair_and_a_dead_workers_message_is_redelivered() {
    let broker = Broker::start();
    let producer = connect(&broker.url()).await;
    let pch = channel(&producer).await;
    pch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("task_queue");
    declare(&pch, &q).await;

    let w1 = connect(&broker.url()).await;
    let c1 = channel(&w1).await;
    c1.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut cons1 = c1
        .basic_consume(
            s(&q),
            s("w1"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let w2 = connect(&broker.url()).await;
    let c2 = channel(&w2).await;
    c2.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut cons2 = c2
        .basic_consume(
            s(&q),
            s("w2"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    for i in 0..4 {
        publish(&pch, "", &q, format!("task {i}").as_bytes()).await;
    }
    // Prefetch 1: each worker holds exactly one task; neither gets a second before acking.
    let a = next(&mut cons1).await;
    let b = next(&mut cons2).await;
    let mut seen = vec![a.data.clone(), b.data.clone()];
    seen.sort();
    assert_eq!(seen, vec![b"task 0".to_vec(), b"task 1".to_vec()]);
    // Worker 1 dies holding its task: it must come back, redelivered, to worker 2.
    bounded("close w1", w1.close(200, s("bye"))).await.unwrap();
    b.acker.ack(BasicAckOptions::default()).await.unwrap();
    let again = next(&mut cons2).await;
    assert_eq!(
        again.data, a.data,
        "the dead worker's task comes first (original position)"
    );
    assert!(again.redelivered);
    again.acker.ack(BasicAckOptions::default()).await.unwrap();
    for expect in ["task 2", "task 3"] {
        let d = next(&mut cons2).await;
        assert_eq!(d.data, expect.as_bytes());
        assert!(!d.redelivered);
        d.acker.ack(BasicAckOptions::default()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_routing_uses_the_tutorials_keys() {
    let broker = Broker::start();
    let conn = connect(&broker.url()).await;
    let ch = channel(&conn).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let x = unique("topic_logs");
    ch.exchange_declare(
        s(&x),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut queues = Vec::new();
    for keys in [&["*.orange.*"][..], &["*.*.rabbit", "lazy.#"][..]] {
        let q = ch
            .queue_declare(
                s(""),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let name = q.name().to_string();
        assert!(
            name.starts_with("amq.gen-") && name.len() == 8 + 22,
            "{name}"
        );
        for k in keys {
            ch.queue_bind(
                s(&name),
                s(&x),
                s(k),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        }
        queues.push(name);
    }
    let cases: &[(&str, bool, bool)] = &[
        ("quick.orange.rabbit", true, true),
        ("lazy.orange.elephant", true, true),
        ("quick.orange.fox", true, false),
        ("lazy.brown.fox", false, true),
        ("lazy.pink.rabbit", false, true),
        ("quick.brown.fox", false, false),
        ("quick.orange.male.rabbit", false, false),
        ("lazy.orange.male.rabbit", false, true),
    ];
    for (key, _, _) in cases {
        publish(&ch, &x, key, key.as_bytes()).await;
    }
    for (i, q) in queues.iter().enumerate() {
        let expected: Vec<&str> = cases
            .iter()
            .filter(|(_, q1, q2)| if i == 0 { *q1 } else { *q2 })
            .map(|(k, _, _)| *k)
            .collect();
        let mut got = Vec::new();
        while let Some(body) = get_body(&ch, q).await {
            got.push(String::from_utf8(body).unwrap());
        }
        // lazy.pink.rabbit matches both of Q2's bindings and arrives once.
        assert_eq!(got, expected, "queue {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_unroutable_is_returned_before_its_confirm() {
    let broker = Broker::start();
    let conn = connect(&broker.url()).await;
    let ch = channel(&conn).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            s("amq.direct"),
            s(&unique("nowhere")),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"lost?",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    match bounded("confirm", confirm).await.unwrap() {
        Confirmation::Ack(Some(ret)) => {
            assert_eq!(ret.reply_code, 312);
            assert_eq!(ret.reply_text.as_str(), "NO_ROUTE");
            assert_eq!(ret.delivery.data, b"lost?");
        }
        other => panic!("expected an ack carrying the return, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_requeue_keeps_order_and_marks_redelivered() {
    let broker = Broker::start();
    let conn = connect(&broker.url()).await;
    let ch = channel(&conn).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = unique("requeue");
    declare(&ch, &q).await;
    for i in 0..3 {
        publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
    }
    let mut consumer = ch
        .basic_consume(
            s(&q),
            s("c"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut tags = Vec::new();
    for i in 0..3 {
        let d = next(&mut consumer).await;
        assert_eq!(d.data, format!("m{i}").as_bytes());
        tags.push(d.delivery_tag);
    }
    ch.basic_cancel(s("c"), BasicCancelOptions::default())
        .await
        .unwrap();
    // Nack everything up to the last tag at once: all three go back in their order.
    ch.basic_nack(
        tags[2],
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .unwrap();
    for i in 0..3 {
        let m = ch
            .basic_get(s(&q), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("requeued message");
        assert_eq!(m.delivery.data, format!("m{i}").as_bytes());
        assert!(m.delivery.redelivered);
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_reply_to_round_trip() {
    let broker = Broker::start();
    let server = connect(&broker.url()).await;
    let sch = channel(&server).await;
    let rpc = unique("rpc_queue");
    declare(&sch, &rpc).await;
    let mut requests = sch
        .basic_consume(
            s(&rpc),
            s(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let client = connect(&broker.url()).await;
    let cch = channel(&client).await;
    let mut replies = cch
        .basic_consume(
            s("amq.rabbitmq.reply-to"),
            s(""),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    cch.basic_publish(
        s(""),
        s(&rpc),
        BasicPublishOptions::default(),
        b"30",
        BasicProperties::default()
            .with_reply_to(s("amq.rabbitmq.reply-to"))
            .with_correlation_id(s("id-1")),
    )
    .await
    .unwrap();
    let req = next(&mut requests).await;
    let reply_to = req.properties.reply_to().clone().unwrap();
    assert!(
        reply_to.as_str().starts_with("amq.rabbitmq.reply-to."),
        "{reply_to}"
    );
    sch.basic_publish(
        s(""),
        reply_to,
        BasicPublishOptions::default(),
        b"832040",
        BasicProperties::default().with_correlation_id(s("id-1")),
    )
    .await
    .unwrap();
    req.acker.ack(BasicAckOptions::default()).await.unwrap();
    let reply = next(&mut replies).await;
    assert_eq!(reply.data, b"832040");
    assert_eq!(
        reply.properties.correlation_id().as_ref().unwrap().as_str(),
        "id-1"
    );

    // Consuming the pseudo-queue with acks is refused with 406, as in RabbitMQ.
    let ch = channel(&client).await;
    let err = ch
        .basic_consume(
            s("amq.rabbitmq.reply-to"),
            s(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(reply_code(&err), 406);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_never_acks_times_out_and_its_message_is_requeued() {
    let broker =
        Broker::start_with(|c| c.consumer_timeout = Some(std::time::Duration::from_millis(300)));
    let conn = connect(&broker.url()).await;
    let ch = channel(&conn).await;
    let q = unique("never-acked");
    declare(&ch, &q).await;
    publish(&ch, "", &q, b"hold me").await;
    let mut consumer = bounded(
        "consume",
        ch.basic_consume(
            s(&q),
            s("lazy"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let d = next(&mut consumer).await;
    assert_eq!(d.data, b"hold me");
    // No ack: RabbitMQ's consumer_timeout closes the channel with 406 and requeues.
    let err = bounded("channel close", consumer.next())
        .await
        .expect("the consumer stream ends with the close")
        .unwrap_err();
    assert_eq!(reply_code(&err), 406);
    assert!(
        reply_text(&err).starts_with("PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 300 ms."),
        "{}",
        reply_text(&err)
    );
    let other = channel(&conn).await;
    let m = bounded(
        "get",
        other.basic_get(s(&q), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    .expect("the message is back in the queue");
    assert!(m.delivery.redelivered);
}
