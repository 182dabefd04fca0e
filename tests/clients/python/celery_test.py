#!/usr/bin/env python3
"""A real Celery worker against the broker: tasks, retry with countdown, RPC results.

usage: celery_test.py AMQP_URL        (pip install -r requirements-celery.txt)

Starts `celery -A celery_app worker --pool=solo --concurrency=1 -Q <unique queue>` as a
subprocess (same Python, cwd = this directory), sends tasks with .delay() /
.apply_async(), collects the results through the rpc:// backend (a per-client reply
queue) with .get(timeout=20), then stops the worker with SIGTERM (warm shutdown,
bounded) and deletes the queue and exchange it declared.

Prints one line per check and `celery_test.py: N passed, M failed`; exit 0 only if all held.
"""
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))

if len(sys.argv) < 2:
    print("usage: celery_test.py AMQP_URL", file=sys.stderr)
    sys.exit(2)
URL = sys.argv[1]
QUEUE = f"rmq-celery-{uuid.uuid4().hex[:10]}"
os.environ["RMQ_CELERY_BROKER"] = URL
os.environ["RMQ_CELERY_QUEUE"] = QUEUE
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import celery_app  # noqa: E402  (reads the environment set above)

passed, failed = 0, []


def check(what, cond, detail=""):
    global passed
    if cond:
        passed += 1
        print(f"ok   - {what}", flush=True)
    else:
        failed.append(what)
        print(f"FAIL - {what}" + (f": {detail}" if detail else ""), flush=True)
    return cond


def start_worker():
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "celery", "-A", "celery_app", "worker",
           "--pool=solo", "--concurrency=1", "-Q", QUEUE,
           "--hostname", f"rmqtest-{QUEUE}@%h", "--loglevel=INFO"]
    proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    log = []
    ready = threading.Event()

    def reader():
        for line in proc.stdout:
            log.append(line.rstrip("\n"))
            if " ready." in line:
                ready.set()
    threading.Thread(target=reader, daemon=True).start()
    return proc, log, ready


def stop_worker(proc):
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)  # warm shutdown
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=5)


def cleanup():
    try:
        with celery_app.app.connection_for_write() as conn:
            ch = conn.default_channel
            ch.queue_delete(QUEUE)
            ch.exchange_delete(QUEUE)
    except Exception as e:  # noqa: BLE001
        print(f"# cleanup: {type(e).__name__}: {e}", file=sys.stderr)


def step(what, fn):
    """Run one check's body; an exception (e.g. a result timeout) fails only that check."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        check(what, False, f"{type(e).__name__}: {e}")


def t_add():
    r = celery_app.add.delay(2, 3)
    check("add.delay(2, 3).get() == 5", r.get(timeout=20) == 5)
    check("...state SUCCESS", r.state == "SUCCESS", r.state)


def t_many():
    rs = [celery_app.add.delay(i, i) for i in range(10)]
    got = [x.get(timeout=20) for x in rs]
    check("10 queued add tasks, results come back to the right callers",
          got == [2 * i for i in range(10)], repr(got))


def t_retry():
    t0 = time.monotonic()
    res = celery_app.flaky.delay("v").get(timeout=20)
    took = time.monotonic() - t0
    check("task that fails first and self.retry(countdown=1): succeeds on the retry",
          res == {"value": "v", "retries": 1}, repr(res))
    check("...and the retry waited for its countdown (>= ~1 s)", took >= 0.9, f"{took:.2f}s")


def t_failure():
    r = celery_app.boom.delay("bad input")
    try:
        r.get(timeout=20)
        check("a failing task raises its exception in .get()", False, "no exception")
    except ValueError as e:
        check("a failing task raises its exception in .get()", str(e) == "bad input", repr(e))
    check("...state FAILURE", r.state == "FAILURE", r.state)


def t_countdown():
    t0 = time.monotonic()
    v = celery_app.add.apply_async((20, 22), countdown=1).get(timeout=20)
    took = time.monotonic() - t0
    check("apply_async(countdown=1) runs after the countdown", v == 42 and took >= 0.9,
          f"{v} after {took:.2f}s")


def t_delivery():
    info = celery_app.echo_delivery.delay().get(timeout=20)
    check("the task message went through the queue's direct exchange",
          info.get("routing_key") == QUEUE and info.get("exchange") in (QUEUE, ""), repr(info))


def t_ping():
    replies = celery_app.app.control.ping(timeout=2.0,
                                          destination=[f"rmqtest-{QUEUE}@{os.uname()[1]}"])
    check("remote control ping (broadcast fanout + reply queue) answered by the worker",
          len(replies) == 1, repr(replies))


class Watchdog(Exception):
    pass


def _watchdog(signum, frame):
    raise Watchdog("celery_test.py took longer than 150 s")


def main():
    signal.signal(signal.SIGALRM, _watchdog)
    signal.alarm(150)
    proc, log, ready = start_worker()
    try:
        check("the worker starts and reports ready (within 20 s)", ready.wait(20),
              "\n".join(log[-30:]))
        step("add.delay(2, 3)", t_add)
        step("10 add tasks", t_many)
        step("retry with countdown", t_retry)
        step("failing task", t_failure)
        step("apply_async countdown", t_countdown)
        step("delivery info", t_delivery)
        step("remote control ping", t_ping)
    finally:
        signal.alarm(30)
        rc = stop_worker(proc)
        check("the worker stops on SIGTERM within 10 s (warm shutdown, exit status 0)", rc == 0,
              repr(rc))
        if failed:
            print("# worker log (tail):\n# " + "\n# ".join(log[-40:]), file=sys.stderr)
        cleanup()
        signal.alarm(0)


try:
    main()
except Exception as e:  # noqa: BLE001
    failed.append("raised")
    print(f"FAIL - raised {type(e).__name__}: {e}", flush=True)
print(f"celery_test.py: {passed} passed, {len(failed)} failed", flush=True)
sys.exit(1 if failed or passed == 0 else 0)
