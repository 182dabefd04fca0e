//! Field values of every scalar type (AMQP 0-9-1 §4.2.5.5, as RabbitMQ writes them),
//! integers and floats at the edges of their types.

use super::{Rng, ascii, invalid_utf8, put_long, put_u16, put_u32, put_u64, utf8};

/// Every field-value type as RabbitMQ writes it (and amq-protocol reads it): 's' is a
/// signed short, 'u' unsigned; 'l' a signed long long; 'x' a byte array; 'V' void.
pub(crate) const VALUE_TYPES: &[u8] = b"tbBsuIilfdDSATFxV";

/// Interesting 64-bit patterns, cut to the width of each integer type.
const EDGES: &[u64] = &[
    0,
    1,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0x7FFF_FFFF_FFFF_FFFF,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// An integer at an edge of its type most of the time, else random.
pub(crate) fn edge(rng: &mut Rng) -> u64 {
    if rng.below(4) == 0 {
        rng.next()
    } else {
        *rng.pick(EDGES)
    }
}

const F64_EDGES: &[f64] = &[
    0.0,
    -0.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::MIN_POSITIVE,
    f64::MAX,
    f64::MIN,
    f64::EPSILON,
];

/// Append a value of a non-container type `tag` (its tag octet included).
pub(crate) fn put_scalar(rng: &mut Rng, out: &mut Vec<u8>, tag: u8) {
    out.push(tag);
    match tag {
        b't' => out.push(*rng.pick(&[0u8, 1, 0xFF])),
        b'b' | b'B' => out.push(edge(rng) as u8),
        b's' | b'u' => put_u16(out, edge(rng) as u16),
        b'I' | b'i' => put_u32(out, edge(rng) as u32),
        b'l' | b'T' => put_u64(out, edge(rng)),
        b'f' => put_u32(out, (*rng.pick(F64_EDGES) as f32).to_bits()),
        b'd' => put_u64(out, rng.pick(F64_EDGES).to_bits()),
        b'D' => {
            out.push(edge(rng) as u8);
            put_u32(out, edge(rng) as u32);
        }
        b'S' | b'x' => {
            let len = match rng.below(16) {
                0 => 256,
                1 => rng.range(256, 4096) as usize,
                _ => rng.extreme_len(40),
            };
            // Long strings and byte arrays are binary: any bytes are valid.
            let bytes = match rng.below(3) {
                0 if len <= 256 => utf8(rng, len),
                1 => invalid_utf8(rng, len.max(1)),
                _ => ascii(rng, len),
            };
            put_long(out, &bytes);
        }
        b'V' => {}
        other => unreachable!("not a scalar type: {}", other as char),
    }
}
