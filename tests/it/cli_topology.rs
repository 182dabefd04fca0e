//! The topology commands and the less common options of send and receive, against every
//! target: bind / unbind (queue and exchange destinations), delete with its conditions,
//! internal exchanges, reject, headers matching, confirm windows and validated user ids.

use crate::cli_support::{Running, cleanup, code, ok, run, stderr};
use crate::support::{targets, unique};

/// Every message left in `q`, one per line.
fn drain(url: &str, q: &str) -> String {
    let out = run(url, &["receive", q, "--idle-timeout", "1"], None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bind_unbind_and_conditional_deletes() {
    for (url, _broker) in targets() {
        let (x, x2, q, q2) = (unique("tx"), unique("tx2"), unique("tq"), unique("tq2"));
        let _cleanup = cleanup(&url, &[&q, &q2]);
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
        ok(
            &url,
            &["declare", "exchange", &x2, "--type", "direct"],
            None,
        );
        ok(&url, &["declare", "queue", &q], None);
        ok(&url, &["declare", "queue", &q2], None);
        ok(&url, &["bind", &x, &q, "-k", "a"], None);
        ok(&url, &["bind", &x, "--to-exchange", &x2, "-k", "a"], None);
        ok(&url, &["bind", &x2, &q2, "-k", "a"], None);
        let emit = |body: &str| {
            ok(
                &url,
                &["emit-log", "-x", &x, "-t", "direct", "-k", "a", body],
                None,
            )
        };
        // Through the queue binding and, via x2, the exchange-to-exchange one.
        emit("one");
        assert_eq!(drain(&url, &q), "one\n", "{url}");
        assert_eq!(drain(&url, &q2), "one\n", "{url}");
        ok(&url, &["unbind", &x, &q, "-k", "a"], None);
        emit("two");
        assert_eq!(drain(&url, &q), "", "{url}: unbound");
        assert_eq!(drain(&url, &q2), "two\n", "{url}");
        ok(&url, &["unbind", &x, "--to-exchange", &x2, "-k", "a"], None);
        emit("three");
        assert_eq!(drain(&url, &q2), "", "{url}: exchange binding gone");

        // --if-empty refuses a queue with messages and leaves it; --if-unused an exchange
        // with bindings.
        ok(&url, &["send", &q2, "kept"], None);
        let out = run(&url, &["delete", "queue", &q2, "--if-empty"], None);
        assert_eq!(code(&out), 1, "{url}: {}", stderr(&out));
        assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
        assert_eq!(drain(&url, &q2), "kept\n", "{url}: still there");
        let deleted = ok(
            &url,
            &["delete", "queue", &q2, "--if-empty", "-o", "jsonl"],
            None,
        );
        assert_eq!(
            deleted,
            format!("{{\"messages\":0,\"queue\":\"{q2}\"}}\n"),
            "{url}"
        );
        // A delete reports the messages that went with the queue.
        let q3 = unique("tq3");
        ok(&url, &["send", &q3, "--lines"], Some(b"1\n2\n"));
        let deleted = ok(&url, &["delete", "queue", &q3, "-o", "jsonl"], None);
        assert_eq!(
            deleted,
            format!("{{\"messages\":2,\"queue\":\"{q3}\"}}\n"),
            "{url}"
        );
        let again = ok(
            &url,
            &["delete", "queue", &q3, "--if-exists", "-o", "jsonl"],
            None,
        );
        assert_eq!(
            again,
            format!("{{\"messages\":0,\"queue\":\"{q3}\"}}\n"),
            "{url}"
        );
        let out = run(&url, &["declare", "queue", &q2, "--passive"], None);
        assert_ne!(code(&out), 0, "{url}: deleted");
        ok(&url, &["bind", &x2, &q, "-k", "b"], None);
        let out = run(&url, &["delete", "exchange", &x2, "--if-unused"], None);
        assert_eq!(code(&out), 1, "{url}: {}", stderr(&out));
        assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
        ok(&url, &["delete", "exchange", &x2], None);
        ok(&url, &["delete", "exchange", &x2, "--if-exists"], None);
        let out = run(&url, &["delete", "exchange", &x2], None);
        assert_ne!(
            code(&out),
            0,
            "{url}: deleting a missing exchange without --if-exists"
        );
    }
}

#[test]
fn internal_exchanges_reject_and_headers_matching() {
    for (url, _broker) in targets() {
        let (ix, h, q) = (unique("ix"), unique("th"), unique("rq"));
        let _cleanup = cleanup(&url, &[&q]);
        // Publishing to an internal exchange is refused (403 on the channel): exit 1.
        ok(
            &url,
            &[
                "declare",
                "exchange",
                &ix,
                "--type",
                "fanout",
                "--internal",
                "--auto-delete",
            ],
            None,
        );
        let out = run(&url, &["emit-log", "-x", &ix, "-t", "fanout", "x"], None);
        assert_eq!(code(&out), 1, "{url}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("internal exchange"),
            "{}",
            stderr(&out)
        );
        ok(&url, &["delete", "exchange", &ix], None);

        // --reject drops the message (no dead-letter exchange here): the next one stays.
        ok(&url, &["send", &q, "--lines"], Some(b"r1\nr2\n"));
        assert_eq!(
            ok(&url, &["receive", &q, "--reject", "--count", "1"], None),
            "r1\n"
        );
        assert_eq!(drain(&url, &q), "r2\n", "{url}");

        // --match-header on a headers exchange: only the matching message arrives.
        let rx = Running::ready(
            &url,
            &[
                "receive",
                "--exchange",
                &h,
                "--match-header",
                "kind=report",
                "--count",
                "1",
                "--timeout",
                "20",
            ],
        );
        for (kind, body) in [("other", "no"), ("report", "yes")] {
            let header = format!("kind={kind}");
            ok(
                &url,
                &["emit-log", "-x", &h, "-t", "headers", "-H", &header, body],
                None,
            );
        }
        let out = rx.finish();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "yes\n", "{url}");
        let _ = run(&url, &["delete", "exchange", &h, "--if-exists"], None);
    }
}

#[test]
fn confirm_windows_and_user_ids() {
    for (url, _broker) in targets() {
        let q = unique("uq");
        let _cleanup = cleanup(&url, &[&q]);
        let lines: String = (0..50).map(|i| format!("{i}\n")).collect();
        ok(
            &url,
            &["send", &q, "--lines", "--confirm-window", "1"],
            Some(lines.as_bytes()),
        );
        ok(
            &url,
            &["send", &q, "--lines", "--no-confirm"],
            Some(lines.as_bytes()),
        );
        let got = ok(&url, &["receive", &q, "--count", "100"], None);
        assert_eq!(got.lines().count(), 100, "{url}");
        // user_id must be the connection's user (RabbitMQ's validated user-id).
        ok(&url, &["send", &q, "--user-id", "guest", "mine"], None);
        let got = ok(&url, &["receive", &q, "--count", "1", "-o", "jsonl"], None);
        let v: serde_json::Value = serde_json::from_str(got.trim()).unwrap();
        assert_eq!(v["properties"]["user_id"], "guest", "{url}: {got}");
        let out = run(
            &url,
            &["send", &q, "--user-id", "someone-else", "forged"],
            None,
        );
        assert_ne!(code(&out), 0, "{url}");
        assert!(
            stderr(&out).contains("user_id property set to 'someone-else'"),
            "{}",
            stderr(&out)
        );
        assert_eq!(
            drain(&url, &q),
            "",
            "{url}: the forged message was not queued"
        );
    }
}
