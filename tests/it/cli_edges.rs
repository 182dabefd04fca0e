//! Clients in production (issue #15): the management API of another broker is refused,
//! `rmq serve` tells clients both its ports, `tail` refuses what would wait forever, an
//! HTTP port is named as such, and `send` makes the broker log no channel error.

use crate::cli_support::{cleanup, code, ok, run, stderr};
use crate::support::{Broker, WAIT, eventually, rmq, targets, unique};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

/// The RabbitMQ under test, when `RMQ_TEST_RABBITMQ_URL` names one.
fn rabbitmq() -> Option<String> {
    std::env::var("RMQ_TEST_RABBITMQ_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// The embedded broker's URL with its API port (`?api_port=`), RabbitMQ's as it is: both
/// then reach their own management API.
fn with_api(url: &str, broker: &Option<Broker>) -> String {
    match broker {
        Some(b) => format!("{url}?api_port={}", b.mgmt_addr.port()),
        None => url.to_string(),
    }
}

/// One line on stderr, `rmq: `-prefixed, with the given exit code.
fn one_line_error(out: &std::process::Output, exit: i32) -> String {
    let err = stderr(out);
    assert_eq!(code(out), exit, "stderr: {err}");
    assert!(err.starts_with("rmq: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn list_queues_refuses_the_api_of_another_broker() {
    let (mine, other) = (Broker::start(), Broker::start());
    let q = unique("edges-mine");
    ok(&mine.url(), &["declare", "queue", &q], None);
    // The URL names `mine`; the API it leads to is `other`'s.
    let wrong = format!("{}?api_port={}", mine.url(), other.mgmt_addr.port());
    for cmd in [&["list-queues"][..], &["overview"], &["list-exchanges"]] {
        let err = one_line_error(&run(&wrong, cmd, None), 78);
        assert!(
            err.contains("belongs to another broker")
                && err.contains(&mine.addr.port().to_string())
                && err.contains("--api-url"),
            "{err}"
        );
    }
    // Its own API port, from the URL: its own queues.
    let right = format!("{}?api_port={}", mine.url(), mine.mgmt_addr.port());
    assert!(ok(&right, &["list-queues"], None).contains(&q));
    // The URL's extra parameter does not disturb AMQP.
    ok(&right, &["send", &q, "still AMQP"], None);
    // An explicit --api-url is taken as given (a port mapping may hide the real port).
    let explicit = ok(
        &mine.url(),
        &["list-queues", "--api-url", &other.api_url()],
        None,
    );
    assert!(!explicit.contains(&q), "{explicit}");
    let bad = one_line_error(
        &run(
            &format!("{}?api_port=x", mine.url()),
            &["list-queues"],
            None,
        ),
        65,
    );
    assert!(bad.contains("api_port"), "{bad}");
    // The reported case: rmq serve on free ports, RabbitMQ's API on the default 15672.
    if rabbitmq().is_some() {
        let err = one_line_error(&run(&mine.url(), &["list-queues"], None), 78);
        assert!(err.contains("15672") && err.contains("5672"), "{err}");
    }
}

#[test]
fn rabbitmq_passes_the_api_check() {
    let Some(url) = rabbitmq() else { return };
    let q = unique("edges-rabbit");
    let _cleanup = cleanup(&url, &[&q]);
    ok(&url, &["declare", "queue", &q], None);
    assert!(ok(&url, &["list-queues"], None).contains(&q));
}

/// `rmq serve --port 0 --mgmt-port 0` as a process: its stdout lines and stderr text.
struct Serve {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    fn start() -> Serve {
        let mut child = rmq()
            .args(["serve", "--port", "0", "--mgmt-port", "0", "--in-memory"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rmq serve");
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (mut err, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Serve {
            child,
            lines,
            stderr,
        }
    }

    /// The next stdout line containing `needle` (bounded by WAIT).
    fn line(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "rmq serve printed no line with {needle:?}; stderr: {}",
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Wait until stderr contains `needle`.
    fn wait_stderr(&self, needle: &str) {
        eventually(WAIT, &format!("rmq serve to log {needle:?}"), || {
            self.stderr.lock().unwrap().contains(needle)
        });
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_prints_a_client_url_that_finds_its_own_api() {
    let serve = Serve::start();
    let amqp = serve.line("listening on amqp://");
    let port = amqp.rsplit(':').next().unwrap().trim().to_string();
    let export = serve.line("for rmq clients");
    let url = export
        .split('\'')
        .nth(1)
        .expect("the line quotes the URL")
        .to_string();
    assert!(
        url.contains(&format!(":{port}/")) && url.contains("?api_port="),
        "{url}"
    );
    let q = unique("edges-serve");
    ok(&url, &["send", &q, "x"], None);
    assert!(ok(&url, &["list-queues"], None).contains(&q));
    // Its overview lists the AMQP port it really bound (asked for port 0).
    let overview = ok(&url, &["overview", "--output", "json"], None);
    assert!(
        overview.contains(&format!("amqp 127.0.0.1:{port}")),
        "{overview}"
    );
}

#[test]
fn tail_refuses_what_would_wait_forever() {
    for (url, broker) in targets() {
        let url = with_api(&url, &broker);
        let x = unique("edges-direct");
        ok(&url, &["declare", "exchange", &x, "--type", "direct"], None);
        // A direct exchange has no "everything": '#' would match nothing, forever.
        for name in [x.as_str(), "amq.direct"] {
            let out = run(&url, &["tail", name, "--timeout", "10"], None);
            let err = one_line_error(&out, 2);
            assert!(
                err.contains("direct exchange") && err.contains("-k"),
                "{err}"
            );
        }
        // With keys it tails.
        let out = run(&url, &["tail", &x, "-k", "a", "--timeout", "1"], None);
        assert_eq!(code(&out), 3, "{}", stderr(&out));
        // The default exchange cannot be bound at all: said so, not "does not exist".
        for name in ["", "amq.default"] {
            let err = one_line_error(&run(&url, &["tail", name], None), 2);
            assert!(
                err.contains("default exchange") && err.contains("bound"),
                "{err}"
            );
        }
        ok(&url, &["delete", "exchange", &x], None);
    }
}

#[test]
fn an_http_port_is_named_not_parsed() {
    let broker = Broker::start();
    let mut ports = vec![broker.mgmt_addr.to_string()];
    if rabbitmq().is_some() {
        ports.push("127.0.0.1:15672".into());
    }
    for port in ports {
        let url = format!("amqp://guest:guest@{port}/%2F");
        let err = one_line_error(&run(&url, &["send", "q", "x"], None), 69);
        assert!(
            err.contains(&format!("cannot connect to {port}"))
                && err.contains("not with AMQP 0-9-1 (HTTP?)")
                && !err.contains("Parser")
                && !err.contains("amqps"),
            "{err}"
        );
    }
}

#[test]
fn send_makes_rmq_serve_log_no_channel_error() {
    let serve = Serve::start();
    let url = serve
        .line("for rmq clients")
        .split('\'')
        .nth(1)
        .unwrap()
        .to_string();
    let (q, durable) = (unique("edges-new"), unique("edges-durable"));
    ok(&url, &["send", &q, "to a new queue"], None);
    ok(&url, &["send", &q, "to an existing queue"], None);
    ok(&url, &["send", &durable, "--durable", "durable, new"], None);
    ok(
        &url,
        &["send", &durable, "--durable", "durable, existing"],
        None,
    );
    // An existing queue is used whatever its flags, and without a refused declare.
    ok(&url, &["send", &durable, "without --durable"], None);
    // Nothing to send: the queue is still declared.
    let empty = unique("edges-empty");
    ok(&url, &["send", &empty, "--lines"], Some(b""));
    // A deliberate 404 marks the end of what the sends could have logged.
    let marker = unique("edges-marker");
    let out = run(&url, &["send", &marker, "--passive", "x"], None);
    assert_eq!(code(&out), 1);
    serve.wait_stderr(&marker);
    let log = serve.stderr.lock().unwrap().clone();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("channel error"))
        .collect();
    assert_eq!(errors.len(), 1, "only the marker's: {errors:?}");
    let counts = ok(&url, &["list-queues", "name", "messages"], None);
    assert!(counts.contains(&format!("{q}\t2")), "{counts}");
    assert!(counts.contains(&format!("{durable}\t3")), "{counts}");
    assert!(counts.contains(&format!("{empty}\t0")), "{counts}");
}

#[test]
fn send_makes_rabbitmq_log_no_channel_error() {
    let Some(url) = rabbitmq() else { return };
    // RabbitMQ's own log, when this test may read it (CI runs it on the same machine).
    let Some(log) = std::fs::read_dir("/var/log/rabbitmq").ok().and_then(|d| {
        d.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.extension().is_some_and(|x| x == "log") && !p.to_string_lossy().contains("upgrade")
        })
    }) else {
        return;
    };
    let (q, durable) = (unique("edges-new"), unique("edges-durable"));
    let _cleanup = cleanup(&url, &[&q, &durable]);
    ok(&url, &["send", &q, "to a new queue"], None);
    ok(&url, &["send", &q, "to an existing queue"], None);
    ok(&url, &["send", &durable, "--durable", "durable, new"], None);
    ok(
        &url,
        &["send", &durable, "--durable", "durable, existing"],
        None,
    );
    ok(&url, &["send", &durable, "without --durable"], None);
    let marker = unique("edges-marker");
    assert_eq!(
        code(&run(&url, &["send", &marker, "--passive", "x"], None)),
        1
    );
    let mut text = String::new();
    eventually(WAIT, "RabbitMQ to log the marker's 404", || {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains(&marker)
    });
    for name in [&q, &durable] {
        assert!(
            !text.contains(name.as_str()),
            "RabbitMQ logged an error for {name}"
        );
    }
}

#[test]
fn large_bodies_arrive_intact_and_are_not_echoed() {
    // 20 MiB: past the allocator's 16 MiB threshold, so the receiving buffer grows by
    // mremap in the real binary; bytes of every value, so JSON needs base64.
    let body: Vec<u8> = (0..20 << 20)
        .map(|i: u32| (i * 7 + i / 251) as u8)
        .collect();
    let dir = std::env::temp_dir().join(unique("edges-large"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body.bin");
    std::fs::write(&file, &body).unwrap();
    for (url, _broker) in targets() {
        let q = unique("edges-large");
        let _cleanup = cleanup(&url, &[&q]);
        let path = file.to_str().unwrap();
        let out = run(&url, &["send", &q, "--file", path, "-n", "2"], None);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let out = run(&url, &["send", &q, "--file", path], None);
        let err = stderr(&out);
        assert!(
            err.contains(&format!("a message of {} bytes", body.len())),
            "{err}"
        );
        assert!(
            err.len() < 200,
            "the body is not echoed: {} bytes",
            err.len()
        );
        let out = run(
            &url,
            &["receive", &q, "--count", "1", "--output", "raw"],
            None,
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(out.stdout.len(), body.len() + 1, "the body and a newline");
        assert!(out.stdout[..body.len()] == body[..], "raw body differs");
        let saved = dir.join(unique("saved"));
        let args = [
            "receive",
            &q,
            "--count",
            "1",
            "--save-dir",
            saved.to_str().unwrap(),
        ];
        assert_eq!(code(&run(&url, &args, None)), 0);
        assert!(std::fs::read(saved.join("000001.body")).unwrap() == body);
        let line = std::fs::read_to_string(saved.join("000001.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(json["body_encoding"], "base64");
        let out = run(&url, &["receive", &q, "--count", "1", "-o", "jsonl"], None);
        assert!(
            out.stdout == line.as_bytes(),
            "jsonl output equals the saved line"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
