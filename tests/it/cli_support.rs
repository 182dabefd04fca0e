//! Helpers for the client-command tests: a running `rmq` whose output can be waited on.
#![allow(dead_code)]

use crate::support::{WAIT, eventually, rmq, wait_bounded};
use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `rmq --url URL ARGS...`, ready to run.
pub fn cmd(url: &str, args: &[&str]) -> Command {
    let mut c = rmq();
    c.arg("--url").arg(url).args(args);
    c
}

/// Run to completion with optional stdin (bounded by `WAIT`).
pub fn run(url: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    crate::support::run_bounded(cmd(url, args), stdin, WAIT)
}

/// Run and insist on success; returns stdout as text.
pub fn ok(url: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = run(url, args, stdin);
    assert!(
        out.status.success(),
        "rmq {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The exit code, or a panic with stderr if killed by a signal.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or_else(|| {
        panic!(
            "killed by a signal: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Text of stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A background `rmq` whose stdout and stderr are collected as they come.
pub struct Running {
    /// The process (taken when finished).
    child: Option<Child>,
    /// Everything written to stdout so far.
    stdout: Arc<Mutex<Vec<u8>>>,
    /// Everything written to stderr so far.
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The collector threads, joined on finish.
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(
    mut r: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

impl Running {
    /// Start `rmq --url URL ARGS...` in the background.
    pub fn start(url: &str, args: &[&str]) -> Running {
        let mut c = cmd(url, args);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn rmq");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Running {
            child: Some(child),
            stdout,
            stderr,
            readers,
        }
    }

    /// Start and wait for its ready line (` [*] Waiting…` / ` [x] Awaiting…`) on stderr.
    pub fn ready(url: &str, args: &[&str]) -> Running {
        let mut r = Running::start(url, args);
        r.wait_stderr("aiting");
        r
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Wait until stderr contains `needle` (or the process died: then panic with its output).
    pub fn wait_stderr(&mut self, needle: &str) {
        self.wait_for(&format!("stderr to contain {needle:?}"), |r| {
            r.stderr().contains(needle)
        });
    }

    /// Wait until stdout contains `needle`.
    pub fn wait_stdout(&mut self, needle: &str) {
        self.wait_for(&format!("stdout to contain {needle:?}"), |r| {
            r.stdout().contains(needle)
        });
    }

    fn wait_for(&mut self, what: &str, check: impl Fn(&Running) -> bool) {
        eventually(WAIT, what, || {
            if check(self) {
                return true;
            }
            // A process that exited will never print it: fail now, with its output.
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                for r in self.readers.drain(..) {
                    let _ = r.join(); // the pipes are closed: collect the last output
                }
                assert!(
                    check(self),
                    "rmq exited ({status}) before {what}; stdout: {} stderr: {}",
                    self.stdout(),
                    self.stderr()
                );
                return true;
            }
            false
        });
    }

    /// Wait for the process to end on its own (bounded by `limit`).
    pub fn finish_within(mut self, limit: Duration) -> Output {
        let child = self.child.take().unwrap();
        let status = wait_bounded(child, limit).status;
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Output {
            status,
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }

    /// Wait for the process to end on its own (bounded by `WAIT`).
    pub fn finish(self) -> Output {
        self.finish_within(WAIT)
    }

    /// SIGKILL: the process dies without closing anything (its connection just drops).
    pub fn kill(mut self) -> Output {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
        self.finish()
    }

    /// SIGINT, like Ctrl-C.
    pub fn interrupt(self) -> Output {
        self.signal("-INT").0
    }

    /// Send `signal` (`-INT`, `-TERM`) and wait for the end: the output, and how long
    /// the process took to exit after the signal.
    pub fn signal(self, signal: &str) -> (Output, Duration) {
        let sent = std::time::Instant::now();
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(signal)
                .arg(child.id().to_string())
                .status();
        }
        let out = self.finish();
        (out, sent.elapsed())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Deletes the named queues when dropped (even when the test fails), so runs against a
/// shared RabbitMQ leave nothing behind.
pub struct Cleanup {
    /// Broker URL.
    url: String,
    /// Queues to delete.
    queues: Vec<String>,
}

/// Delete these queues at the end of the test.
pub fn cleanup(url: &str, queues: &[&str]) -> Cleanup {
    Cleanup {
        url: url.to_string(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for q in &self.queues {
            let _ = crate::support::run_bounded(
                cmd(&self.url, &["delete", "queue", q, "--if-exists"]),
                None,
                WAIT,
            );
        }
    }
}
