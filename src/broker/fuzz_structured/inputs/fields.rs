//! Method arguments at their bounds — integers at their edges, short strings of 0 and 255
//! bytes, tables wide, deep or of `x-` arguments — and the judgement of a method from its
//! bytes.

use super::super::wire::{self, Args, F, MAX_DEPTH, METHODS, MethodSpec, Rng, Shape};
use super::Expect;
use super::pools::{KEYS, KINDS, MECHANISMS, NAMES, TAGS, VHOSTS, X_ARGS, X_STRINGS};
use std::sync::OnceLock;

/// Field values for one method, and what they make of it.
pub(super) struct Fields {
    pub(super) args: Args,
    pub(super) depth: usize,
    /// A short string or method-table key that is not UTF-8 (RabbitMQ takes any bytes;
    /// the broker need not).
    pub(super) lenient: bool,
    pub(super) nowait: bool,
}

pub(super) fn short_from(rng: &mut Rng, pool: &[&[u8]], f: &mut Fields) -> Vec<u8> {
    if rng.below(10) < 7 {
        return rng.pick(pool).to_vec();
    }
    let invalid = rng.one_in(40);
    let s = wire::extreme_short(rng, invalid);
    f.lenient |= std::str::from_utf8(&s).is_err();
    s
}

/// A small integer (reserved fields, counts, delivery tags) or one at an edge.
fn number(rng: &mut Rng) -> u64 {
    if rng.bool() {
        // Often 0: a prefetch size of anything else ends the connection (540).
        rng.below(6).saturating_sub(3)
    } else {
        wire::edge(rng)
    }
}

/// A table of `x-` arguments with values of any type (the broker's checks of each).
fn x_args(rng: &mut Rng) -> Vec<u8> {
    let mut entries = Vec::new();
    for _ in 0..rng.range(1, 4) {
        let k = *rng.pick::<&[u8]>(X_ARGS);
        wire::put_short(&mut entries, k);
        if rng.bool() {
            entries.push(b'S');
            let v = *rng.pick::<&[u8]>(X_STRINGS);
            wire::put_long(&mut entries, v);
        } else {
            let tag = *rng.pick(b"tbBsuIilfdDTxV");
            wire::put_scalar(rng, &mut entries, tag);
        }
    }
    let mut t = (entries.len() as u32).to_be_bytes().to_vec();
    t.extend_from_slice(&entries);
    t
}

/// A table for an argument or properties field: empty, `x-` arguments, or a generated
/// shape (many entries, every type, nested up to `max_depth`).
fn any_table(rng: &mut Rng, budget: usize, max_depth: usize, f: &mut Fields) -> Vec<u8> {
    let shape = match rng.below(100) {
        0..=29 => return wire::empty_table(),
        30..=64 => return x_args(rng),
        65..=93 => Shape {
            depth: rng.range(1, 6) as usize,
            breadth: rng.below(12) as usize,
            invalid_keys: rng.one_in(8),
            budget,
        },
        94 => Shape {
            depth: 1,
            breadth: rng.range(100, 5_000) as usize,
            invalid_keys: rng.one_in(8),
            budget,
        },
        _ => Shape {
            depth: rng.range(1, max_depth as u64) as usize,
            breadth: rng.below(4) as usize,
            invalid_keys: false,
            budget,
        },
    };
    let t = wire::table(rng, shape);
    f.depth = f.depth.max(t.depth);
    f.lenient |= t.invalid_keys;
    t.bytes
}

