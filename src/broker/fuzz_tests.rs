//! Property tests with many random frames: the frame splitter, the method decoder and a
//! whole connection's state machine (`Session`) fed random mixes of well-formed methods
//! with random arguments, content frames of random sizes and plain garbage. The property:
//! no panic, every input ends in either progress or a clean connection error, and the
//! broker's state stays usable for the next connection.
//!
//! `RMQ_FUZZ_FRAMES` sets the number of frames (default 300k, a few seconds); the test
//! prints how many it ran.

use super::config::BrokerConfig;
use super::state::BrokerState;
use crate::broker::amqp::handshake::Negotiated;
use crate::broker::amqp::session::Session;
use crate::broker::wire::outbound::{ConnShared, Outbound};
use crate::codec;
use amq_protocol::protocol::{
    AMQPClass, BasicProperties, basic, channel, confirm, exchange, queue, tx,
};
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::{BufMut, BytesMut};
use std::sync::Arc;

/// xorshift64*: deterministic, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const NAMES: &[&str] = &[
    "",
    "q",
    "q2",
    "amq.gen-x",
    "amq.direct",
    "x",
    "logs",
    "amq.rabbitmq.reply-to",
    "dlx",
];
const KEYS: &[&str] = &["", "q", "a.b", "#", "*.b", "q2", "amq.rabbitmq.reply-to.zz"];
const ARGS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-single-active-consumer",
    "x-queue-type",
    "alternate-exchange",
    "x-match",
    "x-priority",
];

fn random_value(r: &mut Rng) -> AMQPValue {
    match r.below(6) {
        0 => AMQPValue::LongInt(r.below(200) as i32 - 20),
        1 => AMQPValue::LongLongInt(r.next() as i64),
        2 => AMQPValue::LongString(
            r.pick(&["abc", "drop-head", "reject-publish", "quorum", "dlx", ""])
                .into(),
        ),
        3 => AMQPValue::Boolean(r.bool()),
        4 => AMQPValue::ShortShortUInt(r.below(256) as u8),
        _ => AMQPValue::Void,
    }
}

fn random_table(r: &mut Rng) -> FieldTable {
    let mut t = FieldTable::default();
    for _ in 0..r.below(3) {
        t.insert(r.pick(ARGS).into(), random_value(r));
    }
    t
}

fn random_method(r: &mut Rng) -> AMQPClass {
    let name = |r: &mut Rng| r.pick(NAMES).into();
    let key = |r: &mut Rng| r.pick(KEYS).into();
    match r.below(20) {
        0 => AMQPClass::Basic(basic::AMQPMethod::Reject(basic::Reject {
            delivery_tag: r.below(6),
            requeue: r.bool(),
        })),
        1 => AMQPClass::Exchange(exchange::AMQPMethod::Unbind(exchange::Unbind {
            destination: name(r),
            source: name(r),
            routing_key: key(r),
            nowait: false,
            arguments: random_table(r),
        })),
        2 => AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: name(r),
            kind: r
                .pick(&["direct", "fanout", "topic", "headers", "bogus"])
                .into(),
            passive: r.below(4) == 0,
            durable: r.bool(),
            auto_delete: r.bool(),
            internal: r.below(4) == 0,
            nowait: r.below(4) == 0,
            arguments: random_table(r),
        })),
        3 => AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
            exchange: name(r),
            if_unused: r.bool(),
            nowait: r.bool(),
        })),
        4 => AMQPClass::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
            destination: name(r),
            source: name(r),
            routing_key: key(r),
            nowait: false,
            arguments: random_table(r),
        })),
        5 | 6 => AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: name(r),
            passive: r.below(4) == 0,
            durable: r.bool(),
            exclusive: r.below(3) == 0,
            auto_delete: r.bool(),
            nowait: r.below(4) == 0,
            arguments: random_table(r),
        })),
        7 => AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: name(r),
            exchange: name(r),
            routing_key: key(r),
            nowait: false,
            arguments: random_table(r),
        })),
        8 => AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: name(r),
            if_unused: r.bool(),
            if_empty: r.bool(),
            nowait: false,
        })),
        9 => AMQPClass::Queue(queue::AMQPMethod::Purge(queue::Purge {
            queue: name(r),
            nowait: false,
        })),
        10 => AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: r.below(4) as u16,
            global: r.bool(),
        })),
        11 => AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: name(r),
            consumer_tag: if r.below(10) == 0 {
                "t1".into()
            } else {
                "".into()
            },
            no_local: false,
            no_ack: r.bool(),
            exclusive: r.below(4) == 0,
            nowait: r.below(4) == 0,
            arguments: random_table(r),
        })),
        12 => AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: r.pick(&["", "t1", "t2"]).into(),
            nowait: r.bool(),
        })),
        13 => AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: name(r),
            no_ack: r.bool(),
        })),
        14 => AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: r.below(6),
            multiple: r.bool(),
        })),
        15 => AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: r.below(6),
            multiple: r.bool(),
            requeue: r.bool(),
        })),
        16 => AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover {
            requeue: r.bool(),
        })),
        17 => AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: r.bool(),
        })),
        18 => match r.below(3) {
            0 => AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})),
            1 => AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})),
            _ => AMQPClass::Tx(tx::AMQPMethod::Rollback(tx::Rollback {})),
        },
        _ => AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: name(r),
            routing_key: key(r),
            mandatory: r.bool(),
            immediate: r.below(50) == 0,
        })),
    }
}

