#!/usr/bin/env bash
# Flow control under load: 1,000 connections (one channel each; 500 publish with
# confirms, 500 consume at a capped rate), 10,000 queues, publishers outrunning
# consumers for SECONDS, against `rmq serve --in-memory --memory-high-watermark WATERMARK`.
# Asserts that the broker's peak RSS stays under the watermark + MARGIN and that every
# confirmed message is delivered exactly once after the drain; prints the figures.
#
#   bench/load.sh                         # rmq serve, 256MiB watermark, 30 s
#   SECONDS_RUN=60 WATERMARK=512MiB bench/load.sh
#   bench/load.sh --rabbitmq              # also the local RabbitMQ (127.0.0.1:5672), with
#                                         # its watermark set to the same absolute value
# Extra arguments after the options go to the driver (bench/load.rs), e.g. --queues 1000.
set -euo pipefail
cd "$(dirname "$0")/.."
WATERMARK=${WATERMARK:-256MiB}
SECONDS_RUN=${SECONDS_RUN:-30}
# The alarm trips at the first RSS sample past the watermark (every 10 ms near it), and
# each of the 500 publishers may still have a batch in flight (its confirm window of
# 20 x 1 KiB) before its connection stops being read: measured overshoot 5-10%, so 15%.
MARGIN=${MARGIN:-0.15}
rabbit=0
if [ "${1:-}" = "--rabbitmq" ]; then rabbit=1; shift; fi
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet --bin rmq --example load
RMQ=target/release/rmq
LOAD=target/release/examples/load
# Both ends hold ~1,000 sockets (the driver a few more).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 2100 ] || { echo "ulimit -n is $(ulimit -n): need 2100+" >&2; exit 1; }
bytes=$(python3 - "$WATERMARK" <<'PY'
import re, sys
m = re.fullmatch(r"(\d+)\s*([A-Za-z]*)", sys.argv[1])
units = {"": 1, "B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9,
         "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
print(int(m.group(1)) * units[m.group(2)])
PY
)
work=$(mktemp -d)
serve_pid=""
cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$RMQ" serve --port 0 --mgmt-port 0 --in-memory --memory-high-watermark "$WATERMARK" \
  > "$work/serve.out" 2> "$work/serve.err" &
serve_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve.out" && break; sleep 0.1; done
url="amqp://guest:guest@$(grep -o 'amqp://[0-9.:]*' "$work/serve.out" | sed 's|amqp://||')/%2F"
echo "rmq serve pid $serve_pid at $url, watermark $WATERMARK ($bytes bytes), idle RSS $(awk '/VmRSS/ {print $2, $3}' /proc/$serve_pid/status)" >&2
status=0
"$LOAD" --url "$url" --pid "$serve_pid" --watermark "$bytes" --margin "$MARGIN" \
  --seconds "$SECONDS_RUN" --name "rmq serve" "$@" || status=$?
echo "alarm log lines of rmq serve:" >&2
grep -c "memory alarm" "$work/serve.err" >&2 || true
grep "memory alarm" "$work/serve.err" | head -4 >&2 || true

if [ "$rabbit" = 1 ]; then
  rpid=$(pgrep -f 'beam.smp.*rabbit' | head -1 || true)
  [ -n "$rpid" ] || { echo "RabbitMQ is not running (bash .ci/rabbitmq.sh)" >&2; exit 1; }
  rabbitmqctl -q set_vm_memory_high_watermark absolute "$bytes" >/dev/null
  echo "RabbitMQ pid $rpid, watermark set to $bytes bytes" >&2
  "$LOAD" --url "amqp://guest:guest@127.0.0.1:5672/%2F" --pid "$rpid" --watermark "$bytes" \
    --margin "$MARGIN" --seconds "$SECONDS_RUN" --name "RabbitMQ 3.10" "$@" || status=$?
  rabbitmqctl -q set_vm_memory_high_watermark 0.4 >/dev/null
fi
exit "$status"
