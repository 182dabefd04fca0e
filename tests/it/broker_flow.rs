//! Resource limits with lapin: the node connection limit (530 at connection.open, as
//! RabbitMQ's `connection_max`), and memory/disk alarms that block publishing
//! connections (connection.blocked / unblocked) while consumers keep draining.

use crate::support::amqp::bounded;
use crate::support::wire::{
    expect_connection_close, frame, handshake_with_heartbeat, ids, method, read_frame, read_method,
    short,
};
use crate::support::{Broker, WAIT, eventually, unique};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Event};
use rmq::broker::MemoryWatermark;
use serde_json::Value;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A watermark no test process reaches / one it is always above.
const NEVER: MemoryWatermark = MemoryWatermark::Absolute(u64::MAX);
const ALWAYS: MemoryWatermark = MemoryWatermark::Absolute(1);

async fn try_connect(url: &str) -> lapin::Result<Connection> {
    bounded(
        "connect",
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_refuses_with_530_and_frees_on_close() {
    let broker = Broker::start_with(|c| c.max_connections = Some(3));
    let url = broker.url();
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(try_connect(&url).await.expect("under the limit"));
    }
    let err = try_connect(&url).await.expect_err("over the limit");
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => {
            assert_eq!(e.get_id(), 530);
            assert_eq!(
                e.get_message().as_str(),
                "NOT_ALLOWED - connection refused: node connection limit (3) is reached"
            );
        }
        other => panic!("expected a 530 close, got {other:?}"),
    }
    // The open ones are unaffected. The channels are kept: lapin closes a dropped
    // channel in the background, which races with the connection.close below.
    let mut channels = Vec::new();
    for c in &open {
        channels.push(
            bounded("channel", c.create_channel())
                .await
                .expect("existing connection still works"),
        );
    }
    let first = open.remove(0);
    bounded("close", first.close(200, "bye".into()))
        .await
        .expect("close");
    // The slot is given back when the broker has torn the connection down, just after
    // close-ok: poll with a bounded deadline.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match try_connect(&url).await {
            Ok(c) => {
                open.push(c);
                break;
            }
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "no slot came free: {e}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await; // polling, bounded
    }
}

async fn channel(conn: &Connection) -> Channel {
    bounded("channel.open", conn.create_channel())
        .await
        .expect("channel")
}

async fn publish(ch: &Channel, queue: &str, body: &[u8]) -> lapin::PublisherConfirm {
    bounded(
        "basic.publish",
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        ),
    )
    .await
    .expect("publish")
}

/// Poll `check` every 20 ms until it holds, for at most WAIT.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling, bounded
    }
}

async fn api(broker: &Broker, path: &str) -> Value {
    let resp = bounded(
        path,
        crate::support::http()
            .get(format!("{}{path}", broker.api_url()))
            .basic_auth("guest", Some("guest"))
            .send(),
    )
    .await
    .expect("HTTP");
    bounded(path, resp.json()).await.expect("JSON")
}

