#!/usr/bin/env python3
"""Error paths and tricky semantics (see SEMANTICS.md), asserting RabbitMQ's exact
reply codes and texts. RabbitMQ 3.10.8 is the reference: every expectation here was
verified against it; where it differs from SEMANTICS.md a comment says so.

usage: conformance.py AMQP_URL     exit 0 only if every check held.
After each channel or connection error a fresh connection must keep working.
"""
import re
import time
import urllib.parse

import pika
from pika.exceptions import (ChannelClosedByBroker, ConnectionClosedByBroker,
                             ProbableAccessDeniedError, ProbableAuthenticationError,
                             UnroutableError)

import rawamqp
from common import (WAIT, Checks, close_quietly, connect, drain, get_one, pump, suffix,
                    url_from_argv)

URL = url_from_argv()
C = Checks("conformance.py")
SFX = suffix()
VH = "/"


def name(prefix):
    return f"{prefix}-{SFX}-{suffix()[:4]}"


def healthy(after):
    """A fresh connection still works: declare, confirmed publish, get, ack."""
    try:
        conn = connect(URL)
        ch = conn.channel()
        ch.confirm_delivery()
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.basic_publish("", q, b"ping", mandatory=True)
        got = get_one(ch, q)
        ok = got is not None and got[2] == b"ping"
        if got:
            ch.basic_ack(got[0].delivery_tag)
        conn.close()
    except Exception as e:  # noqa: BLE001
        ok = False
        after = f"{after} ({type(e).__name__}: {e})"
    C.check(f"  ...and a new connection still works after: {after}", ok)


def expect_channel_error(what, fn, code, text, setup_conn=None):
    """fn(ch, conn) must make the broker close the channel with (code, text).

    The connection must survive a channel error (a new channel opens on it) and
    another connection must keep working.
    """
    conn = setup_conn or connect(URL)
    ch = conn.channel()
    try:
        fn(ch, conn)
        C.check(what, False, f"no error, expected channel close {code}")
    except ChannelClosedByBroker as e:
        want = text if isinstance(text, str) else None
        ok = e.reply_code == code and (e.reply_text == want if want else text(e.reply_text))
        C.check(what, ok, f"got ({e.reply_code}, {e.reply_text!r}), want ({code}, {text!r})")
        try:
            conn.channel().close()
            C.check(f"  ...the connection survives the channel error ({what})", True)
        except Exception as e2:  # noqa: BLE001
            C.check(f"  ...the connection survives the channel error ({what})", False, repr(e2))
    except Exception as e:  # noqa: BLE001
        C.check(what, False, f"got {type(e).__name__}: {e!r}")
    if setup_conn is None:
        close_quietly(conn)
    healthy(what)


def expect_connection_error(what, fn, code, text):
    conn = connect(URL)
    ch = conn.channel()
    try:
        fn(ch, conn)
        C.check(what, False, f"no error, expected connection close {code}")
    except ConnectionClosedByBroker as e:
        C.check(what, (e.reply_code, e.reply_text) == (code, text),
                f"got ({e.reply_code}, {e.reply_text!r}), want ({code}, {text!r})")
    except Exception as e:  # noqa: BLE001
        C.check(what, False, f"got {type(e).__name__}: {e!r}")
    close_quietly(conn)
    healthy(what)


def sync(ch):
    """A synchronous round trip on ch: surfaces an asynchronous channel close."""
    ch.queue_declare(queue="", exclusive=True)


def queue_gone(qname, timeout=WAIT):
    """Poll (passive declares on fresh channels) until qname is 404; bounded."""
    conn = connect(URL)
    deadline = time.monotonic() + timeout
    gone = False
    while time.monotonic() < deadline:
        ch = conn.channel()
        try:
            ch.queue_declare(queue=qname, passive=True)
            ch.close()
        except ChannelClosedByBroker as e:
            gone = e.reply_code == 404
            break
        conn.process_data_events(time_limit=0.02)
    close_quietly(conn)
    return gone


def queue_exists(ch, qname):
    try:
        ch.queue_declare(queue=qname, passive=True)
        return True
    except ChannelClosedByBroker:
        return False


# --------------------------------------------------------------------- errors
def errors_not_found():
    q = name("missing")
    expect_channel_error("passive declare of a missing queue -> 404",
                         lambda ch, c: ch.queue_declare(queue=q, passive=True),
                         404, f"NOT_FOUND - no queue '{q}' in vhost '{VH}'")
    x = name("missing-ex")

    def publish_missing(ch, c):
        ch.basic_publish(exchange=x, routing_key="k", body=b"x")
        sync(ch)

    expect_channel_error("publish to a missing exchange -> 404 channel close", publish_missing,
                         404, f"NOT_FOUND - no exchange '{x}' in vhost '{VH}'")
    expect_channel_error("passive declare of a missing exchange -> 404",
                         lambda ch, c: ch.exchange_declare(exchange=x, passive=True),
                         404, f"NOT_FOUND - no exchange '{x}' in vhost '{VH}'")
    expect_channel_error("bind a missing queue -> 404",
                         lambda ch, c: ch.queue_bind(queue=q, exchange="amq.direct", routing_key="k"),
                         404, f"NOT_FOUND - no queue '{q}' in vhost '{VH}'")

    def bind_missing_exchange(ch, c):
        qq = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.queue_bind(queue=qq, exchange=x, routing_key="k")

    expect_channel_error("bind to a missing exchange -> 404", bind_missing_exchange,
                         404, f"NOT_FOUND - no exchange '{x}' in vhost '{VH}'")

    # RabbitMQ 3.10: deleting a missing queue/exchange is NOT an error (delete-ok).
    conn = connect(URL)
    ch = conn.channel()
    ok = ch.queue_delete(queue=name("never-declared"))
    C.eq("queue.delete of a missing queue -> delete-ok (message_count 0)", ok.method.message_count, 0)
    ch.exchange_delete(exchange=name("never-declared-ex"))
    C.check("exchange.delete of a missing exchange -> delete-ok", ch.is_open)
    # ...nor is unbinding a binding that does not exist.
    qq = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.queue_unbind(queue=qq, exchange="amq.direct", routing_key="never-bound")
    C.check("queue.unbind of a missing binding -> unbind-ok", ch.is_open)
    conn.close()


