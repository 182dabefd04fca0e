//! Message content: a content header with any of basic's properties, and the body cut
//! into frames.

use super::{BODY, Rng, frame, put_short, put_u16, put_u64};

/// Basic content-header properties as raw wire values, in class 60's property order
/// (AMQP 0-9-1 §4.2.6.1 and the spec's basic class); `None` leaves the flag clear.
#[derive(Debug, Clone, Default)]
pub(crate) struct Props {
    pub(crate) content_type: Option<Vec<u8>>,
    pub(crate) content_encoding: Option<Vec<u8>>,
    /// An encoded table (length included).
    pub(crate) headers: Option<Vec<u8>>,
    pub(crate) delivery_mode: Option<u8>,
    pub(crate) priority: Option<u8>,
    pub(crate) correlation_id: Option<Vec<u8>>,
    pub(crate) reply_to: Option<Vec<u8>>,
    pub(crate) expiration: Option<Vec<u8>>,
    pub(crate) message_id: Option<Vec<u8>>,
    pub(crate) timestamp: Option<u64>,
    pub(crate) kind: Option<Vec<u8>>,
    pub(crate) user_id: Option<Vec<u8>>,
    pub(crate) app_id: Option<Vec<u8>>,
    pub(crate) cluster_id: Option<Vec<u8>>,
}

/// Set `bit` of the property flags and append the short string, if there is one.
fn put_prop(flags: &mut u16, out: &mut Vec<u8>, bit: u16, v: &Option<Vec<u8>>) {
    if let Some(s) = v {
        *flags |= 1 << bit;
        put_short(out, s);
    }
}

/// A content header payload: class, weight 0, body size, property flags, properties.
pub(crate) fn content_header(class: u16, body_size: u64, p: &Props) -> Vec<u8> {
    let mut props = Vec::with_capacity(64);
    let mut flags = 0u16;
    put_prop(&mut flags, &mut props, 15, &p.content_type);
    put_prop(&mut flags, &mut props, 14, &p.content_encoding);
    if let Some(h) = &p.headers {
        flags |= 1 << 13;
        props.extend_from_slice(h);
    }
    if let Some(v) = p.delivery_mode {
        flags |= 1 << 12;
        props.push(v);
    }
    if let Some(v) = p.priority {
        flags |= 1 << 11;
        props.push(v);
    }
    put_prop(&mut flags, &mut props, 10, &p.correlation_id);
    put_prop(&mut flags, &mut props, 9, &p.reply_to);
    put_prop(&mut flags, &mut props, 8, &p.expiration);
    put_prop(&mut flags, &mut props, 7, &p.message_id);
    if let Some(ts) = p.timestamp {
        flags |= 1 << 6;
        put_u64(&mut props, ts);
    }
    put_prop(&mut flags, &mut props, 5, &p.kind);
    put_prop(&mut flags, &mut props, 4, &p.user_id);
    put_prop(&mut flags, &mut props, 3, &p.app_id);
    put_prop(&mut flags, &mut props, 2, &p.cluster_id);
    let mut out = Vec::with_capacity(14 + props.len());
    put_u16(&mut out, class);
    put_u16(&mut out, 0);
    put_u64(&mut out, body_size);
    put_u16(&mut out, flags);
    out.extend_from_slice(&props);
    out
}

/// Append body frames carrying `body`, cut at random sizes of at most `max_chunk` bytes
/// (a small body in 1-byte frames now and then); an empty body gets no body frame.
pub(crate) fn body_frames(
    rng: &mut Rng,
    out: &mut Vec<u8>,
    channel: u16,
    body: &[u8],
    max_chunk: usize,
) {
    let max_chunk = max_chunk.max(1);
    // One byte a frame: many frames, but not so many that the run is all bodies.
    let tiny = body.len() <= 4096 && rng.one_in(8);
    let mut at = 0;
    while at < body.len() {
        let n = if tiny {
            1
        } else if rng.bool() {
            max_chunk
        } else {
            rng.range(1, max_chunk as u64) as usize
        }
        .min(body.len() - at);
        frame(out, BODY, channel, &body[at..at + n]);
        at += n;
    }
}
