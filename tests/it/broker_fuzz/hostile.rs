//! Sessions the broker must refuse: a table nested past the bound before login, and after
//! it tables past the bound or errors whose reply text would run over 255 bytes.

use super::sessions::{Script, Want, handshake, name};
use super::wire::{self, Args, MAX_DEPTH, Props, Rng, Shape};

/// A start-ok whose client properties nest past the bound: dropped before login.
pub(super) fn deep_before_login(rng: &mut Rng) -> Script {
    let mut out = wire::PROTOCOL_HEADER.to_vec();
    let depth = if rng.one_in(4) {
        rng.range(3_000, 20_000) as usize
    } else {
        rng.range(MAX_DEPTH as u64 + 1, 300) as usize
    };
    let t = wire::table(
        rng,
        Shape {
            depth,
            breadth: 1,
            invalid_keys: false,
            budget: 131_072 - 200,
        },
    );
    let start_ok = Args::new(10, 11)
        .table(&t.bytes)
        .shortstr(b"PLAIN")
        .longstr(b"\0guest\0guest")
        .shortstr(b"en_US")
        .finish();
    wire::frame(&mut out, wire::METHOD, 0, &start_ok);
    // Whatever follows must not matter.
    let tune_ok = Args::new(10, 31).short(0).long(0).short(0).finish();
    wire::frame(&mut out, wire::METHOD, 0, &tune_ok);
    Script {
        bytes: out,
        wants: vec![Want::Method(0, 10, 10)],
        broker_closes: false,
        refused_before_login: true,
        confirms: false,
        login_end: None,
        label: format!("start-ok table {} levels deep", t.depth),
    }
}

/// After login, a frame the broker must refuse, or an error whose reply text would be
/// over 255 bytes.
pub(super) fn hostile_after_login(rng: &mut Rng, n: u64) -> Script {
    let mut out = Vec::new();
    let mut wants = Vec::new();
    let (frame_max, _) = handshake(rng, &mut out, &mut wants, 1_000);
    let login_end = out.len();
    let ch = 1;
    wire::frame(
        &mut out,
        wire::METHOD,
        ch,
        &Args::new(20, 10).shortstr(b"").finish(),
    );
    wants.push(Want::Method(ch, 20, 11));
    let deep = |rng: &mut Rng| {
        let depth = if rng.one_in(4) {
            rng.range(3_000, 20_000) as usize
        } else {
            rng.range(MAX_DEPTH as u64 + 1, 300) as usize
        };
        wire::table(
            rng,
            Shape {
                depth,
                breadth: 1,
                invalid_keys: false,
                budget: frame_max - 1_000,
            },
        )
    };
    let mut broker_closes = true;
    let label = match rng.below(5) {
        0 => {
            let t = deep(rng);
            let declare = Args::new(50, 10)
                .short(0)
                .shortstr(format!("fh{n}").as_bytes())
                .bit(false)
                .bit(false)
                .bit(false)
                .bit(false)
                .bit(false)
                .table(&t.bytes)
                .finish();
            wire::frame(&mut out, wire::METHOD, ch, &declare);
            wants.push(Want::Close {
                channel: 0,
                code: 501,
                text: "",
            });
            format!("queue.declare arguments {} levels deep", t.depth)
        }
        1 => {
            let t = deep(rng);
            let publish = Args::new(60, 40)
                .short(0)
                .shortstr(b"")
                .shortstr(b"q")
                .bit(false)
                .bit(false)
                .finish();
            wire::frame(&mut out, wire::METHOD, ch, &publish);
            let props = Props {
                headers: Some(t.bytes),
                ..Props::default()
            };
            wire::frame(
                &mut out,
                wire::HEADER,
                ch,
                &wire::content_header(60, 1, &props),
            );
            wire::frame(&mut out, wire::BODY, ch, b"x");
            wants.push(Want::Close {
                channel: 0,
                code: 501,
                text: "",
            });
            format!("message headers {} levels deep", t.depth)
        }
        2 => {
            // RabbitMQ's text names the type: 255 bytes of it make a text over 255.
            let kind = name(rng, "x-", 255);
            let declare = Args::new(40, 10)
                .short(0)
                .shortstr(format!("fh{n}").as_bytes())
                .shortstr(&kind)
                .bit(false)
                .bit(false)
                .bit(false)
                .bit(false)
                .bit(false)
                .table(&wire::empty_table())
                .finish();
            wire::frame(&mut out, wire::METHOD, ch, &declare);
            wants.push(Want::Close {
                channel: 0,
                code: 503,
                text: "COMMAND_INVALID - unknown exchange type '",
            });
            "exchange type of 255 bytes (reply text over 255)".into()
        }
        _ => {
            // A missing queue of 255 bytes: NOT_FOUND names it, so the text is cut.
            let queue = name(rng, &format!("missing{n}-"), 255);
            let method = if rng.bool() {
                Args::new(50, 10)
                    .short(0)
                    .shortstr(&queue)
                    .bit(true)
                    .bit(false)
                    .bit(false)
                    .bit(false)
                    .bit(false)
                    .table(&wire::empty_table())
                    .finish()
            } else {
                Args::new(60, 70)
                    .short(0)
                    .shortstr(&queue)
                    .bit(false)
                    .finish()
            };
            wire::frame(&mut out, wire::METHOD, ch, &method);
            wants.push(Want::Close {
                channel: ch,
                code: 404,
                text: "NOT_FOUND - no queue '",
            });
            // The client answers the channel.close it knows is coming, then leaves.
            wire::frame(&mut out, wire::METHOD, ch, &Args::new(20, 41).finish());
            let close = Args::new(10, 50)
                .short(200)
                .shortstr(b"")
                .short(0)
                .short(0)
                .finish();
            wire::frame(&mut out, wire::METHOD, 0, &close);
            wants.push(Want::Method(0, 10, 51));
            broker_closes = false;
            "missing queue of 255 bytes (reply text over 255)".into()
        }
    };
    Script {
        bytes: out,
        wants,
        broker_closes,
        refused_before_login: false,
        confirms: false,
        login_end: Some(login_end),
        label,
    }
}
