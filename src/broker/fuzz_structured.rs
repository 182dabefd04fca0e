//! Structured fuzzing, beside `fuzz_tests`' random bytes: frames that are structurally
//! valid but sit at the protocol's extremes — every method of every class (the
//! server-to-client ones a hostile client might send too), each field at its bounds,
//! short strings of 0 and 255 bytes (multi-byte and invalid UTF-8), field tables empty,
//! with thousands of entries, of every value type, nested 1 to 20,000 levels; content
//! headers with every property; bodies in many frames; heartbeats and channel 0 traffic.
//!
//! `Session::process` is driven in-process as a client would drive it: a model of the
//! client's channels (opened, closed by the broker, answered with close-ok) steers the
//! inputs to where the broker does real work, and judges what comes back:
//! - no panic (each input runs under `catch_unwind`, the culprit is reported), and no
//!   stack overflow — the fuzzing thread has a tokio worker's 2 MiB stack, so an overflow
//!   the broker would suffer aborts this test too;
//! - a request is answered (its reply, a channel.close or a connection error);
//! - a table nested deeper than the bound (`wire::MAX_DEPTH`), or a frame over frame_max,
//!   ends the connection with 501; a structurally valid input never does (a table at the
//!   bound, a header key that is not UTF-8 included);
//! - every frame the broker writes decodes (reply texts fit a short string);
//! - complete frames never stay in the buffer after `process` (nothing waits for a read);
//! - the broker still serves a fresh connection afterwards.
//!
//! A hang is caught by a watchdog: no input may take `STALL`. The pre-login pieces are
//! fuzzed in `prelogin`; whole sessions over TCP and TLS in tests/it/broker_fuzz/.
//!
//! `RMQ_FUZZ_SEED` replays a run; `RMQ_FUZZ_TRACE=1` prints every input before it runs
//! (to find the input that aborted a run); `RMQ_FUZZ_INPUTS` sizes the `--ignored` run;
//! `RMQ_FUZZ_PRELOGIN` multiplies the pre-login cases.

mod inputs;
mod prelogin;
mod wire;

use super::config::BrokerConfig;
use super::fuzz_tests::{open_session, still_serving};
use super::state::BrokerState;
use crate::broker::amqp::session::End;
use crate::broker::wire::outbound::{ConnShared, Outbound};
use crate::codec;
use amq_protocol::protocol::{AMQPClass, channel, connection};
use bytes::BytesMut;
use inputs::{Expect, Input, Model};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wire::Rng;

/// A tokio worker thread's stack (tokio's default), where the broker handles frames: the
/// fuzzer runs on one as small, so what would overflow the broker overflows here.
const BROKER_STACK: usize = 2 * 1024 * 1024;

/// No single input may take longer (a debug build handles one in microseconds; a
/// 20,000-level table in a few milliseconds).
const STALL: Duration = Duration::from_secs(30);

/// Connections on one broker before the run moves to a fresh one.
const RESET_EVERY: u64 = 100_000;

