//! Hostile and unlucky peers (issue: hostile input never takes the broker down): a bug
//! in a handler, a peer that never reads, concurrent connects racing a vhost limit, a
//! reply text past 255 bytes through the real CLI, management paths with a trailing
//! slash. Each time only that peer is affected and the broker keeps serving. The wire-level
//! scenarios that RabbitMQ shares run against both brokers in
//! `tests/clients/python/hostile.py`.

use crate::support::wire::{
    expect_connection_close, frame, handshake_with_heartbeat, ids, method, pre_open, read_method,
    short,
};
use crate::support::{Broker, WAIT, http, rmq, run_bounded, targets, unique};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// GET a management path as guest; (status, body).
async fn api_get(base: &str, path: &str) -> (u16, serde_json::Value) {
    let get = async {
        let resp = http()
            .get(format!("{base}{path}"))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .expect("GET");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    };
    tokio::time::timeout(WAIT, get)
        .await
        .unwrap_or_else(|_| panic!("timed out: GET {path}"))
}

/// The connections `/api/connections` lists, polled until `want` holds (bounded).
async fn await_connections(base: &str, what: &str, want: impl Fn(usize) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = api_get(base, "/api/connections").await;
        assert_eq!(status, 200);
        let n = body.as_array().map_or(0, Vec::len);
        if want(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {n} listed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling, bounded above
    }
}

fn open_channel(s: &mut TcpStream, ch: u16) {
    s.write_all(&frame(1, ch, &method(20, 10, &short(""))))
        .unwrap();
    let (got, ok) = read_method(s).expect("channel.open-ok");
    assert_eq!((got, ids(&ok)), (ch, (20, 11)));
}

fn queue_declare(name: &str) -> Vec<u8> {
    let mut args = vec![0, 0];
    args.extend(short(name));
    args.push(0); // not passive, durable, exclusive, auto-delete; wait
    args.extend_from_slice(&0u32.to_be_bytes());
    method(50, 10, &args)
}

/// A panic while handling a frame (injected with a failpoint) ends that connection with
/// 541 INTERNAL_ERROR, unlists it, and leaves the broker serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_handler_closes_only_its_connection_with_541() {
    let broker = Broker::start();
    let addr = broker.addr;
    // Only queues named `failpoint-...` trigger it: other tests are untouched.
    fail::cfg("amqp-queue-declare", "panic").unwrap();
    let (text, bystander_ok, _bystander) = tokio::task::spawn_blocking(move || {
        let mut bystander = handshake_with_heartbeat(addr, 0);
        open_channel(&mut bystander, 1);
        let mut s = handshake_with_heartbeat(addr, 0);
        open_channel(&mut s, 1);
        s.write_all(&frame(1, 1, &queue_declare("failpoint-boom")))
            .unwrap();
        let text = expect_connection_close(&mut s, 541);
        // The other connection was not touched.
        bystander
            .write_all(&frame(1, 1, &queue_declare(&unique("after-panic"))))
            .unwrap();
        let (_, ok) = read_method(&mut bystander).expect("declare-ok");
        (text, ids(&ok) == (50, 11), bystander)
    })
    .await
    .unwrap();
    fail::remove("amqp-queue-declare");
    assert!(
        text.starts_with("INTERNAL_ERROR - ") && text.contains("failpoint"),
        "{text}"
    );
    assert!(bystander_ok, "the other connection still works");
    // The panicked connection is gone from the registry; only the bystander remains.
    await_connections(&broker.api_url(), "the panicked connection to go", |n| {
        n == 1
    })
    .await;
}

