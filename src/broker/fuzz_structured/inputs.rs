//! The in-process fuzzer's inputs: one method (any of AMQP 0-9-1's, with each field at
//! its bounds), a publish with its content, channel 0 traffic, a table nested past the
//! bound, an oversized frame. Each says what the broker must do with it, judged from the
//! bytes alone (`Expect`), and which replies answer it if it is a request.

use super::wire::{self, Args, F, MAX_DEPTH, METHODS, MethodSpec, Props, Rng, Shape};
use std::collections::HashMap;
use std::sync::OnceLock;

/// What the broker must do with an input, beyond never panicking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// Anything clean: the input is semantically odd (a short string that is not UTF-8,
    /// content frames on a channel that may be mid-content).
    Any,
    /// Structurally valid: whatever the broker makes of it, not 501 FRAME_ERROR.
    NoFrameError,
    /// A frame the broker must refuse from its structure (a table nested deeper than
    /// [`MAX_DEPTH`], a payload over frame_max): connection.close 501.
    FrameError,
}

/// One input: the frames, and how to judge what the broker makes of them.
#[derive(Debug)]
pub(super) struct Input {
    pub(super) bytes: Vec<u8>,
    /// What it is, for reports (a method's name, "heartbeat", ...).
    pub(super) what: &'static str,
    /// The method sent, as an index into `METHODS` (coverage counts).
    pub(super) method: Option<usize>,
    pub(super) channel: u16,
    /// The deepest table in it.
    pub(super) depth: usize,
    /// A request waiting for one of these methods (of its class, on its channel).
    pub(super) replies: &'static [u16],
    pub(super) class: u16,
    pub(super) expect: Expect,
}

/// A channel as the fuzzer's client believes the broker sees it; absent: not open.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Chan {
    /// The broker sent channel.close and drops everything but close/close-ok.
    pub(super) closing: bool,
    /// The broker may be in the middle of a message's content on it (we sent a lone
    /// publish or content frame): content frames there prove nothing.
    pub(super) confused: bool,
}

/// The client's view of its channels.
#[derive(Debug, Default)]
pub(super) struct Model {
    pub(super) chans: HashMap<u16, Chan>,
}

/// Channels a session uses; 8 is the channel_max `open_session` negotiates.
const CHANNELS: &[u16] = &[1, 2, 3, 8];
/// Channel numbers past channel_max, and 0 (where only connection methods belong).
const ODD_CHANNELS: &[u16] = &[0, 9, 0xFFFF];

/// What a client sends on an open channel (the rest of `METHODS` it should not).
const CLIENT_CHANNEL_METHODS: &[&str] = &[
    "channel.flow",
    "channel.close",
    "access.request",
    "exchange.declare",
    "exchange.delete",
    "exchange.bind",
    "exchange.unbind",
    "queue.declare",
    "queue.bind",
    "queue.purge",
    "queue.delete",
    "queue.unbind",
    "basic.qos",
    "basic.consume",
    "basic.cancel",
    "basic.publish",
    "basic.get",
    "basic.ack",
    "basic.reject",
    "basic.recover-async",
    "basic.recover",
    "basic.nack",
    "confirm.select",
    "tx.select",
    "tx.commit",
    "tx.rollback",
];

