"""A tiny raw-socket AMQP 0-9-1 frame writer/reader for tests that a client library
forbids (publishing with immediate=true, reusing a consumer tag, malformed frames).

Only what the scenarios need: the handshake (PLAIN), a few methods, and decoding
of connection.close / channel.close. Every read is bounded by a socket timeout.
"""
import socket
import struct
import time
import urllib.parse

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE

CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
BASIC_CONSUME = (60, 20)
BASIC_CONSUME_OK = (60, 21)
BASIC_PUBLISH = (60, 40)

TIMEOUT = 5.0


def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">B", len(b)) + b


def longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


def table(d):
    out = b""
    for k, v in (d or {}).items():
        out += shortstr(k)
        if isinstance(v, bool):
            out += b"t" + struct.pack(">B", int(v))
        elif isinstance(v, int):
            out += b"l" + struct.pack(">q", v)
        elif isinstance(v, dict):
            out += b"F" + table(v)
        else:
            out += b"S" + longstr(v)
    return struct.pack(">I", len(out)) + out


def frame(ftype, channel, payload):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([FRAME_END])


def method_frame(channel, cm, args=b""):
    return frame(FRAME_METHOD, channel, struct.pack(">HH", *cm) + args)


def parse_url(url):
    u = urllib.parse.urlparse(url)
    vhost = urllib.parse.unquote(u.path[1:]) if u.path and u.path != "/" else "/"
    return (u.hostname or "127.0.0.1", u.port or 5672,
            urllib.parse.unquote(u.username or "guest"),
            urllib.parse.unquote(u.password or "guest"), vhost)


class Close:
    """A decoded connection.close or channel.close."""

    def __init__(self, kind, channel, payload):
        self.kind = kind  # "connection" or "channel"
        self.channel = channel
        code, = struct.unpack_from(">H", payload, 4)
        n = payload[6]
        self.text = payload[7:7 + n].decode()
        self.class_id, self.method_id = struct.unpack_from(">HH", payload, 7 + n)
        self.code = code

    def __repr__(self):
        return (f"{self.kind}.close(channel={self.channel}, {self.code}, {self.text!r}, "
                f"class={self.class_id}, method={self.method_id})")


class Refused(Exception):
    """The server closed the connection during the handshake (close is None: socket only)."""

    def __init__(self, stage, close):
        super().__init__(f"{stage}: {close!r}" if close else f"{stage}: socket closed")
        self.stage = stage
        self.close = close


