//! Bounds on values that cross the wire, enforced by construction (STYLE rule 12).
//!
//! - Field tables and arrays (AMQP 0-9-1 §4.2.5.5) nest: amq-protocol's decoder, and every
//!   `Clone`, `Drop`, `Debug` and encoder of the decoded value, recurse once per level. A
//!   peer could send a table nested tens of thousands deep in one frame and overflow a
//!   runtime thread's stack, which aborts the whole process. So every table is walked
//!   *iteratively* before it is decoded, and one nested deeper than [`MAX_TABLE_DEPTH`]
//!   is refused (a connection error on that connection only).
//! - The same walk accepts what RabbitMQ accepts and amq-protocol does not: a table key that
//!   is not valid UTF-8. The decoded copy gets `?` for each invalid byte; the raw bytes a
//!   message carries are still forwarded unchanged.
//! - Short strings (§4.2.5.3) hold at most 255 bytes: [`short`] cuts a longer text at a
//!   UTF-8 boundary, as RabbitMQ cuts reply texts, instead of amq-protocol's panic.

use amq_protocol::types::ShortString;
use std::borrow::Cow;

/// The deepest nesting of field tables and arrays accepted from a peer (the outermost
/// table is level 1). Real clients nest a handful of levels (`x-death` is 3). The bound
/// is set by amq-protocol's decoder, which takes ~16 KiB of stack per level (measured:
/// ~125 levels overflow a 2 MiB thread, the size of tokio's worker stacks); 32 levels
/// stay within half a megabyte, and a test decodes, clones, encodes and drops a table at
/// the bound on a 1 MiB stack.
pub(crate) const MAX_TABLE_DEPTH: usize = 32;

/// The longest short string, in bytes.
const SHORT_MAX: usize = 255;

/// `s` as a short string, cut to 255 bytes at a UTF-8 boundary.
pub(crate) fn short(s: &str) -> ShortString {
    ShortString::from(cut(s, SHORT_MAX).to_string())
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Why a field table was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableError {
    /// Nested deeper than [`MAX_TABLE_DEPTH`].
    TooDeep,
    /// Lengths or types that do not parse (amq-protocol would refuse it too).
    Malformed,
}

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableError::TooDeep => write!(
                f,
                "field tables nested deeper than {MAX_TABLE_DEPTH} levels are refused"
            ),
            TableError::Malformed => write!(f, "malformed field table"),
        }
    }
}

/// A field table walked: where it ends, and the byte ranges of keys that are not UTF-8.
#[derive(Debug, Default)]
struct Walk {
    end: usize,
    bad_keys: Vec<std::ops::Range<usize>>,
}

/// Bytes of a value of the given type tag that follow the tag, for fixed-size types.
fn fixed_size(tag: u8) -> Option<usize> {
    // amq-protocol's AMQPType::from_id: 's' and 'U' are short ints (RabbitMQ's reading),
    // 'l' and 'L' both long long ints.
    Some(match tag {
        b'V' => 0,
        b't' | b'b' | b'B' => 1,
        b's' | b'U' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'D' => 5,
        b'l' | b'L' | b'd' | b'T' => 8,
        _ => return None,
    })
}

fn read_u32(buf: &[u8], at: usize) -> Option<usize> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// Walk the field table that starts (with its 4-byte length) at `buf[at..]`, without
/// recursion: an explicit stack of the open tables' and arrays' end offsets, never
/// deeper than [`MAX_TABLE_DEPTH`].
fn walk_table(buf: &[u8], at: usize) -> Result<Walk, TableError> {
    let len = read_u32(buf, at).ok_or(TableError::Malformed)?;
    let end = (at + 4)
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or(TableError::Malformed)?;
    // (end offset, is a table: entries have keys)
    let mut open: Vec<(usize, bool)> = vec![(end, true)];
    let mut pos = at + 4;
    let mut walk = Walk::default();
    while let Some(&(end, table)) = open.last() {
        if pos == end {
            open.pop();
            continue;
        }
        if table {
            let n = *buf.get(pos).ok_or(TableError::Malformed)? as usize;
            let key = pos + 1..pos + 1 + n;
            if key.end > end {
                return Err(TableError::Malformed);
            }
            if std::str::from_utf8(&buf[key.clone()]).is_err() {
                walk.bad_keys.push(key.clone());
            }
            pos = key.end;
        }
        let tag = *buf
            .get(pos)
            .filter(|_| pos < end)
            .ok_or(TableError::Malformed)?;
        pos += 1;
        match tag {
            b'S' | b'x' | b'A' | b'F' => {
                let len = read_u32(buf, pos).ok_or(TableError::Malformed)?;
                let inner_end = (pos + 4)
                    .checked_add(len)
                    .filter(|&e| e <= end)
                    .ok_or(TableError::Malformed)?;
                if matches!(tag, b'A' | b'F') {
                    if open.len() >= MAX_TABLE_DEPTH {
                        return Err(TableError::TooDeep);
                    }
                    open.push((inner_end, tag == b'F'));
                    pos += 4;
                } else {
                    pos = inner_end;
                }
            }
            _ => {
                let size = fixed_size(tag).ok_or(TableError::Malformed)?;
                pos += size;
            }
        }
        if pos > end {
            return Err(TableError::Malformed);
        }
    }
    walk.end = end;
    Ok(walk)
}

