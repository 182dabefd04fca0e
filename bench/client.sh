#!/usr/bin/env bash
# Client throughput: `rmq send --lines` of 100,000 lines from stdin with publisher
# confirms, then `rmq receive --count 100000`, timed, against each broker given.
#
#   bench/client.sh                 # the embedded broker (rmq serve --port 0), and RabbitMQ
#                                   # at amqp://guest:guest@127.0.0.1:5672/%2F if it answers
#   bench/client.sh URL...          # only these brokers
#   N=1000000 bench/client.sh       # another message count
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet
RMQ=target/release/rmq
work=$(mktemp -d)
serve_pid=""
cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
seq 1 "$N" | sed 's/^/message number /' > "$work/lines"

now() { date +%s.%N; }
rate() { awk -v n="$N" -v s="$1" -v e="$2" 'BEGIN { d = e - s; printf "%6.2f s  %8.0f msg/s", d, n / d }'; }

bench() {
  local name=$1 url=$2 q
  q="bench-$$-$RANDOM"
  "$RMQ" --url "$url" --quiet declare queue "$q" > /dev/null
  local t0 t1 t2
  t0=$(now)
  "$RMQ" --url "$url" --quiet send "$q" --lines < "$work/lines"
  t1=$(now)
  "$RMQ" --url "$url" --quiet receive "$q" --count "$N" > "$work/out"
  t2=$(now)
  if ! cmp -s "$work/lines" "$work/out"; then
    echo "$name: received messages differ from those sent" >&2
    exit 1
  fi
  "$RMQ" --url "$url" --quiet delete queue "$q"
  printf '%-10s send (confirmed) %s   receive (acked) %s\n' "$name" "$(rate "$t0" "$t1")" "$(rate "$t1" "$t2")"
}

echo "rmq client benchmark: $N messages of ~20 bytes, one publisher, one consumer"
if [ $# -gt 0 ]; then
  for url in "$@"; do bench "$(echo "$url" | sed 's#.*@##; s#/.*##')" "$url"; done
  exit 0
fi
"$RMQ" serve --port 0 --in-memory --quiet > "$work/serve.out" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do grep -q listening "$work/serve.out" && break; sleep 0.1; done
addr=$(grep -o 'amqp://[0-9.:]*' "$work/serve.out")
bench "rmq serve" "amqp://guest:guest@${addr#amqp://}/%2F"
rabbit=${RMQ_BENCH_RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2F}
probe="rmq-bench-probe-$$"
if "$RMQ" --url "$rabbit" --quiet declare queue "$probe" > /dev/null 2>&1; then
  "$RMQ" --url "$rabbit" --quiet delete queue "$probe"
  bench "RabbitMQ" "$rabbit"
else
  echo "RabbitMQ   not reachable at $rabbit (skipped)"
fi
