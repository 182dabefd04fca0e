//! The six RabbitMQ tutorials as `rmq` one-liners, end to end, against every target
//! (the embedded broker, and RabbitMQ when `RMQ_TEST_RABBITMQ_URL` is set).

use crate::cli_support::{Running, cleanup, code, ok, run};
use crate::support::{targets, unique};

#[test]
fn tutorial_1_hello_world() {
    for (url, _broker) in targets() {
        let q = unique("hello");
        let _cleanup = cleanup(&url, &[&q]);
        ok(&url, &["send", &q, "Hello", "World!"], None);
        let out = ok(&url, &["receive", &q, "--count", "1"], None);
        assert_eq!(out, "Hello World!\n", "against {url}");
    }
}

#[test]
fn tutorial_2_workers_share_tasks_fairly() {
    for (url, _broker) in targets() {
        let q = unique("task_queue");
        let _cleanup = cleanup(&url, &[&q]);
        ok(&url, &["declare", "queue", &q, "--durable"], None);
        let a = Running::ready(&url, &["worker", &q, "--dot-time", "0.3"]);
        let b = Running::ready(&url, &["worker", &q, "--dot-time", "0.3"]);
        // One long task, then three quick ones: with prefetch 1 the worker busy with the
        // long one gets nothing else (fair dispatch); plain round-robin would give it one.
        ok(
            &url,
            &["send", &q, "--persistent", "--lines"],
            Some(b"long.....\nquick 1\nquick 2\nquick 3\n"),
        );
        let done = |r: &Running| r.stdout().matches("[x] Done").count();
        crate::support::eventually(crate::support::WAIT, "four tasks done", || {
            done(&a) + done(&b) == 4
        });
        let (a, b) = (a.interrupt(), b.interrupt());
        let (a, b) = (
            String::from_utf8_lossy(&a.stdout).into_owned(),
            String::from_utf8_lossy(&b.stdout).into_owned(),
        );
        let (slow, fast) = if a.contains("long") { (a, b) } else { (b, a) };
        assert_eq!(
            slow.matches("Received").count(),
            1,
            "the busy worker took more: {slow}"
        );
        assert_eq!(fast.matches("Received").count(), 3, "against {url}: {fast}");
    }
}

#[test]
fn tutorial_2_killed_worker_task_is_redelivered() {
    for (url, _broker) in targets() {
        let q = unique("task_queue");
        let _cleanup = cleanup(&url, &[&q]);
        ok(&url, &["declare", "queue", &q, "--durable"], None);
        // Ten seconds of simulated work: it is killed long before it finishes.
        let mut a = Running::ready(&url, &["worker", &q, "--dot-time", "1"]);
        ok(
            &url,
            &["send", &q, "--persistent", "precious.........."],
            None,
        );
        a.wait_stdout("Received 'precious");
        let b = Running::ready(&url, &["worker", &q, "--dot-time", "0", "--count", "1"]);
        let killed = a.kill();
        assert!(!String::from_utf8_lossy(&killed.stdout).contains("Done"));
        let b = b.finish();
        assert_eq!(
            code(&b),
            0,
            "against {url}: {}",
            String::from_utf8_lossy(&b.stderr)
        );
        let out = String::from_utf8_lossy(&b.stdout);
        assert!(
            out.contains("Received 'precious..........'") && out.contains("[x] Done"),
            "{out}"
        );
    }
}

#[test]
fn tutorial_3_fanout_reaches_every_receiver() {
    for (url, _broker) in targets() {
        let x = unique("logs");
        let r1 = Running::ready(&url, &["receive", "--exchange", &x, "--count", "1"]);
        let r2 = Running::ready(&url, &["receive", "--exchange", &x, "--count", "1"]);
        ok(
            &url,
            &["emit-log", "--exchange", &x, "info: Hello World!"],
            None,
        );
        for r in [r1, r2] {
            let out = r.finish();
            assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "info: Hello World!\n",
                "against {url}"
            );
        }
    }
}

/// Publish `(key, body)` pairs one after another (each confirmed, so queue order is send order).
fn emit_all(url: &str, exchange: &str, kind: &str, messages: &[(&str, &str)]) {
    for (key, body) in messages {
        ok(
            url,
            &[
                "emit-log",
                "--exchange",
                exchange,
                "--type",
                kind,
                "-k",
                key,
                body,
            ],
            None,
        );
    }
}

