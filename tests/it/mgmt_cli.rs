//! The `rmq list-*` commands and `rmq overview` against every target (the embedded broker
//! and, when `RMQ_TEST_RABBITMQ_URL` is set, RabbitMQ with its management plugin): the
//! same state must list with the same columns and values on both.

use crate::cli_support::{code, run, stderr};
use crate::support::{WAIT, eventually, targets, unique};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

/// Run `rmq` with the API URL given; stdout on success, None otherwise.
fn list(url: &str, api: &str, args: &[&str]) -> Option<String> {
    let mut all = args.to_vec();
    all.extend(["--api-url", api]);
    let out = run(url, &all, None);
    (code(&out) == 0).then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_commands_show_the_same_state_on_every_target() {
    let (q, x, y, h) = (unique("lq"), unique("lx"), unique("ly"), unique("lh"));
    let conn_name = unique("list-conn");
    let mut seen: Vec<Vec<String>> = Vec::new();
    for (url, broker) in targets() {
        let api = match &broker {
            Some(b) => b.api_url(),
            None => "http://127.0.0.1:15672".to_string(),
        };
        let props = ConnectionProperties::default().with_connection_name(conn_name.as_str().into());
        let conn = Connection::connect(&url, props).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            y.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            "k.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_bind(
            y.as_str().into(),
            x.as_str().into(),
            "".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        // A binding with arguments: a headers exchange matching all of two headers.
        ch.exchange_declare(
            h.as_str().into(),
            ExchangeKind::Headers,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut match_args = FieldTable::default();
        match_args.insert("x-match".into(), AMQPValue::LongString("all".into()));
        match_args.insert("kind".into(), AMQPValue::LongString("report".into()));
        match_args.insert("level".into(), AMQPValue::LongInt(3));
        ch.queue_bind(
            q.as_str().into(),
            h.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            match_args,
        )
        .await
        .unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        for i in 0..3 {
            ch.basic_publish(
                x.as_str().into(),
                "k.a".into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
        // One consumer holding one unacked delivery: 2 ready, 1 unacked.
        let cch = conn.create_channel().await.unwrap();
        cch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
        let mut consumer = cch
            .basic_consume(
                q.as_str().into(),
                "list-tag".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _held = tokio::time::timeout(WAIT, consumer.next()).await.unwrap();

        let (url2, api2, q2) = (url.clone(), api.clone(), q.clone());
        let outputs = tokio::task::spawn_blocking(move || {
            let (url, api, q) = (url2, api2, q2);
            let queue_cols = ["list-queues", "name", "messages", "messages_ready", "messages_unacknowledged", "consumers", "durable", "auto_delete", "exclusive", "arguments", "--name", &q, "--output", "jsonl"];
            let want = format!(r#"{{"arguments":{{}},"auto_delete":false,"consumers":1,"durable":false,"exclusive":false,"messages":3,"messages_ready":2,"messages_unacknowledged":1,"name":"{q}"}}"#);
            // RabbitMQ's statistics lag a few seconds behind: poll until they settle.
            let mut last = String::new();
            eventually(WAIT, "the queue's counts listed", || {
                last = list(&url, &api, &queue_cols).unwrap_or_default();
                last.trim() == want
            });
            let mut outs = vec![last];
            eventually(WAIT, "the consumer listed", || {
                list(&url, &api, &["list-consumers", "queue_name", "consumer_tag", "ack_required", "prefetch_count", "active", "--name", &q, "-o", "tsv"])
                    .is_some_and(|o| o.lines().count() == 2)
            });
            outs.push(list(&url, &api, &["list-consumers", "queue_name", "consumer_tag", "ack_required", "prefetch_count", "active", "--name", &q, "-o", "tsv"]).unwrap());
            outs
        })
        .await
        .unwrap();
        let mut outputs = outputs;
        outputs.push(list(&url, &api, &["list-bindings", "--name", &x, "-o", "tsv"]).unwrap());
        outputs.push(
            list(
                &url,
                &api,
                &[
                    "list-bindings",
                    "source_name",
                    "destination_name",
                    "routing_key",
                    "--name",
                    "",
                    "-o",
                    "jsonl",
                ],
            )
            .unwrap()
            .lines()
            .filter(|l| l.contains(&q))
            .collect::<Vec<_>>()
            .join("\n"),
        );
        outputs.push(
            list(
                &url,
                &api,
                &[
                    "list-exchanges",
                    "name",
                    "type",
                    "durable",
                    "auto_delete",
                    "internal",
                    "--name",
                    &x,
                    "-o",
                    "tsv",
                ],
            )
            .unwrap()
            .lines()
            .filter(|l| !l.contains(&y))
            .collect::<Vec<_>>()
            .join("\n"),
        );
        outputs.push(list(&url, &api, &["list-bindings", "--name", &h, "-o", "tsv"]).unwrap());
        // The default vhost (a shared RabbitMQ may have others).
        outputs.push(
            list(&url, &api, &["list-vhosts", "name", "tracing", "-o", "tsv"])
                .unwrap()
                .lines()
                .filter(|l| *l == "name\ttracing" || l.starts_with("/\t"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        // This test's connection, found by its name (RabbitMQ lists it with a lag).
        let conn_cols = [
            "list-connections",
            "user",
            "vhost",
            "state",
            "channels",
            "ssl",
            "protocol",
            "client_properties.product",
            "client_properties.connection_name",
            "-o",
            "tsv",
        ];
        // Statistics (channels) lag on RabbitMQ: poll until the line settles.
        let want = format!("guest\t/\trunning\t2\tfalse\tAMQP 0-9-1\tlapin\t{conn_name}");
        let (url2, api2, want2) = (url.clone(), api.clone(), want.clone());
        let conn_line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            eventually(WAIT, "the connection listed", || {
                let name = want2.rsplit('\t').next().unwrap_or_default();
                line = list(&url2, &api2, &conn_cols)
                    .unwrap_or_default()
                    .lines()
                    .find(|l| l.ends_with(&format!("\t{name}")))
                    .unwrap_or_default()
                    .to_string();
                line == want2
            });
            line
        })
        .await
        .unwrap();
        assert_eq!(conn_line, want, "{url}");
        outputs.push(conn_line);
        let overview = list(&url, &api, &["overview", "-o", "tsv"]).unwrap();
        assert!(
            overview.contains("listeners\t") && overview.contains("amqp "),
            "{overview}"
        );
        seen.push(outputs);
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
        ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .unwrap();
        ch.exchange_delete(y.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .unwrap();
        ch.exchange_delete(h.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .unwrap();
        let _ = conn.close(200, "done".into()).await;
    }
    let bindings = &seen[0][2];
    assert_eq!(
        bindings.lines().count(),
        3,
        "header + queue + exchange binding: {bindings}"
    );
    assert!(
        bindings.contains(&format!("{x}\texchange\t{y}\texchange\t\t{{}}")),
        "{bindings}"
    );
    assert!(
        bindings.contains(&format!("{x}\texchange\t{q}\tqueue\tk.#\t{{}}")),
        "{bindings}"
    );
    let headers = &seen[0][5];
    assert!(
        headers.contains(&format!(
            "{h}\texchange\t{q}\tqueue\t\t{{\"kind\":\"report\",\"level\":3,\"x-match\":\"all\"}}"
        )),
        "{headers}"
    );
    assert!(
        seen[0][1].contains(&format!("{q}\tlist-tag\ttrue\t1\ttrue")),
        "{}",
        seen[0][1]
    );
    if let Some(rabbit) = seen.get(1) {
        assert_eq!(&seen[0], rabbit, "rmq serve and RabbitMQ list the same");
    }
}

#[test]
fn list_commands_fail_clearly_without_an_api() {
    let out = run(
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        &["list-exchanges", "--api-url", "http://127.0.0.1:1"],
        None,
    );
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(stderr(&out).contains("rabbitmq-plugins enable rabbitmq_management"));
}

#[test]
fn list_queues_of_an_unknown_vhost_is_an_error() {
    let (_, broker) = targets().swap_remove(0);
    let broker = broker.unwrap();
    let out = run(
        &broker.url(),
        &[
            "list-queues",
            "--vhost",
            "nope",
            "--api-url",
            &broker.api_url(),
        ],
        None,
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("no vhost 'nope'"), "{}", stderr(&out));
}

/// The operator listings (policies, users, permissions) show the same state the same way
/// on every target.
#[test]
fn operator_listings_show_the_same_state_on_every_target() {
    let (policy, user) = (unique("same-policy"), unique("same-user"));
    let pattern = format!("^{policy}-q$");
    let mut seen: Vec<Vec<String>> = Vec::new();
    for (url, broker) in targets() {
        let api = match &broker {
            Some(b) => b.api_url(),
            None => "http://127.0.0.1:15672".to_string(),
        };
        let change = |args: &[&str]| {
            let mut all = args.to_vec();
            all.extend(["--api-url", api.as_str()]);
            let out = run(&url, &all, None);
            assert_eq!(
                code(&out),
                0,
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        change(&[
            "set-policy",
            &policy,
            &pattern,
            r#"{"max-length":5,"message-ttl":60000}"#,
            "--apply-to",
            "queues",
            "--priority",
            "3",
        ]);
        change(&["add-user", &user, "s3cret", "--tags", "monitoring"]);
        change(&["set-permissions", &user, "^cfg$", "", ".*"]);
        let line_of = |args: &[&str], name: &str| {
            let text = list(&url, &api, args).expect("listing");
            text.lines()
                .find(|l| l.split('\t').any(|f| f == name))
                .unwrap_or_else(|| panic!("{name} not in {text}"))
                .to_string()
        };
        let lines = vec![
            line_of(&["list-policies", "-o", "tsv"], &policy),
            line_of(&["list-users", "-o", "tsv"], &user),
            line_of(&["list-permissions", "-o", "tsv"], &user),
        ];
        change(&["clear-policy", &policy]);
        change(&["delete-user", &user]);
        seen.push(lines);
    }
    assert!(seen[0][0].contains("max-length"), "{:?}", seen[0]);
    assert!(seen[0][2].contains("^cfg$"), "{:?}", seen[0]);
    if let Some(rabbit) = seen.get(1) {
        assert_eq!(&seen[0], rabbit, "rmq serve and RabbitMQ list the same");
    }
}
