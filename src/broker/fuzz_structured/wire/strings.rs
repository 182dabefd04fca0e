//! String contents at their extremes: printable ASCII, UTF-8 of every character width,
//! bytes that are not UTF-8, and short strings of 0 to 255 bytes mixing them.

use super::Rng;

/// The longest short string (AMQP 0-9-1 §4.2.5.3).
pub(crate) const SHORT_MAX: usize = 255;

/// `len` printable ASCII bytes (past 64, the first 64 repeated: long strings are about
/// their length, and a debug build draws random bytes slowly).
pub(crate) fn ascii(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len.min(64) {
        // Eight characters from one draw.
        for b in rng.next().to_le_bytes() {
            out.push(b'!' + b % 94);
        }
    }
    out.truncate(len);
    while out.len() < len {
        let n = (len - out.len()).min(out.len());
        out.extend_from_within(..n);
    }
    out
}

/// Characters of each UTF-8 width (1 to 4 bytes), the edges of each range among them.
const CHARS: [&[char]; 4] = [
    &['a', 'z', '~', '/', '.', '*', '#', ' '],
    &['\u{80}', 'é', 'ж', 'ß', 'ñ', 'ω', 'ا', '\u{7FF}'],
    &[
        '\u{800}', '中', '€', 'ア', '한', '\u{FFFD}', '\u{FEFF}', '\u{FFFF}',
    ],
    &[
        '\u{10000}',
        '😀',
        '𝄞',
        '🦀',
        '𐍈',
        '🂡',
        '\u{E0001}',
        '\u{10FFFF}',
    ],
];

/// Exactly `len` bytes of valid UTF-8 mixing 1- to 4-byte characters.
pub(crate) fn utf8(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut tmp = [0u8; 4];
    let mut bits = 0u64;
    while out.len() < len {
        if bits < 64 {
            // One draw for several characters: width and choice take 5 bits each.
            bits = rng.next() | 1 << 63;
        }
        let room = (len - out.len()).min(4);
        let width = (bits & 3) as usize % room + 1;
        let c = CHARS[width - 1][(bits >> 2 & 7) as usize];
        bits >>= 5;
        out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
    }
    out
}

/// `len` (at least 1) bytes that are not UTF-8: a valid prefix, then a lone continuation
/// byte, 0xFF, an overlong encoding, an encoded surrogate or a cut multi-byte character.
pub(crate) fn invalid_utf8(rng: &mut Rng, len: usize) -> Vec<u8> {
    let bad: &[u8] = match rng.below(5) {
        0 => &[0x80],
        1 => &[0xFF],
        2 => &[0xC0, 0x80],
        3 => &[0xED, 0xA0, 0x80],
        _ => &[0xE4, 0xB8],
    };
    let len = len.max(bad.len());
    let mut out = ascii(rng, len - bad.len());
    let at = rng.below(out.len() as u64 + 1) as usize;
    out.splice(at..at, bad.iter().copied());
    out
}

/// A short string at its extremes: empty, 255 bytes, multi-byte UTF-8 filling 255
/// bytes exactly, and (when `invalid`) bytes that are not UTF-8.
pub(crate) fn extreme_short(rng: &mut Rng, invalid: bool) -> Vec<u8> {
    let len = rng.extreme_len(SHORT_MAX);
    match rng.below(if invalid { 3 } else { 2 }) {
        0 => ascii(rng, len),
        1 => utf8(rng, len),
        _ => invalid_utf8(rng, len.max(1)),
    }
}
