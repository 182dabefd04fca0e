//! How a command is ended from outside — the one place that listens for Ctrl-C and
//! SIGTERM, for client commands and `rmq serve` alike.
//!
//! The handlers are installed before the command starts, so no state (connecting,
//! blocked, closing, waiting for confirms, reconnecting) falls back to the default
//! disposition or to nothing at all. The first signal asks the command to stop cleanly
//! ([`stop_signal`] resolves); if it has not ended within the grace period, the process
//! ends anyway; a second signal ends it at once. A connection watcher can also end the
//! command with an error of its own ([`abort`]: blocked for too long).

use crate::exit::{self, coded};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::watch;

/// Set once per process by [`install`].
struct State {
    /// Flips to true on the first signal.
    stop: watch::Sender<bool>,
    /// The first fatal error raised by [`abort`].
    fatal: watch::Sender<Option<String>>,
    /// The exit code that goes with `fatal`.
    fatal_code: std::sync::atomic::AtomicU8,
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> &'static State {
    STATE.get_or_init(|| State {
        stop: watch::channel(false).0,
        fatal: watch::channel(None).0,
        fatal_code: std::sync::atomic::AtomicU8::new(exit::FAILURE),
    })
}

/// Listen for SIGINT and SIGTERM from now on. `grace`: how long a client command may
/// take to stop cleanly after the first signal before the process exits with 130 (the
/// documented promise is 2 s; `None` for the broker, whose shutdown flushes its store).
/// Must run inside the runtime.
pub(crate) fn install(grace: Option<Duration>) {
    let stop = state().stop.clone();
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term = term;
        let mut seen = 0u32;
        loop {
            #[cfg(unix)]
            let got = match term.as_mut() {
                Some(t) => tokio::select! {
                    r = tokio::signal::ctrl_c() => r.is_ok(),
                    r = t.recv() => r.is_some(),
                },
                None => tokio::signal::ctrl_c().await.is_ok(),
            };
            #[cfg(not(unix))]
            let got = tokio::signal::ctrl_c().await.is_ok();
            if !got {
                return;
            }
            seen += 1;
            if seen > 1 {
                // The user insists: no more waiting for anything.
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
            stop.send_replace(true);
            if let Some(grace) = grace {
                // A plain thread: it fires even if every runtime worker is stuck.
                std::thread::spawn(move || {
                    std::thread::sleep(grace);
                    std::process::exit(i32::from(exit::INTERRUPTED));
                });
            }
        }
    });
}

/// Resolves once Ctrl-C or SIGTERM arrived (at once if one already did).
pub(crate) async fn stop_signal() {
    let mut rx = state().stop.subscribe();
    let _ = rx.wait_for(|stopped| *stopped).await;
}

/// The error for Ctrl-C: exit 130, nothing more to say.
pub(crate) fn interrupted() -> anyhow::Error {
    coded(exit::INTERRUPTED, "")
}

/// End the running command with this error (from a task that is not the command's own,
/// such as a connection watcher); the first one wins.
pub(crate) fn abort(code: u8, message: String) {
    let s = state();
    s.fatal.send_if_modified(|f| {
        if f.is_some() {
            return false;
        }
        s.fatal_code
            .store(code, std::sync::atomic::Ordering::SeqCst);
        *f = Some(message);
        true
    });
}

/// Resolves with the error given to [`abort`].
pub(crate) async fn aborted() -> anyhow::Error {
    let s = state();
    let mut rx = s.fatal.subscribe();
    let message = match rx.wait_for(Option::is_some).await {
        Ok(m) => m.clone().unwrap_or_default(),
        Err(_) => std::future::pending().await,
    };
    coded(
        s.fatal_code.load(std::sync::atomic::Ordering::SeqCst),
        message,
    )
}
