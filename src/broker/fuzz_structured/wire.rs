//! Structurally valid AMQP 0-9-1 wire data at its extremes, for the structured fuzzers:
//! every method of every class (the server-to-client ones too), short strings of 0 and
//! 255 bytes in ASCII, multi-byte UTF-8 and invalid UTF-8, long strings, field tables of
//! every value type — empty, with thousands of entries, nested from 1 to 20,000 levels —
//! content headers with every property set, and frames.
//!
//! Nested values are written without recursion: a table is a list of levels whose sizes
//! are summed from the innermost out, then written from the outermost in. A 20,000-level
//! table costs this generator no stack, so a stack overflow is always the broker's.
//!
//! `std` only: tests/it/broker_fuzz.rs includes this same file (`#[path]`) to build the
//! sessions it sends over sockets, so both fuzzers share one encoder (a second copy would
//! drift). Each uses a part of it, hence `dead_code`.
#![allow(dead_code)]

/// xorshift64*: deterministic, seedable, no dependency; a failure is replayed by its seed.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        // splitmix64: nearby seeds give unrelated streams; xorshift never leaves zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)).max(1))
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (0 for n = 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    /// Uniform in `lo..=hi`.
    pub(super) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub(super) fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
    /// True once in `n` times on average.
    pub(super) fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// A length at the edges of `0..=max` more often than in between.
    pub(super) fn extreme_len(&mut self, max: usize) -> usize {
        match self.below(8) {
            0 => 0,
            1 => max,
            2 => max.saturating_sub(1),
            3 => 1.min(max),
            _ => self.below(max as u64 + 1) as usize,
        }
    }
}

/// The longest short string (AMQP 0-9-1 §4.2.5.3).
pub(super) const SHORT_MAX: usize = 255;

/// The deepest table nesting the broker accepts, the outermost table counted as level 1.
/// The issue proposed 128; the broker settles on 32 (`bounds::MAX_TABLE_DEPTH`) because
/// amq-protocol's decoder takes ~16 KiB of stack per level in test builds, so ~125
/// levels overflow a 2 MiB tokio worker (this fuzzer found it too). One place to change
/// if the bound moves: both fuzzers judge by it.
pub(super) const MAX_DEPTH: usize = 32;

