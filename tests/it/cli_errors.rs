//! Bad input and unavailable brokers: each a clear one-line message and the documented
//! exit code, never a hang.

use crate::cli_support::{cleanup, code, ok, run, stderr};
use crate::support::{Broker, targets, unique};
use std::time::{Duration, Instant};

/// A local port with nothing listening (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn passive_send_to_a_missing_queue_fails_clearly() {
    for (url, _broker) in targets() {
        let q = unique("nowhere");
        let _cleanup = cleanup(&url, &[&q]);
        let out = run(&url, &["send", &q, "--passive", "x"], None);
        assert_eq!(code(&out), 1, "against {url}");
        let err = stderr(&out);
        assert!(
            err.starts_with("rmq: ") && err.contains(&q) && err.contains("does not exist"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        // And it was not created.
        let check = run(&url, &["declare", "queue", &q, "--passive"], None);
        assert_eq!(code(&check), 1, "against {url}");
    }
}

#[test]
fn malformed_url_is_a_data_error() {
    for url in [
        "amqp://guest:guest@127.0.0.1:notaport/%2F",
        "http://localhost/",
        "amqp://h/?heartbeat=soon",
    ] {
        let out = run(url, &["send", "q", "x"], None);
        assert_eq!(code(&out), 65, "{url}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("malformed broker URL"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn unreachable_broker_exits_69_quickly() {
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2F", closed_port());
    let started = Instant::now();
    let out = run(&url, &["receive", "q", "--count", "1"], None);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let err = stderr(&out);
    assert!(
        err.contains("cannot connect to 127.0.0.1") && err.contains("is the broker running"),
        "{err}"
    );
}

#[test]
fn a_host_that_never_answers_exits_69_after_the_connection_timeout() {
    // Accepts TCP (the kernel's backlog) but never speaks AMQP, like a black-holed broker.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2F?connection_timeout=1000");
    let started = Instant::now();
    let out = run(&url, &["send", "q", "x"], None);
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        stderr(&out).contains("no answer within 1s"),
        "{}",
        stderr(&out)
    );
    drop(silent);
}

#[test]
fn an_unknown_host_name_exits_69() {
    let out = run(
        "amqp://guest:guest@no-such-host.invalid:5672/%2F",
        &["send", "q", "x"],
        None,
    );
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot connect to no-such-host.invalid:5672"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn url_comes_from_rmq_url_then_amqp_url() {
    let port = closed_port();
    let mut c = crate::support::rmq();
    c.env("AMQP_URL", format!("amqp://127.0.0.1:{port}/%2F"))
        .args(["send", "q", "x"]);
    let out = crate::support::run_bounded(c, None, crate::support::WAIT);
    assert_eq!(code(&out), 69);
    assert!(
        stderr(&out).contains(&format!("127.0.0.1:{port}")),
        "{}",
        stderr(&out)
    );
    let mut c = crate::support::rmq();
    c.env("AMQP_URL", "amqp://127.0.0.1:1/%2F")
        .env("RMQ_URL", format!("amqp://127.0.0.1:{port}/%2F"))
        .args(["send", "q", "x"]);
    let out = crate::support::run_bounded(c, None, crate::support::WAIT);
    assert!(
        stderr(&out).contains(&format!("127.0.0.1:{port}")),
        "RMQ_URL wins: {}",
        stderr(&out)
    );
}

#[test]
fn wrong_password_is_refused_clearly() {
    for (url, _broker) in targets() {
        let bad = url.replacen("guest:guest@", "guest:wrong@", 1);
        let out = run(&bad, &["send", &unique("q"), "x"], None);
        assert_eq!(code(&out), 77, "against {url}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("cannot log in")
                || stderr(&out).contains("closed the connection"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn invalid_header_syntax_is_a_data_error_and_sends_nothing() {
    for (url, _broker) in targets() {
        let q = unique("hdr");
        let _cleanup = cleanup(&url, &[&q]);
        let out = run(&url, &["send", &q, "-H", "no-equals-sign", "x"], None);
        assert_eq!(code(&out), 65, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("invalid header 'no-equals-sign'"),
            "{}",
            stderr(&out)
        );
        let out = run(&url, &["send", &q, "-H", "n:={oops", "x"], None);
        assert_eq!(code(&out), 65, "{}", stderr(&out));
        let check = run(&url, &["declare", "queue", &q, "--passive"], None);
        assert_eq!(code(&check), 1, "nothing was declared against {url}");
    }
}

#[test]
fn publishing_to_a_missing_exchange_fails_clearly() {
    for (url, _broker) in targets() {
        let x = unique("no-such-exchange");
        let out = run(&url, &["send", "--exchange", &x, "key", "x"], None);
        assert_eq!(code(&out), 1, "against {url}");
        assert!(
            stderr(&out).contains(&format!("no exchange '{x}'")),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn mandatory_unroutable_message_is_a_failure() {
    for (url, _broker) in targets() {
        let x = unique("empty-fanout");
        ok(&url, &["declare", "exchange", &x, "--type", "fanout"], None);
        let out = run(
            &url,
            &["send", "--exchange", &x, "k", "--mandatory", "lost"],
            None,
        );
        assert_eq!(code(&out), 1, "against {url}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("could not be routed"),
            "{}",
            stderr(&out)
        );
        // Without --mandatory the broker drops it silently and that is a success.
        assert_eq!(
            code(&run(&url, &["send", "--exchange", &x, "k", "lost"], None)),
            0
        );
    }
}

/// Send a body one byte over `limit` after a normal message; the big one must be refused
/// with a clear error, the count of confirmed messages reported, and nothing of it queued.
fn oversized_message_is_refused(url: &str, limit: u64) {
    let q = unique("big");
    let _cleanup = cleanup(url, &[&q]);
    let dir = std::env::temp_dir().join(unique("rmq-big"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body");
    let f = std::fs::File::create(&file).unwrap();
    f.set_len(limit + 1).unwrap();
    drop(f);
    ok(url, &["send", &q, "small"], None);
    let out = run(url, &["send", &q, "--file", file.to_str().unwrap()], None);
    let _ = std::fs::remove_dir_all(&dir);
    assert_ne!(code(&out), 0, "against {url}");
    let err = stderr(&out);
    assert!(
        err.contains("0 of 1 messages were confirmed") && err.to_lowercase().contains("size"),
        "{err}"
    );
    // Only the small message is there.
    let counts = ok(
        url,
        &["declare", "queue", &q, "--passive", "--output", "tsv"],
        None,
    );
    assert_eq!(
        counts.lines().nth(1).unwrap(),
        format!("{q}\t1\t0"),
        "against {url}"
    );
}

#[test]
fn oversized_message_is_refused_by_the_embedded_broker() {
    let broker = Broker::start_with(|c| c.max_message_size = 64 * 1024);
    oversized_message_is_refused(&broker.url(), 64 * 1024);
}

#[test]
fn oversized_message_is_refused_by_rabbitmq() {
    let Ok(url) = std::env::var("RMQ_TEST_RABBITMQ_URL") else {
        eprintln!("skipped: RMQ_TEST_RABBITMQ_URL is not set");
        return;
    };
    // RabbitMQ 3.10's default max_message_size: 128 MiB.
    oversized_message_is_refused(&url, 128 * 1024 * 1024);
}

#[test]
fn strict_delete_of_a_missing_queue_fails_but_if_exists_succeeds() {
    for (url, _broker) in targets() {
        let q = unique("gone");
        let _cleanup = cleanup(&url, &[&q]);
        let out = run(&url, &["delete", "queue", &q], None);
        assert_eq!(code(&out), 1, "against {url}");
        assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
        assert_eq!(
            code(&run(&url, &["delete", "queue", &q, "--if-exists"], None)),
            0
        );
        let x = unique("gone-x");
        assert_eq!(code(&run(&url, &["delete", "exchange", &x], None)), 1);
        assert_eq!(
            code(&run(&url, &["delete", "exchange", &x, "--if-exists"], None)),
            0
        );
    }
}

#[test]
fn receive_with_count_and_timeout_exits_3_when_short() {
    for (url, _broker) in targets() {
        let q = unique("short");
        let _cleanup = cleanup(&url, &[&q]);
        ok(&url, &["send", &q, "only one"], None);
        let out = run(
            &url,
            &["receive", &q, "--count", "2", "--timeout", "0.5"],
            None,
        );
        assert_eq!(code(&out), 3, "against {url}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "only one\n");
        assert!(stderr(&out).contains("received 1 of 2"), "{}", stderr(&out));
    }
}

#[test]
fn list_queues_without_a_management_api_names_the_plugin() {
    let api = format!("http://127.0.0.1:{}", closed_port());
    let out = run(
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        &["list-queues", "--api-url", &api],
        None,
    );
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("rabbitmq-plugins enable rabbitmq_management"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = run("amqp://127.0.0.1:1/%2F", &["receive"], None);
    assert_eq!(code(&out), 2);
    let out = run(
        "amqp://127.0.0.1:1/%2F",
        &["send", "q", "--count", "many", "x"],
        None,
    );
    assert_eq!(code(&out), 2);
}

#[test]
fn broker_going_away_mid_receive_exits_69() {
    let broker = Broker::start();
    let url = broker.url();
    // --no-reconnect: this is about the code; reconnecting is cli_resilience's.
    let r = crate::cli_support::Running::ready(&url, &["--no-reconnect", "receive", &unique("q")]);
    drop(broker);
    let out = r.finish();
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with("rmq: ") && l.contains("CONNECTION_FORCED")),
        "{err}"
    );
}
