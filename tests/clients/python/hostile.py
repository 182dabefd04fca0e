#!/usr/bin/env python3
"""Hostile and edge-case input: deeply nested field tables, reply texts past 255 bytes,
pipelined handshakes and sessions, crossing channel.close, unbinds of missing things,
channel numbers above channel_max, invalid UTF-8 header keys, quorum queue limits.

Every expectation is what RabbitMQ 3.10.8 does (codes, texts, class/method ids), except
for deep nesting (item 1), where our broker may refuse nesting past its documented bound
(128 levels) by closing that one connection: there either outcome passes, never a hang,
and a fresh connection must work afterwards. Every read is bounded; names are unique per
run; what is declared is deleted (exclusive queues go with their connection).

usage: hostile.py AMQP_URL     exit 0 only if every check held.
"""
import struct
import time

import pika

from rawamqp import (BASIC_PUBLISH, CHANNEL_CLOSE, CHANNEL_CLOSE_OK, CHANNEL_OPEN, CHANNEL_OPEN_OK,
                     CONNECTION_CLOSE, CONNECTION_CLOSE_OK, CONNECTION_OPEN, CONNECTION_OPEN_OK,
                     CONNECTION_START, CONNECTION_START_OK, CONNECTION_TUNE, CONNECTION_TUNE_OK,
                     FRAME_BODY, FRAME_HEADER, FRAME_METHOD, PROTOCOL_HEADER, QUEUE_DECLARE,
                     QUEUE_DECLARE_OK, Close, RawConn, decode_table, frame, longstr, method_frame,
                     shortstr, table)
from common import (Checks, WAIT, close_quietly, connect, fresh_connection_works, get_one, pump, suffix,
                    url_from_argv)

URL = url_from_argv()
# Nesting both brokers deliver intact (rmq serve refuses past 32 levels).
DEEP_OK = 30
C = Checks("hostile.py")
S = suffix()

QUEUE_PURGE = (50, 30)
QUEUE_DELETE = (50, 40)
EXCHANGE_DECLARE = (40, 10)
BASIC_GET = (60, 70)
BASIC_GET_OK = (60, 71)
FLAG_HEADERS = 0x2000  # basic properties: headers present


# ---------------------------------------------------------------- helpers

def healthy(after):
    fresh_connection_works(URL, C, after)


def raw_table(payload):
    """A field table from already encoded (key, type, value) bytes."""
    return struct.pack(">I", len(payload)) + payload


def nested_table(depth, key=b"n", leaf=b""):
    """A table holding a table holding ... `depth` tables below the outer one; built
    iteratively (no recursion), the innermost one holds `leaf` (encoded fields)."""
    inner = raw_table(leaf)
    for _ in range(depth):
        inner = raw_table(shortstr(key) + b"F" + inner)
    return inner


def nested_array(depth):
    """An array holding an array ... `depth` arrays deep (5 bytes a level)."""
    inner = struct.pack(">I", 0)
    for _ in range(depth - 1):
        inner = struct.pack(">I", 1 + len(inner)) + b"A" + inner
    return inner


def table_depth(t):
    """How many tables are nested below `t` along its single-key chain."""
    depth = 0
    while isinstance(t, dict) and len(t) == 1 and isinstance(next(iter(t.values())), dict):
        t = next(iter(t.values()))
        depth += 1
    return depth


def close_frame(ch, code=200, text="bye"):
    cm = CONNECTION_CLOSE if ch == 0 else CHANNEL_CLOSE
    return method_frame(ch, cm, struct.pack(">H", code) + shortstr(text) + struct.pack(">HH", 0, 0))


def start_ok_frame(user, password, props=None):
    props = table({"product": "rmq-hostile-test"}) if props is None else props
    return method_frame(0, CONNECTION_START_OK, props + shortstr("PLAIN") +
                        longstr(b"\x00" + user.encode() + b"\x00" + password.encode()) +
                        shortstr("en_US"))


def login_to_tune(r):
    """Protocol header, start, start-ok: returns the tune (channel_max, frame_max, heartbeat)."""
    r.send(PROTOCOL_HEADER)
    m = r.read_method()
    assert m and m[1] == CONNECTION_START, f"expected connection.start, got {r.describe(m)}"
    r.send(start_ok_frame(r.user, r.password))
    m = r.read_method()
    assert m and m[1] == CONNECTION_TUNE, f"expected connection.tune, got {r.describe(m)}"
    return struct.unpack_from(">HIH", m[2], 4)


def tune_ok_open(r, channel_max=2047, frame_max=131072):
    return (method_frame(0, CONNECTION_TUNE_OK, struct.pack(">HIH", channel_max, frame_max, 0)) +
            method_frame(0, CONNECTION_OPEN, shortstr(r.vhost) + shortstr("") + b"\x00"))