/// Replace every byte of an invalid UTF-8 sequence in `key` with `?` (same length, so
/// every enclosing length prefix stays right).
fn repair_key(key: &mut [u8]) {
    let mut from = 0;
    while from < key.len() {
        match std::str::from_utf8(&key[from..]) {
            Ok(_) => return,
            Err(e) => {
                let bad_at = from + e.valid_up_to();
                let bad_len = e.error_len().unwrap_or(key.len() - bad_at);
                key[bad_at..bad_at + bad_len].fill(b'?');
                from = bad_at + bad_len;
            }
        }
    }
}

/// Check the field tables at the given offsets of `payload`; the payload to decode comes
/// back (borrowed unless a key had to be repaired). An offset past the end is skipped:
/// the decoder refuses the short payload itself.
pub(crate) fn check_tables<'a>(
    payload: &'a [u8],
    offsets: &[usize],
) -> Result<Cow<'a, [u8]>, TableError> {
    let mut bad = Vec::new();
    for &at in offsets {
        if at >= payload.len() {
            continue;
        }
        bad.extend(walk_table(payload, at)?.bad_keys);
    }
    if bad.is_empty() {
        return Ok(Cow::Borrowed(payload));
    }
    let mut fixed = payload.to_vec();
    for key in bad {
        repair_key(&mut fixed[key]);
    }
    Ok(Cow::Owned(fixed))
}

/// Offset just past the short string at `at`.
fn skip_short(payload: &[u8], at: usize) -> Option<usize> {
    Some(at + 1 + *payload.get(at)? as usize)
}

/// Where the field table of a method frame's payload starts (class and method ids
/// included in the payload), for the methods that carry one; `None` for the others.
/// Every method AMQP 0-9-1 defines with a table argument is here, server-to-client ones
/// too: a hostile peer may send any of them.
pub(crate) fn method_table_offset(payload: &[u8]) -> Option<usize> {
    let class = u16::from_be_bytes([*payload.first()?, *payload.get(1)?]);
    let method = u16::from_be_bytes([*payload.get(2)?, *payload.get(3)?]);
    let args = 4;
    let ticket = args + 2;
    match (class, method) {
        // connection.start: version-major, version-minor, server-properties.
        (10, 10) => Some(args + 2),
        // connection.start-ok: client-properties first.
        (10, 11) => Some(args),
        // exchange.declare: ticket, exchange, type, bits, arguments.
        (40, 10) => Some(skip_short(payload, skip_short(payload, ticket)?)? + 1),
        // exchange.bind / unbind: ticket, destination, source, routing-key, nowait, arguments.
        (40, 30) | (40, 40) => {
            Some(skip_short(payload, skip_short(payload, skip_short(payload, ticket)?)?)? + 1)
        }
        // queue.declare: ticket, queue, bits, arguments.
        (50, 10) => Some(skip_short(payload, ticket)? + 1),
        // queue.bind: ticket, queue, exchange, routing-key, nowait, arguments.
        (50, 20) => {
            Some(skip_short(payload, skip_short(payload, skip_short(payload, ticket)?)?)? + 1)
        }
        // queue.unbind: ticket, queue, exchange, routing-key, arguments (no bits).
        (50, 50) => Some(skip_short(
            payload,
            skip_short(payload, skip_short(payload, ticket)?)?,
        )?),
        // basic.consume: ticket, queue, consumer-tag, bits, arguments.
        (60, 20) => Some(skip_short(payload, skip_short(payload, ticket)?)? + 1),
        _ => None,
    }
}

/// Where the `headers` table of a basic content header payload starts, if it has one:
/// after class, weight, body size and the property flags, behind content-type and
/// content-encoding (AMQP 0-9-1 §4.2.6.1, the basic class's property order).
pub(crate) fn header_table_offset(payload: &[u8]) -> Option<usize> {
    let mut pos = 12;
    let flags = u16::from_be_bytes([*payload.get(pos)?, *payload.get(pos + 1)?]);
    pos += 2;
    // Bit 0 set: another 16-bit flags word follows (basic uses only the first).
    let mut more = flags & 1 == 1;
    while more {
        let next = u16::from_be_bytes([*payload.get(pos)?, *payload.get(pos + 1)?]);
        more = next & 1 == 1;
        pos += 2;
    }
    if flags & (1 << 13) == 0 {
        return None;
    }
    if flags & (1 << 15) != 0 {
        pos = skip_short(payload, pos)?;
    }
    if flags & (1 << 14) != 0 {
        pos = skip_short(payload, pos)?;
    }
    Some(pos)
}

/// A method frame's payload, checked: tables no deeper than the bound, keys repaired.
pub(crate) fn check_method(payload: &[u8]) -> Result<Cow<'_, [u8]>, TableError> {
    match method_table_offset(payload) {
        Some(at) => check_tables(payload, &[at]),
        None => Ok(Cow::Borrowed(payload)),
    }
}

