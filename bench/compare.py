#!/usr/bin/env python3
"""Side-by-side benchmark: the same `rmq perf` scenarios against `rmq serve` and RabbitMQ
in one run, median of N runs each, with the ratio rmq/RabbitMQ.

    bench/compare.py                      # both brokers (RabbitMQ at 127.0.0.1:5672 if up)
    bench/compare.py --runs 3 --seconds 10
    bench/compare.py --only transient-1-1,latency-5k

Needs a release build (`cargo build --release`). Loopback only; every run is bounded.
Broker CPU and memory are read from /proc. Prints a Markdown table (for the README).
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RMQ = os.path.join(ROOT, "target", "release", "rmq")
RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"

# name -> (description, perf flags, metric)
SCENARIOS = {
    "transient-1-1": ("transient 16 B, 1→1, ack each", ["-s", "16"], "receive_rate"),
    "1kb-multi-ack": ("1 KB, 1→1, multi-ack every 100, prefetch 500",
                      ["-s", "1024", "-A", "100", "--qos", "500"], "receive_rate"),
    "persistent-confirms": ("persistent 1 KB, confirms (256 outstanding), fsync'd",
                            ["-s", "1024", "-c", "256", "-f", "persistent", "-y", "1",
                             "-A", "100", "--qos", "500"], "send_rate"),
    "fanout-1-4": ("fanout 1→4, 16 B", ["-e", "perf-fanout", "-t", "fanout", "--queues", "4",
                                        "-y", "4", "-A", "100", "--qos", "500"], "receive_rate"),
    "4-4-one-queue": ("4→4 on one queue, 16 B", ["-x", "4", "-y", "4", "-A", "100", "--qos", "500"],
                      "receive_rate"),
    "latency-5k": ("latency at 5k msg/s (p99, µs)", ["-r", "5000", "-s", "16"], "p99"),
}


def proc_cpu(pid):
    """(utime + stime) seconds of a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rabbit_pid():
    out = subprocess.run(["pgrep", "-f", "beam.smp"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def reachable(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class Serve:
    """rmq serve on a free port with its own data directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rmq-bench-")
        self.proc = subprocess.Popen([RMQ, "serve", "--port", "0", "--mgmt-port", "0", "--quiet",
                                      "--data-dir", self.dir],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"amqp://([0-9.]+):(\d+)", line)
        if not m:
            raise SystemExit(f"rmq serve did not start: {line!r}")
        self.url = f"amqp://guest:guest@{m.group(1)}:{m.group(2)}/%2F"
        self.pid = self.proc.pid

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def perf(url, flags, seconds):
    cmd = [RMQ, "perf", "--url", url, "-z", str(seconds), "-o", "json", "-q"] + flags
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 6 + 60)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout)


SYNC_EVENTS = "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync"


def count_syncs(pid):
    """Start counting a process's fsync/fdatasync calls with `perf stat` (kernel
    tracepoints: nothing is slowed down); None when perf is not usable here."""
    if not pid or not shutil.which("perf"):
        return None
    try:
        return subprocess.Popen(["perf", "stat", "-x,", "-e", SYNC_EVENTS, "-p", str(pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except OSError:
        return None


def syncs_counted(proc):
    if proc is None:
        return None
    proc.send_signal(2)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None
    counts = [line.split(",")[0] for line in err.splitlines() if "sys_enter_f" in line]
    return sum(int(c) for c in counts if c.isdigit()) if counts else None


def measure(url, pid, scenario, seconds):
    _, flags, metric = SCENARIOS[scenario]
    cpu0 = proc_cpu(pid) if pid else 0.0
    syncs = count_syncs(pid) if "persistent" in flags else None
    t0 = time.monotonic()
    s = perf(url, flags, seconds)
    wall = time.monotonic() - t0
    cpu = (proc_cpu(pid) - cpu0) if pid else 0.0
    n_syncs = syncs_counted(syncs)
    value = s["latency_us"]["p99"] if metric == "p99" else s[metric]
    return {"value": value, "broker_cpu": cpu / wall if wall else 0.0, "client_cpu_us": s["client_cpu_us_per_message"],
            "lost": s["lost"], "duplicates": s["duplicates"],
            "syncs_per_s": n_syncs / wall if n_syncs is not None and wall else None}


def declare_queues(url, pid, n):
    """Declare n idle queues; (seconds, broker KiB per queue)."""
    before = proc_rss_kb(pid) if pid else 0
    t0 = time.monotonic()
    name = f"bench-idle-{os.getpid()}-{int(time.time())}"
    out = subprocess.run([RMQ, "perf", "--url", url, "-x", "0", "-y", "0", "-u", name, "--queues", str(n),
                          "--queue-args", '{"x-expires": 60000}', "-q"],
                         capture_output=True, text=True, timeout=600)
    took = time.monotonic() - t0
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip()[-400:])
    time.sleep(1)  # let the broker settle before reading its RSS (a measurement, not a test)
    after = proc_rss_kb(pid) if pid else 0
    return took, (after - before) / n


def startup_ms():
    """Time from spawning rmq serve (empty data dir) to an accepted AMQP handshake."""
    d = tempfile.mkdtemp(prefix="rmq-start-")
    t0 = time.monotonic()
    p = subprocess.Popen([RMQ, "serve", "--port", "0", "--mgmt-port", "0", "--quiet", "--data-dir", d],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    m = re.search(r"amqp://([0-9.]+):(\d+)", line)
    with socket.create_connection((m.group(1), int(m.group(2))), timeout=5) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        s.recv(1)
    took = (time.monotonic() - t0) * 1000
    p.terminate()
    p.wait(timeout=10)
    shutil.rmtree(d, ignore_errors=True)
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--only", default="")
    ap.add_argument("--queues", type=int, default=5000)
    args = ap.parse_args()
    if not os.path.exists(RMQ):
        sys.exit("build first: cargo build --release")
    names = [n for n in SCENARIOS if not args.only or n in args.only.split(",")]
    rabbit = reachable("127.0.0.1", 5672)
    rows = []
    for name in names:
        results = {"rmq": [], "rabbitmq": []}
        for _ in range(args.runs):
            serve = Serve()
            try:
                results["rmq"].append(measure(serve.url, serve.pid, name, args.seconds))
            finally:
                serve.stop()
            if rabbit:
                results["rabbitmq"].append(measure(RABBIT_URL, rabbit_pid(), name, args.seconds))
        rows.append((name, results))
        print(f"{name}: done", file=sys.stderr)
    print(f"\nMachine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; median of {args.runs} runs, "
          f"{args.seconds:g} s each\n")
    print("| scenario | rmq serve | RabbitMQ | ratio | broker CPU rmq / RabbitMQ | perf client µs/msg |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        desc, _, metric = SCENARIOS[name]
        med = lambda k, side: statistics.median(x[k] for x in r[side]) if r[side] else float("nan")
        a, b = med("value", "rmq"), med("value", "rabbitmq")
        unit = "µs" if metric == "p99" else "msg/s"
        ratio = (b / a if metric == "p99" else a / b) if r["rabbitmq"] else float("nan")
        # Without confirms a broker may drop what is in flight when a publisher closes
        # (RabbitMQ does); the counts show which broker did.
        lost = {side: sum(x["lost"] + x["duplicates"] for x in r[side]) for side in r}
        note = ", ".join(f"{side} lost/dup {n}" for side, n in lost.items() if n)
        syncs = {side: [x["syncs_per_s"] for x in r[side] if x["syncs_per_s"] is not None] for side in r}
        if any(syncs.values()):
            note = ", ".join(filter(None, [note, "fsync+fdatasync/s " + " / ".join(
                f"{statistics.median(v):,.0f}" if v else "n/a" for v in syncs.values())]))
        print(f"| {desc} | {a:,.0f} {unit} | {b:,.0f} {unit} | {ratio:.1f}× | "
              f"{med('broker_cpu', 'rmq'):.2f} / {med('broker_cpu', 'rabbitmq'):.2f} cores | "
              f"{med('client_cpu_us', 'rmq'):.2f} |" + (f" {note}" if note else ""))
    if not args.only or "queues" in args.only:
        serve = Serve()
        try:
            t_rmq, kb_rmq = declare_queues(serve.url, serve.pid, args.queues)
        finally:
            serve.stop()
        t_rab, kb_rab = declare_queues(RABBIT_URL, rabbit_pid(), args.queues) if rabbit else (float("nan"),) * 2
        print(f"| declare {args.queues} idle queues | {t_rmq:.2f} s, {kb_rmq:.1f} KiB/queue | "
              f"{t_rab:.2f} s, {kb_rab:.1f} KiB/queue | {t_rab / t_rmq:.1f}× faster | | |")
    if not args.only or "startup" in args.only:
        ms = statistics.median(startup_ms() for _ in range(args.runs))
        print(f"| start-up to first accepted connection (empty data dir) | {ms:.1f} ms | ~13 s restart | | | |")


if __name__ == "__main__":
    main()
