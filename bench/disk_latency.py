#!/usr/bin/env python3
"""Latency under disk work: the p99 publish-to-deliver latency of a transient queue at a
steady rate (`rmq perf -r`), quiet and then while the broker does disk work for others:
(a) 1,000 durable queues declared across the window, (b) another durable queue streaming
persistent messages past one held unacked message, so its log keeps compacting, beside a
control: the same stream with nothing held (no compaction).

    bench/disk_latency.py                                 # target/release/rmq
    bench/disk_latency.py --rmq OLD/rmq --rmq NEW/rmq     # before/after, one run

Each phase runs `rmq perf -r RATE -z SECONDS` on its own transient queue; the phases'
p50/p99 are printed per binary with the ratio to the quiet p99. Loopback only, every
wait bounded; needs pika (tests/clients/python/requirements.txt).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pika

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(rmq, data_dir):
    p = subprocess.Popen([rmq, "serve", "--port", "0", "--mgmt-port", "0", "--data-dir", data_dir,
                          "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if "amqp://" in line:
            return p, "amqp://guest:guest@" + line.strip().rsplit("amqp://", 1)[1] + "/%2F"
    p.kill()
    sys.exit(f"{rmq} serve did not start")


def perf(rmq, url, args, seconds):
    out = subprocess.run([rmq, "perf", "--url", url, "-o", "json", "-q", "-z", str(seconds)] + args,
                         capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        sys.exit(f"rmq perf failed: {out.stderr}")
    return json.loads(out.stdout)


def measure(rmq, url, rate, seconds):
    r = perf(rmq, url, ["-r", str(rate)], seconds)
    return r["latency_us"], r["received"]


def declares_while(url, stop, counter, total, seconds):
    """Declare `total` durable queues spread evenly over the measurement window."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    n = 0
    started = time.monotonic()
    while not stop.is_set() and n < total:
        ch.queue_declare(f"bench-durable-{n}", durable=True)
        n += 1
        # Pacing a load generator, not synchronising a test.
        ahead = started + n * seconds * 0.9 / total - time.monotonic()
        if ahead > 0:
            stop.wait(ahead)
    counter.append(n)
    for i in range(n):
        ch.queue_delete(f"bench-durable-{i}")
    conn.close()


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def phase(rmq, url, rate, seconds, load=None, ready=lambda: True):
    """Measure while `load(stop_event)` runs in a thread (None: quiet), once `ready()`."""
    stop = threading.Event()
    t = None
    if load:
        t = threading.Thread(target=load, args=(stop,), daemon=True)
        t.start()
        deadline = time.monotonic() + 120
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the load's progress, bounded above
    lat, n = measure(rmq, url, rate, seconds)
    stop.set()
    if t:
        t.join(120)
    return lat, n


def run(rmq, args):
    data = tempfile.mkdtemp(prefix="rmq-disk-latency-")
    broker, url = start(rmq, data)
    try:
        results = []
        lat, n = phase(rmq, url, args.rate, args.seconds)
        results.append(("quiet", lat, n, ""))

        declared = []
        lat, n = phase(rmq, url, args.rate, args.seconds,
                       lambda stop: declares_while(url, stop, declared, args.declares, args.seconds))
        results.append(("durable declares", lat, n, f"{declared[0] if declared else 0} queues declared"))

        # Control: the same persistent stream through a queue with nothing held, so its
        # segments go from the front and nothing is compacted. What (b) adds to this is
        # compaction's own cost; what this adds to quiet is the stream's CPU and fsyncs.
        control = {}

        def plain_stream(stop):
            control["r"] = perf(rmq, url, ["-f", "persistent", "-s", "4096", "-u", "bench-plain",
                                           "-c", "200", "-r", str(args.stream_rate),
                                           "-C", str(args.compact_mb * 256),
                                           "-D", str(args.compact_mb * 256)], 600)

        lat, n = phase(rmq, url, args.rate, args.seconds, plain_stream,
                       lambda: du(data) >= 16 << 20)
        results.append(("stream, no compaction", lat, n, "the same stream, nothing held"))

        # A held message pins the stream queue's oldest segment: what streams past it is
        # compacted out of the segments behind it, over and over.
        held = pika.BlockingConnection(pika.URLParameters(url))
        hch = held.channel()
        hch.queue_declare("bench-stream", durable=True)
        hch.basic_publish("", "bench-stream", b"held",
                          pika.BasicProperties(delivery_mode=2))
        method, _, _ = hch.basic_get("bench-stream", auto_ack=False)
        assert method is not None, "the held message"
        size = 4096
        count = args.compact_mb * 1024 * 1024 // size
        streamed = {}

        def stream(stop):
            streamed["r"] = perf(rmq, url, ["-f", "persistent", "-s", str(size), "-u", "bench-stream",
                                            "-c", "200", "-r", str(args.stream_rate),
                                            "-C", str(count), "-D", str(count)], 600)

        # Measured once compaction has work: two 16 MiB segments sealed behind the held one.
        lat, n = phase(rmq, url, args.rate, args.seconds, stream, lambda: du(data) >= 48 << 20)
        results.append(("compaction", lat, n, f"{count * size >> 20} MiB streamed past a held message "
                                              f"at {args.stream_rate} msg/s, data dir {du(data) >> 20} MiB"))
        held.close()
        return results
    finally:
        broker.terminate()
        try:
            broker.wait(30)
        except subprocess.TimeoutExpired:
            broker.kill()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rmq", action="append", help="rmq binary (repeat to compare)")
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--compact-mb", type=int, default=200)
    ap.add_argument("--declares", type=int, default=1000, help="durable queues declared in phase (a)")
    ap.add_argument("--stream-rate", type=int, default=5000,
                    help="persistent 4 KiB messages per second through the compacting queue (b)")
    args = ap.parse_args()
    binaries = args.rmq or [os.path.join(ROOT, "target", "release", "rmq")]
    for rmq in binaries:
        print(f"== {rmq} ({args.rate} msg/s, {args.seconds} s per phase)")
        results = run(rmq, args)
        quiet_p99 = results[0][1]["p99"]
        print(f"{'phase':<22} {'received':>9} {'p50 us':>9} {'p99 us':>9} {'p99/quiet':>9}  notes")
        for name, lat, n, note in results:
            print(f"{name:<22} {n:>9} {lat['p50']:>9.0f} {lat['p99']:>9.0f} "
                  f"{lat['p99'] / quiet_p99:>9.2f}  {note}")


if __name__ == "__main__":
    main()