def queue_declare_frame(ch, name, passive=False, durable=False, exclusive=False,
                        auto_delete=False, args=None):
    bits = (1 if passive else 0) | (2 if durable else 0) | (4 if exclusive else 0) | \
        (8 if auto_delete else 0)
    args = table(args) if isinstance(args, dict) or args is None else args
    return method_frame(ch, QUEUE_DECLARE, struct.pack(">H", 0) + shortstr(name) + bytes([bits]) +
                        args)


def publish_frames(ch, exchange, routing_key, body, headers=None):
    """basic.publish + content header (with a raw encoded headers table) + one body frame."""
    props = struct.pack(">H", FLAG_HEADERS if headers is not None else 0) + (headers or b"")
    out = method_frame(ch, BASIC_PUBLISH, struct.pack(">H", 0) + shortstr(exchange) +
                       shortstr(routing_key) + b"\x00")
    out += frame(FRAME_HEADER, ch, struct.pack(">HHQ", 60, 0, len(body)) + props)
    if body:
        out += frame(FRAME_BODY, ch, body)
    return out


def get_frame(ch, queue, no_ack=True):
    return method_frame(ch, BASIC_GET, struct.pack(">H", 0) + shortstr(queue) +
                        bytes([1 if no_ack else 0]))


def read_reply(r, timeout=WAIT):
    """The next method, as (kind, value): ("method", (ch, cm, payload)), ("close", Close)
    (a connection.close, already answered with close-ok), ("eof", None) or ("timeout", None).
    A basic.get-ok comes back as ("get-ok", (ch, properties_bytes, body)) with its content."""
    deadline = time.monotonic() + timeout
    try:
        m = r.read_method(max(0.01, deadline - time.monotonic()))
        if m is None:
            return "eof", None
        ch, cm, payload = m
        if cm == CONNECTION_CLOSE:
            c = Close("connection", ch, payload)
            try:
                r.send(method_frame(0, CONNECTION_CLOSE_OK))
            except OSError:
                pass
            return "close", c
        if cm != BASIC_GET_OK:
            return "method", m
        f = r.read_frame(max(0.01, deadline - time.monotonic()))
        if f is None:
            return "eof", None
        assert f[0] == FRAME_HEADER, f"expected a content header, got frame type {f[0]}"
        size, = struct.unpack_from(">Q", f[2], 4)
        props = f[2][12:]
        body = b""
        while len(body) < size:
            f = r.read_frame(max(0.01, deadline - time.monotonic()))
            if f is None:
                return "eof", None
            body += f[2]
        return "get-ok", (ch, props, body)
    except TimeoutError:
        return "timeout", None


def check_channel_close(what, r, ch, code, cm, prefix):
    """A channel.close on `ch` with `code`, the failing method's ids, a text starting with
    `prefix` and at most 255 bytes long (RabbitMQ cuts longer texts to 252 bytes + "...")."""
    try:
        c = r.expect_close()
    except TimeoutError as e:
        C.check(what, False, f"no close within the wait: {e}")
        return None
    C.eq(what, c and (c.kind, c.channel, c.code, c.class_id, c.method_id),
         ("channel", ch, code) + cm)
    if c is not None:
        print(f"       (text: {c.text[:70]!r}... {len(c.text.encode())} bytes)", flush=True)
        C.check(f"  ...reply text starts {prefix[:60]!r}...", c.text.startswith(prefix), c.text)
        C.check("  ...reply text is at most 255 bytes", len(c.text.encode()) <= 255,
                f"{len(c.text.encode())} bytes")
    return c


def check_connection_close(what, r, code, cm, prefix=None, normalized=None, eof_wait=WAIT):
    """A connection.close (code, class, method) whose text starts with `prefix` (or equals
    `normalized` once all whitespace but single spaces between words is ignored) and is
    <= 255 bytes; after our close-ok the socket closes."""
    try:
        c = r.expect_close()
    except TimeoutError as e:
        C.check(what, False, f"no close within the wait: {e}")
        r.close()
        return None
    C.eq(what, c and (c.kind, c.channel, c.code, c.class_id, c.method_id),
         ("connection", 0, code) + cm)
    if c is not None:
        print(f"       (text: {c.text[:70]!r}... {len(c.text.encode())} bytes)", flush=True)
        if prefix is not None:
            C.check(f"  ...reply text starts {prefix[:60]!r}...", c.text.startswith(prefix), c.text)
        if normalized is not None:
            C.eq("  ...reply text (line breaks and indentation ignored)",
                 "".join(c.text.split()), "".join(normalized.split()))
        C.check("  ...reply text is at most 255 bytes", len(c.text.encode()) <= 255,
                f"{len(c.text.encode())} bytes")
        C.check(f"  ...then the socket is closed ({what})", r.eof_within(eof_wait))
    r.close()
    return c


