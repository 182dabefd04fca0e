//! Clients on a three-node RabbitMQ cluster (`.ci/cluster.sh`, nodes on 5681–5683): a
//! worker and a streaming publisher given all three URLs survive the death of the node
//! they are connected to, on a quorum queue. Run when `RMQ_TEST_CLUSTER_URLS` and
//! `RMQ_TEST_CLUSTER_SCRIPT` are set (`.ci/run` sets both); skipped otherwise.

use crate::cli_support::{cmd, code, ok, stderr};
use crate::support::{WAIT, eventually, unique, wait_bounded};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// One test at a time kills nodes.
static NODES: Mutex<()> = Mutex::new(());

struct Cluster {
    urls: Vec<String>,
    script: String,
}

fn cluster() -> Option<Cluster> {
    let urls = std::env::var("RMQ_TEST_CLUSTER_URLS").ok()?;
    let script = std::env::var("RMQ_TEST_CLUSTER_SCRIPT").ok()?;
    Some(Cluster {
        urls: urls.split_whitespace().map(str::to_string).collect(),
        script,
    })
}

impl Cluster {
    fn node(&self, action: &str, n: u32) {
        let out = Command::new("timeout")
            .args(["180", "bash", &self.script, action, &n.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cluster.sh {action} {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `rmq` with every node's URL, node 1 first (so that is the one connected to).
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = crate::support::rmq();
        c.env("RMQ_URL", self.urls.join(" ")).args(args);
        c
    }
}

/// Node 1 comes back whatever the test did.
struct Restart<'a>(&'a Cluster);

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        self.0.node("start-node", 1);
    }
}

const QUORUM: &str = r#"{"x-queue-type":"quorum"}"#;

#[test]
fn a_worker_with_three_urls_survives_the_death_of_its_node() {
    let Some(c) = cluster() else { return };
    let _turn = NODES.lock().unwrap_or_else(|p| p.into_inner());
    let q = unique("cluster-w");
    let dir = std::env::temp_dir().join(unique("cluster-w"));
    std::fs::create_dir_all(&dir).unwrap();
    let seen = dir.join("seen.txt");
    let input: String = (1..=40).map(|i| format!("m{i}\n")).collect();
    // Confirmed by the cluster (send exits 0 only when every confirm came).
    ok(
        &c.urls[1],
        &["send", &q, "--lines", "--durable", "--arguments", QUORUM],
        Some(input.as_bytes()),
    );
    let exec = format!(
        "sleep 0.1; cat >> '{}'; echo >> '{}'",
        seen.display(),
        seen.display()
    );
    let mut child = c
        .cmd(&[
            "worker",
            &q,
            "--durable",
            "--arguments",
            QUORUM,
            "--exec",
            &exec,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = |p: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    eventually(WAIT, "a few processed on node 1", || {
        lines(&seen).len() >= 3
    });
    let restart = Restart(&c);
    c.node("kill-node", 1);
    eventually(Duration::from_secs(60), "every message processed", || {
        let got = lines(&seen);
        (1..=40).all(|i| got.contains(&format!("m{i}")))
    });
    drop(restart);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.stdin.take();
    let out = wait_bounded(child, WAIT);
    let err = stderr(&out);
    assert_eq!(code(&out), 130, "{err}");
    assert!(err.contains("reconnected to 127.0.0.1:568"), "{err}");
    let _ = ok(&c.urls[1], &["delete", "queue", &q], None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_streaming_publisher_with_three_urls_survives_the_death_of_its_node() {
    let Some(c) = cluster() else { return };
    let _turn = NODES.lock().unwrap_or_else(|p| p.into_inner());
    let q = unique("cluster-s");
    let mut child = c
        .cmd(&["send", &q, "--lines", "--durable", "--arguments", QUORUM])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 1..=20 {
        writeln!(stdin, "a{i}").unwrap();
    }
    stdin.flush().unwrap();
    // The first twenty reached the cluster (seen from node 2).
    eventually(WAIT, "the first twenty on the quorum queue", || {
        let out = cmd(
            &c.urls[1],
            &[
                "receive",
                &q,
                "--count",
                "20",
                "--timeout",
                "1",
                "--requeue",
            ],
        )
        .output()
        .unwrap();
        out.status.success()
    });
    let restart = Restart(&c);
    c.node("kill-node", 1);
    for i in 1..=20 {
        writeln!(stdin, "b{i}").unwrap();
    }
    drop(stdin);
    let out = wait_bounded(child, Duration::from_secs(60));
    drop(restart);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    let got = ok(&c.urls[1], &["receive", &q, "--idle-timeout", "2"], None);
    for want in (1..=20)
        .map(|i| format!("a{i}"))
        .chain((1..=20).map(|i| format!("b{i}")))
    {
        assert!(
            got.lines().any(|l| l == want),
            "{want} missing; stderr: {err}"
        );
    }
    let _ = ok(&c.urls[1], &["delete", "queue", &q], None);
}
