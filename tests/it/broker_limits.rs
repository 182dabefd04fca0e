//! Access at the door: `guest` logs in from loopback only, and per-vhost limits refuse
//! queues and connections past `max-queues` / `max-connections` with RabbitMQ's texts.

use crate::support::Broker;
use crate::support::amqp::{channel, code_and_text, try_connect, try_declare, url};
use crate::support::api::api;
use serde_json::json;

/// This machine's address on a non-loopback interface (the one the default route uses;
/// a UDP connect sends nothing), else the first from `hostname -I`.
fn non_loopback_ip() -> std::net::IpAddr {
    let routed = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    routed
        .or_else(|| {
            let out = std::process::Command::new("hostname")
                .arg("-I")
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
                .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        })
        .expect("this test needs a non-loopback IPv4 address on the machine")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_only_logs_in_from_loopback() {
    let broker = Broker::start_with(|c| {
        c.amqp_addr = "0.0.0.0:0".parse().unwrap();
        c.users = vec![("app".into(), "s3cret".into())];
    });
    let ip = non_loopback_ip();
    let port = broker.addr.port();
    // --user replaced the default guest; create it as on a fresh RabbitMQ node.
    let guest = json!({"password": "guest", "tags": ["administrator"]});
    let perm = json!({"configure": ".*", "write": ".*", "read": ".*"});
    let admin = ("app", "s3cret");
    let mgmt = &broker;
    assert_eq!(
        api(mgmt, "PUT", "/api/users/guest", Some(guest), admin)
            .await
            .0,
        201
    );
    assert_eq!(
        api(mgmt, "PUT", "/api/permissions/%2F/guest", Some(perm), admin)
            .await
            .0,
        201
    );
    let local = format!("amqp://guest:guest@127.0.0.1:{port}/%2F");
    try_connect(&local).await.expect("guest from loopback");
    let remote = format!("amqp://guest:guest@{ip}:{port}/%2F");
    let err = try_connect(&remote).await.unwrap_err();
    assert_eq!(code_and_text(&err).0, 403, "guest from {ip}: {err:?}");
    let app = format!("amqp://app:s3cret@{ip}:{port}/%2F");
    try_connect(&app)
        .await
        .expect("other users may connect from anywhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vhost_limits_refuse_queues_and_connections_like_rabbitmq() {
    let broker = Broker::start();
    let guest = ("guest", "guest");
    assert_eq!(
        api(&broker, "PUT", "/api/vhosts/lim", None, guest).await.0,
        201
    );
    for (name, value) in [("max-queues", 1), ("max-connections", 1)] {
        let path = format!("/api/vhost-limits/lim/{name}");
        let (status, _) = api(
            &broker,
            "PUT",
            &path,
            Some(json!({ "value": value })),
            guest,
        )
        .await;
        assert_eq!(status, 204);
    }
    let (status, _) = api(
        &broker,
        "PUT",
        "/api/vhost-limits/lim/max-channels",
        Some(json!({"value": 1})),
        guest,
    )
    .await;
    assert_eq!(status, 400, "an unknown limit is refused");
    let (_, limits) = api(&broker, "GET", "/api/vhost-limits", None, guest).await;
    assert_eq!(
        limits,
        json!([{"vhost": "lim", "value": {"max-connections": 1, "max-queues": 1}}])
    );

    let lim = url(&broker, "guest", "guest", "lim");
    let conn = try_connect(&lim).await.unwrap();
    let err = try_connect(&lim).await.unwrap_err();
    assert_eq!(
        code_and_text(&err),
        (
            530,
            "NOT_ALLOWED - access to vhost 'lim' refused for user 'guest': connection limit (1) is reached"
                .into()
        )
    );
    let ch = channel(&conn).await;
    try_declare(&ch, "lq1").await.unwrap();
    let err = try_declare(&ch, "lq2").await.unwrap_err();
    assert_eq!(
        code_and_text(&err),
        (
            406,
            "PRECONDITION_FAILED - cannot declare queue 'lq2': queue limit in vhost 'lim' (1) is reached"
                .into()
        )
    );
    // The export carries them as RabbitMQ's vhost-limits parameter.
    let (_, defs) = api(&broker, "GET", "/api/definitions", None, guest).await;
    assert_eq!(
        defs["parameters"],
        json!([{"vhost": "lim", "component": "vhost-limits", "name": "limits",
                "value": {"max-connections": 1, "max-queues": 1}}])
    );
    let (status, _) = api(
        &broker,
        "DELETE",
        "/api/vhost-limits/lim/max-queues",
        None,
        guest,
    )
    .await;
    assert_eq!(status, 204);
    let ch = channel(&conn).await;
    try_declare(&ch, "lq2").await.unwrap();
}
