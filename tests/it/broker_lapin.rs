//! lapin (a third-party Rust client) against the embedded broker: the tutorial flows,
//! confirms, returns, requeue order, large bodies, and the error paths a client can
//! trigger — each asserting RabbitMQ's reply code and that the broker keeps serving.

use crate::support::amqp::bounded;
use crate::support::steps::{
    channel, connect, declare, get_body, next, publish, reply_code, reply_text, s,
};
use crate::support::{Broker, unique};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation, ExchangeKind};

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
