//! Frames on the wire (AMQP 0-9-1 §2.3.5, §4.2.3): split the read buffer into frames,
//! checking the size against `frame_max` *before* waiting for or parsing a payload, and
//! encode outgoing frames. Methods are decoded/encoded by amq-protocol; deliveries and
//! content frames are written by hand so a body is copied once, straight from shared `Bytes`.

pub(crate) mod bounds;
pub(crate) mod header;

use crate::broker::error::{AmqpError, code};
use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::AMQPClass;
use bytes::{BufMut, Bytes, BytesMut};

pub(crate) const FRAME_METHOD: u8 = 1;
pub(crate) const FRAME_HEADER: u8 = 2;
pub(crate) const FRAME_BODY: u8 = 3;
pub(crate) const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
/// Frame header (type, channel, size) plus the end octet.
pub(crate) const FRAME_OVERHEAD: usize = 8;

/// The protocol header a 0-9-1 client sends, and that we answer a wrong one with.
pub(crate) const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// One frame as read off the wire.
#[derive(Debug)]
pub(crate) struct RawFrame {
    /// Frame type octet.
    pub(crate) kind: u8,
    /// Channel number.
    pub(crate) channel: u16,
    /// Payload without header and end octet.
    pub(crate) payload: Bytes,
}

/// Take the next complete frame off `buf`, or `None` if more bytes are needed.
/// Errors are RabbitMQ's (rabbit_reader): a payload larger than `frame_max` is refused
/// from the header alone, before waiting for it; then an unknown type or a bad end octet.
pub(crate) fn next_frame(
    buf: &mut BytesMut,
    frame_max: u32,
) -> Result<Option<RawFrame>, AmqpError> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    // RabbitMQ allows a payload of up to frame_max (a fudge of the 8 framing octets) and
    // reports the limit as frame_max - 8.
    if size > frame_max as usize {
        return Err(frame_error(
            kind,
            &[],
            format_args!("{{frame_too_large,{size},{}}}", frame_max.saturating_sub(8)),
        ));
    }
    if buf.len() < size + FRAME_OVERHEAD {
        buf.reserve(size + FRAME_OVERHEAD - buf.len());
        return Ok(None);
    }
    let payload = &buf[7..7 + size];
    if !matches!(
        kind,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ) {
        return Err(frame_error(kind, payload, "unknown_frame"));
    }
    let end = buf[7 + size];
    if end != FRAME_END {
        return Err(frame_error(
            kind,
            payload,
            format_args!("{{invalid_frame_end_marker,{end}}}"),
        ));
    }
    let mut frame = buf.split_to(size + FRAME_OVERHEAD);
    let _ = frame.split_to(7);
    frame.truncate(size);
    Ok(Some(RawFrame {
        kind,
        channel,
        payload: frame.freeze(),
    }))
}

/// RabbitMQ's `type T, all octets = <<...>>` description of a frame (first 16 octets
/// of longer payloads).
pub(crate) fn describe_frame(kind: u8, payload: &[u8]) -> String {
    if payload.len() <= 16 {
        format!("type {kind}, all octets = {}", erl_binary(payload))
    } else {
        format!(
            "type {kind}, first 16 octets = {}",
            erl_binary(&payload[..16])
        )
    }
}

fn frame_error(kind: u8, payload: &[u8], error: impl std::fmt::Display) -> AmqpError {
    AmqpError::new(
        code::FRAME_ERROR,
        format_args!("{}: {error}", describe_frame(kind, payload)),
    )
}

/// A binary as Erlang's `~p` prints it: `<<"text">>` when printable, else `<<1,2,3>>`.
pub(crate) fn erl_binary(bytes: &[u8]) -> String {
    let printable = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| (32..=126).contains(b) || b"\n\r\t".contains(b));
    if printable {
        let mut s = String::from("<<\"");
        for &b in bytes {
            match b {
                b'"' => s.push_str("\\\""),
                b'\\' => s.push_str("\\\\"),
                b'\n' => s.push_str("\\n"),
                b'\r' => s.push_str("\\r"),
                b'\t' => s.push_str("\\t"),
                _ => s.push(b as char),
            }
        }
        s.push_str("\">>");
        s
    } else {
        let parts: Vec<String> = bytes.iter().map(u8::to_string).collect();
        format!("<<{}>>", parts.join(","))
    }
}

/// Why a method frame could not be decoded.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// A class/method pair AMQP 0-9-1 does not define: RabbitMQ drops the connection
    /// without a close frame.
    Unknown(u16, u16),
    /// A known method whose arguments do not parse: 501 with the method's ids.
    Malformed(AmqpError),
}

/// The (class, method) pairs of AMQP 0-9-1 (RabbitMQ's rabbit_framing_amqp_0_9_1).
fn known_method(class: u16, method: u16) -> bool {
    let methods: &[u16] = match class {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        30 => &[10, 11],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => &[],
    };
    methods.contains(&method)
}

