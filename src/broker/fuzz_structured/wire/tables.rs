//! Field tables of any shape — empty, thousands of entries wide, every value type, nested
//! 1 to 20,000 levels — written without recursion, and the depth bound they are judged by.

use super::{
    Rng, SHORT_MAX, VALUE_TYPES, ascii, invalid_utf8, put_scalar, put_short, put_u32, utf8,
};

/// The deepest table nesting the broker accepts, the outermost table counted as level 1.
/// The issue proposed 128; the broker settles on 32 (`bounds::MAX_TABLE_DEPTH`) because
/// amq-protocol's decoder takes ~16 KiB of stack per level in test builds, so ~125
/// levels overflow a 2 MiB tokio worker (this fuzzer found it too). One place to change
/// if the bound moves: both fuzzers judge by it.
pub(crate) const MAX_DEPTH: usize = 32;

/// What a generated field table should look like.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Nesting levels, the outermost table counted as 1 (as the broker counts them).
    pub(crate) depth: usize,
    /// Entries beside the nested one at each level, on average (0: a bare chain).
    pub(crate) breadth: usize,
    /// Keys may be invalid UTF-8.
    pub(crate) invalid_keys: bool,
    /// Upper bound on the encoded size (the room left in the frame).
    pub(crate) budget: usize,
}

/// A generated field table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    /// The encoding: a 32-bit length, then the entries.
    pub(crate) bytes: Vec<u8>,
    /// The depth it really has (the budget may cut the one asked for).
    pub(crate) depth: usize,
    /// Some key is not UTF-8.
    pub(crate) invalid_keys: bool,
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
pub(crate) fn table(rng: &mut Rng, shape: Shape) -> Table {
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
pub(crate) fn empty_table() -> Vec<u8> {
    vec![0, 0, 0, 0]
}
