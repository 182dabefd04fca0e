//! The client side of a socket: connecting plain or over TLS, and reading the broker's
//! frames with bounded waits.

use super::broker_panics;
use super::wire;
use crate::tls_support::Pki;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest the broker may take to send the next frame, or to close.
const READ_WAIT: Duration = Duration::from_secs(5);
/// The longest a whole session may take.
const SESSION_WAIT: Duration = Duration::from_secs(20);

/// A client socket, plain or TLS.
pub(super) trait Conn: Read + Write {
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
pub(super) enum Target {
    Plain(SocketAddr),
    Tls(SocketAddr, Arc<rustls::ClientConfig>),
}

impl Target {
    pub(super) fn connect(&self) -> Box<dyn Conn> {
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
pub(super) fn tls_client(pki: &Pki) -> Arc<rustls::ClientConfig> {
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
pub(super) struct Frame {
    pub(super) kind: u8,
    pub(super) channel: u16,
    pub(super) payload: Vec<u8>,
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
    pub(super) fn ids(&self) -> (u16, u16) {
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
pub(super) struct Reader {
    buf: Vec<u8>,
    deadline: Instant,
}

/// The broker closed the socket (end-of-stream or reset).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Closed;

impl Reader {
    pub(super) fn new() -> Reader {
        Reader {
            buf: Vec::new(),
            deadline: Instant::now() + SESSION_WAIT,
        }
    }

    /// The next frame, `Err(Closed)` once the broker has closed, or a panic when nothing
    /// arrives in time.
    pub(super) fn frame(
        &mut self,
        conn: &mut dyn Conn,
        what: &dyn Fn() -> String,
    ) -> Result<Frame, Closed> {
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
