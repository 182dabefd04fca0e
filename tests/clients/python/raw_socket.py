#!/usr/bin/env python3
"""Raw TCP conformance: protocol headers, malformed and oversized frames, frames on
the wrong channel, heartbeats. Every expectation is what RabbitMQ 3.10.8 does
(codes, which frames, when it only closes the socket); after each error a fresh
pika connection must work.

usage: raw_socket.py AMQP_URL     exit 0 only if every check held.
"""
import socket
import struct

import rawamqp
from rawamqp import (CHANNEL_CLOSE_OK, CHANNEL_OPEN, FRAME_BODY, FRAME_HEARTBEAT, FRAME_METHOD,
                     PROTOCOL_HEADER, QUEUE_DECLARE, RawConn, frame, longstr, method_frame, shortstr,
                     table)
from common import Checks, fresh_connection_works, url_from_argv

URL = url_from_argv()
C = Checks("raw_socket.py")


def healthy(after):
    fresh_connection_works(URL, C, after)


def read_all_until_eof(r, timeout=5.0):
    """Everything the server sends until it closes the socket: (bytes, closed?)."""
    import time
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        chunk = r.recv_bytes(deadline)
        if chunk is None:
            return data, False
        if chunk == b"":
            return data, True
        data += chunk


def conn_close_tuple(c):
    return None if c is None else (c.kind, c.channel, c.code, c.class_id, c.method_id)


def expect_fatal(what, r, code, class_id, method_id, text=None, text_prefix=None):
    """The server sends connection.close(code, class, method) on channel 0, then (after our
    close-ok) closes the socket."""
    try:
        c = r.expect_close()
    except TimeoutError as e:
        C.check(what, False, f"no close within the wait: {e}")
        r.close()
        healthy(what)
        return
    C.eq(what, conn_close_tuple(c), ("connection", 0, code, class_id, method_id))
    if c is not None:
        print(f"       (text: {c.text!r})", flush=True)
        if text is not None:
            C.eq(f"  ...reply text of: {what}", c.text, text)
        if text_prefix is not None:
            C.check(f"  ...reply text starts {text_prefix!r}", c.text.startswith(text_prefix), c.text)
    # After a frame-level error (501) RabbitMQ stops reading and closes the socket about
    # 3 s later; after the others, as soon as our close-ok arrives.
    C.check(f"  ...then the socket is closed ({what})", r.eof_within(10.0))
    r.close()
    healthy(what)


def expect_silent_close(what, r):
    data, closed = read_all_until_eof(r)
    C.check(what, closed and data == b"", f"closed={closed}, data={data!r}")
    r.close()
    healthy(what)


def handshake_facts():
    r = RawConn(URL).handshake()
    major, minor, props, mechanisms, locales = rawamqp.decode_start(r.start)
    C.eq("connection.start: version 0-9", (major, minor), (0, 9))
    caps = props.get("capabilities", {})
    for cap in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                "authentication_failure_close", "per_consumer_qos", "direct_reply_to"):
        C.check(f"connection.start advertises capability {cap}", caps.get(cap) is True, str(caps))
    C.check("connection.start has product/version/platform",
            all(isinstance(props.get(k), str) for k in ("product", "version", "platform")), str(props))
    C.check("connection.start mechanisms include PLAIN and AMQPLAIN",
            {"PLAIN", "AMQPLAIN"} <= set(mechanisms.split()), mechanisms)
    C.check("connection.start locales include en_US", "en_US" in locales.split(), locales)
    C.eq("connection.tune proposes channel_max 2047, frame_max 131072, heartbeat 60",
         r.tune, (2047, 131072, 60))
    r.close()


def wrong_protocol_headers():
    # RabbitMQ answers any header it does not accept with its own, then closes.
    for header in (b"AMQP\x00\x00\x09\x02", b"AMQP\x00\x00\x09\x00", b"AMQP\x00\x00\x08\x00",
                   b"AMQP\x00\x01\x00\x00", b"HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n"):
        r = RawConn(URL)
        r.send(header)
        data, closed = read_all_until_eof(r)
        C.eq(f"protocol header {header!r}: server sends AMQP 0-9-1 header and closes",
             (data, closed), (PROTOCOL_HEADER, True))
        r.close()
    healthy("wrong protocol headers")

    r = RawConn(URL)
    r.send(b"AMQ")
    r.sock.shutdown(socket.SHUT_WR)
    expect_silent_close("partial protocol header then EOF: socket closed, nothing sent", r)


