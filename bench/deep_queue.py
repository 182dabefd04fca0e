#!/usr/bin/env python3
"""Durability at depth: publish N persistent 1 KB messages with confirms into a durable
queue of `rmq serve --data-dir`, report the publish rate, fdatasyncs per second and the
broker's RSS; then restart it and report the recovery time (to the first accepted
connection and until the queue reports all N) and RSS after recovery. Last, stream
persistent messages through a durable queue for `--pinned-seconds` while one message
stays unacked, and report the most disk the data directory used (compaction keeps it
near the queue's depth instead of everything written since that message).

    bench/deep_queue.py                  # N = 1,000,000
    bench/deep_queue.py --messages 200000 --rabbitmq   # also RabbitMQ (durable queue)

Needs `cargo build --release`. Loopback only; every step is bounded.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RMQ = os.path.join(ROOT, "target", "release", "rmq")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start(data_dir):
    t0 = time.monotonic()
    p = subprocess.Popen([RMQ, "serve", "--port", "0", "--mgmt-port", "0", "--data-dir", data_dir],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    amqp = mgmt = None
    while not (amqp and mgmt):
        line = p.stdout.readline()
        if not line:
            raise SystemExit("rmq serve did not start")
        amqp = amqp or re.search(r"amqp://([0-9.]+:\d+)", line)
        mgmt = mgmt or re.search(r"(http://[0-9.]+:\d+)", line)
    host, port = amqp.group(1).split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        s.recv(1)
    return p, f"amqp://guest:guest@{amqp.group(1)}/%2F", mgmt.group(1), time.monotonic() - t0


def metric(api, name):
    body = urllib.request.urlopen(f"{api}/metrics", timeout=10).read().decode()
    m = re.search(rf"^{name} (\d+)", body, re.M)
    return int(m.group(1)) if m else 0


def queue_depth(api, queue):
    req = urllib.request.Request(f"{api}/api/queues/%2F/{queue}")
    req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
    return json.load(urllib.request.urlopen(req, timeout=30))["messages"]


def publish(url, queue, n):
    out = subprocess.run([RMQ, "perf", "--url", url, "-x", "1", "-y", "0", "-s", "1024", "-c", "256",
                          "-f", "persistent", "-u", queue, "-C", str(n), "-o", "json", "-q"],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def disk_mb(d):
    total = 0
    for r, _, fs in os.walk(d):
        for f in fs:
            try:
                total += os.path.getsize(os.path.join(r, f))
            except FileNotFoundError:
                pass  # a segment deleted while walking
    return total / 2**20


def pinned(seconds):
    import threading
    import pika
    d = tempfile.mkdtemp(prefix="rmq-pinned-")
    try:
        p, url, _, _ = start(d)
        params = pika.URLParameters(url + "?heartbeat=0")
        holder = pika.BlockingConnection(params)
        ch = holder.channel()
        ch.queue_declare("pinned", durable=True)
        ch.basic_publish("", "pinned", b"held", pika.BasicProperties(delivery_mode=2))
        ch.basic_qos(prefetch_count=1)
        method, _, body = next(ch.consume("pinned", inactivity_timeout=30))
        assert body == b"held", "the holder got the first message"
        most, done = [0.0], threading.Event()

        def sample():
            while not done.wait(0.1):
                most[0] = max(most[0], disk_mb(d))
        t = threading.Thread(target=sample)
        t.start()
        out = subprocess.run([RMQ, "perf", "--url", url, "-x", "1", "-y", "1", "-s", "1024", "-c", "256",
                              "-f", "persistent", "-u", "pinned", "-z", str(seconds), "-A", "100",
                              "--qos", "500", "-o", "json", "-q"],
                             capture_output=True, text=True, timeout=seconds + 120)
        done.set()
        t.join()
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        s = json.loads(out.stdout)
        written = s["send_rate"] * s["seconds"] * 1024 / 2**20
        print(f"rmq serve: {s['send_rate'] * s['seconds']:,.0f} persistent 1 KB messages ({written:,.0f} MB) "
              f"through a queue with one message held unacked: {s['receive_rate']:,.0f} msg/s, "
              f"data directory at most {most[0]:,.0f} MB, {disk_mb(d):,.0f} MB at the end")
        holder.close()
        p.terminate()
        p.wait(timeout=30)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--rabbitmq", action="store_true", help="also publish into RabbitMQ at 127.0.0.1:5672")
    ap.add_argument("--pinned-seconds", type=int, default=20, help="0 skips the held-message run")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="rmq-deep-")
    try:
        p, url, api, _ = start(d)
        s = publish(url, "deep", args.messages)
        syncs = metric(api, "rmq_disk_fdatasyncs_total")
        print(f"rmq serve: {args.messages} persistent 1 KB messages with confirms: "
              f"{s['send_rate']:,.0f} msg/s, {syncs / s['seconds']:,.0f} fdatasync/s "
              f"({args.messages / max(syncs, 1):,.1f} messages per sync), RSS {rss_mb(p.pid):,.0f} MB, "
              f"disk {sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs) / 2**20:,.0f} MB")
        p.terminate()
        p.wait(timeout=30)
        p, url, api, accept = start(d)
        t0 = time.monotonic()
        while queue_depth(api, "deep") < args.messages and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        print(f"rmq serve: restart with {args.messages} messages: accepting connections after "
              f"{accept * 1000:,.0f} ms, queue depth {queue_depth(api, 'deep'):,}, RSS {rss_mb(p.pid):,.0f} MB")
        p.terminate()
        p.wait(timeout=30)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if args.rabbitmq:
        q = f"deep-{os.getpid()}"
        s = publish("amqp://guest:guest@127.0.0.1:5672/%2F", q, args.messages)
        pid = int(subprocess.run(["pgrep", "-f", "beam.smp"], capture_output=True, text=True).stdout.split()[0])
        print(f"RabbitMQ: {args.messages} persistent 1 KB messages with confirms: {s['send_rate']:,.0f} msg/s, "
              f"RSS {rss_mb(pid):,.0f} MB")
        subprocess.run([RMQ, "delete", "queue", q, "--url", "amqp://guest:guest@127.0.0.1:5672/%2F"],
                       capture_output=True, timeout=120)
    if args.pinned_seconds:
        pinned(args.pinned_seconds)


if __name__ == "__main__":
    sys.exit(main())
