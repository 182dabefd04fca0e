//! Structurally valid AMQP 0-9-1 wire data at its extremes, for the structured fuzzers:
//! every method of every class (the server-to-client ones too), short strings of 0 and
//! 255 bytes in ASCII, multi-byte UTF-8 and invalid UTF-8, long strings, field tables of
//! every value type — empty, with thousands of entries, nested from 1 to 20,000 levels —
//! content headers with every property set, and frames. This file holds the byte
//! appenders and the frames; the rest is in
//! - `rng`: the seedable generator behind every choice;
//! - `strings`: short and long string contents (ASCII, UTF-8, invalid UTF-8);
//! - `values`: field values of every scalar type at their edges;
//! - `tables`: field tables of any shape, nested without recursion;
//! - `args`: method payloads, bits packed;
//! - `content`: content headers with every property, bodies cut into frames;
//! - `methods`: every method of the protocol, its fields and replies.
//!
//! Nested values are written without recursion: a table is a list of levels whose sizes
//! are summed from the innermost out, then written from the outermost in. A 20,000-level
//! table costs this generator no stack, so a stack overflow is always the broker's.
//!
//! `std` only: tests/it/broker_fuzz/mod.rs includes this folder (`#[path]` to this file;
//! a file named mod.rs finds its children beside it wherever it is included from) to
//! build the sessions it sends over sockets, so both fuzzers share one encoder (a second
//! copy would drift). Each uses a part of it, hence `dead_code` and, for the re-exports
//! below, `unused_imports`.
#![allow(dead_code, unused_imports)]

mod args;
mod content;
mod methods;
mod rng;
mod strings;
mod tables;
#[cfg(test)]
mod tests;
mod values;

// The children's items are `pub(crate)`: a re-export cannot be wider than its item, and
// the users of `wire` sit one level above it.
pub(super) use args::Args;
pub(super) use content::{Props, body_frames, content_header};
pub(super) use methods::{F, METHODS, MethodSpec, method_index, spec};
pub(super) use rng::Rng;
pub(super) use strings::{SHORT_MAX, ascii, extreme_short, invalid_utf8, utf8};
pub(super) use tables::{MAX_DEPTH, Shape, Table, empty_table, table};
pub(super) use values::{VALUE_TYPES, edge, put_scalar};

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
