#!/usr/bin/env bash
# Peak client memory (maximum resident set size, from /usr/bin/time -v) for one large
# message: `rmq send --file` and `rmq receive` (raw body to stdout, and --save-dir), against
# rmq serve (release build, --max-message-size 512 MiB) and, when it answers on 5672, the
# local RabbitMQ (whose default max_message_size of 128 MiB refuses the 256 MiB body).
#   bench/large_body.sh [SIZE_MB...]      (default: 64 256)
#   RMQ=target/debug/rmq bench/large_body.sh 64   # another binary
# A measurement, not a test: it prints a table and asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(64 256)
rmq=${RMQ:-target/release/rmq}
[ -x "$rmq" ] || { echo "build first: cargo build --release (or set RMQ=path/to/rmq)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
work=$(mktemp -d)
serve_pid=""
cleanup() { [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$rmq" serve --port 0 --mgmt-port 0 --in-memory --quiet --max-message-size $((512 * 1024 * 1024)) \
  > "$work/serve.out" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do grep -q "management API" "$work/serve.out" && break; sleep 0.1; done
amqp=$(grep -o 'amqp://[0-9.:]*' "$work/serve.out" | head -1)
api=$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -1)

# rss_mb LOG: the peak RSS /usr/bin/time -v reported, in MB.
rss_mb() { awk '/Maximum resident set size/ { printf "%.0f", $NF / 1024 }' "$1"; }

# measure BROKER URL API SIZE_MB
measure() {
  local name=$1 url=$2 api=$3 mb=$4 q="large-$$-$RANDOM"
  local body="$work/body.$mb"
  [ -f "$body" ] || head -c $((mb * 1024 * 1024)) /dev/urandom > "$body"
  local send recv save
  if /usr/bin/time -v "$rmq" send --url "$url" "$q" --file "$body" \
      > /dev/null 2> "$work/send.log"; then
    send="$(rss_mb "$work/send.log") MB"
    /usr/bin/time -v "$rmq" receive --url "$url" "$q" --count 1 --timeout 120 --output raw \
      > "$work/out" 2> "$work/recv.log"
    recv="$(rss_mb "$work/recv.log") MB"
    # raw output ends each message with a newline
    cmp -s -n "$(stat -c %s "$body")" "$body" "$work/out" || recv="$recv (body differs!)"
    "$rmq" send --url "$url" "$q" --file "$body" > /dev/null 2>&1
    rm -rf "$work/saved"
    /usr/bin/time -v "$rmq" receive --url "$url" "$q" --count 1 --timeout 120 \
      --save-dir "$work/saved" > /dev/null 2> "$work/save.log"
    save="$(rss_mb "$work/save.log") MB"
  else
    local why
    why=$(grep -o 'larger than configured max size [0-9]*' "$work/send.log" | head -1) ||
      why=$(grep '^rmq: ' "$work/send.log" | head -1 | cut -c1-100)
    send="refused: $why"
    recv=-; save=-
  fi
  "$rmq" delete queue --url "$url" "$q" --if-exists > /dev/null 2>&1 || true
  printf '%-10s %5d MB  send --file %-10s receive (stdout) %-10s receive --save-dir %s\n' \
    "$name" "$mb" "$send" "$recv" "$save"
}

for mb in "${sizes[@]}"; do
  measure "rmq serve" "amqp://guest:guest@${amqp#amqp://}/%2F" "$api" "$mb"
  if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    measure "RabbitMQ" "amqp://guest:guest@127.0.0.1:5672/%2F" "http://127.0.0.1:15672" "$mb"
  fi
done