/// What a run did, for the report and the assertions that it reached everywhere.
#[derive(Debug, Default)]
struct Stats {
    inputs: u64,
    connections: u64,
    /// Connection errors by reply code (0: dropped without a close).
    connection_codes: BTreeMap<u16, u64>,
    /// What ended connections: reply code and input, counted.
    ended_by: BTreeMap<(u16, &'static str), u64>,
    /// Channel errors (channel.close from the broker) by reply code.
    channel_codes: BTreeMap<u16, u64>,
    /// Inputs per method of `wire::METHODS`.
    per_method: Vec<u64>,
    /// Requests answered by their own reply (not by an error).
    answered: u64,
    /// Tables past the bound refused with 501, and tables at the bound accepted.
    deep_refused: u64,
    at_bound_accepted: u64,
    /// Connections that ran out of inputs and closed with connection.close / close-ok.
    clean_closes: u64,
    secs: f64,
}

impl Stats {
    fn print(&self, label: &str) {
        eprintln!(
            "{label}: {} inputs over {} connections in {:.1} s, {:.0} inputs/s",
            self.inputs,
            self.connections,
            self.secs,
            self.inputs as f64 / self.secs.max(1e-9)
        );
        eprintln!(
            "{label}: connection errors by reply code (0: dropped): {:?}",
            self.connection_codes
        );
        let mut ended: Vec<_> = self.ended_by.iter().collect();
        ended.sort_by(|a, b| b.1.cmp(a.1));
        ended.truncate(12);
        eprintln!("{label}: most frequent connection enders (code, input): {ended:?}");
        eprintln!(
            "{label}: channel errors by reply code: {:?}",
            self.channel_codes
        );
        eprintln!(
            "{label}: {} requests answered by their reply, {} tables past the bound refused, {} at the bound accepted, {} clean closes",
            self.answered, self.deep_refused, self.at_bound_accepted, self.clean_closes
        );
        let never: Vec<&str> = wire::METHODS
            .iter()
            .zip(&self.per_method)
            .filter(|(_, n)| **n == 0)
            .map(|(m, _)| m.name)
            .collect();
        eprintln!("{label}: methods never sent: {never:?}");
    }
}

/// Where a failure happened, to replay it.
struct Place<'a> {
    seed: u64,
    connection: u64,
    input_no: u64,
    input: &'a Input,
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.input;
        let shown = &i.bytes[..i.bytes.len().min(96)];
        write!(
            f,
            "RMQ_FUZZ_SEED={:#x}, connection {}, input #{}: {} on channel {} (table depth {}, {} bytes, expected {:?}); first bytes {shown:02x?}",
            self.seed,
            self.connection,
            self.input_no,
            i.what,
            i.channel,
            i.depth,
            i.bytes.len(),
            i.expect
        )
    }
}