def still_works(what, r, ch):
    """Open channel `ch` on the same raw connection and declare a queue there."""
    try:
        r.open_channel(ch)
        name = r.queue_declare(ch, "", exclusive=True)
        ok = name.startswith("amq.gen-")
        detail = name
    except (AssertionError, OSError, TimeoutError) as e:
        ok, detail = False, str(e)
    C.check(f"  ...the connection keeps working ({what}): new channel {ch} declares a queue",
            ok, detail)


# ---------------------------------------------------------------- item 1: deep nesting

def nested_or_refused(what, outcome, want, close_code=None):
    """Item 1: RabbitMQ answers (`want`); our broker may close just this connection
    (connection.close 501 FRAME_ERROR after login, or a close/socket close before it).
    A hang (no reply within the wait) fails."""
    kind, value = outcome
    if kind == "close":
        print(f"       (refused: {value!r})", flush=True)
        C.check(f"{what}: answered or refused (connection.close)",
                close_code is None or value.code == close_code, f"want code {close_code}")
        return
    if kind == "eof":
        print("       (refused: socket closed)", flush=True)
        C.check(f"{what}: answered or refused (socket closed)", True)
        return
    got = None
    if kind == "method":
        got = value[1]
    elif kind == "get-ok":
        got = BASIC_GET_OK
    C.check(f"{what}: answered ({want}) or refused, never a hang", got == want, f"{kind} {got}")


def deep_nesting():
    # (a) before login, client-properties nested 3,000 tables deep. This is 21 KB: more
    # than the frame_max of 4096 in force before tune, so RabbitMQ refuses the FRAME
    # ({frame_too_large,21036,4088}) by closing the socket ~3 s later without a frame.
    r = RawConn(URL)
    r.send(PROTOCOL_HEADER)
    m = r.read_method()
    assert m and m[1] == CONNECTION_START, r.describe(m)
    props = nested_table(3000)
    r.send(start_ok_frame(r.user, r.password, props))
    nested_or_refused("start-ok with client-properties nested 3,000 deep", read_reply(r, 10.0),
                      CONNECTION_TUNE)
    r.close()
    healthy("client-properties nested 3,000 deep")

    # (a') the same within the pre-tune frame_max: an array nested 780 deep inside the
    # client properties (3.9 KB). RabbitMQ answers connection.tune.
    r = RawConn(URL)
    r.send(PROTOCOL_HEADER)
    r.read_method()
    props = raw_table(shortstr("deep") + b"A" + nested_array(780))
    r.send(start_ok_frame(r.user, r.password, props))
    nested_or_refused("start-ok with client-properties holding an array nested 780 deep",
                      read_reply(r, 10.0), CONNECTION_TUNE)
    r.close()
    healthy("client-properties array nested 780 deep")

    # (b) after login, a content header whose headers table nests 5,000 deep (35 KB):
    # RabbitMQ accepts it and delivers it unchanged through basic.get.
    r = RawConn(URL).handshake()
    r.open_channel(1)
    q = r.queue_declare(1, "", exclusive=True)
    headers = nested_table(5000)
    r.send(publish_frames(1, "", q, b"deep", headers) + get_frame(1, q))
    outcome = read_reply(r, 10.0)
    nested_or_refused("basic.publish with headers nested 5,000 deep, then basic.get", outcome,
                      BASIC_GET_OK, close_code=501)
    if outcome[0] == "get-ok":
        _, props, body = outcome[1]
        C.check("  ...delivered with the 5,000-deep headers intact",
                props == struct.pack(">H", FLAG_HEADERS) + headers and body == b"deep",
                f"{len(props)} property bytes, body {body!r}")
    r.close()
    healthy("headers nested 5,000 deep")

    # (c) queue.declare whose arguments hold an array nested 20,000 deep (100 KB):
    # RabbitMQ answers declare-ok.
    r = RawConn(URL).handshake()
    r.open_channel(1)
    args = raw_table(shortstr("x-deep") + b"A" + nested_array(20000))
    r.send(queue_declare_frame(1, "", exclusive=True, args=args))
    nested_or_refused("queue.declare with an argument array nested 20,000 deep",
                      read_reply(r, 10.0), QUEUE_DECLARE_OK, close_code=501)
    r.close()
    healthy("arguments nested 20,000 deep")

    # Within rmq serve's bound (32 levels, the headers table included) both brokers must
    # deliver the headers intact: 30 tables nested below the headers table, a string at
    # the bottom.
    r = RawConn(URL).handshake()
    r.open_channel(1)
    q = r.queue_declare(1, "", exclusive=True)
    headers = nested_table(DEEP_OK, leaf=shortstr("leaf") + b"S" + longstr("bottom"))
    r.send(publish_frames(1, "", q, b"deep-ok", headers) + get_frame(1, q))
    kind, value = read_reply(r)
    C.eq(f"headers nested {DEEP_OK} deep: basic.get answers get-ok", kind, "get-ok")
    if kind == "get-ok":
        _, props, body = value
        C.eq("  ...the body", body, b"deep-ok")
        C.eq("  ...the header bytes are unchanged", props, struct.pack(">H", FLAG_HEADERS) + headers)
        decoded, _ = decode_table(props, 2)
        C.eq("  ...the decoded nesting depth", table_depth(decoded), DEEP_OK)
        inner = decoded
        for _ in range(DEEP_OK):
            inner = inner["n"]
        C.eq("  ...the innermost table", inner, {"leaf": "bottom"})
    m = r.channel_close(1)
    C.eq("  ...and the channel closes normally", m and m[1], CHANNEL_CLOSE_OK)
    r.close()


