//! Clients in production, against `rmq serve` as a child process: a broker that dies
//! and comes back (reconnect and resume), one that dies for good (exit 69, at random
//! moments), one that blocks publishers (connection.blocked), and signals in every state.

use crate::cli_support::{Running, cmd, code, ok, stderr};
use crate::serve_proc::{Serve, random_below};
use crate::support::amqp::temp_dir;
use crate::support::{WAIT, eventually, free_port, unique, wait_bounded};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Lines of a file (empty when it does not exist yet).
fn lines_of(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A worker survives its broker's death and restart: it reconnects, consumes again, and
/// every confirmed message is processed at least once.
#[test]
fn worker_resumes_after_the_broker_restarts() {
    let dir = temp_dir("resume-worker");
    // Free now, so that the restarted broker comes back on the same address.
    let port = free_port().to_string();
    let serve = Serve::start_with(&dir, &["--port", &port]);
    let url = serve.url();
    let q = unique("resume-w");
    let seen = dir.join("seen.txt");
    let input: String = (1..=30).map(|i| format!("m{i}\n")).collect();
    ok(
        &url,
        &["send", &q, "--lines", "--durable", "--persistent"],
        Some(input.as_bytes()),
    );
    let exec = format!("cat >> '{}'; echo >> '{}'", seen.display(), seen.display());
    let mut worker = Running::ready(&url, &["worker", &q, "--durable", "--exec", &exec]);
    eventually(WAIT, "the worker to process a few", || {
        lines_of(&seen).len() >= 3
    });
    serve.kill9();
    worker.wait_stderr("lost");
    let serve = Serve::start_with(&dir, &["--port", &port]);
    worker.wait_stderr("reconnected to");
    eventually(WAIT, "every message processed at least once", || {
        let got = lines_of(&seen);
        (1..=30).all(|i| got.contains(&format!("m{i}")))
    });
    let out = worker.interrupt();
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("reconnecting"), "{err}");
    drop(serve);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A publisher streaming from stdin survives the broker's restart: the lines written
/// after it came back are confirmed, and nothing confirmed is missing.
#[test]
fn a_streaming_send_resumes_after_the_broker_restarts() {
    let dir = temp_dir("resume-send");
    // Free now, so that the restarted broker comes back on the same address.
    let port = free_port().to_string();
    let serve = Serve::start_with(&dir, &["--port", &port]);
    let url = serve.url();
    let q = unique("resume-s");
    let mut child = cmd(&url, &["send", &q, "--lines", "--durable", "--persistent"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 1..=10 {
        writeln!(stdin, "a{i}").unwrap();
    }
    stdin.flush().unwrap();
    // Confirmed before the death: a passive declare shows them (the queue is durable).
    eventually(WAIT, "the first ten to arrive", || {
        queue_depth(&url, &q) == Some(10)
    });
    serve.kill9();
    let serve = Serve::start_with(&dir, &["--port", &port]);
    for i in 1..=10 {
        writeln!(stdin, "b{i}").unwrap();
    }
    drop(stdin);
    let out = wait_bounded(child, WAIT);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(err.contains("reconnected to"), "{err}");
    let got = ok(
        &serve.url(),
        &["receive", &q, "--idle-timeout", "1", "--durable"],
        None,
    );
    for want in (1..=10)
        .map(|i| format!("a{i}"))
        .chain((1..=10).map(|i| format!("b{i}")))
    {
        assert!(got.lines().any(|l| l == want), "{want} missing from {got}");
    }
    drop(serve);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ready messages in a queue, through a passive declare (None when it does not exist).
fn queue_depth(url: &str, q: &str) -> Option<u64> {
    let out = crate::cli_support::run(
        url,
        &["declare", "queue", q, "--passive", "-o", "json"],
        None,
    );
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get("messages")
        .or_else(|| v.get(0).and_then(|r| r.get("messages")))
        .and_then(serde_json::Value::as_u64)
}

/// Every form of lost connection is exit 69: the broker killed at a random moment under
/// `send` (streaming), `receive` and `worker` — connecting, consuming, publishing, acking.
#[test]
fn a_broker_killed_at_random_moments_always_means_exit_69() {
    let dir = temp_dir("kill-rounds");
    let payload: String = (0..200_000).map(|i| format!("{i}\n")).collect();
    let mut counts = [0u32; 3];
    for round in 0..100u64 {
        let serve = Serve::start(&dir.join(round.to_string()));
        let url = serve.url();
        let q = format!("kill-{round}");
        // Something to consume, so receive and worker are busy when the broker dies.
        ok(&url, &["send", &q, "--count", "50", "x"], None);
        let kind = round % 3;
        let mut c = match kind {
            0 => cmd(&url, &["--no-reconnect", "send", &q, "--lines"]),
            1 => cmd(&url, &["--no-reconnect", "receive", &q]),
            _ => cmd(
                &url,
                &[
                    "--no-reconnect",
                    "worker",
                    &q,
                    "--dot-time",
                    "0",
                    "--prefetch",
                    "5",
                ],
            ),
        };
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = if kind == 0 {
            let data = payload.clone();
            Some(std::thread::spawn(move || {
                let _ = stdin.write_all(data.as_bytes());
            }))
        } else {
            drop(stdin);
            None
        };
        // The random moment: from "still connecting" to "well into the work".
        std::thread::sleep(Duration::from_millis(random_below(150)));
        serve.kill9();
        let out = wait_bounded(child, WAIT);
        if let Some(f) = feeder {
            let _ = f.join();
        }
        let err = stderr(&out);
        let rc = code(&out);
        // A send that finished before the kill is fine; nothing else is.
        let done = kind == 0 && rc == 0;
        assert!(
            rc == 69 || done,
            "round {round} ({}): exit {rc}, want 69: {err}",
            ["send", "receive", "worker"][kind as usize]
        );
        if !done {
            let last = err.lines().last().unwrap_or_default();
            assert!(last.starts_with("rmq: "), "round {round}: {err}");
            counts[kind as usize] += 1;
        }
    }
    assert!(
        counts.iter().all(|n| *n >= 20),
        "too few real rounds: {counts:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A lost connection with reconnecting on: `--reconnect-timeout` gives up with 69, and
/// each attempt says why it failed.
#[test]
fn reconnect_timeout_gives_up_with_69_and_says_each_attempt() {
    let dir = temp_dir("give-up");
    let serve = Serve::start(&dir);
    let url = serve.url();
    let q = unique("give-up");
    let mut r = Running::ready(&url, &["--reconnect-timeout", "1.5", "receive", &q]);
    let started = Instant::now();
    serve.kill9();
    r.wait_stderr("gave up");
    let out = r.finish();
    let err = stderr(&out);
    assert_eq!(code(&out), 69, "{err}");
    assert!(err.contains("reconnect attempt 1 failed"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(6), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `connection.blocked` is said on stderr; `--blocked-timeout` ends with 75; Ctrl-C and
/// SIGTERM end a blocked send within 2 s with 130.
#[test]
fn a_blocked_send_says_so_times_out_with_75_and_obeys_signals() {
    let dir = temp_dir("blocked");
    // No filesystem has 1000 TB free: the disk alarm is on from the start.
    let serve = Serve::start_with(&dir, &["--disk-free-limit", "1000TB"]);
    let url = serve.url();
    let q = unique("blocked");

    let started = Instant::now();
    let out = crate::cli_support::run(&url, &["--blocked-timeout", "1", "send", &q, "hi"], None);
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{err}");
    assert!(
        err.contains("blocked this connection: low on disk"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");

    for signal in ["-INT", "-TERM"] {
        let mut r = Running::start(&url, &["send", &q, "hi"]);
        r.wait_stderr("blocked this connection");
        let (out, took) = r.signal(signal);
        assert_eq!(code(&out), 130, "{signal}: {}", stderr(&out));
        assert!(took < Duration::from_secs(2), "{signal} took {took:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `rmq perf` under a broker alarm: it says so (once for all its producers), gives up with
/// 75 after `--blocked-timeout`, ends when its time is up without calling the unconfirmed
/// messages a loss, and stops on Ctrl-C within 2 s (before, it ran on forever).
#[test]
fn a_blocked_perf_says_so_times_out_with_75_and_obeys_ctrl_c() {
    let dir = temp_dir("blocked-perf");
    // No filesystem has 1000 TB free: the disk alarm is on from the start.
    let serve = Serve::start_with(&dir, &["--disk-free-limit", "1000TB"]);
    let url = serve.url();

    let started = Instant::now();
    let out = crate::cli_support::run(
        &url,
        &[
            "--blocked-timeout",
            "1",
            "perf",
            "-x",
            "2",
            "-z",
            "30",
            "-q",
        ],
        None,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{err}");
    assert_eq!(
        err.matches("blocked this connection: low on disk").count(),
        1,
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");

    // -z 2 with confirms: the run ends (bounded by WAIT in `run`), and nothing confirmed
    // went missing, so it is not a failure.
    let out = crate::cli_support::run(&url, &["perf", "-x", "2", "-c", "50", "-z", "2"], None);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(err.contains("blocked this connection"), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("summary:"),
        "{err}"
    );

    let mut r = Running::start(&url, &["perf", "-z", "60", "-q"]);
    r.wait_stderr("blocked this connection");
    let (out, took) = r.signal("-INT");
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    assert!(took < Duration::from_secs(2), "Ctrl-C took {took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// While reconnecting (the broker is gone), Ctrl-C still ends the command at once.
#[test]
fn ctrl_c_ends_a_command_that_is_reconnecting() {
    let dir = temp_dir("reconnect-int");
    let serve = Serve::start(&dir);
    let url = serve.url();
    let mut r = Running::ready(&url, &["worker", &unique("int")]);
    serve.kill9();
    r.wait_stderr("reconnect attempt");
    let sent = Instant::now();
    let out = r.interrupt();
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    assert!(sent.elapsed() < Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Several URLs: the first that answers is used (a dead one first costs nothing more
/// than its refusal), and `config show` lists them all.
#[test]
fn several_urls_are_tried_in_order() {
    let dir = temp_dir("several");
    let serve = Serve::start(&dir);
    let dead = format!("amqp://guest:guest@127.0.0.1:{}/%2F", free_port());
    let q = unique("several");
    let out = cmd(&dead, &["--url", &serve.url(), "send", &q, "one"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let both = format!("{dead} {}", serve.url());
    let out = crate::support::rmq()
        .env("RMQ_URL", &both)
        .args(["receive", &q, "--count", "1", "--timeout", "5"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "one",
        "{}",
        stderr(&out)
    );
    let shown = crate::support::rmq()
        .env("RMQ_URL", &both)
        .args(["config", "show"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("url (next)"), "{text}");
    // All dead: one line naming each, exit 69.
    let out = crate::support::rmq()
        .env("RMQ_URL", format!("{dead} {dead}"))
        .args(["send", &q, "x"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(code(&out), 69, "{err}");
    assert!(err.contains("no broker of 2 answered"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
