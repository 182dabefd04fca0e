//! Storage faults under `--data-dir`: a failing fsync and a data directory deleted while
//! the broker runs fail the store (nothing more is confirmed, the alarm shows, the process
//! stays up); the directory itself is locked; a full disk (a real tmpfs) restarts and
//! drains, and acknowledgements taken while it is full are not forgotten.

use crate::serve_proc::Serve;
use crate::support::amqp::{bounded, connect, declare_durable, persistent, temp_dir};
use crate::support::{Broker, WAIT, http, rmq, run_bounded, unique};
use lapin::options::*;
use lapin::{Channel, Confirmation};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

async fn node(api: &str) -> Value {
    let get = async {
        http()
            .get(format!("{api}/api/nodes"))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .expect("GET /api/nodes")
            .json::<Value>()
            .await
            .expect("JSON")
    };
    tokio::time::timeout(WAIT, get)
        .await
        .expect("timed out: GET /api/nodes")[0]
        .clone()
}

/// Publish one persistent message and wait for its confirm: Ok(true) acked, Ok(false)
/// nacked, Err(what) when the channel or connection was closed instead.
async fn publish_confirmed(ch: &Channel, q: &str, body: &[u8]) -> Result<bool, String> {
    let confirm = ch
        .basic_publish(
            "".into(),
            q.into(),
            BasicPublishOptions::default(),
            body,
            persistent(),
        )
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(WAIT, confirm).await {
        Err(_) => Err("no confirm within the wait".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(Confirmation::Ack(_))) => Ok(true),
        Ok(Ok(_)) => Ok(false),
    }
}

/// A broker on a fresh data directory named `prefix-...`, a durable queue, and a
/// confirming channel whose first persistent publish was confirmed.
async fn confirming_on_disk(prefix: &str) -> (Broker, PathBuf, String, lapin::Connection, Channel) {
    let dir = temp_dir(prefix);
    let data = dir.clone();
    let broker = Broker::start_with(move |c| c.data_dir = Some(data));
    let q = unique(&format!("{prefix}-q"));
    let (conn, ch) = connect(&broker.url()).await;
    declare_durable(&ch, &q).await;
    bounded(
        "confirm_select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(publish_confirmed(&ch, &q, b"before").await, Ok(true));
    (broker, dir, q, conn, ch)
}

/// A failed fdatasync (injected) is a state of the broker: the publisher waiting on it
/// gets an error at once, nothing after is confirmed, the alarm and the cause show in
/// `/api/nodes` and `/metrics`, and the broker keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_fsync_fails_publishers_fast_and_raises_the_alarm() {
    // Only stores whose path names a failpoint see the injection: other tests run on.
    let (broker, dir, q, _conn, ch) = confirming_on_disk("failpoint-fsync").await;
    fail::cfg("store-fdatasync", "return").unwrap();
    let started = Instant::now();
    let outcome = publish_confirmed(&ch, &q, b"during").await;
    let waited = started.elapsed();
    fail::remove("store-fdatasync");
    let err = outcome.expect_err("no ack for a message whose fsync failed");
    assert!(
        err.contains("INTERNAL_ERROR") || err.contains("541"),
        "{err}"
    );
    assert!(waited < Duration::from_secs(1), "answered in {waited:?}");
    let n = node(&broker.api_url()).await;
    assert_eq!(n["disk_free_alarm"], true, "{n}");
    assert!(
        n["storage_failure"]
            .as_str()
            .is_some_and(|s| s.contains("fdatasync failed")),
        "{n}"
    );
    let metrics = broker.metrics().await;
    assert_eq!(crate::support::metric(&metrics, "rmq_storage_failed"), 1.0);
    // Sticky: with the injection gone, a persistent publish is still not confirmed.
    let (_conn2, ch2) = connect(&broker.url()).await;
    bounded(
        "confirm_select",
        ch2.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .unwrap();
    let again = publish_confirmed(&ch2, &q, b"after").await;
    assert_ne!(again, Ok(true), "confirmed after a failed fsync");
    // Consumers still drain what the durable queue holds (its marks are not waited for).
    let (_conn4, ch4) = connect(&broker.url()).await;
    let got = bounded(
        "get",
        ch4.basic_get(q.as_str().into(), BasicGetOptions::default()),
    )
    .await
    .unwrap()
    .expect("the message confirmed before the failure");
    assert_eq!(&got.delivery.data[..], b"before");
    bounded("ack", got.delivery.acker.ack(BasicAckOptions::default()))
        .await
        .unwrap();
    // The process is up: a transient queue still works end to end.
    let (_conn3, ch3) = connect(&broker.url()).await;
    let t = bounded(
        "declare",
        ch3.queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            Default::default(),
        ),
    )
    .await
    .unwrap();
    assert!(t.name().as_str().starts_with("amq.gen-"));
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The data directory deleted under the running broker: detected before the next
/// confirm, so nothing published after it is confirmed; durable declares are refused
/// with a clear error; the alarm says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_data_directory_confirms_nothing_more() {
    let (broker, dir, q, _conn, ch) = confirming_on_disk("rmq-vanish").await;
    std::fs::remove_dir_all(&dir).unwrap();
    for i in 0..20 {
        let outcome = publish_confirmed(&ch, &q, format!("after-{i}").as_bytes()).await;
        assert_ne!(
            outcome,
            Ok(true),
            "message {i} confirmed without a data directory"
        );
        if outcome.is_err() {
            break; // the connection was closed with 541
        }
    }
    let n = node(&broker.api_url()).await;
    assert_eq!(n["disk_free_alarm"], true, "{n}");
    let why = n["storage_failure"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("deleted") || why.contains("gone"), "{n}");
    // A durable declare is refused, with the reason.
    let (_conn2, ch2) = connect(&broker.url()).await;
    let refused = bounded(
        "declare",
        ch2.queue_declare(
            unique("vanish-new").as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            Default::default(),
        ),
    )
    .await
    .expect_err("a durable declare without a data directory");
    assert!(refused.to_string().contains("INTERNAL_ERROR"), "{refused}");
}