class RawConn:
    def __init__(self, url, timeout=TIMEOUT):
        self.host, self.port, self.user, self.password, self.vhost = parse_url(url)
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.frame_max = 131072
        self.tune = None

    # ---- low level
    def send(self, data):
        self.sock.sendall(data)

    def recv_bytes(self, deadline):
        """Return raw bytes as they arrive; b'' at EOF; None at the deadline."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            return None
        except (ConnectionResetError, BrokenPipeError):
            return b""

    def read_exact_or_eof(self, n, deadline):
        while len(self.buf) < n:
            chunk = self.recv_bytes(deadline)
            if chunk is None:
                raise TimeoutError(f"no data within the deadline (have {self.buf!r})")
            if chunk == b"":
                return None
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self, timeout=TIMEOUT):
        """(type, channel, payload) or None at EOF. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        head = self.read_exact_or_eof(7, deadline)
        if head is None:
            return None
        ftype, channel, size = struct.unpack(">BHI", head)
        rest = self.read_exact_or_eof(size + 1, deadline)
        if rest is None:
            return None
        if rest[-1] != FRAME_END:
            raise ValueError(f"bad frame end {rest[-1]:#x}")
        return ftype, channel, rest[:-1]

    def read_method(self, timeout=TIMEOUT):
        """Next method frame as (channel, (class, method), payload), skipping heartbeats."""
        while True:
            f = self.read_frame(timeout)
            if f is None:
                return None
            ftype, ch, payload = f
            if ftype == FRAME_METHOD:
                return ch, struct.unpack_from(">HH", payload), payload
            # heartbeats / content frames of deliveries are skipped

    def eof_within(self, timeout=TIMEOUT):
        """True if the server closes the socket within `timeout` (extra bytes discarded)."""
        deadline = time.monotonic() + timeout
        while True:
            chunk = self.recv_bytes(deadline)
            if chunk == b"":
                return True
            if chunk is None:
                return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- handshake
    def handshake(self, capabilities=True, frame_max=None, heartbeat=0):
        self.send(PROTOCOL_HEADER)
        m = self.read_method()
        assert m and m[1] == CONNECTION_START, f"expected connection.start, got {m}"
        self.start = m[2]
        props = {"product": "rmq-rawamqp-test"}
        if capabilities:
            props["capabilities"] = {"authentication_failure_close": True,
                                     "consumer_cancel_notify": True}
        response = b"\x00" + self.user.encode() + b"\x00" + self.password.encode()
        self.send(method_frame(0, CONNECTION_START_OK, table(props) + shortstr("PLAIN") +
                               longstr(response) + shortstr("en_US")))
        m = self.read_method()
        self.raise_if_closed("start-ok", m)
        if m[1] != CONNECTION_TUNE:
            raise AssertionError(f"expected connection.tune, got {self.describe(m)}")
        frame_max_, heartbeat_ = frame_max, heartbeat
        channel_max, frame_max, heartbeat = struct.unpack_from(">HIH", m[2], 4)
        self.tune = (channel_max, frame_max, heartbeat)
        self.frame_max = frame_max if frame_max_ is None else frame_max_
        self.send(method_frame(0, CONNECTION_TUNE_OK,
                               struct.pack(">HIH", channel_max, self.frame_max, heartbeat_)))
        self.send(method_frame(0, CONNECTION_OPEN, shortstr(self.vhost) + shortstr("") + b"\x00"))
        m = self.read_method()
        self.raise_if_closed("open", m)
        if m[1] != CONNECTION_OPEN_OK:
            raise AssertionError(f"expected connection.open-ok, got {self.describe(m)}")
        return self

    def raise_if_closed(self, stage, m):
        if m is None:
            raise Refused(stage, None)
        if m[1] == CONNECTION_CLOSE:
            c = Close("connection", m[0], m[2])
            try:
                self.send(method_frame(0, CONNECTION_CLOSE_OK))
            except OSError:
                pass
            raise Refused(stage, c)

    def describe(self, m):
        if m is None:
            return "EOF"
        ch, cm, payload = m
        if cm == CONNECTION_CLOSE:
            return repr(Close("connection", ch, payload))
        if cm == CHANNEL_CLOSE:
            return repr(Close("channel", ch, payload))
        return f"method {cm} on channel {ch}"

    def open_channel(self, n=1):
        self.send(method_frame(n, CHANNEL_OPEN, shortstr("")))
        m = self.read_method()
        if m is None or m[1] != CHANNEL_OPEN_OK:
            raise AssertionError(f"expected channel.open-ok, got {self.describe(m)}")

    # ---- methods
    def publish(self, ch, exchange, routing_key, body, mandatory=False, immediate=False):
        """basic.publish + header + the body in ONE body frame (whatever its size)."""
        bits = (1 if mandatory else 0) | (2 if immediate else 0)
        self.send(method_frame(ch, BASIC_PUBLISH, struct.pack(">H", 0) + shortstr(exchange) +
                               shortstr(routing_key) + bytes([bits])))
        self.send(frame(FRAME_HEADER, ch, struct.pack(">HHQH", 60, 0, len(body), 0)))
        if body:
            self.send(frame(FRAME_BODY, ch, body))

    def queue_declare(self, ch, queue="", exclusive=False, auto_delete=False):
        bits = (4 if exclusive else 0) | (8 if auto_delete else 0)
        self.send(method_frame(ch, QUEUE_DECLARE, struct.pack(">H", 0) + shortstr(queue) +
                               bytes([bits]) + table({})))
        m = self.read_method()
        if m is None or m[1] != QUEUE_DECLARE_OK:
            raise AssertionError(f"expected queue.declare-ok, got {self.describe(m)}")
        n = m[2][4]
        return m[2][5:5 + n].decode()

    def consume(self, ch, queue, tag, no_ack=False, wait_ok=True):
        bits = 2 if no_ack else 0
        self.send(method_frame(ch, BASIC_CONSUME, struct.pack(">H", 0) + shortstr(queue) +
                               shortstr(tag) + bytes([bits]) + table({})))
        if wait_ok:
            m = self.read_method()
            if m is None or m[1] != BASIC_CONSUME_OK:
                raise AssertionError(f"expected basic.consume-ok, got {self.describe(m)}")
            n = m[2][4]
            return m[2][5:5 + n].decode()

    def channel_close(self, ch):
        """Send channel.close and return the reply method (close-ok expected)."""
        self.send(method_frame(ch, CHANNEL_CLOSE, struct.pack(">H", 200) + shortstr("bye") +
                               struct.pack(">HH", 0, 0)))
        return self.read_method()

    def expect_close(self, timeout=TIMEOUT):
        """Read until a connection.close or channel.close; answer it; return Close or None (EOF)."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.read_method(max(0.01, deadline - time.monotonic()))
            if m is None:
                return None
            ch, cm, payload = m
            if cm == CONNECTION_CLOSE:
                c = Close("connection", ch, payload)
                try:
                    self.send(method_frame(0, CONNECTION_CLOSE_OK))
                except OSError:
                    pass
                return c
            if cm == CHANNEL_CLOSE:
                c = Close("channel", ch, payload)
                self.send(method_frame(ch, CHANNEL_CLOSE_OK))
                return c


# ---- decoding (enough for connection.start's server properties)
def _decode_value(b, i):
    t = chr(b[i])
    i += 1
    if t == "t":
        return bool(b[i]), i + 1
    if t in "bB":
        return b[i], i + 1
    if t in "sU":
        return struct.unpack_from(">h", b, i)[0], i + 2
    if t == "u":
        return struct.unpack_from(">H", b, i)[0], i + 2
    if t == "I":
        return struct.unpack_from(">i", b, i)[0], i + 4
    if t == "i":
        return struct.unpack_from(">I", b, i)[0], i + 4
    if t in "lL":
        return struct.unpack_from(">q" if t == "l" else ">Q", b, i)[0], i + 8
    if t == "f":
        return struct.unpack_from(">f", b, i)[0], i + 4
    if t == "d":
        return struct.unpack_from(">d", b, i)[0], i + 8
    if t == "D":
        return (b[i], struct.unpack_from(">I", b, i + 1)[0]), i + 5
    if t in "Sx":
        n, = struct.unpack_from(">I", b, i)
        v = b[i + 4:i + 4 + n]
        return (v.decode() if t == "S" else v), i + 4 + n
    if t == "T":
        return struct.unpack_from(">Q", b, i)[0], i + 8
    if t == "F":
        return decode_table(b, i)
    if t == "A":
        n, = struct.unpack_from(">I", b, i)
        end, i, out = i + 4 + n, i + 4, []
        while i < end:
            v, i = _decode_value(b, i)
            out.append(v)
        return out, i
    if t == "V":
        return None, i
    raise ValueError(f"unknown field type {t!r}")


def decode_table(b, i):
    """(dict, next offset) for the field table at b[i:]."""
    n, = struct.unpack_from(">I", b, i)
    end, i, out = i + 4 + n, i + 4, {}
    while i < end:
        k = b[i + 1:i + 1 + b[i]].decode()
        i += 1 + b[i]
        out[k], i = _decode_value(b, i)
    return out, i


def decode_start(payload):
    """connection.start payload -> (major, minor, server_properties, mechanisms, locales)."""
    major, minor = payload[4], payload[5]
    props, i = decode_table(payload, 6)
    n, = struct.unpack_from(">I", payload, i)
    mechanisms = payload[i + 4:i + 4 + n].decode()
    i += 4 + n
    n, = struct.unpack_from(">I", payload, i)
    locales = payload[i + 4:i + 4 + n].decode()
    return major, minor, props, mechanisms, locales
