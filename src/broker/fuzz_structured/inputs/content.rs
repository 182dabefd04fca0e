//! basic.publish with its content: every property at its bounds, a headers table wide
//! or nested to any depth, bodies in frames of any size.

use super::super::wire::{self, Args, MAX_DEPTH, Props, Rng, Shape};
use super::Expect;
use super::fields::{Fields, judge, short_from};
use super::pools::{EXPIRATIONS, KEYS, NAMES};

/// Content-header properties at their bounds: each present half the time (all of them a
/// quarter of the time), strings of 0 and 255 bytes, `headers` wide and deep.
pub(super) fn props(
    rng: &mut Rng,
    budget: usize,
    headers_depth: Option<usize>,
) -> (Props, usize, bool) {
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
pub(super) fn publish(
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
