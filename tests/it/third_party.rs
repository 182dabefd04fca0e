//! Real third-party clients against every target broker: the Python (pika) and Node
//! (amqplib) programs under `tests/clients/`, developed against a real RabbitMQ 3.10.
//! Each program takes the AMQP URL, prints one line per check and exits 0 only if
//! every check held.
//!
//! Prerequisites (missing ones FAIL the tests, they are never skipped):
//!   pip install -r tests/clients/python/requirements.txt
//!   npm ci --prefix tests/clients/node

use crate::support::{run_bounded, targets};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Bound on one program run (each program also bounds its own scenarios).
const CLIENT_LIMIT: Duration = Duration::from_secs(150);

const PIP_HINT: &str = "run `pip install -r tests/clients/python/requirements.txt`";
const NPM_HINT: &str = "run `npm ci --prefix tests/clients/node`";

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clients")
}

fn python() -> Command {
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    cmd
}

/// python3 with pika importable, or a panic that says how to install it.
fn require_pika() {
    let mut cmd = python();
    cmd.arg("-c").arg("import pika; print(pika.__version__)");
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => panic!("python3 is not runnable ({e}); install Python 3, then {PIP_HINT}"),
    };
    assert!(
        out.status.success(),
        "python3 cannot import pika; {PIP_HINT}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// node with amqplib installed under tests/clients/node, or a panic saying how.
fn require_amqplib() {
    let node_dir = clients_dir().join("node");
    let out = match Command::new("node").arg("--version").output() {
        Ok(out) => out,
        Err(e) => panic!("node is not runnable ({e}); install Node.js, then {NPM_HINT}"),
    };
    assert!(out.status.success(), "`node --version` failed; {NPM_HINT}");
    let mut cmd = Command::new("node");
    cmd.current_dir(&node_dir)
        .arg("-e")
        .arg("require('amqplib')");
    let out = cmd.output().expect("run node");
    assert!(
        out.status.success(),
        "node cannot load amqplib from {}; {NPM_HINT}\nstderr:\n{}",
        node_dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `make_cmd(url)` against every target; fail with all outputs if any run failed.
fn run_against_targets(program: &str, make_cmd: impl Fn(&str) -> Command) {
    let mut failures = Vec::new();
    for (url, _broker) in targets() {
        // `_broker` (the embedded broker, if any) stays alive until this run ends.
        let out = run_bounded(make_cmd(&url), None, CLIENT_LIMIT);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let summary = stdout.lines().last().unwrap_or("").to_string();
        eprintln!("{program} against {url}: {} {summary}", out.status);
        if !out.status.success() {
            failures.push(format!(
                "=== {program} against {url} exited with {}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}",
                out.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn python_program(script: &str) {
    require_pika();
    let path = clients_dir().join("python").join(script);
    assert!(path.exists(), "missing {}", path.display());
    run_against_targets(script, |url| {
        let mut cmd = python();
        cmd.arg(&path).arg(url);
        cmd
    });
}

#[test]
fn pika_tutorials() {
    python_program("tutorials.py");
}

#[test]
fn pika_extensions() {
    python_program("extensions.py");
}

/// A real Celery worker (kombu over py-amqp) runs tasks, retries with a countdown and
/// returns results through the rpc:// backend.
#[test]
fn celery_worker() {
    let mut check = python();
    check.arg("-c").arg("import celery");
    let ok = check.output().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "python3 cannot import celery; run `pip install -r tests/clients/python/requirements-celery.txt`"
    );
    python_program("celery_test.py");
}

#[test]
fn pika_conformance() {
    python_program("conformance.py");
}

#[test]
fn raw_socket_conformance() {
    python_program("raw_socket.py");
}

/// Hostile and edge-case input (deep tables, long reply texts, pipelining, crossing
/// closes, unbinds of missing things, channel numbers, quorum queues), on both brokers.
#[test]
fn hostile_input_conformance() {
    python_program("hostile.py");
}

#[test]
fn amqplib_tutorials() {
    require_amqplib();
    let path = clients_dir().join("node").join("tutorials.js");
    assert!(path.exists(), "missing {}", path.display());
    run_against_targets("tutorials.js", |url| {
        let mut cmd = Command::new("node");
        cmd.arg(&path).arg(url);
        cmd
    });
}