/// Names and keys shared by all inputs, so declares, binds, publishes and gets meet.
const NAMES: &[&[u8]] = &[
    b"",
    b"q",
    b"q2",
    b"fz",
    b"dlx",
    b"amq.direct",
    b"amq.fanout",
    b"amq.topic",
    b"amq.headers",
    b"amq.match",
    b"amq.gen-x",
    b"amq.rabbitmq.reply-to",
];
const KEYS: &[&[u8]] = &[b"", b"q", b"q2", b"fz", b"#", b"*", b"a.b", b"*.b", b"a.#"];
const KINDS: &[&[u8]] = &[b"direct", b"fanout", b"topic", b"headers", b"x-bogus", b""];
const TAGS: &[&[u8]] = &[b"", b"t1", b"t2"];
const VHOSTS: &[&[u8]] = &[b"/", b"", b"nope"];
const MECHANISMS: &[&[u8]] = &[b"PLAIN", b"AMQPLAIN", b"EXTERNAL", b""];
const X_ARGS: &[&[u8]] = &[
    b"x-message-ttl",
    b"x-expires",
    b"x-max-length",
    b"x-max-length-bytes",
    b"x-overflow",
    b"x-dead-letter-exchange",
    b"x-dead-letter-routing-key",
    b"x-max-priority",
    b"x-single-active-consumer",
    b"x-queue-type",
    b"x-queue-mode",
    b"x-priority",
    b"x-delivery-limit",
    b"alternate-exchange",
    b"x-match",
    b"CC",
    b"BCC",
];
const X_STRINGS: &[&[u8]] = &[
    b"",
    b"drop-head",
    b"reject-publish",
    b"reject-publish-dlx",
    b"classic",
    b"quorum",
    b"stream",
    b"lazy",
    b"all",
    b"any",
    b"dlx",
    b"q",
];
const EXPIRATIONS: &[&[u8]] = &[
    b"0",
    b"1",
    b"60000",
    b"-1",
    b"-0",
    b"abc",
    b"",
    b"315360000000",
    b"315360000001",
    b"99999999999999999999999999",
];

/// Field values for one method, and what they make of it.
struct Fields {
    args: Args,
    depth: usize,
    /// A short string or method-table key that is not UTF-8 (RabbitMQ takes any bytes;
    /// the broker need not).
    lenient: bool,
    nowait: bool,
}

fn short_from(rng: &mut Rng, pool: &[&[u8]], f: &mut Fields) -> Vec<u8> {
    if rng.below(10) < 7 {
        return rng.pick(pool).to_vec();
    }
    let invalid = rng.one_in(40);
    let s = wire::extreme_short(rng, invalid);
    f.lenient |= std::str::from_utf8(&s).is_err();
    s
}

/// A small integer (reserved fields, counts, delivery tags) or one at an edge.
fn number(rng: &mut Rng) -> u64 {
    if rng.bool() {
        // Often 0: a prefetch size of anything else ends the connection (540).
        rng.below(6).saturating_sub(3)
    } else {
        wire::edge(rng)
    }
}

/// A table of `x-` arguments with values of any type (the broker's checks of each).
fn x_args(rng: &mut Rng) -> Vec<u8> {
    let mut entries = Vec::new();
    for _ in 0..rng.range(1, 4) {
        let k = *rng.pick::<&[u8]>(X_ARGS);
        wire::put_short(&mut entries, k);
        if rng.bool() {
            entries.push(b'S');
            let v = *rng.pick::<&[u8]>(X_STRINGS);
            wire::put_long(&mut entries, v);
        } else {
            let tag = *rng.pick(b"tbBsuIilfdDTxV");
            wire::put_scalar(rng, &mut entries, tag);
        }
    }
    let mut t = (entries.len() as u32).to_be_bytes().to_vec();
    t.extend_from_slice(&entries);
    t
}

/// A table for an argument or properties field: empty, `x-` arguments, or a generated
/// shape (many entries, every type, nested up to `max_depth`).
fn any_table(rng: &mut Rng, budget: usize, max_depth: usize, f: &mut Fields) -> Vec<u8> {
    let shape = match rng.below(100) {
        0..=29 => return wire::empty_table(),
        30..=64 => return x_args(rng),
        65..=93 => Shape {
            depth: rng.range(1, 6) as usize,
            breadth: rng.below(12) as usize,
            invalid_keys: rng.one_in(8),
            budget,
        },
        94 => Shape {
            depth: 1,
            breadth: rng.range(100, 5_000) as usize,
            invalid_keys: rng.one_in(8),
            budget,
        },
        _ => Shape {
            depth: rng.range(1, max_depth as u64) as usize,
            breadth: rng.below(4) as usize,
            invalid_keys: false,
            budget,
        },
    };
    let t = wire::table(rng, shape);
    f.depth = f.depth.max(t.depth);
    f.lenient |= t.invalid_keys;
    t.bytes
}