/// Decode a method frame's payload.
pub(crate) fn decode_method(payload: &[u8]) -> Result<AMQPClass, DecodeError> {
    if payload.len() < 4 {
        return Err(DecodeError::Malformed(AmqpError::new(
            code::FRAME_ERROR,
            format_args!("cannot decode {}", erl_binary(payload)),
        )));
    }
    let class = u16::from_be_bytes([payload[0], payload[1]]);
    let method = u16::from_be_bytes([payload[2], payload[3]]);
    if !known_method(class, method) {
        return Err(DecodeError::Unknown(class, method));
    }
    // RabbitMQ's text for arguments that do not parse quotes them.
    let malformed = || {
        DecodeError::Malformed(
            AmqpError::new(
                code::FRAME_ERROR,
                format_args!("cannot decode {}", erl_binary(&payload[4..])),
            )
            .on_method(class, method),
        )
    };
    // Walked without recursion before the recursive decoder sees it (bounds.rs).
    let checked = match bounds::check_method(payload) {
        Ok(checked) => checked,
        Err(bounds::TableError::Malformed) => return Err(malformed()),
        Err(e @ bounds::TableError::TooDeep) => {
            return Err(DecodeError::Malformed(
                AmqpError::new(
                    code::FRAME_ERROR,
                    format_args!("cannot decode method (class {class}, method {method}): {e}"),
                )
                .on_method(class, method),
            ));
        }
    };
    match amq_protocol::protocol::parse_class(&checked[..]) {
        Ok(([], decoded)) => Ok(decoded),
        _ => Err(malformed()),
    }
}

impl DecodeError {
    /// A one-line description for logs and handshake failures.
    pub(crate) fn text(&self) -> String {
        match self {
            DecodeError::Unknown(c, m) => format!("unknown method (class {c}, method {m})"),
            DecodeError::Malformed(e) => e.text.clone(),
        }
    }
}

fn begin_frame(out: &mut BytesMut, kind: u8, channel: u16) -> usize {
    out.put_u8(kind);
    out.put_u16(channel);
    let at = out.len();
    out.put_u32(0);
    at
}

fn end_frame(out: &mut BytesMut, size_at: usize) {
    let size = (out.len() - size_at - 4) as u32;
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    out.put_u8(FRAME_END);
}

/// Append a method frame encoded by amq-protocol.
pub(crate) fn put_method(out: &mut BytesMut, channel: u16, method: AMQPClass) {
    let frame = AMQPFrame::Method(channel, method);
    let mut v = Vec::with_capacity(64);
    // Encoding into a Vec cannot fail: it only grows.
    if let Ok((v2, _)) = cookie_factory::r#gen(
        amq_protocol::frame::gen_frame(&frame),
        std::mem::take(&mut v),
    ) {
        out.extend_from_slice(&v2);
    }
}

fn put_short_str(out: &mut BytesMut, s: &str) {
    let b = s.as_bytes();
    let len = b.len().min(255);
    out.put_u8(len as u8);
    out.put_slice(&b[..len]);
}

/// Append basic.deliver (60, 60), hand-encoded: it is on the hot path.
pub(crate) fn put_deliver(
    out: &mut BytesMut,
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
) {
    let at = begin_frame(out, FRAME_METHOD, channel);
    out.put_u16(60);
    out.put_u16(60);
    put_short_str(out, consumer_tag);
    out.put_u64(delivery_tag);
    out.put_u8(u8::from(redelivered));
    put_short_str(out, exchange);
    put_short_str(out, routing_key);
    end_frame(out, at);
}

/// Append a content header (raw payload as the publisher sent it) and the body frames,
/// each body frame no larger than `frame_max` (AMQP 0-9-1 §4.2.6.2).
pub(crate) fn put_content(
    out: &mut BytesMut,
    channel: u16,
    header: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    let at = begin_frame(out, FRAME_HEADER, channel);
    out.put_slice(header);
    end_frame(out, at);
    let chunk = (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1);
    for part in body.chunks(chunk) {
        out.reserve(part.len() + FRAME_OVERHEAD);
        let at = begin_frame(out, FRAME_BODY, channel);
        out.put_slice(part);
        end_frame(out, at);
    }
}

/// Append a heartbeat frame.
pub(crate) fn put_heartbeat(out: &mut BytesMut) {
    out.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_and_waits_for_more() {
        let mut out = BytesMut::new();
        put_heartbeat(&mut out);
        put_content(
            &mut out,
            3,
            &[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0],
            b"hello",
            4096,
        );
        let mut buf = BytesMut::from(&out[..out.len() - 1]);
        let f = next_frame(&mut buf, 4096).unwrap().unwrap();
        assert_eq!((f.kind, f.channel), (FRAME_HEARTBEAT, 0));
        let f = next_frame(&mut buf, 4096).unwrap().unwrap();
        assert_eq!((f.kind, f.channel, f.payload.len()), (FRAME_HEADER, 3, 14));
        assert!(next_frame(&mut buf, 4096).unwrap().is_none());
        buf.extend_from_slice(&out[out.len() - 1..]);
        let f = next_frame(&mut buf, 4096).unwrap().unwrap();
        assert_eq!(&f.payload[..], b"hello");
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header() {
        let mut buf = BytesMut::from(&[1u8, 0, 1, 0, 1, 0, 0][..]);
        let err = next_frame(&mut buf, 4096).unwrap_err();
        assert_eq!(err.code, code::FRAME_ERROR);
    }

    #[test]
    fn body_is_split_at_frame_max() {
        let mut out = BytesMut::new();
        put_content(&mut out, 1, &[0; 14], &[7u8; 100], 48);
        let mut n = 0;
        let mut total = 0;
        while let Some(f) = next_frame(&mut out, 48).unwrap() {
            if f.kind == FRAME_BODY {
                n += 1;
                total += f.payload.len();
            }
        }
        assert_eq!((n, total), (3, 100));
    }
}
