//! Valid sessions — handshake, channel, declares, a message with every property, get,
//! closes — with their arguments at the bounds, and the replies the broker owes them.

use super::wire::{self, Args, MAX_DEPTH, Props, Rng, Shape};

/// A reply a session must get, in order (heartbeats and publisher confirms aside).
#[derive(Debug, Clone)]
pub(super) enum Want {
    Method(u16, u16, u16),
    /// basic.get-ok, then this content header (the publisher's bytes, unchanged) and body.
    Message {
        channel: u16,
        header: Vec<u8>,
        body: Vec<u8>,
    },
    /// channel.close (channel > 0) or connection.close with this code and text start.
    Close {
        channel: u16,
        code: u16,
        text: &'static str,
    },
}

/// A session's bytes and what the broker must answer.
pub(super) struct Script {
    pub(super) bytes: Vec<u8>,
    pub(super) wants: Vec<Want>,
    /// Ends with a connection.close from the broker, to be answered with close-ok.
    pub(super) broker_closes: bool,
    /// Refused before login: the socket is dropped after connection.start.
    pub(super) refused_before_login: bool,
    /// Publisher confirms may arrive anywhere after confirm.select.
    pub(super) confirms: bool,
    /// Where the bytes after connection.open start (sessions that log in).
    pub(super) login_end: Option<usize>,
    pub(super) label: String,
}

/// A short string that is valid UTF-8, at its bounds (the broker need not take others).
fn valid_short(rng: &mut Rng) -> Vec<u8> {
    wire::extreme_short(rng, false)
}

/// A name of exactly `len` bytes (at least the prefix's), unique to this session,
/// multi-byte characters included.
pub(super) fn name(rng: &mut Rng, prefix: &str, len: usize) -> Vec<u8> {
    let mut n = prefix.as_bytes().to_vec();
    let rest = len.saturating_sub(n.len());
    n.extend_from_slice(&wire::utf8(rng, rest));
    n
}

/// A table for a valid session: shallow, wide (thousands of entries), or at the depth
/// bound; keys that are not UTF-8 only where `invalid_keys`.
fn valid_table(rng: &mut Rng, budget: usize, invalid_keys: bool) -> (Vec<u8>, usize) {
    let shape = match rng.below(8) {
        0 => return (wire::empty_table(), 1),
        1 => Shape {
            depth: 1,
            breadth: rng.range(100, 3_000) as usize,
            invalid_keys,
            budget,
        },
        2 => Shape {
            depth: rng.range(MAX_DEPTH as u64 - 4, MAX_DEPTH as u64) as usize,
            breadth: rng.below(3) as usize,
            invalid_keys,
            budget,
        },
        _ => Shape {
            depth: rng.range(1, 8) as usize,
            breadth: rng.below(20) as usize,
            invalid_keys,
            budget,
        },
    };
    let t = wire::table(rng, shape);
    (t.bytes, t.depth)
}

/// The handshake: header, start-ok (client properties of any valid shape within
/// `budget`, PLAIN or AMQPLAIN), tune-ok at its bounds, open. Returns the negotiated
/// frame_max and channel_max.
pub(super) fn handshake(
    rng: &mut Rng,
    out: &mut Vec<u8>,
    wants: &mut Vec<Want>,
    budget: usize,
) -> (usize, u16) {
    out.extend_from_slice(wire::PROTOCOL_HEADER);
    wants.push(Want::Method(0, 10, 10));
    let (props, _) = valid_table(rng, budget, false);
    let (mechanism, response): (&[u8], Vec<u8>) = if rng.bool() {
        (b"PLAIN", b"\0guest\0guest".to_vec())
    } else {
        let mut entries = Vec::new();
        wire::put_short(&mut entries, b"LOGIN");
        entries.push(b'S');
        wire::put_long(&mut entries, b"guest");
        wire::put_short(&mut entries, b"PASSWORD");
        entries.push(b'S');
        wire::put_long(&mut entries, b"guest");
        (b"AMQPLAIN", entries)
    };
    let locale = if rng.bool() {
        b"en_US".to_vec()
    } else {
        valid_short(rng)
    };
    let start_ok = Args::new(10, 11)
        .table(&props)
        .shortstr(mechanism)
        .longstr(&response)
        .shortstr(&locale)
        .finish();
    wire::frame(out, wire::METHOD, 0, &start_ok);
    wants.push(Want::Method(0, 10, 30));
    // tune-ok at its bounds: 0 is "the server's", larger is cut to the server's.
    let (frame_max, asked) = if rng.one_in(4) {
        (4096, 4096)
    } else {
        (131_072, *rng.pick(&[0, 131_072, 200_000, u32::MAX]))
    };
    let (channel_max, asked_channels) = match rng.below(4) {
        0 => (2047, 0),
        1 => (2047, u16::MAX),
        _ => {
            let n = rng.range(1, 2047) as u16;
            (n, n)
        }
    };
    let heartbeat = *rng.pick(&[0u16, 600, u16::MAX]);
    let tune_ok = Args::new(10, 31)
        .short(asked_channels)
        .long(asked)
        .short(heartbeat)
        .finish();
    wire::frame(out, wire::METHOD, 0, &tune_ok);
    let open = Args::new(10, 40)
        .shortstr(b"/")
        .shortstr(&valid_short(rng))
        .bit(rng.bool())
        .finish();
    wire::frame(out, wire::METHOD, 0, &open);
    wants.push(Want::Method(0, 10, 41));
    (frame_max, channel_max)
}