/// One broker per data directory, even when the files in it are deleted: the directory
/// itself is locked.
#[test]
fn a_second_broker_is_refused_even_after_files_are_deleted() {
    let dir = temp_dir("rmq-lock2");
    let first = Serve::start(&dir);
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        if entry.path().is_file() {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let mut second = rmq();
    second
        .args(["serve", "--port", "0", "--mgmt-port", "0", "--data-dir"])
        .arg(&dir);
    let out = run_bounded(second, None, WAIT);
    assert!(!out.status.success(), "a second broker started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another rmq serve"), "{err}");
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped. CI runs as
/// root; elsewhere the test fails with one line saying why (never a silent pass).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = temp_dir("rmq-tmpfs");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs for the full-disk test (needs root): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Publish numbered persistent messages until the broker refuses one (the disk is
/// full); the numbers it confirmed.
async fn fill(url: &str, q: &str) -> Vec<usize> {
    let (_conn, ch) = connect(url).await;
    declare_durable(&ch, q).await;
    bounded(
        "confirm_select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .unwrap();
    let body = vec![b'x'; 4000];
    let mut confirmed = Vec::new();
    for i in 0.. {
        let mut msg = format!("{i:08}").into_bytes();
        msg.extend_from_slice(&body);
        match publish_confirmed(&ch, q, &msg).await {
            Ok(true) => confirmed.push(i),
            _ => break,
        }
        assert!(i < 100_000, "the 24 MB disk never filled");
    }
    confirmed
}

/// Take `n` messages with basic.get and ack each: the numbers taken.
async fn take_and_ack(ch: &Channel, q: &str, n: usize) -> Vec<usize> {
    let mut taken = Vec::new();
    for _ in 0..n {
        let Some(m) = bounded("get", ch.basic_get(q.into(), BasicGetOptions::default()))
            .await
            .unwrap()
        else {
            break;
        };
        taken.push(number(&m.delivery.data));
        bounded("ack", m.delivery.acker.ack(BasicAckOptions::default()))
            .await
            .unwrap();
    }
    taken
}

fn number(body: &[u8]) -> usize {
    std::str::from_utf8(&body[..8]).unwrap().parse().unwrap()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// Fill a real (tmpfs) disk with persistent messages, restart on the full disk, ack
/// while it is full, crash, free space, restart: every confirmed message is there once,
/// nothing acked comes back looking new, no `.tmp` is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_restarts_drains_and_keeps_its_acks() {
    let disk = Tmpfs::mount("24m");
    let ballast = disk.0.join("ballast");
    std::fs::write(&ballast, vec![0u8; 2 << 20]).unwrap();
    let data = disk.0.join("data");
    let q = unique("full-q");
    // Default 16 MiB segments: acking half the messages empties no segment, so the acks
    // can only be written in the reserve.
    let args = ["--disk-free-limit", "1"];

    let serve = Serve::start_with(&data, &args);
    let confirmed = fill(&serve.url(), &q).await;
    assert!(confirmed.len() > 1000, "only {} fit", confirmed.len());
    serve.kill9();

    // Restart on the full disk: it starts, and consumers drain and ack.
    let serve = Serve::start_with(&data, &args);
    assert!(leftovers(&data).is_empty(), "{:?}", leftovers(&data));
    let (_conn, ch) = connect(&serve.url()).await;
    let acked = take_and_ack(&ch, &q, confirmed.len() / 2).await;
    assert_eq!(acked.len(), confirmed.len() / 2, "drained while full");
    let log = serve.log();
    assert!(log.contains("released"), "the acks used the reserve: {log}");
    serve.kill9();

    // Space again: what was acked while full stays acked.
    std::fs::remove_file(&ballast).unwrap();
    let serve = Serve::start_with(&data, &args);
    let (_conn, ch) = connect(&serve.url()).await;
    let mut rest = Vec::new();
    while let Some(m) = bounded(
        "get",
        ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    {
        let n = number(&m.delivery.data);
        if acked.contains(&n) {
            assert!(
                m.delivery.redelivered,
                "message {n}, acked while the disk was full, came back looking new"
            );
        } else {
            rest.push(n);
        }
    }
    let mut want: Vec<usize> = confirmed
        .into_iter()
        .filter(|n| !acked.contains(n))
        .collect();
    want.sort_unstable();
    rest.sort_unstable();
    assert_eq!(rest, want, "every confirmed, unacked message once");
    eprintln!(
        "full disk: {} confirmed, {} acked while full, {} drained after",
        want.len() + acked.len(),
        acked.len(),
        rest.len()
    );
    let log = serve.log();
    assert!(!log.contains("cannot start"), "{log}");
}
