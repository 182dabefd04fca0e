//! `rmq move` against every target: properties, typed headers and bodies arrive as they
//! left; the end is defined (the start's count, --count, an empty source); refusals leave
//! the source as it was; and 10,000 messages moving out of an `rmq serve --data-dir`
//! killed with SIGKILL mid-way and restarted all arrive, at least once, none lost.

use crate::cli_support::{Running, cleanup, code, ok, run, stderr};
use crate::serve_proc::Serve;
use crate::support::amqp::temp_dir;
use crate::support::{WAIT, eventually, targets, unique};
use serde_json::Value;
use std::collections::BTreeMap;

/// The ready messages of `q` (passive declare), or None if it does not exist.
fn depth(url: &str, q: &str) -> Option<u64> {
    let out = run(
        url,
        &["declare", "queue", q, "--passive", "-o", "tsv"],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1)?.split('\t').nth(1)?.parse().ok()
}

/// Every message of `q`, as rmq's JSON lines.
fn drain(url: &str, q: &str) -> Vec<Value> {
    let n = depth(url, q).expect("queue exists");
    if n == 0 {
        return Vec::new();
    }
    let n = n.to_string();
    ok(
        url,
        &[
            "receive",
            q,
            "--count",
            &n,
            "--timeout",
            "30",
            "-o",
            "jsonl",
        ],
        None,
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

#[test]
fn move_keeps_properties_headers_and_bodies() {
    for (url, _broker) in targets() {
        let (src, dst) = (unique("mv-src"), unique("mv-dst"));
        let _q = cleanup(&url, &[&src, &dst]);
        let input = [
            r#"{"properties":{"content_type":"application/json","headers":{"tenant":"acme","attempt":{"$type":"i32","value":3},"nested":{"a":[1,"b",true]},"x-death":[{"count":1,"queue":"orders","reason":"rejected"}]},"delivery_mode":2,"priority":4,"correlation_id":"c-1","reply_to":"replies","message_id":"m-1","timestamp":1700000000,"type":"order.created","app_id":"shop"},"body":"{\"n\":1}","body_encoding":"utf8"}"#,
            r#"{"properties":{"headers":{"big":{"$type":"u32","value":4000000000}}},"body":"AAEC/w==","body_encoding":"base64"}"#,
            r#"{"properties":{},"body":"","body_encoding":"utf8"}"#,
        ];
        let lines = input.join("\n") + "\n";
        ok(
            &url,
            &["send", &src, "--durable", "--input", "jsonl"],
            Some(lines.as_bytes()),
        );
        ok(&url, &["declare", "queue", &dst, "--durable"], None);
        let out = run(&url, &["move", &src, &dst], None);
        assert_eq!(code(&out), 0, "{url}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("moved 3 messages from '{src}' to '{dst}'")),
            "{}",
            stderr(&out)
        );
        assert_eq!(depth(&url, &src), Some(0), "{url}: the source is empty");
        let got = drain(&url, &dst);
        assert_eq!(got.len(), 3, "{url}: {got:?}");
        for (sent, got) in input.iter().zip(&got) {
            let sent: Value = serde_json::from_str(sent).unwrap();
            for field in ["properties", "body", "body_encoding"] {
                assert_eq!(got[field], sent[field], "{url}: {field} of {got}");
            }
            assert_eq!(got["routing_key"], Value::from(dst.as_str()), "{url}");
        }
    }
}

#[test]
fn move_ends_where_it_should_and_refusals_leave_the_source_alone() {
    for (url, _broker) in targets() {
        let (src, dst, dst2) = (unique("mv-src"), unique("mv-dst"), unique("mv-dst2"));
        let x = unique("mv-x");
        let _q = cleanup(&url, &[&src, &dst, &dst2]);
        ok(&url, &["send", &src, "--lines"], Some(b"1\n2\n3\n4\n5\n"));
        ok(&url, &["declare", "queue", &dst], None);
        ok(&url, &["declare", "queue", &dst2], None);
        // --count: the first N, in order.
        ok(&url, &["move", &src, &dst, "--count", "2"], None);
        assert_eq!(depth(&url, &src), Some(3), "{url}");
        assert_eq!(
            ok(&url, &["receive", &dst, "--idle-timeout", "1"], None),
            "1\n2\n"
        );
        // Unroutable through an exchange: exit 1, and every message stays in the source.
        ok(
            &url,
            &[
                "declare",
                "exchange",
                &x,
                "--type",
                "direct",
                "--auto-delete",
            ],
            None,
        );
        ok(&url, &["bind", &x, &dst2, "-k", "there"], None);
        let out = run(
            &url,
            &["move", &src, "--to-exchange", &x, "-k", "nowhere"],
            None,
        );
        assert_eq!(code(&out), 1, "{url}: {}", stderr(&out));
        assert!(stderr(&out).contains("could not route"), "{}", stderr(&out));
        assert_eq!(depth(&url, &src), Some(3), "{url}: nothing taken");
        // Through the exchange with a key that routes.
        ok(
            &url,
            &["move", &src, "--to-exchange", &x, "-k", "there"],
            None,
        );
        assert_eq!(
            ok(&url, &["receive", &dst2, "--idle-timeout", "1"], None),
            "3\n4\n5\n"
        );
        // An empty source is done at once; missing queues and a loop are refused.
        let out = run(&url, &["move", &src, &dst], None);
        assert_eq!(code(&out), 0, "{url}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("moved 0 messages"),
            "{}",
            stderr(&out)
        );
        let missing = unique("mv-missing");
        for (args, want) in [
            (vec!["move", &src, &missing], 1),
            (vec!["move", &missing, &dst], 1),
            (vec!["move", &src, &src], 2),
        ] {
            let out = run(&url, &args, None);
            assert_eq!(code(&out), want, "{url} {args:?}: {}", stderr(&out));
        }
        let _ = run(&url, &["delete", "exchange", &x], None);
    }
}

/// The number of messages in the test: enough for a kill to land mid-way.
const N: usize = 10_000;

#[test]
fn move_of_10000_survives_the_source_killed_midway() {
    for (dest_url, _broker) in targets() {
        let dir = temp_dir("mv-source");
        let source = Serve::start(&dir);
        let (sq, dq) = (unique("mv-src"), unique("mv-dst"));
        let _dq = cleanup(&dest_url, &[&dq]);
        let lines: String = (0..N).map(|i| format!("id-{i}\n")).collect();
        ok(
            &source.url(),
            &["send", &sq, "--durable", "--persistent", "--lines"],
            Some(lines.as_bytes()),
        );
        ok(&dest_url, &["declare", "queue", &dq, "--durable"], None);
        // A small window makes the move take long enough to be cut mid-way.
        let mover = Running::start(
            &source.url(),
            &["move", &sq, &dq, "--to-url", &dest_url, "--prefetch", "4"],
        );
        let mut at_kill = 0;
        eventually(WAIT, "a thousand messages moved", || {
            at_kill = depth(&dest_url, &dq).unwrap_or(0);
            at_kill >= 1000
        });
        source.kill9();
        let first = mover.finish();
        assert_eq!(
            code(&first),
            69,
            "{dest_url}: the move was cut mid-way ({at_kill} moved at the kill): {}",
            stderr(&first)
        );
        assert!(
            stderr(&first).contains("connection to the source broker is lost"),
            "{}",
            stderr(&first)
        );

        // Restarted on the same data: the second run moves the rest.
        let source = Serve::start(&dir);
        let left = depth(&source.url(), &sq).expect("the durable source queue is back");
        assert!(
            left > 0 && (left as usize) < N,
            "{dest_url}: {left} left after the kill"
        );
        let second = run(
            &source.url(),
            &["move", &sq, &dq, "--to-url", &dest_url],
            None,
        );
        assert_eq!(code(&second), 0, "{dest_url}: {}", stderr(&second));
        assert_eq!(
            depth(&source.url(), &sq),
            Some(0),
            "{dest_url}: source empty"
        );

        // Every id arrived, some perhaps twice (what was in flight at the kill).
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for m in drain(&dest_url, &dq) {
            let body = m["body"].as_str().unwrap().to_string();
            assert_eq!(m["properties"]["delivery_mode"], 2, "persistent kept");
            *seen.entry(body).or_default() += 1;
        }
        let missing: Vec<usize> = (0..N)
            .filter(|i| !seen.contains_key(&format!("id-{i}")))
            .collect();
        assert!(
            missing.is_empty(),
            "{dest_url}: {} lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert_eq!(seen.len(), N, "{dest_url}: nothing but the ids sent");
        let twice: usize = seen.values().map(|n| n - 1).sum();
        eprintln!(
            "move under SIGKILL to {dest_url}: {at_kill} moved at the kill, {left} left, all {N} arrived, {twice} twice"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