/// Append one random input: mostly well-formed methods on open channels, now and then
/// a channel recovery, a corrupted frame, out-of-order content or garbage.
fn random_input(r: &mut Rng, out: &mut BytesMut) {
    let ch = 1 + r.below(2) as u16;
    match r.below(100) {
        0..=86 => {
            let m = random_method(r);
            let publish = matches!(m, AMQPClass::Basic(basic::AMQPMethod::Publish(_)));
            codec::put_method(out, if r.below(100) == 0 { 0 } else { ch }, m);
            if publish {
                let size = r.below(300);
                let mut props = BasicProperties::default();
                if r.bool() {
                    props = props.with_delivery_mode(2);
                }
                if r.below(3) == 0 {
                    props = props.with_expiration(r.pick(&["0", "10", "abc", "-1"]).into());
                }
                if r.below(4) == 0 {
                    props = props.with_reply_to(r.pick(&["amq.rabbitmq.reply-to", "q"]).into());
                }
                if r.below(4) == 0 {
                    props = props.with_headers(random_table(r));
                }
                let header = crate::codec::header::encode_header(size, &props);
                let body = vec![b'z'; size as usize];
                codec::put_content(out, ch, &header, &body, 64 + r.below(200) as u32);
            }
        }
        87..=92 => {
            // Recover a channel the broker closed: close-ok, then open it again.
            codec::put_method(
                out,
                ch,
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
            );
            codec::put_method(
                out,
                ch,
                AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
            );
        }
        93..=94 => codec::put_heartbeat(out),
        95..=96 => {
            // A valid frame with a flipped bit.
            let mut f = BytesMut::new();
            codec::put_method(&mut f, ch, random_method(r));
            let i = r.below(f.len() as u64) as usize;
            f[i] ^= 1 << r.below(8);
            out.extend_from_slice(&f);
        }
        97..=98 => {
            // A content frame out of order.
            out.put_u8(if r.bool() { 2 } else { 3 });
            out.put_u16(ch);
            out.put_u32(3);
            out.put_slice(&[0, 60, 0]);
            out.put_u8(0xCE);
        }
        _ => {
            for _ in 0..r.below(24) {
                out.put_u8(r.next() as u8);
            }
        }
    }
}

/// A session as after a successful handshake (guest on `/`, frame_max 4096), with the
/// receiving end of what it writes.
pub(crate) fn open_session(broker: &Arc<BrokerState>, id: u64) -> (Session, Arc<ConnShared>) {
    let conn = ConnShared::new(id, 4096, true);
    let neg = Negotiated {
        user: "guest".into(),
        vhost: broker.vhost("/").expect("vhost /"),
        frame_max: 4096,
        channel_max: 8,
        heartbeat: 0,
        client_properties: FieldTable::default(),
        cancel_notify: true,
        blocked_notify: true,
        leftover: BytesMut::new(),
        slot: broker.conn_slots.try_acquire().expect("unlimited"),
        vhost_slot: None,
    };
    let session = Session::new(broker.clone(), conn.clone(), neg);
    (session, conn)
}

#[test]
fn random_frames_never_panic_and_end_cleanly() {
    let frames: u64 = std::env::var("RMQ_FUZZ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let broker = Arc::new(BrokerState::open(BrokerConfig::default()).expect("broker"));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ frames);
    let (mut ran, mut connections, mut errors) = (0u64, 0u64, 0u64);
    let mut codes = std::collections::BTreeMap::new();
    let started = std::time::Instant::now();
    while ran < frames {
        connections += 1;
        let (mut session, conn) = open_session(&broker, connections);
        let mut buf = BytesMut::new();
        for ch in 1..=2 {
            codec::put_method(
                &mut buf,
                ch,
                AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
            );
        }
        // A connection lives until its first connection error (or 500 inputs).
        for _ in 0..500 {
            random_input(&mut rng, &mut buf);
            ran += 1;
            let result = session.process(&mut buf);
            // Drain what the broker wrote: the writer task's job in production.
            if let Outbound::Data(d) = conn.take() {
                conn.written(d.len());
                conn.released();
            }
            if let Err(end) = result {
                errors += 1;
                let code = match end {
                    crate::broker::amqp::session::End::Close(e) => e.code,
                    _ => 0,
                };
                *codes.entry(code).or_insert(0u64) += 1;
                break;
            }
        }
        session.teardown();
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz: {ran} inputs over {connections} connections ({errors} ended by a connection error) in {secs:.1} s, {:.0} inputs/s",
        ran as f64 / secs
    );
    eprintln!("fuzz: connection errors by reply code (0: dropped): {codes:?}");
    // The broker is still consistent: a fresh connection can declare and publish.
    still_serving(&broker, "after-fuzz");
    assert!(
        errors > 0 && connections > 1,
        "the inputs reached error paths too"
    );
}

/// Whether the broker still serves after a fuzz run: a fresh connection opens a channel
/// and declares `queue`, both answered, and the queue exists.
pub(super) fn still_serving(broker: &Arc<BrokerState>, queue: &str) {
    let (mut session, conn) = open_session(broker, u64::MAX);
    let mut buf = BytesMut::new();
    codec::put_method(
        &mut buf,
        1,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    );
    codec::put_method(
        &mut buf,
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: queue.into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    assert!(session.process(&mut buf).is_ok(), "the broker still serves");
    let Outbound::Data(out) = conn.take() else {
        panic!("no answer to channel.open and queue.declare");
    };
    let mut out = BytesMut::from(&out[..]);
    let mut got = Vec::new();
    while let Ok(Some(f)) = codec::next_frame(&mut out, u32::MAX) {
        let m = codec::decode_method(&f.payload).expect("decodes");
        got.push((m.get_amqp_class_id(), m.get_amqp_method_id()));
    }
    assert_eq!(got, [(20, 11), (50, 11)]);
    assert!(broker.vhost("/").unwrap().queue(queue).is_some());
    session.teardown();
}