LOCKED = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. "
          "It could be originally declared on another connection or the exclusive property "
          "value does not match that of the original declaration.")


def errors_exclusive():
    owner = connect(URL)
    och = owner.channel()
    q = name("excl")
    och.queue_declare(queue=q, exclusive=True)
    text = LOCKED.format(q=q)
    expect_channel_error("another connection's exclusive queue: declare -> 405",
                         lambda ch, c: ch.queue_declare(queue=q, exclusive=True), 405, text)
    expect_channel_error("another connection's exclusive queue: passive declare -> 405 (not 404)",
                         lambda ch, c: ch.queue_declare(queue=q, passive=True), 405, text)
    expect_channel_error("another connection's exclusive queue: consume -> 405",
                         lambda ch, c: ch.basic_consume(queue=q, on_message_callback=lambda *a: None),
                         405, text)
    expect_channel_error("another connection's exclusive queue: basic.get -> 405",
                         lambda ch, c: ch.basic_get(queue=q), 405, text)
    expect_channel_error("another connection's exclusive queue: purge -> 405",
                         lambda ch, c: ch.queue_purge(queue=q), 405, text)
    expect_channel_error("another connection's exclusive queue: delete -> 405",
                         lambda ch, c: ch.queue_delete(queue=q), 405, text)
    expect_channel_error("another connection's exclusive queue: bind -> 405",
                         lambda ch, c: ch.queue_bind(queue=q, exchange="amq.direct", routing_key=q),
                         405, text)
    # Publishing to it is allowed (RabbitMQ routes it; only the owner can consume).
    conn = connect(URL)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", q, b"to an exclusive queue", mandatory=True)
    C.check("another connection may publish to an exclusive queue", True)
    got = get_one(och, q, auto_ack=True)
    C.check("  ...and the owner gets it", got is not None and got[2] == b"to an exclusive queue")
    conn.close()

    # A non-exclusive queue redeclared exclusive: also 405 (not 406) in RabbitMQ 3.10.
    q2 = name("plain")
    och.queue_declare(queue=q2)
    expect_channel_error("redeclare a non-exclusive queue as exclusive -> 405",
                         lambda ch, c: ch.queue_declare(queue=q2, exclusive=True),
                         405, LOCKED.format(q=q2))
    och.queue_delete(q2)

    # Deleted when its connection closes, even with auto_delete=false.
    owner.close()
    C.check("exclusive queue deleted when its connection closes", queue_gone(q))


def errors_inequivalent():
    conn = connect(URL)
    ch = conn.channel()
    q = name("ineq")
    ch.queue_declare(queue=q)
    expect_channel_error("redeclare queue with different durable -> 406",
                         lambda c, _: c.queue_declare(queue=q, durable=True), 406,
                         f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in "
                         f"vhost '/': received 'true' but current is 'false'")
    expect_channel_error("redeclare queue with different auto_delete -> 406",
                         lambda c, _: c.queue_declare(queue=q, auto_delete=True), 406,
                         f"PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '{q}' in "
                         f"vhost '/': received 'true' but current is 'false'")
    # pika encodes a small int as a signed 32-bit field ('I'): RabbitMQ names it 'signedint'.
    expect_channel_error("redeclare queue with a new argument -> 406",
                         lambda c, _: c.queue_declare(queue=q, arguments={"x-message-ttl": 1000}),
                         406,
                         f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' "
                         f"in vhost '/': received the value '1000' of type 'signedint' but "
                         f"current is none")
    # A passive declare ignores the other flags.
    ok = ch.queue_declare(queue=q, passive=True, durable=True, auto_delete=True)
    C.eq("passive declare ignores durable/auto_delete", ok.method.queue, q)
    ch.queue_delete(q)

    x = name("ex-ineq")
    ch.exchange_declare(exchange=x, exchange_type="direct")
    # SEMANTICS.md note: the spec says 530 connection; RabbitMQ closes the channel with 406.
    expect_channel_error("redeclare exchange with another type -> 406 channel close",
                         lambda c, _: c.exchange_declare(exchange=x, exchange_type="fanout"), 406,
                         f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in "
                         f"vhost '/': received 'fanout' but current is 'direct'")
    expect_channel_error("redeclare exchange with different durable -> 406",
                         lambda c, _: c.exchange_declare(exchange=x, exchange_type="direct",
                                                         durable=True), 406,
                         f"PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '{x}' in "
                         f"vhost '/': received 'true' but current is 'false'")
    ch.exchange_delete(x)
    conn.close()

    # Unknown exchange type: a CONNECTION error 503 in RabbitMQ 3.10.
    expect_connection_error("declare exchange of unknown type -> 503 connection close",
                            lambda c, _: c.exchange_declare(exchange=name("bogus"),
                                                            exchange_type="bogus"),
                            503, "COMMAND_INVALID - unknown exchange type 'bogus'")


