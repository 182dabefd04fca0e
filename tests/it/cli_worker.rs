//! `rmq worker --exec`: acks, requeues, rejects, dead-letters and concurrency, against
//! every target.

use crate::cli_support::{Running, cleanup, code, ok, run};
use crate::support::{targets, unique};

#[test]
fn worker_exec_acks_on_success_and_sees_properties() {
    for (url, _broker) in targets() {
        let q = unique("jobs");
        let _cleanup = cleanup(&url, &[&q]);
        ok(
            &url,
            &[
                "send",
                &q,
                "-H",
                "tenant=acme",
                "--correlation-id",
                "c-1",
                "payload",
            ],
            None,
        );
        let w = Running::start(
            &url,
            &[
                "worker",
                &q,
                "--count",
                "1",
                "--exec",
                "printf '%s|%s|%s|' \"$RMQ_HEADER_TENANT\" \"$RMQ_CORRELATION_ID\" \"$RMQ_ROUTING_KEY\"; cat",
            ],
        );
        let out = w.finish();
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("acme|c-1|{q}|payload"),
            "against {url}"
        );
        // Acked: nothing is left.
        let left = run(
            &url,
            &["receive", &q, "--count", "1", "--timeout", "0.3"],
            None,
        );
        assert_eq!(code(&left), 3, "against {url}");
    }
}

#[test]
fn worker_exec_failure_requeues_or_rejects() {
    for (url, _broker) in targets() {
        let q = unique("jobs");
        let _cleanup = cleanup(&url, &[&q]);
        ok(&url, &["send", &q, "poison"], None);
        // Requeue (the default): the message is back, marked redelivered.
        let out = run(
            &url,
            &["worker", &q, "--count", "1", "--exec", "exit 3"],
            None,
        );
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("requeued"));
        let again = ok(
            &url,
            &[
                "receive",
                &q,
                "--count",
                "1",
                "--requeue",
                "--output",
                "jsonl",
            ],
            None,
        );
        assert!(
            again.contains("\"redelivered\":true") && again.contains("poison"),
            "against {url}: {again}"
        );
        // Reject: gone (no dead-letter exchange configured).
        let out = run(
            &url,
            &[
                "worker",
                &q,
                "--count",
                "1",
                "--on-failure",
                "reject",
                "--exec",
                "exit 3",
            ],
            None,
        );
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        let counts = ok(
            &url,
            &["declare", "queue", &q, "--passive", "--output", "tsv"],
            None,
        );
        assert_eq!(
            counts.lines().nth(1),
            Some(format!("{q}\t0\t0").as_str()),
            "against {url}"
        );
    }
}

#[test]
fn worker_exec_failure_rejects_to_the_dead_letter_queue() {
    for (url, _broker) in targets() {
        let q = unique("jobs");
        let _cleanup = cleanup(&url, &[&q]);
        let dlq = unique("dead");
        let _cleanup2 = cleanup(&url, &[&q, &dlq]);
        ok(&url, &["declare", "queue", &dlq], None);
        let args =
            format!("{{\"x-dead-letter-exchange\":\"\",\"x-dead-letter-routing-key\":\"{dlq}\"}}");
        ok(&url, &["declare", "queue", &q, "--arguments", &args], None);
        ok(&url, &["send", &q, "poison"], None);
        let out = run(
            &url,
            &[
                "worker",
                &q,
                "--count",
                "1",
                "--on-failure",
                "reject",
                "--exec",
                "exit 3",
            ],
            None,
        );
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        let dead = ok(
            &url,
            &["receive", &dlq, "--count", "1", "--output", "jsonl"],
            None,
        );
        assert!(
            dead.contains("\"body\":\"poison\"") && dead.contains("x-death"),
            "against {url}: {dead}"
        );
    }
}

#[test]
fn worker_concurrency_runs_jobs_at_the_same_time() {
    for (url, _broker) in targets() {
        let q = unique("parallel");
        let _cleanup = cleanup(&url, &[&q]);
        let dir = std::env::temp_dir().join(unique("rmq-barrier"));
        std::fs::create_dir_all(&dir).unwrap();
        ok(&url, &["send", &q, "--count", "2", "job"], None);
        // Each job marks its arrival, then waits (bounded) for the other: only two jobs
        // running at once can both succeed; one at a time, the first gives up and fails.
        let script = format!(
            "touch {d}/$RMQ_DELIVERY_TAG; for i in $(seq 200); do [ $(ls {d} | wc -l) -ge 2 ] && exit 0; sleep 0.05; done; exit 1",
            d = dir.display()
        );
        let out = run(
            &url,
            &[
                "worker",
                &q,
                "--concurrency",
                "2",
                "--count",
                "2",
                "--on-failure",
                "reject",
                "--exec",
                &script,
            ],
            None,
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches("[x] Done").count(), 2, "against {url}: {err}");
    }
}
