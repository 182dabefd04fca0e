#!/usr/bin/env python3
"""The six official RabbitMQ tutorials (Python/pika), plus publisher confirms.

usage: tutorials.py AMQP_URL     exit 0 only if every check held.
Declarations and flags follow the official tutorial programs; names get a
random suffix so repeated runs against the same broker never collide.
"""
import time
import uuid

import pika

from common import WAIT, Checks, close_quietly, connect, pump, suffix, url_from_argv

URL = url_from_argv()
C = Checks("tutorials.py")
SFX = suffix()
PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


def t1_hello_world():
    q = f"hello-{SFX}"
    send = connect(URL)
    sch = send.channel()
    sch.queue_declare(queue=q)
    sch.basic_publish(exchange="", routing_key=q, body=b"Hello World!")
    send.close()

    recv = connect(URL)
    rch = recv.channel()
    rch.queue_declare(queue=q)
    got = []
    rch.basic_consume(queue=q, auto_ack=True,
                      on_message_callback=lambda ch, m, p, b: got.append(b))
    C.check("T1 hello world: consumer receives the message", pump(recv, lambda: got),
            "nothing within the wait")
    C.eq("T1 body", got[:1], [b"Hello World!"])
    rch.queue_delete(q)
    recv.close()


def t2_work_queues():
    q = f"task_queue-{SFX}"
    prod = connect(URL)
    pch = prod.channel()
    pch.queue_declare(queue=q, durable=True)

    def publish(body):
        pch.basic_publish(exchange="", routing_key=q, body=body, properties=PERSISTENT)

    def worker():
        conn = connect(URL)
        ch = conn.channel()
        ch.queue_declare(queue=q, durable=True)
        ch.basic_qos(prefetch_count=1)
        return conn, ch

    a_conn, a_ch = worker()
    a_got = []  # worker A never acks: it is "busy"
    a_ch.basic_consume(queue=q, on_message_callback=lambda ch, m, p, b: a_got.append((b, m)))
    publish(b"task 1")
    C.check("T2 worker A receives task 1", pump([a_conn, prod], lambda: len(a_got) == 1))
    C.eq("T2 task 1 first delivery is not redelivered",
         [m.redelivered for _, m in a_got], [False])

    b_conn, b_ch = worker()
    b_got = []

    def b_cb(ch, m, p, b):
        b_got.append((b, m.redelivered))
        ch.basic_ack(delivery_tag=m.delivery_tag)  # the tutorial's worker acks after "work"

    b_ch.basic_consume(queue=q, on_message_callback=b_cb)
    for i in (2, 3, 4):
        publish(f"task {i}".encode())
    conns = [a_conn, b_conn, prod]
    C.check("T2 fair dispatch: idle worker B gets tasks 2-4",
            pump(conns, lambda: len(b_got) == 3), f"B got {b_got}")
    C.eq("T2 fair dispatch: busy worker B order", [b for b, _ in b_got],
         [b"task 2", b"task 3", b"task 4"])
    # A still holds task 1 unacked: with prefetch 1 it must not have been given more.
    C.eq("T2 fair dispatch: busy worker A (prefetch 1, unacked) gets nothing more",
         [b for b, _ in a_got], [b"task 1"])

    # Worker A dies holding task 1: it is redelivered to B with redelivered=true.
    a_conn.close()
    C.check("T2 dead worker's message redelivered to the other worker",
            pump([b_conn, prod], lambda: len(b_got) == 4), f"B got {b_got}")
    C.eq("T2 redelivered message and flag", b_got[3:], [(b"task 1", True)])

    # Messages are persistent and the queue durable, as the tutorial declares.
    ok = pch.queue_declare(queue=q, durable=True, passive=True)
    C.eq("T2 queue empty after all acks", ok.method.message_count, 0)
    pch.queue_delete(q)
    close_quietly(b_conn, prod)


def t2_quorum_variant():
    """Newer tutorial versions declare task_queue as a quorum queue."""
    q = f"task_queue_qq-{SFX}"
    conn = connect(URL)
    ch = conn.channel()
    ch.queue_declare(queue=q, durable=True, arguments={"x-queue-type": "quorum"})
    ch.confirm_delivery()
    ch.basic_publish(exchange="", routing_key=q, body=b"qq task", properties=PERSISTENT)
    ch.basic_qos(prefetch_count=1)
    got = []
    ch.basic_consume(queue=q, on_message_callback=lambda c, m, p, b: (
        got.append(b), c.basic_ack(delivery_tag=m.delivery_tag)))
    C.check("T2 quorum queue: persistent task consumed", pump(conn, lambda: got))
    C.eq("T2 quorum queue body", got, [b"qq task"])
    ch.queue_delete(q)
    conn.close()