# ---------------------------------------------------------------- item 2: long reply texts

def long_reply_texts():
    # RabbitMQ cuts every reply text to 255 bytes: the first 252 bytes then "...".
    r = RawConn(URL).handshake()
    r.open_channel(1)
    missing = "q" * 220
    r.send(queue_declare_frame(1, missing, passive=True))
    check_channel_close("passive queue.declare of a missing 220-char queue -> channel.close 404 "
                        "(class 50 method 10)", r, 1, 404, (50, 10),
                        "NOT_FOUND - no queue '" + "q" * 200)
    still_works("after the 404 on declare", r, 2)

    r.open_channel(3)
    r.send(method_frame(3, QUEUE_PURGE, struct.pack(">H", 0) + shortstr(missing) + b"\x00"))
    check_channel_close("queue.purge of a missing 220-char queue -> channel.close 404 "
                        "(class 50 method 30)", r, 3, 404, QUEUE_PURGE,
                        "NOT_FOUND - no queue '" + "q" * 200)
    still_works("after the 404 on purge", r, 4)

    # 405: another connection's exclusive queue with a 200-char name.
    owner = RawConn(URL).handshake()
    owner.open_channel(1)
    locked = "x" * 190 + S
    owner.queue_declare(1, locked, exclusive=True)
    r.open_channel(5)
    r.send(queue_declare_frame(5, locked, passive=True))
    check_channel_close("passive declare of another connection's exclusive 200-char queue -> "
                        "405 (class 50 method 10)", r, 5, 405, (50, 10),
                        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" +
                        "x" * 150)
    still_works("after the 405", r, 6)
    owner.close()

    # 406: inequivalent redeclare (durable) of a 200-char queue.
    plain = "y" * 190 + S
    r.open_channel(7)
    r.send(queue_declare_frame(7, plain))
    m = r.read_method()
    C.eq("declare a 200-char queue", m and m[1], QUEUE_DECLARE_OK)
    try:
        r.send(queue_declare_frame(7, plain, durable=True))
        check_channel_close("redeclare it durable -> 406 (class 50 method 10)", r, 7, 406, (50, 10),
                            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '" +
                            "y" * 150)
        still_works("after the 406", r, 8)
    finally:
        r.open_channel(9)
        r.send(method_frame(9, QUEUE_DELETE, struct.pack(">H", 0) + shortstr(plain) + b"\x00"))
        m = r.read_method()
        C.eq("  ...delete the 200-char queue", m and m[1], (50, 41))

    # exchange.declare with a 250-char type: RabbitMQ closes the CONNECTION with
    # 503 COMMAND_INVALID "unknown exchange type 'ttt...", class 40 method 10.
    r.open_channel(10)
    r.send(method_frame(10, EXCHANGE_DECLARE, struct.pack(">H", 0) + shortstr("hostile-x-" + S) +
                        shortstr("t" * 250) + b"\x00" + table({})))
    check_connection_close("exchange.declare with a 250-char type -> connection.close 503 "
                           "(class 40 method 10)", r, 503, (40, 10),
                           prefix="COMMAND_INVALID - unknown exchange type '" + "t" * 150)
    healthy("the 250-char exchange type")

    # A method whose arguments cannot be decoded: the FRAME_ERROR text quotes the
    # arguments (<<0,0,255,97,...>>), cut to 255 bytes; class 50 method 10. RabbitMQ
    # stops reading and closes the socket ~3 s later.
    r = RawConn(URL).handshake()
    r.open_channel(1)
    r.send(method_frame(1, QUEUE_DECLARE, b"\x00\x00\xff" + b"a" * 300))
    check_connection_close("undecodable queue.declare with 303 argument bytes -> connection.close "
                           "501 (class 50 method 10)", r, 501, (50, 10),
                           prefix="FRAME_ERROR - cannot decode <<0,0,255,97,97,97,97,",
                           eof_wait=10.0)
    healthy("the undecodable method")

    # A bad frame-end octet after a 304-byte payload: RabbitMQ quotes only the first 16
    # octets (its text has a line break + indentation in the middle, ignored here).
    r = RawConn(URL).handshake()
    r.send(frame(FRAME_METHOD, 0, b"\x00\x0a\x00\x32" + b"z" * 300)[:-1] + b"\x00")
    check_connection_close(
        "304-byte frame with a bad frame-end -> connection.close 501 (class 0 method 0)",
        r, 501, (0, 0),
        normalized="FRAME_ERROR - type 1, first 16 octets = <<0,10,0,50," + "122," * 11 +
                   "122>>: {invalid_frame_end_marker,0}",
        eof_wait=10.0)
    healthy("the bad frame-end")


