//! Raw sockets against the embedded broker and the real `rmq serve` binary: wrong
//! protocol headers, garbage, truncated and oversized frames, frames on the wrong
//! channel. Each time the broker answers as RabbitMQ does, stays up, and serves the next
//! client.

use crate::support::wire::{
    expect_connection_close, frame, handshake_with_heartbeat, ids, method, open, read_frame,
    read_method, short,
};
use crate::support::{Broker, WAIT, rmq};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;

/// Handshake as guest on vhost `/` with frame_max 4096 and no heartbeats.
fn handshake(addr: SocketAddr) -> TcpStream {
    handshake_with_heartbeat(addr, 0)
}

/// A full handshake still works: the broker survived whatever came before.
fn still_serving(addr: SocketAddr) {
    let mut s = handshake(addr);
    s.write_all(&frame(1, 1, &method(20, 10, &short(""))))
        .unwrap();
    let (ch, ok) = read_method(&mut s).expect("channel.open-ok");
    assert_eq!((ch, ids(&ok)), (1, (20, 11)));
}

#[test]
fn wrong_protocol_headers_get_ours_back() {
    let broker = Broker::start();
    for header in [
        &b"AMQP\x00\x00\x09\x02"[..],
        b"AMQP\x01\x01\x00\x0a",
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        let mut s = open(broker.addr);
        s.write_all(header).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"AMQP\x00\x00\x09\x01", "answer to {header:?}");
    }
    still_serving(broker.addr);
}

#[test]
fn bad_frames_close_the_connection_with_rabbitmqs_codes() {
    let broker = Broker::start();
    // A frame bigger than the negotiated frame_max (4096): 501, judged from its header.
    let mut s = handshake(broker.addr);
    let mut huge = vec![1u8, 0, 1];
    huge.extend_from_slice(&1_000_000u32.to_be_bytes());
    s.write_all(&huge).unwrap();
    expect_connection_close(&mut s, 501);
    still_serving(broker.addr);

    // Garbage: an unknown frame type.
    let mut s = handshake(broker.addr);
    s.write_all(b"\x09garbage garbage garbage").unwrap();
    expect_connection_close(&mut s, 501);

    // A heartbeat on a channel other than 0: 505 UNEXPECTED_FRAME.
    let mut s = handshake(broker.addr);
    s.write_all(&frame(8, 1, &[])).unwrap();
    expect_connection_close(&mut s, 505);

    // A method on a channel that was never opened: 504 CHANNEL_ERROR.
    let mut s = handshake(broker.addr);
    let mut declare = 0u16.to_be_bytes().to_vec();
    declare.extend(short("q"));
    declare.push(0);
    declare.extend_from_slice(&0u32.to_be_bytes());
    s.write_all(&frame(1, 5, &method(50, 10, &declare)))
        .unwrap();
    expect_connection_close(&mut s, 504);

    // A channel number above the negotiated channel_max (2047) opens, as in RabbitMQ:
    // channel_max bounds how many are open (hostile.py checks the 530 past it).
    let mut s = handshake(broker.addr);
    s.write_all(&frame(1, 3000, &method(20, 10, &short(""))))
        .unwrap();
    let (ch, ok) = read_method(&mut s).expect("channel.open-ok");
    assert_eq!((ch, ids(&ok)), (3000, (20, 11)));

    // A second channel.open on an open channel: 504.
    let mut s = handshake(broker.addr);
    s.write_all(&frame(1, 1, &method(20, 10, &short(""))))
        .unwrap();
    assert_eq!(ids(&read_method(&mut s).unwrap().1), (20, 11));
    s.write_all(&frame(1, 1, &method(20, 10, &short(""))))
        .unwrap();
    expect_connection_close(&mut s, 504);

    // A method frame whose arguments do not decode: 501 (RabbitMQ's frame_error).
    let mut s = handshake(broker.addr);
    s.write_all(&frame(1, 0, &method(10, 50, &[1]))).unwrap();
    expect_connection_close(&mut s, 501);

    // A truncated frame, then the client vanishes: nothing to answer, nothing breaks.
    let mut s = handshake(broker.addr);
    s.write_all(&frame(1, 1, &method(20, 10, &short("")))[..5])
        .unwrap();
    drop(s);
    still_serving(broker.addr);
}

#[test]
fn serve_binary_prints_its_port_and_stops_cleanly_on_sigterm() {
    let mut child = rmq()
        .args(["serve", "--port", "0", "--mgmt-port", "0", "--in-memory"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rmq serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(WAIT) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!("rmq serve printed no address within {WAIT:?}");
        }
    };
    let pid = child.id();
    let addr: SocketAddr = line
        .trim()
        .rsplit("amqp://")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    assert_ne!(addr.port(), 0);
    assert!(addr.ip().is_loopback(), "loopback by default");
    still_serving(addr);
    // A channel error: passive declare of a missing queue (404), answered and logged.
    let mut s = handshake(addr);
    s.write_all(&frame(1, 1, &method(20, 10, &short(""))))
        .unwrap();
    read_method(&mut s).expect("channel.open-ok");
    let mut args = vec![0, 0];
    args.extend(short("no-such-queue"));
    args.push(1); // passive
    args.extend_from_slice(&0u32.to_be_bytes());
    s.write_all(&frame(1, 1, &method(50, 10, &args))).unwrap();
    let (ch, close) = read_method(&mut s).expect("channel.close");
    assert_eq!((ch, ids(&close)), (1, (20, 40)));
    drop(s);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = crate::support::wait_bounded(child, WAIT);
    assert!(out.status.success(), "exit status {:?}", out.status);
    // One line per connection open and close and per error, by default.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains(" opened (user 'guest', vhost '/')"), "{log}");
    assert!(
        log.contains("channel 1: channel error: NOT_FOUND - no queue 'no-such-queue' in vhost '/'"),
        "{log}"
    );
    assert!(log.contains("closed"), "{log}");
}

#[test]
fn a_silent_peer_gets_heartbeats_then_is_dropped() {
    let broker = Broker::start();
    let mut s = handshake_with_heartbeat(broker.addr, 1);
    let started = std::time::Instant::now();
    // RabbitMQ with a 1 s heartbeat: a heartbeat every 0.5 s, then the silent client is
    // dropped after about 2 intervals. We never answer and count what arrives.
    let mut heartbeats = 0;
    while let Some((kind, ch, _)) = read_frame(&mut s) {
        assert_eq!((kind, ch), (8, 0), "only heartbeats on channel 0");
        heartbeats += 1;
    }
    let took = started.elapsed();
    assert!(heartbeats >= 2, "got {heartbeats} heartbeats");
    assert!(
        took < WAIT,
        "dropped after {took:?}, before the read timeout"
    );
    still_serving(broker.addr);
}
