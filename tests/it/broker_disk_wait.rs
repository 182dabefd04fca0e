//! Handlers that wait for the disk (`session_disk`): while a durable declare's disk work
//! is held (an injected slow disk), every other connection is served, the store included;
//! the connection that sent it handles what it pipelined behind it only once the declare
//! is answered, in order; and a failure of that work closes only that connection, 541.

use crate::support::amqp::{bounded, connect, declare_durable, persistent, temp_dir};
use crate::support::wire::{
    expect_connection_close, frame, handshake_with_heartbeat, ids, method, read_method, short,
};
use crate::support::{Broker, unique};
use lapin::Confirmation;
use lapin::options::*;
use std::io::{ErrorKind, Read, Write};

/// queue.declare of `name` (durable or not), as frame bytes on channel `ch`.
fn queue_declare(ch: u16, name: &str, durable: bool) -> Vec<u8> {
    let mut args = 0u16.to_be_bytes().to_vec();
    args.extend(short(name));
    args.push(if durable { 0b10 } else { 0 });
    args.extend_from_slice(&0u32.to_be_bytes());
    frame(1, ch, &method(50, 10, &args))
}

/// The failpoint is process-wide: its two uses here take turns.
static FAILPOINT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Turns the failpoint off when dropped.
struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        fail::remove("store-new-queue-log");
    }
}

fn channel_open(ch: u16) -> Vec<u8> {
    frame(1, ch, &method(20, 10, &short("")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declare_waiting_for_the_disk_holds_up_nobody_else_and_keeps_its_order() {
    let _turn = FAILPOINT.lock().await;
    let dir = temp_dir("failpoint-disk-wait");
    let data = dir.clone();
    let broker = Broker::start_with(move |c| c.data_dir = Some(data));
    // A durable queue declared before the disk turns slow, for the store's own traffic.
    let (_conn, ch) = connect(&broker.url()).await;
    let existing = unique("dw-existing");
    declare_durable(&ch, &existing).await;
    bounded(
        "confirm_select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .unwrap();

    fail::cfg("store-new-queue-log", "pause").unwrap();
    // Released even when an assertion below fails: the broker's shutdown waits for it.
    let released = Release;
    let addr = broker.addr;
    let slow = unique("dw-slow");
    let after = unique("dw-after");
    let mut a = handshake_with_heartbeat(addr, 0);
    a.write_all(&channel_open(1)).unwrap();
    let (_, ok) = read_method(&mut a).expect("channel.open-ok");
    assert_eq!(ids(&ok), (20, 11));
    // One write: the durable declare, then a channel and a declare on it behind it.
    let mut batch = queue_declare(1, &slow, true);
    batch.extend(channel_open(2));
    batch.extend(queue_declare(2, &after, false));
    a.write_all(&batch).unwrap();

    // Meanwhile another connection is served: persistent publishes confirmed (the
    // store works), a transient queue declared and used.
    for i in 0..50 {
        let confirm = bounded(
            "publish",
            ch.basic_publish(
                "".into(),
                existing.as_str().into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                persistent(),
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            bounded("confirm", confirm).await.unwrap(),
            Confirmation::Ack(None)
        );
    }
    let t = bounded(
        "declare",
        ch.queue_declare(
            "".into(),
            QueueDeclareOptions::default(),
            Default::default(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(t.message_count(), 0);
    // Nothing answered on A yet: everything it sent waits behind the held declare.
    a.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let early = a.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "A was answered while its declare waited for the disk: {early:?}"
    );
    a.set_nonblocking(false).unwrap();

    drop(released);
    let answers: Vec<(u16, (u16, u16))> = (0..3)
        .map(|_| {
            let (ch, m) = read_method(&mut a).expect("an answer once the disk is back");
            (ch, ids(&m))
        })
        .collect();
    assert_eq!(answers, vec![(1, (50, 11)), (2, (20, 11)), (2, (50, 11))]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declare_whose_disk_work_fails_closes_only_its_connection() {
    let _turn = FAILPOINT.lock().await;
    let dir = temp_dir("failpoint-disk-fail");
    let data = dir.clone();
    let broker = Broker::start_with(move |c| c.data_dir = Some(data));
    let (_conn, ch) = connect(&broker.url()).await;
    fail::cfg("store-new-queue-log", "return").unwrap();
    let released = Release;
    let mut a = handshake_with_heartbeat(broker.addr, 0);
    a.write_all(&channel_open(1)).unwrap();
    read_method(&mut a).expect("channel.open-ok");
    a.write_all(&queue_declare(1, &unique("dw-fails"), true))
        .unwrap();
    let text = expect_connection_close(&mut a, 541);
    drop(released);
    assert!(text.contains("cannot create the log of queue"), "{text}");
    // The other connection is untouched.
    let t = bounded(
        "declare",
        ch.queue_declare(
            "".into(),
            QueueDeclareOptions::default(),
            Default::default(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(t.message_count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A wait longer than the heartbeat timeout is not a dead peer: what the peer sent
/// meanwhile was not read because of the wait, not because it went silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_disk_wait_is_not_a_missed_heartbeat() {
    let _turn = FAILPOINT.lock().await;
    let dir = temp_dir("failpoint-disk-heartbeat");
    let data = dir.clone();
    let broker = Broker::start_with(move |c| c.data_dir = Some(data));
    fail::cfg("store-new-queue-log", "pause").unwrap();
    let released = Release;
    // Heartbeat 1 s: the broker gives up on a peer unread for 2.5 s.
    let mut a = handshake_with_heartbeat(broker.addr, 1);
    a.write_all(&channel_open(1)).unwrap();
    read_method(&mut a).expect("channel.open-ok");
    a.write_all(&queue_declare(1, &unique("dw-heartbeat"), true))
        .unwrap();
    // The scenario itself: the disk stays slow for longer than that timeout, while the
    // peer keeps sending heartbeats (which wait, unread, behind the declare).
    for _ in 0..4 {
        std::thread::sleep(std::time::Duration::from_secs(1));
        a.write_all(&frame(8, 0, &[])).unwrap();
    }
    drop(released);
    let (ch, ok) = read_method(&mut a).expect("declare-ok, not a close");
    assert_eq!((ch, ids(&ok)), (1, (50, 11)));
    // And the connection lives on: the broker did not count the wait against the peer.
    a.write_all(&channel_open(2)).unwrap();
    let (ch, ok) = read_method(&mut a).expect("channel.open-ok, not a close");
    assert_eq!((ch, ids(&ok)), (2, (20, 11)));
    let _ = std::fs::remove_dir_all(&dir);
}
