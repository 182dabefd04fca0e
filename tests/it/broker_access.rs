//! Users, vhosts and permissions: a definitions file seeds them, AMQP operations are
//! checked against them with RabbitMQ's codes and texts, the management API changes
//! them (administrators only), they survive a restart, and `guest` stays on loopback.

use crate::support::amqp::{
    bounded, channel, code_and_text, temp_dir, try_connect, try_declare, url,
};
use crate::support::api::{ADMIN, api};
use crate::support::{Broker, unique};
use lapin::BasicProperties;
use lapin::options::*;
use lapin::types::FieldTable;
use serde_json::json;
use std::path::Path;

/// A RabbitMQ-style definitions file: an administrator, bob limited to `bob-*` names on
/// `/`, a vhost bob has no permission in, and a little topology.
fn write_definitions(dir: &Path) -> std::path::PathBuf {
    let doc = json!({
        "rabbit_version": "3.10.8",
        "users": [
            {"name": "admin", "password": "adm1n", "tags": ["administrator"]},
            // RabbitMQ 3.10's hash of "secret" (rabbitmqctl add_user bob secret).
            {"name": "bob", "password_hash": "lXS3bqSeWTe8YOBgX7qA1xZ0+Y/QbhWV05qzFGlzvUCtIXGX",
             "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}
        ],
        "vhosts": [{"name": "/"}, {"name": "other"}],
        "permissions": [
            {"user": "admin", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
            {"user": "admin", "vhost": "other", "configure": ".*", "write": ".*", "read": ".*"},
            {"user": "bob", "vhost": "/", "configure": "^bob-", "write": "^bob-", "read": "^bob-"}
        ],
        "exchanges": [{"name": "bob-x", "vhost": "/", "type": "fanout", "durable": true,
                       "auto_delete": false, "internal": false, "arguments": {}}],
        "queues": [{"name": "bob-q", "vhost": "/", "durable": true, "auto_delete": false,
                    "arguments": {"x-max-length": 10}}],
        "bindings": [{"source": "bob-x", "vhost": "/", "destination": "bob-q",
                      "destination_type": "queue", "routing_key": "", "arguments": {}}]
    });
    let path = dir.join("definitions.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_from_a_definitions_file_are_enforced_like_rabbitmq() {
    let dir = temp_dir("defs");
    let defs = write_definitions(&dir);
    let broker = Broker::start_with(|c| c.definitions = Some(defs.clone()));

    // No guest: the definitions brought users of their own.
    let err = try_connect(&broker.url()).await.unwrap_err();
    assert_eq!(code_and_text(&err).0, 403, "{err:?}");
    // No permission in the vhost: 530 on connection.open.
    let err = try_connect(&url(&broker, "bob", "secret", "other"))
        .await
        .unwrap_err();
    assert_eq!(
        code_and_text(&err),
        (
            530,
            "NOT_ALLOWED - access to vhost 'other' refused for user 'bob'".into()
        )
    );

    let conn = try_connect(&url(&broker, "bob", "secret", "/"))
        .await
        .unwrap();
    let refused = |kind: &str, name: &str| {
        (
            403u16,
            format!(
                "ACCESS_REFUSED - access to {kind} '{name}' in vhost '/' refused for user 'bob'"
            ),
        )
    };
    let ch = channel(&conn).await;
    let err = try_declare(&ch, "x1").await.unwrap_err();
    assert_eq!(code_and_text(&err), refused("queue", "x1"));

    // The imported topology is there, and bob may use what his patterns allow.
    let ch = channel(&conn).await;
    bounded(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .unwrap();
    let confirm = bounded(
        "publish",
        ch.basic_publish(
            "bob-x".into(),
            "".into(),
            BasicPublishOptions::default(),
            b"hello",
            BasicProperties::default(),
        ),
    )
    .await
    .unwrap();
    assert!(bounded("confirm", confirm).await.unwrap().is_ack());
    let got = bounded(
        "basic.get",
        ch.basic_get("bob-q".into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    .expect("the message routed through the imported binding");
    assert_eq!(got.delivery.data, b"hello");

    // The default exchange is `amq.default` for the check, as in RabbitMQ.
    let publish = ch
        .basic_publish(
            "".into(),
            "bob-q".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await;
    let err = match publish {
        Ok(confirm) => bounded("nack or close", confirm).await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(code_and_text(&err), refused("exchange", "amq.default"));

    let ch = channel(&conn).await;
    let err = bounded(
        "queue.bind",
        ch.queue_bind(
            "bob-q".into(),
            "amq.direct".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(code_and_text(&err), refused("exchange", "amq.direct"));

    // Server-named queues are checked under their generated name.
    let ch = channel(&conn).await;
    let err = try_declare(&ch, "").await.unwrap_err();
    let (code, text) = code_and_text(&err);
    assert_eq!(code, 403);
    assert!(text.contains("access to queue 'amq.gen-"), "{text}");

    // Dead-lettering writes to the DLX: bob may not point his queue at amq.direct.
    let ch = channel(&conn).await;
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        lapin::types::AMQPValue::LongString("amq.direct".into()),
    );
    let err = bounded(
        "declare with a DLX",
        ch.queue_declare("bob-dlq".into(), QueueDeclareOptions::default(), args),
    )
    .await
    .unwrap_err();
    assert_eq!(code_and_text(&err), refused("exchange", "amq.direct"));

    // Each refusal closed only its channel: the connection still works.
    let ch = channel(&conn).await;
    try_declare(&ch, "bob-new").await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_manage_users_vhosts_and_permissions_over_http() {
    let broker = Broker::start_with(|c| c.users = vec![("admin".into(), "adm1n".into())]);
    let guest = ("guest", "guest");
    // --user means no default guest.
    let (status, _) = api(&broker, "GET", "/api/whoami", None, guest).await;
    assert_eq!(status, 401);
    let (status, me) = api(&broker, "GET", "/api/whoami", None, ADMIN).await;
    assert_eq!(
        (status, me),
        (200, json!({"name": "admin", "tags": ["administrator"]}))
    );

    let carol = json!({"password": "pw", "tags": "management"});
    let (status, _) = api(
        &broker,
        "PUT",
        "/api/users/carol",
        Some(carol.clone()),
        ADMIN,
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = api(&broker, "PUT", "/api/users/carol", Some(carol), ADMIN).await;
    assert_eq!(status, 204);
    let (_, user) = api(&broker, "GET", "/api/users/carol", None, ADMIN).await;
    assert_eq!(user["tags"], json!(["management"]));
    assert_eq!(user["hashing_algorithm"], "rabbit_password_hashing_sha256");
    assert!(user["password_hash"].as_str().unwrap().len() > 40);
    assert!(
        !user.to_string().contains("\"pw\""),
        "no plain password: {user}"
    );

    // A management user works only where it has permissions, with those permissions.
    let limited = json!({"configure": "^carol-", "write": "^carol-", "read": "^carol-"});
    let (status, _) = api(&broker, "PUT", "/api/vhosts/other", None, ADMIN).await;
    assert_eq!(status, 201);
    let (status, _) = api(
        &broker,
        "PUT",
        "/api/permissions/%2F/carol",
        Some(limited),
        ADMIN,
    )
    .await;
    assert_eq!(status, 201);
    let carol_auth = ("carol", "pw");
    let (status, body) = api(&broker, "GET", "/api/queues/other", None, carol_auth).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"error": "not_authorised", "reason": "User not authorised to access virtual host"})
        )
    );
    let (status, body) = api(
        &broker,
        "PUT",
        "/api/queues/%2F/not-hers",
        Some(json!({})),
        carol_auth,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"error": "not_authorised", "reason": "Access refused."})
        )
    );
    let (status, _) = api(
        &broker,
        "PUT",
        "/api/queues/%2F/carol-q",
        Some(json!({})),
        carol_auth,
    )
    .await;
    assert_eq!(status, 201);
    let (_, vhosts) = api(&broker, "GET", "/api/vhosts", None, carol_auth).await;
    assert_eq!(
        vhosts.as_array().map(Vec::len),
        Some(1),
        "only '/': {vhosts}"
    );
    let admin_conn = try_connect(&url(&broker, "admin", "adm1n", "/"))
        .await
        .unwrap();
    let (_, conns) = api(&broker, "GET", "/api/connections", None, carol_auth).await;
    assert_eq!(conns, json!([]), "another user's connection stays hidden");
    let (_, conns) = api(&broker, "GET", "/api/connections", None, ADMIN).await;
    assert_eq!(conns.as_array().map(Vec::len), Some(1));
    drop(admin_conn);
    let (status, _) = api(&broker, "DELETE", "/api/permissions/%2F/carol", None, ADMIN).await;
    assert_eq!(status, 204);

    // A management user is not an administrator.
    let (status, body) = api(&broker, "GET", "/api/users", None, ("carol", "pw")).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"error": "not_authorised", "reason": "Not administrator user"})
        )
    );
    let (status, _) = api(&broker, "PUT", "/api/vhosts/x", None, ("carol", "pw")).await;
    assert_eq!(status, 401);

    // No permission yet: 530 on open; with one, carol connects.
    let carol_url = url(&broker, "carol", "pw", "/");
    let err = try_connect(&carol_url).await.unwrap_err();
    assert_eq!(code_and_text(&err).0, 530);
    let perm = json!({"configure": ".*", "write": ".*", "read": "("});
    let (status, body) = api(
        &broker,
        "PUT",
        "/api/permissions/%2F/carol",
        Some(perm),
        ADMIN,
    )
    .await;
    assert_eq!(status, 400, "an invalid regex is refused: {body}");
    let perm = json!({"configure": ".*", "write": ".*", "read": ".*"});
    let (status, _) = api(
        &broker,
        "PUT",
        "/api/permissions/%2F/nobody",
        Some(perm.clone()),
        ADMIN,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = api(
        &broker,
        "PUT",
        "/api/permissions/%2F/carol",
        Some(perm),
        ADMIN,
    )
    .await;
    assert_eq!(status, 201);
    let conn = try_connect(&carol_url).await.unwrap();
    let ch = channel(&conn).await;
    let q = unique("carol");
    try_declare(&ch, &q).await.unwrap();

    // Taking the permission away applies to the open connection's next operation.
    let (status, _) = api(&broker, "DELETE", "/api/permissions/%2F/carol", None, ADMIN).await;
    assert_eq!(status, 204);
    let err = try_declare(&ch, &q).await.unwrap_err();
    assert_eq!(code_and_text(&err).0, 403);
    let (_, perms) = api(&broker, "GET", "/api/users/carol/permissions", None, ADMIN).await;
    assert_eq!(perms, json!([]));

    // A new vhost: its creator gets full permissions; deleting it closes its connections.
    let (status, _) = api(&broker, "PUT", "/api/vhosts/staging", None, ADMIN).await;
    assert_eq!(status, 201);
    let (_, perms) = api(
        &broker,
        "GET",
        "/api/vhosts/staging/permissions",
        None,
        ADMIN,
    )
    .await;
    assert_eq!(perms[0]["user"], "admin");
    let staging = try_connect(&url(&broker, "admin", "adm1n", "staging"))
        .await
        .unwrap();
    let sch = channel(&staging).await;
    try_declare(&sch, "in-staging").await.unwrap();
    let (status, _) = api(&broker, "DELETE", "/api/vhosts/staging", None, ADMIN).await;
    assert_eq!(status, 204);
    bounded("vhost connections closed", async {
        while staging.status().connected() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let (status, _) = api(&broker, "GET", "/api/vhosts/staging", None, ADMIN).await;
    assert_eq!(status, 404);

    let (status, _) = api(&broker, "DELETE", "/api/users/carol", None, ADMIN).await;
    assert_eq!(status, 204);
    let (status, _) = api(&broker, "DELETE", "/api/users/carol", None, ADMIN).await;
    assert_eq!(status, 404);
    let err = try_connect(&carol_url).await.unwrap_err();
    assert_eq!(code_and_text(&err).0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_survive_a_restart_and_definitions_round_trip() {
    let dir = temp_dir("access");
    let data = dir.join("data");
    let start = || {
        let data = data.clone();
        Broker::start_with(move |c| c.data_dir = Some(data))
    };
    let broker = start();
    let dave = json!({"password": "d4ve", "tags": ["monitoring"]});
    let (status, _) = api(
        &broker,
        "PUT",
        "/api/users/dave",
        Some(dave),
        ("guest", "guest"),
    )
    .await;
    assert_eq!(status, 201);
    let perm = json!({"configure": "", "write": "", "read": ".*"});
    let (status, _) = api(
        &broker,
        "PUT",
        "/api/permissions/%2F/dave",
        Some(perm),
        ("guest", "guest"),
    )
    .await;
    assert_eq!(status, 201);
    let (_, ch) = {
        let conn = try_connect(&broker.url()).await.unwrap();
        let ch = channel(&conn).await;
        (conn, ch)
    };
    let durable = unique("kept");
    bounded(
        "declare durable",
        ch.queue_declare(
            durable.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let (status, exported) =
        api(&broker, "GET", "/api/definitions", None, ("guest", "guest")).await;
    assert_eq!(status, 200);
    drop(broker);

    let broker = start();
    let (status, me) = api(&broker, "GET", "/api/whoami", None, ("dave", "d4ve")).await;
    assert_eq!((status, me["tags"].clone()), (200, json!(["monitoring"])));
    let conn = try_connect(&url(&broker, "dave", "d4ve", "/"))
        .await
        .unwrap();
    let ch = channel(&conn).await;
    let err = try_declare(&ch, "anything").await.unwrap_err();
    assert_eq!(code_and_text(&err).0, 403, "dave may only read");
    drop(broker);

    // The export seeds a fresh in-memory broker: users (same hashes), the queue.
    let fresh = Broker::start();
    let (status, body) = api(
        &fresh,
        "POST",
        "/api/definitions",
        Some(exported),
        ("guest", "guest"),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = api(&fresh, "GET", "/api/whoami", None, ("dave", "d4ve")).await;
    assert_eq!(status, 200);
    let (status, q) = api(
        &fresh,
        "GET",
        &format!("/api/queues/%2F/{durable}"),
        None,
        ("guest", "guest"),
    )
    .await;
    assert_eq!((status, q["durable"].clone()), (200, json!(true)));
    let (status, body) = api(
        &fresh,
        "POST",
        "/api/definitions",
        Some(json!({"permissions": [{"user": "ghost", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]})),
        ("guest", "guest"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let _ = std::fs::remove_dir_all(dir);
}