# ---------------------------------------------------------------- item 3: pipelining

def pipelining():
    r = RawConn(URL)
    login_to_tune(r)
    r.send(tune_ok_open(r) + method_frame(1, CHANNEL_OPEN, shortstr("")))
    got = [read_reply(r) for _ in range(2)]
    C.eq("tune-ok + connection.open + channel.open in one write -> open-ok, channel.open-ok",
         [(k, v[0], v[1]) if k == "method" else (k,) for k, v in got],
         [("method", 0, CONNECTION_OPEN_OK), ("method", 1, CHANNEL_OPEN_OK)])
    m = r.channel_close(1)
    C.eq("  ...and the channel works", m and m[1], CHANNEL_CLOSE_OK)
    r.close()

    # A whole session in one write. RabbitMQ answers everything in order but sends NO
    # channel.close-ok when the connection.close is already queued behind the
    # channel.close (it shuts the channels down with the connection): that one reply
    # is optional here.
    r = RawConn(URL)
    login_to_tune(r)
    q = "hostile-pipe-" + S
    r.send(tune_ok_open(r) + method_frame(1, CHANNEL_OPEN, shortstr("")) +
           queue_declare_frame(1, q, exclusive=True) +
           publish_frames(1, "", q, b"pipelined") +
           get_frame(1, "") +  # "" = the channel's last declared queue
           close_frame(1) + close_frame(0))
    got = []
    while True:
        kind, value = read_reply(r)
        if kind == "method":
            got.append((value[0], value[1]))
            if value[1] == CONNECTION_CLOSE_OK:
                break
        elif kind == "get-ok":
            got.append((value[0], BASIC_GET_OK, value[2]))
        else:
            got.append((kind, value))
            break
    want = [(0, CONNECTION_OPEN_OK), (1, CHANNEL_OPEN_OK), (1, QUEUE_DECLARE_OK),
            (1, BASIC_GET_OK, b"pipelined"), (1, CHANNEL_CLOSE_OK), (0, CONNECTION_CLOSE_OK)]
    C.check("a whole session in one write -> open-ok, channel.open-ok, declare-ok, get-ok "
            "(with the body), [channel.close-ok], connection.close-ok, in order",
            got in (want, want[:4] + want[5:]), f"got {got!r}")
    r.close()

    # The same without the connection.close: every reply, channel.close-ok included.
    r = RawConn(URL)
    login_to_tune(r)
    q = "hostile-pipe2-" + S
    r.send(tune_ok_open(r) + method_frame(1, CHANNEL_OPEN, shortstr("")) +
           queue_declare_frame(1, q, exclusive=True) +
           publish_frames(1, "", q, b"pipelined") + get_frame(1, q) + close_frame(1))
    got = []
    for _ in range(5):
        kind, value = read_reply(r)
        if kind == "method":
            got.append((value[0], value[1]))
        elif kind == "get-ok":
            got.append((value[0], BASIC_GET_OK, value[2]))
        else:
            got.append((kind, value))
            break
    C.eq("a session up to channel.close in one write -> open-ok, channel.open-ok, declare-ok, "
         "get-ok, channel.close-ok, in order", got, want[:5])
    r.send(close_frame(0))
    kind, value = read_reply(r)
    C.eq("  ...then connection.close -> close-ok", (kind, value and value[1]),
         ("method", CONNECTION_CLOSE_OK))
    r.close()


# ---------------------------------------------------------------- item 4: crossing close

def crossing_channel_close():
    # The passive declare fails (404) while our channel.close is already on the way (same
    # write). RabbitMQ sends its channel.close, then answers ours with channel.close-ok;
    # our close-ok for its close arrives late and is ignored: the connection stays open.
    r = RawConn(URL).handshake()
    r.open_channel(1)
    missing = "hostile-missing-" + S
    r.send(queue_declare_frame(1, missing, passive=True) + close_frame(1))
    got = []
    deadline = time.monotonic() + WAIT
    while len(got) < 2:
        kind, value = read_reply(r, max(0.01, deadline - time.monotonic()))
        if kind != "method":
            got.append((kind, value))
            break
        ch, cm, payload = value
        if cm == CHANNEL_CLOSE:
            c = Close("channel", ch, payload)
            got.append((ch, cm, c.code, c.text, c.class_id, c.method_id))
            r.send(method_frame(ch, CHANNEL_CLOSE_OK))  # the late close-ok
        else:
            got.append((ch, cm))
    C.eq("passive declare of a missing queue + channel.close in one write -> channel.close 404, "
         "then channel.close-ok",
         got, [(1, CHANNEL_CLOSE, 404, f"NOT_FOUND - no queue '{missing}' in vhost '/'", 50, 10),
               (1, CHANNEL_CLOSE_OK)])
    still_works("after the late channel.close-ok", r, 2)
    try:
        r.open_channel(1)
        m = r.channel_close(1)
        ok, detail = m and m[1] == CHANNEL_CLOSE_OK, r.describe(m)
    except (AssertionError, OSError, TimeoutError) as e:
        ok, detail = False, str(e)
    C.check("  ...and channel 1 can be reopened (and closed)", ok, detail)
    r.send(close_frame(0))
    kind, value = read_reply(r)
    C.eq("  ...connection.close -> close-ok", (kind, value and value[1]),
         ("method", CONNECTION_CLOSE_OK))
    r.close()


