#!/usr/bin/env bash
# `rmq list-queues` with 10,000 queues: rmq serve (release build) and, when it answers,
# the local RabbitMQ (queues declared with x-expires so they clean themselves up).
#   bench/list_queues.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
rmq=target/release/rmq
[ -x "$rmq" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
serve_pid=""
cleanup() { [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$rmq" serve --port 0 --mgmt-port 0 --in-memory --quiet > "$work/serve.out" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do grep -q "management API" "$work/serve.out" && break; sleep 0.1; done
amqp=$(grep -o 'amqp://[0-9.:]*' "$work/serve.out"); api=$(grep -o 'http://[0-9.:]*' "$work/serve.out")
measure() { # name url api
  local name=$1 url=$2 api=$3 q="lq-$$-$RANDOM"
  "$rmq" perf --url "$url" -x 0 -y 0 -u "$q" --queues "$n" --queue-args '{"x-expires": 120000}' -q > /dev/null
  local best=999
  for _ in 1 2 3; do
    local t0 t1
    t0=$(date +%s.%N)
    "$rmq" list-queues --url "$url" --api-url "$api" name messages consumers > "$work/out.tsv"
    t1=$(date +%s.%N)
    best=$(python3 -c "print(min($best, $t1 - $t0))")
  done
  printf '%-10s list-queues with %d queues: %.2f s (best of 3), %d rows\n' "$name" "$n" "$best" "$(($(wc -l < "$work/out.tsv") - 1))"
}
measure "rmq serve" "amqp://guest:guest@${amqp#amqp://}/%2F" "$api"
if (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null; then
  measure "RabbitMQ" "amqp://guest:guest@127.0.0.1:5672/%2F" "http://127.0.0.1:15672"
fi