def errors_reserved_names():
    qn = "amq.x-" + SFX
    expect_channel_error("declare queue named amq.* -> 403",
                         lambda ch, c: ch.queue_declare(queue=qn), 403,
                         f"ACCESS_REFUSED - queue name '{qn}' contains reserved prefix 'amq.*'")
    expect_channel_error("passive declare of a missing amq.* queue -> 404 (not 403)",
                         lambda ch, c: ch.queue_declare(queue=qn, passive=True), 404,
                         f"NOT_FOUND - no queue '{qn}' in vhost '/'")
    expect_channel_error("declare exchange named amq.* -> 403",
                         lambda ch, c: ch.exchange_declare(exchange=qn, exchange_type="direct"), 403,
                         f"ACCESS_REFUSED - exchange name '{qn}' contains reserved prefix 'amq.*'")
    conn = connect(URL)
    ch = conn.channel()
    for x, t in (("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
                 ("amq.headers", "headers"), ("amq.match", "headers")):
        ch.exchange_declare(exchange=x, exchange_type=t, passive=True)
        C.check(f"built-in exchange {x} exists (passive declare ok)", True)
    ch.exchange_declare(exchange="amq.direct", exchange_type="direct", durable=True)
    C.check("redeclaring amq.direct with its own properties is fine", True)
    conn.close()

    default = "ACCESS_REFUSED - operation not permitted on the default exchange"
    expect_channel_error("declare the default exchange -> 403",
                         lambda ch, c: ch.exchange_declare(exchange="", exchange_type="direct"),
                         403, default)
    expect_channel_error("passive declare of the default exchange -> 403 (RabbitMQ 3.10)",
                         lambda ch, c: ch.exchange_declare(exchange="", passive=True), 403, default)
    expect_channel_error("delete the default exchange -> 403",
                         lambda ch, c: ch.exchange_delete(exchange=""), 403, default)

    def bind_default(ch, c):
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.queue_bind(queue=q, exchange="", routing_key="k")

    expect_channel_error("bind a queue to the default exchange -> 403", bind_default, 403, default)

    def unbind_default(ch, c):
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.queue_unbind(queue=q, exchange="", routing_key=q)

    expect_channel_error("unbind from the default exchange -> 403", unbind_default, 403, default)
    expect_channel_error("delete amq.direct -> 403",
                         lambda ch, c: ch.exchange_delete(exchange="amq.direct"), 403,
                         "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' "
                         "not allowed")


def errors_acks():
    def ack_unknown(ch, c):
        ch.basic_ack(delivery_tag=999)
        sync(ch)

    expect_channel_error("ack an unknown delivery tag -> 406", ack_unknown, 406,
                         "PRECONDITION_FAILED - unknown delivery tag 999")

    def double_ack(ch, c):
        ch.confirm_delivery()
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.basic_publish("", q, b"x")
        m, _, _ = get_one(ch, q)
        ch.basic_ack(m.delivery_tag)
        ch.basic_ack(m.delivery_tag)
        sync(ch)

    expect_channel_error("double ack -> 406", double_ack, 406,
                         "PRECONDITION_FAILED - unknown delivery tag 1")

    def nack_unknown(ch, c):
        ch.basic_nack(delivery_tag=7)
        sync(ch)

    expect_channel_error("nack an unknown delivery tag -> 406", nack_unknown, 406,
                         "PRECONDITION_FAILED - unknown delivery tag 7")

    def reject_unknown(ch, c):
        ch.basic_reject(delivery_tag=8)
        sync(ch)

    expect_channel_error("reject an unknown delivery tag -> 406", reject_unknown, 406,
                         "PRECONDITION_FAILED - unknown delivery tag 8")

    def ack_multiple_unknown(ch, c):
        ch.basic_ack(delivery_tag=5, multiple=True)
        sync(ch)

    expect_channel_error("ack multiple=true beyond any delivery -> 406", ack_multiple_unknown, 406,
                         "PRECONDITION_FAILED - unknown delivery tag 5")

    def ack_zero_single(ch, c):
        ch.basic_ack(delivery_tag=0, multiple=False)
        sync(ch)

    expect_channel_error("ack tag 0 multiple=false -> 406", ack_zero_single, 406,
                         "PRECONDITION_FAILED - unknown delivery tag 0")

    # ack tag 0 with multiple=true means "everything outstanding" (no error, even when empty)
    conn = connect(URL)
    ch = conn.channel()
    ch.confirm_delivery()
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.basic_ack(delivery_tag=0, multiple=True)
    sync(ch)
    C.check("ack tag 0 multiple=true with nothing outstanding is fine", ch.is_open)
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode())
    tags = [get_one(ch, q)[0].delivery_tag for _ in range(3)]
    C.eq("delivery tags count from 1 per channel", tags, [1, 2, 3])
    ch.basic_ack(delivery_tag=0, multiple=True)
    sync(ch)
    ok = ch.queue_declare(queue=q, passive=True)
    C.eq("ack tag 0 multiple=true acks everything", ok.method.message_count, 0)
    # basic.recover would requeue unacked ones: none may be left
    ch.basic_recover(requeue=True)
    C.check("  ...nothing left unacked (get-empty after recover)", get_one(ch, q, timeout=0.2) is None)
    # multiple=true acks up to and including the tag
    for i in range(3):
        ch.basic_publish("", q, f"n{i}".encode())
    got = [get_one(ch, q) for _ in range(3)]
    ch.basic_ack(delivery_tag=got[1][0].delivery_tag, multiple=True)
    ch.basic_recover(requeue=True)
    back = get_one(ch, q)
    C.check("ack multiple=true acks up to the tag (the later one is requeued by recover)",
            back is not None and back[2] == b"n2" and back[0].redelivered, repr(back))
    conn.close()