/// Arguments for `spec` at their bounds; `table` replaces the generated table, if any.
fn fields(rng: &mut Rng, spec: &MethodSpec, frame_max: usize, table: Option<&[u8]>) -> Fields {
    let mut f = Fields {
        args: Args::new(spec.class, spec.method),
        depth: 0,
        lenient: false,
        nowait: false,
    };
    // Room for a table or long string once the short strings (at most 3 x 256) are in.
    let budget = frame_max.saturating_sub(1_000).max(64);
    for (i, field) in spec.fields.iter().enumerate() {
        let mut args = std::mem::replace(&mut f.args, Args::new(0, 0));
        args = match field {
            F::Octet => args.octet(number(rng) as u8),
            F::Short => args.short(number(rng) as u16),
            F::Long => args.long(number(rng) as u32),
            F::LongLong => args.longlong(number(rng)),
            F::Bit if spec.nowait == Some(i) => {
                // Mostly waiting: a reply is what the model checks.
                f.nowait = rng.one_in(4);
                args.bit(f.nowait)
            }
            F::Bit => args.bit(rng.bool()),
            F::Rare => args.bit(rng.one_in(50)),
            F::Mostly => args.bit(!rng.one_in(50)),
            F::Name => args.shortstr(&short_from(rng, NAMES, &mut f)),
            F::Key => args.shortstr(&short_from(rng, KEYS, &mut f)),
            F::Kind => args.shortstr(&short_from(rng, KINDS, &mut f)),
            F::Tag => args.shortstr(&short_from(rng, TAGS, &mut f)),
            F::Vhost => args.shortstr(&short_from(rng, VHOSTS, &mut f)),
            F::Mechanism => args.shortstr(&short_from(rng, MECHANISMS, &mut f)),
            F::Text => {
                let invalid = rng.one_in(40);
                let s = wire::extreme_short(rng, invalid);
                f.lenient |= std::str::from_utf8(&s).is_err();
                args.shortstr(&s)
            }
            F::LongStr => {
                let len = match rng.below(10) {
                    0 => rng.below(budget as u64) as usize,
                    1 => 256,
                    _ => rng.extreme_len(255),
                };
                let s = if rng.bool() {
                    wire::invalid_utf8(rng, len.max(1))
                } else if len <= 256 {
                    wire::utf8(rng, len)
                } else {
                    wire::ascii(rng, len)
                };
                args.longstr(&s)
            }
            F::Args | F::PropsTable => match table {
                Some(t) => args.table(t),
                None => {
                    let t = any_table(rng, budget, MAX_DEPTH, &mut f);
                    args.table(&t)
                }
            },
        };
        f.args = args;
    }
    f
}

/// The judgement of a finished method or content frame from its bytes alone.
fn judge(payload_len: usize, frame_max: usize, depth: usize, lenient: bool) -> Expect {
    if payload_len > frame_max || depth > MAX_DEPTH {
        Expect::FrameError
    } else if lenient {
        Expect::Any
    } else {
        Expect::NoFrameError
    }
}