/// A peer that sends requests but never reads the replies is not read either once its
/// unsent replies pass the high-water mark; nothing is lost once it reads again.
#[test]
fn a_peer_that_never_reads_is_not_read_past_the_backlog_bound() {
    let broker = Broker::start();
    let mut s = handshake_with_heartbeat(broker.addr, 0);
    open_channel(&mut s, 1);
    // basic.qos(prefetch_count=1): 19 bytes in, a 12-byte qos-ok out.
    let qos = frame(1, 1, &method(60, 10, &[0, 0, 0, 0, 0, 1, 0]));
    let chunk: Vec<u8> = qos
        .iter()
        .copied()
        .cycle()
        .take(qos.len() * 50_000)
        .collect();
    // Unbounded reading would take all of it (and queue ~80 MiB of replies); the broker
    // stops at 16 MiB of unsent replies (~25 MiB of requests) plus socket buffers.
    let flood = 128 << 20;
    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut written = 0usize;
    while written < flood {
        // Resume where the last (possibly partial) write stopped: the stream stays whole frames.
        match s.write(&chunk[written % chunk.len()..]) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("write failed: {e}"),
        }
    }
    assert!(
        written < 64 << 20,
        "the broker kept reading a peer that never reads: {} MiB accepted",
        written >> 20
    );
    // Every request was whole or cut at a frame boundary of ours: finish the last frame,
    // then read every reply; the broker resumes reading as its backlog drains.
    // (From another thread: the socket is full until we read.)
    let partial = written % qos.len();
    s.set_write_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut w = s.try_clone().unwrap();
    let rest = if partial == 0 {
        Vec::new()
    } else {
        qos[partial..].to_vec()
    };
    let finisher = std::thread::spawn(move || w.write_all(&rest));
    let requests = written.div_ceil(qos.len());
    let mut replies = 0usize;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, s.try_clone().unwrap());
    let mut frame_buf = [0u8; 12];
    let deadline = Instant::now() + Duration::from_secs(120);
    while replies < requests {
        assert!(Instant::now() < deadline, "replies stopped at {replies}");
        reader.read_exact(&mut frame_buf).expect("a qos-ok");
        if frame_buf[7..11] != [0, 60, 0, 11] {
            let mut rest = vec![0u8; 256];
            let n = reader.read(&mut rest).unwrap_or(0);
            panic!(
                "after {replies} replies, not a basic.qos-ok: {}",
                String::from_utf8_lossy(&[&frame_buf[..], &rest[..n]].concat())
            );
        }
        replies += 1;
    }
    assert_eq!(replies, requests, "one reply per request, none lost");
    finisher.join().unwrap().expect("the last request written");
}

/// Concurrent connects cannot pass a vhost's max-connections together: the count is
/// taken atomically with the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_cannot_pass_the_vhost_connection_limit() {
    let broker = Broker::start();
    let vhost = unique("limited");
    let base = broker.api_url();
    let put = |path: String, body: serde_json::Value| {
        let base = base.clone();
        async move {
            let r = http()
                .put(format!("{base}{path}"))
                .basic_auth("guest", Some("guest"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "PUT {path}: {}", r.status());
        }
    };
    put(format!("/api/vhosts/{vhost}"), serde_json::json!({})).await;
    put(
        format!("/api/permissions/{vhost}/guest"),
        serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .await;
    put(
        format!("/api/vhost-limits/{vhost}/max-connections"),
        serde_json::json!({"value": 3}),
    )
    .await;
    let addr = broker.addr;
    let v = vhost.clone();
    let (opened, refused) = tokio::task::spawn_blocking(move || {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(24));
        let handles: Vec<_> = (0..24)
            .map(|_| {
                let barrier = barrier.clone();
                let v = v.clone();
                std::thread::spawn(move || {
                    let mut s = pre_open(addr, 131_072, 0);
                    barrier.wait();
                    let mut args = short(&v);
                    args.extend(short(""));
                    args.push(0);
                    s.write_all(&frame(1, 0, &method(10, 40, &args))).unwrap();
                    let (_, reply) = read_method(&mut s).expect("open-ok or close");
                    // Keep the opened ones open until everyone has an answer.
                    barrier.wait();
                    ids(&reply) == (10, 41)
                })
            })
            .collect();
        let results: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let opened = results.iter().filter(|ok| **ok).count();
        (opened, results.len() - opened)
    })
    .await
    .unwrap();
    assert_eq!((opened, refused), (3, 21), "exactly the limit opened");
}

