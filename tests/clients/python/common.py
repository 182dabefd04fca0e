"""Shared helpers for the pika client scenarios (tests/clients/python/*.py).

Every wait is bounded: helpers poll the connections' I/O (process_data_events
with a small time limit) until a condition holds or a deadline passes; nothing
sleeps to synchronise.
"""
import faulthandler
import os
import signal
import sys
import time
import traceback
import uuid

import pika

WAIT = 5.0  # seconds: the bound on every single wait in the scenarios
SCENARIO_LIMIT = 30  # seconds: a scenario that hangs (e.g. an RPC never answered) fails
RUN_LIMIT = 110  # seconds: the whole program dumps its stacks and exits past this

faulthandler.dump_traceback_later(RUN_LIMIT, exit=True)


class ScenarioTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise ScenarioTimeout(f"scenario did not finish within {SCENARIO_LIMIT} s "
                          "(a broker reply never came?)")


def suffix():
    """A random suffix so repeated runs against one RabbitMQ never collide."""
    return uuid.uuid4().hex[:10]


def params(url, **overrides):
    p = pika.URLParameters(url)
    p.connection_attempts = 1
    p.socket_timeout = WAIT
    p.stack_timeout = 2 * WAIT
    p.blocked_connection_timeout = 2 * WAIT
    for k, v in overrides.items():
        setattr(p, k, v)
    return p


def connect(url, **overrides):
    return pika.BlockingConnection(params(url, **overrides))


def pump(conns, until, timeout=WAIT, what="condition"):
    """Drive the I/O of `conns` until `until()` is true; False after `timeout`."""
    if not isinstance(conns, (list, tuple)):
        conns = [conns]
    deadline = time.monotonic() + timeout
    while True:
        if until():
            return True
        if time.monotonic() >= deadline:
            return False
        for c in conns:
            if c.is_open:
                c.process_data_events(time_limit=0.02 if len(conns) > 1 else 0.05)


def get_one(ch, queue, timeout=WAIT, auto_ack=False):
    """basic.get polled with a deadline: (method, props, body) or None."""
    deadline = time.monotonic() + timeout
    while True:
        m, p, b = ch.basic_get(queue, auto_ack=auto_ack)
        if m is not None:
            return m, p, b
        if time.monotonic() >= deadline:
            return None
        ch.connection.process_data_events(time_limit=0.02)


def drain(ch, queue, auto_ack=True):
    """Everything currently in `queue` (basic.get until get-empty)."""
    out = []
    while True:
        m, p, b = ch.basic_get(queue, auto_ack=auto_ack)
        if m is None:
            return out
        out.append((m, p, b))


def fresh_connection_works(url, checks, after):
    """A fresh pika connection can declare, publish (confirmed) and get: the broker
    survived whatever `after` names."""
    try:
        conn = connect(url)
        ch = conn.channel()
        ch.confirm_delivery()
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.basic_publish("", q, b"ping", mandatory=True)
        ok = get_one(ch, q, auto_ack=True) is not None
        conn.close()
    except Exception as e:  # noqa: BLE001
        ok = False
        after = f"{after} ({type(e).__name__}: {e})"
    checks.check(f"  ...and a fresh pika connection works after: {after}", ok)


def close_quietly(*things):
    for t in things:
        try:
            if t is not None and t.is_open:
                t.close()
        except Exception:
            pass


class Checks:
    """Prints one line per check; remembers failures for the exit status."""

    def __init__(self, name):
        self.name = name
        self.failed = []
        self.passed = 0

    def check(self, what, cond, detail=""):
        if cond:
            self.passed += 1
            print(f"ok   - {what}", flush=True)
        else:
            self.failed.append(what)
            msg = f"FAIL - {what}" + (f": {detail}" if detail else "")
            print(msg, flush=True)
        return cond

    def eq(self, what, got, want):
        return self.check(what, got == want, f"got {got!r}, want {want!r}")

    def scenario(self, fn, *args):
        """Run one scenario; an exception fails it (and the run) but not the others."""
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(SCENARIO_LIMIT)
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - we report everything
            self.failed.append(f"{fn.__name__} raised")
            print(f"FAIL - {fn.__name__} raised {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stderr)
        finally:
            signal.alarm(0)

    def finish(self):
        total = self.passed + len(self.failed)
        print(f"{self.name}: {self.passed} passed, {len(self.failed)} failed", flush=True)
        if self.failed:
            print("failed checks:", file=sys.stderr)
            for f in self.failed:
                print(f"  {f}", file=sys.stderr)
            sys.exit(1)
        if total == 0:
            print("no checks ran", file=sys.stderr)
            sys.exit(1)
        sys.exit(0)


def url_from_argv():
    if len(sys.argv) < 2:
        print(f"usage: {os.path.basename(sys.argv[0])} AMQP_URL", file=sys.stderr)
        sys.exit(2)
    return sys.argv[1]
