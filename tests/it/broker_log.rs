//! A durable queue's log at depth, over real AMQP: messages beyond the resident budget
//! are paged out and read back in order, and one message left unacked does not keep
//! the log's history on disk (compaction), across a restart.

use crate::broker_durability::{bounded, connect, declare_durable, drain, persistent, temp_dir};
use crate::support::{Broker, unique};
use futures_lite::StreamExt;
use lapin::Confirmation;
use lapin::options::*;
use lapin::types::FieldTable;
use std::path::Path;

/// Segment files of every queue log under a data directory.
fn segment_files(data_dir: &Path) -> usize {
    let mut n = 0;
    for q in std::fs::read_dir(data_dir.join("queues"))
        .unwrap()
        .flatten()
    {
        n += std::fs::read_dir(q.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .count();
    }
    n
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
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        declare_durable(&ch, &q).await;
        let mut pending = Vec::new();
        for i in 0..300 {
            let props = persistent();
            pending.push(
                ch.basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    body(i).as_bytes(),
                    props,
                )
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
        ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
        let mut consumer = ch
            .basic_consume(
                q.as_str().into(),
                "c".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        for i in 0..150 {
            let d = bounded("delivery", consumer.next()).await.unwrap().unwrap();
            assert_eq!(d.data, body(i).as_bytes());
            d.acker.ack(BasicAckOptions::default()).await.unwrap();
        }
        ch.basic_cancel("c".into(), BasicCancelOptions::default())
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
        holder
            .basic_qos(1, BasicQosOptions::default())
            .await
            .unwrap();
        let mut held = holder
            .basic_consume(
                q.as_str().into(),
                "holder".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let publish = async |i: usize| {
            let payload = body(i);
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                payload.as_bytes(),
                persistent(),
            )
            .await
        };
        bounded("confirm", publish(0).await.unwrap()).await.unwrap();
        let first = bounded("held delivery", held.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.data, body(0).as_bytes());
        // Everything else goes through a consumer that acks: ~3 MB through 64 KiB segments.
        let (_wconn, worker) = connect(&broker.url()).await;
        worker
            .basic_qos(100, BasicQosOptions::default())
            .await
            .unwrap();
        let mut work = worker
            .basic_consume(
                q.as_str().into(),
                "worker".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
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
                d.acker.ack(BasicAckOptions::default()).await.unwrap();
            }
            // A round trip on the acking channel: the broker has handled its acks.
            worker
                .queue_declare(
                    q.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
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
