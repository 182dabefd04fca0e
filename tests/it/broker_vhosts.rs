//! Deleting a vhost while clients are connecting to it: every connection that got in is
//! closed with RabbitMQ's "vhost 'x' is down", including one whose handshake found the
//! vhost just before the delete and registered just after it.

use crate::support::amqp::{bounded, try_connect, url};
use crate::support::api::{ADMIN, api};
use crate::support::{Broker, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_outlives_the_deletion_of_its_vhost() {
    let broker = Broker::start_with(|c| c.users = vec![("admin".into(), "adm1n".into())]);
    let mut got_in = 0;
    for round in 0..150 {
        let v = unique("gone");
        let (status, _) = api(&broker, "PUT", &format!("/api/vhosts/{v}"), None, ADMIN).await;
        assert_eq!(status, 201);
        // One connection is in for sure; several handshakes race the delete (some get in
        // before it, some are refused, now and then one lands in between).
        let first = try_connect(&url(&broker, "admin", "adm1n", &v)).await;
        let mut connecting: Vec<_> = (0..4)
            .map(|_| tokio::spawn(connect_owned(url(&broker, "admin", "adm1n", &v))))
            .collect();
        connecting.insert(0, tokio::spawn(async move { first }));
        let (status, _) = api(&broker, "DELETE", &format!("/api/vhosts/{v}"), None, ADMIN).await;
        assert_eq!(status, 204, "round {round}");
        for c in connecting {
            if let Ok(conn) = c.await.unwrap() {
                got_in += 1;
                bounded("the deleted vhost's connection closes", async {
                    while conn.status().connected() {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                })
                .await;
            }
        }
    }
    assert!(got_in >= 150, "{got_in} connections got in");
}

async fn connect_owned(url: String) -> lapin::Result<lapin::Connection> {
    try_connect(&url).await
}
