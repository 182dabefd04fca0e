//! The in-process fuzzer's inputs: one method (any of AMQP 0-9-1's, with each field at
//! its bounds), a publish with its content, channel 0 traffic, a table nested past the
//! bound, an oversized frame. Each says what the broker must do with it, judged from the
//! bytes alone (`Expect`), and which replies answer it if it is a request. This file
//! draws the next input; its pieces come from
//! - `channels`: the client's model of its channels, and the channel an input goes to;
//! - `pools`: the names, keys and argument values inputs share, so that they meet;
//! - `fields`: method arguments at their bounds, and the judgement of a method;
//! - `content`: a publish with its content header and body.

mod channels;
mod content;
mod fields;
mod pools;

// The children's items are `pub(crate)` where re-exported here: a re-export cannot be
// wider than its item.
pub(super) use channels::{Chan, Model};
pub(super) use fields::{method_payload, table_method};

use super::wire::{self, Args, MAX_DEPTH, METHODS, MethodSpec, Rng};
use channels::{ODD_CHANNELS, channel, housekeeping, idle_channel};
use content::{props, publish};
use fields::deep_table;
use pools::CLIENT_CHANNEL_METHODS;

/// What the broker must do with an input, beyond never panicking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// Anything clean: the input is semantically odd (a short string that is not UTF-8,
    /// content frames on a channel that may be mid-content).
    Any,
    /// Structurally valid: whatever the broker makes of it, not 501 FRAME_ERROR.
    NoFrameError,
    /// A frame the broker must refuse from its structure (a table nested deeper than
    /// [`MAX_DEPTH`], a payload over frame_max): connection.close 501.
    FrameError,
}

/// One input: the frames, and how to judge what the broker makes of them.
#[derive(Debug)]
pub(super) struct Input {
    pub(super) bytes: Vec<u8>,
    /// What it is, for reports (a method's name, "heartbeat", ...).
    pub(super) what: &'static str,
    /// The method sent, as an index into `METHODS` (coverage counts).
    pub(super) method: Option<usize>,
    pub(super) channel: u16,
    /// The deepest table in it.
    pub(super) depth: usize,
    /// A request waiting for one of these methods (of its class, on its channel).
    pub(super) replies: &'static [u16],
    pub(super) class: u16,
    pub(super) expect: Expect,
}

/// One method frame of `spec` on `ch`; `table` replaces the generated table.
fn method_input(
    rng: &mut Rng,
    spec: &'static MethodSpec,
    ch: u16,
    frame_max: usize,
    table: Option<(&[u8], usize)>,
) -> Input {
    let (payload, depth, expect, nowait) = method_payload(rng, spec, frame_max, table);
    let mut bytes = Vec::with_capacity(payload.len() + wire::FRAME_OVERHEAD);
    wire::frame(&mut bytes, wire::METHOD, ch, &payload);
    Input {
        bytes,
        what: spec.name,
        method: wire::method_index(spec.class, spec.method),
        channel: ch,
        depth,
        replies: if nowait { &[] } else { spec.replies },
        class: spec.class,
        expect,
    }
}