/// `rmq purge` of a 220-character queue name: the broker's 404 text passes 255 bytes and
/// is cut, the command fails at once with the broker's reason (not a hang), and rmq
/// serve lists no ghost connection afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_text_past_255_bytes_is_cut_and_the_connection_closes() {
    for (url, broker) in targets() {
        let name = "q".repeat(220);
        let out = tokio::task::spawn_blocking(move || {
            let mut cmd = rmq();
            cmd.args(["purge", &name, "--url", &url]);
            run_bounded(cmd, None, WAIT)
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "purge of a missing queue fails");
        assert!(
            stderr.contains("NOT_FOUND") && stderr.contains("qqqqqqqqqq"),
            "the broker's reason, cut: {stderr}"
        );
        if let Some(b) = broker {
            await_connections(&b.api_url(), "no connection left", |n| n == 0).await;
        }
    }
}

/// Management paths with a trailing slash answer like the path without it (RabbitMQ does;
/// amqp091-go's recovery tests use them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_paths_with_a_trailing_slash_answer_200() {
    let broker = Broker::start();
    let mut bases = vec![broker.api_url()];
    if std::env::var("RMQ_TEST_RABBITMQ_URL").is_ok_and(|u| !u.is_empty()) {
        bases.push("http://127.0.0.1:15672".to_string());
    }
    for base in bases {
        for path in [
            "/api/connections/",
            "/api/queues/",
            "/api/overview/",
            "/api/queues/%2F/",
            "/api/exchanges/?page=1&page_size=5",
        ] {
            let (status, body) = api_get(&base, path).await;
            assert_eq!(status, 200, "{base}{path}: {body}");
            assert!(!body.is_null(), "{base}{path} answers JSON");
        }
    }
}

/// The other side of the read limit: a consumer's own deliveries, piled up unread, must
/// not stop the broker reading what the consumer writes (its acks, in real clients).
/// Stopping reads at the delivery mark deadlocked `rmq perf`: its consumer blocked
/// writing acks the broker no longer read, so it never read its deliveries again.
#[test]
fn unread_deliveries_do_not_stop_the_broker_reading_requests() {
    let broker = Broker::start();
    let q = unique("piled");
    let mut s = handshake_with_heartbeat(broker.addr, 0);
    open_channel(&mut s, 1);
    s.write_all(&frame(1, 1, &queue_declare(&q))).unwrap();
    let (_, ok) = read_method(&mut s).expect("declare-ok");
    assert_eq!(ids(&ok), (50, 11));
    // 100,000 small messages, then a consumer without prefetch: the broker pushes them
    // until its delivery mark (4 MiB) and the client reads none of it.
    let mut publish = Vec::new();
    let mut args = vec![0, 0];
    args.extend(short(""));
    args.extend(short(&q));
    args.push(0);
    publish.extend(frame(1, 1, &method(60, 40, &args)));
    publish.extend(frame(2, 1, &[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0]));
    publish.extend(frame(3, 1, b"body"));
    for _ in 0..100_000 {
        s.write_all(&publish).unwrap();
    }
    let mut consume = vec![0, 0];
    consume.extend(short(&q));
    consume.extend(short("piled-consumer"));
    consume.push(0);
    consume.extend_from_slice(&0u32.to_be_bytes());
    s.write_all(&frame(1, 1, &method(60, 20, &consume)))
        .unwrap();
    // Now 16 MiB of requests (basic.qos: 19 bytes in, a 12-byte reply out), written
    // without reading: more than the socket buffers hold, so the broker must read them.
    let qos = frame(1, 1, &method(60, 10, &[0, 0, 0, 0, 0, 0, 0]));
    let requests: Vec<u8> = qos
        .iter()
        .copied()
        .cycle()
        .take(qos.len() * 880_000)
        .collect();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let written = s.write_all(&requests);
    assert!(
        written.is_ok(),
        "the broker stopped reading a consumer whose deliveries piled up: {written:?}"
    );
}
