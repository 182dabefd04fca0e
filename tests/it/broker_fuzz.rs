//! Structured fuzzing over real sockets, plain TCP and TLS: whole sessions — protocol
//! header, start-ok, tune-ok, open, channel.open, declares, a publish with its content,
//! get, channel.close, connection.close — with extreme but valid arguments (255-byte
//! multi-byte names, tables up to the depth bound or with thousands of entries, every
//! content property, bodies in many frames). Each session is sent whole in one write, or
//! cut at random byte boundaries into many writes, flushed one by one — back to back, or
//! stepwise: what follows connection.open only once open-ok is in, so that the session's
//! own reads meet the cuts. Some stop halfway, some turn hostile before login (a start-ok
//! table nested past the bound) or after it (tables past the bound, reply texts that
//! would run over 255 bytes).
//!
//! Every session must get all its replies, ending in close-ok, or a close, within a
//! bounded time; no broker thread may panic; the broker must serve a fresh client after
//! a hostile one and hold no connection once all are gone.
//!
//! The frames are built by the in-process structured fuzzer's encoder, included from
//! src/ so that both fuzzers share it. `RMQ_FUZZ_SESSIONS` sets the number of sessions per
//! transport, `RMQ_FUZZ_SEED` replays a run, `RMQ_FUZZ_KIND` keeps one kind of session
//! (valid, stopped, prelogin, postlogin).

#[path = "../../src/broker/fuzz_structured/wire.rs"]
mod wire;

use crate::support::{Broker, WAIT, metric};
use crate::tls_support::Pki;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};
use wire::{Args, MAX_DEPTH, Props, Rng, Shape};

/// The longest the broker may take to send the next frame, or to close.
const READ_WAIT: Duration = Duration::from_secs(5);
/// The longest a whole session may take.
const SESSION_WAIT: Duration = Duration::from_secs(20);

/// Panics on this test's broker threads (named `rmq-fuzz-broker-*`).
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Record panics on broker threads, then report them as usual. A connection task that
/// panics only drops its socket (tokio catches the panic), which a hostile session
/// cannot tell from a refusal: the hook can.
fn watch_broker_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(name) = std::thread::current().name()
                && name.starts_with("rmq-fuzz-broker")
            {
                PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("{name}: {info}"));
            }
            previous(info);
        }));
    });
}

fn broker_panics(threads: &str) -> Vec<String> {
    PANICS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|p| p.starts_with(threads))
        .cloned()
        .collect()
}

/// A client socket, plain or TLS.
trait Conn: Read + Write {
    /// Send end-of-stream (TLS: close_notify first); reading stays possible.
    fn end_writes(&mut self);
}

impl Conn for TcpStream {
    fn end_writes(&mut self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl Conn for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn end_writes(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.sock.shutdown(Shutdown::Write);
    }
}

/// Where and how to connect.
#[derive(Clone)]
enum Target {
    Plain(SocketAddr),
    Tls(SocketAddr, Arc<rustls::ClientConfig>),
}

impl Target {
    fn connect(&self) -> Box<dyn Conn> {
        let addr = match self {
            Target::Plain(a) | Target::Tls(a, _) => *a,
        };
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(READ_WAIT)).unwrap();
        sock.set_write_timeout(Some(READ_WAIT)).unwrap();
        // Each piece of a split session goes out on its own.
        sock.set_nodelay(true).unwrap();
        match self {
            Target::Plain(_) => Box::new(sock),
            Target::Tls(_, config) => {
                let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
                Box::new(rustls::StreamOwned::new(conn, sock))
            }
        }
    }
}

/// A client configuration trusting the test CA only.
fn tls_client(pki: &Pki) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// One frame from the broker.
#[derive(Debug)]
struct Frame {
    kind: u8,
    channel: u16,
    payload: Vec<u8>,
}