/// Content-header properties at their bounds: each present half the time (all of them a
/// quarter of the time), strings of 0 and 255 bytes, `headers` wide and deep.
fn props(rng: &mut Rng, budget: usize, headers_depth: Option<usize>) -> (Props, usize, bool) {
    let all = rng.one_in(4);
    let mut lenient = false;
    let mut depth = 0;
    let mut s = |rng: &mut Rng, pool: &[&[u8]]| -> Option<Vec<u8>> {
        if !all && rng.bool() {
            return None;
        }
        if !pool.is_empty() && rng.bool() {
            return Some(rng.pick(pool).to_vec());
        }
        let invalid = rng.one_in(30);
        let v = wire::extreme_short(rng, invalid);
        lenient |= std::str::from_utf8(&v).is_err();
        Some(v)
    };
    let mut p = Props {
        content_type: s(rng, &[]),
        content_encoding: s(rng, &[]),
        headers: None,
        delivery_mode: None,
        priority: None,
        correlation_id: s(rng, &[]),
        reply_to: s(rng, &[b"amq.rabbitmq.reply-to", b"q"]),
        expiration: s(rng, EXPIRATIONS),
        message_id: s(rng, &[]),
        timestamp: None,
        kind: s(rng, &[]),
        user_id: s(rng, &[b"guest", b"", b"other"]),
        app_id: s(rng, &[]),
        cluster_id: s(rng, &[]),
    };
    if all || rng.bool() {
        p.delivery_mode = Some(wire::edge(rng) as u8);
    }
    if all || rng.bool() {
        p.priority = Some(wire::edge(rng) as u8);
    }
    if all || rng.bool() {
        p.timestamp = Some(wire::edge(rng));
    }
    if all || rng.bool() || headers_depth.is_some() {
        let shape = match headers_depth {
            Some(d) => Shape {
                depth: d,
                breadth: rng.below(3) as usize,
                invalid_keys: true,
                budget,
            },
            None => Shape {
                depth: if rng.one_in(10) {
                    rng.range(MAX_DEPTH as u64 / 2, MAX_DEPTH as u64) as usize
                } else {
                    rng.range(1, 8) as usize
                },
                breadth: if rng.one_in(40) {
                    rng.range(100, 3_000) as usize
                } else {
                    rng.below(20) as usize
                },
                // Keys that are not UTF-8 are valid in headers: RabbitMQ takes them.
                invalid_keys: rng.one_in(4),
                budget,
            },
        };
        let t = wire::table(rng, shape);
        depth = t.depth;
        p.headers = Some(t.bytes);
    }
    (p, depth, lenient)
}

/// Append basic.publish with its content header and body frames on `ch`; returns the
/// expectation for the whole input (`headers_depth`: force a headers table this deep).
fn publish(
    rng: &mut Rng,
    out: &mut Vec<u8>,
    ch: u16,
    frame_max: usize,
    headers_depth: Option<usize>,
) -> (Expect, usize) {
    let (exchange, key) = if headers_depth.is_some() {
        // A publish that cannot fail on its own: the header's table decides.
        (b"".to_vec(), b"q".to_vec())
    } else {
        let mut f = Fields {
            args: Args::new(0, 0),
            depth: 0,
            lenient: false,
            nowait: false,
        };
        let e = short_from(rng, NAMES, &mut f);
        let k = short_from(rng, KEYS, &mut f);
        if f.lenient {
            // Names that are not UTF-8 end the connection at the method already.
            (b"".to_vec(), k.into_iter().filter(u8::is_ascii).collect())
        } else {
            (e, k)
        }
    };
    let method = Args::new(60, 40)
        .short(0)
        .shortstr(&exchange)
        .shortstr(&key)
        .bit(rng.one_in(3))
        .bit(headers_depth.is_none() && rng.one_in(50))
        .finish();
    wire::frame(out, wire::METHOD, ch, &method);
    let size = match rng.below(100) {
        0..=14 => 0,
        15..=89 => rng.range(1, 300) as usize,
        90..=98 => rng.range(301, 2 * frame_max as u64) as usize,
        _ => rng.range(1, 200_000) as usize,
    };
    // Room for every other property at 255 bytes, then the headers table.
    let budget = frame_max.saturating_sub(14 + 12 * 256 + 64).max(64);
    let (p, depth, lenient) = props(rng, budget, headers_depth);
    let class = if rng.one_in(40) {
        *rng.pick(&[10u16, 0xFFFF])
    } else {
        60
    };
    let header = wire::content_header(class, size as u64, &p);
    wire::frame(out, wire::HEADER, ch, &header);
    let fill = rng.next() as u8;
    wire::body_frames(
        rng,
        out,
        ch,
        &vec![fill; size],
        frame_max - wire::FRAME_OVERHEAD,
    );
    (judge(header.len(), frame_max, depth, lenient), depth)
}