def t3_publish_subscribe():
    ex = f"logs-{SFX}"
    subs = []
    for _ in range(2):
        conn = connect(URL)
        ch = conn.channel()
        ch.exchange_declare(exchange=ex, exchange_type="fanout")
        res = ch.queue_declare(queue="", exclusive=True)
        qname = res.method.queue
        C.check(f"T3 server-named queue {qname!r} starts with amq.gen-",
                qname.startswith("amq.gen-"))
        ch.queue_bind(exchange=ex, queue=qname)
        got = []
        ch.basic_consume(queue=qname, auto_ack=True,
                         on_message_callback=lambda c, m, p, b, got=got: got.append(b))
        subs.append((conn, ch, qname, got))
    C.check("T3 the two exclusive queues differ", subs[0][2] != subs[1][2])

    pub = connect(URL)
    pch = pub.channel()
    pch.exchange_declare(exchange=ex, exchange_type="fanout")
    msgs = [f"info: log {i}".encode() for i in range(5)]
    for m in msgs:
        pch.basic_publish(exchange=ex, routing_key="", body=m)
    conns = [s[0] for s in subs] + [pub]
    C.check("T3 both subscribers get every message",
            pump(conns, lambda: all(len(s[3]) >= len(msgs) for s in subs)))
    for i, s in enumerate(subs):
        C.eq(f"T3 subscriber {i + 1} messages in order", s[3], msgs)

    # exclusive queues go away with their connection
    for s in subs:
        s[0].close()
    for s in subs:
        # the deletion may trail the close-ok: poll with passive declares, bounded
        deadline = time.monotonic() + WAIT
        code = None
        while code is None and time.monotonic() < deadline:
            probe = pub.channel()
            try:
                probe.queue_declare(queue=s[2], passive=True)
                probe.close()
                pub.process_data_events(time_limit=0.02)
            except pika.exceptions.ChannelClosedByBroker as e:
                code = e.reply_code
        C.eq(f"T3 exclusive queue {s[2]} deleted with its connection (passive -> 404)", code, 404)
    pch.exchange_delete(ex)
    pub.close()


def run_routing(label, ex, ex_type, bindings, sends, expect):
    """Declare ex, one exclusive queue per binding set, publish `sends`, compare.

    A final marker bound to every queue proves delivery is complete (per-queue order).
    """
    marker_key = "end-marker"
    conn = connect(URL)
    ch = conn.channel()
    ch.exchange_declare(exchange=ex, exchange_type=ex_type)
    queues = {}
    got = {}
    for qlabel, keys in bindings.items():
        qname = ch.queue_declare(queue="", exclusive=True).method.queue
        for key in keys:
            ch.queue_bind(exchange=ex, queue=qname, routing_key=key)
        ch.queue_bind(exchange=ex, queue=qname, routing_key=marker_key)
        queues[qlabel] = qname
        got[qlabel] = []
        ch.basic_consume(queue=qname, auto_ack=True,
                         on_message_callback=lambda c, m, p, b, ql=qlabel: got[ql].append(
                             (m.routing_key, b)))
    pub = connect(URL)
    pch = pub.channel()
    for key in sends:
        pch.basic_publish(exchange=ex, routing_key=key, body=f"msg {key}".encode())
    pch.basic_publish(exchange=ex, routing_key=marker_key, body=b"end")
    done = pump([conn, pub], lambda: all(
        g and g[-1][0] == marker_key for g in got.values()))
    C.check(f"{label} all queues received the end marker", done, str(got))
    for qlabel in bindings:
        keys = [k for k, _ in got[qlabel] if k != marker_key]
        C.eq(f"{label} {qlabel} gets exactly {expect[qlabel]}", keys, expect[qlabel])
    ch.exchange_delete(ex)
    close_quietly(conn, pub)


def t4_routing():
    sends = ["info", "warning", "error", "debug", "error"]
    run_routing("T4 routing", f"direct_logs-{SFX}", "direct",
                {"Q1(error)": ["error"], "Q2(info,warning,error)": ["info", "warning", "error"]},
                sends,
                {"Q1(error)": ["error", "error"],
                 "Q2(info,warning,error)": ["info", "warning", "error", "error"]})


def t5_topics():
    sends = ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox",
             "lazy.brown.fox", "lazy.pink.rabbit", "quick.brown.fox",
             "quick.orange.male.rabbit", "lazy.orange.male.rabbit"]
    run_routing("T5 topics", f"topic_logs-{SFX}", "topic",
                {"Q1": ["*.orange.*"], "Q2": ["*.*.rabbit", "lazy.#"]},
                sends,
                {"Q1": ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"],
                 "Q2": ["quick.orange.rabbit", "lazy.orange.elephant", "lazy.brown.fox",
                        "lazy.pink.rabbit", "lazy.orange.male.rabbit"]})


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def rpc_server(qname):
    """The tutorial's rpc_server: prefetch 1, reply to reply_to with correlation_id, ack."""
    conn = connect(URL)
    ch = conn.channel()
    ch.queue_declare(queue=qname)
    ch.basic_qos(prefetch_count=1)
    seen_reply_to = []

    def on_request(c, method, props, body):
        n = int(body)
        seen_reply_to.append(props.reply_to)
        c.basic_publish(exchange="", routing_key=props.reply_to,
                        properties=pika.BasicProperties(correlation_id=props.correlation_id),
                        body=str(fib(n)).encode())
        c.basic_ack(delivery_tag=method.delivery_tag)

    ch.basic_consume(queue=qname, on_message_callback=on_request)
    return conn, ch, seen_reply_to