impl std::fmt::Display for Frame {
    /// Methods by ids, closes with their code and text, other frames by type and size.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (class, method) = self.ids();
        match (self.kind, class, method) {
            (wire::METHOD, 10, 50) | (wire::METHOD, 20, 40) if self.payload.len() >= 7 => {
                let code = u16::from_be_bytes([self.payload[4], self.payload[5]]);
                let end = (7 + self.payload[6] as usize).min(self.payload.len());
                let text = String::from_utf8_lossy(&self.payload[7..end]);
                write!(
                    f,
                    "close {class}.{method} on channel {}: {code} {text}",
                    self.channel
                )
            }
            (wire::METHOD, ..) => write!(f, "method {class}.{method} on channel {}", self.channel),
            (kind, ..) => write!(
                f,
                "frame type {kind} on channel {}, {} bytes",
                self.channel,
                self.payload.len()
            ),
        }
    }
}

impl Frame {
    fn ids(&self) -> (u16, u16) {
        if self.kind != wire::METHOD || self.payload.len() < 4 {
            return (0, 0);
        }
        let p = &self.payload;
        (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        )
    }
}

/// Reads frames with bounded waits.
struct Reader {
    buf: Vec<u8>,
    deadline: Instant,
}

/// The broker closed the socket (end-of-stream or reset).
#[derive(Debug, PartialEq, Eq)]
struct Closed;

impl Reader {
    fn new() -> Reader {
        Reader {
            buf: Vec::new(),
            deadline: Instant::now() + SESSION_WAIT,
        }
    }

    /// The next frame, `Err(Closed)` once the broker has closed, or a panic when nothing
    /// arrives in time.
    fn frame(&mut self, conn: &mut dyn Conn, what: &dyn Fn() -> String) -> Result<Frame, Closed> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]])
                    as usize;
                if self.buf.len() >= size + 8 {
                    assert_eq!(
                        self.buf[7 + size],
                        wire::FRAME_END,
                        "frame end octet: {}",
                        what()
                    );
                    let frame = Frame {
                        kind: self.buf[0],
                        channel: u16::from_be_bytes([self.buf[1], self.buf[2]]),
                        payload: self.buf[7..7 + size].to_vec(),
                    };
                    self.buf.drain(..size + 8);
                    return Ok(frame);
                }
            }
            assert!(
                Instant::now() < self.deadline,
                "session took over {SESSION_WAIT:?}: {}",
                what()
            );
            match conn.read(&mut chunk) {
                Ok(0) => {
                    assert!(self.buf.is_empty(), "closed mid-frame: {}", what());
                    return Err(Closed);
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!(
                        "nothing from the broker for {READ_WAIT:?}: {}; broker panics: {:?}",
                        what(),
                        broker_panics("rmq-fuzz-broker")
                    )
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A reset, or TLS without close_notify: closed all the same.
                Err(_) => return Err(Closed),
            }
        }
    }
}

/// A reply a session must get, in order (heartbeats and publisher confirms aside).
#[derive(Debug, Clone)]
enum Want {
    Method(u16, u16, u16),
    /// basic.get-ok, then this content header (the publisher's bytes, unchanged) and body.
    Message {
        channel: u16,
        header: Vec<u8>,
        body: Vec<u8>,
    },
    /// channel.close (channel > 0) or connection.close with this code and text start.
    Close {
        channel: u16,
        code: u16,
        text: &'static str,
    },
}

/// A session's bytes and what the broker must answer.
struct Script {
    bytes: Vec<u8>,
    wants: Vec<Want>,
    /// Ends with a connection.close from the broker, to be answered with close-ok.
    broker_closes: bool,
    /// Refused before login: the socket is dropped after connection.start.
    refused_before_login: bool,
    /// Publisher confirms may arrive anywhere after confirm.select.
    confirms: bool,
    /// Where the bytes after connection.open start (sessions that log in).
    login_end: Option<usize>,
    label: String,
}

/// A short string that is valid UTF-8, at its bounds (the broker need not take others).
fn valid_short(rng: &mut Rng) -> Vec<u8> {
    wire::extreme_short(rng, false)
}

/// A name of exactly `len` bytes (at least the prefix's), unique to this session,
/// multi-byte characters included.
fn name(rng: &mut Rng, prefix: &str, len: usize) -> Vec<u8> {
    let mut n = prefix.as_bytes().to_vec();
    let rest = len.saturating_sub(n.len());
    n.extend_from_slice(&wire::utf8(rng, rest));
    n
}