def garbage_and_malformed():
    # 'garbage ...' parses as a frame of type 'g' (103) with a huge size -> frame_too_large
    r = RawConn(URL).handshake()
    r.send(b"garbage garbage garbage")
    expect_fatal("garbage after the handshake -> connection.close 501 FRAME_ERROR", r, 501, 0, 0,
                 text="FRAME_ERROR - type 103, all octets = <<>>: "
                      "{frame_too_large,1650550629,131064}")

    r = RawConn(URL).handshake()
    r.send(frame(9, 0, b"abc"))
    expect_fatal("unknown frame type 9 -> 501 FRAME_ERROR", r, 501, 0, 0,
                 text='FRAME_ERROR - type 9, all octets = <<"abc">>: unknown_frame')

    r = RawConn(URL).handshake()
    r.send(frame(FRAME_METHOD, 0, b"\x00\x0a\x00\x32")[:-1] + b"\x00")
    expect_fatal("bad frame-end octet -> 501 FRAME_ERROR", r, 501, 0, 0,
                 text="FRAME_ERROR - type 1, all octets = <<0,10,0,50>>: "
                      "{invalid_frame_end_marker,0}")

    r = RawConn(URL).handshake()
    r.open_channel(1)
    r.send(method_frame(1, QUEUE_DECLARE, b"\x00"))
    expect_fatal("method with truncated arguments -> 501 FRAME_ERROR (class 50 method 10)", r,
                 501, 50, 10, text="FRAME_ERROR - cannot decode <<0>>")

    r = RawConn(URL).handshake()
    r.send(struct.pack(">BHI", FRAME_METHOD, 0, 20) + b"x" * 5)
    r.sock.shutdown(socket.SHUT_WR)
    expect_silent_close("truncated frame then EOF: socket closed, no frame sent", r)

    # RabbitMQ 3.10 does not answer an unknown class/method with a close frame: it just
    # drops the connection.
    for ch, cm in ((0, (10, 99)), (1, (60, 99)), (0, (99, 99))):
        r = RawConn(URL).handshake()
        r.open_channel(1)
        r.send(method_frame(ch, cm))
        expect_silent_close(f"unknown method {cm} on channel {ch}: socket closed, no frame", r)


def oversized_frames():
    r = RawConn(URL).handshake()
    r.send(struct.pack(">BHI", FRAME_METHOD, 0, 200000) + b"x" * 100)
    expect_fatal("frame size 200000 > frame_max 131072 -> 501 FRAME_ERROR", r, 501, 0, 0,
                 text="FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,200000,131064}")

    r = RawConn(URL).handshake()
    r.open_channel(1)
    r.send(struct.pack(">BHI", FRAME_BODY, 1, 131073) + b"x" * 100)
    expect_fatal("frame payload 131073 (frame_max + 1) -> 501 FRAME_ERROR", r, 501, 0, 0,
                 text="FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,131073,131064}")

    # RabbitMQ 3.10 quirk: it refuses payload > frame_max (not > frame_max - 8 as the spec
    # implies), although the error text names frame_max - 8 as the limit.
    for size in (131064, 131072):
        r = RawConn(URL).handshake()
        r.open_channel(1)
        r.publish(1, "amq.direct", "nowhere", b"b" * size)
        m = r.channel_close(1)
        C.eq(f"a body frame with payload {size} (<= frame_max) is accepted",
             m and m[1], CHANNEL_CLOSE_OK)
        r.close()

    # the negotiated (smaller) frame_max is what counts
    r = RawConn(URL).handshake(frame_max=4096)
    r.open_channel(1)
    r.publish(1, "amq.direct", "nowhere", b"b" * 4096)
    m = r.channel_close(1)
    C.eq("negotiated frame_max 4096: a 4096-byte body frame is accepted", m and m[1], CHANNEL_CLOSE_OK)
    r.open_channel(1)
    r.publish(1, "amq.direct", "nowhere", b"b" * 4097)
    expect_fatal("negotiated frame_max 4096: a 4097-byte frame -> 501 FRAME_ERROR", r, 501, 0, 0,
                 text="FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}")


