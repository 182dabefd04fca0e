//! `--format` templates and the machine formats of message streams (`-o json`, `-o tsv`).

use crate::cli_support::{cleanup, code, ok, run, stderr};
use crate::support::{targets, unique};
use serde_json::Value;

#[test]
fn templates_render_fields_headers_and_properties() {
    for (url, _broker) in targets() {
        let q = unique("tpl");
        let _cleanup = cleanup(&url, &[&q]);
        ok(
            &url,
            &[
                "send",
                &q,
                "-H",
                "tenant=acme",
                "-H",
                "attempt:=3",
                "--correlation-id",
                "c-9",
                "--type",
                "order",
                "--content-type",
                "text/plain",
                "hello world",
            ],
            None,
        );
        ok(&url, &["send", &q, "second"], None);
        let out = ok(
            &url,
            &[
                "receive",
                &q,
                "--count",
                "2",
                "--format",
                "{{{routing_key}}}\\t{exchange}|{body}|{headers.tenant}|{headers.attempt}|{headers.missing}|{correlation_id}|{properties.type}|{content_type}|{redelivered}|{delivery_tag}|{body_base64}",
            ],
            None,
        );
        assert_eq!(
            out,
            format!(
                "{{{q}}}\t|hello world|acme|3||c-9|order|text/plain|false|1|aGVsbG8gd29ybGQ=\n{{{q}}}\t|second|||||||false|2|c2Vjb25k\n"
            ),
            "against {url}"
        );
    }
}

#[test]
fn a_bad_template_is_a_usage_error_before_anything_is_consumed() {
    for (url, _broker) in targets() {
        let q = unique("tpl-bad");
        let _cleanup = cleanup(&url, &[&q]);
        ok(&url, &["send", &q, "keep me"], None);
        for (template, what) in [
            ("{bdy}", "unknown placeholder {bdy}"),
            ("{properties.colour}", "unknown placeholder"),
            ("{body", "not closed"),
        ] {
            let out = run(
                &url,
                &["receive", &q, "--count", "1", "--format", template],
                None,
            );
            assert_eq!(code(&out), 2, "{template}: {}", stderr(&out));
            assert!(stderr(&out).contains(what), "{template}: {}", stderr(&out));
            assert!(stderr(&out).contains("{routing_key}") || what == "not closed");
            assert!(out.stdout.is_empty());
        }
        let out = run(
            &url,
            &[
                "receive", &q, "--count", "1", "--format", "{body}", "-o", "jsonl",
            ],
            None,
        );
        assert_eq!(
            code(&out),
            2,
            "--format and --output jsonl: {}",
            stderr(&out)
        );
        // The message is still there.
        assert_eq!(
            ok(&url, &["receive", &q, "--count", "1"], None),
            "keep me\n"
        );
    }
}

#[test]
fn message_streams_print_as_json_and_tsv_and_refuse_tables() {
    for (url, _broker) in targets() {
        let q = unique("fmt");
        let _cleanup = cleanup(&url, &[&q]);
        ok(&url, &["send", &q, "--lines"], Some(b"a\tb\nsecond\n"));
        let json = ok(
            &url,
            &[
                "receive",
                &q,
                "--count",
                "2",
                "--output",
                "json",
                "--requeue",
            ],
            None,
        );
        let all: Vec<Value> = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(all.len(), 2);
        assert_eq!(all[0]["body"], "a\tb");
        assert_eq!(all[1]["routing_key"], q.as_str());
        let tsv = ok(
            &url,
            &["receive", &q, "--count", "2", "--output", "tsv"],
            None,
        );
        let lines: Vec<&str> = tsv.lines().collect();
        assert_eq!(
            lines[0],
            "exchange\trouting_key\tredelivered\tdelivery_tag\tbody"
        );
        assert_eq!(lines[1], format!("\t{q}\ttrue\t1\ta\\tb"), "{tsv}");
        assert_eq!(lines.len(), 3, "{tsv}");
        // Nothing at all still makes valid JSON.
        let out = run(
            &url,
            &["receive", &q, "--timeout", "0.5", "--output", "json"],
            None,
        );
        assert_eq!(code(&out), 3);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
        let out = run(
            &url,
            &["receive", &q, "--count", "1", "--output", "table"],
            None,
        );
        assert_eq!(code(&out), 2, "{}", stderr(&out));
    }
}