/// A table for a valid session: shallow, wide (thousands of entries), or at the depth
/// bound; keys that are not UTF-8 only where `invalid_keys`.
fn valid_table(rng: &mut Rng, budget: usize, invalid_keys: bool) -> (Vec<u8>, usize) {
    let shape = match rng.below(8) {
        0 => return (wire::empty_table(), 1),
        1 => Shape {
            depth: 1,
            breadth: rng.range(100, 3_000) as usize,
            invalid_keys,
            budget,
        },
        2 => Shape {
            depth: rng.range(MAX_DEPTH as u64 - 4, MAX_DEPTH as u64) as usize,
            breadth: rng.below(3) as usize,
            invalid_keys,
            budget,
        },
        _ => Shape {
            depth: rng.range(1, 8) as usize,
            breadth: rng.below(20) as usize,
            invalid_keys,
            budget,
        },
    };
    let t = wire::table(rng, shape);
    (t.bytes, t.depth)
}

/// The handshake: header, start-ok (client properties of any valid shape within
/// `budget`, PLAIN or AMQPLAIN), tune-ok at its bounds, open. Returns the negotiated
/// frame_max and channel_max.
fn handshake(
    rng: &mut Rng,
    out: &mut Vec<u8>,
    wants: &mut Vec<Want>,
    budget: usize,
) -> (usize, u16) {
    out.extend_from_slice(wire::PROTOCOL_HEADER);
    wants.push(Want::Method(0, 10, 10));
    let (props, _) = valid_table(rng, budget, false);
    let (mechanism, response): (&[u8], Vec<u8>) = if rng.bool() {
        (b"PLAIN", b"\0guest\0guest".to_vec())
    } else {
        let mut entries = Vec::new();
        wire::put_short(&mut entries, b"LOGIN");
        entries.push(b'S');
        wire::put_long(&mut entries, b"guest");
        wire::put_short(&mut entries, b"PASSWORD");
        entries.push(b'S');
        wire::put_long(&mut entries, b"guest");
        (b"AMQPLAIN", entries)
    };
    let locale = if rng.bool() {
        b"en_US".to_vec()
    } else {
        valid_short(rng)
    };
    let start_ok = Args::new(10, 11)
        .table(&props)
        .shortstr(mechanism)
        .longstr(&response)
        .shortstr(&locale)
        .finish();
    wire::frame(out, wire::METHOD, 0, &start_ok);
    wants.push(Want::Method(0, 10, 30));
    // tune-ok at its bounds: 0 is "the server's", larger is cut to the server's.
    let (frame_max, asked) = if rng.one_in(4) {
        (4096, 4096)
    } else {
        (131_072, *rng.pick(&[0, 131_072, 200_000, u32::MAX]))
    };
    let (channel_max, asked_channels) = match rng.below(4) {
        0 => (2047, 0),
        1 => (2047, u16::MAX),
        _ => {
            let n = rng.range(1, 2047) as u16;
            (n, n)
        }
    };
    let heartbeat = *rng.pick(&[0u16, 600, u16::MAX]);
    let tune_ok = Args::new(10, 31)
        .short(asked_channels)
        .long(asked)
        .short(heartbeat)
        .finish();
    wire::frame(out, wire::METHOD, 0, &tune_ok);
    let open = Args::new(10, 40)
        .shortstr(b"/")
        .shortstr(&valid_short(rng))
        .bit(rng.bool())
        .finish();
    wire::frame(out, wire::METHOD, 0, &open);
    wants.push(Want::Method(0, 10, 41));
    (frame_max, channel_max)
}