def channel_errors():
    r = RawConn(URL).handshake()
    r.open_channel(1)
    r.send(frame(FRAME_HEARTBEAT, 1, b""))
    expect_fatal("heartbeat frame on channel 1 -> 505 UNEXPECTED_FRAME", r, 505, 0, 0,
                 text="UNEXPECTED_FRAME - type 8, all octets = <<>>")

    r = RawConn(URL).handshake()
    r.send(method_frame(5, QUEUE_DECLARE, struct.pack(">H", 0) + shortstr("q") + b"\x01" + table({})))
    expect_fatal("method on an unopened channel -> 504 CHANNEL_ERROR (class 50 method 10)", r,
                 504, 50, 10, text="CHANNEL_ERROR - expected 'channel.open'")

    r = RawConn(URL).handshake()
    r.open_channel(1)
    r.send(method_frame(1, CHANNEL_OPEN, shortstr("")))
    expect_fatal("second channel.open on an open channel -> 504 (class 20 method 10)", r,
                 504, 20, 10, text="CHANNEL_ERROR - second 'channel.open' seen")

    r = RawConn(URL).handshake()
    r.send(method_frame(0, CHANNEL_OPEN, shortstr("")))
    expect_fatal("channel.open on channel 0 -> 504 (class 20 method 10)", r, 504, 20, 10,
                 text="CHANNEL_ERROR - unexpected method in connection state running")

    r = RawConn(URL).handshake()
    r.open_channel(1)
    r.send(frame(FRAME_BODY, 1, b"abc"))
    expect_fatal("content body without a publish -> 505 UNEXPECTED_FRAME", r, 505, 0, 0,
                 text="UNEXPECTED_FRAME - expected method frame, got non method frame instead")

    r = RawConn(URL).handshake()
    r.open_channel(1)
    publish = method_frame(1, rawamqp.BASIC_PUBLISH,
                           struct.pack(">H", 0) + shortstr("") + shortstr("x") + b"\x00")
    r.send(publish + publish)
    expect_fatal("a method where a content header is due -> 505 (class 60 method 40)", r,
                 505, 60, 40, text="UNEXPECTED_FRAME - expected content header for class 60, "
                                   "got non content header frame instead")

    # channel 0 heartbeats are fine; the connection stays usable
    r = RawConn(URL).handshake()
    r.open_channel(1)
    r.send(frame(FRAME_HEARTBEAT, 0, b""))
    m = r.channel_close(1)
    C.eq("heartbeat frame on channel 0 is accepted", m and m[1], CHANNEL_CLOSE_OK)
    r.close()


def heartbeats():
    import time
    r = RawConn(URL).handshake(heartbeat=1)
    t0 = time.monotonic()
    beats = []
    closed_at = None
    other = []
    while time.monotonic() - t0 < 8:
        f = r.read_frame(timeout=8)
        if f is None:
            closed_at = time.monotonic() - t0
            break
        if f[0] == FRAME_HEARTBEAT:
            beats.append(f[1])
        else:
            other.append(f)
    C.check("heartbeat 1 s: server sends heartbeat frames on channel 0",
            len(beats) >= 2 and set(beats) == {0}, str(beats))
    C.check("heartbeat 1 s: a silent client is disconnected (about 3 s)",
            closed_at is not None and 1.5 <= closed_at <= 6, f"closed_at={closed_at}")
    C.eq("  ...by closing the socket without a connection.close", other, [])
    r.close()
    healthy("heartbeat timeout")


def amqplain_login():
    # AMQPLAIN: the response is a field table of LOGIN and PASSWORD without its length
    # prefix (what RabbitMQ and old clients send); a wrong password is refused like PLAIN's.
    for password, ok in ((None, True), ("not-the-password", False)):
        r = RawConn(URL)
        r.send(rawamqp.PROTOCOL_HEADER)
        m = r.read_method()
        C.check("AMQPLAIN is offered", m and b"AMQPLAIN" in m[2], repr(m and m[2][-40:]))
        creds = table({"LOGIN": r.user, "PASSWORD": password or r.password})[4:]
        r.send(method_frame(0, rawamqp.CONNECTION_START_OK, table({"product": "amqplain-test"})
                            + shortstr("AMQPLAIN") + longstr(creds) + shortstr("en_US")))
        m = r.read_method()
        if ok:
            C.eq("AMQPLAIN login with the right password -> connection.tune", m and m[1],
                 rawamqp.CONNECTION_TUNE)
        else:
            C.check("AMQPLAIN login with a wrong password -> no tune (refused)",
                    not m or m[1] != rawamqp.CONNECTION_TUNE, repr(m))
        r.close()


def update_secret():
    # RabbitMQ 3.10 (internal users) answers update-secret-ok whatever the new secret is,
    # and the connection goes on as the user it authenticated.
    r = RawConn(URL).handshake()
    for secret in (b"not-the-password", r.password.encode()):
        r.send(method_frame(0, (10, 70), longstr(secret) + shortstr("rotation")))
        m = r.read_method()
        C.eq(f"update-secret ({'wrong' if secret != r.password.encode() else 'same'} secret) "
             "-> update-secret-ok", m and m[1], (10, 71))
    r.open_channel(1)
    m = r.channel_close(1)
    C.eq("  ...and the connection still works", m and m[1], CHANNEL_CLOSE_OK)
    r.close()


for scenario in (handshake_facts, wrong_protocol_headers, garbage_and_malformed, oversized_frames,
                 channel_errors, amqplain_login, update_secret, heartbeats):
    C.scenario(scenario)
C.finish()