/// A channel for an input: mostly one the model has open, else any the session uses,
/// now and then 0 or one past channel_max.
fn channel(rng: &mut Rng, model: &Model) -> u16 {
    if rng.one_in(200) {
        return *rng.pick(ODD_CHANNELS);
    }
    let open: Vec<u16> = CHANNELS
        .iter()
        .copied()
        .filter(|c| model.chans.get(c).is_some_and(|s| !s.closing))
        .collect();
    if !open.is_empty() && rng.below(20) > 0 {
        *rng.pick(&open)
    } else {
        *rng.pick(CHANNELS)
    }
}

/// An open channel that is not in the middle of content, if there is one.
fn idle_channel(rng: &mut Rng, model: &Model) -> Option<u16> {
    let idle: Vec<u16> = CHANNELS
        .iter()
        .copied()
        .filter(|c| {
            model
                .chans
                .get(c)
                .is_some_and(|s| !s.closing && !s.confused)
        })
        .collect();
    (!idle.is_empty()).then(|| *rng.pick(&idle))
}

/// A method payload of `spec` at its bounds (`table` replaces the generated table), its
/// deepest table, the judgement of it, and whether its no-wait bit is set.
pub(super) fn method_payload(
    rng: &mut Rng,
    spec: &'static MethodSpec,
    frame_max: usize,
    table: Option<(&[u8], usize)>,
) -> (Vec<u8>, usize, Expect, bool) {
    let mut f = fields(rng, spec, frame_max, table.map(|t| t.0));
    let carries = spec
        .fields
        .iter()
        .any(|f| matches!(f, F::Args | F::PropsTable));
    if let Some((_, d)) = table
        && carries
    {
        f.depth = f.depth.max(d);
    }
    let payload = f.args.finish();
    let expect = judge(payload.len(), frame_max, f.depth, f.lenient);
    (payload, f.depth, expect, f.nowait)
}

/// A channel that needs a close-ok (`true`) or that could be opened (`false`).
fn housekeeping(model: &Model) -> Option<(u16, bool)> {
    let closing = CHANNELS
        .iter()
        .find(|c| model.chans.get(c).is_some_and(|s| s.closing));
    match closing {
        Some(ch) => Some((*ch, true)),
        None => CHANNELS
            .iter()
            .find(|c| !model.chans.contains_key(c))
            .map(|ch| (*ch, false)),
    }
}

/// One method frame of `spec` on `ch`; `table` replaces the generated table.
fn method_input(
    rng: &mut Rng,
    spec: &'static MethodSpec,
    ch: u16,
    frame_max: usize,
    table: Option<(&[u8], usize)>,
) -> Input {
    let (payload, depth, expect, nowait) = method_payload(rng, spec, frame_max, table);
    let mut bytes = Vec::with_capacity(payload.len() + wire::FRAME_OVERHEAD);
    wire::frame(&mut bytes, wire::METHOD, ch, &payload);
    Input {
        bytes,
        what: spec.name,
        method: wire::method_index(spec.class, spec.method),
        channel: ch,
        depth,
        replies: if nowait { &[] } else { spec.replies },
        class: spec.class,
        expect,
    }
}

/// A method that carries a table, for the depth tests.
pub(super) fn table_method(rng: &mut Rng) -> &'static MethodSpec {
    static WITH_TABLE: OnceLock<Vec<&'static MethodSpec>> = OnceLock::new();
    let with_table = WITH_TABLE.get_or_init(|| {
        METHODS
            .iter()
            .filter(|m| {
                m.fields
                    .iter()
                    .any(|f| matches!(f, F::Args | F::PropsTable))
            })
            .collect()
    });
    with_table[rng.below(with_table.len() as u64) as usize]
}

/// A table exactly this deep that fits `frame_max`, with a little breadth.
fn deep_table(rng: &mut Rng, depth: usize, frame_max: usize) -> (Vec<u8>, usize) {
    let breadth = rng.below(3) as usize;
    let t = wire::table(
        rng,
        Shape {
            depth,
            breadth,
            invalid_keys: false,
            budget: frame_max.saturating_sub(1_100),
        },
    );
    (t.bytes, t.depth)
}

