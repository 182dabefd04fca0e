//! Raw AMQP frames over a plain socket, for the tests that speak the wire themselves.

use super::WAIT;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

pub(crate) fn open(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// One frame: (type, channel, payload).
pub(crate) fn read_frame(s: &mut TcpStream) -> Option<(u8, u16, Vec<u8>)> {
    let mut head = [0u8; 7];
    s.read_exact(&mut head).ok()?;
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
    let mut payload = vec![0u8; size + 1];
    s.read_exact(&mut payload).ok()?;
    assert_eq!(payload.pop(), Some(0xCE), "frame end octet");
    Some((head[0], u16::from_be_bytes([head[1], head[2]]), payload))
}

pub(crate) fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f.push(0xCE);
    f
}

pub(crate) fn method(class: u16, id: u16, args: &[u8]) -> Vec<u8> {
    let mut p = class.to_be_bytes().to_vec();
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(args);
    p
}

pub(crate) fn short(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

/// (class, method) of a method frame payload.
pub(crate) fn ids(payload: &[u8]) -> (u16, u16) {
    (
        u16::from_be_bytes([payload[0], payload[1]]),
        u16::from_be_bytes([payload[2], payload[3]]),
    )
}

/// Read until a method frame arrives; heartbeats are skipped, but only for WAIT in all
/// (a broker that sends nothing else must not keep the test waiting forever).
pub(crate) fn read_method(s: &mut TcpStream) -> Option<(u16, Vec<u8>)> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (kind, ch, payload) = read_frame(s)?;
        if kind == 1 {
            return Some((ch, payload));
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
    }
}

/// Handshake asking for `heartbeat` seconds (0: none).
pub(crate) fn handshake_with_heartbeat(addr: SocketAddr, heartbeat: u16) -> TcpStream {
    let mut s = pre_open(addr, 4096, heartbeat);
    let mut args = short("/");
    args.extend(short(""));
    args.push(0);
    s.write_all(&frame(1, 0, &method(10, 40, &args))).unwrap();
    let (_, ok) = read_method(&mut s).expect("connection.open-ok");
    assert_eq!(ids(&ok), (10, 41));
    s
}

/// A socket through start-ok (guest, PLAIN) and tune-ok, ready for connection.open.
pub(crate) fn pre_open(addr: SocketAddr, frame_max: u32, heartbeat: u16) -> TcpStream {
    let mut s = open(addr);
    s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    let (_, start) = read_method(&mut s).expect("connection.start");
    assert_eq!(ids(&start), (10, 10));
    let mut args = 0u32.to_be_bytes().to_vec(); // empty client properties
    args.extend(short("PLAIN"));
    let resp = b"\0guest\0guest";
    args.extend_from_slice(&(resp.len() as u32).to_be_bytes());
    args.extend_from_slice(resp);
    args.extend(short("en_US"));
    s.write_all(&frame(1, 0, &method(10, 11, &args))).unwrap();
    let (_, tune) = read_method(&mut s).expect("connection.tune");
    assert_eq!(ids(&tune), (10, 30));
    let mut args = 2047u16.to_be_bytes().to_vec();
    args.extend_from_slice(&frame_max.to_be_bytes());
    args.extend_from_slice(&heartbeat.to_be_bytes());
    s.write_all(&frame(1, 0, &method(10, 31, &args))).unwrap();
    s
}

/// Expect connection.close with `code`, answer close-ok, and see the socket closed.
pub(crate) fn expect_connection_close(s: &mut TcpStream, code: u16) -> String {
    let (ch, close) = read_method(s).expect("connection.close");
    assert_eq!(
        (ch, ids(&close)),
        (0, (10, 50)),
        "expected connection.close"
    );
    let got = u16::from_be_bytes([close[4], close[5]]);
    let text = String::from_utf8_lossy(&close[7..7 + close[6] as usize]).to_string();
    assert_eq!(got, code, "reply code ({text})");
    let _ = s.write_all(&frame(1, 0, &method(10, 51, &[])));
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    text
}
