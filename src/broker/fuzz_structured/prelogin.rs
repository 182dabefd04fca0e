//! Before login: what an unauthenticated peer controls. Channel 0 payloads through
//! `codec::decode_method`, AMQPLAIN and PLAIN responses through `handshake::credentials`,
//! and whole handshakes through `handshake::negotiate` over an in-memory pipe. Tables
//! there are nested up to 20,000 levels: before login, a stack overflow would let anyone
//! who can reach the port abort the broker.

use super::inputs::{self, Expect};
use super::wire::{self, Args, MAX_DEPTH, METHODS, Rng, Shape};
use super::{BROKER_STACK, env_u64};
use crate::broker::amqp::handshake::{credentials, negotiate};
use crate::broker::config::BrokerConfig;
use crate::broker::state::BrokerState;
use crate::codec;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A depth for a pre-login table: mostly ordinary, often at or past the bound.
fn depth(rng: &mut Rng) -> usize {
    match rng.below(50) {
        0..=24 => rng.range(1, 8) as usize,
        25..=29 => MAX_DEPTH,
        30..=34 => rng.range(MAX_DEPTH as u64 / 2, MAX_DEPTH as u64) as usize,
        35..=48 => rng.range(MAX_DEPTH as u64 + 1, 300) as usize,
        _ => rng.range(3_000, 20_000) as usize,
    }
}

/// A table of that depth in a 128 KiB frame, keys sometimes not UTF-8.
fn table(rng: &mut Rng, depth: usize, invalid_keys: bool) -> wire::Table {
    let breadth = rng.below(6) as usize;
    wire::table(
        rng,
        Shape {
            depth,
            breadth,
            invalid_keys,
            budget: 120_000,
        },
    )
}

/// Channel 0 payloads, and any other method, through the method decoder.
fn decode_cases(rng: &mut Rng, n: u64) -> (u64, u64) {
    let (mut refused, mut accepted) = (0, 0);
    let connection: Vec<_> = METHODS.iter().filter(|m| m.class == 10).collect();
    for _ in 0..n {
        let spec = if rng.below(4) > 0 {
            *rng.pick(&connection)
        } else {
            inputs::table_method(rng)
        };
        let d = depth(rng);
        let t = table(rng, d, false);
        let (payload, d, expect, _) =
            inputs::method_payload(rng, spec, 131_072, Some((&t.bytes, t.depth)));
        let decoded = codec::decode_method(&payload);
        let has_table = spec
            .fields
            .iter()
            .any(|f| matches!(f, wire::F::Args | wire::F::PropsTable));
        match expect {
            Expect::FrameError if has_table && payload.len() <= 131_072 => {
                assert!(
                    decoded.is_err(),
                    "{} with a table {d} levels deep was decoded",
                    spec.name
                );
                refused += 1;
            }
            Expect::NoFrameError => {
                let m = decoded.unwrap_or_else(|e| {
                    panic!(
                        "valid {} (table depth {d}) refused: {}",
                        spec.name,
                        e.text()
                    )
                });
                assert_eq!(
                    (m.get_amqp_class_id(), m.get_amqp_method_id()),
                    (spec.class, spec.method)
                );
                accepted += u64::from(d == MAX_DEPTH);
            }
            _ => {}
        }
    }
    (refused, accepted)
}

/// `table` with LOGIN and PASSWORD entries (long strings) put first.
fn with_login(table: &[u8], login: &[u8], password: &[u8]) -> Vec<u8> {
    let mut entries = Vec::new();
    wire::put_short(&mut entries, b"LOGIN");
    entries.push(b'S');
    wire::put_long(&mut entries, login);
    wire::put_short(&mut entries, b"PASSWORD");
    entries.push(b'S');
    wire::put_long(&mut entries, password);
    let len = u32::from_be_bytes([table[0], table[1], table[2], table[3]]) as usize;
    let mut out = ((len + entries.len()) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&entries);
    out.extend_from_slice(&table[4..]);
    out
}

