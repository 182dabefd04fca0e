//! A durable queue's log at depth, over real AMQP: messages beyond the resident budget
//! are paged out and read back in order, one message left unacked does not keep the
//! log's history on disk (compaction), across a restart and across SIGKILLs.

use crate::serve_proc::{Serve, random_below};
use crate::support::amqp::{bounded, connect, declare_durable, drain, persistent, temp_dir};
use crate::support::{Broker, WAIT, metric, segment_files, unique};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

/// Publish `body` to queue `q` through the default exchange.
async fn publish_to(
    ch: &Channel,
    q: &str,
    body: &[u8],
    props: BasicProperties,
) -> lapin::Result<PublisherConfirm> {
    bounded(
        "basic.publish",
        ch.basic_publish(
            "".into(),
            q.into(),
            BasicPublishOptions::default(),
            body,
            props,
        ),
    )
    .await
}

/// A consumer on `q` tagged `tag`, with a per-consumer prefetch when not 0.
async fn consume(ch: &Channel, q: &str, tag: &str, prefetch: u16) -> lapin::Consumer {
    if prefetch > 0 {
        bounded(
            "basic.qos",
            ch.basic_qos(prefetch, BasicQosOptions::default()),
        )
        .await
        .unwrap();
    }
    bounded(
        "basic.consume",
        ch.basic_consume(
            q.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_durable_queues_page_messages_out_and_back_in_order() {
    let dir = temp_dir("rmq-paging");
    let q = unique("deep");
    // A 1 KiB resident budget: almost every message below lives on disk only.
    let start = || {
        let dir = dir.clone();
        Broker::start_with(move |c| {
            c.data_dir = Some(dir);
            c.queue_resident_bytes = 1024;
        })
    };
    let body = |i: usize| format!("{i:04}-{}", "x".repeat(200));
    {
        let broker = start();
        let (_conn, ch) = connect(&broker.url()).await;
        bounded(
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .unwrap();
        declare_durable(&ch, &q).await;
        let mut pending = Vec::new();
        for i in 0..300 {
            pending.push(
                publish_to(&ch, &q, body(i).as_bytes(), persistent())
                    .await
                    .unwrap(),
            );
        }
        for c in pending {
            assert!(matches!(
                bounded("confirm", c).await.unwrap(),
                Confirmation::Ack(_)
            ));
        }
        // Half of them through a consumer (paged-out heads are read back on delivery).
        let mut consumer = consume(&ch, &q, "c", 10).await;
        for i in 0..150 {
            let d = bounded("delivery", consumer.next()).await.unwrap().unwrap();
            assert_eq!(d.data, body(i).as_bytes());
            bounded("basic.ack", d.acker.ack(BasicAckOptions::default()))
                .await
                .unwrap();
        }
        bounded(
            "basic.cancel",
            ch.basic_cancel("c".into(), BasicCancelOptions::default()),
        )
        .await
        .unwrap();
    }
    // After a restart the rest comes back from disk, in order.
    let broker = start();
    let (_conn, ch) = connect(&broker.url()).await;
    let got: Vec<String> = drain(&ch, &q).await.into_iter().map(|(b, _)| b).collect();
    let want: Vec<String> = (150..300).map(body).collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "paged-out messages come back in publish order");
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unacked_message_does_not_keep_the_log_history_on_disk() {
    let dir = temp_dir("rmq-compact");
    let q = unique("pinned");
    let start = || {
        let dir = dir.clone();
        Broker::start_with(move |c| {
            c.data_dir = Some(dir);
            c.log_segment_bytes = 64 * 1024;
        })
    };
    let body = |i: usize| format!("{i:05}-{}", "x".repeat(1000));
    let total = 3001;
    {
        let broker = start();
        let (_conn, ch) = connect(&broker.url()).await;
        declare_durable(&ch, &q).await;
        // The holder takes the first message and never acks it (prefetch 1 keeps it at one).
        let (_hconn, holder) = connect(&broker.url()).await;
        let mut held = consume(&holder, &q, "holder", 1).await;
        bounded(
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .unwrap();
        let publish = async |i: usize| publish_to(&ch, &q, body(i).as_bytes(), persistent()).await;
        bounded("confirm", publish(0).await.unwrap()).await.unwrap();
        let first = bounded("held delivery", held.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.data, body(0).as_bytes());
        // Everything else goes through a consumer that acks: ~3 MB through 64 KiB segments.
        let (_wconn, worker) = connect(&broker.url()).await;
        let mut work = consume(&worker, &q, "worker", 100).await;
        // In batches (the queue stays shallow): what is on disk must follow its depth.
        let mut most = 0;
        for batch in 0..(total - 1) / 100 {
            let range = 1 + batch * 100..1 + (batch + 1) * 100;
            let mut pending = Vec::new();
            for i in range.clone() {
                pending.push(publish(i).await.unwrap());
            }
            for c in pending {
                assert!(matches!(
                    bounded("confirm", c).await.unwrap(),
                    Confirmation::Ack(_)
                ));
            }
            for i in range {
                let d = bounded("delivery", work.next()).await.unwrap().unwrap();
                assert_eq!(d.data, body(i).as_bytes());
                bounded("basic.ack", d.acker.ack(BasicAckOptions::default()))
                    .await
                    .unwrap();
            }
            // A round trip on the acking channel: the broker has handled its acks.
            bounded(
                "passive declare",
                worker.queue_declare(
                    q.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
            most = most.max(segment_files(&dir));
        }
        let now = segment_files(&dir);
        // Without compaction the log would hold all ~47 segments written.
        assert!(
            most <= 8 && now <= 5,
            "{most} segment files at most, {now} now"
        );
        drop(first);
    }
    // Unacked at shutdown: it comes back, redelivered, and nothing acked comes back.
    let broker = start();
    let (_conn, ch) = connect(&broker.url()).await;
    let left = drain(&ch, &q).await;
    assert_eq!(left, vec![(body(0), true)]);
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGKILL at random moments while a consumer acks most messages and holds every 50th:
/// small segments make the log compact all the time (copies, carried marks, deletes), and
/// after each restart every confirmed message not acked is there, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_compacting_loses_no_confirmed_message() {
    let dir = temp_dir("rmq-compact-crash");
    let q = unique("compact-crash");
    let pad = "p".repeat(200);
    let mut next_seq = 0u64;
    let mut most_files = 0;
    for round in 0..12 {
        let serve = Serve::start_with(&dir, &["--log-segment-size", "16KiB"]);
        let (conn, ch) = connect(&serve.url()).await;
        bounded(
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .unwrap();
        declare_durable(&ch, &q).await;
        // The consumer: acks (recorded before the ack is sent) all but every 50th.
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let delivered_held = Arc::new(Mutex::new(BTreeSet::new()));
        let (cconn, cch) = connect(&serve.url()).await;
        let mut deliveries = consume(&cch, &q, "c", 0).await;
        // Deliveries seen, so that the publisher keeps the queue shallow: what is on disk
        // is then mostly history, which compaction must not keep.
        let (seen_tx, mut seen) = tokio::sync::watch::channel(0u64);
        let consumer = {
            let acked = acked.clone();
            let delivered_held = delivered_held.clone();
            tokio::spawn(async move {
                let mut held = Vec::new();
                // Ends when the broker is killed, or (bounded) when nothing comes.
                while let Ok(Some(Ok(d))) = tokio::time::timeout(WAIT, deliveries.next()).await {
                    let body = String::from_utf8_lossy(&d.data).to_string();
                    let seq: u64 = body.split('-').next().unwrap().parse().unwrap();
                    if seq.is_multiple_of(50) {
                        delivered_held.lock().unwrap().insert(seq);
                        held.push(d);
                    } else {
                        acked.lock().unwrap().insert(seq);
                        if bounded("basic.ack", d.acker.ack(BasicAckOptions::default()))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    seen_tx.send_modify(|n| *n += 1);
                }
            })
        };
        let kill_after = 300 + random_below(1500);
        let mut confirmed = BTreeSet::new();
        let mut window = VecDeque::new();
        let mut serve = Some(serve);
        let first_seq = next_seq;
        while serve.is_some() {
            if next_seq - first_seq > *seen.borrow() + 20 {
                if bounded("consumer progress", seen.changed()).await.is_err() {
                    break;
                }
                continue;
            }
            if window.len() < 16 {
                let seq = next_seq;
                next_seq += 1;
                match publish_to(&ch, &q, format!("{seq}-{pad}").as_bytes(), persistent()).await {
                    Ok(c) => window.push_back((seq, c)),
                    Err(_) => break,
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
                _ => break,
            }
            if confirmed.len() as u64 == kill_after
                && let Some(s) = serve.take()
            {
                most_files = most_files.max(segment_files(&dir));
                s.kill9();
            }
        }
        if let Some(s) = serve.take() {
            panic!("publishing ended before the kill; broker log: {}", s.log());
        }
        drop(conn);
        drop(cconn);
        // lapin may not end the stream of a killed broker's consumer: stop it here.
        consumer.abort();
        let serve = Serve::start(&dir);
        let (_c2, ch2) = connect(&serve.url()).await;
        let got = drain(&ch2, &q).await;
        let seqs: BTreeSet<u64> = got
            .iter()
            .map(|(b, _)| b.split('-').next().unwrap().parse().unwrap())
            .collect();
        let acked = acked.lock().unwrap().clone();
        // A held message was delivered: its delivered mark (written before the delivery,
        // and carried by every compaction since) makes it come back redelivered.
        let delivered_held = delivered_held.lock().unwrap().clone();
        for (body, redelivered) in &got {
            let seq: u64 = body.split('-').next().unwrap().parse().unwrap();
            if delivered_held.contains(&seq) {
                assert!(
                    redelivered,
                    "round {round}: held message {seq} not redelivered"
                );
            }
        }
        let lost: Vec<_> = confirmed
            .iter()
            .filter(|s| !acked.contains(s) && !seqs.contains(s))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: confirmed, never acked, lost: {lost:?} (log: {})",
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
            !serve.log().contains("corrupt"),
            "round {round}: {}",
            serve.log()
        );
    }
    // 300–1,800 messages of ~230 bytes per round, in 16 KiB segments, with every 50th held:
    // without compaction the front segment pins them all.
    assert!(most_files <= 10, "{most_files} segment files at a kill");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `rmq_disk_fdatasyncs_total` from the broker's /metrics.
async fn fdatasyncs(broker: &Broker) -> u64 {
    metric(&broker.metrics().await, "rmq_disk_fdatasyncs_total") as u64
}

/// Confirms of persistent messages wait for an fdatasync that many publishes share (group
/// commit); transient messages, even in a durable queue, are confirmed without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_confirms_share_fdatasyncs_and_transient_ones_need_none() {
    let dir = temp_dir("rmq-group-commit");
    let broker = {
        let dir = dir.clone();
        Broker::start_with(move |c| c.data_dir = Some(dir))
    };
    let q = unique("group");
    let (_conn, ch) = connect(&broker.url()).await;
    declare_durable(&ch, &q).await;
    bounded(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .unwrap();
    let publish_all = async |n: usize, props: BasicProperties| {
        let mut pending = Vec::new();
        for i in 0..n {
            pending.push(
                publish_to(&ch, &q, format!("m{i}").as_bytes(), props.clone())
                    .await
                    .unwrap(),
            );
        }
        for c in pending {
            assert!(bounded("confirm", c).await.unwrap().is_ack());
        }
    };
    let before = fdatasyncs(&broker).await;
    publish_all(2000, BasicProperties::default()).await;
    assert_eq!(
        fdatasyncs(&broker).await,
        before,
        "transient messages are not synced"
    );
    publish_all(2000, persistent()).await;
    let synced = fdatasyncs(&broker).await - before;
    assert!(
        (1..=1000).contains(&synced),
        "2000 persistent confirms took {synced} fdatasyncs"
    );
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Messages published after a restart must not take the seqs of acked messages whose
/// settle records are still in the log: the next restart would drop them as settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_after_a_restart_survives_the_next_one() {
    let dir = temp_dir("rmq-seq-reuse");
    let q = unique("reuse");
    let start = || {
        let dir = dir.clone();
        Broker::start_with(move |c| c.data_dir = Some(dir))
    };
    let publish = async |ch: &lapin::Channel, body: &str| {
        bounded(
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .unwrap();
        let c = publish_to(ch, &q, body.as_bytes(), persistent())
            .await
            .unwrap();
        assert!(bounded("confirm", c).await.unwrap().is_ack());
    };
    {
        // Ten messages: the first stays unacked, the other nine are acked.
        let broker = start();
        let (_conn, ch) = connect(&broker.url()).await;
        declare_durable(&ch, &q).await;
        for i in 0..10 {
            publish(&ch, &format!("old{i}")).await;
        }
        let (_c2, getter) = connect(&broker.url()).await;
        let _held = bounded(
            "basic.get",
            getter.basic_get(q.as_str().into(), BasicGetOptions { no_ack: false }),
        )
        .await
        .unwrap()
        .expect("the first message");
        for _ in 1..10 {
            let m = bounded(
                "basic.get",
                getter.basic_get(q.as_str().into(), BasicGetOptions { no_ack: false }),
            )
            .await
            .unwrap()
            .expect("a message");
            bounded(
                "basic.ack",
                m.delivery.acker.ack(BasicAckOptions::default()),
            )
            .await
            .unwrap();
        }
        // The acks are handled before this round trip on the same channel returns.
        bounded("basic.qos", getter.basic_qos(1, BasicQosOptions::default()))
            .await
            .unwrap();
    }
    {
        let broker = start();
        let (_conn, ch) = connect(&broker.url()).await;
        publish(&ch, "new").await;
    }
    let broker = start();
    let (_conn, ch) = connect(&broker.url()).await;
    let left = drain(&ch, &q).await;
    assert_eq!(
        left,
        vec![("old0".to_string(), true), ("new".to_string(), false)]
    );
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}
