//! Resource limits with lapin: the node connection limit (530 at connection.open, as
//! RabbitMQ's `connection_max`), and memory/disk alarms that block publishing
//! connections (connection.blocked / unblocked) while consumers keep draining.

use crate::support::{Broker, WAIT};
use lapin::{Connection, ConnectionProperties};
use std::future::Future;

/// Bound every await: a broken broker fails the test instead of hanging it.
async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

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
    // The open ones are unaffected.
    for c in &open {
        bounded("channel", c.create_channel())
            .await
            .expect("existing connection still works");
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
