//! Output formats: lossless JSON lines, line-per-message sending, machine output without
//! terminal escapes, quiet broken pipes, and list-queues over the management API.

use crate::cli_support::{Running, cleanup, code, ok, run, stderr};
use crate::support::{WAIT, eventually, targets, unique};
use serde_json::Value;

#[test]
fn jsonl_round_trip_is_lossless() {
    for (url, _broker) in targets() {
        let (a, b) = (unique("jsonl-a"), unique("jsonl-b"));
        let _cleanup = cleanup(&url, &[&a, &b]);
        let dir = std::env::temp_dir().join(unique("rmq-bin"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("body");
        let binary: Vec<u8> = (0..=255u8).rev().collect(); // not UTF-8
        std::fs::write(&file, &binary).unwrap();
        let path = file.to_str().unwrap();
        ok(
            &url,
            &[
                "send",
                &a,
                "--file",
                path,
                "-H",
                "text=plain",
                "-H",
                "n:={\"$type\":\"i32\",\"value\":-7}",
                "-H",
                "big:=9007199254740993",
                "-H",
                "flag:=true",
                "-H",
                "nested:={\"list\":[1,\"two\",{\"$type\":\"u8\",\"value\":3}]}",
                "--content-type",
                "application/octet-stream",
                "--correlation-id",
                "corr",
                "--message-id",
                "m-1",
                "--type",
                "kind",
                "--app-id",
                "tests",
                "--priority",
                "3",
                "--timestamp",
                "1700000000",
                "--expiration",
                "600000",
                "--persistent",
            ],
            None,
        );
        let _ = std::fs::remove_dir_all(&dir);
        let first = ok(
            &url,
            &["receive", &a, "--count", "1", "--output", "jsonl"],
            None,
        );
        let m: Value = serde_json::from_str(first.trim()).unwrap();
        assert_eq!(m["body_encoding"], "base64", "{first}");
        assert_eq!(
            m["properties"]["headers"]["n"],
            serde_json::json!({"$type": "i32", "value": -7})
        );
        assert_eq!(
            m["properties"]["headers"]["big"],
            serde_json::json!(9007199254740993i64)
        );
        assert_eq!(m["routing_key"], a.as_str());
        assert_eq!(m["redelivered"], false);

        ok(
            &url,
            &["send", &b, "--input", "jsonl"],
            Some(first.as_bytes()),
        );
        let second = ok(
            &url,
            &["receive", &b, "--count", "1", "--output", "jsonl"],
            None,
        );
        let mut m2: Value = serde_json::from_str(second.trim()).unwrap();
        assert_eq!(m2["routing_key"], b.as_str());
        m2["routing_key"] = Value::from(a.as_str());
        assert_eq!(m2, m, "against {url}: the copy differs from the original");

        // And the body really is the bytes we sent.
        let raw = run(
            &url,
            &["send", &a, "--input", "jsonl"],
            Some(first.as_bytes()),
        );
        assert_eq!(code(&raw), 0);
        let body = run(
            &url,
            &["receive", &a, "--count", "1", "--output", "raw"],
            None,
        );
        assert_eq!(&body.stdout[..binary.len()], &binary[..], "against {url}");
    }
}

#[test]
fn bad_jsonl_input_sends_nothing() {
    for (url, _broker) in targets() {
        let q = unique("jsonl-bad");
        let _cleanup = cleanup(&url, &[&q]);
        ok(&url, &["declare", "queue", &q], None);
        let input = b"{\"body\":\"fine\"}\n{\"body\":\"x\",\"body_encoding\":\"rot13\"}\n";
        let out = run(&url, &["send", &q, "--input", "jsonl"], Some(input));
        assert_eq!(code(&out), 65, "{}", stderr(&out));
        assert!(stderr(&out).contains("input line 2"), "{}", stderr(&out));
        let counts = ok(
            &url,
            &["declare", "queue", &q, "--passive", "--output", "jsonl"],
            None,
        );
        let row: Value = serde_json::from_str(counts.trim()).unwrap();
        assert_eq!(row["messages"], 0, "against {url}");
    }
}

#[test]
fn send_lines_then_receive_count() {
    for (url, _broker) in targets() {
        let q = unique("lines");
        let _cleanup = cleanup(&url, &[&q]);
        let input: String = (1..=1000).map(|i| format!("line {i}\n")).collect();
        ok(&url, &["send", &q, "--lines"], Some(input.as_bytes()));
        let out = ok(&url, &["receive", &q, "--count", "1000"], None);
        assert_eq!(out, input, "against {url}");
        // --count repeats.
        ok(&url, &["send", &q, "--count", "3", "again"], None);
        assert_eq!(
            ok(&url, &["receive", &q, "--count", "3"], None),
            "again\nagain\nagain\n"
        );
    }
}

#[test]
fn machine_output_has_no_escape_codes() {
    for (url, _broker) in targets() {
        let q = unique("plain");
        let _cleanup = cleanup(&url, &[&q]);
        for no_color in [true, false] {
            let mut c = crate::cli_support::cmd(&url, &["declare", "queue", &q]);
            if !no_color {
                c.env_remove("NO_COLOR"); // not a terminal is enough
            }
            let out = crate::support::run_bounded(c, None, WAIT);
            assert_eq!(code(&out), 0);
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!("name\tmessages\tconsumers\n{q}\t0\t0\n")
            );
            let mut c = crate::cli_support::cmd(&url, &["delete", "queue", &unique("missing")]);
            if !no_color {
                c.env_remove("NO_COLOR");
            }
            let out = crate::support::run_bounded(c, None, WAIT);
            assert!(
                !out.stderr.contains(&0x1b) && !out.stdout.contains(&0x1b),
                "escape codes in {:?}",
                stderr(&out)
            );
        }
        let json = ok(&url, &["purge", &q, "--output", "json"], None);
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["purged"], 0);
    }
}