/// A whole valid session.
pub(super) fn valid_session(rng: &mut Rng, n: u64) -> Script {
    let mut out = Vec::new();
    let mut wants = Vec::new();
    // A compact session fits the broker's first read whole: what follows
    // connection.open is then already buffered when the handshake ends.
    let compact = rng.one_in(3);
    let (frame_max, channel_max) = handshake(
        rng,
        &mut out,
        &mut wants,
        if compact { 200 } else { 100_000 },
    );
    let login_end = out.len();
    // Room in a frame for a table beside a few short strings.
    let room = if compact { 200 } else { frame_max - 2_000 };
    let ch = if rng.bool() { 1 } else { channel_max };
    let heartbeat = |rng: &mut Rng, out: &mut Vec<u8>| {
        if rng.one_in(4) {
            wire::heartbeat(out, 0);
        }
    };
    wire::frame(
        &mut out,
        wire::METHOD,
        ch,
        &Args::new(20, 10).shortstr(&valid_short(rng)).finish(),
    );
    wants.push(Want::Method(ch, 20, 11));
    heartbeat(rng, &mut out);
    if rng.one_in(3) {
        let qos = Args::new(60, 10)
            .long(0)
            .short(wire::edge(rng) as u16)
            .bit(rng.bool())
            .finish();
        wire::frame(&mut out, wire::METHOD, ch, &qos);
        wants.push(Want::Method(ch, 60, 11));
    }
    if rng.one_in(4) {
        wire::frame(
            &mut out,
            wire::METHOD,
            ch,
            &Args::new(20, 20).bit(true).finish(),
        );
        wants.push(Want::Method(ch, 20, 21));
    }
    if rng.one_in(4) {
        let request = Args::new(30, 10)
            .shortstr(&valid_short(rng))
            .bit(rng.bool())
            .bit(rng.bool())
            .bit(rng.bool())
            .bit(rng.bool())
            .bit(rng.bool())
            .finish();
        wire::frame(&mut out, wire::METHOD, ch, &request);
        wants.push(Want::Method(ch, 30, 11));
    }
    if rng.one_in(4) {
        let len = rng.extreme_len(room.min(100_000));
        let secret = Args::new(10, 70)
            .longstr(&wire::ascii(rng, len))
            .shortstr(&valid_short(rng))
            .finish();
        wire::frame(&mut out, wire::METHOD, 0, &secret);
        wants.push(Want::Method(0, 10, 71));
    }
    if rng.one_in(3) {
        let len = rng.range(12, 255) as usize;
        let (args, _) = valid_table(rng, room, false);
        let declare = Args::new(40, 10)
            .short(wire::edge(rng) as u16)
            .shortstr(&name(rng, &format!("fx{n}-"), len))
            .shortstr(rng.pick::<&[u8]>(&[b"direct", b"fanout", b"topic", b"headers"]))
            .bit(false)
            .bit(rng.bool())
            .bit(rng.bool())
            .bit(false)
            .bit(false)
            .table(&args)
            .finish();
        wire::frame(&mut out, wire::METHOD, ch, &declare);
        wants.push(Want::Method(ch, 40, 11));
    }
    let mode = rng.below(3);
    match mode {
        1 => {
            wire::frame(
                &mut out,
                wire::METHOD,
                ch,
                &Args::new(85, 10).bit(false).finish(),
            );
            wants.push(Want::Method(ch, 85, 11));
        }
        2 => {
            wire::frame(&mut out, wire::METHOD, ch, &Args::new(90, 10).finish());
            wants.push(Want::Method(ch, 90, 11));
        }
        _ => {}
    }
    // The queue: a unique name of up to 255 bytes, multi-byte characters included.
    let len = if rng.bool() {
        255
    } else {
        rng.range(12, 254) as usize
    };
    let queue = name(rng, &format!("fz{n}-"), len);
    let (args, _) = valid_table(rng, room, false);
    let declare = Args::new(50, 10)
        .short(wire::edge(rng) as u16)
        .shortstr(&queue)
        .bit(false)
        .bit(rng.bool())
        .bit(rng.bool())
        .bit(rng.bool())
        .bit(false)
        .table(&args)
        .finish();
    wire::frame(&mut out, wire::METHOD, ch, &declare);
    wants.push(Want::Method(ch, 50, 11));
    heartbeat(rng, &mut out);
    // The message: every property at a valid extreme, headers wide or deep.
    let publish = Args::new(60, 40)
        .short(wire::edge(rng) as u16)
        .shortstr(b"")
        .shortstr(&queue)
        .bit(rng.bool())
        .bit(false)
        .finish();
    wire::frame(&mut out, wire::METHOD, ch, &publish);
    let props = valid_props(rng, frame_max, room);
    let size = match rng.below(10) {
        0 => 0,
        1 => 255,
        2..=5 => rng.range(1, 300) as usize,
        _ if compact => rng.range(1, 300) as usize,
        6 => rng.range(100_000, 300_000) as usize,
        _ => rng.range(1, 3 * frame_max as u64) as usize,
    };
    let body: Vec<u8> = (0..size).map(|i| (i * 31 + n as usize) as u8).collect();
    let header = wire::content_header(60, size as u64, &props);
    wire::frame(&mut out, wire::HEADER, ch, &header);
    wire::body_frames(rng, &mut out, ch, &body, frame_max - wire::FRAME_OVERHEAD);
    if mode == 2 {
        wire::frame(&mut out, wire::METHOD, ch, &Args::new(90, 20).finish());
        wants.push(Want::Method(ch, 90, 21));
    }
    heartbeat(rng, &mut out);
    let get = Args::new(60, 70)
        .short(0)
        .shortstr(&queue)
        .bit(rng.bool())
        .finish();
    wire::frame(&mut out, wire::METHOD, ch, &get);
    wants.push(Want::Message {
        channel: ch,
        header,
        body,
    });
    close_both(rng, &mut out, &mut wants, ch);
    Script {
        bytes: out,
        wants,
        broker_closes: false,
        refused_before_login: false,
        confirms: mode == 1,
        login_end: Some(login_end),
        label: "valid session".into(),
    }
}

