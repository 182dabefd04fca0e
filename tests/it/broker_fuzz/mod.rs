//! Structured fuzzing over real sockets, plain TCP and TLS: whole sessions — protocol
//! header, start-ok, tune-ok, open, channel.open, declares, a publish with its content,
//! get, channel.close, connection.close — with extreme but valid arguments (255-byte
//! multi-byte names, tables up to the depth bound or with thousands of entries, every
//! content property, bodies in many frames). Each session is sent whole in one write, or
//! cut at random byte boundaries into many writes, flushed one by one — back to back, or
//! stepwise: what follows connection.open only once open-ok is in, so that the session's
//! own reads meet the cuts. Some stop halfway, some turn hostile before login (a start-ok
//! table nested past the bound) or after it (tables past the bound, reply texts that
//! would run over 255 bytes).
//!
//! Every session must get all its replies, ending in close-ok, or a close, within a
//! bounded time; no broker thread may panic; the broker must serve a fresh client after
//! a hostile one and hold no connection once all are gone.
//!
//! The frames are built by the in-process structured fuzzer's encoder, included from
//! src/ so that both fuzzers share it. `RMQ_FUZZ_SESSIONS` sets the number of sessions per
//! transport, `RMQ_FUZZ_SEED` replays a run, `RMQ_FUZZ_KIND` keeps one kind of session
//! (valid, stopped, prelogin, postlogin).
//!
//! This file holds the two tests and the loop they share; the rest is in
//! - `client`: sockets, plain or TLS, and frames read with bounded waits;
//! - `sessions`: the bytes of valid sessions, and what the broker must answer;
//! - `hostile`: sessions the broker must refuse, before login or after it;
//! - `run`: sending a session (whole or cut) and judging the replies.

#[path = "../../../src/broker/fuzz_structured/wire/mod.rs"]
mod wire;

mod client;
mod hostile;
mod run;
mod sessions;

use crate::support::{Broker, WAIT, metric};
use crate::tls_support::Pki;
use client::{Target, tls_client};
use hostile::{deep_before_login, hostile_after_login};
use run::{Sending, fresh_client, run};
use sessions::{stopped_session, valid_session};
use std::sync::{Mutex, Once};
use std::time::Instant;
use wire::Rng;

/// Panics on this test's broker threads (named `rmq-fuzz-broker-*`).
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Record panics on broker threads, then report them as usual. A connection task that
/// panics only drops its socket (tokio catches the panic), which a hostile session
/// cannot tell from a refusal: the hook can.
fn watch_broker_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(name) = std::thread::current().name()
                && name.starts_with("rmq-fuzz-broker")
            {
                PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("{name}: {info}"));
            }
            previous(info);
        }));
    });
}

fn broker_panics(threads: &str) -> Vec<String> {
    PANICS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|p| p.starts_with(threads))
        .cloned()
        .collect()
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.replace('_', "").parse().ok(),
    }
}

/// `sessions` sessions of every kind against `target`; `metrics` fetches the broker's
/// /metrics text.
fn fuzz_sessions(
    target: &Target,
    threads: &str,
    sessions: u64,
    seed: u64,
    metrics: impl std::future::Future<Output = String>,
) {
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    // One kind of session only, to chase a failure: valid, stopped, prelogin, postlogin.
    let only = std::env::var("RMQ_FUZZ_KIND").ok();
    let mut kinds = std::collections::BTreeMap::new();
    let mut bytes = 0;
    for n in 0..sessions {
        let ctx = format!("session {n} (RMQ_FUZZ_SEED={seed:#x})");
        let sending = *rng.pick(&[Sending::Whole, Sending::Split, Sending::Stepwise]);
        let roll = match only.as_deref() {
            Some("valid") => 0,
            Some("stopped") => 13,
            Some("prelogin") => 15,
            Some("postlogin") => 17,
            _ => rng.below(20),
        };
        let (script, stopped, kind) = match roll {
            0..=12 => (valid_session(&mut rng, n), false, "valid"),
            13 | 14 => (stopped_session(&mut rng, n), true, "stopped"),
            15 | 16 => (deep_before_login(&mut rng), false, "hostile before login"),
            _ => (
                hostile_after_login(&mut rng, n),
                false,
                "hostile after login",
            ),
        };
        let kind = format!("{kind}, {sending:?}");
        bytes += script.bytes.len();
        run(target, &mut rng, &script, sending, stopped, &ctx);
        if !kind.starts_with("valid") {
            fresh_client(target);
        }
        *kinds.entry(kind).or_insert(0u64) += 1;
        let panics = broker_panics(threads);
        assert!(panics.is_empty(), "the broker panicked ({ctx}): {panics:?}");
    }
    fresh_client(target);
    eprintln!(
        "{threads}: {sessions} sessions, {bytes} bytes in {:.1} s: {kinds:?}",
        started.elapsed().as_secs_f64()
    );
    // Every connection is gone: none was left behind by a task that died.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = rt.block_on(async {
        tokio::time::timeout(WAIT, metrics)
            .await
            .expect("GET /metrics")
    });
    assert_eq!(
        metric(&text, "rabbitmq_connections"),
        0.0,
        "connections left open"
    );
}

#[test]
fn structured_sessions_over_tcp() {
    watch_broker_panics();
    let threads = "rmq-fuzz-broker-tcp";
    let broker = Broker::start_named(threads, |_| {});
    let seed = env_u64("RMQ_FUZZ_SEED").unwrap_or(0x5EED_0003);
    let sessions = env_u64("RMQ_FUZZ_SESSIONS").unwrap_or(600);
    let target = Target::Plain(broker.addr);
    fuzz_sessions(&target, threads, sessions, seed, broker.metrics());
}

#[test]
fn structured_sessions_over_tls() {
    watch_broker_panics();
    let threads = "rmq-fuzz-broker-tls";
    let pki = Pki::new();
    let (cert, key) = (pki.server_cert.clone(), pki.server_key.clone());
    let broker = Broker::start_named(threads, move |c| {
        c.tls = Some(rmq::broker::TlsConfig::new(0, cert, key));
    });
    let target = Target::Tls(broker.tls_addr.expect("amqps"), tls_client(&pki));
    let seed = env_u64("RMQ_FUZZ_SEED").unwrap_or(0x5EED_0004);
    let sessions = env_u64("RMQ_FUZZ_SESSIONS").unwrap_or(300);
    // With TLS configured, the management API speaks https too.
    let metrics = async {
        let resp = pki
            .https_client()
            .get(format!("{}/metrics", broker.https_url()))
            .send()
            .await
            .expect("GET /metrics");
        resp.text().await.expect("metrics text")
    };
    fuzz_sessions(&target, threads, sessions, seed, metrics);
}