def t6_rpc():
    qname = f"rpc_queue-{SFX}"
    srv, srv_ch, _ = rpc_server(qname)

    cli = connect(URL)
    cch = cli.channel()
    callback_queue = cch.queue_declare(queue="", exclusive=True).method.queue
    responses = {}
    cch.basic_consume(queue=callback_queue, auto_ack=True,
                      on_message_callback=lambda c, m, p, b: responses.__setitem__(
                          p.correlation_id, b))
    calls = {}
    for n in (0, 1, 2, 10, 15, 20, 7):
        corr = str(uuid.uuid4())
        calls[corr] = n
        cch.basic_publish(exchange="", routing_key=qname,
                          properties=pika.BasicProperties(reply_to=callback_queue,
                                                          correlation_id=corr),
                          body=str(n).encode())
    ok = pump([cli, srv], lambda: len(responses) >= len(calls), timeout=2 * WAIT)
    C.check(f"T6 RPC: {len(calls)} concurrent calls all answered", ok,
            f"{len(responses)} answers")
    C.eq("T6 RPC: every answer matches its correlation_id",
         {c: responses.get(c) for c in calls}, {c: str(fib(n)).encode() for c, n in calls.items()})
    srv_ch.queue_delete(qname)
    close_quietly(cli, srv)


def t6_rpc_direct_reply_to():
    qname = f"rpc_queue_drt-{SFX}"
    srv, srv_ch, seen = rpc_server(qname)
    cli = connect(URL)
    cch = cli.channel()
    responses = {}
    cch.basic_consume(queue="amq.rabbitmq.reply-to", auto_ack=True,
                      on_message_callback=lambda c, m, p, b: responses.__setitem__(
                          p.correlation_id, b))
    calls = {}
    for n in (3, 4, 5, 12, 6):
        corr = str(uuid.uuid4())
        calls[corr] = n
        cch.basic_publish(exchange="", routing_key=qname,
                          properties=pika.BasicProperties(reply_to="amq.rabbitmq.reply-to",
                                                          correlation_id=corr),
                          body=str(n).encode())
    ok = pump([cli, srv], lambda: len(responses) >= len(calls), timeout=2 * WAIT)
    C.check("T6 direct reply-to: all calls answered", ok, f"{len(responses)} answers")
    C.eq("T6 direct reply-to: answers match correlation ids",
         {c: responses.get(c) for c in calls}, {c: str(fib(n)).encode() for c, n in calls.items()})
    C.check("T6 direct reply-to: server sees reply_to rewritten to amq.rabbitmq.reply-to.<token>",
            seen and all(r and r.startswith("amq.rabbitmq.reply-to.") for r in seen), str(seen))
    srv_ch.queue_delete(qname)
    close_quietly(cli, srv)


def confirms():
    q = f"confirms-{SFX}"
    conn = connect(URL)
    ch = conn.channel()
    ch.queue_declare(queue=q, durable=True)
    ch.confirm_delivery()
    for i in range(10):
        # raises NackError / UnroutableError on failure
        ch.basic_publish(exchange="", routing_key=q, body=f"c{i}".encode(),
                         properties=PERSISTENT, mandatory=True)
    C.check("confirms: 10 persistent mandatory publishes acked", True)
    ok = ch.queue_declare(queue=q, durable=True, passive=True)
    C.eq("confirms: confirmed messages are in the queue", ok.method.message_count, 10)

    # unroutable, not mandatory: dropped but still confirmed
    ch.basic_publish(exchange="amq.direct", routing_key=f"nowhere-{SFX}", body=b"x")
    C.check("confirms: unroutable non-mandatory publish is confirmed (no error)", True)

    try:
        ch.basic_publish(exchange="amq.direct", routing_key=f"nowhere-{SFX}", body=b"lost",
                         mandatory=True)
        C.check("confirms: mandatory unroutable publish returned", False, "no UnroutableError")
    except pika.exceptions.UnroutableError as e:
        ret = e.messages[0]
        C.eq("confirms: basic.return reply code/text",
             (ret.method.reply_code, ret.method.reply_text), (312, "NO_ROUTE"))
        C.eq("confirms: basic.return exchange/routing key/body",
             (ret.method.exchange, ret.method.routing_key, ret.body),
             ("amq.direct", f"nowhere-{SFX}", b"lost"))
    C.check("confirms: channel still open after the return", ch.is_open)
    ch.queue_delete(q)
    conn.close()


for scenario in (t1_hello_world, t2_work_queues, t2_quorum_variant, t3_publish_subscribe,
                 t4_routing, t5_topics, t6_rpc, t6_rpc_direct_reply_to, confirms):
    C.scenario(scenario)
C.finish()
