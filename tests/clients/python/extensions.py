#!/usr/bin/env python3
"""RabbitMQ's extensions to AMQP 0-9-1, pinned to RabbitMQ 3.10.8's exact behaviour.

usage: extensions.py AMQP_URL      (exit 0 only if every check held)

Covers (one function per feature, a failure in one does not hide the others):
message/queue TTL, per-message expiration, queue x-expires, length limits and
x-overflow, dead-lettering and the x-death header (keys, AMQP field types, order,
count merging, cycle detection), priority queues, alternate exchanges,
exchange-to-exchange bindings, transactions, consumer priorities, single active
consumer, validated user_id, invalid queue arguments.

Every expectation was observed on a real RabbitMQ 3.10.8 (Erlang 25). Comments marked
"RabbitMQ:" note behaviour that is surprising or easy to get wrong.

AMQP field-table value *types* are asserted too: pika's table decoder is wrapped
(see `typed decoding` below) so every decoded header value remembers its wire type
tag ('l' long-long, 'S' long string, 'T' timestamp, 'A' array, 'F' table, ...).

Waits are bounded: TTLs are 50-300 ms, polls use basic.get / process_data_events with
a deadline, the longest single pause is under one second.
"""
import signal
import sys
import time
import traceback
import uuid
from datetime import datetime, timezone

import pika
import pika.data
from pika.exceptions import ChannelClosedByBroker, NackError, UnroutableError

WAIT = 5.0  # bound on any single wait


# --------------------------------------------------------------------- typed decoding
class _TInt(int):
    pass


class _TStr(str):
    pass


class _TBytes(bytes):
    pass


class _TList(list):
    pass


class _TDict(dict):
    pass


class _TDatetime(datetime):
    pass


_orig_decode_value = pika.data.decode_value


def _typed_decode_value(encoded, offset):
    """pika.data.decode_value, but the result remembers its AMQP type tag.

    The original recurses through the module global `decode_value` (arrays) and
    `decode_table` (tables), so nested values are tagged as well.  The subclasses
    behave exactly like the plain Python values, so pika itself is unaffected.
    """
    kind = bytes(encoded[offset:offset + 1]).decode("latin-1")
    value, offset = _orig_decode_value(encoded, offset)
    if isinstance(value, bool) or value is None:
        return value, offset  # bool cannot be subclassed; 't' / 'V' are implied
    if isinstance(value, int):
        value = _TInt(value)
    elif isinstance(value, str):
        value = _TStr(value)
    elif isinstance(value, bytes):
        value = _TBytes(value)
    elif isinstance(value, list):
        value = _TList(value)
    elif isinstance(value, dict):
        value = _TDict(value)
    elif isinstance(value, datetime):
        value = _TDatetime(value.year, value.month, value.day, value.hour, value.minute,
                           value.second, value.microsecond, tzinfo=value.tzinfo)
    else:
        return value, offset
    value.amqp_type = kind
    return value, offset


pika.data.decode_value = _typed_decode_value


def amqp_type(v):
    if isinstance(v, bool):
        return "t"
    if v is None:
        return "V"
    return getattr(v, "amqp_type", "?")


# --------------------------------------------------------------------- harness
FEATURE_LIMIT = 30  # seconds: the most one feature function may take (normally < 3)


class WatchdogTimeout(Exception):
    pass


def _watchdog(signum, frame):
    raise WatchdogTimeout(f"no progress for {FEATURE_LIMIT} s (broker not answering?)")


