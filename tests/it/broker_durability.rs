//! Durability under `--data-dir`: restarts keep durable queues, bindings and persistent
//! messages (in order, unacked ones redelivered) and drop the transient ones; a broker
//! killed with SIGKILL while confirming loses no confirmed message; torn and corrupt
//! segment files are reported, never fatal.

use crate::serve_proc::{Serve, random_below};
use crate::support::amqp::{bounded, connect, declare_durable, drain, persistent, temp_dir};
use crate::support::{Broker, WAIT, rmq, unique};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, ExchangeKind};
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_durable_state_and_drops_transient() {
    let dir = temp_dir("rmq-restart");
    let (q, tq, x) = (unique("durable"), unique("transient"), unique("dx"));
    let (tx, qa) = (unique("tx"), unique("with-args"));
    {
        let broker = Broker::start_with(|c| c.data_dir = Some(dir.clone()));
        let (_conn, ch) = connect(&broker.url()).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        declare_durable(&ch, &q).await;
        ch.queue_declare(
            tq.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        // A transient exchange (its binding goes with it) and a durable queue with arguments.
        ch.exchange_declare(
            tx.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            q.as_str().into(),
            tx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut max2 = FieldTable::default();
        max2.insert("x-max-length".into(), lapin::types::AMQPValue::LongInt(2));
        ch.queue_declare(
            qa.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            max2,
        )
        .await
        .unwrap();
        for i in 0..5 {
            let c = ch
                .basic_publish(
                    x.as_str().into(),
                    "k".into(),
                    BasicPublishOptions::default(),
                    format!("p{i}").as_bytes(),
                    persistent(),
                )
                .await
                .unwrap();
            assert!(matches!(
                bounded("confirm", c).await.unwrap(),
                Confirmation::Ack(_)
            ));
        }
        let c = ch
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                b"transient",
                BasicProperties::default(),
            )
            .await
            .unwrap();
        bounded("confirm", c).await.unwrap();
        // Two deliveries left unacked at shutdown: they come back redelivered.
        ch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
        let mut consumer = ch
            .basic_consume(
                q.as_str().into(),
                "c".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        for i in 0..2 {
            let d = bounded("delivery", consumer.next()).await.unwrap().unwrap();
            assert_eq!(d.data, format!("p{i}").as_bytes());
        }
        // `broker` stops here, with the consumer still holding p0 and p1.
    }
    let broker = Broker::start_with(|c| c.data_dir = Some(dir.clone()));
    let (_conn, ch) = connect(&broker.url()).await;
    let got = drain(&ch, &q).await;
    let want: Vec<(String, bool)> = (0..5).map(|i| (format!("p{i}"), i < 2)).collect();
    assert_eq!(
        got, want,
        "persistent messages in order, the unacked two redelivered, no transient"
    );
    let err = ch
        .queue_declare(
            tq.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => {
            assert_eq!(e.get_id(), 404, "the transient queue is gone")
        }
        other => panic!("expected 404, got {other:?}"),
    }
    // The durable exchange and its binding came back too.
    let (_conn, ch) = connect(&broker.url()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let c = ch
        .basic_publish(
            x.as_str().into(),
            "k".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"again",
            persistent(),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            bounded("confirm", c).await.unwrap(),
            Confirmation::Ack(None)
        ),
        "routed through the restored binding"
    );
    assert_eq!(drain(&ch, &q).await, vec![("again".to_string(), false)]);
    // The transient exchange is gone; the queue's arguments came back and still apply.
    let err = ch
        .exchange_declare(
            tx.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("NOT_FOUND"), "{err}");
    let (_conn, ch) = connect(&broker.url()).await;
    for i in 0..3 {
        ch.basic_publish(
            "".into(),
            qa.as_str().into(),
            BasicPublishOptions::default(),
            format!("a{i}").as_bytes(),
            persistent(),
        )
        .await
        .unwrap();
    }
    let kept: Vec<String> = drain(&ch, &qa).await.into_iter().map(|(b, _)| b).collect();
    assert_eq!(
        kept,
        vec!["a1", "a2"],
        "x-max-length 2 survived the restart"
    );
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_confirming_loses_no_confirmed_message() {
    let dir = temp_dir("rmq-crash");
    let q = unique("crash");
    let mut next_seq = 0u64;
    for round in 0..20 {
        let serve = Serve::start(&dir);
        let (conn, ch) = connect(&serve.url()).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        declare_durable(&ch, &q).await;
        let kill_after = 1 + random_below(1500);
        let mut ended = String::from("-");
        let mut confirmed = BTreeSet::new();
        let mut window = VecDeque::new();
        let mut serve = Some(serve);
        // Publish with 256 confirms outstanding; SIGKILL once `kill_after` are confirmed,
        // while more are in flight.
        loop {
            if window.len() < 256 {
                let seq = next_seq;
                next_seq += 1;
                match ch
                    .basic_publish(
                        "".into(),
                        q.as_str().into(),
                        BasicPublishOptions::default(),
                        seq.to_string().as_bytes(),
                        persistent(),
                    )
                    .await
                {
                    Ok(c) => window.push_back((seq, c)),
                    Err(e) => {
                        ended = format!("publish failed: {e}");
                        break;
                    }
                }
                continue;
            }
            let Some((seq, c)) = window.pop_front() else {
                break;
            };
            match bounded("confirm", c).await {
                Ok(Confirmation::Ack(_)) => {
                    confirmed.insert(seq);
                }
                other => {
                    ended = format!("confirm: {other:?}");
                    break;
                }
            }
            if confirmed.len() as u64 == kill_after
                && let Some(s) = serve.take()
            {
                s.kill9();
            }
        }
        drop(conn);
        // If publishing ended before the kill, the broker must still go before the restart.
        let early = serve.take().map(|s| {
            let log = s.log();
            s.kill9();
            log
        });
        let serve = Serve::start(&dir);
        let (_c2, ch2) = connect(&serve.url()).await;
        let got = drain(&ch2, &q).await;
        let seqs: BTreeSet<u64> = got.iter().map(|(b, _)| b.parse().unwrap()).collect();
        let lost: Vec<_> = confirmed.difference(&seqs).collect();
        assert!(
            lost.is_empty(),
            "round {round}: confirmed but lost: {lost:?} (log: {})",
            serve.log()
        );
        assert_eq!(
            seqs.len(),
            got.len(),
            "round {round}: a message came back twice"
        );
        assert!(
            seqs.iter().all(|s| *s < next_seq),
            "round {round}: unknown message"
        );
        assert!(
            confirmed.len() as u64 >= kill_after,
            "round {round}: publishing ended after {} of {kill_after} confirms, before the kill ({ended}); broker log: {early:?}",
            confirmed.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Publish `n` confirmed persistent messages `m0..` to a fresh durable queue, then stop.
async fn seed(dir: &Path, q: &str, n: usize) {
    let serve = Serve::start(dir);
    let (_conn, ch) = connect(&serve.url()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare_durable(&ch, q).await;
    for i in 0..n {
        let c = ch
            .basic_publish(
                "".into(),
                q.into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                persistent(),
            )
            .await
            .unwrap();
        assert!(matches!(
            bounded("confirm", c).await.unwrap(),
            Confirmation::Ack(_)
        ));
    }
    serve.kill9();
}

fn only_segment(dir: &Path) -> PathBuf {
    let queues = dir.join("queues");
    let qdir = std::fs::read_dir(&queues)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut segs: Vec<PathBuf> = std::fs::read_dir(qdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    segs.into_iter()
        .rfind(|p| std::fs::metadata(p).unwrap().len() > 0)
        .expect("a segment with data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_final_record_is_truncated_and_reported() {
    let dir = temp_dir("rmq-torn");
    let q = unique("torn");
    seed(&dir, &q, 10).await;
    let seg = only_segment(&dir);
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let serve = Serve::start(&dir);
    let (_conn, ch) = connect(&serve.url()).await;
    let got: Vec<String> = drain(&ch, &q).await.into_iter().map(|(b, _)| b).collect();
    let want: Vec<String> = (0..9).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want, "everything before the torn record");
    assert!(
        serve.log().contains("truncated a torn final record"),
        "{}",
        serve.log()
    );
    drop(serve);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_byte_skips_one_record_and_is_reported() {
    let dir = temp_dir("rmq-corrupt");
    let q = unique("corrupt");
    seed(&dir, &q, 10).await;
    let seg = only_segment(&dir);
    let mut data = std::fs::read(&seg).unwrap();
    // The body with its length prefix: a bare "m5" could also be a checksum's bytes.
    let at = data
        .windows(6)
        .position(|w| w == b"\x00\x00\x00\x02m5")
        .expect("m5 in the segment");
    data[at + 5] ^= 0x40;
    std::fs::write(&seg, &data).unwrap();
    let serve = Serve::start(&dir);
    let (_conn, ch) = connect(&serve.url()).await;
    let got: Vec<String> = drain(&ch, &q).await.into_iter().map(|(b, _)| b).collect();
    let want: Vec<String> = (0..10)
        .filter(|i| *i != 5)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(got, want, "only the corrupt record is skipped");
    assert!(
        serve.log().contains("skipped a corrupt record"),
        "{}",
        serve.log()
    );
    drop(serve);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unusable_data_dir_is_refused_with_one_line() {
    let dir = temp_dir("rmq-unusable");
    let file = dir.join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let out = crate::support::run_bounded(
        {
            let mut c = rmq();
            c.args(["serve", "--port", "0", "--mgmt-port", "0", "--data-dir"])
                .arg(&file);
            c
        },
        None,
        WAIT,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("rmq: cannot start the broker: cannot create data directory")
            && last.contains("Not a directory"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_broker_on_the_same_data_dir_is_refused() {
    let dir = temp_dir("rmq-lock");
    let first = Serve::start(&dir);
    let out = crate::support::run_bounded(
        {
            let mut c = rmq();
            c.args(["serve", "--port", "0", "--mgmt-port", "0", "--data-dir"])
                .arg(&dir);
            c
        },
        None,
        WAIT,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another rmq serve"), "{err}");
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
}
