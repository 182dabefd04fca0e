//! Policies, operator policies and topic permissions through the management API,
//! against `rmq serve` and (with `RMQ_TEST_RABBITMQ_URL`) RabbitMQ 3.10: validation
//! texts, who may change what, topic permission refusals over AMQP and the API, the
//! definitions import and export (and its errors) and a restart with `--data-dir`.

use crate::support::amqp::code_and_text;
use crate::support::policy::{
    GUEST, Target, bounded, call, channel, declare, delete, delete_queue, drain, get, publish,
    publish_all, put, targets,
};
use crate::support::{Broker, unique};
use lapin::BasicProperties;
use lapin::options::*;
use lapin::types::FieldTable;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_policies_are_refused_with_rabbitmqs_texts() {
    for t in targets() {
        let p = unique("pol-bad");
        let path = format!("/api/policies/%2F/{p}");
        let refused = |body: Value| {
            let (api, path) = (t.api.clone(), path.clone());
            async move { call(&api, "PUT", &path, Some(body), GUEST).await }
        };
        let bad = |reason: &str| (400u16, json!({"error": "bad_request", "reason": reason}));
        let pattern = format!("^{p}$");
        assert_eq!(
            refused(json!({"pattern": pattern, "definition": {"foo": "x", "bar": 1}})).await,
            bad(
                "Validation failed\n\n[{&lt;&lt;\"bar\"&gt;&gt;,1},{&lt;&lt;\"foo\"&gt;&gt;,&lt;&lt;\"x\"&gt;&gt;}] are not recognised policy settings\n"
            ),
            "{}",
            t.name
        );
        assert_eq!(
            refused(json!({"pattern": pattern, "definition": {"federation-upstream": "up"}})).await,
            bad(
                "Validation failed\n\n[{&lt;&lt;\"federation-upstream\"&gt;&gt;,&lt;&lt;\"up\"&gt;&gt;}] are not recognised policy settings\n"
            ),
            "{}",
            t.name
        );
        assert_eq!(
            refused(json!({"pattern": pattern, "definition": {"message-ttl": -1}})).await,
            bad("Validation failed\n\n-1 is not a valid message TTL\n"),
            "{}",
            t.name
        );
        assert_eq!(
            refused(json!({"pattern": "(", "definition": {"max-length": "x"}, "apply-to": "x", "priority": "a"})).await,
            bad("Validation failed\n\n&lt;&lt;\"x\"&gt;&gt; is not a valid maximum length\napply-to 'x' unrecognised; should be 'queues', 'exchanges' or 'all'\npattern should be regular expression but is invalid: {\"missing )\",1}\npriority should be a number, actually was &lt;&lt;\"a\"&gt;&gt;\n"),
            "{}",
            t.name
        );
        assert_eq!(
            refused(json!({"pattern": pattern, "definition": {}})).await,
            bad("Validation failed\n\nno policy provided\n"),
            "{}",
            t.name
        );
        assert_eq!(
            refused(json!({"apply-to": "all"})).await,
            bad("[{key_missing,pattern},{key_missing,definition}]"),
            "{}",
            t.name
        );
        // Operator policies take limits only, and their texts are not HTML-escaped.
        let (s, v) = call(
            &t.api,
            "PUT",
            &format!("/api/operator-policies/%2F/{p}"),
            Some(json!({"pattern": pattern, "definition": {"overflow": "reject-publish"}})),
            GUEST,
        )
        .await;
        assert_eq!(
            (s, v),
            bad(
                "Validation failed\n\n[{<<\"overflow\">>,<<\"reject-publish\">>}] are not recognised policy settings\n"
            ),
            "{}",
            t.name
        );
        let (s, v) = call(
            &t.api,
            "PUT",
            &format!("/api/policies/{p}-no-vhost/{p}"),
            Some(json!({"pattern": pattern, "definition": {"max-length": 1}})),
            GUEST,
        )
        .await;
        assert_eq!(
            (s, v),
            (
                404,
                json!({"error": "not_found", "reason": "vhost_not_found"})
            ),
            "{}",
            t.name
        );
        for method in ["GET", "DELETE"] {
            let (s, v) = call(&t.api, method, &path, None, GUEST).await;
            assert_eq!(
                (s, v),
                (
                    404,
                    json!({"error": "Object Not Found", "reason": "Not Found"})
                ),
                "{}: {method}",
                t.name
            );
        }
        // Nothing was stored by any of these.
        let all = get(&t, "/api/policies").await;
        assert!(
            !all.as_array().unwrap().iter().any(|x| x["name"] == p),
            "{}",
            t.name
        );
        if t.is_rmq() {
            // rmq does not mirror queues: refused rather than accepted and ignored
            // (RabbitMQ 3.10 accepts ha-mode).
            assert_eq!(
                refused(json!({"pattern": pattern, "definition": {"ha-mode": "all"}})).await,
                bad(
                    "Validation failed\n\n[{&lt;&lt;\"ha-mode\"&gt;&gt;,&lt;&lt;\"all\"&gt;&gt;}] are not recognised policy settings\n"
                ),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_the_policymakers_and_operator_policies_the_administrators() {
    for t in targets() {
        let p = unique("pol-who");
        let (manager, maker) = (format!("{p}-mgmt"), format!("{p}-maker"));
        for (u, tag) in [(&manager, "management"), (&maker, "policymaker")] {
            put(
                &t,
                &format!("/api/users/{u}"),
                json!({"password": "pw", "tags": tag}),
            )
            .await;
        }
        let policy = format!("/api/policies/%2F/{p}");
        let body = json!({"pattern": format!("^{p}$"), "definition": {"max-length": 1}});
        let as_user = |u: &str, method: &'static str, path: String, body: Option<Value>| {
            let (api, u) = (t.api.clone(), u.to_string());
            async move { call(&api, method, &path, body, (&u, "pw")).await }
        };
        let object =
            json!({"error": "not_authorised", "reason": "User not authorised to access object"});
        // A management user lists policies but may not touch one.
        assert_eq!(
            as_user(&manager, "GET", "/api/policies".into(), None)
                .await
                .0,
            200
        );
        assert_eq!(
            as_user(&manager, "PUT", policy.clone(), Some(body.clone())).await,
            (401, object.clone()),
            "{}",
            t.name
        );
        // A policymaker needs a permission in the vhost.
        assert_eq!(
            as_user(&maker, "PUT", policy.clone(), Some(body.clone())).await,
            (401, object.clone()),
            "{}",
            t.name
        );
        put(
            &t,
            &format!("/api/permissions/%2F/{maker}"),
            json!({"configure": "", "write": "", "read": ""}),
        )
        .await;
        assert_eq!(
            as_user(&maker, "PUT", policy.clone(), Some(body.clone()))
                .await
                .0,
            201,
            "{}",
            t.name
        );
        assert_eq!(
            as_user(
                &maker,
                "PUT",
                format!("/api/operator-policies/%2F/{p}"),
                Some(body.clone())
            )
            .await,
            (
                401,
                json!({"error": "not_authorised", "reason": "Not administrator user"})
            ),
            "{}",
            t.name
        );
        assert_eq!(
            as_user(&maker, "DELETE", policy.clone(), None).await.0,
            204,
            "{}",
            t.name
        );
        for u in [&manager, &maker] {
            delete(&t, &format!("/api/users/{u}")).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_permissions_refuse_other_routing_and_binding_keys() {
    for t in targets() {
        let p = unique("tp");
        let user = format!("{p}-u");
        put(
            &t,
            &format!("/api/users/{user}"),
            json!({"password": "pw", "tags": "management"}),
        )
        .await;
        put(
            &t,
            &format!("/api/permissions/%2F/{user}"),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .await;
        let tp = format!("/api/topic-permissions/%2F/{user}");
        let created = put(
            &t,
            &tp,
            json!({"exchange": "amq.topic", "write": "^{username}\\.", "read": "^r\\."}),
        )
        .await;
        assert_eq!(created, 201, "{}", t.name);
        assert_eq!(
            get(&t, &tp).await,
            json!([{"user": user, "vhost": "/", "exchange": "amq.topic",
                    "write": "^{username}\\.", "read": "^r\\."}]),
            "{}",
            t.name
        );
        let url = format!("amqp://{user}:pw@{}/%2F", t.amqp_host());
        let (conn, ch) = channel(&url).await;
        let q = format!("{p}-q");
        declare(&ch, &q, FieldTable::default()).await;
        publish(&ch, "amq.topic", &format!("{user}.ok"), "x")
            .await
            .unwrap();
        let refused = |key: &str| {
            (
                403u16,
                format!(
                    "ACCESS_REFUSED - access to topic '{key}' in exchange 'amq.topic' in vhost '/' refused for user '{user}'"
                ),
            )
        };
        let err = publish(&ch, "amq.topic", "someone-else.x", "x")
            .await
            .unwrap_err();
        assert_eq!(code_and_text(&err), refused("someone-else.x"), "{}", t.name);
        let ch = bounded("channel", conn.create_channel()).await.unwrap();
        let bind = |key: &'static str| {
            let (ch, q) = (ch.clone(), q.clone());
            async move {
                bounded(
                    "queue.bind",
                    ch.queue_bind(
                        q.as_str().into(),
                        "amq.topic".into(),
                        key.into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    ),
                )
                .await
            }
        };
        bind("r.#").await.unwrap();
        let err = bind("#").await.unwrap_err();
        assert_eq!(code_and_text(&err), refused("#"), "{}", t.name);
        // Other exchanges, and exchanges that are not topic ones, are not restricted.
        let ch = bounded("channel", conn.create_channel()).await.unwrap();
        bounded(
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .unwrap();
        publish(&ch, "amq.direct", "anything", "x").await.unwrap();
        // The API publishes as its caller, with the same check.
        let (s, v) = call(
            &t.api,
            "POST",
            "/api/exchanges/%2F/amq.topic/publish",
            Some(json!({"properties": {}, "routing_key": "nope", "payload": "x", "payload_encoding": "string"})),
            (&user, "pw"),
        )
        .await;
        assert_eq!(
            (s, v),
            (
                400,
                json!({"error": "bad_request", "reason": format!("403 {}", refused("nope").1)})
            ),
            "{}",
            t.name
        );
        delete(&t, &format!("/api/users/{user}")).await;
        let (_c, ch) = channel(&t.amqp).await;
        delete_queue(&ch, &q).await;
        drop(conn);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_topic_permissions_survive_a_restart() {
    let data = std::env::temp_dir().join(unique("pol-restart"));
    let start = || {
        let data = data.clone();
        Broker::start_with(move |c| c.data_dir = Some(data))
    };
    let q = unique("pol-kept");
    let target = |b: &Broker| Target {
        name: "rmq",
        amqp: b.url(),
        api: b.api_url(),
        _broker: None,
    };
    {
        let broker = start();
        let t = target(&broker);
        put(
            &t,
            "/api/policies/%2F/kept",
            json!({"pattern": format!("^{q}$"), "definition": {"max-length": 1}}),
        )
        .await;
        put(
            &t,
            "/api/operator-policies/%2F/kept-op",
            json!({"pattern": format!("^{q}$"), "definition": {"expires": 3600000}}),
        )
        .await;
        put(&t, "/api/users/erin", json!({"password": "pw", "tags": ""})).await;
        put(
            &t,
            "/api/topic-permissions/%2F/erin",
            json!({"exchange": "amq.topic", "write": "^erin\\.", "read": ".*"}),
        )
        .await;
        put(
            &t,
            &format!("/api/queues/%2F/{q}"),
            json!({"durable": true}),
        )
        .await;
        let (_conn, ch) = channel(&t.amqp).await;
        for body in ["1", "2"] {
            let props = BasicProperties::default().with_delivery_mode(2);
            let confirm = bounded(
                "publish",
                ch.basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props,
                ),
            )
            .await
            .unwrap();
            bounded("confirm", confirm).await.unwrap();
        }
    }
    let broker = start();
    let t = target(&broker);
    let shown = get(&t, &format!("/api/queues/%2F/{q}")).await;
    assert_eq!(
        (&shown["policy"], &shown["operator_policy"]),
        (&json!("kept"), &json!("kept-op"))
    );
    assert_eq!(shown["messages"], 1, "max-length 1 held the newest only");
    assert_eq!(
        get(&t, "/api/topic-permissions/%2F/erin").await[0]["write"],
        "^erin\\."
    );
    let (_conn, ch) = channel(&t.amqp).await;
    publish_all(&ch, &q, &["3", "4"]).await;
    assert_eq!(drain(&ch, &q).await, ["4"]);
    let _ = std::fs::remove_dir_all(&data);
}