class Checks:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = []

    def check(self, what, cond, detail=""):
        if cond:
            self.passed += 1
            print(f"ok   - {what}", flush=True)
        else:
            self.failed.append(what)
            print(f"FAIL - {what}" + (f": {detail}" if detail else ""), flush=True)
        return cond

    def eq(self, what, got, want):
        return self.check(what, got == want, f"got {got!r}, want {want!r}")

    def run(self, fn):
        # watchdog: a broker that never answers a blocking call must not hang the run
        signal.signal(signal.SIGALRM, _watchdog)
        signal.alarm(FEATURE_LIMIT)
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - one feature's crash must not hide the others
            self.failed.append(f"{fn.__name__} raised")
            print(f"FAIL - {fn.__name__} raised {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stderr)
        finally:
            try:
                signal.alarm(10)
                cleanup()
            except Exception:  # noqa: BLE001
                pass
            finally:
                signal.alarm(0)

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {len(self.failed)} failed", flush=True)
        if self.failed:
            print("failed checks:", file=sys.stderr)
            for f in self.failed:
                print(f"  {f}", file=sys.stderr)
        sys.exit(1 if self.failed or self.passed == 0 else 0)


if len(sys.argv) < 2:
    print("usage: extensions.py AMQP_URL", file=sys.stderr)
    sys.exit(2)
URL = sys.argv[1]
C = Checks("extensions.py")
RUN = uuid.uuid4().hex[:8]
_declared = []      # (kind, name) to delete after each feature
_connections = []   # connections opened by the current feature


def name(prefix):
    n = f"ext-{prefix}-{RUN}-{uuid.uuid4().hex[:4]}"
    return n


def connect():
    p = pika.URLParameters(URL)
    p.connection_attempts = 1
    p.socket_timeout = WAIT
    p.stack_timeout = 2 * WAIT
    p.blocked_connection_timeout = 2 * WAIT
    c = pika.BlockingConnection(p)
    _connections.append(c)
    return c


def channel(conn=None, confirm=True):
    ch = (conn or connect()).channel()
    if confirm:
        ch.confirm_delivery()
    return ch


def cleanup():
    for c in _connections:
        try:
            if c.is_open:
                c.close()
        except Exception:  # noqa: BLE001
            pass
    _connections.clear()
    if not _declared:
        return
    try:
        p = pika.URLParameters(URL)
        p.connection_attempts = 1
        conn = pika.BlockingConnection(p)
        ch = conn.channel()
        for kind, n in reversed(_declared):
            try:
                if not ch.is_open:
                    ch = conn.channel()
                if kind == "queue":
                    ch.queue_delete(n)
                else:
                    ch.exchange_delete(n)
            except Exception:  # noqa: BLE001
                pass
        conn.close()
    except Exception:  # noqa: BLE001
        pass
    _declared.clear()


def queue(ch, prefix, args=None, **kw):
    n = name(prefix)
    ch.queue_declare(queue=n, arguments=args, **kw)
    _declared.append(("queue", n))
    return n


def exchange(ch, prefix, typ="direct", args=None):
    n = name(prefix)
    ch.exchange_declare(exchange=n, exchange_type=typ, arguments=args)
    _declared.append(("exchange", n))
    return n


def props(**kw):
    return pika.BasicProperties(**kw)


def get_one(ch, q, timeout=WAIT, auto_ack=True):
    """basic.get polled with a deadline: (method, props, body) or None."""
    deadline = time.monotonic() + timeout
    while True:
        m, p, b = ch.basic_get(q, auto_ack=auto_ack)
        if m is not None:
            return m, p, b
        if time.monotonic() >= deadline:
            return None
        ch.connection.process_data_events(time_limit=0.015)


def drain(ch, q, auto_ack=True):
    out = []
    while True:
        m, p, b = ch.basic_get(q, auto_ack=auto_ack)
        if m is None:
            return out
        out.append((m, p, b))


def bodies(msgs):
    return [b for _, _, b in msgs]


def settle(conn, seconds):
    """Let `seconds` of broker time pass while still servicing the connection."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=min(0.02, max(0.0, deadline - time.monotonic())))


def count(ch, q):
    return ch.queue_declare(queue=q, passive=True).method.message_count


def pump_until(conn, cond, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            return False
        conn.process_data_events(time_limit=0.02)
    return True


def channel_error(fn):
    """Run fn(); return (reply_code, reply_text) of the channel close it causes, or None."""
    try:
        fn()
    except ChannelClosedByBroker as e:
        return e.reply_code, e.reply_text
    return None


def queue_exists(conn, q):
    ch = conn.channel()
    try:
        ch.queue_declare(queue=q, passive=True)
        ch.close()
        return True
    except ChannelClosedByBroker as e:
        if e.reply_code == 404:
            return False
        raise


def check_xdeath_entry(what, entry, reason, queue_name, exchange_name, rks, count_=1,
                       original_expiration=None):
    """One x-death table: exact keys, values and AMQP types."""
    want_keys = {"count", "reason", "queue", "time", "exchange", "routing-keys"}
    if original_expiration is not None:
        want_keys.add("original-expiration")
    C.eq(f"{what}: x-death entry keys", set(entry.keys()), want_keys)
    C.eq(f"{what}: x-death entry values (count, reason, queue, exchange, routing-keys)",
         (entry.get("count"), entry.get("reason"), entry.get("queue"), entry.get("exchange"),
          entry.get("routing-keys")),
         (count_, reason, queue_name, exchange_name, rks))
    C.eq(f"{what}: x-death field types (count=l long-long, reason/queue/exchange=S, "
         f"time=T timestamp, routing-keys=A array of S)",
         (amqp_type(entry.get("count")), amqp_type(entry.get("reason")),
          amqp_type(entry.get("queue")), amqp_type(entry.get("exchange")),
          amqp_type(entry.get("time")), amqp_type(entry.get("routing-keys")),
          [amqp_type(k) for k in entry.get("routing-keys") or []]),
         ("l", "S", "S", "S", "T", "A", ["S"] * len(rks)))
    t = entry.get("time")
    now = datetime.now(timezone.utc)
    C.check(f"{what}: x-death time is a whole-second timestamp close to now",
            isinstance(t, datetime) and abs((now - t).total_seconds()) < 120
            and t.microsecond == 0, repr(t))
    if original_expiration is not None:
        C.eq(f"{what}: x-death original-expiration (type S)",
             (entry.get("original-expiration"), amqp_type(entry.get("original-expiration"))),
             (original_expiration, "S"))


def check_first_death(what, headers, reason, queue_name, exchange_name):
    C.eq(f"{what}: x-first-death-reason/queue/exchange (all type S)",
         [(headers.get(k), amqp_type(headers.get(k))) for k in
          ("x-first-death-reason", "x-first-death-queue", "x-first-death-exchange")],
         [(reason, "S"), (queue_name, "S"), (exchange_name, "S")])


# ===================================================================== 1. x-message-ttl
def queue_ttl():
    conn = connect()
    ch = channel(conn)

    q = queue(ch, "ttl", {"x-message-ttl": 100})
    ch.basic_publish("", q, b"short-lived")
    C.eq("x-message-ttl 100: the message is counted right after publish", count(ch, q), 1)
    settle(conn, 0.35)
    C.eq("x-message-ttl 100: after 350 ms basic.get is empty", ch.basic_get(q)[0], None)
    C.eq("x-message-ttl 100: ...and the queue's message count is 0", count(ch, q), 0)

    q = queue(ch, "ttl-long", {"x-message-ttl": 3000})
    ch.basic_publish("", q, b"alive")
    got = get_one(ch, q, timeout=0.5)
    C.check("x-message-ttl 3000: the message is delivered before its TTL",
            got is not None and got[2] == b"alive")
    # RabbitMQ: the queue TTL is not turned into an expiration property on delivery.
    C.eq("x-message-ttl: delivered message has no expiration property",
         got and got[1].expiration, None)

    # dead-lettered with reason expired, through a named exchange
    src_x = exchange(ch, "ttl-src", "direct")
    dlx = exchange(ch, "ttl-dlx", "fanout")
    q = queue(ch, "ttl-dl", {"x-message-ttl": 100, "x-dead-letter-exchange": dlx})
    dlq = queue(ch, "ttl-dlq")
    ch.queue_bind(q, src_x, routing_key="rk-a")
    ch.queue_bind(dlq, dlx)
    ch.basic_publish(src_x, "rk-a", b"expire-me",
                     props(content_type="text/plain", correlation_id="c1", delivery_mode=2,
                           headers={"custom": "kept"}))
    got = get_one(ch, dlq, timeout=3)
    C.check("x-message-ttl + x-dead-letter-exchange: the expired message is dead-lettered",
            got is not None and got[2] == b"expire-me")
    if got:
        m, p, _ = got
        C.eq("dead-lettered (expired): delivered with exchange = the DLX and the original "
             "routing key, redelivered=false", (m.exchange, m.routing_key, m.redelivered),
             (dlx, "rk-a", False))
        C.eq("dead-lettered (expired): properties kept (content_type, correlation_id, "
             "delivery_mode, custom header)",
             (p.content_type, p.correlation_id, p.delivery_mode, (p.headers or {}).get("custom")),
             ("text/plain", "c1", 2, "kept"))
        h = p.headers or {}
        xd = h.get("x-death")
        C.check("dead-lettered (expired): x-death is an array (A) of one table (F)",
                amqp_type(xd) == "A" and len(xd) == 1 and amqp_type(xd[0]) == "F", repr(xd))
        if xd:
            # queue TTL (not per-message): no original-expiration key
            check_xdeath_entry("expired via x-message-ttl", xd[0], "expired", q, src_x, ["rk-a"])
        check_first_death("expired via x-message-ttl", h, "expired", q, src_x)
        # RabbitMQ: key order of the message headers after dead-lettering (informative,
        # tables are sorted by key when RabbitMQ rewrites them).
        C.eq("dead-lettered (expired): header keys in wire order",
             list(h.keys()), ["custom", "x-death", "x-first-death-exchange",
                              "x-first-death-queue", "x-first-death-reason"])
        if xd:
            # RabbitMQ writes a new entry as count, reason, queue, time, exchange,
            # routing-keys. AMQP field tables are unordered maps and rmq re-encodes the
            # tables it rewrites sorted by key, so only the key set is asserted.
            C.eq("dead-lettered (expired): x-death entry keys (RabbitMQ's wire order: "
                 "count, reason, queue, time, exchange, routing-keys)",
                 sorted(xd[0].keys()),
                 sorted(["count", "reason", "queue", "time", "exchange", "routing-keys"]))
    C.eq("x-message-ttl: the source queue is empty after dead-lettering", count(ch, q), 0)

    # a message whose TTL elapsed while it was unacked expires when it is requeued
    dlq_r = queue(ch, "ttl-requeue-dlq")
    q = queue(ch, "ttl-requeue", {"x-message-ttl": 100, "x-dead-letter-exchange": "",
                                  "x-dead-letter-routing-key": dlq_r})
    ch.basic_publish("", q, b"held")
    m, _, _ = get_one(ch, q, auto_ack=False, timeout=1)
    settle(conn, 0.3)
    C.eq("x-message-ttl: an unacked message is not expired while held", count(ch, dlq_r), 0)
    ch.basic_reject(m.delivery_tag, requeue=True)
    got = get_one(ch, dlq_r, timeout=2)
    C.check("x-message-ttl: ...but once requeued after its TTL it is dead-lettered (expired), "
            "never redelivered", got is not None and got[2] == b"held"
            and got[1].headers["x-death"][0]["reason"] == "expired" and count(ch, q) == 0)

    # TTL 0 without a consumer: expired at once
    dlq0 = queue(ch, "ttl0-dlq")
    q0 = queue(ch, "ttl0", {"x-message-ttl": 0, "x-dead-letter-exchange": "",
                            "x-dead-letter-routing-key": dlq0})
    ch.basic_publish("", q0, b"zero")
    C.eq("x-message-ttl 0 and no consumer: basic.get right after the publish is empty",
         ch.basic_get(q0)[0], None)
    got = get_one(ch, dlq0, timeout=2)
    C.check("x-message-ttl 0: the message is dead-lettered with reason expired",
            got is not None and (got[1].headers or {}).get("x-death", [{}])[0].get("reason")
            == "expired")

    # TTL 0 with a waiting consumer: delivered (RabbitMQ hands it straight to the consumer)
    q0c = queue(ch, "ttl0-consumer", {"x-message-ttl": 0})
    cch = conn.channel()
    seen = []
    cch.basic_consume(q0c, lambda c, m, p, b: seen.append(b), auto_ack=True)
    ch.basic_publish("", q0c, b"to-consumer")
    pump_until(conn, lambda: seen, timeout=2)
    C.eq("x-message-ttl 0 with a ready consumer: the message is delivered", seen,
         [b"to-consumer"])


# ===================================================================== 2. expiration
def message_expiration():
    conn = connect()
    ch = channel(conn)

    q = queue(ch, "exp")
    ch.basic_publish("", q, b"m", props(expiration="100"))
    settle(conn, 0.35)
    C.eq("expiration '100': after 350 ms basic.get is empty", ch.basic_get(q)[0], None)

    q = queue(ch, "exp-long")
    ch.basic_publish("", q, b"m", props(expiration="5000"))
    got = get_one(ch, q, timeout=0.5)
    # RabbitMQ: the expiration property is delivered unchanged (not the remaining time)
    C.eq("expiration '5000': delivered before expiry with expiration property unchanged",
         got and (got[2], got[1].expiration), (b"m", "5000"))

    dlx = exchange(ch, "exp-dlx", "fanout")
    dlq = queue(ch, "exp-dlq")
    ch.queue_bind(dlq, dlx)
    q = queue(ch, "exp-dl", {"x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"dl", props(expiration="100", headers={"h": 1}))
    got = get_one(ch, dlq, timeout=3)
    C.check("expiration + DLX: the expired message is dead-lettered", got is not None)
    if got:
        m, p, _ = got
        C.eq("expiration + DLX: the dead-lettered copy has NO expiration property",
             p.expiration, None)
        C.eq("expiration + DLX: routed with the original routing key (the queue name, "
             "published via the default exchange)", (m.exchange, m.routing_key), (dlx, q))
        xd = (p.headers or {}).get("x-death") or [{}]
        check_xdeath_entry("expired via expiration property", xd[0], "expired", q, "", [q],
                           original_expiration="100")
        # RabbitMQ puts original-expiration last; tables are unordered (see above).
        C.eq("expired via expiration: x-death entry keys (with original-expiration)",
             sorted(xd[0].keys()),
             sorted(["count", "reason", "queue", "time", "exchange", "routing-keys",
                     "original-expiration"]))
        check_first_death("expired via expiration property", p.headers or {}, "expired", q, "")

    # the lower of queue TTL and message expiration applies
    q = queue(ch, "exp-min", {"x-message-ttl": 100})
    ch.basic_publish("", q, b"m", props(expiration="60000"))
    settle(conn, 0.35)
    C.eq("x-message-ttl 100 + expiration 60000: the lower (queue TTL) wins",
         ch.basic_get(q)[0], None)

    # RabbitMQ: per-message TTL is only enforced at the head of the queue.  A message
    # that expired behind a live one is not dead-lettered until it reaches the head, and
    # is still counted; it is dropped (never delivered) when it gets there.
    dlq2 = queue(ch, "hol-dlq")
    q = queue(ch, "hol", {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq2})
    ch.basic_publish("", q, b"long", props(expiration="10000"))
    ch.basic_publish("", q, b"short", props(expiration="50"))
    settle(conn, 0.3)
    C.eq("expired message behind a live head: still counted (per-message TTL acts at head)",
         count(ch, q), 2)
    C.eq("...and not dead-lettered yet", count(ch, dlq2), 0)
    got = ch.basic_get(q, auto_ack=True)
    C.eq("...the live head is delivered", got[2], b"long")
    C.eq("...then the expired one is never delivered", ch.basic_get(q, auto_ack=True)[0], None)
    got = get_one(ch, dlq2, timeout=2)
    C.check("...and it is dead-lettered (expired) once it reached the head",
            got is not None and got[2] == b"short"
            and got[1].headers["x-death"][0]["reason"] == "expired")

    # expiration values RabbitMQ refuses
    # RabbitMQ: the property is parsed like Erlang's string:to_integer (leading sign ok,
    # no spaces, no trailing characters); the reason term is printed Erlang-style.
    for bad, reason in (("abc", "no_integer"), ("", "no_integer"), (" 10", "no_integer"),
                        ("-1", "{value_negative,-1}"), ("1.5", '{leftover_string,".5"}'),
                        ("10abc", '{leftover_string,"abc"}'),
                        ("315360000001", "{value_too_large,315360000001}")):
        ech = channel(conn)
        err = channel_error(lambda: ech.basic_publish("", q, b"x", props(expiration=bad)))
        C.eq(f"expiration {bad!r}: channel closed 406", err,
             (406, f"PRECONDITION_FAILED - invalid expiration '{bad}': {reason}"))
    # accepted: 10 years in ms is the maximum; "+5", "007" and "-0" parse as integers
    ech = channel(conn)
    for good in ("315360000000", "+5", "007", "-0"):
        ech.basic_publish("", q, b"x", props(expiration=good))
    C.check("expiration '315360000000' (max), '+5', '007', '-0': accepted", ech.is_open)

    # expiration "0" without consumer: gone at once
    q = queue(ch, "exp0")
    ch.basic_publish("", q, b"m", props(expiration="0"))
    C.eq("expiration '0' and no consumer: basic.get right after publish is empty",
         ch.basic_get(q)[0], None)


# ===================================================================== 3. x-expires
def queue_expires():
    conn = connect()
    ch = channel(conn)
    q = name("expires")  # not registered for cleanup: it must disappear by itself
    ch.queue_declare(q, arguments={"x-expires": 200})
    C.check("x-expires 200: the queue exists right after declare", queue_exists(conn, q))
    settle(conn, 0.6)
    err = channel_error(lambda: conn.channel().queue_declare(q, passive=True))
    C.eq("x-expires 200: unused queue gone after 600 ms (passive declare -> 404)",
         err, (404, f"NOT_FOUND - no queue '{q}' in vhost '/'"))

    # passive declare (queue.declare of any kind) renews the lease
    q = name("expires-renew")
    _declared.append(("queue", q))
    ch.queue_declare(q, arguments={"x-expires": 300})
    alive = True
    for _ in range(8):  # 8 x 100 ms = 800 ms > 300 ms, touched every 100 ms
        settle(conn, 0.1)
        alive = alive and queue_exists(conn, q)
    C.check("x-expires 300: passive declares every 100 ms keep it alive for 800 ms", alive)

    # basic.get renews the lease too
    q = name("expires-get")
    _declared.append(("queue", q))
    ch.queue_declare(q, arguments={"x-expires": 300})
    for _ in range(8):
        settle(conn, 0.1)
        ch.basic_get(q)
    C.check("x-expires 300: basic.get every 100 ms keeps it alive for 800 ms",
            queue_exists(conn, q))

    # a consumer keeps it alive; after the cancel it expires
    q = name("expires-consumer")
    _declared.append(("queue", q))
    ch.queue_declare(q, arguments={"x-expires": 200})
    cch = conn.channel()
    tag = cch.basic_consume(q, lambda *a: None)
    settle(conn, 0.6)
    C.check("x-expires 200: a queue with a consumer survives 600 ms", queue_exists(conn, q))
    cch.basic_cancel(tag)
    settle(conn, 0.6)
    C.check("x-expires 200: ...and is gone 600 ms after the consumer cancelled",
            not queue_exists(conn, q))

    # messages do not keep it alive
    q = name("expires-msgs")
    _declared.append(("queue", q))
    ch.queue_declare(q, arguments={"x-expires": 200})
    ch.basic_publish("", q, b"m")
    settle(conn, 0.6)
    C.check("x-expires 200: a queue holding messages but unused is deleted anyway",
            not queue_exists(conn, q))


# ===================================================================== 4. length limits
def length_limits():
    conn = connect()
    ch = channel(conn)
    dlq = queue(ch, "maxlen-dlq")
    q = queue(ch, "maxlen", {"x-max-length": 2, "x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": dlq})
    for b in (b"m1", b"m2", b"m3"):
        ch.basic_publish("", q, b)  # confirmed: drop-head never nacks
    C.check("x-max-length 2 (drop-head): the 3rd publish is acked (no NackError)", True)
    C.eq("x-max-length 2: queue keeps the newest two", bodies(drain(ch, q)), [b"m2", b"m3"])
    got = get_one(ch, dlq, timeout=2)
    C.check("x-max-length: the dropped head is dead-lettered", got is not None
            and got[2] == b"m1")
    if got:
        xd = got[1].headers["x-death"]
        check_xdeath_entry("dropped by x-max-length", xd[0], "maxlen", q, "", [q])
        check_first_death("dropped by x-max-length", got[1].headers, "maxlen", q, "")

    q = queue(ch, "maxbytes", {"x-max-length-bytes": 10})
    for b in (b"aaaaa", b"bbbbb", b"ccccc"):
        ch.basic_publish("", q, b, props(headers={"padding": "x" * 100}))
    # RabbitMQ: only body bytes count towards x-max-length-bytes (headers ignored)
    C.eq("x-max-length-bytes 10: three 5-byte bodies -> the oldest dropped (body bytes only)",
         bodies(drain(ch, q)), [b"bbbbb", b"ccccc"])
    q = queue(ch, "maxbytes-big", {"x-max-length-bytes": 10})
    ch.basic_publish("", q, b"0123456789A")
    C.eq("x-max-length-bytes 10: an 11-byte message is dropped at once (drop-head)",
         count(ch, q), 0)
    q = queue(ch, "maxlen0", {"x-max-length": 0})
    ch.basic_publish("", q, b"x")
    C.eq("x-max-length 0: nothing is ever kept", count(ch, q), 0)

    # reject-publish: confirming publisher gets basic.nack, message not queued
    dlq = queue(ch, "rp-dlq")
    q = queue(ch, "rp", {"x-max-length": 1, "x-overflow": "reject-publish",
                         "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.basic_publish("", q, b"first")
    nacked = False
    try:
        ch.basic_publish("", q, b"second")
    except NackError:
        nacked = True
    C.check("x-overflow reject-publish: publishing into a full queue -> basic.nack "
            "(pika NackError)", nacked)
    C.check("reject-publish: the channel stays open after the nack", ch.is_open)
    C.eq("reject-publish: the queue still holds only the first message",
         bodies(drain(ch, q, auto_ack=False)), [b"first"])
    settle(conn, 0.2)
    C.eq("reject-publish: the refused message is NOT dead-lettered", count(ch, dlq), 0)
    # mandatory + full queue: a nack, not a basic.return (the message was routed)
    ch2 = channel(conn)
    q2 = queue(ch2, "rp2", {"x-max-length": 1, "x-overflow": "reject-publish"})
    ch2.basic_publish("", q2, b"a")
    exc = None
    try:
        ch2.basic_publish("", q2, b"b", mandatory=True)
    except (NackError, UnroutableError) as e:
        exc = e
    C.eq("reject-publish + mandatory: NackError without a returned message (no basic.return)",
         (type(exc).__name__, len(getattr(exc, "messages", []) or [])), ("NackError", 0))
    # a non-confirming publisher: silently dropped, channel fine
    nch = conn.channel()
    nch.basic_publish("", q2, b"c")
    settle(conn, 0.1)
    C.eq("reject-publish without confirms: the message is silently dropped", count(nch, q2), 1)
    # room again after consuming
    ch2.basic_get(q2, auto_ack=True)
    ch2.basic_publish("", q2, b"d")
    C.eq("reject-publish: once there is room publishes are acked again",
         bodies(drain(ch2, q2)), [b"d"])

    # routed to a full reject-publish queue AND another queue: nack, but the other queue
    # still gets it (RabbitMQ nacks if ANY target queue refused)
    fan = exchange(ch, "rp-fan", "fanout")
    full = queue(ch, "rp-full", {"x-max-length": 1, "x-overflow": "reject-publish"})
    other = queue(ch, "rp-other")
    ch.queue_bind(full, fan)
    ch.queue_bind(other, fan)
    ch.basic_publish("", full, b"filler")
    nacked = False
    try:
        ch.basic_publish(fan, "", b"both")
    except NackError:
        nacked = True
    C.check("reject-publish: routed to a full queue and a normal one -> basic.nack", nacked)
    C.eq("...and the normal queue still got the message, the full one did not",
         (bodies(drain(ch, other)), bodies(drain(ch, full))), ([b"both"], [b"filler"]))

    # reject-publish-dlx: nack AND dead-lettered (reason maxlen)
    dlq = queue(ch, "rpdlx-dlq")
    q = queue(ch, "rpdlx", {"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.basic_publish("", q, b"first")
    nacked = False
    try:
        ch.basic_publish("", q, b"second")
    except NackError:
        nacked = True
    C.check("x-overflow reject-publish-dlx: publishing into a full queue -> basic.nack", nacked)
    C.eq("reject-publish-dlx: the queue still holds only the first message",
         bodies(drain(ch, q, auto_ack=False)), [b"first"])
    got = get_one(ch, dlq, timeout=2)
    C.check("reject-publish-dlx: the refused message IS dead-lettered", got is not None
            and got[2] == b"second")
    if got:
        check_xdeath_entry("refused by reject-publish-dlx", got[1].headers["x-death"][0],
                           "maxlen", q, "", [q])

    # x-max-length-bytes with reject-publish
    q = queue(ch, "rp-bytes", {"x-max-length-bytes": 6, "x-overflow": "reject-publish"})
    ch.basic_publish("", q, b"12345")
    nacked = False
    try:
        ch.basic_publish("", q, b"12")
    except NackError:
        nacked = True
    C.check("x-max-length-bytes 6 + reject-publish: 5 then 2 bytes -> the 2nd is nacked", nacked)


# ===================================================================== 5. dead-lettering
def dead_lettering():
    conn = connect()
    ch = channel(conn)
    src = exchange(ch, "dl-src", "direct")
    dlx = exchange(ch, "dl-dlx", "direct")
    dlq_orig = queue(ch, "dl-q-orig")   # bound to the DLX with the ORIGINAL key
    dlq_new = queue(ch, "dl-q-new")     # bound to the DLX with the replacement key
    dlq_cc = queue(ch, "dl-q-cc")       # bound with the CC key
    dlq_bcc = queue(ch, "dl-q-bcc")     # bound with the BCC key
    ch.queue_bind(dlq_orig, dlx, routing_key="orig-key")
    ch.queue_bind(dlq_new, dlx, routing_key="new-key")
    ch.queue_bind(dlq_cc, dlx, routing_key="cc-key")
    ch.queue_bind(dlq_bcc, dlx, routing_key="bcc-key")
    qa = queue(ch, "dl-a", {"x-dead-letter-exchange": dlx})
    qb = queue(ch, "dl-b", {"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "new-key"})
    ch.queue_bind(qa, src, routing_key="orig-key")
    ch.queue_bind(qb, src, routing_key="orig-key")

    ch.basic_publish(src, "orig-key", b"r1",
                     props(headers={"zzz": 1, "CC": ["cc-key"], "BCC": ["bcc-key"], "aaa": 2}))
    m, p, _ = get_one(ch, qa, auto_ack=False)
    # RabbitMQ keeps the publisher's order; rmq re-encodes a table it rewrites sorted by
    # key (field tables are unordered maps), so the key set is what is asserted.
    C.eq("publish with CC/BCC: BCC is stripped, the other headers are delivered",
         sorted(p.headers.keys()), sorted(["zzz", "CC", "aaa"]))
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, _, _ = get_one(ch, qb, auto_ack=False)
    ch.basic_nack(m.delivery_tag, multiple=False, requeue=False)

    got = get_one(ch, dlq_orig, timeout=2)
    C.check("basic.reject requeue=false: dead-lettered with the original routing key",
            got is not None and got[0].routing_key == "orig-key" and got[0].exchange == dlx)
    if got:
        h = got[1].headers
        # RabbitMQ: routing-keys holds the routing key AND the CC header's keys.
        # The CC header itself is kept on the dead-lettered message.
        check_xdeath_entry("rejected", h["x-death"][0], "rejected", qa, src,
                           ["orig-key", "cc-key"])
        check_first_death("rejected", h, "rejected", qa, src)
        C.eq("rejected: the CC header stays on the dead-lettered message", h.get("CC"),
             ["cc-key"])
        C.eq("rejected: x-death has exactly one entry", len(h["x-death"]), 1)
        # RabbitMQ: dead-lettering rewrites the header table sorted by key (byte order, so
        # upper case first); the original publish order is not kept.
        C.eq("rejected: dead-lettered headers are sorted by key",
             list(h.keys()), ["CC", "aaa", "x-death", "x-first-death-exchange",
                              "x-first-death-queue", "x-first-death-reason", "zzz"])
    # RabbitMQ: without x-dead-letter-routing-key the dead-lettered message is routed with
    # ALL its original routing keys: the publish key, CC keys and (hidden) BCC keys.
    for what, dq in (("CC", dlq_cc), ("BCC", dlq_bcc)):
        got = get_one(ch, dq, timeout=2)
        C.check(f"reject without DLRK: also routed to the DLX with the {what} key "
                f"(delivered with routing key = the publish key)",
                got is not None and got[0].routing_key == "orig-key", repr(got and got[0]))
        C.eq(f"...exactly one copy via the {what} key", count(ch, dq), 0)
    C.eq("x-dead-letter-routing-key: nothing reaches the original-key queue from the "
         "replacing queue", count(ch, dlq_orig), 0)
    got = get_one(ch, dlq_new, timeout=2)
    C.check("basic.nack requeue=false + x-dead-letter-routing-key: routed with the new key",
            got is not None and got[0].routing_key == "new-key")
    if got:
        # RabbitMQ: with a DLRK the CC/BCC headers are not used for routing, but the
        # x-death routing-keys still records the ORIGINAL keys.
        check_xdeath_entry("nacked (DLRK)", got[1].headers["x-death"][0], "rejected", qb, src,
                           ["orig-key", "cc-key"])
        # RabbitMQ: with a DLRK the CC header is removed from the dead-lettered message
        C.eq("nacked (DLRK): the CC header is removed", list(got[1].headers.keys()),
             ["aaa", "x-death", "x-first-death-exchange", "x-first-death-queue",
              "x-first-death-reason", "zzz"])
    settle(conn, 0.1)
    C.eq("nacked (DLRK): CC/BCC keys not used for routing",
         (count(ch, dlq_cc), count(ch, dlq_bcc), count(ch, dlq_new)), (0, 0, 0))

    # nack multiple=true requeue=false dead-letters every message up to the tag
    dlq = queue(ch, "dl-multi-dlq")
    q = queue(ch, "dl-multi", {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    for b in (b"1", b"2", b"3"):
        ch.basic_publish("", q, b)
    tags = [get_one(ch, q, auto_ack=False)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[1], multiple=True, requeue=False)
    ch.basic_reject(tags[2], requeue=True)
    pump_until(conn, lambda: count(ch, dlq) == 2, timeout=2)
    C.eq("basic.nack multiple requeue=false: both messages dead-lettered in order",
         bodies(drain(ch, dlq)), [b"1", b"2"])
    C.eq("basic.reject requeue=true: requeued, not dead-lettered", bodies(drain(ch, q)), [b"3"])

    # a DLX that does not exist: the message is dropped silently
    q = queue(ch, "dl-nox", {"x-dead-letter-exchange": name("missing")})
    ch.basic_publish("", q, b"x")
    m, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    settle(conn, 0.1)
    C.check("reject into a missing DLX: message dropped, channel stays open",
            ch.is_open and count(ch, q) == 0)

    # closing the channel with unacked messages requeues them, never dead-letters
    dlq = queue(ch, "dl-close-dlq")
    q = queue(ch, "dl-close", {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.basic_publish("", q, b"x")
    ch3 = conn.channel()
    get_one(ch3, q, auto_ack=False)
    ch3.close()
    settle(conn, 0.1)
    C.eq("channel close with unacked: requeued, not dead-lettered",
         (count(ch, q), count(ch, dlq)), (1, 0))


def dead_letter_count_and_order():
    """A rejects -> B (TTL) expires -> A ...: count increments on the existing entry."""
    conn = connect()
    ch = channel(conn)
    qa, qb = name("dlc-a"), name("dlc-b")
    ch.queue_declare(qa, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": qb})
    _declared.append(("queue", qa))
    ch.queue_declare(qb, arguments={"x-message-ttl": 50, "x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": qa})
    _declared.append(("queue", qb))
    ch.basic_publish("", qa, b"loop")

    history = []
    for round_ in range(1, 3):
        m, p, _ = get_one(ch, qa, auto_ack=False, timeout=3)
        history.append(p.headers)
        ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, _ = get_one(ch, qa, auto_ack=False, timeout=3)
    history.append(p.headers)
    ch.basic_ack(m.delivery_tag)

    C.eq("round 1 in A: no x-death yet", (history[0] or {}).get("x-death"), None)
    xd = history[1]["x-death"]
    C.eq("round 2 in A (after A rejected, B expired): two entries, most recent first",
         [(e["queue"], e["reason"], e["count"]) for e in xd],
         [(qb, "expired", 1), (qa, "rejected", 1)])
    check_xdeath_entry("round 2 newest (B expired)", xd[0], "expired", qb, "", [qb])
    check_xdeath_entry("round 2 oldest (A rejected)", xd[1], "rejected", qa, "", [qa])
    xd = history[2]["x-death"]
    C.eq("round 3 in A: still two entries, each count incremented to 2, most recent first "
         "(not a cycle: the loop contains a rejection)",
         [(e["queue"], e["reason"], e["count"]) for e in xd],
         [(qb, "expired", 2), (qa, "rejected", 2)])
    C.eq("round 3: count stays a long-long (l)", [amqp_type(e["count"]) for e in xd], ["l", "l"])
    # RabbitMQ: an updated entry is re-sorted by key (count, exchange, queue, reason,
    # routing-keys, time) while a brand-new entry keeps RabbitMQ's insertion order
    # (count, reason, queue, time, exchange, routing-keys).
    C.eq("round 3: an incremented x-death entry has its keys sorted",
         list(xd[0].keys()), ["count", "exchange", "queue", "reason", "routing-keys", "time"])
    C.eq("round 3: x-first-death-* unchanged (first death: A rejected)",
         [history[2].get(k) for k in ("x-first-death-queue", "x-first-death-reason",
                                      "x-first-death-exchange")], [qa, "rejected", ""])


def dead_letter_cycles():
    conn = connect()
    ch = channel(conn)

    # self-loop on expiry: dropped at the first expiry (never re-enters the queue)
    fan = exchange(ch, "cyc-fan", "fanout")
    q = queue(ch, "cyc-self", {"x-message-ttl": 100, "x-dead-letter-exchange": fan})
    spy = queue(ch, "cyc-spy")
    ch.queue_bind(q, fan)
    ch.queue_bind(spy, fan)
    ch.basic_publish("", q, b"cycle")
    got = get_one(ch, spy, timeout=3)
    settle(conn, 0.6)  # ~6 TTLs: a broker without cycle detection would loop meanwhile
    C.check("expiry cycle (queue's DLX routes back to itself): other queues still get the "
            "dead-lettered copy", got is not None)
    if got:
        C.eq("...with x-death [(cyc-self, expired, 1)]",
             [(e["queue"], e["reason"], e["count"]) for e in got[1].headers["x-death"]],
             [(q, "expired", 1)])
    # RabbitMQ: cycle detection runs on the dead-lettered message (x-death already
    # updated), so the self-looping queue is dropped from the targets on the FIRST expiry.
    C.eq("expiry cycle: the message never re-enters the looping queue and the other queue "
         "got exactly one copy", (count(ch, q), count(ch, spy)), (0, 0))

    # 2-queue loop A(ttl) -> B(reject) -> A: a rejection in the loop keeps it going
    qa, qb = name("cyc2-a"), name("cyc2-b")
    ch.queue_declare(qa, arguments={"x-message-ttl": 50, "x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": qb})
    _declared.append(("queue", qa))
    ch.queue_declare(qb, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": qa})
    _declared.append(("queue", qb))
    ch.basic_publish("", qa, b"two")
    got = get_one(ch, qb, auto_ack=False, timeout=3)
    C.check("A(ttl)->B: arrives in B after expiring in A", got is not None)
    # B rejects -> A: the x-death path back to A contains B's rejection, so no cycle;
    # A expires again -> B: again the path contains a rejection, so no cycle either.
    ch.basic_reject(got[0].delivery_tag, requeue=False)
    got = get_one(ch, qb, auto_ack=False, timeout=3)
    C.check("A expired -> B rejected -> A expired -> B: a rejection in the loop means no "
            "cycle, the message keeps going", got is not None)
    if got:
        C.eq("...x-death after A,B,A: [(A expired 2), (B rejected 1)]",
             [(e["queue"], e["reason"], e["count"]) for e in got[1].headers["x-death"]],
             [(qa, "expired", 2), (qb, "rejected", 1)])
        ch.basic_ack(got[0].delivery_tag)

    # expiry-only loop across two queues: A(ttl) -> B(ttl) -> A : dropped entering A again
    qa, qb = name("cyc3-a"), name("cyc3-b")
    spy = queue(ch, "cyc3-spy")
    xa = exchange(ch, "cyc3-xa", "fanout")   # A's DLX: to B and spy
    xb = exchange(ch, "cyc3-xb", "fanout")   # B's DLX: to A and spy
    ch.queue_declare(qa, arguments={"x-message-ttl": 50, "x-dead-letter-exchange": xa})
    _declared.append(("queue", qa))
    ch.queue_declare(qb, arguments={"x-message-ttl": 50, "x-dead-letter-exchange": xb})
    _declared.append(("queue", qb))
    ch.queue_bind(qb, xa)
    ch.queue_bind(spy, xa)
    ch.queue_bind(qa, xb)
    ch.queue_bind(spy, xb)
    ch.basic_publish("", qa, b"three")
    pump_until(conn, lambda: count(ch, spy) >= 2, timeout=3)
    settle(conn, 0.5)
    spied = drain(ch, spy)
    C.eq("expiry-only loop A->B->A: the spy sees A's and B's dead-letterings, then the "
         "message is dropped when it would re-enter A",
         [[(e["queue"], e["reason"], e["count"]) for e in p.headers["x-death"]]
          for _, p, _ in spied],
         [[(qa, "expired", 1)], [(qb, "expired", 1), (qa, "expired", 1)]])
    C.eq("...and neither A nor B holds it", (count(ch, qa), count(ch, qb)), (0, 0))

    # reject self-loop: not a cycle, count increments each time
    q = name("cyc-rej")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q})
    _declared.append(("queue", q))
    px = exchange(ch, "cyc-rej-x", "direct")
    ch.queue_bind(q, px, routing_key="first-key")
    ch.basic_publish(px, "first-key", b"rej")
    counts = []
    times = []
    for i in range(3):
        m, p, _ = get_one(ch, q, auto_ack=False, timeout=2)
        counts.append([(e["reason"], e["count"]) for e in (p.headers or {}).get("x-death", [])])
        times += [e["time"] for e in (p.headers or {}).get("x-death", [])]
        if i == 1:
            settle(conn, 1.05)  # so that a re-stamped time would differ (whole seconds)
        ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, _ = get_one(ch, q, auto_ack=False, timeout=2)
    times += [e["time"] for e in p.headers["x-death"]]
    counts.append([(e["reason"], e["count"]) for e in p.headers["x-death"]])
    ch.basic_ack(m.delivery_tag)
    C.eq("reject self-loop (DLX back to the same queue): never dropped, one x-death entry "
         "whose count increments", counts,
         [[], [("rejected", 1)], [("rejected", 2)], [("rejected", 3)]])
    # RabbitMQ: incrementing keeps the entry's other fields from its FIRST death: the
    # later deaths came via the default exchange with routing key q, but the entry
    # still says exchange px / routing-keys [first-key].
    e = p.headers["x-death"][0]
    C.eq("reject self-loop: the incremented entry keeps exchange and routing-keys of the "
         "first death", (e["exchange"], e["routing-keys"]), (px, ["first-key"]))
    C.eq("reject self-loop: the incremented entry keeps the time of the first death "
         "(not re-stamped, even a second later)", len(set(times)), 1)
    C.eq("reject self-loop: delivered with the DLRK as routing key and the default exchange",
         (m.exchange, m.routing_key), ("", q))


# ===================================================================== 6. priority queues
def priority_queues():
    conn = connect()
    ch = channel(conn)
    q = queue(ch, "prio", {"x-max-priority": 10})
    for body, prio in ((b"p1", 1), (b"p5a", 5), (b"p9", 9), (b"p5b", 5), (b"p0", 0)):
        ch.basic_publish("", q, body, props(priority=prio))
    C.eq("x-max-priority 10: priorities 1,5,9,5,0 delivered 9,5,5,1,0 (FIFO within 5)",
         bodies(drain(ch, q)), [b"p9", b"p5a", b"p5b", b"p1", b"p0"])

    q = queue(ch, "prio-cap", {"x-max-priority": 5})
    for body, prio in ((b"none", None), (b"p3", 3), (b"p200", 200), (b"p5", 5), (b"p7", 7),
                       (b"p0", 0)):
        ch.basic_publish("", q, body, props(priority=prio))
    got = drain(ch, q)
    # RabbitMQ: priority above max is treated as max (FIFO with the real max-priority
    # messages); no priority = 0 (FIFO with explicit 0).
    C.eq("x-max-priority 5: 200 and 7 count as 5 (FIFO with 5), none counts as 0",
         bodies(got), [b"p200", b"p5", b"p7", b"p3", b"none", b"p0"])
    C.eq("...the priority property is delivered unchanged (200 stays 200, none stays none)",
         [p.priority for _, p, _ in got], [200, 5, 7, 3, None, 0])

    # without x-max-priority, the priority property is ignored (FIFO)
    q = queue(ch, "noprio")
    for body, prio in ((b"a", 1), (b"b", 9), (b"c", 5)):
        ch.basic_publish("", q, body, props(priority=prio))
    C.eq("no x-max-priority: FIFO regardless of priority", bodies(drain(ch, q)),
         [b"a", b"b", b"c"])

    # requeued message keeps its priority position
    q = queue(ch, "prio-requeue", {"x-max-priority": 10})
    ch.basic_publish("", q, b"low", props(priority=1))
    ch.basic_publish("", q, b"high", props(priority=8))
    m, _, b = ch.basic_get(q, auto_ack=False)
    C.eq("priority queue: basic.get gives the high one first", b, b"high")
    ch.basic_reject(m.delivery_tag, requeue=True)
    C.eq("...requeued, it is again ahead of the lower priority", bodies(drain(ch, q)),
         [b"high", b"low"])

    # consumer sees priority order for messages already queued
    q = queue(ch, "prio-consume", {"x-max-priority": 10})
    for body, prio in ((b"1", 1), (b"9", 9), (b"4", 4)):
        ch.basic_publish("", q, body, props(priority=prio))
    cch = conn.channel()
    seen = []
    cch.basic_consume(q, lambda c, m, p, b: seen.append(b), auto_ack=True)
    pump_until(conn, lambda: len(seen) == 3, timeout=2)
    C.eq("priority queue: a consumer gets the backlog in priority order", seen,
         [b"9", b"4", b"1"])


# ===================================================================== 7. alternate-exchange
def alternate_exchange():
    conn = connect()
    ch = channel(conn)
    ae = exchange(ch, "ae", "fanout")
    main = exchange(ch, "ae-main", "direct", {"alternate-exchange": ae})
    aeq = queue(ch, "ae-q")
    mq = queue(ch, "ae-mainq")
    ch.queue_bind(aeq, ae)
    ch.queue_bind(mq, main, routing_key="known")

    returned = False
    try:
        ch.basic_publish(main, "unknown", b"u", mandatory=True)
    except UnroutableError:
        returned = True
    C.check("alternate-exchange: a mandatory publish routed via the AE is NOT returned",
            not returned)
    got = get_one(ch, aeq, timeout=2)
    # RabbitMQ: the delivery names the ORIGINAL exchange and routing key, not the AE
    C.eq("alternate-exchange: the AE's queue gets it, delivered with the original exchange "
         "and routing key", got and (got[2], got[0].exchange, got[0].routing_key),
         (b"u", main, "unknown"))
    ch.basic_publish(main, "known", b"k", mandatory=True)
    C.eq("alternate-exchange: a routable message does not go to the AE",
         (count(ch, mq), count(ch, aeq)), (1, 0))

    # AE that routes nowhere: mandatory -> returned
    ae2 = exchange(ch, "ae-empty", "fanout")
    main2 = exchange(ch, "ae-main2", "direct", {"alternate-exchange": ae2})
    returned = False
    try:
        ch.basic_publish(main2, "x", b"r", mandatory=True)
    except UnroutableError:
        returned = True
    C.check("alternate-exchange routing nowhere: a mandatory publish IS returned", returned)

    # AE that does not exist: like no AE
    main3 = exchange(ch, "ae-main3", "direct", {"alternate-exchange": name("missing")})
    returned = False
    try:
        ch.basic_publish(main3, "x", b"r", mandatory=True)
    except UnroutableError:
        returned = True
    C.check("alternate-exchange naming a missing exchange: mandatory publish is returned "
            "and the channel stays open", returned and ch.is_open)

    # chained AEs: main4 -> ae4 (direct, no binding for the key) -> ae (fanout)
    ae4 = exchange(ch, "ae-chain", "direct", {"alternate-exchange": ae})
    main4 = exchange(ch, "ae-main4", "direct", {"alternate-exchange": ae4})
    ch.basic_publish(main4, "zzz", b"chain", mandatory=True)
    C.eq("alternate-exchange chains: AE of the AE is followed", bodies(drain(ch, aeq)),
         [b"chain"])

    # AE cycle (two exchanges naming each other): no loop, returned if mandatory
    c1, c2 = name("ae-c1"), name("ae-c2")
    ch.exchange_declare(c1, "direct", arguments={"alternate-exchange": c2})
    ch.exchange_declare(c2, "direct", arguments={"alternate-exchange": c1})
    _declared.append(("exchange", c1))
    _declared.append(("exchange", c2))
    returned = False
    try:
        ch.basic_publish(c1, "x", b"r", mandatory=True)
    except UnroutableError:
        returned = True
    C.check("alternate-exchange cycle: no loop; mandatory publish returned", returned)


# ===================================================================== 8. e2e bindings
def exchange_bindings():
    conn = connect()
    ch = channel(conn)
    src = exchange(ch, "e2e-src", "topic")
    mid = exchange(ch, "e2e-mid", "fanout")
    q = queue(ch, "e2e-q")
    ch.queue_bind(q, src, routing_key="a.*")
    ch.exchange_bind(destination=mid, source=src, routing_key="a.#")
    ch.queue_bind(q, mid)
    ch.basic_publish(src, "a.b", b"twice-routed", mandatory=True)
    settle(conn, 0.05)
    C.eq("a message reaching a queue by two paths (direct + via e2e) is delivered once",
         bodies(drain(ch, q)), [b"twice-routed"])
    ch.basic_publish(src, "a.b.c", b"only-via-mid", mandatory=True)
    got = drain(ch, q)
    C.eq("e2e: routed only through the bound exchange; delivery names the SOURCE exchange",
         [(b, m.exchange, m.routing_key) for m, _, b in got], [(b"only-via-mid", src, "a.b.c")])

    # cycle of exchange bindings
    x1, x2 = exchange(ch, "e2e-c1", "fanout"), exchange(ch, "e2e-c2", "fanout")
    ch.exchange_bind(destination=x2, source=x1)
    ch.exchange_bind(destination=x1, source=x2)
    qc = queue(ch, "e2e-cq")
    ch.queue_bind(qc, x2)
    ch.basic_publish(x1, "", b"cyc", mandatory=True)
    ch.basic_publish(x2, "", b"cyc2", mandatory=True)
    C.eq("cycle of exchange bindings: no loop, each message delivered once",
         bodies(drain(ch, qc)), [b"cyc", b"cyc2"])

    ch.exchange_unbind(destination=mid, source=src, routing_key="a.#")
    returned = False
    try:
        ch.basic_publish(src, "a.b.c", b"x", mandatory=True)
    except UnroutableError:
        returned = True
    C.check("exchange.unbind removes the route (mandatory publish now returned)", returned)

    # self-binding is allowed and harmless
    ch.exchange_bind(destination=x1, source=x1)
    ch.basic_publish(x1, "", b"self", mandatory=True)
    C.eq("exchange bound to itself: message delivered once", bodies(drain(ch, qc)), [b"self"])

    # errors
    missing = name("missing")
    ech = channel(conn)
    C.eq("exchange.bind with a missing source: 404",
         channel_error(lambda: ech.exchange_bind(destination=x1, source=missing)),
         (404, f"NOT_FOUND - no exchange '{missing}' in vhost '/'"))
    ech = channel(conn)
    C.eq("exchange.bind with a missing destination: 404",
         channel_error(lambda: ech.exchange_bind(destination=missing, source=x1)),
         (404, f"NOT_FOUND - no exchange '{missing}' in vhost '/'"))
    ech = channel(conn)
    # RabbitMQ: unbinding a binding that does not exist between existing exchanges is ok
    ech.exchange_unbind(destination=x1, source=mid, routing_key="nope")
    C.check("exchange.unbind of a non-existent binding between existing exchanges: ok",
            ech.is_open)


# ===================================================================== 9. transactions
def transactions():
    conn = connect()
    ch = conn.channel()
    q = queue(ch, "tx")
    ch.tx_select()
    for b in (b"1", b"2", b"3"):
        ch.basic_publish("", q, b)
    C.eq("tx: publishes are invisible before commit", count(ch, q), 0)
    ch.tx_rollback()
    C.eq("tx_rollback: nothing queued", count(ch, q), 0)
    ch.basic_publish("", q, b"c1")
    ch.basic_publish("", q, b"c2")
    ch.tx_commit()
    C.eq("tx_commit: queued in order, available when commit-ok arrives",
         bodies(drain(conn.channel(), q, auto_ack=True)), [b"c1", b"c2"])

    # ack inside a transaction, then rollback: still unacked, redelivered on close
    pch = conn.channel()
    pch.basic_publish("", q, b"acked-then-rolled-back")
    m, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_ack(m.delivery_tag)
    ch.tx_rollback()
    C.eq("tx: ack then rollback -> the message is still unacked (not ready)", count(pch, q), 0)
    # RabbitMQ: after a rollback the same delivery tag can be acked again
    ch.basic_ack(m.delivery_tag)
    ch.tx_rollback()
    ch.close()
    got = get_one(pch, q, timeout=2)
    C.check("tx: ...and redelivered (redelivered=true) after the channel closes",
            got is not None and got[2] == b"acked-then-rolled-back" and got[0].redelivered)

    ch = conn.channel()
    ch.tx_select()
    pch.basic_publish("", q, b"acked-committed")
    m, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_ack(m.delivery_tag)
    ch.tx_commit()
    ch.close()
    settle(conn, 0.05)
    C.eq("tx: ack then commit -> gone for good", count(pch, q), 0)

    # reject requeue in a tx is deferred as well
    ch = conn.channel()
    ch.tx_select()
    pch.basic_publish("", q, b"rej")
    m, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=True)
    C.eq("tx: basic.reject(requeue) not applied before commit", count(pch, q), 0)
    ch.tx_commit()
    C.eq("tx: ...applied at commit", count(pch, q), 1)
    drain(pch, q)
    ch.close()

    # tx.select twice is fine
    ch = conn.channel()
    ch.tx_select()
    ch.tx_select()
    C.check("tx.select twice on one channel: ok", ch.is_open)

    ch = conn.channel()
    ch.tx_select()
    C.eq("confirm.select after tx.select: 406",
         channel_error(ch.confirm_delivery),
         (406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode"))
    ch = conn.channel()
    ch.confirm_delivery()
    C.eq("tx.select after confirm.select: 406",
         channel_error(ch.tx_select),
         (406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode"))
    ch = conn.channel()
    C.eq("tx.commit without tx.select: 406",
         channel_error(ch.tx_commit),
         (406, "PRECONDITION_FAILED - channel is not transactional"))
    ch = conn.channel()
    C.eq("tx.rollback without tx.select: 406",
         channel_error(ch.tx_rollback),
         (406, "PRECONDITION_FAILED - channel is not transactional"))


# ===================================================================== 10. consumer priorities
def consumer_priorities():
    conn = connect()
    ch = channel(conn)
    q = queue(ch, "cprio")
    lo_ch, hi_ch = conn.channel(), conn.channel()
    got = {"lo": [], "hi": []}
    hi_tags = []
    lo_ch.basic_consume(q, lambda c, m, p, b: got["lo"].append(b), auto_ack=True,
                        arguments={"x-priority": 1})
    hi_ch.basic_qos(prefetch_count=2)
    hi_ch.basic_consume(q, lambda c, m, p, b: (got["hi"].append(b),
                                               hi_tags.append(m.delivery_tag)),
                        auto_ack=False, arguments={"x-priority": 10})
    ch.basic_publish("", q, b"1")
    ch.basic_publish("", q, b"2")
    pump_until(conn, lambda: len(got["hi"]) + len(got["lo"]) == 2, timeout=2)
    C.eq("x-priority: the higher-priority consumer with free prefetch gets everything",
         (got["hi"], got["lo"]), ([b"1", b"2"], []))
    for b in (b"3", b"4"):
        ch.basic_publish("", q, b)
    pump_until(conn, lambda: len(got["lo"]) == 2, timeout=2)
    C.eq("x-priority: when the high one is blocked by prefetch, the lower one gets them",
         (got["hi"], got["lo"]), ([b"1", b"2"], [b"3", b"4"]))
    hi_ch.basic_ack(hi_tags[-1], multiple=True)
    ch.basic_publish("", q, b"5")
    pump_until(conn, lambda: len(got["hi"]) + len(got["lo"]) == 5, timeout=2)
    C.eq("x-priority: once the high one has credit again it gets the next message",
         (got["hi"][-1:], len(got["lo"])), ([b"5"], 2))

    # equal priorities: round-robin; default priority is 0
    q2 = queue(ch, "cprio-eq")
    a, b_ = [], []
    c1, c2 = conn.channel(), conn.channel()
    c1.basic_consume(q2, lambda c, m, p, b: a.append(b), auto_ack=True)
    c2.basic_consume(q2, lambda c, m, p, b: b_.append(b), auto_ack=True,
                     arguments={"x-priority": 0})
    for i in range(4):
        ch.basic_publish("", q2, str(i).encode())
    pump_until(conn, lambda: len(a) + len(b_) == 4, timeout=2)
    C.eq("no x-priority == x-priority 0: round-robin between them", (len(a), len(b_)), (2, 2))

    # negative priority is below the default
    q3 = queue(ch, "cprio-neg")
    neg, dflt = [], []
    c3, c4 = conn.channel(), conn.channel()
    c3.basic_consume(q3, lambda c, m, p, b: neg.append(b), auto_ack=True,
                     arguments={"x-priority": -5})
    c4.basic_consume(q3, lambda c, m, p, b: dflt.append(b), auto_ack=True)
    for i in range(3):
        ch.basic_publish("", q3, str(i).encode())
    pump_until(conn, lambda: len(neg) + len(dflt) == 3, timeout=2)
    C.eq("x-priority -5 is below a consumer without x-priority", (len(neg), len(dflt)), (0, 3))

    ech = conn.channel()
    C.eq("x-priority of the wrong type: 406",
         channel_error(lambda: ech.basic_consume(q3, lambda *a: None,
                                                 arguments={"x-priority": "high"})),
         (406, "PRECONDITION_FAILED - invalid arg 'x-priority' for queue "
               f"'{q3}' in vhost '/': \"expected integer, got longstr\""))

    cch = conn.channel()
    cch.basic_consume(q3, lambda *a: None, arguments={"x-cancel-on-ha-failover": True})
    C.check("x-cancel-on-ha-failover consume argument accepted", cch.is_open)


# ===================================================================== 11. single active consumer
def single_active_consumer():
    conn = connect()
    ch = channel(conn)
    q = queue(ch, "sac", {"x-single-active-consumer": True})
    c1, c2 = conn.channel(), conn.channel()
    g1, g2 = [], []
    t1 = c1.basic_consume(q, lambda c, m, p, b: g1.append(b), auto_ack=True)
    c2.basic_consume(q, lambda c, m, p, b: g2.append(b), auto_ack=True)
    for i in range(4):
        ch.basic_publish("", q, f"m{i}".encode())
    pump_until(conn, lambda: len(g1) + len(g2) == 4, timeout=2)
    settle(conn, 0.05)
    C.eq("x-single-active-consumer: only the first consumer receives", (len(g1), len(g2)),
         (4, 0))
    c1.basic_cancel(t1)
    for i in range(2):
        ch.basic_publish("", q, f"n{i}".encode())
    pump_until(conn, lambda: len(g2) == 2, timeout=2)
    C.eq("x-single-active-consumer: after it cancels, the next consumer takes over",
         (len(g1), g2), (4, [b"n0", b"n1"]))

    # unacked messages of the active consumer go to the new one when its channel closes
    q = queue(ch, "sac2", {"x-single-active-consumer": True})
    c3, c4 = conn.channel(), conn.channel()
    g3, g4 = [], []
    c3.basic_consume(q, lambda c, m, p, b: g3.append(b), auto_ack=False)
    c4.basic_consume(q, lambda c, m, p, b: g4.append((b, m.redelivered)), auto_ack=True)
    ch.basic_publish("", q, b"u")
    pump_until(conn, lambda: g3, timeout=2)
    c3.close()
    pump_until(conn, lambda: g4, timeout=2)
    C.eq("x-single-active-consumer: the active channel closes -> its unacked message is "
         "redelivered to the next consumer", g4, [(b"u", True)])

    # basic.get is allowed on an SAC queue
    q = queue(ch, "sac3", {"x-single-active-consumer": True})
    ch.basic_publish("", q, b"g")
    C.eq("x-single-active-consumer: basic.get works on it", bodies(drain(ch, q)), [b"g"])

    ech = conn.channel()
    bad = name("sac-bad")
    C.eq("x-single-active-consumer of the wrong type: 406",
         channel_error(lambda: ech.queue_declare(bad, arguments={"x-single-active-consumer":
                                                                 "yes"})),
         (406, f"PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue "
               f"'{bad}' in vhost '/': {{unacceptable_type,longstr}}"))


# ===================================================================== 12. user_id
def validated_user_id():
    conn = connect()
    ch = channel(conn)
    q = queue(ch, "uid")
    ch.basic_publish("", q, b"ok", props(user_id="guest"))
    got = get_one(ch, q, timeout=2)
    C.eq("user_id equal to the authenticated user: accepted and delivered as is",
         got and got[1].user_id, "guest")
    ech = channel(conn)
    C.eq("user_id different from the authenticated user: channel closed 406",
         channel_error(lambda: ech.basic_publish("", q, b"bad", props(user_id="x"))),
         (406, "PRECONDITION_FAILED - user_id property set to 'x' but authenticated user "
               "was 'guest'"))
    C.eq("...and the message was not queued", count(ch, q), 0)
    # also for an unroutable publish (the check comes before routing)
    ech = channel(conn)
    C.eq("user_id mismatch on an unroutable publish: still 406",
         channel_error(lambda: ech.basic_publish("", name("nowhere"), b"bad",
                                                 props(user_id="someone"))),
         (406, "PRECONDITION_FAILED - user_id property set to 'someone' but authenticated "
               "user was 'guest'"))


# ===================================================================== 13. invalid args
def invalid_arguments():
    conn = connect()
    # RabbitMQ: two different message shapes.  Numeric args: a quoted string
    # "expected integer, got <type>" for the wrong type (the double quotes are part of
    # the text), Erlang terms {value_negative,N} / {value_zero,N} / {value_too_large,N}
    # for bad values.  String/bool args: {unacceptable_type,<type>}.  Type names are
    # RabbitMQ's field-type names: longstr, signedint (pika encodes small ints as 'I'),
    # long (for 'l'), bool.  The max for x-message-ttl/x-expires is 315360000000 (10 y).
    EI = '"expected integer, got longstr"'
    cases = [
        ("x-message-ttl", "abc", EI),
        ("x-message-ttl", -1, "{value_negative,-1}"),
        ("x-message-ttl", 315360000001, "{value_too_large,315360000001}"),
        ("x-expires", 0, "{value_zero,0}"),
        ("x-expires", -5, "{value_negative,-5}"),
        ("x-expires", "10", EI),
        ("x-expires", 315360000001, "{value_too_large,315360000001}"),
        ("x-max-length", -1, "{value_negative,-1}"),
        ("x-max-length", "10", EI),
        ("x-max-length-bytes", -1, "{value_negative,-1}"),
        ("x-max-length-bytes", "10", EI),
        ("x-max-priority", -1, "{value_negative,-1}"),
        ("x-max-priority", 256, "{max_value_exceeded,256}"),
        ("x-max-priority", "10", EI),
        ("x-max-priority", True, '"expected integer, got bool"'),
        ("x-overflow", "drop-tail", "invalid_overflow"),
        ("x-overflow", 1, "{unacceptable_type,signedint}"),
        ("x-single-active-consumer", "yes", "{unacceptable_type,longstr}"),
        ("x-single-active-consumer", 1, "{unacceptable_type,signedint}"),
        ("x-dead-letter-routing-key", "rk", "routing_key_but_no_dlx_defined"),
        ("x-queue-type", "bogus", '"unsupported queue type \'bogus\'"'),
        ("x-queue-mode", "bogus", '"unsupported queue mode \'bogus\'"'),
    ]
    for arg, val, reason in cases:
        q = name("badarg")
        ch = conn.channel()
        err = channel_error(lambda: ch.queue_declare(q, arguments={arg: val}))
        C.eq(f"queue.declare {arg}={val!r}: 406 with RabbitMQ's text",
             err, (406, f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost "
                        f"'/': {reason}"))
        if err is None:
            _declared.append(("queue", q))

    # RabbitMQ: x-dead-letter-exchange of the wrong type has a THIRD message shape
    # (the generic type check of rabbit_amqqueue: "invalid type '<type>' for arg ...").
    # x-dead-letter-routing-key of the wrong type (with a DLX) uses {unacceptable_type,..}.
    for args, arg, text in (
            ({"x-dead-letter-exchange": 1}, "x-dead-letter-exchange",
             "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' "
             "in queue '{q}' in vhost '/'"),
            ({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": 1},
             "x-dead-letter-routing-key",
             "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '{q}' in "
             "vhost '/': {{unacceptable_type,signedint}}")):
        q = name("badarg")
        ch = conn.channel()
        err = channel_error(lambda: ch.queue_declare(q, arguments=args))
        if err is None:
            _declared.append(("queue", q))
        C.eq(f"queue.declare {args}: 406 with RabbitMQ's text", err,
             (406, text.format(q=q)))

    # accepted edge values
    ch = conn.channel()
    for arg, val in (("x-message-ttl", 0), ("x-message-ttl", 315360000000),
                     ("x-expires", 315360000000), ("x-max-length", 0),
                     ("x-max-priority", 255), ("x-max-priority", 0),
                     ("x-overflow", "drop-head"), ("x-overflow", "reject-publish-dlx"),
                     ("x-single-active-consumer", False),
                     ("x-dead-letter-exchange", name("not-declared-yet"))):
        q = name("okarg")
        err = channel_error(lambda: ch.queue_declare(q, arguments={arg: val}))
        if err is None:
            _declared.append(("queue", q))
        else:
            ch = conn.channel()
        C.eq(f"queue.declare {arg}={val!r}: accepted", err, None)

    # exchange argument alternate-exchange: must be a string (generic type check)
    for val, typ in ((1, "signedint"), (True, "bool")):
        ch = conn.channel()
        x = name("badae")
        err = channel_error(lambda: ch.exchange_declare(x, "direct",
                                                        arguments={"alternate-exchange": val}))
        if err is None:
            _declared.append(("exchange", x))
        C.eq(f"exchange.declare alternate-exchange={val!r}: 406", err,
             (406, f"PRECONDITION_FAILED - invalid type '{typ}' for arg 'alternate-exchange' "
                   f"in exchange '{x}' in vhost '/'"))
    ch = conn.channel()
    x = name("emptyae")
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": ""})
    _declared.append(("exchange", x))
    C.check("exchange.declare alternate-exchange='' accepted", ch.is_open)

    # unknown x- arguments are accepted
    ch = conn.channel()
    q = name("unknownarg")
    err = channel_error(lambda: ch.queue_declare(q, arguments={"x-whatever": "x"}))
    if err is None:
        _declared.append(("queue", q))
    C.eq("queue.declare with an unknown x- argument: accepted", err, None)


for fn in (queue_ttl, message_expiration, queue_expires, length_limits, dead_lettering,
           dead_letter_count_and_order, dead_letter_cycles, priority_queues,
           alternate_exchange, exchange_bindings, transactions, consumer_priorities,
           single_active_consumer, validated_user_id, invalid_arguments):
    C.run(fn)
C.finish()