/// A whole valid session.
fn valid_session(rng: &mut Rng, n: u64) -> Script {
    let mut out = Vec::new();
    let mut wants = Vec::new();
    // A compact session fits the broker's first read whole: what follows
    // connection.open is then already buffered when the handshake ends.
    let compact = rng.one_in(3);
    let (frame_max, channel_max) = handshake(
        rng,
        &mut out,
        &mut wants,
        if compact { 200 } else { 100_000 },
    );
    let login_end = out.len();
    // Room in a frame for a table beside a few short strings.
    let room = if compact { 200 } else { frame_max - 2_000 };
    let ch = if rng.bool() { 1 } else { channel_max };
    let heartbeat = |rng: &mut Rng, out: &mut Vec<u8>| {
        if rng.one_in(4) {
            wire::heartbeat(out, 0);
        }
    };
    wire::frame(
        &mut out,
        wire::METHOD,
        ch,
        &Args::new(20, 10).shortstr(&valid_short(rng)).finish(),
    );
    wants.push(Want::Method(ch, 20, 11));
    heartbeat(rng, &mut out);
    if rng.one_in(3) {
        let qos = Args::new(60, 10)
            .long(0)
            .short(wire::edge(rng) as u16)
            .bit(rng.bool())
            .finish();
        wire::frame(&mut out, wire::METHOD, ch, &qos);
        wants.push(Want::Method(ch, 60, 11));
    }
    if rng.one_in(4) {
        wire::frame(
            &mut out,
            wire::METHOD,
            ch,
            &Args::new(20, 20).bit(true).finish(),
        );
        wants.push(Want::Method(ch, 20, 21));
    }
    if rng.one_in(4) {
        let request = Args::new(30, 10)
            .shortstr(&valid_short(rng))
            .bit(rng.bool())
            .bit(rng.bool())
            .bit(rng.bool())
            .bit(rng.bool())
            .bit(rng.bool())
            .finish();
        wire::frame(&mut out, wire::METHOD, ch, &request);
        wants.push(Want::Method(ch, 30, 11));
    }
    if rng.one_in(4) {
        let len = rng.extreme_len(room.min(100_000));
        let secret = Args::new(10, 70)
            .longstr(&wire::ascii(rng, len))
            .shortstr(&valid_short(rng))
            .finish();
        wire::frame(&mut out, wire::METHOD, 0, &secret);
        wants.push(Want::Method(0, 10, 71));
    }
    if rng.one_in(3) {
        let len = rng.range(12, 255) as usize;
        let (args, _) = valid_table(rng, room, false);
        let declare = Args::new(40, 10)
            .short(wire::edge(rng) as u16)
            .shortstr(&name(rng, &format!("fx{n}-"), len))
            .shortstr(rng.pick::<&[u8]>(&[b"direct", b"fanout", b"topic", b"headers"]))
            .bit(false)
            .bit(rng.bool())
            .bit(rng.bool())
            .bit(false)
            .bit(false)
            .table(&args)
            .finish();
        wire::frame(&mut out, wire::METHOD, ch, &declare);
        wants.push(Want::Method(ch, 40, 11));
    }
    let mode = rng.below(3);
    match mode {
        1 => {
            wire::frame(
                &mut out,
                wire::METHOD,
                ch,
                &Args::new(85, 10).bit(false).finish(),
            );
            wants.push(Want::Method(ch, 85, 11));
        }
        2 => {
            wire::frame(&mut out, wire::METHOD, ch, &Args::new(90, 10).finish());
            wants.push(Want::Method(ch, 90, 11));
        }
        _ => {}
    }
    // The queue: a unique name of up to 255 bytes, multi-byte characters included.
    let len = if rng.bool() {
        255
    } else {
        rng.range(12, 254) as usize
    };
    let queue = name(rng, &format!("fz{n}-"), len);
    let (args, _) = valid_table(rng, room, false);
    let declare = Args::new(50, 10)
        .short(wire::edge(rng) as u16)
        .shortstr(&queue)
        .bit(false)
        .bit(rng.bool())
        .bit(rng.bool())
        .bit(rng.bool())
        .bit(false)
        .table(&args)
        .finish();
    wire::frame(&mut out, wire::METHOD, ch, &declare);
    wants.push(Want::Method(ch, 50, 11));
    heartbeat(rng, &mut out);
    // The message: every property at a valid extreme, headers wide or deep.
    let publish = Args::new(60, 40)
        .short(wire::edge(rng) as u16)
        .shortstr(b"")
        .shortstr(&queue)
        .bit(rng.bool())
        .bit(false)
        .finish();
    wire::frame(&mut out, wire::METHOD, ch, &publish);
    let props = valid_props(rng, frame_max, room);
    let size = match rng.below(10) {
        0 => 0,
        1 => 255,
        2..=5 => rng.range(1, 300) as usize,
        _ if compact => rng.range(1, 300) as usize,
        6 => rng.range(100_000, 300_000) as usize,
        _ => rng.range(1, 3 * frame_max as u64) as usize,
    };
    let body: Vec<u8> = (0..size).map(|i| (i * 31 + n as usize) as u8).collect();
    let header = wire::content_header(60, size as u64, &props);
    wire::frame(&mut out, wire::HEADER, ch, &header);
    wire::body_frames(rng, &mut out, ch, &body, frame_max - wire::FRAME_OVERHEAD);
    if mode == 2 {
        wire::frame(&mut out, wire::METHOD, ch, &Args::new(90, 20).finish());
        wants.push(Want::Method(ch, 90, 21));
    }
    heartbeat(rng, &mut out);
    let get = Args::new(60, 70)
        .short(0)
        .shortstr(&queue)
        .bit(rng.bool())
        .finish();
    wire::frame(&mut out, wire::METHOD, ch, &get);
    wants.push(Want::Message {
        channel: ch,
        header,
        body,
    });
    close_both(rng, &mut out, &mut wants, ch);
    Script {
        bytes: out,
        wants,
        broker_closes: false,
        refused_before_login: false,
        confirms: mode == 1,
        login_end: Some(login_end),
        label: "valid session".into(),
    }
}

