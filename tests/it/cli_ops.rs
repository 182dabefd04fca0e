//! The operator commands that watch and steer a running broker, against every target:
//! `await-startup` (up, nothing listening, a broker that starts while it waits),
//! `close-connection` (the client sees the reason), `list-channels`, and `topology` drawn
//! by the real Graphviz.

use crate::cli_admin::{api_url, with_api};
use crate::cli_support::{Running, cleanup, code, ok, run, stderr};
use crate::support::{WAIT, eventually, free_port, rmq, run_bounded, targets, unique};
use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[test]
fn await_startup_is_0_when_up_and_69_when_nothing_answers() {
    for (url, broker) in targets() {
        let api = api_url(&broker);
        let out = run(
            &url,
            &with_api(&["await-startup", "--timeout", "10"], &api),
            None,
        );
        assert_eq!(code(&out), 0, "{url}: {}", stderr(&out));
        assert!(stderr(&out).contains("management API"), "{}", stderr(&out));
    }
    let port = free_port();
    let nowhere = format!("amqp://guest:guest@127.0.0.1:{port}/%2F");
    let started = Instant::now();
    let out = run(&nowhere, &["await-startup", "--timeout", "0.5"], None);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by --timeout: {:?}",
        started.elapsed()
    );
    assert!(
        stderr(&out).contains("did not come up within 500ms"),
        "{}",
        stderr(&out)
    );
    // AMQP up, but the management API it was told to wait for is not.
    let (url, _broker) = targets().swap_remove(0);
    let api = format!("http://127.0.0.1:{port}");
    let out = run(
        &url,
        &with_api(&["await-startup", "--timeout", "0.5"], &api),
        None,
    );
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(stderr(&out).contains("management API"), "{}", stderr(&out));
    // Wrong credentials: waiting will not help, so it does not wait.
    let wrong = url.replacen("guest:guest@", "guest:wrong@", 1);
    let out = run(&wrong, &["await-startup", "--timeout", "60"], None);
    assert_eq!(code(&out), 77, "{}", stderr(&out));
}

/// `rmq serve` on a given port; killed when dropped.
struct ServeOn(Child);