/// AMQPLAIN and PLAIN responses through the credential parser.
fn credential_cases(rng: &mut Rng, n: u64) {
    for _ in 0..n {
        let len = rng.extreme_len(300);
        let login = wire::utf8(rng, len);
        let len = rng.extreme_len(300);
        let password = wire::utf8(rng, len);
        let d = depth(rng);
        let invalid = rng.one_in(4);
        let t = table(rng, d, invalid);
        let framed = with_login(&t.bytes, &login, &password);
        // AMQPLAIN's response is the table without its length prefix.
        let got = credentials("AMQPLAIN", &framed[4..]);
        if t.depth > MAX_DEPTH {
            assert_eq!(
                got, None,
                "an AMQPLAIN table {} levels deep was read",
                t.depth
            );
        } else {
            let want = (
                String::from_utf8(login.clone()).unwrap(),
                String::from_utf8(password.clone()).unwrap(),
            );
            assert_eq!(
                got,
                Some(want),
                "AMQPLAIN with a table {} levels deep",
                t.depth
            );
        }
        // PLAIN: `authzid NUL user NUL password`, with bytes of any kind.
        let mut plain = wire::extreme_short(rng, true);
        plain.push(0);
        plain.extend_from_slice(&login);
        plain.push(0);
        plain.extend_from_slice(&password);
        // No NUL in any of the three (the generators make none): they split exactly.
        let got = credentials("PLAIN", &plain);
        assert_eq!(
            got.map(|(l, p)| (l.into_bytes(), p.into_bytes())),
            Some((login, password)),
            "PLAIN {plain:02x?}"
        );
        let mut junk = Vec::new();
        let len = rng.extreme_len(64);
        wire::put_scalar(rng, &mut junk, b'x');
        junk.truncate(len);
        let mechanism = *rng.pick(&["PLAIN", "AMQPLAIN", "EXTERNAL"]);
        let _ = credentials(mechanism, &junk);
    }
}

/// What a generated handshake should come to.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Open, with this frame_max and channel_max.
    Open { frame_max: u32, channel_max: u16 },
    /// Refused or dropped; `before_tune`: never told the tune (refused at start-ok).
    Refused { before_tune: bool },
    /// Cut short or odd: either way, but bounded and without a panic.
    Either,
}

/// A client's side of a handshake, whole, with the outcome it should have and the bytes
/// pipelined after connection.open.
fn handshake_script(rng: &mut Rng, config: &BrokerConfig) -> (Vec<u8>, Outcome, Vec<u8>) {
    let mut out = Vec::new();
    if rng.one_in(50) {
        out.extend_from_slice(b"AMQP\x00\x00\x09\x02");
        return (out, Outcome::Refused { before_tune: true }, Vec::new());
    }
    out.extend_from_slice(wire::PROTOCOL_HEADER);
    let mut either = false;
    // start-ok: client properties of any depth, PLAIN or AMQPLAIN, good or bad login.
    let (d, invalid) = (depth(rng), rng.one_in(4));
    let props = table(rng, d, invalid);
    let good = rng.below(10) < 8;
    let password: &[u8] = if good { b"guest" } else { b"wrong" };
    let (mechanism, response): (&[u8], Vec<u8>) = match rng.below(10) {
        0..=5 => (b"PLAIN", [&b"\0guest\0"[..], password].concat()),
        6..=8 => {
            let creds = with_login(&wire::empty_table(), b"guest", password);
            (b"AMQPLAIN", creds[4..].to_vec())
        }
        _ => (b"EXTERNAL", Vec::new()),
    };
    let login = good && mechanism != b"EXTERNAL";
    let locale = wire::extreme_short(rng, false);
    let start_ok = Args::new(10, 11)
        .table(&props.bytes)
        .shortstr(mechanism)
        .longstr(&response)
        .shortstr(&locale)
        .finish();
    wire::frame(&mut out, wire::METHOD, 0, &start_ok);
    if rng.one_in(8) {
        wire::heartbeat(&mut out, 0);
    }
    if props.depth > MAX_DEPTH {
        return (out, Outcome::Refused { before_tune: true }, Vec::new());
    }
    if props.invalid_keys {
        // Keys that are not UTF-8 in client properties: RabbitMQ takes them; the issue
        // promises it for message headers only.
        either = true;
    }
    if !login {
        return (
            out,
            if either {
                Outcome::Either
            } else {
                Outcome::Refused { before_tune: true }
            },
            Vec::new(),
        );
    }
    // tune-ok at its bounds: 0 means "no limit" (the server's), under 4096 is refused.
    let channel_max = wire::edge(rng) as u16;
    let random = rng.next() as u32;
    let frame_max = *rng.pick(&[0u32, 4095, 4096, 131_072, 131_073, u32::MAX, random]);
    let heartbeat = wire::edge(rng) as u16;
    let tune_ok = Args::new(10, 31)
        .short(channel_max)
        .long(frame_max)
        .short(heartbeat)
        .finish();
    wire::frame(&mut out, wire::METHOD, 0, &tune_ok);
    let agreed_frame = match frame_max {
        0 => config.frame_max,
        n => n.min(config.frame_max),
    };
    if agreed_frame < 4096 {
        return (
            out,
            if either {
                Outcome::Either
            } else {
                Outcome::Refused { before_tune: false }
            },
            Vec::new(),
        );
    }
    let vhost: &[u8] = if rng.below(10) < 9 { b"/" } else { b"nope" };
    let open = Args::new(10, 40)
        .shortstr(vhost)
        .shortstr(&wire::extreme_short(rng, false))
        .bit(rng.bool())
        .finish();
    wire::frame(&mut out, wire::METHOD, 0, &open);
    // What a pipelining client sends right behind: it must come out as the leftover.
    let mut pipelined = Vec::new();
    for _ in 0..rng.below(3) {
        wire::frame(
            &mut pipelined,
            wire::METHOD,
            rng.range(1, 3) as u16,
            &Args::new(20, 10).shortstr(b"").finish(),
        );
        wire::heartbeat(&mut pipelined, 0);
    }
    out.extend_from_slice(&pipelined);
    let outcome = if either {
        Outcome::Either
    } else if vhost != b"/" {
        Outcome::Refused { before_tune: false }
    } else {
        Outcome::Open {
            frame_max: agreed_frame,
            channel_max: match channel_max {
                0 => config.channel_max,
                n => n.min(config.channel_max),
            },
        }
    };
    (out, outcome, pipelined)
}