/// Take what the broker wrote (the writer task's job in production) and split it into
/// frames; each method frame must decode.
fn drain(conn: &ConnShared, place: &Place<'_>) -> Vec<(u16, AMQPClass)> {
    let Outbound::Data(data) = conn.take() else {
        return Vec::new();
    };
    conn.written(data.len());
    conn.released();
    let mut buf = BytesMut::from(&data[..]);
    let mut methods = Vec::new();
    loop {
        match codec::next_frame(&mut buf, u32::MAX) {
            Ok(Some(f)) if f.kind == codec::FRAME_METHOD => {
                match codec::decode_method(&f.payload) {
                    Ok(m) => methods.push((f.channel, m)),
                    Err(e) => panic!(
                        "the broker wrote a method frame it cannot decode ({}) after {place}",
                        e.text()
                    ),
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("the broker wrote a bad frame ({}) after {place}", e.text),
        }
    }
    assert!(
        buf.is_empty(),
        "the broker wrote half a frame after {place}"
    );
    methods
}

/// `(class, method)` of a decoded method.
fn ids(m: &AMQPClass) -> (u16, u16) {
    (m.get_amqp_class_id(), m.get_amqp_method_id())
}

/// One connection: inputs until its first connection error, or a clean close.
fn run_connection(
    broker: &Arc<BrokerState>,
    rng: &mut Rng,
    seed: u64,
    stats: &mut Stats,
    budget: u64,
    progress: &AtomicU64,
    trace: bool,
) {
    stats.connections += 1;
    let id = stats.connections;
    let (mut session, conn) = open_session(broker, id);
    // Small frames make large values frame errors; large ones let 20,000 levels in.
    let frame_max: usize = if rng.below(5) < 2 { 4096 } else { 131_072 };
    session.set_frame_max(frame_max as u32);
    let mut model = Model::default();
    let mut buf = BytesMut::new();
    let life = rng.range(1, 400).min(budget);
    for _ in 0..life {
        let input = inputs::next(rng, &model, frame_max);
        stats.inputs += 1;
        progress.store(stats.inputs, Ordering::Relaxed);
        let place = Place {
            seed,
            connection: id,
            input_no: stats.inputs,
            input: &input,
        };
        if trace {
            eprintln!("fuzz input: {place}");
        }
        if let Some(i) = input.method {
            stats.per_method[i] += 1;
        }
        let before = model.chans.get(&input.channel).copied();
        let closing = before.is_some_and(|c| c.closing);
        buf.extend_from_slice(&input.bytes);
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.process(&mut buf)))
                .unwrap_or_else(|_| panic!("the broker panicked on {place}"));
        let out = drain(&conn, &place);

        // The client's side of what it sent.
        if input.what == "channel.close-ok" && closing {
            model.chans.remove(&input.channel);
        }
        let lone = input.what == "basic.publish" || input.what == "content out of order";
        if lone && let Some(c) = model.chans.get_mut(&input.channel) {
            c.confused = true;
        }
        // And of what the broker answered.
        let (mut replied, mut answered) = (false, false);
        for (ch, m) in &out {
            let (class, method) = ids(m);
            if *ch == input.channel && class == input.class && input.replies.contains(&method) {
                replied = true;
                answered = true;
            }
            match m {
                AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => {
                    model.chans.insert(*ch, inputs::Chan::default());
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(c)) => {
                    *stats.channel_codes.entry(c.reply_code).or_insert(0) += 1;
                    model.chans.entry(*ch).or_default().closing = true;
                    answered |= *ch == input.channel;
                }
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                    model.chans.remove(ch);
                }
                _ => {}
            }
        }
        if replied {
            stats.answered += 1;
        }
        let code = match &result {
            Ok(()) => None,
            Err(End::Close(e)) => Some(e.code),
            Err(End::ClientClosed) => Some(0),
            Err(End::PeerGone(why)) => {
                panic!("dropped ({why}) on {place}: every method sent is defined")
            }
        };
        // A request on a channel the broker is not closing gets its reply, a channel
        // error, or a connection error.
        if !input.replies.is_empty() && !closing && code.is_none() {
            assert!(
                answered,
                "no reply to a request: {place}; the broker wrote {out:?}"
            );
        }
        match input.expect {
            Expect::FrameError => {
                assert_eq!(
                    code,
                    Some(501),
                    "expected connection.close 501 for {place}, got {result:?}"
                );
                stats.deep_refused += u64::from(input.depth > wire::MAX_DEPTH);
            }
            Expect::NoFrameError => {
                assert_ne!(
                    code,
                    Some(501),
                    "a valid input was refused as a frame error: {place}: {result:?}"
                );
                stats.at_bound_accepted += u64::from(input.depth == wire::MAX_DEPTH);
            }
            Expect::Any => {}
        }
        if result.is_ok() {
            // Rule 11: bytes already here are handled now, not after the next read.
            assert!(
                buf.is_empty(),
                "complete frames left in the buffer after {place}"
            );
        }
        if let Err(end) = result {
            let code = match end {
                End::Close(e) => e.code,
                _ => 0,
            };
            *stats.connection_codes.entry(code).or_insert(0) += 1;
            *stats.ended_by.entry((code, input.what)).or_insert(0) += 1;
            session.teardown();
            return;
        }
    }
    // Out of inputs: the client closes, and must get close-ok.
    let mut close = BytesMut::new();
    codec::put_method(
        &mut close,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    );
    let result = session.process(&mut close);
    let last = Input {
        bytes: close.to_vec(),
        what: "connection.close",
        method: None,
        channel: 0,
        depth: 0,
        replies: &[51],
        class: 10,
        expect: Expect::NoFrameError,
    };
    let place = Place {
        seed,
        connection: id,
        input_no: stats.inputs,
        input: &last,
    };
    let out = drain(&conn, &place);
    assert!(
        matches!(result, Err(End::ClientClosed))
            && out.iter().any(|(ch, m)| *ch == 0 && ids(m) == (10, 51)),
        "connection.close not answered with close-ok: {result:?}, {out:?} at {place}"
    );
    stats.clean_closes += 1;
    session.teardown();
}

