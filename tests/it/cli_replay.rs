//! `receive --save-dir` then `send --replay-dir`: every message comes back with its
//! headers (and their types), properties and exact body bytes, in order.

use crate::cli_support::{cleanup, code, ok, run, stderr};
use crate::support::{targets, unique};
use serde_json::Value;

#[test]
fn save_dir_then_replay_is_lossless() {
    for (url, _broker) in targets() {
        let (a, b) = (unique("save-a"), unique("save-b"));
        let _cleanup = cleanup(&url, &[&a, &b]);
        let dir = std::env::temp_dir().join(unique("rmq-save"));
        let scratch = std::env::temp_dir().join(unique("rmq-body"));
        let binary: Vec<u8> = (0..=255u8).chain([0, 0xc3, 0x28, b'\n']).collect();
        std::fs::write(&scratch, &binary).unwrap();
        ok(
            &url,
            &[
                "send",
                &a,
                "--file",
                scratch.to_str().unwrap(),
                "-H",
                "text=plain",
                "-H",
                "n:={\"$type\":\"i32\",\"value\":-7}",
                "-H",
                "small:={\"$type\":\"u8\",\"value\":200}",
                "-H",
                "flag:=true",
                "-H",
                "nested:={\"list\":[1,\"two\",{\"$type\":\"i16\",\"value\":3}]}",
                "--content-type",
                "application/octet-stream",
                "--content-encoding",
                "identity",
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
                "--reply-to",
                "somewhere",
            ],
            None,
        );
        let _ = std::fs::remove_file(&scratch);
        ok(&url, &["send", &a, "second, text"], None);
        ok(&url, &["send", &a, "--count", "9", "more"], None);

        let out = run(
            &url,
            &[
                "receive",
                &a,
                "--count",
                "11",
                "--save-dir",
                dir.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(code(&out), 0, "against {url}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "saving prints nothing on stdout");
        assert_eq!(std::fs::read(dir.join("000001.body")).unwrap(), binary);
        assert_eq!(
            std::fs::read(dir.join("000002.body")).unwrap(),
            b"second, text"
        );
        let saved: Vec<Value> = (1..=11)
            .map(|i| {
                let text = std::fs::read_to_string(dir.join(format!("{i:06}.json"))).unwrap();
                serde_json::from_str(&text).unwrap()
            })
            .collect();
        assert_eq!(
            saved[0]["properties"]["headers"]["n"],
            serde_json::json!({"$type": "i32", "value": -7})
        );

        let out = run(
            &url,
            &["send", &b, "--replay-dir", dir.to_str().unwrap()],
            None,
        );
        assert_eq!(code(&out), 0, "against {url}: {}", stderr(&out));
        let copy = ok(
            &url,
            &["receive", &b, "--count", "11", "--output", "jsonl"],
            None,
        );
        let copy: Vec<Value> = copy
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(copy.len(), 11);
        for (i, (mut c, s)) in copy.into_iter().zip(&saved).enumerate() {
            assert_eq!(c["routing_key"], b.as_str());
            c["routing_key"] = s["routing_key"].clone();
            assert_eq!(&c, s, "against {url}: message {} changed on replay", i + 1);
        }
        // A replayed binary body is the same bytes.
        ok(
            &url,
            &["send", &b, "--replay-dir", dir.to_str().unwrap()],
            None,
        );
        let raw = run(
            &url,
            &["receive", &b, "--count", "1", "--output", "raw"],
            None,
        );
        assert_eq!(&raw.stdout[..binary.len()], &binary[..], "against {url}");
        let _ = std::fs::remove_dir_all(&dir);

        // A missing or empty directory is bad input, and nothing is sent.
        let out = run(
            &url,
            &["send", &b, "--replay-dir", dir.to_str().unwrap()],
            None,
        );
        assert_eq!(code(&out), 65, "{}", stderr(&out));
    }
}