def errors_connection_level():
    q = name("ctag")

    # pika refuses to reuse a consumer tag itself: speak raw AMQP.
    r = rawamqp.RawConn(URL).handshake()
    r.open_channel(1)
    qn = r.queue_declare(1, "", exclusive=True)
    r.consume(1, qn, q)
    r.consume(1, qn, q, wait_ok=False)
    c = r.expect_close()
    C.eq("reuse a consumer tag on a channel -> 530 connection close (class 60 method 20)",
         (c.kind, c.code, c.text, c.class_id, c.method_id) if c else None,
         ("connection", 530, f"NOT_ALLOWED - attempt to reuse consumer tag '{q}'", 60, 20))
    C.check("  ...and the socket is closed", r.eof_within())
    r.close()
    healthy("consumer tag reuse")

    expect_connection_error("basic.qos prefetch_size != 0 -> 540 connection close",
                            lambda ch, c: ch.basic_qos(prefetch_size=1, prefetch_count=1),
                            540, "NOT_IMPLEMENTED - prefetch_size!=0 (1)")

    r = rawamqp.RawConn(URL).handshake()
    r.open_channel(1)
    r.publish(1, "amq.direct", "k", b"immediate", immediate=True)
    c = r.expect_close()
    C.eq("publish immediate=true -> 540 connection close (class 60 method 40)",
         (c.kind, c.code, c.text, c.class_id, c.method_id) if c else None,
         ("connection", 540, "NOT_IMPLEMENTED - immediate=true", 60, 40))
    C.check("  ...and the socket is closed", r.eof_within())
    r.close()
    healthy("publish immediate")

    # close frames carry the failing method's class and method id
    r = rawamqp.RawConn(URL).handshake()
    r.open_channel(1)
    x = name("nox")
    r.publish(1, x, "k", b"x")
    c = r.expect_close()
    C.eq("publish to a missing exchange: channel.close 404 with class 60 method 40",
         (c.kind, c.channel, c.code, c.class_id, c.method_id) if c else None,
         ("channel", 1, 404, 60, 40))
    r.open_channel(1)
    C.check("  ...the channel number can be reopened after close-ok", True)
    # pika makes consumer tags itself: ask the server for one with an empty tag
    qn = r.queue_declare(1, "", exclusive=True)
    tag = r.consume(1, qn, "")
    C.check("server-generated consumer tag is amq.ctag-...", tag.startswith("amq.ctag-"), tag)
    r.close()


def errors_login():
    u = urllib.parse.urlparse(URL)
    vhost = name("no-vhost")
    bad_vhost = u._replace(path="/" + urllib.parse.quote(vhost, safe="")).geturl()
    try:
        connect(bad_vhost).close()
        C.check("unknown vhost -> refused", False, "connected")
    except ProbableAccessDeniedError as e:
        C.check("unknown vhost -> pika ProbableAccessDeniedError with 530 NOT_ALLOWED",
                f"(530) 'NOT_ALLOWED - vhost {vhost} not found'" in str(e), str(e))
    r = rawamqp.RawConn(bad_vhost)
    try:
        r.handshake()
        C.check("unknown vhost (raw)", False, "opened")
    except rawamqp.Refused as e:
        c = e.close
        C.eq("unknown vhost (raw): connection.close 530 on connection.open (class 10 method 40)",
             (e.stage, c.code, c.text, c.class_id, c.method_id) if c else (e.stage, None),
             ("open", 530, f"NOT_ALLOWED - vhost {vhost} not found", 10, 40))
    r.close()
    healthy("unknown vhost")

    netloc = f"{u.username}:wrong-{SFX}@{u.hostname}:{u.port or 5672}"
    bad_pw = u._replace(netloc=netloc).geturl()
    refused = ("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
               "For details see the broker logfile.")
    try:
        connect(bad_pw).close()
        C.check("wrong password -> refused", False, "connected")
    except (ProbableAuthenticationError, pika.exceptions.AuthenticationError) as e:
        C.check("wrong password -> pika ProbableAuthenticationError with 403 ACCESS_REFUSED",
                f"(403) '{refused}'" in str(e), str(e))
    # raw, announcing authentication_failure_close: a 403 close (class/method 0, 0)
    r = rawamqp.RawConn(bad_pw)
    try:
        r.handshake(capabilities=True)
        C.check("wrong password (raw)", False, "opened")
    except rawamqp.Refused as e:
        c = e.close
        C.eq("wrong password (raw, authentication_failure_close): 403 close after start-ok",
             (e.stage, c.code, c.text, c.class_id, c.method_id) if c else (e.stage, None),
             ("start-ok", 403, refused, 0, 0))
    r.close()
    # raw, without that capability: RabbitMQ just closes the socket
    r = rawamqp.RawConn(bad_pw)
    try:
        r.handshake(capabilities=False)
        C.check("wrong password (raw, no capability)", False, "opened")
    except rawamqp.Refused as e:
        C.check("wrong password (raw, no authentication_failure_close): socket closed, no frame",
                e.close is None, repr(e.close))
    r.close()
    healthy("wrong password")