/// `len` printable ASCII bytes (past 64, the first 64 repeated: long strings are about
/// their length, and a debug build draws random bytes slowly).
pub(super) fn ascii(rng: &mut Rng, len: usize) -> Vec<u8> {
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
pub(super) fn utf8(rng: &mut Rng, len: usize) -> Vec<u8> {
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
pub(super) fn invalid_utf8(rng: &mut Rng, len: usize) -> Vec<u8> {
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
pub(super) fn extreme_short(rng: &mut Rng, invalid: bool) -> Vec<u8> {
    let len = rng.extreme_len(SHORT_MAX);
    match rng.below(if invalid { 3 } else { 2 }) {
        0 => ascii(rng, len),
        1 => utf8(rng, len),
        _ => invalid_utf8(rng, len.max(1)),
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append a short string; longer input is a bug in the generator, not a test case.
pub(super) fn put_short(out: &mut Vec<u8>, s: &[u8]) {
    assert!(
        s.len() <= SHORT_MAX,
        "generator bug: short string of {} bytes",
        s.len()
    );
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

/// Append a long string (a 32-bit length, then the bytes).
pub(super) fn put_long(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s);
}

/// Every field-value type as RabbitMQ writes it (and amq-protocol reads it): 's' is a
/// signed short, 'u' unsigned; 'l' a signed long long; 'x' a byte array; 'V' void.
pub(super) const VALUE_TYPES: &[u8] = b"tbBsuIilfdDSATFxV";

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
pub(super) fn edge(rng: &mut Rng) -> u64 {
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
pub(super) fn put_scalar(rng: &mut Rng, out: &mut Vec<u8>, tag: u8) {
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

/// What a generated field table should look like.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    /// Nesting levels, the outermost table counted as 1 (as the broker counts them).
    pub(super) depth: usize,
    /// Entries beside the nested one at each level, on average (0: a bare chain).
    pub(super) breadth: usize,
    /// Keys may be invalid UTF-8.
    pub(super) invalid_keys: bool,
    /// Upper bound on the encoded size (the room left in the frame).
    pub(super) budget: usize,
}

/// A generated field table.
#[derive(Debug, Clone, Default)]
pub(super) struct Table {
    /// The encoding: a 32-bit length, then the entries.
    pub(super) bytes: Vec<u8>,
    /// The depth it really has (the budget may cut the one asked for).
    pub(super) depth: usize,
    /// Some key is not UTF-8.
    pub(super) invalid_keys: bool,
}

/// One level of a nested value: what comes before and after its nested child.
struct Level {
    /// A table (entries have keys) or an array (values alone).
    table: bool,
    before: Vec<u8>,
    /// The child's key (tables only) and type tag, written between `before` and `after`.
    child_head: Vec<u8>,
    after: Vec<u8>,
}

/// Keys the broker gives a meaning (queue arguments, sender-selected distribution): a
/// random key never is one, so only inputs that mean to set them do.
fn meaningful(key: &[u8]) -> bool {
    key.starts_with(b"x-") || matches!(key, b"CC" | b"BCC" | b"alternate-exchange")
}

/// A key for a table entry, at most `room` bytes.
fn key(rng: &mut Rng, invalid: bool, room: usize, t: &mut Table) -> Vec<u8> {
    let len = match rng.below(16) {
        0 => rng.extreme_len(SHORT_MAX),
        _ => rng.below(9) as usize,
    }
    .min(room);
    let mut k = match rng.below(8) {
        0 => utf8(rng, len),
        1 if invalid && len > 0 => {
            t.invalid_keys = true;
            invalid_utf8(rng, len)
        }
        _ => ascii(rng, len),
    };
    if meaningful(&k) {
        k[0] = b'k';
    }
    k
}

/// A value that is not a container.
fn scalar_type(rng: &mut Rng) -> u8 {
    loop {
        let tag = *rng.pick(VALUE_TYPES);
        if tag != b'A' && tag != b'F' {
            return tag;
        }
    }
}

/// Entries for one level (`table`: with keys); containers among them (one level deeper
/// than the level they sit in) only if `containers`. Every value type comes once first
/// when `count` allows. Stops before `budget` bytes.
fn entries(
    rng: &mut Rng,
    table: bool,
    count: usize,
    containers: bool,
    invalid: bool,
    budget: usize,
    t: &mut Table,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Vec::new();
    for i in 0..count {
        e.clear();
        if table {
            let k = key(rng, invalid, SHORT_MAX, t);
            put_short(&mut e, &k);
        }
        let every = VALUE_TYPES.get(i).filter(|_| count >= VALUE_TYPES.len());
        let tag = match every {
            Some(tag) => *tag,
            None => *rng.pick(VALUE_TYPES),
        };
        match tag {
            b'A' | b'F' if containers => {
                // An empty container or a flat one of scalars: one level deeper.
                let inner_table = tag == b'F';
                let mut inner = Vec::new();
                for _ in 0..rng.extreme_len(6) {
                    if inner_table {
                        let k = key(rng, invalid, 16, t);
                        put_short(&mut inner, &k);
                    }
                    let s = scalar_type(rng);
                    put_scalar(rng, &mut inner, s);
                }
                e.push(tag);
                put_u32(&mut e, inner.len() as u32);
                e.extend_from_slice(&inner);
            }
            b'A' | b'F' => put_scalar(rng, &mut e, b'V'),
            _ => put_scalar(rng, &mut e, tag),
        }
        if out.len() + e.len() > budget {
            break;
        }
        out.extend_from_slice(&e);
    }
    out
}

/// A field table of the given shape, written without recursion.
pub(super) fn table(rng: &mut Rng, shape: Shape) -> Table {
    let mut t = Table::default();
    // A bare level costs at most 6 bytes (1-byte key length, tag, 32-bit length) when its
    // key is empty; cut the depth to what the budget holds.
    let depth = shape
        .depth
        .clamp(1, (shape.budget.saturating_sub(16) / 6).max(1));
    let mut budget = shape.budget.saturating_sub(depth * 6 + 16);
    // Past this, the depth is the point and siblings would not fit the frame.
    let deep = depth > 256;
    let mut levels = Vec::with_capacity(depth);
    for i in 0..depth {
        let table = i == 0 || rng.bool();
        // Deep chains stay mostly bare: the depth is the point, and it must fit the frame.
        let count = if shape.breadth == 0 || (deep && !rng.one_in(64)) {
            0
        } else if i == 0 {
            shape.breadth
        } else {
            rng.below(shape.breadth.min(8) as u64 + 1) as usize
        };
        let containers = i + 2 <= depth;
        let split = rng.below(count as u64 + 1) as usize;
        let before = entries(
            rng,
            table,
            split,
            containers,
            shape.invalid_keys,
            budget,
            &mut t,
        );
        budget = budget.saturating_sub(before.len());
        let after = entries(
            rng,
            table,
            count - split,
            containers,
            shape.invalid_keys,
            budget,
            &mut t,
        );
        budget = budget.saturating_sub(after.len());
        let mut child_head = Vec::new();
        if i + 1 < depth {
            if table {
                // Deep chains keep their keys empty: 6 bytes a level, as budgeted.
                let room = if deep { 0 } else { budget.min(SHORT_MAX) };
                let k = key(rng, shape.invalid_keys, room, &mut t);
                budget = budget.saturating_sub(k.len());
                put_short(&mut child_head, &k);
            }
            // The level below decides its own kind; its tag is written here.
            child_head.push(0);
        }
        levels.push(Level {
            table,
            before,
            child_head,
            after,
        });
    }
    // Tags: each child's kind is known only once the child level exists.
    for i in 0..depth.saturating_sub(1) {
        let tag = if levels[i + 1].table { b'F' } else { b'A' };
        *levels[i].child_head.last_mut().expect("a child head") = tag;
    }
    // Sizes from the innermost level out: a level holds its entries, its child's head,
    // the child's 32-bit length and the child's content.
    let mut sizes = vec![0usize; depth];
    let mut inner = 0usize;
    for i in (0..depth).rev() {
        let l = &levels[i];
        let child = if i + 1 < depth { 4 + inner } else { 0 };
        sizes[i] = l.before.len() + l.child_head.len() + child + l.after.len();
        inner = sizes[i];
    }
    let mut out = Vec::with_capacity(4 + sizes[0]);
    for (l, &size) in levels.iter().zip(&sizes) {
        put_u32(&mut out, size as u32);
        out.extend_from_slice(&l.before);
        out.extend_from_slice(&l.child_head);
    }
    for l in levels.iter().rev() {
        out.extend_from_slice(&l.after);
    }
    t.bytes = out;
    t.depth = depth;
    t
}

/// An empty table.
pub(super) fn empty_table() -> Vec<u8> {
    vec![0, 0, 0, 0]
}

/// Frame types (AMQP 0-9-1 §4.2.3).
pub(super) const METHOD: u8 = 1;
pub(super) const HEADER: u8 = 2;
pub(super) const BODY: u8 = 3;
pub(super) const HEARTBEAT: u8 = 8;
/// The frame-end octet.
pub(super) const FRAME_END: u8 = 0xCE;
/// Frame header plus end octet.
pub(super) const FRAME_OVERHEAD: usize = 8;
/// What a 0-9-1 client sends first.
pub(super) const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// Append one frame.
pub(super) fn frame(out: &mut Vec<u8>, kind: u8, channel: u16, payload: &[u8]) {
    out.push(kind);
    put_u16(out, channel);
    put_u32(out, payload.len() as u32);
    out.extend_from_slice(payload);
    out.push(FRAME_END);
}

/// Append a heartbeat frame (on channel 0 it is valid at any time).
pub(super) fn heartbeat(out: &mut Vec<u8>, channel: u16) {
    frame(out, HEARTBEAT, channel, &[]);
}

/// Method arguments in order, consecutive bits packed into octets (§4.2.5.2).
pub(super) struct Args {
    buf: Vec<u8>,
    bits: u8,
    nbits: u8,
}

impl Args {
    /// A method payload: class and method ids, then the arguments.
    pub(super) fn new(class: u16, method: u16) -> Args {
        let mut buf = Vec::with_capacity(64);
        put_u16(&mut buf, class);
        put_u16(&mut buf, method);
        Args {
            buf,
            bits: 0,
            nbits: 0,
        }
    }
    fn flush_bits(&mut self) {
        if self.nbits > 0 {
            self.buf.push(self.bits);
            self.bits = 0;
            self.nbits = 0;
        }
    }
    pub(super) fn octet(mut self, v: u8) -> Args {
        self.flush_bits();
        self.buf.push(v);
        self
    }
    pub(super) fn short(mut self, v: u16) -> Args {
        self.flush_bits();
        put_u16(&mut self.buf, v);
        self
    }
    pub(super) fn long(mut self, v: u32) -> Args {
        self.flush_bits();
        put_u32(&mut self.buf, v);
        self
    }
    pub(super) fn longlong(mut self, v: u64) -> Args {
        self.flush_bits();
        put_u64(&mut self.buf, v);
        self
    }
    pub(super) fn bit(mut self, v: bool) -> Args {
        if self.nbits == 8 {
            self.flush_bits();
        }
        self.bits |= u8::from(v) << self.nbits;
        self.nbits += 1;
        self
    }
    pub(super) fn shortstr(mut self, s: &[u8]) -> Args {
        self.flush_bits();
        put_short(&mut self.buf, s);
        self
    }
    pub(super) fn longstr(mut self, s: &[u8]) -> Args {
        self.flush_bits();
        put_long(&mut self.buf, s);
        self
    }
    /// An encoded table (its length included).
    pub(super) fn table(mut self, t: &[u8]) -> Args {
        self.flush_bits();
        self.buf.extend_from_slice(t);
        self
    }
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.flush_bits();
        self.buf
    }
}

/// Basic content-header properties as raw wire values, in class 60's property order
/// (AMQP 0-9-1 §4.2.6.1 and the spec's basic class); `None` leaves the flag clear.
#[derive(Debug, Clone, Default)]
pub(super) struct Props {
    pub(super) content_type: Option<Vec<u8>>,
    pub(super) content_encoding: Option<Vec<u8>>,
    /// An encoded table (length included).
    pub(super) headers: Option<Vec<u8>>,
    pub(super) delivery_mode: Option<u8>,
    pub(super) priority: Option<u8>,
    pub(super) correlation_id: Option<Vec<u8>>,
    pub(super) reply_to: Option<Vec<u8>>,
    pub(super) expiration: Option<Vec<u8>>,
    pub(super) message_id: Option<Vec<u8>>,
    pub(super) timestamp: Option<u64>,
    pub(super) kind: Option<Vec<u8>>,
    pub(super) user_id: Option<Vec<u8>>,
    pub(super) app_id: Option<Vec<u8>>,
    pub(super) cluster_id: Option<Vec<u8>>,
}

/// Set `bit` of the property flags and append the short string, if there is one.
fn put_prop(flags: &mut u16, out: &mut Vec<u8>, bit: u16, v: &Option<Vec<u8>>) {
    if let Some(s) = v {
        *flags |= 1 << bit;
        put_short(out, s);
    }
}

/// A content header payload: class, weight 0, body size, property flags, properties.
pub(super) fn content_header(class: u16, body_size: u64, p: &Props) -> Vec<u8> {
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
pub(super) fn body_frames(
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

/// How a field is typed on the wire, with the meaning that picks its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum F {
    Octet,
    Short,
    Long,
    LongLong,
    Bit,
    /// A bit rarely set (immediate, internal: refused or unusual when set).
    Rare,
    /// A bit rarely clear (channel.flow active, recover requeue: refused when clear).
    Mostly,
    /// A short string holding a queue or exchange name.
    Name,
    /// A short string holding a routing key.
    Key,
    /// The exchange type.
    Kind,
    /// A consumer tag.
    Tag,
    /// A virtual host.
    Vhost,
    /// A SASL mechanism.
    Mechanism,
    /// Any other short string (texts, reserved fields, locales).
    Text,
    LongStr,
    /// Queue, exchange, binding or consumer arguments.
    Args,
    /// Client or server properties.
    PropsTable,
}

/// One AMQP 0-9-1 method as the spec defines it (reserved fields included).
#[derive(Debug)]
pub(super) struct MethodSpec {
    pub(super) class: u16,
    pub(super) method: u16,
    pub(super) name: &'static str,
    pub(super) fields: &'static [F],
    /// The index of the `no-wait` bit among `fields`, if the method has one.
    pub(super) nowait: Option<usize>,
    /// Methods a server answers a client's request with (same channel); empty when the
    /// method is not a client's synchronous request.
    pub(super) replies: &'static [u16],
}

const fn m(
    class: u16,
    method: u16,
    name: &'static str,
    fields: &'static [F],
    nowait: Option<usize>,
    replies: &'static [u16],
) -> MethodSpec {
    MethodSpec {
        class,
        method,
        name,
        fields,
        nowait,
        replies,
    }
}

use F::*;

/// Every method of AMQP 0-9-1 (RabbitMQ's rabbit_framing_amqp_0_9_1, with
/// connection.blocked/unblocked/update-secret and the confirm class), in the order of
/// its fields on the wire.
pub(super) const METHODS: &[MethodSpec] = &[
    m(
        10,
        10,
        "connection.start",
        &[Octet, Octet, PropsTable, LongStr, LongStr],
        None,
        &[],
    ),
    m(
        10,
        11,
        "connection.start-ok",
        &[PropsTable, Mechanism, LongStr, Text],
        None,
        &[],
    ),
    m(10, 20, "connection.secure", &[LongStr], None, &[]),
    m(10, 21, "connection.secure-ok", &[LongStr], None, &[]),
    m(10, 30, "connection.tune", &[Short, Long, Short], None, &[]),
    m(
        10,
        31,
        "connection.tune-ok",
        &[Short, Long, Short],
        None,
        &[],
    ),
    m(10, 40, "connection.open", &[Vhost, Text, Bit], None, &[]),
    m(10, 41, "connection.open-ok", &[Text], None, &[]),
    m(
        10,
        50,
        "connection.close",
        &[Short, Text, Short, Short],
        None,
        &[51],
    ),
    m(10, 51, "connection.close-ok", &[], None, &[]),
    m(10, 60, "connection.blocked", &[Text], None, &[]),
    m(10, 61, "connection.unblocked", &[], None, &[]),
    m(
        10,
        70,
        "connection.update-secret",
        &[LongStr, Text],
        None,
        &[71],
    ),
    m(10, 71, "connection.update-secret-ok", &[], None, &[]),
    m(20, 10, "channel.open", &[Text], None, &[11]),
    m(20, 11, "channel.open-ok", &[LongStr], None, &[]),
    m(20, 20, "channel.flow", &[Mostly], None, &[21]),
    m(20, 21, "channel.flow-ok", &[Bit], None, &[]),
    m(
        20,
        40,
        "channel.close",
        &[Short, Text, Short, Short],
        None,
        &[41],
    ),
    m(20, 41, "channel.close-ok", &[], None, &[]),
    m(
        30,
        10,
        "access.request",
        &[Text, Bit, Bit, Bit, Bit, Bit],
        None,
        &[11],
    ),
    m(30, 11, "access.request-ok", &[Short], None, &[]),
    m(
        40,
        10,
        "exchange.declare",
        &[Short, Name, Kind, Bit, Bit, Bit, Rare, Bit, Args],
        Some(7),
        &[11],
    ),
    m(40, 11, "exchange.declare-ok", &[], None, &[]),
    m(
        40,
        20,
        "exchange.delete",
        &[Short, Name, Bit, Bit],
        Some(3),
        &[21],
    ),
    m(40, 21, "exchange.delete-ok", &[], None, &[]),
    m(
        40,
        30,
        "exchange.bind",
        &[Short, Name, Name, Key, Bit, Args],
        Some(4),
        &[31],
    ),
    m(40, 31, "exchange.bind-ok", &[], None, &[]),
    m(
        40,
        40,
        "exchange.unbind",
        &[Short, Name, Name, Key, Bit, Args],
        Some(4),
        &[51],
    ),
    m(40, 51, "exchange.unbind-ok", &[], None, &[]),
    m(
        50,
        10,
        "queue.declare",
        &[Short, Name, Bit, Bit, Bit, Bit, Bit, Args],
        Some(6),
        &[11],
    ),
    m(50, 11, "queue.declare-ok", &[Name, Long, Long], None, &[]),
    m(
        50,
        20,
        "queue.bind",
        &[Short, Name, Name, Key, Bit, Args],
        Some(4),
        &[21],
    ),
    m(50, 21, "queue.bind-ok", &[], None, &[]),
    m(50, 30, "queue.purge", &[Short, Name, Bit], Some(2), &[31]),
    m(50, 31, "queue.purge-ok", &[Long], None, &[]),
    m(
        50,
        40,
        "queue.delete",
        &[Short, Name, Bit, Bit, Bit],
        Some(4),
        &[41],
    ),
    m(50, 41, "queue.delete-ok", &[Long], None, &[]),
    m(
        50,
        50,
        "queue.unbind",
        &[Short, Name, Name, Key, Args],
        None,
        &[51],
    ),
    m(50, 51, "queue.unbind-ok", &[], None, &[]),
    m(60, 10, "basic.qos", &[Long, Short, Bit], None, &[11]),
    m(60, 11, "basic.qos-ok", &[], None, &[]),
    m(
        60,
        20,
        "basic.consume",
        &[Short, Name, Tag, Bit, Bit, Bit, Bit, Args],
        Some(6),
        &[21],
    ),
    m(60, 21, "basic.consume-ok", &[Tag], None, &[]),
    m(60, 30, "basic.cancel", &[Tag, Bit], Some(1), &[31]),
    m(60, 31, "basic.cancel-ok", &[Tag], None, &[]),
    m(
        60,
        40,
        "basic.publish",
        &[Short, Name, Key, Bit, Rare],
        None,
        &[],
    ),
    m(60, 50, "basic.return", &[Short, Text, Name, Key], None, &[]),
    m(
        60,
        60,
        "basic.deliver",
        &[Tag, LongLong, Bit, Name, Key],
        None,
        &[],
    ),
    m(60, 70, "basic.get", &[Short, Name, Bit], None, &[71, 72]),
    m(
        60,
        71,
        "basic.get-ok",
        &[LongLong, Bit, Name, Key, Long],
        None,
        &[],
    ),
    m(60, 72, "basic.get-empty", &[Text], None, &[]),
    m(60, 80, "basic.ack", &[LongLong, Bit], None, &[]),
    m(60, 90, "basic.reject", &[LongLong, Bit], None, &[]),
    m(60, 100, "basic.recover-async", &[Mostly], None, &[]),
    m(60, 110, "basic.recover", &[Mostly], None, &[111]),
    m(60, 111, "basic.recover-ok", &[], None, &[]),
    m(60, 120, "basic.nack", &[LongLong, Bit, Bit], None, &[]),
    m(85, 10, "confirm.select", &[Bit], Some(0), &[11]),
    m(85, 11, "confirm.select-ok", &[], None, &[]),
    m(90, 10, "tx.select", &[], None, &[11]),
    m(90, 11, "tx.select-ok", &[], None, &[]),
    m(90, 20, "tx.commit", &[], None, &[21]),
    m(90, 21, "tx.commit-ok", &[], None, &[]),
    m(90, 30, "tx.rollback", &[], None, &[31]),
    m(90, 31, "tx.rollback-ok", &[], None, &[]),
];

/// The spec of a method by name (a typo is a bug in the fuzzer).
pub(super) fn spec(name: &str) -> &'static MethodSpec {
    METHODS
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no method {name}"))
}

/// The index of a method in [`METHODS`], by ids.
pub(super) fn method_index(class: u16, method: u16) -> Option<usize> {
    METHODS
        .iter()
        .position(|m| m.class == class && m.method == method)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk a table the simple (recursive) way: fine for the shallow tables of this test.
    fn depth_of(buf: &[u8], table: bool) -> (usize, usize) {
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let mut pos = 4;
        let mut deepest = 0;
        while pos < 4 + len {
            if table {
                pos += 1 + buf[pos] as usize;
            }
            let tag = buf[pos];
            pos += 1;
            let size = match tag {
                b'V' => 0,
                b't' | b'b' | b'B' => 1,
                b's' | b'u' => 2,
                b'I' | b'i' | b'f' => 4,
                b'D' => 5,
                b'l' | b'd' | b'T' => 8,
                b'S' | b'x' => {
                    4 + u32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize
                }
                b'A' | b'F' => {
                    let (d, used) = depth_of(&buf[pos..], tag == b'F');
                    deepest = deepest.max(d);
                    used
                }
                other => panic!("bad tag {other}"),
            };
            pos += size;
        }
        assert_eq!(pos, 4 + len, "entries fill the table exactly");
        (deepest + 1, pos)
    }

    #[test]
    fn tables_have_the_depth_and_size_they_claim() {
        let mut rng = Rng::new(7);
        for depth in [1, 2, 3, 17, MAX_DEPTH, MAX_DEPTH + 1, 200] {
            for breadth in [0, 3, 40] {
                let t = table(
                    &mut rng,
                    Shape {
                        depth,
                        breadth,
                        invalid_keys: true,
                        budget: 1 << 20,
                    },
                );
                assert_eq!(t.depth, depth);
                let (d, used) = depth_of(&t.bytes, true);
                assert_eq!(
                    (d, used),
                    (depth, t.bytes.len()),
                    "depth {depth} breadth {breadth}"
                );
            }
        }
        // 20,000 levels fit a 128 KiB frame, and writing them takes no recursion.
        let t = table(
            &mut rng,
            Shape {
                depth: 20_000,
                breadth: 2,
                invalid_keys: false,
                budget: 131_072 - 64,
            },
        );
        assert_eq!(t.depth, 20_000);
        assert!(t.bytes.len() <= 131_072 - 64);
    }

    #[test]
    fn short_strings_are_exact() {
        let mut rng = Rng::new(3);
        for len in [0, 1, 2, 3, 4, 5, 254, 255] {
            let s = utf8(&mut rng, len);
            assert_eq!(s.len(), len);
            assert!(std::str::from_utf8(&s).is_ok());
            if len > 0 {
                assert!(std::str::from_utf8(&invalid_utf8(&mut rng, len)).is_err());
            }
        }
    }

    #[test]
    fn bits_pack_into_octets() {
        let p = Args::new(1, 2)
            .bit(true)
            .bit(false)
            .bit(true)
            .short(7)
            .bit(true)
            .finish();
        assert_eq!(p, [0, 1, 0, 2, 0b101, 0, 7, 1]);
    }
}