impl Drop for ServeOn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn await_startup_waits_for_a_broker_that_starts_later() {
    let port = free_port();
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2F");
    let waiting = Running::start(&url, &["await-startup", "--timeout", "15"]);
    // Nothing listens yet: a real attempt is refused (what the waiting command sees too).
    let early = run(&url, &["await-startup", "--timeout", "0"], None);
    assert_eq!(code(&early), 69, "{}", stderr(&early));
    let _serve = ServeOn(
        rmq()
            .args(["serve", "--in-memory", "--mgmt-port", "0", "--port"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rmq serve"),
    );
    let out = waiting.finish();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("is up"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_connection_tells_the_client_why() {
    for (url, broker) in targets() {
        let api = api_url(&broker);
        let name = unique("ops-conn");
        let props = ConnectionProperties::default().with_connection_name(name.as_str().into());
        let conn = Connection::connect(&url, props).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut consumer = ch
            .basic_consume(
                q.name().clone(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let reason = unique("maintenance window");
        let (url2, api2, name2, reason2) = (url.clone(), api.clone(), name.clone(), reason.clone());
        // By the name the client gave (RabbitMQ lists a new connection with a lag).
        tokio::task::spawn_blocking(move || {
            let args = ["close-connection", &name2, "--reason", &reason2];
            let mut last = String::new();
            eventually(WAIT, "the connection closed by its name", || {
                let out = run(&url2, &with_api(&args, &api2), None);
                last = stderr(&out);
                assert!(
                    matches!(code(&out), 0 | 1),
                    "close-connection failed: {last}"
                );
                code(&out) == 0
            });
            assert!(last.contains("closed 1 connection"), "{last}");
        })
        .await
        .unwrap();
        let seen = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("the client learns of the close");
        let err = match seen {
            Some(Err(e)) => e.to_string(),
            other => panic!("{url}: expected an error, got {other:?}"),
        };
        assert!(
            err.contains("CONNECTION_FORCED") && err.contains(&reason),
            "{url}: {err}"
        );
        // Gone: closing it again finds nothing.
        let (url2, api2, name2) = (url.clone(), api.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            eventually(WAIT, "the connection gone from the listing", || {
                let out = run(&url2, &with_api(&["close-connection", &name2], &api2), None);
                code(&out) == 1 && stderr(&out).contains("no connection has that name")
            });
        })
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_channels_shows_a_channel_and_its_consumer() {
    for (url, broker) in targets() {
        let api = api_url(&broker);
        let name = unique("ops-chan");
        let props = ConnectionProperties::default().with_connection_name(name.as_str().into());
        let conn = Connection::connect(&url, props).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.basic_qos(7, BasicQosOptions::default()).await.unwrap();
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _consumer = ch
            .basic_consume(
                q.name().clone(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let (url2, api2) = (url.clone(), api.clone());
        let line = tokio::task::spawn_blocking(move || {
            // The broker's name for the connection, found by the name the client gave.
            let mut conn_name = String::new();
            eventually(WAIT, "the connection listed", || {
                let out = run(
                    &url2,
                    &with_api(
                        &[
                            "list-connections",
                            "name",
                            "user_provided_name",
                            "-o",
                            "tsv",
                        ],
                        &api2,
                    ),
                    None,
                );
                conn_name = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .find_map(|l| l.strip_suffix(&format!("\t{name}")).map(str::to_string))
                    .unwrap_or_default();
                !conn_name.is_empty()
            });
            let args = [
                "list-channels",
                "pid",
                "user",
                "consumer_count",
                "prefetch_count",
                "--name",
                &conn_name,
                "-o",
                "tsv",
            ];
            let want = format!("{conn_name} (1)\tguest\t1\t7");
            let mut listed = String::new();
            // Channel statistics lag on RabbitMQ.
            eventually(WAIT, "the channel listed with its consumer", || {
                listed = ok(&url2, &with_api(&args, &api2), None);
                listed.lines().any(|l| l == want)
            });
            listed
        })
        .await
        .unwrap();
        assert!(
            line.starts_with("pid\tuser\tconsumer_count\tprefetch_count\n"),
            "{url}: {line}"
        );
        assert_eq!(line.lines().count(), 2, "{url}: one channel: {line}");
        let _ = conn.close(200, "done".into()).await;
    }
}

#[test]
fn topology_draws_exchanges_bindings_and_queues() {
    for (url, broker) in targets() {
        let api = api_url(&broker);
        let tag = unique("ops-topo");
        let (x, xh, q1, q2) = (
            format!("{tag}-x"),
            format!("{tag}-xh"),
            format!("{tag}-q1"),
            format!("{tag}-q2"),
        );
        let _q = cleanup(&url, &[&q1, &q2]);
        // A key with characters DOT and Mermaid must escape.
        let odd_key = r#"odd"key\#"#;
        for args in [
            &[
                "declare",
                "exchange",
                &x,
                "--type",
                "topic",
                "--auto-delete",
            ][..],
            &[
                "declare",
                "exchange",
                &xh,
                "--type",
                "headers",
                "--auto-delete",
            ],
            &["declare", "queue", &q1],
            &["declare", "queue", &q2, "--durable"],
            &["bind", &x, &q1, "-k", "a.*"],
            &["bind", &x, &q2, "-k", odd_key],
            &["bind", &x, "--to-exchange", &xh, "-k", "h.#"],
            &[
                "bind",
                &xh,
                &q2,
                "--arguments",
                r#"{"x-match":"any","kind":"report"}"#,
            ],
        ] {
            ok(&url, args, None);
        }
        ok(&url, &["send", &q2, "waiting"], None);
        let _consumer = Running::ready(&url, &["receive", &q1]);
        let topology = |format: &str| {
            ok(
                &url,
                &with_api(&["topology", "--format", format], &api),
                None,
            )
        };
        // Consumer counts and message totals lag on RabbitMQ.
        let mut tree = String::new();
        eventually(WAIT, "the tree with counts", || {
            tree = topology("tree");
            tree.contains(&format!("{q1} (1 consumer, 0 messages)"))
                && tree.contains(&format!("{q2} (0 consumers, 1 message, durable)"))
        });
        for line in [
            format!("exchange {x} (topic, auto-delete)"),
            format!("[a.*] → queue {q1}"),
            format!("[{odd_key}] → queue {q2}"),
            format!("[h.#] → exchange {xh}"),
            format!(r#"[{{"kind":"report","x-match":"any"}}] → queue {q2}"#),
        ] {
            assert!(tree.contains(&line), "{url}: no {line:?} in\n{tree}");
        }

        let dot = topology("dot");
        let mut render = std::process::Command::new("dot");
        render.arg("-Tsvg");
        let svg = run_bounded(render, Some(dot.as_bytes()), WAIT);
        assert!(
            svg.status.success(),
            "{url}: dot -Tsvg failed (is graphviz installed? scripts/test.sh installs it): {}\n{dot}",
            String::from_utf8_lossy(&svg.stderr)
        );
        // Graphviz writes '-' in SVG text as a character reference.
        let svg = String::from_utf8_lossy(&svg.stdout).replace("&#45;", "-");
        for name in [&x, &xh, &q1, &q2] {
            assert!(svg.contains(name.as_str()), "{url}: the SVG names {name}");
        }
        assert!(svg.contains("odd&quot;key\\#"), "{url}: the odd key drawn");

        let mermaid = topology("mermaid");
        assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
        for needle in [
            format!("{{{{\"{x}<br/>topic, auto-delete\"}}}}"),
            format!("[(\"{q1}<br/>1 consumer, 0 messages\")]"),
            "-->|\"odd#quot;key\\#35;\"|".to_string(),
        ] {
            assert!(
                mermaid.contains(&needle),
                "{url}: no {needle:?} in\n{mermaid}"
            );
        }
        let _ = run(&url, &["delete", "exchange", &x], None);
        let _ = run(&url, &["delete", "exchange", &xh], None);
    }
}