# ---------------------------------------------------------------- item 5: unbind missing

def unbind_missing():
    conn = connect(URL)
    ch = conn.channel()
    x = "hostile-ux-" + S
    try:
        ch.exchange_declare(x, "fanout", auto_delete=True)
        q = ch.queue_declare("", exclusive=True).method.queue
        cases = [
            ("queue.unbind of a missing queue from amq.direct",
             lambda: ch.queue_unbind("hostile-nq-" + S, "amq.direct", "k")),
            ("queue.unbind of a missing queue from a missing exchange",
             lambda: ch.queue_unbind("hostile-nq-" + S, "hostile-nx-" + S, "k")),
            ("queue.unbind of an existing queue from a missing exchange",
             lambda: ch.queue_unbind(q, "hostile-nx-" + S, "k")),
            ("queue.unbind of a binding that does not exist (queue and exchange exist)",
             lambda: ch.queue_unbind(q, "amq.direct", "no-such-key")),
            ("exchange.unbind with a missing destination",
             lambda: ch.exchange_unbind("hostile-nx-" + S, x, "k")),
            ("exchange.unbind with a missing source",
             lambda: ch.exchange_unbind(x, "hostile-nx-" + S, "k")),
            ("exchange.unbind with both missing",
             lambda: ch.exchange_unbind("hostile-nx1-" + S, "hostile-nx-" + S, "k")),
            ("exchange.unbind of a binding that does not exist",
             lambda: ch.exchange_unbind(x, "amq.direct", "k")),
        ]
        for what, fn in cases:
            try:
                name = type(fn().method).__name__
            except Exception as e:  # noqa: BLE001
                name = f"{type(e).__name__}: {e}"
                if not ch.is_open:
                    ch = conn.channel()
            want = "UnbindOk"
            C.eq(f"{what} -> unbind-ok", name, want)
        # for contrast: binding a missing queue is an error, and unbinding from the
        # default exchange is refused
        for what, fn, want in (
                ("queue.bind of a missing queue -> 404",
                 lambda: ch.queue_bind("hostile-nq-" + S, "amq.direct", "k"),
                 (404, f"NOT_FOUND - no queue 'hostile-nq-{S}' in vhost '/'")),
                ("queue.unbind from the default exchange -> 403",
                 lambda: ch.queue_unbind(q, "", q),
                 (403, "ACCESS_REFUSED - operation not permitted on the default exchange"))):
            try:
                fn()
                got = "ok"
            except pika.exceptions.ChannelClosedByBroker as e:
                got = (e.reply_code, e.reply_text)
                ch = conn.channel()
            C.eq(what, got, want)
        q2 = ch.queue_declare("", exclusive=True).method.queue
        C.check("  ...and the connection still works", q2.startswith("amq.gen-"), q2)
        ch.exchange_delete(x)
    finally:
        close_quietly(conn)


# ---------------------------------------------------------------- item 6: channel numbers