/// channel.close and connection.close with their fields at the bounds.
fn close_both(rng: &mut Rng, out: &mut Vec<u8>, wants: &mut Vec<Want>, ch: u16) {
    let close = |rng: &mut Rng, class: u16| {
        Args::new(class, if class == 10 { 50 } else { 40 })
            .short(wire::edge(rng) as u16)
            .shortstr(&valid_short(rng))
            .short(wire::edge(rng) as u16)
            .short(wire::edge(rng) as u16)
            .finish()
    };
    let c = close(rng, 20);
    wire::frame(out, wire::METHOD, ch, &c);
    wants.push(Want::Method(ch, 20, 41));
    let c = close(rng, 10);
    wire::frame(out, wire::METHOD, 0, &c);
    wants.push(Want::Method(0, 10, 51));
}

/// Content properties at valid extremes: strings of 0 and 255 bytes (multi-byte UTF-8),
/// integers at their edges, a headers table wide or at the depth bound, its keys now and
/// then not UTF-8 (RabbitMQ takes them; the broker must forward them unchanged).
fn valid_props(rng: &mut Rng, frame_max: usize, room: usize) -> Props {
    let all = rng.bool();
    let s = |rng: &mut Rng| (all || rng.bool()).then(|| valid_short(rng));
    let mut p = Props {
        content_type: s(rng),
        content_encoding: s(rng),
        correlation_id: s(rng),
        message_id: s(rng),
        kind: s(rng),
        app_id: s(rng),
        cluster_id: s(rng),
        ..Props::default()
    };
    // reply-to naming direct reply-to is rewritten on the way; any other is kept.
    p.reply_to = (all || rng.bool()).then(|| {
        let mut r = valid_short(rng);
        if r.starts_with(b"amq.") {
            r[0] = b'x';
        }
        r
    });
    p.expiration = (all || rng.bool()).then(|| {
        rng.pick(&[&b"3600000"[..], b"315360000000", b"86400000"])
            .to_vec()
    });
    p.user_id = (all || rng.bool()).then(|| b"guest".to_vec());
    p.delivery_mode = (all || rng.bool()).then(|| wire::edge(rng) as u8);
    p.priority = (all || rng.bool()).then(|| wire::edge(rng) as u8);
    p.timestamp = (all || rng.bool()).then(|| wire::edge(rng));
    if all || rng.bool() {
        let budget = (frame_max - 14 - 12 * 256 - 64).min(room);
        let invalid = rng.one_in(3);
        p.headers = Some(valid_table(rng, budget, invalid).0);
    }
    p
}

/// A session cut short at a random byte, before or after login.
fn stopped_session(rng: &mut Rng, n: u64) -> Script {
    let mut s = valid_session(rng, n);
    let cut = rng.below(s.bytes.len() as u64) as usize;
    s.bytes.truncate(cut);
    s.label = format!("session stopped after {cut} bytes");
    s
}