def errors_delete_conditions():
    conn = connect(URL)
    ch = conn.channel()
    ch.confirm_delivery()
    q = name("cond")
    ch.queue_declare(queue=q)
    ch.basic_publish("", q, b"keep")
    ch.basic_publish("", q, b"keep too")
    expect_channel_error("queue.delete if_empty on a non-empty queue -> 406",
                         lambda c, _: c.queue_delete(queue=q, if_empty=True), 406,
                         f"PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty")
    ch.basic_qos(prefetch_count=1)
    held = []
    ch.basic_consume(queue=q, on_message_callback=lambda c, m, p, b: held.append(b))
    pump(conn, lambda: held)
    expect_channel_error("queue.delete if_unused on a consumed queue -> 406",
                         lambda c, _: c.queue_delete(queue=q, if_unused=True), 406,
                         f"PRECONDITION_FAILED - queue '{q}' in vhost '/' in use")
    ok = ch.queue_delete(queue=q)
    C.eq("queue.delete-ok message_count counts ready messages (not the unacked one)",
         ok.method.message_count, 1)
    conn.close()

    expect_channel_error("direct reply-to consume with no_ack=false -> 406",
                         lambda c, _: c.basic_consume(queue="amq.rabbitmq.reply-to",
                                                      on_message_callback=lambda *a: None,
                                                      auto_ack=False),
                         406, "PRECONDITION_FAILED - reply consumer cannot acknowledge")

    def drt_without_consumer(c, _):
        c.basic_publish("", name("rpc"), b"x",
                        pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
        sync(c)

    expect_channel_error("publish reply_to=amq.rabbitmq.reply-to without consuming it -> 406",
                         drt_without_consumer, 406,
                         "PRECONDITION_FAILED - fast reply consumer does not exist")
    expect_channel_error("confirm.select after tx.select -> 406",
                         lambda c, _: (c.tx_select(), c.confirm_delivery()), 406,
                         "PRECONDITION_FAILED - cannot switch from tx to confirm mode")
    expect_channel_error("tx.select after confirm.select -> 406",
                         lambda c, _: (c.confirm_delivery(), c.tx_select()), 406,
                         "PRECONDITION_FAILED - cannot switch from confirm to tx mode")


# --------------------------------------------------------------------- queues
def auto_delete():
    conn = connect(URL)
    ch = conn.channel()
    q = name("autodel")
    ch.queue_declare(queue=q, auto_delete=True)
    other = connect(URL)
    och = other.channel()
    och.confirm_delivery()
    och.basic_publish("", q, b"x", mandatory=True)  # a full round trip through the queue
    C.check("auto-delete queue that never had a consumer is not deleted", queue_exists(och, q))
    t1 = ch.basic_consume(queue=q, on_message_callback=lambda c, m, p, b: None, auto_ack=True)
    t2 = ch.basic_consume(queue=q, on_message_callback=lambda c, m, p, b: None, auto_ack=True)
    ch.basic_cancel(t1)
    C.check("auto-delete queue survives while a consumer remains", queue_exists(och, q))
    ch.basic_cancel(t2)
    C.check("auto-delete queue deleted after its last consumer cancels", queue_gone(q))

    # ...also when the last consumer's channel closes
    q2 = name("autodel2")
    ch.queue_declare(queue=q2, auto_delete=True)
    ch2 = conn.channel()
    ch2.basic_consume(queue=q2, on_message_callback=lambda *a: None)
    ch2.close()
    C.check("auto-delete queue deleted when its last consumer's channel closes", queue_gone(q2))
    close_quietly(conn, other)


def server_named_and_empty_name():
    conn = connect(URL)
    ch = conn.channel()
    ch.confirm_delivery()
    names = [ch.queue_declare(queue="", exclusive=True).method.queue for _ in range(3)]
    pat = re.compile(r"^amq\.gen-[A-Za-z0-9_-]{22}$")
    C.check("server-named queues are amq.gen- + 22 base64url chars",
            all(pat.match(n) for n in names), str(names))
    C.check("server-named queues are distinct", len(set(names)) == 3)

    # An empty queue name means the channel's last declared queue.
    ex = name("fan")
    ch.exchange_declare(exchange=ex, exchange_type="fanout", auto_delete=True)
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.queue_bind(queue="", exchange=ex)
    ch.basic_publish(ex, "", b"via empty-name bind", mandatory=True)
    C.check("queue.bind with queue='' binds the last declared queue",
            get_one(ch, q, auto_ack=True) is not None)
    ch.basic_publish("", q, b"one")
    ch.basic_publish("", q, b"two")
    m = ch.basic_get(queue="", auto_ack=True)
    C.eq("basic.get with queue='' reads the last declared queue", m[2], b"one")
    ok = ch.queue_purge(queue="")
    C.eq("queue.purge with queue='' purges it (message_count)", ok.method.message_count, 1)
    got = []
    ch.basic_consume(queue="", on_message_callback=lambda c, m, p, b: got.append(b), auto_ack=True)
    ch.basic_publish("", q, b"three")
    C.check("basic.consume with queue='' consumes it", pump(conn, lambda: got == [b"three"]), str(got))

    # queue.bind with queue='' and routing_key='' uses the queue name as the key
    q2 = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.queue_bind(queue="", exchange="amq.direct", routing_key="")
    ch.basic_publish("amq.direct", q2, b"key=name", mandatory=True)
    C.check("queue.bind with queue='' and routing_key='' binds with the queue name as key",
            get_one(ch, q2, auto_ack=True) is not None)
    ch.queue_delete(queue="")
    C.check("queue.delete with queue='' deletes the last declared queue", queue_gone(q2))
    conn.close()

    for op, fn in (("queue.bind", lambda c: c.queue_bind(queue="", exchange="amq.direct")),
                   ("queue.purge", lambda c: c.queue_purge(queue="")),
                   ("basic.get", lambda c: c.basic_get(queue="")),
                   ("basic.consume", lambda c: c.basic_consume(queue="",
                                                               on_message_callback=lambda *a: None)),
                   ("queue.delete", lambda c: c.queue_delete(queue=""))):
        expect_channel_error(f"{op} with queue='' and no queue declared on the channel -> 404",
                             lambda c, _, fn=fn: fn(c), 404,
                             "NOT_FOUND - no previously declared queue")


# --------------------------------------------------------------------- routing
def routed(ch, exchange, key, headers=None):
    """Publish mandatory on a confirm channel: True if routed, False if returned."""
    try:
        ch.basic_publish(exchange, key, b"probe", pika.BasicProperties(headers=headers),
                         mandatory=True)
        return True
    except UnroutableError as e:
        assert e.messages[0].method.reply_code == 312
        return False


TOPIC_CASES = [
    # (binding, routing key, matches) -- all verified on RabbitMQ 3.10
    ("a.#", "a", True), ("#", "", True), ("a.*.b", "a..b", True), ("*", "", False),
    ("a.*", "a.", True), ("a.*", "a", False), ("#.a", "a", True), ("a.#.b", "a.b", True),
    ("*.#", "", False), ("", "", True), ("", "a", False), ("#.#", "a.b", True),
    ("a.b", "a.b.", False), ("*", ".", False), ("*.*", ".", True), ("#", ".", True),
    ("a.#", "a.", True), ("#.*", "", False), ("*.#.*", "a", False), ("a", "A", False),
    ("*.orange.*", "quick.orange.rabbit", True), ("lazy.#", "lazy", True),
]


def topic_edges():
    conn = connect(URL)
    ch = conn.channel()
    ch.confirm_delivery()
    for binding, key, want in TOPIC_CASES:
        ex = name("topic")
        ch.exchange_declare(exchange=ex, exchange_type="topic", auto_delete=True)
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.queue_bind(queue=q, exchange=ex, routing_key=binding)
        C.eq(f"topic: binding {binding!r} {'matches' if want else 'does not match'} key {key!r}",
             routed(ch, ex, key), want)
        ch.queue_delete(q)
        ch.exchange_delete(ex)
    # a queue matched by several bindings gets one copy
    ex = name("topic")
    ch.exchange_declare(exchange=ex, exchange_type="topic", auto_delete=True)
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    for b in ("#", "a.*", "*.b", "a.b"):
        ch.queue_bind(queue=q, exchange=ex, routing_key=b)
    ch.basic_publish(ex, "a.b", b"once", mandatory=True)
    C.eq("topic: a queue matched by 4 bindings gets one copy", len(drain(ch, q)), 1)
    ch.exchange_delete(ex)
    conn.close()


HEADER_CASES = [
    ({"x-match": "all", "a": 1, "b": "2"}, {"a": 1, "b": "2", "c": 3}, True),
    ({"x-match": "all", "a": 1, "b": "2"}, {"a": 1}, False),
    ({"a": 1, "b": "2"}, {"a": 1}, False),  # x-match defaults to all
    ({"a": 1, "b": "2"}, {"a": 1, "b": "2"}, True),
    ({"x-match": "any", "a": 1, "b": "2"}, {"a": 1}, True),
    ({"x-match": "any", "a": 1, "b": "2"}, {"c": 1}, False),
    ({"x-match": "any", "a": 1}, {"a": 2}, False),
    ({"a": 1}, {"a": "1"}, False),  # values compare with their types
    ({"x-match": "all", "x-foo": "y", "a": 1}, {"a": 1}, True),  # x- keys ignored
    ({"x-match": "any", "x-foo": "y"}, {"x-foo": "y"}, False),
    ({"x-match": "all-with-x", "x-foo": "y", "a": 1}, {"a": 1}, False),
    ({"x-match": "all-with-x", "x-foo": "y", "a": 1}, {"a": 1, "x-foo": "y"}, True),
    ({"x-match": "any-with-x", "x-foo": "y"}, {"x-foo": "y"}, True),
    ({"x-match": "all"}, {}, True),  # no keys to match: all -> true
    ({"x-match": "all"}, None, True),
    ({"x-match": "any"}, {"a": 1}, False),  # no keys to match: any -> false
]


def headers_exchange():
    conn = connect(URL)
    ch = conn.channel()
    ch.confirm_delivery()
    for args, headers, want in HEADER_CASES:
        ex = name("hdr")
        ch.exchange_declare(exchange=ex, exchange_type="headers", auto_delete=True)
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.queue_bind(queue=q, exchange=ex, routing_key="", arguments=args)
        C.eq(f"headers: binding {args} {'matches' if want else 'does not match'} {headers}",
             routed(ch, ex, "ignored", headers), want)
        ch.queue_delete(q)
        ch.exchange_delete(ex)
    conn.close()


def exchange_features():
    conn = connect(URL)
    ch = conn.channel()
    ch.confirm_delivery()
    src, dst = name("e2e-src"), name("e2e-dst")
    ch.exchange_declare(exchange=src, exchange_type="direct")
    ch.exchange_declare(exchange=dst, exchange_type="fanout")
    ch.exchange_bind(destination=dst, source=src, routing_key="k")
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.queue_bind(queue=q, exchange=dst)
    C.check("exchange-to-exchange binding routes a matching key", routed(ch, src, "k"))
    C.check("exchange-to-exchange binding ignores other keys", not routed(ch, src, "other"))
    C.eq("e2e: the queue holds exactly the routed message", len(drain(ch, q)), 1)
    ch.exchange_unbind(destination=dst, source=src, routing_key="k")
    C.check("exchange.unbind removes the route", not routed(ch, src, "k"))
    ch.exchange_delete(src)
    ch.exchange_delete(dst)

    # auto-delete exchange: kept until it has had a binding, deleted when the last goes
    ad = name("autodel-ex")
    ch.exchange_declare(exchange=ad, exchange_type="direct", auto_delete=True)
    ch.exchange_declare(exchange=ad, exchange_type="direct", auto_delete=True, passive=True)
    C.check("auto-delete exchange without bindings is not deleted", True)
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.queue_bind(queue=q, exchange=ad, routing_key="a")
    ch.queue_bind(queue=q, exchange=ad, routing_key="b")
    ch.queue_unbind(queue=q, exchange=ad, routing_key="a")
    ch.exchange_declare(exchange=ad, exchange_type="direct", auto_delete=True, passive=True)
    C.check("auto-delete exchange survives while a binding remains", True)
    ch.queue_unbind(queue=q, exchange=ad, routing_key="b")
    try:
        ch.exchange_declare(exchange=ad, exchange_type="direct", passive=True)
        C.check("auto-delete exchange deleted when its last binding is removed", False)
    except ChannelClosedByBroker as e:
        C.eq("auto-delete exchange deleted when its last binding is removed",
             (e.reply_code, e.reply_text), (404, f"NOT_FOUND - no exchange '{ad}' in vhost '/'"))
        ch = conn.channel()
        ch.confirm_delivery()

    ae, main = name("ae"), name("main")
    ch.exchange_declare(exchange=ae, exchange_type="fanout", auto_delete=True)
    ch.exchange_declare(exchange=main, exchange_type="direct", auto_delete=True,
                        arguments={"alternate-exchange": ae})
    qa = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.queue_bind(queue=qa, exchange=ae)
    C.check("alternate-exchange: unroutable mandatory publish is routed there (no return)",
            routed(ch, main, "nobody"))
    got = get_one(ch, qa, auto_ack=True)
    C.check("alternate-exchange: the queue bound to it gets the message",
            got is not None and got[0].exchange == main and got[0].routing_key == "nobody",
            repr(got and got[0]))
    ch.exchange_delete(main)
    ch.exchange_delete(ae)
    conn.close()


# --------------------------------------------------------------------- acks / ordering
def publish_confirmed(ch, q, bodies, **props):
    for b in bodies:
        ch.basic_publish("", q, b, pika.BasicProperties(**props) if props else None)


def get_and_count():
    conn = connect(URL)
    ch = conn.channel()
    ch.confirm_delivery()
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    publish_confirmed(ch, q, [b"a", b"b", b"c"])
    counts = []
    for _ in range(3):
        m, p, b = ch.basic_get(q, auto_ack=True)
        counts.append((b, m.message_count, m.redelivered))
    C.eq("basic.get-ok message_count counts the messages left",
         counts, [(b"a", 2, False), (b"b", 1, False), (b"c", 0, False)])
    m, p, b = ch.basic_get(q, auto_ack=True)
    C.check("basic.get on an empty queue -> get-empty", m is None)
    conn.close()


def nack_requeue_order():
    conn = connect(URL)
    ch = conn.channel()
    ch.confirm_delivery()
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    publish_confirmed(ch, q, [b"m1", b"m2", b"m3", b"m4"])
    got = [get_one(ch, q) for _ in range(3)]
    ch.basic_nack(got[2][0].delivery_tag, requeue=True)  # m3 first...
    ch.basic_nack(got[0][0].delivery_tag, requeue=True)  # ...then m1
    ch.basic_ack(got[1][0].delivery_tag)
    after = [(b, m.redelivered) for m, p, b in (get_one(ch, q, auto_ack=True) for _ in range(3))]
    C.eq("nack requeue=true: redelivered=true, back at the original positions",
         after, [(b"m1", True), (b"m3", True), (b"m4", False)])

    # basic.reject requeue=false drops it
    publish_confirmed(ch, q, [b"r1"])
    m, _, _ = get_one(ch, q)
    ch.basic_reject(m.delivery_tag, requeue=False)
    C.check("basic.reject requeue=false drops the message", get_one(ch, q, timeout=0.2) is None)

    # basic.recover requeue=true
    publish_confirmed(ch, q, [b"x1", b"x2", b"x3"])
    get_one(ch, q)
    get_one(ch, q)
    ch.basic_recover(requeue=True)
    after = [(b, m.redelivered) for m, p, b in (get_one(ch, q, auto_ack=True) for _ in range(3))]
    C.eq("basic.recover requeue=true requeues the unacked messages in order",
         after, [(b"x1", True), (b"x2", True), (b"x3", False)])
    conn.close()


def close_requeues_in_order():
    conn = connect(URL)
    ch = conn.channel()
    ch.confirm_delivery()
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    publish_confirmed(ch, q, [b"m1", b"m2", b"m3", b"m4"])
    ch2 = conn.channel()
    for _ in range(3):
        get_one(ch2, q)  # unacked on ch2
    noack = conn.channel()
    publish_confirmed(ch, q, [b"m5"])
    # m4 and m5 remain; take m4 with no-ack on a third channel: it is never requeued
    m, _, b = get_one(noack, q, auto_ack=True)
    C.eq("no-ack get takes the next ready message", b, b"m4")
    noack.close()
    ch2.close()
    # The requeue travels from ch2's side of the broker: poll (bounded) for the 4 messages.
    after = []
    for _ in range(4):
        got = get_one(ch, q, auto_ack=True)
        if got is None:
            break
        after.append((got[2], got[0].redelivered))
    after += [(b, m.redelivered) for m, p, b in drain(ch, q)]
    C.eq("channel close requeues its unacked messages in original order, redelivered=true",
         after, [(b"m1", True), (b"m2", True), (b"m3", True), (b"m5", False)])
    conn.close()


def cancel_notification():
    conn = connect(URL)
    ch = conn.channel()
    q = name("cancelme")
    ch.queue_declare(queue=q)
    cancels = []
    ch.add_on_cancel_callback(lambda frame: cancels.append(frame.method.consumer_tag))
    tag = ch.basic_consume(queue=q, on_message_callback=lambda *a: None)
    other = connect(URL)
    other.channel().queue_delete(q)
    C.check("consumer cancel notification (basic.cancel) when the queue is deleted",
            pump(conn, lambda: cancels == [tag]), str(cancels))
    C.check("  ...the channel stays open", ch.is_open)
    close_quietly(conn, other)


def qos_semantics():
    conn = connect(URL)
    pub = conn.channel()
    pub.confirm_delivery()

    def fresh_queues():
        """Two new queues with 3 messages each (fresh ones: a closed channel's requeues
        travel asynchronously and must not race the next sub-test)."""
        q1 = pub.queue_declare(queue="", exclusive=True).method.queue
        q2 = pub.queue_declare(queue="", exclusive=True).method.queue
        publish_confirmed(pub, q1, [b"a1", b"a2", b"a3"])
        publish_confirmed(pub, q2, [b"b1", b"b2", b"b3"])
        return q1, q2

    q1, q2 = fresh_queues()

    ch = conn.channel()
    ch.basic_qos(prefetch_count=2, global_qos=True)
    got = []
    for q in (q1, q2):
        ch.basic_consume(queue=q, on_message_callback=lambda c, m, p, b: got.append(m))
    C.check("qos global=true: 2 deliveries arrive", pump(conn, lambda: len(got) >= 2))
    # A negative check needs a quiet window: nothing more may arrive while 2 are unacked.
    pump(conn, lambda: False, timeout=0.3)
    C.eq("qos global=true prefetch 2 is shared by both consumers (2 in flight in total)",
         len(got), 2)
    ch.basic_ack(got[0].delivery_tag)
    C.check("  ...one ack lets exactly one more through", pump(conn, lambda: len(got) >= 3))
    pump(conn, lambda: False, timeout=0.3)
    C.eq("  ...still 2 in flight", len(got), 3)
    ch.close()  # requeues everything unacked

    q1, q2 = fresh_queues()
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1)  # global=false: per consumer created afterwards
    got = {q1: [], q2: []}
    for q in (q1, q2):
        ch.basic_consume(queue=q, on_message_callback=lambda c, m, p, b, q=q: got[q].append(m))
    C.check("qos global=false prefetch 1: each consumer gets one",
            pump(conn, lambda: len(got[q1]) >= 1 and len(got[q2]) >= 1))
    pump(conn, lambda: False, timeout=0.3)
    C.eq("  ...and only one each", (len(got[q1]), len(got[q2])), (1, 1))
    ch.close()

    q1, q2 = fresh_queues()
    ch = conn.channel()
    early = []
    ch.basic_consume(queue=q1, on_message_callback=lambda c, m, p, b: early.append(m))
    ch.basic_qos(prefetch_count=1)
    late = []
    ch.basic_consume(queue=q2, on_message_callback=lambda c, m, p, b: late.append(m))
    C.check("qos global=false applies only to consumers created after it",
            pump(conn, lambda: len(early) >= 3 and len(late) >= 1), f"{len(early)} {len(late)}")
    pump(conn, lambda: False, timeout=0.3)
    C.eq("  ...the earlier consumer is unlimited, the later one limited to 1",
         (len(early), len(late)), (3, 1))
    conn.close()