def channel_numbers():
    # Negotiate channel_max 10 in tune-ok; channel 65535 is fine (RabbitMQ counts open
    # channels, it does not limit their numbers).
    r = RawConn(URL)
    tune = login_to_tune(r)
    C.eq("connection.tune offers channel_max 2047", tune[0], 2047)
    r.send(tune_ok_open(r, channel_max=10))
    kind, value = read_reply(r)
    C.eq("tune-ok with channel_max 10 -> open-ok", (kind, value and value[1]),
         ("method", CONNECTION_OPEN_OK))
    r.send(method_frame(65535, CHANNEL_OPEN, shortstr("")))
    kind, value = read_reply(r)
    C.eq("channel.open on channel 65535 (channel_max 10) -> open-ok",
         (kind, value and value[:2]), ("method", (65535, CHANNEL_OPEN_OK)))
    r.send(queue_declare_frame(65535, "", exclusive=True))
    kind, value = read_reply(r)
    C.eq("  ...and channel 65535 works (queue.declare -> declare-ok)", (kind, value and value[:2]),
         ("method", (65535, QUEUE_DECLARE_OK)))
    opened = 1
    for n in range(1, 10):
        r.send(method_frame(n, CHANNEL_OPEN, shortstr("")))
        kind, value = read_reply(r)
        if kind == "method" and value[1] == CHANNEL_OPEN_OK:
            opened += 1
    C.eq("channels 1..9 open too (10 open = channel_max)", opened, 10)
    r.send(method_frame(10, CHANNEL_OPEN, shortstr("")))
    check_connection_close("an 11th channel.open -> connection.close 530 (class 0 method 0)",
                           r, 530, (0, 0),
                           prefix="NOT_ALLOWED - number of channels opened (10) has reached the "
                                  "negotiated channel_max (10)")
    healthy("channel_max reached")

    # With the offered channel_max (2047) channel 65535 is fine as well.
    r = RawConn(URL).handshake()
    r.send(method_frame(65535, CHANNEL_OPEN, shortstr("")))
    kind, value = read_reply(r)
    C.eq("channel.open on channel 65535 (channel_max 2047) -> open-ok",
         (kind, value and value[:2]), ("method", (65535, CHANNEL_OPEN_OK)))
    m = r.channel_close(65535)
    C.eq("  ...and channel.close on it -> close-ok", m and m[:2], (65535, CHANNEL_CLOSE_OK))
    r.close()


# ---------------------------------------------------------------- item 7: invalid UTF-8 key

def invalid_utf8_header_key():
    # RabbitMQ accepts a header key b"k\xff" (and a longstr value b"v\xfe") and hands the
    # header table back byte for byte through basic.get.
    r = RawConn(URL).handshake()
    r.open_channel(1)
    q = r.queue_declare(1, "", exclusive=True)
    headers = raw_table(shortstr(b"k\xff") + b"S" + longstr(b"v") +
                        shortstr(b"ok") + b"S" + longstr(b"v\xfe"))
    r.send(publish_frames(1, "", q, b"utf8?", headers) + get_frame(1, q))
    kind, value = read_reply(r)
    C.eq("publish with header key b'k\\xff', then basic.get -> get-ok", kind, "get-ok")
    if kind == "get-ok":
        _, props, body = value
        C.eq("  ...the body", body, b"utf8?")
        C.eq("  ...the header table comes back byte for byte", props,
             struct.pack(">H", FLAG_HEADERS) + headers)
    m = r.channel_close(1)
    C.eq("  ...and the channel and connection stay open", m and m[1], CHANNEL_CLOSE_OK)
    r.close()


# ---------------------------------------------------------------- item 9: quorum queues

def quorum_refusals():
    r = RawConn(URL).handshake()
    qq = {"x-queue-type": "quorum"}
    cases = [
        ("x-max-priority", dict(durable=True, args={**qq, "x-max-priority": 5}),
         "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/' "
         "of queue type rabbit_quorum_queue"),
        ("non-durable", dict(durable=False, args=qq),
         "PRECONDITION_FAILED - invalid property 'non-durable' for queue '{q}' in vhost '/'"),
        ("exclusive", dict(durable=True, exclusive=True, args=qq),
         "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue '{q}' in vhost '/'"),
        ("auto-delete", dict(durable=True, auto_delete=True, args=qq),
         "PRECONDITION_FAILED - invalid property 'auto-delete' for queue '{q}' in vhost '/'"),
        ("non-durable with x-max-priority", dict(durable=False, args={**qq, "x-max-priority": 5}),
         "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/' "
         "of queue type rabbit_quorum_queue"),
        ("server-named", dict(durable=True, args=qq, name=""),
         "PRECONDITION_FAILED - Cannot declare a server-named queue for type "
         "rabbit_quorum_queue"),
    ]
    try:
        for n, (what, kw, text) in enumerate(cases, start=1):
            q = kw.pop("name", f"hostile-qq{n}-{S}")
            r.open_channel(n)
            r.send(queue_declare_frame(n, q, **kw))
            c = check_channel_close(f"quorum queue declare, {what} -> channel.close 406 "
                                    "(class 50 method 10)", r, n, 406, (50, 10),
                                    "PRECONDITION_FAILED")
            C.eq("  ...its text", c and c.text, text.format(q=q))
        still_works("after the quorum refusals", r, len(cases) + 1)
    finally:
        r.close()
        # nothing should exist; delete anyway in case a declare was wrongly accepted
        cleanup = connect(URL)
        cch = cleanup.channel()
        for n in range(1, len(cases) + 1):
            cch.queue_delete(f"hostile-qq{n}-{S}")
        cleanup.close()


def delivery_count(props):
    return (props.headers or {}).get("x-delivery-count", "absent")


