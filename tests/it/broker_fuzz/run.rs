//! Running a session: its bytes sent whole, cut, or stepwise, and every reply judged
//! against what the session is owed; then a fresh client, to show the broker still serves.

use super::broker_panics;
use super::client::{Closed, Conn, Frame, Reader, Target};
use super::sessions::{Script, Want};
use super::wire::{self, Args, Rng};
use std::io::Write;

/// Check a close method's fields: the reply text is a short string that fits its frame.
fn close_fields(f: &Frame) -> (u16, Vec<u8>) {
    let p = &f.payload;
    assert!(p.len() >= 7, "close frame too short: {p:02x?}");
    let code = u16::from_be_bytes([p[4], p[5]]);
    let len = p[6] as usize;
    assert_eq!(
        p.len(),
        7 + len + 4,
        "reply text length octet does not match the frame (a text over 255 bytes?)"
    );
    (code, p[7..7 + len].to_vec())
}

/// Send `bytes` whole or in pieces. A write the broker refused (it closed first) ends
/// the sending; what it answered before that still counts.
fn send(conn: &mut dyn Conn, rng: &mut Rng, bytes: &[u8], split: bool) -> usize {
    let cuts: Vec<usize> = if !split {
        vec![bytes.len()]
    } else if bytes.len() <= 600 && rng.one_in(4) {
        (1..=bytes.len()).collect()
    } else {
        let mut c: Vec<usize> = (0..rng.range(2, 200))
            .map(|_| rng.range(1, bytes.len().max(1) as u64) as usize)
            .collect();
        c.push(bytes.len());
        c.sort_unstable();
        c.dedup();
        c
    };
    let mut at = 0;
    let mut writes = 0;
    for cut in cuts {
        if conn
            .write_all(&bytes[at..cut])
            .and_then(|()| conn.flush())
            .is_err()
        {
            break;
        }
        writes += 1;
        at = cut;
    }
    writes
}

/// How a session's bytes go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sending {
    /// In one write.
    Whole,
    /// Cut at random bytes into many writes, each flushed, back to back.
    Split,
    /// Cut the same way, but the bytes after connection.open wait for open-ok: the
    /// broker cannot have read them with the handshake, so the session's own reads
    /// meet the cuts (frames split across reads).
    Stepwise,
}

/// Run one session and judge what comes back.
pub(super) fn run(
    target: &Target,
    rng: &mut Rng,
    script: &Script,
    sending: Sending,
    stopped: bool,
    ctx: &str,
) {
    let mut conn = target.connect();
    let writes = std::cell::Cell::new(0);
    let what = || {
        format!(
            "{ctx}: {}, {sending:?} ({} bytes in {} write(s))",
            script.label,
            script.bytes.len(),
            writes.get()
        )
    };
    // Stepwise: the handshake (header, start-ok, tune-ok, open) first, then the rest once
    // its three replies are in.
    let (first, first_wants) = match script.login_end {
        Some(end) if sending == Sending::Stepwise && end <= script.bytes.len() => (end, 3),
        _ => (script.bytes.len(), script.wants.len()),
    };
    let split = sending != Sending::Whole;
    writes.set(send(conn.as_mut(), rng, &script.bytes[..first], split));
    let mut reader = Reader::new();
    let mut judged = 0;
    for (part, end) in [(0, first_wants), (1, script.wants.len())] {
        if part == 1 && first < script.bytes.len() {
            let n = send(conn.as_mut(), rng, &script.bytes[first..], split);
            writes.set(writes.get() + n);
        }
        // All sent: a session that stops, or is refused, says so.
        let all_sent = part == 1 || first == script.bytes.len();
        if all_sent && (stopped || script.refused_before_login) {
            conn.end_writes();
        }
        for want in &script.wants[judged..end] {
            if !judge(conn.as_mut(), &mut reader, script, want, judged, &what) {
                // A peer refused before login is dropped with its bytes unread: the
                // kernel answers with a reset, which may overtake connection.start.
                assert!(
                    stopped || script.refused_before_login,
                    "closed before reply #{judged} {want:?}: {}; broker panics: {:?}",
                    what(),
                    broker_panics("rmq-fuzz-broker")
                );
                return;
            }
            judged += 1;
        }
    }
    if script.broker_closes {
        let ok = Args::new(10, 51).finish();
        let mut f = Vec::new();
        wire::frame(&mut f, wire::METHOD, 0, &ok);
        let _ = conn.write_all(&f).and_then(|()| conn.flush());
    }
    // Then nothing but the end of the connection.
    match next_frame(conn.as_mut(), &mut reader, script, &what) {
        Err(Closed) => {}
        Ok(f) => panic!("unexpected {f} at the end of {}", what()),
    }
}