/// The next input for a session whose channels look like `model`.
pub(super) fn next(rng: &mut Rng, model: &Model, frame_max: usize) -> Input {
    // Channels first: without one, every channel method ends the connection (504).
    let none_open = !model.chans.values().any(|c| !c.closing);
    let roll = if none_open && rng.below(20) > 0 {
        0
    } else {
        rng.below(1_000)
    };
    match roll {
        // Housekeeping: answer a channel.close, or open a channel.
        0..=89 if housekeeping(model).is_some() => {
            let (ch, close_ok) = housekeeping(model).expect("checked");
            if close_ok {
                let mut bytes = Vec::new();
                wire::frame(&mut bytes, wire::METHOD, ch, &Args::new(20, 41).finish());
                return Input {
                    bytes,
                    what: "channel.close-ok",
                    method: wire::method_index(20, 41),
                    channel: ch,
                    depth: 0,
                    replies: &[],
                    class: 20,
                    expect: Expect::NoFrameError,
                };
            }
            method_input(rng, wire::spec("channel.open"), ch, frame_max, None)
        }
        // Any method of any class (mostly one a client sends on a channel), on a
        // channel that is mostly open.
        0..=679 => {
            let spec = if rng.below(4) > 0 {
                wire::spec(rng.pick::<&str>(CLIENT_CHANNEL_METHODS))
            } else {
                rng.pick(METHODS)
            };
            let ch = channel(rng, model);
            if spec.name == "basic.publish" && rng.below(5) > 0 {
                let mut bytes = Vec::new();
                let (expect, depth) = publish(rng, &mut bytes, ch, frame_max, None);
                let confused = model.chans.get(&ch).is_none_or(|c| c.confused);
                return Input {
                    bytes,
                    what: "basic.publish+content",
                    method: wire::method_index(60, 40),
                    channel: ch,
                    depth,
                    replies: &[],
                    class: 60,
                    expect: if confused && expect == Expect::NoFrameError {
                        Expect::Any
                    } else {
                        expect
                    },
                };
            }
            method_input(rng, spec, ch, frame_max, None)
        }
        // A message with extreme properties on an open channel.
        680..=779 => {
            let ch = idle_channel(rng, model).unwrap_or_else(|| channel(rng, model));
            let mut bytes = Vec::new();
            let (expect, depth) = publish(rng, &mut bytes, ch, frame_max, None);
            let confused = model.chans.get(&ch).is_none_or(|c| c.confused);
            Input {
                bytes,
                what: "basic.publish+content",
                method: wire::method_index(60, 40),
                channel: ch,
                depth,
                replies: &[],
                class: 60,
                expect: if confused && expect == Expect::NoFrameError {
                    Expect::Any
                } else {
                    expect
                },
            }
        }
        // Channel 0: heartbeats, update-secret, close, and every other connection method.
        780..=859 => {
            let mut bytes = Vec::new();
            match rng.below(10) {
                0..=3 => {
                    wire::heartbeat(&mut bytes, 0);
                    Input {
                        bytes,
                        what: "heartbeat",
                        method: None,
                        channel: 0,
                        depth: 0,
                        replies: &[],
                        class: 0,
                        expect: Expect::NoFrameError,
                    }
                }
                4..=6 => method_input(
                    rng,
                    wire::spec("connection.update-secret"),
                    0,
                    frame_max,
                    None,
                ),
                7 if rng.one_in(4) => {
                    method_input(rng, wire::spec("connection.close"), 0, frame_max, None)
                }
                _ => {
                    // The connection class comes first in METHODS.
                    let n = METHODS.iter().take_while(|m| m.class == 10).count();
                    let spec = &METHODS[rng.below(n as u64) as usize];
                    method_input(rng, spec, 0, frame_max, None)
                }
            }
        }
        // Content frames out of order: a lone header or body frame.
        860..=869 => {
            let ch = channel(rng, model);
            let mut bytes = Vec::new();
            if rng.bool() {
                let budget = frame_max.saturating_sub(4_000).max(64);
                let (p, _, _) = props(rng, budget, None);
                let header = wire::content_header(60, rng.below(100), &p);
                wire::frame(&mut bytes, wire::HEADER, ch, &header);
            } else {
                wire::frame(
                    &mut bytes,
                    wire::BODY,
                    ch,
                    &vec![0x5A; rng.below(64) as usize],
                );
            }
            Input {
                bytes,
                what: "content out of order",
                method: None,
                channel: ch,
                depth: 0,
                replies: &[],
                class: 0,
                expect: Expect::Any,
            }
        }
        // A heartbeat off channel 0: 505.
        870..=874 => {
            let ch = *rng.pick(&[1u16, 0xFFFF]);
            let mut bytes = Vec::new();
            wire::heartbeat(&mut bytes, ch);
            Input {
                bytes,
                what: "heartbeat off channel 0",
                method: None,
                channel: ch,
                depth: 0,
                replies: &[],
                class: 0,
                expect: Expect::NoFrameError,
            }
        }
        // A table right at the bound (or just under it): accepted.
        875..=939 => {
            let depth = if rng.bool() {
                MAX_DEPTH
            } else {
                rng.range(MAX_DEPTH as u64 - 8, MAX_DEPTH as u64) as usize
            };
            let (t, d) = deep_table(rng, depth, frame_max);
            let ch = channel(rng, model);
            let spec = table_method(rng);
            method_input(rng, spec, ch, frame_max, Some((&t, d)))
        }
        // A table past the bound in any method that carries one: 501.
        940..=969 => {
            let depth = if rng.one_in(60) {
                rng.range(3_000, 20_000) as usize
            } else {
                rng.range(MAX_DEPTH as u64 + 1, 200) as usize
            };
            let (t, d) = deep_table(rng, depth, frame_max);
            let ch = channel(rng, model);
            let spec = table_method(rng);
            method_input(rng, spec, ch, frame_max, Some((&t, d)))
        }
        // A message whose headers nest past the bound: 501 once the broker decodes it.
        970..=984 => {
            let depth = if rng.one_in(60) {
                rng.range(3_000, 20_000) as usize
            } else {
                rng.range(MAX_DEPTH as u64 + 1, 200) as usize
            };
            let idle = idle_channel(rng, model);
            let ch = idle.unwrap_or_else(|| channel(rng, model));
            let mut bytes = Vec::new();
            let (expect, depth) = publish(rng, &mut bytes, ch, frame_max, Some(depth));
            Input {
                bytes,
                what: "basic.publish+deep headers",
                method: wire::method_index(60, 40),
                channel: ch,
                depth,
                replies: &[],
                class: 60,
                // Only an idle open channel decodes the header; elsewhere it is dropped
                // (closing) or refused as unexpected (505) before it is decoded.
                expect: if idle.is_some() { expect } else { Expect::Any },
            }
        }
        // A frame one byte or far over frame_max, well-formed otherwise: 501.
        985..=989 => {
            let ch = channel(rng, model);
            let over = if rng.bool() {
                1
            } else {
                rng.range(2, 100_000) as usize
            };
            let mut payload = Args::new(50, 10)
                .short(0)
                .shortstr(b"q")
                .bit(false)
                .finish();
            let table_len = frame_max + over - payload.len() - 4;
            payload.extend_from_slice(&(table_len as u32).to_be_bytes());
            payload.resize(frame_max + over, b'V');
            // Void values have no key; make it a run of 1-byte keys with void values.
            for pair in payload[4 + 2 + 2 + 1 + 4..].chunks_mut(3) {
                if pair.len() == 3 {
                    pair.copy_from_slice(&[1, b'k', b'V']);
                }
            }
            let mut bytes = Vec::new();
            wire::frame(&mut bytes, wire::METHOD, ch, &payload);
            Input {
                bytes,
                what: "frame over frame_max",
                method: wire::method_index(50, 10),
                channel: ch,
                depth: 1,
                replies: &[],
                class: 50,
                expect: Expect::FrameError,
            }
        }
        // Any method on channel 0 or past channel_max.
        _ => {
            let spec = rng.pick(METHODS);
            let ch = *rng.pick(ODD_CHANNELS);
            method_input(rng, spec, ch, frame_max, None)
        }
    }
}
