//! Frames on the wire (AMQP 0-9-1 §2.3.5, §4.2.3): split the read buffer into frames,
//! checking the size against `frame_max` *before* waiting for or parsing a payload, and
//! encode outgoing frames. Methods are decoded/encoded by amq-protocol; deliveries and
//! content frames are written by hand so a body is copied once, straight from shared `Bytes`.

use super::error::{AmqpError, code};
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
/// A frame larger than `frame_max`, a bad end octet or an unknown type is a 501.
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
    if !matches!(
        kind,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ) {
        return Err(AmqpError::new(
            code::FRAME_ERROR,
            format_args!("unknown frame type {kind}"),
        ));
    }
    if size + FRAME_OVERHEAD > frame_max as usize {
        return Err(AmqpError::new(
            code::FRAME_ERROR,
            format_args!(
                "frame size {} larger than negotiated maximum {frame_max}",
                size + FRAME_OVERHEAD
            ),
        ));
    }
    if buf.len() < size + FRAME_OVERHEAD {
        buf.reserve(size + FRAME_OVERHEAD - buf.len());
        return Ok(None);
    }
    if buf[7 + size] != FRAME_END {
        return Err(AmqpError::new(
            code::FRAME_ERROR,
            format_args!("frame end octet is {:#04x}, expected 0xce", buf[7 + size]),
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

/// Decode a method frame's payload.
pub(crate) fn decode_method(payload: &[u8]) -> Result<AMQPClass, AmqpError> {
    match amq_protocol::protocol::parse_class(payload) {
        Ok(([], class)) => Ok(class),
        _ => {
            let ids = if payload.len() >= 4 {
                format!(
                    " (class {}, method {})",
                    u16::from_be_bytes([payload[0], payload[1]]),
                    u16::from_be_bytes([payload[2], payload[3]])
                )
            } else {
                String::new()
            };
            Err(AmqpError::new(
                code::FRAME_ERROR,
                format_args!("cannot decode method frame{ids}"),
            ))
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