/// Run `inputs` inputs from `seed` on a thread with the broker's stack, under a watchdog.
fn fuzz(inputs: u64, seed: u64) -> Stats {
    let progress = Arc::new(AtomicU64::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let trace = std::env::var_os("RMQ_FUZZ_TRACE").is_some_and(|v| v != "0");
    let worker = {
        let progress = progress.clone();
        std::thread::Builder::new()
            // In the abort message of a stack overflow, with the seed that replays it.
            .name(format!("structured-fuzz-seed-{seed:#x}"))
            .stack_size(BROKER_STACK)
            .spawn(move || {
                let fresh =
                    || Arc::new(BrokerState::open(BrokerConfig::default()).expect("broker"));
                let mut broker = fresh();
                let mut rng = Rng::new(seed);
                let mut stats = Stats {
                    per_method: vec![0; wire::METHODS.len()],
                    ..Stats::default()
                };
                let started = Instant::now();
                while stats.inputs < inputs {
                    let left = inputs - stats.inputs;
                    run_connection(&broker, &mut rng, seed, &mut stats, left, &progress, trace);
                    // Declared queues and exchanges pile up (most names are random): a
                    // fresh broker now and then keeps a long run's memory flat.
                    if stats.connections.is_multiple_of(RESET_EVERY) {
                        still_serving(&broker, "after-structured-fuzz");
                        broker = fresh();
                    }
                }
                stats.secs = started.elapsed().as_secs_f64();
                still_serving(&broker, "after-structured-fuzz");
                let _ = tx.send(stats);
            })
            .expect("spawn the fuzzing thread")
    };
    let mut seen = 0;
    loop {
        match rx.recv_timeout(STALL) {
            Ok(stats) => {
                let _ = worker.join();
                return stats;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let now = progress.load(Ordering::Relaxed);
                assert!(
                    now != seen,
                    "input #{} hangs: no progress in {STALL:?} (RMQ_FUZZ_SEED={seed:#x}, RMQ_FUZZ_TRACE=1 shows it)",
                    now
                );
                seen = now;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the worker sends its stats before it ends"),
            },
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.replace('_', "").parse().ok(),
    }
}

#[test]
fn structured_frames_never_panic() {
    // Fixed by default: every `cargo test` runs the same inputs.
    let seed = env_u64("RMQ_FUZZ_SEED").unwrap_or(0x5EED_0001);
    let stats = fuzz(200_000, seed);
    stats.print("structured fuzz");
    // The inputs reached what they are for.
    assert!(
        stats.deep_refused > 100 && stats.at_bound_accepted > 100,
        "{stats:?}"
    );
    assert!(
        stats.answered > 10_000 && stats.clean_closes > 10,
        "{stats:?}"
    );
    assert!(stats.per_method.iter().all(|n| *n > 0), "every method sent");
}

/// The long run: `RMQ_FUZZ_INPUTS` inputs (10 million by default) from a fresh seed.
#[test]
#[ignore = "long: cargo test --lib structured_frames_long -- --ignored --nocapture"]
fn structured_frames_long() {
    let inputs = env_u64("RMQ_FUZZ_INPUTS").unwrap_or(10_000_000);
    let seed = env_u64("RMQ_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("structured fuzz: {inputs} inputs, RMQ_FUZZ_SEED={seed:#x}");
    // Errors only: millions of channel errors would otherwise be logged, and held in
    // memory by the test harness's output capture.
    super::log::set_level(0);
    let stats = fuzz(inputs, seed);
    stats.print("structured fuzz");
    assert!(stats.inputs >= inputs);
}