/// channel.close and connection.close with their fields at the bounds.
fn close_both(rng: &mut Rng, out: &mut Vec<u8>, wants: &mut Vec<Want>, ch: u16) {
    let close = |rng: &mut Rng, class: u16| {
        Args::new(class, if class == 10 { 50 } else { 40 })
            .short(wire::edge(rng) as u16)
            .shortstr(&valid_short(rng))
            .short(wire::edge(rng) as u16)
            .short(wire::edge(rng) as u16)
            .finish()
    };
    let c = close(rng, 20);
    wire::frame(out, wire::METHOD, ch, &c);
    wants.push(Want::Method(ch, 20, 41));
    let c = close(rng, 10);
    wire::frame(out, wire::METHOD, 0, &c);
    wants.push(Want::Method(0, 10, 51));
}

/// Content properties at valid extremes: strings of 0 and 255 bytes (multi-byte UTF-8),
/// integers at their edges, a headers table wide or at the depth bound, its keys now and
/// then not UTF-8 (RabbitMQ takes them; the broker must forward them unchanged).
fn valid_props(rng: &mut Rng, frame_max: usize, room: usize) -> Props {
    let all = rng.bool();
    let s = |rng: &mut Rng| (all || rng.bool()).then(|| valid_short(rng));
    let mut p = Props {
        content_type: s(rng),
        content_encoding: s(rng),
        correlation_id: s(rng),
        message_id: s(rng),
        kind: s(rng),
        app_id: s(rng),
        cluster_id: s(rng),
        ..Props::default()
    };
    // reply-to naming direct reply-to is rewritten on the way; any other is kept.
    p.reply_to = (all || rng.bool()).then(|| {
        let mut r = valid_short(rng);
        if r.starts_with(b"amq.") {
            r[0] = b'x';
        }
        r
    });
    p.expiration = (all || rng.bool()).then(|| {
        rng.pick(&[&b"3600000"[..], b"315360000000", b"86400000"])
            .to_vec()
    });
    p.user_id = (all || rng.bool()).then(|| b"guest".to_vec());
    p.delivery_mode = (all || rng.bool()).then(|| wire::edge(rng) as u8);
    p.priority = (all || rng.bool()).then(|| wire::edge(rng) as u8);
    p.timestamp = (all || rng.bool()).then(|| wire::edge(rng));
    if all || rng.bool() {
        let budget = (frame_max - 14 - 12 * 256 - 64).min(room);
        let invalid = rng.one_in(3);
        p.headers = Some(valid_table(rng, budget, invalid).0);
    }
    p
}

/// A session cut short at a random byte, before or after login.
pub(super) fn stopped_session(rng: &mut Rng, n: u64) -> Script {
    let mut s = valid_session(rng, n);
    let cut = rng.below(s.bytes.len() as u64) as usize;
    s.bytes.truncate(cut);
    s.label = format!("session stopped after {cut} bytes");
    s
}