fn lines(out: std::process::Output) -> Vec<String> {
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn tutorial_4_direct_routing_by_severity() {
    for (url, _broker) in targets() {
        let x = unique("direct_logs");
        let errors = Running::ready(
            &url,
            &[
                "receive",
                "--exchange",
                &x,
                "--type",
                "direct",
                "-k",
                "warning",
                "-k",
                "error",
                "--count",
                "3",
            ],
        );
        let all = Running::ready(
            &url,
            &[
                "receive",
                "--exchange",
                &x,
                "--type",
                "direct",
                "-k",
                "info",
                "-k",
                "warning",
                "-k",
                "error",
                "--count",
                "4",
            ],
        );
        // The last message is a sentinel both receive: anything misrouted before it would
        // take its place in the count.
        emit_all(
            &url,
            &x,
            "direct",
            &[
                ("info", "i"),
                ("debug", "d"),
                ("warning", "w"),
                ("error", "e"),
                ("error", "end"),
            ],
        );
        assert_eq!(lines(errors.finish()), ["w", "e", "end"], "against {url}");
        assert_eq!(lines(all.finish()), ["i", "w", "e", "end"], "against {url}");
    }
}

#[test]
fn tutorial_5_topic_routing_with_the_tutorial_keys() {
    for (url, _broker) in targets() {
        let x = unique("topic_logs");
        let q1 = Running::ready(
            &url,
            &[
                "receive",
                "--exchange",
                &x,
                "--type",
                "topic",
                "-k",
                "*.orange.*",
                "--count",
                "4",
            ],
        );
        let q2 = Running::ready(
            &url,
            &[
                "receive",
                "--exchange",
                &x,
                "--type",
                "topic",
                "-k",
                "*.*.rabbit",
                "-k",
                "lazy.#",
                "--count",
                "6",
            ],
        );
        let keys = [
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "quick.orange.fox",
            "lazy.brown.fox",
            "lazy.pink.rabbit", // matches both of Q2's bindings: delivered once
            "quick.brown.fox",  // nobody
            "quick.orange.male.rabbit", // four words: nobody
            "lazy.orange.male.rabbit", // lazy.# only
            "lazy.orange.end",  // sentinel for both
        ];
        let messages: Vec<(&str, &str)> = keys.iter().map(|k| (*k, *k)).collect();
        emit_all(&url, &x, "topic", &messages);
        assert_eq!(
            lines(q1.finish()),
            [
                "quick.orange.rabbit",
                "lazy.orange.elephant",
                "quick.orange.fox",
                "lazy.orange.end"
            ],
            "against {url}"
        );
        assert_eq!(
            lines(q2.finish()),
            [
                "quick.orange.rabbit",
                "lazy.orange.elephant",
                "lazy.brown.fox",
                "lazy.pink.rabbit",
                "lazy.orange.male.rabbit",
                "lazy.orange.end"
            ],
            "against {url}"
        );
    }
}

#[test]
fn tutorial_6_rpc_with_concurrent_calls() {
    for (url, _broker) in targets() {
        let q = unique("rpc_queue");
        let _cleanup = cleanup(&url, &[&q]);
        let server = Running::ready(&url, &["rpc-serve", &q, "--fib", "--count", "4"]);
        let out = ok(
            &url,
            &["rpc-call", &q, "30", "1", "10", "20", "--timeout", "15"],
            None,
        );
        assert_eq!(out, "832040\n1\n55\n6765\n", "against {url}");
        let server = server.finish();
        assert_eq!(
            code(&server),
            0,
            "{}",
            String::from_utf8_lossy(&server.stderr)
        );
    }
}

#[test]
fn rpc_serve_exec_replies_with_the_command_output() {
    for (url, _broker) in targets() {
        let q = unique("upper");
        let _cleanup = cleanup(&url, &[&q]);
        let server = Running::ready(
            &url,
            &["rpc-serve", &q, "--exec", "tr a-z A-Z", "--count", "2"],
        );
        let out = ok(&url, &["rpc-call", &q, "hello", "world"], None);
        assert_eq!(out, "HELLO\nWORLD\n", "against {url}");
        assert_eq!(code(&server.finish()), 0);
    }
}

#[test]
fn rpc_call_without_a_server_times_out_with_exit_3() {
    for (url, _broker) in targets() {
        let q = unique("silent");
        let _cleanup = cleanup(&url, &[&q]);
        ok(&url, &["declare", "queue", &q], None);
        let out = run(&url, &["rpc-call", &q, "1", "--timeout", "0.5"], None);
        assert_eq!(
            code(&out),
            3,
            "against {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("no reply"));
    }
}
