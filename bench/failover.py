#!/usr/bin/env python3
"""Failover time of `rmq worker` on a three-node RabbitMQ cluster (.ci/cluster.sh).

Each round: a quorum queue with messages, a worker given all three URLs (node 1 first,
so connected to node 1), node 1 killed (SIGKILL), and the time from the kill to the
worker's first message received after it reconnected. Reports median and max over the
rounds, and how many messages were processed more than once (at-least-once).

    python3 bench/failover.py --rmq target/release/rmq --rounds 10
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import threading
import time

URLS = " ".join(f"amqp://guest:guest@127.0.0.1:{p}/%2F" for p in (5681, 5682, 5683))
QUORUM = '{"x-queue-type":"quorum"}'


def cluster(script, *args):
    subprocess.run(["bash", script, *args], check=True, capture_output=True, timeout=300)


def one_round(rmq, script, n, messages):
    env = dict(os.environ, RMQ_URL=URLS)
    q = f"failover-{os.getpid()}-{n}"
    body = "".join(f"m{i}\n" for i in range(messages)).encode()
    subprocess.run([rmq, "send", q, "--lines", "--durable", "--arguments", QUORUM],
                   input=body, env=env, check=True, capture_output=True, timeout=60)
    with tempfile.NamedTemporaryFile(delete=False) as seen:
        path = seen.name
    worker = subprocess.Popen(
        [rmq, "worker", q, "--durable", "--arguments", QUORUM,
         "--exec", f"sleep 0.05; cat >> {path}; echo >> {path}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    marks = {}

    def read():
        for line in worker.stderr:
            now = time.monotonic()
            lines.append(line.rstrip())
            if "reconnected to" in line:
                marks.setdefault("reconnected", now)
            if "Received" in line and "reconnected" in marks:
                marks.setdefault("consuming", now)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(1 for _ in open(path)) < 5:
        time.sleep(0.02)
    killed = time.monotonic()
    cluster(script, "kill-node", "1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = set(open(path).read().split())
        if len(done) >= messages:
            break
        time.sleep(0.05)
    worker.terminate()
    worker.wait(timeout=10)
    t.join(timeout=5)
    got = open(path).read().split()
    os.unlink(path)
    cluster(script, "start-node", "1")
    subprocess.run([rmq, "delete", "queue", q], env=env, capture_output=True, timeout=30)
    consuming = marks.get("consuming")
    return (consuming - killed if consuming else None,
            len(got) - len(set(got)), len(set(got)) == messages, lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rmq", default="target/release/rmq")
    ap.add_argument("--cluster", default=".ci/cluster.sh")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--messages", type=int, default=60)
    a = ap.parse_args()
    times, dups, transcript = [], 0, None
    for n in range(a.rounds):
        t, d, complete, lines = one_round(a.rmq, a.cluster, n, a.messages)
        print(f"round {n + 1}: consuming again after "
              f"{'-' if t is None else f'{t:.2f} s'}, duplicates {d}, all processed: {complete}",
              flush=True)
        if t is not None:
            times.append(t)
        dups += d
        if transcript is None:
            transcript = [l for l in lines if l.startswith("rmq:")]
    if times:
        print(f"\nnode death -> consuming again: median {statistics.median(times):.2f} s, "
              f"max {max(times):.2f} s over {len(times)} rounds; duplicates {dups}")
    print("\none reconnect, as printed on stderr:")
    for l in transcript or []:
        print("  " + l)


if __name__ == "__main__":
    main()
