//! The basic content header (AMQP 0-9-1 §4.2.6.1): class, weight, body size, properties.

use super::bounds::{TableError, check_content_header};
use amq_protocol::protocol::BasicProperties;
use bytes::{BufMut, Bytes, BytesMut};

/// Encode a basic content header payload (class 60, weight 0, body size, properties).
pub(crate) fn encode_header(body_size: u64, properties: &BasicProperties) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    out.put_u16(60);
    out.put_u16(0);
    out.put_u64(body_size);
    if let Ok((v, _)) = cookie_factory::r#gen(
        amq_protocol::protocol::basic::gen_properties(properties),
        Vec::with_capacity(32),
    ) {
        out.extend_from_slice(&v);
    }
    out.freeze()
}

/// Decode a content header payload into (class id, body size, properties). The headers
/// table is walked first (bounds.rs): nested past the bound it is refused, keys that are
/// not UTF-8 are decoded with `?` (the raw header is still what is forwarded).
pub(crate) fn decode_header(
    payload: &[u8],
) -> Result<(u16, u64, BasicProperties), Option<TableError>> {
    let payload = check_content_header(payload).map_err(Some)?;
    match amq_protocol::frame::parsing::parse_content_header(&payload[..]) {
        Ok(([], h)) => Ok((h.class_id, h.body_size, h.properties)),
        _ => Err(None),
    }
}
