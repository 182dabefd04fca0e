//! The management API changes topology through the same vhost operation as AMQP, so it
//! checks the same permissions: a queue's dead-letter exchange needs write on that
//! exchange (and read on the queue) over HTTP too, not only configure on the queue.

use crate::support::amqp::{connect, url};
use crate::support::api::{ADMIN, api};
use crate::support::topology::Topology;
use crate::support::{Broker, unique};
use lapin::ExchangeKind;
use serde_json::json;

/// A management user with `configure`, `write` and `read` patterns on `/`.
async fn user(broker: &Broker, name: &str, configure: &str, write: &str, read: &str) {
    let body = json!({"password": "pw", "tags": "management"});
    let (status, _) = api(
        broker,
        "PUT",
        &format!("/api/users/{name}"),
        Some(body),
        ADMIN,
    )
    .await;
    assert_eq!(status, 201);
    let perms = json!({"configure": configure, "write": write, "read": read});
    let path = format!("/api/permissions/%2F/{name}");
    let (status, _) = api(broker, "PUT", &path, Some(perms), ADMIN).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_exchange_needs_write_on_it_over_http_as_over_amqp() {
    let broker = Broker::start_with(|c| c.users = vec![("admin".into(), "adm1n".into())]);
    let dave = unique("dave");
    let own = format!("^{dave}-");
    user(&broker, &dave, &own, &own, &own).await;
    let as_dave = (dave.as_str(), "pw");

    let dlq = format!("{dave}-dlq");
    let refused = json!({"durable": false, "arguments": {"x-dead-letter-exchange": "amq.direct"}});
    let path = format!("/api/queues/%2F/{dlq}");
    let (status, body) = api(&broker, "PUT", &path, Some(refused), as_dave).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"error": "not_authorised", "reason": "Access refused."})
        )
    );
    let (status, _) = api(&broker, "GET", &path, None, ADMIN).await;
    assert_eq!(status, 404, "a refused declare leaves no queue");

    // Dead-lettering into an exchange of his own is his to configure.
    let own_dlx = json!({"arguments": {"x-dead-letter-exchange": format!("{dave}-x")}});
    let (status, _) = api(&broker, "PUT", &path, Some(own_dlx), as_dave).await;
    assert_eq!(status, 201);

    // Configure alone is not enough: dead-lettering reads the queue and writes the DLX.
    let erin = unique("erin");
    user(&broker, &erin, ".*", "", "").await;
    let as_erin = (erin.as_str(), "pw");
    let path = format!("/api/queues/%2F/{erin}-dlq");
    let body = json!({"arguments": {"x-dead-letter-exchange": "amq.fanout"}});
    let (status, _) = api(&broker, "PUT", &path, Some(body), as_erin).await;
    assert_eq!(status, 401);
    let (status, _) = api(&broker, "PUT", &path, Some(json!({})), as_erin).await;
    assert_eq!(
        status, 201,
        "without a DLX configure is what a declare needs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_over_http_needs_what_queue_bind_needs() {
    let broker = Broker::start_with(|c| c.users = vec![("admin".into(), "adm1n".into())]);
    let (_conn, ch) = connect(&url(&broker, ADMIN.0, ADMIN.1, "/")).await;
    let t = Topology::declare(&ch, ExchangeKind::Direct, "perm").await;
    let frank = unique("frank");
    // Write on the queue, but no read on the exchange.
    user(&broker, &frank, ".*", ".*", "^nothing$").await;
    let path = format!("/api/bindings/%2F/e/{}/q/{}", t.exchange, t.queue);
    let body = json!({"routing_key": "other"});
    let (status, _) = api(&broker, "POST", &path, Some(body.clone()), (&frank, "pw")).await;
    assert_eq!(status, 401);
    let (status, _) = api(&broker, "POST", &path, Some(body), ADMIN).await;
    assert_eq!(status, 201);
    // Removing the fixture's binding needs the same.
    let key = format!("{path}/{}", t.key);
    let (status, _) = api(&broker, "DELETE", &key, None, (&frank, "pw")).await;
    assert_eq!(status, 401);
    let (status, _) = api(&broker, "DELETE", &key, None, ADMIN).await;
    assert_eq!(status, 204);
}