/// The next frame that is not a heartbeat (or, in confirm mode, a basic.ack).
fn next_frame(
    conn: &mut dyn Conn,
    reader: &mut Reader,
    script: &Script,
    what: &dyn Fn() -> String,
) -> Result<Frame, Closed> {
    loop {
        match reader.frame(conn, what) {
            Ok(f) if f.kind == wire::HEARTBEAT => {}
            Ok(f) if script.confirms && f.ids() == (60, 80) => {}
            other => return other,
        }
    }
}

/// Read what answers `want` (reply number `i`) and check it; false if the broker closed
/// the connection first.
fn judge(
    conn: &mut dyn Conn,
    reader: &mut Reader,
    script: &Script,
    want: &Want,
    i: usize,
    what: &dyn Fn() -> String,
) -> bool {
    let Ok(frame) = next_frame(conn, reader, script, what) else {
        return false;
    };
    match want {
        Want::Method(ch, class, method) => {
            assert_eq!(
                (frame.channel, frame.ids()),
                (*ch, (*class, *method)),
                "reply #{i}: {}; got {frame}",
                what()
            );
        }
        Want::Message {
            channel,
            header,
            body,
        } => {
            assert_eq!(
                (frame.channel, frame.ids()),
                (*channel, (60, 71)),
                "get-ok: {}; got {frame}",
                what()
            );
            let h = next_frame(conn, reader, script, what)
                .unwrap_or_else(|_| panic!("no header: {}", what()));
            assert_eq!(h.kind, wire::HEADER, "{}", what());
            assert!(
                h.payload == *header,
                "the content header came back changed: {}",
                what()
            );
            let mut got = Vec::new();
            while got.len() < body.len() {
                let b = next_frame(conn, reader, script, what)
                    .unwrap_or_else(|_| panic!("body cut: {}", what()));
                assert_eq!(b.kind, wire::BODY, "{}", what());
                got.extend_from_slice(&b.payload);
            }
            assert!(got == *body, "the body came back changed: {}", what());
        }
        Want::Close {
            channel,
            code,
            text,
        } => {
            let close = if *channel == 0 { (10, 50) } else { (20, 40) };
            assert_eq!(
                (frame.channel, frame.ids()),
                (*channel, close),
                "{}; got {frame}",
                what()
            );
            let (got, reply) = close_fields(&frame);
            let reply_text = String::from_utf8_lossy(&reply);
            assert_eq!(got, *code, "{}: {reply_text}", what());
            assert!(
                reply.starts_with(text.as_bytes()),
                "{}: {reply_text}",
                what()
            );
            assert!(
                std::str::from_utf8(&reply).is_ok(),
                "reply text cut inside a character: {}",
                what()
            );
        }
    }
    true
}

/// A step-by-step handshake and channel.open: the broker still serves a new client.
pub(super) fn fresh_client(target: &Target) {
    let mut conn = target.connect();
    let mut reader = Reader::new();
    let what = || "a fresh client".to_string();
    let mut f = Vec::new();
    let mut step = |conn: &mut Box<dyn Conn>, bytes: &[u8], want: Option<(u16, u16)>| {
        conn.write_all(bytes).unwrap();
        conn.flush().unwrap();
        if let Some(want) = want {
            let frame = reader.frame(conn.as_mut(), &what).expect("an answer");
            assert_eq!(frame.ids(), want, "fresh client");
        }
    };
    step(&mut conn, wire::PROTOCOL_HEADER, Some((10, 10)));
    let start_ok = Args::new(10, 11)
        .table(&wire::empty_table())
        .shortstr(b"PLAIN")
        .longstr(b"\0guest\0guest")
        .shortstr(b"en_US")
        .finish();
    wire::frame(&mut f, wire::METHOD, 0, &start_ok);
    step(&mut conn, &f, Some((10, 30)));
    f.clear();
    wire::frame(
        &mut f,
        wire::METHOD,
        0,
        &Args::new(10, 31).short(0).long(0).short(0).finish(),
    );
    step(&mut conn, &f, None);
    f.clear();
    let open = Args::new(10, 40)
        .shortstr(b"/")
        .shortstr(b"")
        .bit(false)
        .finish();
    wire::frame(&mut f, wire::METHOD, 0, &open);
    step(&mut conn, &f, Some((10, 41)));
    f.clear();
    wire::frame(
        &mut f,
        wire::METHOD,
        1,
        &Args::new(20, 10).shortstr(b"").finish(),
    );
    step(&mut conn, &f, Some((20, 11)));
    // Closed properly: by its end-of-stream the broker holds no trace of it.
    f.clear();
    let close = Args::new(10, 50)
        .short(200)
        .shortstr(b"")
        .short(0)
        .short(0)
        .finish();
    wire::frame(&mut f, wire::METHOD, 0, &close);
    step(&mut conn, &f, Some((10, 51)));
    assert!(
        reader.frame(conn.as_mut(), &what).is_err(),
        "closed after close-ok"
    );
}