def quorum_delivery_limit():
    conn = connect(URL)
    ch = conn.channel()
    ch.confirm_delivery()
    limited = "hostile-qq-limit-" + S
    dead_from = "hostile-qq-dlx-" + S
    dead = "hostile-dead-" + S
    try:
        # x-delivery-limit 2: delivered 3 times (x-delivery-count 0, 1, 2 with basic.get),
        # then the third requeue drops it.
        ch.queue_declare(limited, durable=True,
                         arguments={"x-queue-type": "quorum", "x-delivery-limit": 2})
        ch.basic_publish("", limited, b"limited", pika.BasicProperties(headers={"h": "v"}))
        seen = []
        for i in range(3):
            got = get_one(ch, limited)
            if got is None:
                seen.append("none")
                break
            m, p, _ = got
            seen.append((m.redelivered, delivery_count(p), (p.headers or {}).get("h")))
            if i % 2:
                ch.basic_nack(m.delivery_tag, requeue=True)
            else:
                ch.basic_reject(m.delivery_tag, requeue=True)
        # RabbitMQ's basic.get puts x-delivery-count 0 on the FIRST delivery already.
        C.eq("x-delivery-limit 2, basic.get + reject/nack requeue: (redelivered, "
             "x-delivery-count, h) of the 3 deliveries", seen,
             [(False, 0, "v"), (True, 1, "v"), (True, 2, "v")])
        # The queue's commands are ordered: once a later publish is fetched, the third
        # requeue has been handled.
        ch.basic_publish("", limited, b"marker")
        got = get_one(ch, limited, auto_ack=True)
        C.eq("  ...after the third requeue the message is dropped: the next get is a later "
             "message", got and got[2], b"marker")
        C.eq("  ...and then the queue is empty", ch.basic_get(limited, auto_ack=True)[0], None)

        # With basic.consume the first delivery has no x-delivery-count, redeliveries do.
        ch.basic_publish("", limited, b"consumed")
        deliveries = []
        tag = ch.basic_consume(limited, lambda c_, m, p, b: deliveries.append((m, p, b)))
        pump(conn, lambda: len(deliveries) >= 1)
        if deliveries:
            ch.basic_nack(deliveries[0][0].delivery_tag, requeue=True)
        pump(conn, lambda: len(deliveries) >= 2)
        ch.basic_cancel(tag)
        for m, _, _ in deliveries[1:2]:
            ch.basic_ack(m.delivery_tag)
        C.eq("  ...basic.consume: (redelivered, x-delivery-count) of first delivery and "
             "redelivery", [(m.redelivered, delivery_count(p)) for m, p, _ in deliveries],
             [(False, "absent"), (True, 1)])

        # With a dead-letter exchange (the default one, routing key = another queue) the
        # message past the limit is dead-lettered with reason delivery_limit.
        ch.queue_declare(dead, exclusive=True)
        ch.queue_declare(dead_from, durable=True,
                         arguments={"x-queue-type": "quorum", "x-delivery-limit": 2,
                                    "x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": dead})
        ch.basic_publish("", dead_from, b"doomed", pika.BasicProperties(headers={"h": "v"}))
        counts = []
        for _ in range(3):
            got = get_one(ch, dead_from)
            if got is None:
                break
            counts.append(delivery_count(got[1]))
            ch.basic_reject(got[0].delivery_tag, requeue=True)
        C.eq("dead-letter queue with x-delivery-limit 2: 3 deliveries", counts, [0, 1, 2])
        got = get_one(ch, dead, auto_ack=True)
        C.check("  ...the message past the limit is dead-lettered to the other queue",
                got is not None and got[2] == b"doomed", repr(got))
        if got is not None:
            h = dict(got[1].headers or {})
            deaths = h.pop("x-death", None)
            C.eq("  ...its x-first-death-* headers, h kept, no x-delivery-count", h,
                 {"h": "v", "x-first-death-exchange": "", "x-first-death-queue": dead_from,
                  "x-first-death-reason": "delivery_limit"})
            C.check("  ...x-death is one entry", isinstance(deaths, list) and len(deaths) == 1,
                    repr(deaths))
            if isinstance(deaths, list) and deaths:
                d = dict(deaths[0])
                C.check("  ...x-death time is a timestamp", hasattr(d.pop("time", None), "year"),
                        repr(deaths[0]))
                C.eq("  ...x-death entry", d,
                     {"count": 1, "reason": "delivery_limit", "queue": dead_from, "exchange": "",
                      "routing-keys": [dead_from]})
        C.eq("  ...and the quorum queue is empty", ch.basic_get(dead_from, auto_ack=True)[0], None)
    finally:
        close_quietly(conn)
        cleanup = connect(URL)
        cch = cleanup.channel()
        for q in (limited, dead_from):
            cch.queue_delete(q)
        cleanup.close()


for scenario in (deep_nesting, long_reply_texts, pipelining, crossing_channel_close, unbind_missing,
                 channel_numbers, invalid_utf8_header_key, quorum_refusals, quorum_delivery_limit):
    C.scenario(scenario)
C.finish()