# --------------------------------------------------------------------- queue arguments
def queue_arguments():
    conn = connect(URL)
    ch = conn.channel()
    ch.confirm_delivery()

    q = ch.queue_declare(queue="", exclusive=True, arguments={"x-max-length": 2}).method.queue
    publish_confirmed(ch, q, [b"1", b"2", b"3"])
    C.eq("x-max-length 2 drops from the head", [b for _, _, b in drain(ch, q)], [b"2", b"3"])

    q = ch.queue_declare(queue="", exclusive=True, arguments={"x-max-priority": 10}).method.queue
    for body, prio in ((b"p1", 1), (b"p9", 9), (b"p5", 5), (b"p0", None)):
        ch.basic_publish("", q, body, pika.BasicProperties(priority=prio))
    C.eq("x-max-priority delivers higher priorities first",
         [b for _, _, b in drain(ch, q)], [b"p9", b"p5", b"p1", b"p0"])

    dlq = ch.queue_declare(queue="", exclusive=True).method.queue
    src = ch.queue_declare(queue="", exclusive=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}).method.queue
    publish_confirmed(ch, src, [b"dead"])
    m, _, _ = get_one(ch, src)
    ch.basic_reject(m.delivery_tag, requeue=False)
    got = get_one(ch, dlq, auto_ack=True)
    C.check("x-dead-letter-exchange: a rejected message is dead-lettered", got is not None)
    if got:
        h = got[1].headers or {}
        death = (h.get("x-death") or [{}])[0]
        C.eq("dead-lettered message carries x-death (reason, queue, count, exchange, routing-keys)",
             (death.get("reason"), death.get("queue"), death.get("count"), death.get("exchange"),
              death.get("routing-keys")),
             ("rejected", src, 1, "", [src]))
        C.eq("dead-lettered message carries x-first-death-*",
             (h.get("x-first-death-reason"), h.get("x-first-death-queue"),
              h.get("x-first-death-exchange")), ("rejected", src, ""))
        C.eq("dead-lettered message is routed with x-dead-letter-routing-key",
             got[0].routing_key, dlq)

    ttl = ch.queue_declare(queue="", exclusive=True, arguments={
        "x-message-ttl": 0, "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dlq}).method.queue
    publish_confirmed(ch, ttl, [b"expire me"])
    got = get_one(ch, dlq, auto_ack=True)
    C.check("x-message-ttl 0 with no consumer: expired and dead-lettered (reason expired)",
            got is not None and got[1].headers["x-death"][0]["reason"] == "expired",
            repr(got and got[1].headers))
    C.check("  ...and gone from the source queue", get_one(ch, ttl, timeout=0.1) is None)

    plain = ch.queue_declare(queue="", exclusive=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}).method.queue
    publish_confirmed(ch, plain, [b"short-lived"], expiration="0")
    got = get_one(ch, dlq, auto_ack=True)
    C.check("per-message expiration '0': expired and dead-lettered",
            got is not None and got[2] == b"short-lived" and
            got[1].headers["x-death"][0]["reason"] == "expired" and got[1].expiration is None,
            repr(got and got[1]))

    exp = name("expires")
    ch.queue_declare(queue=exp, arguments={"x-expires": 200})
    # Poll with mandatory publishes (a passive declare would count as use and reset the
    # expiry timer in RabbitMQ): returned (unroutable) once the queue is gone.
    deadline = time.monotonic() + WAIT
    expired = False
    while not expired and time.monotonic() < deadline:
        expired = not routed(ch, "", exp)
        conn.process_data_events(time_limit=0.05)
    C.check("x-expires: an unused queue is deleted after its expiry", expired)
    conn.close()


for scenario in (errors_not_found, errors_exclusive, errors_inequivalent, errors_reserved_names,
                 errors_acks, errors_connection_level, errors_login, errors_delete_conditions,
                 auto_delete, server_named_and_empty_name, topic_edges, headers_exchange,
                 exchange_features, get_and_count, nack_requeue_order, close_requeues_in_order,
                 cancel_notification, qos_semantics, queue_arguments):
    C.scenario(scenario)
C.finish()
