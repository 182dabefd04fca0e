//! `rmq tail` / `rmq tap`: a private copy of what flows through an exchange, while the
//! exchange's real consumers still get every message.

use crate::cli_support::{Running, cleanup, code, ok, run, stderr};
use crate::support::{targets, unique};

/// The private queue's name from the ready line (`... in 'amq.gen-...'.`).
fn tap_queue(stderr: &str) -> String {
    let start = stderr.find(" in '").expect("ready line names the queue") + 5;
    let len = stderr[start..].find('\'').unwrap();
    stderr[start..start + len].to_string()
}

#[test]
fn tail_sees_what_flows_while_consumers_keep_their_messages() {
    for (url, _broker) in targets() {
        let (x, q) = (unique("tail-x"), unique("tail-q"));
        let _cleanup = cleanup(&url, &[&q]);
        ok(&url, &["declare", "exchange", &x, "--type", "topic"], None);
        ok(&url, &["declare", "queue", &q], None);
        ok(&url, &["bind", &x, &q, "-k", "order.*"], None);
        let consumer = Running::ready(&url, &["receive", &q, "--count", "3"]);
        let tail = Running::ready(
            &url,
            &[
                "tail",
                &x,
                "-k",
                "order.#",
                "--count",
                "3",
                "--format",
                "{routing_key}={body}|{headers.tenant}",
            ],
        );
        let everything = Running::ready(&url, &["tap", &x, "--count", "4", "-o", "jsonl"]);
        let tap_q = tap_queue(&tail.stderr());
        for (key, body) in [
            ("order.new", "one"),
            ("audit.x", "not an order"),
            ("order.paid", "two"),
            ("order.sent", "three"),
        ] {
            ok(
                &url,
                &[
                    "emit-log",
                    "--exchange",
                    &x,
                    "--type",
                    "topic",
                    "-k",
                    key,
                    "-H",
                    "tenant=acme",
                    body,
                ],
                None,
            );
        }
        let out = tail.finish();
        assert_eq!(code(&out), 0, "against {url}: {}", stderr(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "order.new=one|acme\norder.paid=two|acme\norder.sent=three|acme\n",
            "against {url}"
        );
        let out = consumer.finish();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "one\ntwo\nthree\n",
            "against {url}: the real consumer lost messages to the tap"
        );
        let out = everything.finish();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            4,
            "'#' by default"
        );
        // The tap's queue went away with it.
        let out = run(&url, &["declare", "queue", &tap_q, "--passive"], None);
        assert_eq!(
            code(&out),
            1,
            "against {url}: {tap_q} still exists: {}",
            stderr(&out)
        );
        ok(&url, &["delete", "exchange", &x], None);
    }
}

#[test]
fn tail_of_a_fanout_ends_like_receive_and_never_creates_exchanges() {
    for (url, _broker) in targets() {
        let x = unique("tail-fan");
        let missing = unique("tail-missing");
        let out = run(&url, &["tail", &missing, "--timeout", "5"], None);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
        let out = run(&url, &["tail", &missing, "--timeout", "5"], None);
        assert_eq!(
            code(&out),
            1,
            "the first tail must not have declared it: {}",
            stderr(&out)
        );

        ok(&url, &["declare", "exchange", &x, "--type", "fanout"], None);
        let tail = Running::ready(&url, &["tail", &x, "--count", "2", "--timeout", "20"]);
        ok(&url, &["emit-log", "--exchange", &x, "hello"], None);
        ok(&url, &["emit-log", "--exchange", &x, "again"], None);
        let out = tail.finish();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello\nagain\n",
            "against {url}"
        );
        let out = run(
            &url,
            &["tail", &x, "--count", "1", "--timeout", "0.5"],
            None,
        );
        assert_eq!(code(&out), 3, "nothing flowed: {}", stderr(&out));
        ok(&url, &["delete", "exchange", &x], None);
    }
}