#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    for (url, _broker) in targets() {
        let q = unique("pipe");
        let _cleanup = cleanup(&url, &[&q]);
        let line = "x".repeat(200);
        let input: String = (0..2000).map(|_| format!("{line}\n")).collect();
        ok(&url, &["send", &q, "--lines"], Some(input.as_bytes()));
        let mut c = crate::cli_support::cmd(&url, &["receive", &q, "--count", "2000"]);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        // Read one chunk, then hang up like `| head -1`.
        let mut stdout = child.stdout.take().unwrap();
        let mut buf = [0u8; 1024];
        let _ = std::io::Read::read(&mut stdout, &mut buf).unwrap();
        drop(stdout);
        let out = crate::support::wait_bounded(child, WAIT);
        assert_eq!(code(&out), 0, "against {url}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("rmq:"),
            "no error line: {}",
            stderr(&out)
        );
    }
}

#[test]
fn receive_stops_on_ctrl_c_with_exit_130() {
    for (url, _broker) in targets() {
        let q = unique("ctrl-c");
        let _cleanup = cleanup(&url, &[&q]);
        let r = Running::ready(&url, &["receive", &q]);
        let out = r.interrupt();
        assert_eq!(code(&out), 130, "against {url}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("rmq:"),
            "no error line: {}",
            stderr(&out)
        );
    }
}

#[test]
fn list_queues_over_the_management_api() {
    let Ok(url) = std::env::var("RMQ_TEST_RABBITMQ_URL") else {
        eprintln!(
            "skipped: list-queues needs RabbitMQ's management API (set RMQ_TEST_RABBITMQ_URL)"
        );
        return;
    };
    let q = unique("listed");
    let _cleanup = cleanup(&url, &[&q]);
    ok(&url, &["send", &q, "--durable", "--count", "2", "x"], None);
    // The management API's statistics lag behind by a few seconds: poll.
    let mut last = String::new();
    eventually(WAIT, "the queue listed with 2 messages", || {
        last = ok(
            &url,
            &[
                "list-queues",
                "name",
                "messages",
                "durable",
                "--output",
                "jsonl",
            ],
            None,
        );
        last.lines().any(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| {
                v["name"] == q.as_str() && v["messages"] == 2 && v["durable"] == true
            })
        })
    });
    let tsv = ok(&url, &["list-queues"], None);
    assert!(tsv.starts_with("name\tmessages\n"), "{tsv}");
    assert!(tsv.contains(&format!("{q}\t")), "{tsv}");
    ok(&url, &["delete", "queue", &q], None);
}

/// `--no-ack` with an end takes only what it prints: a no-ack consumer has no prefetch
/// limit, so the broker would push the whole queue and the rest would be lost.
#[test]
fn no_ack_with_a_count_takes_only_what_it_prints() {
    for (url, _broker) in targets() {
        let q = unique("noack");
        let _cleanup = cleanup(&url, &[&q]);
        ok(&url, &["send", &q, "--lines"], Some(b"1\n2\n3\n4\n5\n"));
        let first = ok(&url, &["receive", &q, "--no-ack", "--count", "1"], None);
        assert_eq!(first, "1\n", "{url}");
        let idle = run(
            &url,
            &[
                "receive",
                &q,
                "--no-ack",
                "--idle-timeout",
                "1",
                "--count",
                "9",
            ],
            None,
        );
        assert_eq!(
            String::from_utf8_lossy(&idle.stdout),
            "2\n3\n4\n5\n",
            "{url}"
        );
        assert_eq!(code(&idle), 3, "fewer than --count: {}", stderr(&idle));
        let left = run(&url, &["receive", &q, "--idle-timeout", "1"], None);
        assert_eq!(
            String::from_utf8_lossy(&left.stdout),
            "",
            "{url}: nothing left"
        );
    }
}