/// The `state` of every listed connection, in connection order.
async fn states(broker: &Broker) -> Vec<String> {
    let conns = api(broker, "/api/connections").await;
    conns
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["state"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_alarm_blocks_publishers_while_consumers_drain() {
    let broker = Broker::start();
    let url = broker.url();
    let q = unique("flow");
    let publisher = try_connect(&url).await.expect("connect");
    let mut events = publisher.events_listener();
    let pch = channel(&publisher).await;
    bounded(
        "confirm.select",
        pch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .unwrap();
    let consumer_conn = try_connect(&url).await.expect("connect");
    let cch = channel(&consumer_conn).await;
    bounded(
        "queue.declare",
        cch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    for body in [b"1", b"2"] {
        bounded("confirm", publish(&pch, &q, body).await)
            .await
            .unwrap();
    }

    broker.alarms.set_memory_high_watermark(ALWAYS);
    until("the memory alarm", async || broker.alarms.memory_alarm()).await;
    // Alarm on, nothing published since: both connections are `blocking`, not blocked.
    until("both blocking", async || {
        states(&broker).await == ["blocking", "blocking"]
    })
    .await;
    let node = api(&broker, "/api/nodes").await;
    assert_eq!(node[0]["mem_alarm"], true, "{node}");
    assert_eq!(node[0]["mem_limit"], 1);
    assert!(node[0]["mem_used"].as_u64().unwrap() > 1);
    assert_eq!(node[0]["disk_free_alarm"], false);

    // The publish that meets the alarm is taken (and confirmed), as in RabbitMQ; then the
    // connection is blocked and told why.
    bounded("confirm", publish(&pch, &q, b"3").await)
        .await
        .unwrap();
    let reason = loop {
        match bounded("connection.blocked", events.next()).await {
            Some(Event::ConnectionBlocked(reason)) => break reason,
            Some(_) => continue,
            None => panic!("event stream ended"),
        }
    };
    assert_eq!(reason, "low on memory");
    assert!(publisher.status().blocked());
    until("publisher blocked", async || {
        states(&broker).await == ["blocked", "blocking"]
    })
    .await;
    let metrics = broker.metrics().await;
    assert!(metrics.contains("\nrabbitmq_alarms_memory_used_watermark 1\n"));
    assert!(metrics.contains("\nrabbitmq_resident_memory_limit_bytes 1\n"));

    // A blocked publisher's next message waits for the alarm to clear.
    // (lapin itself holds the write while told it is blocked, so even the publish call
    // waits: run it aside.)
    let pending = tokio::spawn({
        let (pch, q) = (pch.clone(), q.clone());
        async move {
            let props = BasicProperties::default();
            let options = BasicPublishOptions::default();
            let key = q.as_str().into();
            pch.basic_publish("".into(), key, options, b"4", props)
                .await?
                .await
        }
    });
    // The consumer connection is never blocked: it drains and acks what is queued.
    let mut consumer = bounded(
        "basic.consume",
        cch.basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    for want in [b"1", b"2", b"3"] {
        let d = bounded("delivery", consumer.next()).await.unwrap().unwrap();
        assert_eq!(d.data, want);
        bounded("ack", d.ack(BasicAckOptions::default()))
            .await
            .unwrap();
    }
    until("acks counted", async || {
        api(&broker, &format!("/api/queues/%2F/{q}")).await["messages"] == 0
    })
    .await;
    assert!(
        !pending.is_finished(),
        "a blocked publisher's confirm arrived"
    );

    broker.alarms.set_memory_high_watermark(NEVER);
    loop {
        match bounded("connection.unblocked", events.next()).await {
            Some(Event::ConnectionUnblocked) => break,
            Some(_) => continue,
            None => panic!("event stream ended"),
        }
    }
    bounded("held confirm", pending).await.unwrap().unwrap();
    let d = bounded("delivery", consumer.next()).await.unwrap().unwrap();
    assert_eq!(d.data, b"4");
    until("running again", async || {
        states(&broker).await == ["running", "running"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_alarm_names_its_reason_and_both_alarms_are_named_together() {
    let dir = std::env::temp_dir().join(unique("flow-disk"));
    let broker = Broker::start_with(|c| c.data_dir = Some(dir.clone()));
    let publisher = try_connect(&broker.url()).await.expect("connect");
    let mut events = publisher.events_listener();
    let ch = channel(&publisher).await;
    let q = unique("flow-disk");
    bounded(
        "queue.declare",
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    broker.alarms.set_disk_free_limit(u64::MAX);
    broker.alarms.set_memory_high_watermark(ALWAYS);
    until("both alarms", async || {
        broker.alarms.disk_alarm() && broker.alarms.memory_alarm()
    })
    .await;
    let node = api(&broker, "/api/nodes").await;
    assert_eq!(node[0]["disk_free_alarm"], true, "{node}");
    assert!(node[0]["disk_free"].as_u64().unwrap() > 0);
    drop(publish(&ch, &q, b"x").await);
    let reason = loop {
        match bounded("connection.blocked", events.next()).await {
            Some(Event::ConnectionBlocked(reason)) => break reason,
            Some(_) => continue,
            None => panic!("event stream ended"),
        }
    };
    assert_eq!(reason, "low on memory & disk");
    // Unblocked only once every alarm is clear.
    broker.alarms.set_memory_high_watermark(NEVER);
    until("memory alarm cleared", async || {
        !broker.alarms.memory_alarm()
    })
    .await;
    assert!(publisher.status().blocked());
    broker.alarms.set_disk_free_limit(0);
    until("unblocked", async || !publisher.status().blocked()).await;
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// basic.publish of `body` to the default exchange with routing key `queue`, on channel 1.
fn raw_publish(s: &mut TcpStream, queue: &str, body: &[u8]) {
    let mut args = 0u16.to_be_bytes().to_vec();
    args.extend(short(""));
    args.extend(short(queue));
    args.push(0);
    let mut out = frame(1, 1, &method(60, 40, &args));
    let mut header = 60u16.to_be_bytes().to_vec();
    header.extend_from_slice(&0u16.to_be_bytes());
    header.extend_from_slice(&(body.len() as u64).to_be_bytes());
    header.extend_from_slice(&0u16.to_be_bytes());
    out.extend(frame(2, 1, &header));
    out.extend(frame(3, 1, body));
    s.write_all(&out).unwrap();
}

/// The next method on channel 1 must be basic.ack for `tag`.
fn expect_ack(s: &mut TcpStream, tag: u64) {
    let (ch, ack) = read_method(s).expect("basic.ack");
    assert_eq!((ch, ids(&ack)), (1, (60, 80)));
    assert_eq!(u64::from_be_bytes(ack[4..12].try_into().unwrap()), tag);
}

/// Without the capability a client is blocked silently; the broker stops reading it,
/// does not drop it for missed heartbeats meanwhile, and still closes it on shutdown.
#[test]
fn a_blocked_connection_is_not_read_not_timed_out_and_still_shut_down() {
    let broker = Broker::start();
    let q = unique("flow-raw");
    // Empty client properties: no `connection.blocked` capability. Heartbeat 1 s: a
    // connection read normally would be dropped after about 2.5 s of silence.
    let mut s = handshake_with_heartbeat(broker.addr, 1);
    s.write_all(&frame(1, 1, &method(20, 10, &short(""))))
        .unwrap();
    assert_eq!(ids(&read_method(&mut s).unwrap().1), (20, 11));
    s.write_all(&frame(1, 1, &method(85, 10, &[0]))).unwrap();
    assert_eq!(ids(&read_method(&mut s).unwrap().1), (85, 11));
    let mut declare = 0u16.to_be_bytes().to_vec();
    declare.extend(short(&q));
    declare.push(0);
    declare.extend_from_slice(&0u32.to_be_bytes());
    s.write_all(&frame(1, 1, &method(50, 10, &declare)))
        .unwrap();
    assert_eq!(ids(&read_method(&mut s).unwrap().1), (50, 11));
    raw_publish(&mut s, &q, b"before");
    expect_ack(&mut s, 1);

    broker.alarms.set_memory_high_watermark(ALWAYS);
    eventually(WAIT, "the memory alarm", || broker.alarms.memory_alarm());
    raw_publish(&mut s, &q, b"meets the alarm");
    expect_ack(&mut s, 2);
    // Blocked now: this one is not read, so never confirmed, and for longer than two
    // heartbeat intervals nothing but the broker's heartbeats arrives.
    raw_publish(&mut s, &q, b"held");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let quiet_until = Instant::now() + Duration::from_millis(3500);
    while Instant::now() < quiet_until {
        // None: the read timed out. (Had the broker dropped us, the close expected below
        // would not come.)
        if let Some((kind, _, _)) = read_frame(&mut s) {
            assert_eq!(kind, 8, "only heartbeats while blocked");
        }
    }
    s.set_read_timeout(Some(WAIT)).unwrap();
    // Broker shutdown reaches the blocked connection (320, then the socket closes).
    let stopper = std::thread::spawn(move || drop(broker));
    let text = expect_connection_close(&mut s, 320);
    assert!(text.contains("shutdown"), "{text}");
    stopper.join().unwrap();
}