/// Whole handshakes through `negotiate` over an in-memory pipe, now and then cut short.
fn handshake_cases(rng: &mut Rng, n: u64) -> u64 {
    let broker = BrokerState::open(BrokerConfig::default()).expect("broker");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let peer = "127.0.0.1:40000".parse().expect("address");
    let mut opened = 0;
    for i in 0..n {
        let (mut script, mut outcome, pipelined) = handshake_script(rng, &broker.config);
        if rng.one_in(10) {
            let cut = rng.below(script.len() as u64) as usize;
            script.truncate(cut);
            outcome = Outcome::Either;
        }
        let (result, written, rest) = rt.block_on(async {
            let (mut client, mut server) = tokio::io::duplex(script.len() + (1 << 16));
            client.write_all(&script).await.expect("fits the pipe");
            // The peer's end of input: every read past it sees end-of-file, so waits end.
            client.shutdown().await.expect("shutdown");
            let result = tokio::time::timeout(
                Duration::from_secs(10),
                negotiate(&broker, &mut server, peer),
            )
            .await
            .unwrap_or_else(|_| panic!("handshake #{i} hung: {script:02x?}"));
            // What negotiate did not read stays in the pipe, behind its leftover.
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.expect("read the rest");
            drop(server);
            let mut written = Vec::new();
            client.read_to_end(&mut written).await.expect("read");
            (result, written, rest)
        });
        let mut buf = bytes::BytesMut::from(&written[..]);
        let mut told_tune = false;
        while let Ok(Some(f)) = codec::next_frame(&mut buf, u32::MAX) {
            let m = codec::decode_method(&f.payload).expect("the broker's frames decode");
            told_tune |= (m.get_amqp_class_id(), m.get_amqp_method_id()) == (10, 30);
        }
        match (&outcome, result) {
            (
                Outcome::Open {
                    frame_max,
                    channel_max,
                },
                Ok(neg),
            ) => {
                assert_eq!((neg.frame_max, neg.channel_max), (*frame_max, *channel_max));
                let kept = [&neg.leftover[..], &rest[..]].concat();
                assert_eq!(kept, pipelined, "pipelined bytes kept, in order");
                opened += 1;
            }
            (Outcome::Refused { before_tune }, Err(_)) => {
                assert!(
                    !(*before_tune && told_tune),
                    "handshake #{i} went on to tune"
                );
            }
            (Outcome::Either, _) => {}
            (want, Ok(_)) => panic!("handshake #{i} opened, expected {want:?}: {script:02x?}"),
            (want, Err(e)) => panic!("handshake #{i} refused ({e:?}), expected {want:?}"),
        }
    }
    opened
}

#[test]
fn prelogin_inputs_never_panic() {
    let seed = env_u64("RMQ_FUZZ_SEED").unwrap_or(0x5EED_0002);
    let scale = env_u64("RMQ_FUZZ_PRELOGIN").unwrap_or(1);
    // On a broker-sized stack: an overflow here is one the broker would suffer.
    let worker = std::thread::Builder::new()
        .name(format!("prelogin-fuzz-seed-{seed:#x}"))
        .stack_size(BROKER_STACK)
        .spawn(move || {
            let mut rng = Rng::new(seed);
            let (refused, accepted) = decode_cases(&mut rng, 10_000 * scale);
            credential_cases(&mut rng, 3_000 * scale);
            let opened = handshake_cases(&mut rng, 1_000 * scale);
            (refused, accepted, opened)
        })
        .expect("spawn");
    let (refused, accepted, opened) = worker
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    eprintln!(
        "prelogin fuzz: {refused} deep tables refused, {accepted} at the bound decoded, {opened} handshakes opened"
    );
    assert!(
        refused > 500 && accepted > 100 && opened > 100,
        "the cases reached every path: {refused} refused, {accepted} at the bound, {opened} opened"
    );
}