/// The next input for a session whose channels look like `model`.
pub(super) fn next(rng: &mut Rng, model: &Model, frame_max: usize) -> Input {
    // Channels first: without one, every channel method ends the connection (504).
    let none_open = !model.chans.values().any(|c| !c.closing);
    let roll = if none_open && rng.below(20) > 0 {
        0
    } else {
        rng.below(1_000)
    };
    match roll {
        // Housekeeping: answer a channel.close, or open a channel.
        0..=89 if housekeeping(model).is_some() => {
            let (ch, close_ok) = housekeeping(model).expect("checked");
            if close_ok {
                let mut bytes = Vec::new();
                wire::frame(&mut bytes, wire::METHOD, ch, &Args::new(20, 41).finish());
                return Input {
                    bytes,
                    what: "channel.close-ok",
                    method: wire::method_index(20, 41),
                    channel: ch,
                    depth: 0,
                    replies: &[],
                    class: 20,
                    expect: Expect::NoFrameError,
                };
            }
            method_input(rng, wire::spec("channel.open"), ch, frame_max, None)
        }
        // Any method of any class (mostly one a client sends on a channel), on a
        // channel that is mostly open.
        0..=679 => {
            let spec = if rng.below(4) > 0 {
                wire::spec(rng.pick::<&str>(CLIENT_CHANNEL_METHODS))
            } else {
                rng.pick(METHODS)
            };
            let ch = channel(rng, model);
            if spec.name == "basic.publish" && rng.below(5) > 0 {
                let mut bytes = Vec::new();
                let (expect, depth) = publish(rng, &mut bytes, ch, frame_max, None);
                let confused = model.chans.get(&ch).is_none_or(|c| c.confused);
                return Input {
                    bytes,
                    what: "basic.publish+content",
                    method: wire::method_index(60, 40),
                    channel: ch,
                    depth,
                    replies: &[],
                    class: 60,
                    expect: if confused && expect == Expect::NoFrameError {
                        Expect::Any
                    } else {
                        expect
                    },
                };
            }
            method_input(rng, spec, ch, frame_max, None)
        }
        // A message with extreme properties on an open channel.
        680..=779 => {
            let ch = idle_channel(rng, model).unwrap_or_else(|| channel(rng, model));
            let mut bytes = Vec::new();
            let (expect, depth) = publish(rng, &mut bytes, ch, frame_max, None);
            let confused = model.chans.get(&ch).is_none_or(|c| c.confused);
            Input {
                bytes,
                what: "basic.publish+content",
                method: wire::method_index(60, 40),
                channel: ch,
                depth,
                replies: &[],
                class: 60,
                expect: if confused && expect == Expect::NoFrameError {
                    Expect::Any
                } else {
                    expect
                },
            }
        }
        // Channel 0: heartbeats, update-secret, close, and every other connection method.
        780..=859 => {
            let mut bytes = Vec::new();
            match rng.below(10) {
                0..=3 => {
                    wire::heartbeat(&mut bytes, 0);
                    Input {
                        bytes,
                        what: "heartbeat",
                        method: None,
                        channel: 0,
                        depth: 0,
                        replies: &[],
                        class: 0,
                        expect: Expect::NoFrameError,
                    }
                }
                4..=6 => method_input(
                    rng,
                    wire::spec("connection.update-secret"),
                    0,
                    frame_max,
                    None,
                ),
                7 if rng.one_in(4) => {
                    method_input(rng, wire::spec("connection.close"), 0, frame_max, None)
                }
                _ => {
                    // The connection class comes first in METHODS.
                    let n = METHODS.iter().take_while(|m| m.class == 10).count();
                    let spec = &METHODS[rng.below(n as u64) as usize];
                    method_input(rng, spec, 0, frame_max, None)
                }
            }
        }
        // Content frames out of order: a lone header or body frame.
        860..=869 => {
            let ch = channel(rng, model);
            let mut bytes = Vec::new();
            if rng.bool() {
                let budget = frame_max.saturating_sub(4_000).max(64);
                let (p, _, _) = props(rng, budget, None);
                let header = wire::content_header(60, rng.below(100), &p);
                wire::frame(&mut bytes, wire::HEADER, ch, &header);
            } else {
                wire::frame(
                    &mut bytes,
                    wire::BODY,
                    ch,
                    &vec![0x5A; rng.below(64) as usize],
                );
            }
            Input {
                bytes,
                what: "content out of order",
                method: None,
                channel: ch,
                depth: 0,
                replies: &[],
                class: 0,
                expect: Expect::Any,
            }
        }
        // A heartbeat off channel 0: 505.
        870..=874 => {
            let ch = *rng.pick(&[1u16, 0xFFFF]);
            let mut bytes = Vec::new();
            wire::heartbeat(&mut bytes, ch);
            Input {
                bytes,
                what: "heartbeat off channel 0",
                method: None,
                channel: ch,
                depth: 0,
                replies: &[],
                class: 0,
                expect: Expect::NoFrameError,
            }
        }
        // A table right at the bound (or just under it): accepted.
        875..=939 => {
            let depth = if rng.bool() {
                MAX_DEPTH
            } else {
                rng.range(MAX_DEPTH as u64 - 8, MAX_DEPTH as u64) as usize
            };
            let (t, d) = deep_table(rng, depth, frame_max);
            let ch = channel(rng, model);
            let spec = table_method(rng);
            method_input(rng, spec, ch, frame_max, Some((&t, d)))
        }
        // A table past the bound in any method that carries one: 501.
        940..=969 => {
            let depth = if rng.one_in(60) {
                rng.range(3_000, 20_000) as usize
            } else {
                rng.range(MAX_DEPTH as u64 + 1, 200) as usize
            };
            let (t, d) = deep_table(rng, depth, frame_max);
            let ch = channel(rng, model);
            let spec = table_method(rng);
            method_input(rng, spec, ch, frame_max, Some((&t, d)))
        }
        // A message whose headers nest past the bound: 501 once the broker decodes it.
        970..=984 => {
            let depth = if rng.one_in(60) {
                rng.range(3_000, 20_000) as usize
            } else {
                rng.range(MAX_DEPTH as u64 + 1, 200) as usize
            };
            let idle = idle_channel(rng, model);
            let ch = idle.unwrap_or_else(|| channel(rng, model));
            let mut bytes = Vec::new();
            let (expect, depth) = publish(rng, &mut bytes, ch, frame_max, Some(depth));
            Input {
                bytes,
                what: "basic.publish+deep headers",
                method: wire::method_index(60, 40),
                channel: ch,
                depth,
                replies: &[],
                class: 60,
                // Only an idle open channel decodes the header; elsewhere it is dropped
                // (closing) or refused as unexpected (505) before it is decoded.
                expect: if idle.is_some() { expect } else { Expect::Any },
            }
        }
        // A frame one byte or far over frame_max, well-formed otherwise: 501.
        985..=989 => {
            let ch = channel(rng, model);
            let over = if rng.bool() {
                1
            } else {
                rng.range(2, 100_000) as usize
            };
            let mut payload = Args::new(50, 10)
                .short(0)
                .shortstr(b"q")
                .bit(false)
                .finish();
            let table_len = frame_max + over - payload.len() - 4;
            payload.extend_from_slice(&(table_len as u32).to_be_bytes());
            payload.resize(frame_max + over, b'V');
            // Void values have no key; make it a run of 1-byte keys with void values.
            for pair in payload[4 + 2 + 2 + 1 + 4..].chunks_mut(3) {
                if pair.len() == 3 {
                    pair.copy_from_slice(&[1, b'k', b'V']);
                }
            }
            let mut bytes = Vec::new();
            wire::frame(&mut bytes, wire::METHOD, ch, &payload);
            Input {
                bytes,
                what: "frame over frame_max",
                method: wire::method_index(50, 10),
                channel: ch,
                depth: 1,
                replies: &[],
                class: 50,
                expect: Expect::FrameError,
            }
        }
        // Any method on channel 0 or past channel_max.
        _ => {
            let spec = rng.pick(METHODS);
            let ch = *rng.pick(ODD_CHANNELS);
            method_input(rng, spec, ch, frame_max, None)
        }
    }
}