/// Arguments for `spec` at their bounds; `table` replaces the generated table, if any.
fn fields(rng: &mut Rng, spec: &MethodSpec, frame_max: usize, table: Option<&[u8]>) -> Fields {
    let mut f = Fields {
        args: Args::new(spec.class, spec.method),
        depth: 0,
        lenient: false,
        nowait: false,
    };
    // Room for a table or long string once the short strings (at most 3 x 256) are in.
    let budget = frame_max.saturating_sub(1_000).max(64);
    for (i, field) in spec.fields.iter().enumerate() {
        let mut args = std::mem::replace(&mut f.args, Args::new(0, 0));
        args = match field {
            F::Octet => args.octet(number(rng) as u8),
            F::Short => args.short(number(rng) as u16),
            F::Long => args.long(number(rng) as u32),
            F::LongLong => args.longlong(number(rng)),
            F::Bit if spec.nowait == Some(i) => {
                // Mostly waiting: a reply is what the model checks.
                f.nowait = rng.one_in(4);
                args.bit(f.nowait)
            }
            F::Bit => args.bit(rng.bool()),
            F::Rare => args.bit(rng.one_in(50)),
            F::Mostly => args.bit(!rng.one_in(50)),
            F::Name => args.shortstr(&short_from(rng, NAMES, &mut f)),
            F::Key => args.shortstr(&short_from(rng, KEYS, &mut f)),
            F::Kind => args.shortstr(&short_from(rng, KINDS, &mut f)),
            F::Tag => args.shortstr(&short_from(rng, TAGS, &mut f)),
            F::Vhost => args.shortstr(&short_from(rng, VHOSTS, &mut f)),
            F::Mechanism => args.shortstr(&short_from(rng, MECHANISMS, &mut f)),
            F::Text => {
                let invalid = rng.one_in(40);
                let s = wire::extreme_short(rng, invalid);
                f.lenient |= std::str::from_utf8(&s).is_err();
                args.shortstr(&s)
            }
            F::LongStr => {
                let len = match rng.below(10) {
                    0 => rng.below(budget as u64) as usize,
                    1 => 256,
                    _ => rng.extreme_len(255),
                };
                let s = if rng.bool() {
                    wire::invalid_utf8(rng, len.max(1))
                } else if len <= 256 {
                    wire::utf8(rng, len)
                } else {
                    wire::ascii(rng, len)
                };
                args.longstr(&s)
            }
            F::Args | F::PropsTable => match table {
                Some(t) => args.table(t),
                None => {
                    let t = any_table(rng, budget, MAX_DEPTH, &mut f);
                    args.table(&t)
                }
            },
        };
        f.args = args;
    }
    f
}

/// The judgement of a finished method or content frame from its bytes alone.
pub(super) fn judge(payload_len: usize, frame_max: usize, depth: usize, lenient: bool) -> Expect {
    if payload_len > frame_max || depth > MAX_DEPTH {
        Expect::FrameError
    } else if lenient {
        Expect::Any
    } else {
        Expect::NoFrameError
    }
}

/// A method payload of `spec` at its bounds (`table` replaces the generated table), its
/// deepest table, the judgement of it, and whether its no-wait bit is set.
pub(crate) fn method_payload(
    rng: &mut Rng,
    spec: &'static MethodSpec,
    frame_max: usize,
    table: Option<(&[u8], usize)>,
) -> (Vec<u8>, usize, Expect, bool) {
    let mut f = fields(rng, spec, frame_max, table.map(|t| t.0));
    let carries = spec
        .fields
        .iter()
        .any(|f| matches!(f, F::Args | F::PropsTable));
    if let Some((_, d)) = table
        && carries
    {
        f.depth = f.depth.max(d);
    }
    let payload = f.args.finish();
    let expect = judge(payload.len(), frame_max, f.depth, f.lenient);
    (payload, f.depth, expect, f.nowait)
}

/// A method that carries a table, for the depth tests.
pub(crate) fn table_method(rng: &mut Rng) -> &'static MethodSpec {
    static WITH_TABLE: OnceLock<Vec<&'static MethodSpec>> = OnceLock::new();
    let with_table = WITH_TABLE.get_or_init(|| {
        METHODS
            .iter()
            .filter(|m| {
                m.fields
                    .iter()
                    .any(|f| matches!(f, F::Args | F::PropsTable))
            })
            .collect()
    });
    with_table[rng.below(with_table.len() as u64) as usize]
}

/// A table exactly this deep that fits `frame_max`, with a little breadth.
pub(super) fn deep_table(rng: &mut Rng, depth: usize, frame_max: usize) -> (Vec<u8>, usize) {
    let breadth = rng.below(3) as usize;
    let t = wire::table(
        rng,
        Shape {
            depth,
            breadth,
            invalid_keys: false,
            budget: frame_max.saturating_sub(1_100),
        },
    );
    (t.bytes, t.depth)
}
