//! Shared test harness: an in-process broker, the real `rmq` binary, bounded waits.
//!
//! - `amqp`     lapin helpers, every wait bounded: `bounded`, connect, declare, drain
//! - `api`      the management API as a test calls it
//! - `steps`    short lapin steps of the client-semantics tests
//! - `topology` a fixture: an exchange and a queue bound to it, unique names
//! - `policy`   targets and steps of the policy tests (rmq serve and RabbitMQ)
//! - `wire`     raw AMQP frames over a plain socket
#![allow(dead_code)]

pub mod amqp;
pub mod api;
pub mod policy;
pub mod steps;
pub mod topology;
pub mod wire;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Every wait in the suite is bounded by this unless a test says otherwise.
pub const WAIT: Duration = Duration::from_secs(20);

/// An embedded broker on its own runtime thread; stopped when dropped.
pub struct Broker {
    /// The bound AMQP address (port chosen by the OS).
    pub addr: SocketAddr,
    /// The management HTTP API's address (port chosen by the OS).
    pub mgmt_addr: SocketAddr,
    /// The amqps address, when the test configured TLS (port chosen by the OS).
    pub tls_addr: Option<SocketAddr>,
    /// Changes the memory watermark and disk free limit at run time (alarm tests).
    pub alarms: rmq::broker::AlarmControl,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Broker {
    /// Start a broker with the default configuration on 127.0.0.1:0.
    pub fn start() -> Broker {
        Broker::start_with(|_| {})
    }

    /// Start a broker after letting the test adjust its configuration.
    pub fn start_with(adjust: impl FnOnce(&mut rmq::broker::BrokerConfig)) -> Broker {
        Broker::start_named("rmq-test-broker", adjust)
    }

    /// The same, its runtime threads named `threads` (a panic hook can then tell this
    /// broker's panics from other tests').
    pub fn start_named(
        threads: &str,
        adjust: impl FnOnce(&mut rmq::broker::BrokerConfig),
    ) -> Broker {
        let mut config = rmq::broker::BrokerConfig {
            amqp_addr: "127.0.0.1:0".parse().unwrap(),
            mgmt_port: 0,
            ..Default::default()
        };
        adjust(&mut config);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let threads = threads.to_string();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(threads)
                .enable_all()
                .build()
                .expect("test runtime");
            rt.block_on(async move {
                let server = rmq::broker::Server::bind(config)
                    .await
                    .expect("bind broker");
                let mgmt = server.mgmt_addr().expect("management API bound on port 0");
                addr_tx
                    .send((
                        server.local_addr(),
                        mgmt,
                        server.tls_addr(),
                        server.alarm_control(),
                    ))
                    .unwrap();
                server
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let (addr, mgmt_addr, tls_addr, alarms) =
            addr_rx.recv_timeout(WAIT).expect("broker did not start");
        Broker {
            addr,
            mgmt_addr,
            tls_addr,
            alarms,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2F`
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2F", self.addr)
    }

    /// `http://127.0.0.1:PORT`, the management API's base URL.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.mgmt_addr)
    }

    /// The Prometheus text of `/metrics` (bounded by WAIT).
    pub async fn metrics(&self) -> String {
        let get = async {
            let resp = http()
                .get(format!("{}/metrics", self.api_url()))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            resp.text().await.unwrap()
        };
        tokio::time::timeout(WAIT, get)
            .await
            .expect("timed out: GET /metrics")
    }
}

/// The value of metric `name` in a `/metrics` text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An HTTP client for the management API. rmq builds rustls with ring and no process-wide
/// provider, so reqwest must be handed a TLS configuration even for http:// (it panics
/// building its own otherwise).
pub fn http() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports TLS 1.2 and 1.3")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .expect("HTTP client")
}

/// The brokers a client scenario runs against: always the embedded one, plus a real
/// RabbitMQ when `RMQ_TEST_RABBITMQ_URL` is set (CI sets it).
pub fn targets() -> Vec<(String, Option<Broker>)> {
    let broker = Broker::start();
    let mut out = vec![(broker.url(), Some(broker))];
    if let Ok(url) = std::env::var("RMQ_TEST_RABBITMQ_URL")
        && !url.is_empty()
    {
        out.push((url, None));
    }
    out
}

/// A port nothing listens on right now (bound by the OS, then released): for a broker
/// that must come back on the same address, or an address that refuses.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A name no other test (or earlier run against a shared RabbitMQ) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The real `rmq` binary.
pub fn rmq() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rmq"));
    cmd.env_remove("RMQ_URL")
        .env_remove("AMQP_URL")
        .env_remove("RMQ_CONFIG")
        .env_remove("RMQ_PROFILE")
        .env_remove("RMQ_API_URL")
        // The developer's own ~/.config/rmq/config.toml must not steer the tests.
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("rmq-tests-no-config"),
        )
        .env("NO_COLOR", "1");
    cmd
}

/// Run a command to completion with optional stdin, killing it after `limit`.
pub fn run_bounded(mut cmd: Command, stdin: Option<&[u8]>, limit: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    wait_bounded(child, limit)
}

/// Wait for a spawned child (stdout/stderr piped), killing it after `limit`.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut v);
        }
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait().expect("wait after kill");
            let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).to_string();
            panic!("command did not finish within {limit:?} ({status}); stderr: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(10)); // polling a child, not synchronising on time
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Poll `check` until it returns true or `limit` passes (then panic with `what`).
pub fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Segment files of every queue log under a data directory.
pub fn segment_files(data_dir: &std::path::Path) -> usize {
    let mut n = 0;
    for q in std::fs::read_dir(data_dir.join("queues"))
        .unwrap()
        .flatten()
    {
        n += std::fs::read_dir(q.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .count();
    }
    n
}