/// A content header's payload, checked the same way.
pub(crate) fn check_content_header(payload: &[u8]) -> Result<Cow<'_, [u8]>, TableError> {
    match header_table_offset(payload) {
        Some(at) => check_tables(payload, &[at]),
        None => Ok(Cow::Borrowed(payload)),
    }
}

/// Encode a table nested `depth` levels deep (the outermost is level 1), iteratively,
/// alternating tables and arrays: for tests of the bound.
#[cfg(test)]
pub(crate) fn nested_table(depth: usize) -> Vec<u8> {
    // Built from the inside out: each level wraps the previous bytes.
    let mut inner: Vec<u8> = Vec::new();
    for level in (1..=depth).rev() {
        let array = level % 2 == 0;
        // A table's entry has a key; an array's holds the value (tag + bytes) alone.
        let mut entry: Vec<u8> = if array { Vec::new() } else { vec![1, b'n'] };
        if level == depth {
            entry.extend_from_slice(&[b't', 1]);
        } else {
            entry.extend_from_slice(&inner);
        }
        let tag = if array { b'A' } else { b'F' };
        let mut next = vec![tag];
        next.extend_from_slice(&(entry.len() as u32).to_be_bytes());
        next.extend_from_slice(&entry);
        inner = next;
    }
    // Strip the outermost tag: a table on its own is its length and entries.
    inner.split_off(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::parsing::parse_field_table;

    #[test]
    fn short_strings_are_cut_at_a_character_boundary() {
        assert_eq!(short("abc").as_str(), "abc");
        let long = "é".repeat(200); // 400 bytes
        let s = short(&long);
        assert_eq!(s.as_str().len(), 254);
        assert!(s.as_str().chars().all(|c| c == 'é'));
        assert_eq!(short(&"q".repeat(300)).as_str().len(), 255);
    }

    #[test]
    fn nesting_up_to_the_bound_decodes_and_past_it_is_refused() {
        for depth in [1, 2, 3, 20, MAX_TABLE_DEPTH] {
            let t = nested_table(depth);
            let walked = walk_table(&t, 0).expect("within the bound");
            assert_eq!(walked.end, t.len());
            assert!(parse_field_table(t.as_slice()).is_ok(), "depth {depth}");
        }
        for depth in [MAX_TABLE_DEPTH + 1, 128, 3_000, 20_000] {
            let t = nested_table(depth);
            assert_eq!(walk_table(&t, 0).unwrap_err(), TableError::TooDeep);
        }
    }

    /// Everything the broker does with a decoded table recurses once per level: at the
    /// bound, all of it fits in half of a tokio worker's stack.
    #[test]
    fn a_table_at_the_bound_is_handled_on_a_small_stack() {
        let t = nested_table(MAX_TABLE_DEPTH);
        let worker = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let (_, table) = parse_field_table(t.as_slice()).expect("decodes");
                let copy = table.clone();
                let text = format!("{copy:?}");
                let (encoded, _) = cookie_factory::r#gen(
                    amq_protocol::types::generation::gen_field_table(&copy),
                    Vec::new(),
                )
                .expect("encodes");
                drop((table, copy));
                (encoded == t, text.len())
            })
            .expect("thread");
        let (same, printed) = worker.join().expect("no overflow");
        assert!(same && printed > 0, "round trip at the bound");
    }

    #[test]
    fn malformed_tables_are_refused_like_the_decoder_does() {
        // A length past the end, an unknown type, a value running past its table.
        for bad in [
            &[0, 0, 0, 9, 1, b'k'][..],
            &[0, 0, 0, 3, 1, b'k', b'?'],
            &[0, 0, 0, 4, 1, b'k', b'l', 0],
        ] {
            assert_eq!(walk_table(bad, 0).unwrap_err(), TableError::Malformed);
            assert!(parse_field_table(bad).is_err());
        }
    }

    #[test]
    fn invalid_utf8_keys_are_repaired_in_place() {
        let t = [0u8, 0, 0, 5, 3, b'k', 0xff, 0xfe, b'V'];
        let fixed = check_tables(&t, &[0]).unwrap();
        assert_eq!(&fixed[..], &[0u8, 0, 0, 5, 3, b'k', b'?', b'?', b'V']);
        let (_, table) = parse_field_table(&fixed[..]).unwrap();
        assert!(table.inner().contains_key("k??"));
    }

    #[test]
    fn table_offsets_of_methods_and_content_headers() {
        // queue.declare: ticket, "q", bits, then the table.
        let mut p = vec![0, 50, 0, 10, 0, 0, 1, b'q', 0];
        let at = p.len();
        p.extend_from_slice(&nested_table(3));
        assert_eq!(method_table_offset(&p), Some(at));
        // A content header with content-type "t" and headers.
        let mut h = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        h.extend_from_slice(&((1u16 << 15) | (1 << 13)).to_be_bytes());
        h.extend_from_slice(&[1, b't']);
        let at = h.len();
        h.extend_from_slice(&nested_table(MAX_TABLE_DEPTH + 1));
        assert_eq!(header_table_offset(&h), Some(at));
        assert_eq!(check_content_header(&h).unwrap_err(), TableError::TooDeep);
    }
}