/// A start-ok whose client properties nest past the bound: dropped before login.
fn deep_before_login(rng: &mut Rng) -> Script {
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
fn hostile_after_login(rng: &mut Rng, n: u64) -> Script {
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
enum Sending {
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
fn run(
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
fn fresh_client(target: &Target) {
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

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.replace('_', "").parse().ok(),
    }
}

/// `sessions` sessions of every kind against `target`; `metrics` fetches the broker's
/// /metrics text.
fn fuzz_sessions(
    target: &Target,
    threads: &str,
    sessions: u64,
    seed: u64,
    metrics: impl std::future::Future<Output = String>,
) {
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    // One kind of session only, to chase a failure: valid, stopped, prelogin, postlogin.
    let only = std::env::var("RMQ_FUZZ_KIND").ok();
    let mut kinds = std::collections::BTreeMap::new();
    let mut bytes = 0;
    for n in 0..sessions {
        let ctx = format!("session {n} (RMQ_FUZZ_SEED={seed:#x})");
        let sending = *rng.pick(&[Sending::Whole, Sending::Split, Sending::Stepwise]);
        let roll = match only.as_deref() {
            Some("valid") => 0,
            Some("stopped") => 13,
            Some("prelogin") => 15,
            Some("postlogin") => 17,
            _ => rng.below(20),
        };
        let (script, stopped, kind) = match roll {
            0..=12 => (valid_session(&mut rng, n), false, "valid"),
            13 | 14 => (stopped_session(&mut rng, n), true, "stopped"),
            15 | 16 => (deep_before_login(&mut rng), false, "hostile before login"),
            _ => (
                hostile_after_login(&mut rng, n),
                false,
                "hostile after login",
            ),
        };
        let kind = format!("{kind}, {sending:?}");
        bytes += script.bytes.len();
        run(target, &mut rng, &script, sending, stopped, &ctx);
        if !kind.starts_with("valid") {
            fresh_client(target);
        }
        *kinds.entry(kind).or_insert(0u64) += 1;
        let panics = broker_panics(threads);
        assert!(panics.is_empty(), "the broker panicked ({ctx}): {panics:?}");
    }
    fresh_client(target);
    eprintln!(
        "{threads}: {sessions} sessions, {bytes} bytes in {:.1} s: {kinds:?}",
        started.elapsed().as_secs_f64()
    );
    // Every connection is gone: none was left behind by a task that died.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = rt.block_on(async {
        tokio::time::timeout(WAIT, metrics)
            .await
            .expect("GET /metrics")
    });
    assert_eq!(
        metric(&text, "rabbitmq_connections"),
        0.0,
        "connections left open"
    );
}

#[test]
fn structured_sessions_over_tcp() {
    watch_broker_panics();
    let threads = "rmq-fuzz-broker-tcp";
    let broker = Broker::start_named(threads, |_| {});
    let seed = env_u64("RMQ_FUZZ_SEED").unwrap_or(0x5EED_0003);
    let sessions = env_u64("RMQ_FUZZ_SESSIONS").unwrap_or(600);
    let target = Target::Plain(broker.addr);
    fuzz_sessions(&target, threads, sessions, seed, broker.metrics());
}

#[test]
fn structured_sessions_over_tls() {
    watch_broker_panics();
    let threads = "rmq-fuzz-broker-tls";
    let pki = Pki::new();
    let (cert, key) = (pki.server_cert.clone(), pki.server_key.clone());
    let broker = Broker::start_named(threads, move |c| {
        c.tls = Some(rmq::broker::TlsConfig::new(0, cert, key));
    });
    let target = Target::Tls(broker.tls_addr.expect("amqps"), tls_client(&pki));
    let seed = env_u64("RMQ_FUZZ_SEED").unwrap_or(0x5EED_0004);
    let sessions = env_u64("RMQ_FUZZ_SESSIONS").unwrap_or(300);
    // With TLS configured, the management API speaks https too.
    let metrics = async {
        let resp = pki
            .https_client()
            .get(format!("{}/metrics", broker.https_url()))
            .send()
            .await
            .expect("GET /metrics");
        resp.text().await.expect("metrics text")
    };
    fuzz_sessions(&target, threads, sessions, seed, metrics);
}
