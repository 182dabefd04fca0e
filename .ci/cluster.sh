#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine for the cluster tests (../shared/RABBITMQ.md):
# nodes cN@$(hostname -s), N = 1..3, AMQP 568N, management 1568N, distribution 2568N, data in
# /var/lib/rabbitmq/cN-node. All run as user rabbitmq with HOME=/var/lib/rabbitmq, so they share
# the default node's Erlang cookie; the default node (rabbit@, 5672) is left alone.
#
#   start          install if needed, start the nodes (in parallel), join c2, c3 to c1; idempotent
#                  (~13 s from nothing, ~11 s from stopped or killed nodes, ~2 s when running)
#   await          wait until the three nodes run and are clustered (~1 s when they are); fails
#                  at once for a node that is not running, unless a `start` is under way
#   stop-node N    stop cN gracefully (~8 s: RabbitMQ pauses 5 s stopping; SIGKILL if it hangs)
#   kill-node N    SIGKILL cN's Erlang VM, an abrupt death (~1 s)
#   start-node N   start cN again and wait until it runs in the cluster again (~7-10 s); with all
#                  three down use `start`, since a node waits for the peer that stopped last
#   status         one line per node: "cN@host up" or "cN@host down" (up: AMQP and management
#                  ports answer); exits 0 either way
#   stop           stop the three nodes
#   wipe           stop them and delete their data (the next start builds a fresh cluster)
#
# Every wait is bounded by RMQ_CLUSTER_TIMEOUT seconds (default 120). On failure: a message on
# stderr, the tail of the nodes' logs, and a non-zero exit.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

HOST=$(hostname -s)
HOME_DIR=/var/lib/rabbitmq
TIMEOUT=${RMQ_CLUSTER_TIMEOUT:-120}
NODES=(1 2 3)
LOCK=/tmp/rmq-ci-cluster.lock # held by `start`
CTL_LOG=/tmp/rmq-ci-cluster-ctl.log # what rabbitmqctl says on stderr (warnings while joining)

name() { echo "c$1@$HOST"; }
base() { echo "$HOME_DIR/c$1-node"; }
amqp_port() { echo $((5680 + $1)); }
mgmt_port() { echo $((15680 + $1)); }
dist_port() { echo $((25680 + $1)); }

die() {
  echo "cluster.sh: $*" >&2
  local n log
  for n in "${NODES[@]}"; do
    log="$(base "$n")/log/$(name "$n").log"
    if [ -f "$log" ]; then
      echo "--- tail of $log" >&2
      tail -n 15 "$log" >&2
    fi
  done
  if [ -s "$CTL_LOG" ]; then
    echo "--- tail of $CTL_LOG" >&2
    tail -n 15 "$CTL_LOG" >&2
  fi
  exit 1
}

check_n() {
  case "${1:-}" in
    1 | 2 | 3) ;;
    *) echo "cluster.sh: node number must be 1, 2 or 3 (got '${1:-}')" >&2; exit 2 ;;
  esac
}

# rabbitmqctl against cN; Debian's wrapper runs it as user rabbitmq with HOME=/var/lib/rabbitmq.
ctl() {
  local n=$1
  shift
  echo "+ rabbitmqctl -n $(name "$n") $*" >> "$CTL_LOG"
  timeout 60 rabbitmqctl -q -n "$(name "$n")" "$@" 2>> "$CTL_LOG"
}

port_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }
# The node answers: its AMQP and management listeners accept connections.
up() { port_open "$(amqp_port "$1")" && port_open "$(mgmt_port "$1")"; }
# The Erlang VM of cN (booting, running or stopping): its name is only in its environment.
beam_pid() {
  local p
  for p in $(pgrep -x beam.smp || true); do
    if { tr '\0' '\n' < "/proc/$p/environ"; } 2> /dev/null | grep -qx "RABBITMQ_NODENAME=$(name "$1")"; then
      echo "$p"
      return 0
    fi
  done
}

deadline=$((SECONDS + TIMEOUT))
left() { echo $((deadline - SECONDS)); }

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' rabbitmq-server 2> /dev/null || true)" = installed ]
}

ensure_installed() {
  installed && return 0
  # .ci/rabbitmq.sh may be installing at the same moment: wait on apt's locks, not fail.
  apt-get -o DPkg::Lock::Timeout=600 update -qq > /dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq rabbitmq-server > /dev/null
  installed || die "rabbitmq-server did not install"
}

prepare() {
  local n=$1 b
  b=$(base "$n")
  mkdir -p "$b/mnesia" "$b/log"
  printf 'listeners.tcp.default = 127.0.0.1:%s\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %s\n' \
    "$(amqp_port "$n")" "$(mgmt_port "$n")" > "$b/rabbitmq.conf"
  if [ "$n" != 1 ]; then
    # A fresh c2 or c3 joins c1 by itself as it boots (retrying until c1 answers), which saves
    # the stop_app (~6 s, most of it a fixed 5 s wait) + reset + join_cluster of each; join()
    # below still joins a node that booted alone. Used only by a node with no data yet.
    cat >> "$b/rabbitmq.conf" << CONF
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = $(name 1)
cluster_formation.discovery_retry_limit = 90
cluster_formation.discovery_retry_interval = 1000
CONF
  fi
  echo '[rabbitmq_management].' > "$b/enabled_plugins"
  chown -R rabbitmq:rabbitmq "$b"
}

launch() {
  local n=$1 b
  b=$(base "$n")
  [ -n "$(beam_pid "$n")" ] && return 0
  su rabbitmq -s /bin/sh -c "cd $HOME_DIR && exec env HOME=$HOME_DIR \
    RABBITMQ_NODENAME=$(name "$n") RABBITMQ_NODE_PORT=$(amqp_port "$n") RABBITMQ_DIST_PORT=$(dist_port "$n") \
    RABBITMQ_CONFIG_FILE=$b/rabbitmq.conf RABBITMQ_MNESIA_BASE=$b/mnesia RABBITMQ_LOG_BASE=$b/log \
    RABBITMQ_PID_FILE=$b/pid RABBITMQ_ENABLED_PLUGINS_FILE=$b/enabled_plugins \
    /usr/lib/rabbitmq/bin/rabbitmq-server -detached" > "$b/log/start.out" 2>&1 9>&- # the VM must not hold $LOCK
}

# A `cluster.sh start` is under way (it holds $LOCK).
starting() { ! flock -n "$LOCK" true 2> /dev/null; }

# Wait until each of the nodes answers. A node whose VM is gone fails at once, unless this is
# `await` and a `start` (perhaps still installing) is under way.
wait_up() {
  local n
  for n in "$@"; do
    until up "$n"; do
      [ "$(left)" -gt 0 ] || die "$(name "$n") did not start within ${TIMEOUT}s"
      if [ -z "$(beam_pid "$n")" ]; then
        sleep 2
        if [ -z "$(beam_pid "$n")" ] && ! up "$n"; then
          if [ "$MODE" != await ]; then die "$(name "$n") exited while starting"; fi
          starting || die "$(name "$n") is not running (see 'cluster.sh start' / 'start-node $n')"
        fi
      fi
      sleep 1
    done
  done
}

# The nodes that cN sees running in its cluster, one per line.
running_nodes() {
  ctl "$1" cluster_status --formatter json 2> /dev/null |
    grep -o '"running_nodes":\[[^]]*\]' | grep -o '"c[0-9]@[^"]*"' | tr -d '"' || true
}
disk_nodes() {
  ctl "$1" cluster_status --formatter json 2> /dev/null |
    grep -o '"disk_nodes":\[[^]]*\]' | grep -o '"c[0-9]@[^"]*"' | tr -d '"' || true
}

# Join cN (running) to c1 unless both already count it as a member, or c1 does not answer (a
# node that was in the cluster rejoins by itself). One node at a time: two nodes that start_app
# at once after joining can crash on a mnesia schema merge ("Bad cookie in table definition").
join() {
  local n=$1 of1
  of1=$(disk_nodes 1)
  [ -n "$of1" ] || return 0
  if grep -qx "$(name "$n")" <<< "$of1" && disk_nodes "$n" | grep -qx "$(name 1)"; then
    return 0
  fi
  ctl "$n" stop_app > /dev/null || die "stop_app on $(name "$n") failed"
  ctl "$n" reset > /dev/null || die "reset of $(name "$n") failed"
  if grep -qx "$(name "$n")" <<< "$of1"; then # c1 still lists the cN whose data was wiped
    ctl 1 forget_cluster_node "$(name "$n")" > /dev/null || die "c1 could not forget $(name "$n")"
  fi
  ctl "$n" join_cluster "$(name 1)" > /dev/null || die "$(name "$n") could not join $(name 1)"
  ctl "$n" start_app > /dev/null || die "start_app on $(name "$n") failed after joining"
}

# Wait until cN sees all of want (node numbers) running.
wait_clustered() {
  local n=$1 m running
  shift
  while :; do
    running=$(running_nodes "$n")
    local ok=1
    for m in "$@"; do
      grep -qx "$(name "$m")" <<< "$running" || ok=0
    done
    [ "$ok" = 1 ] && return 0
    [ "$(left)" -gt 0 ] || die "$(name "$n") sees [${running//$'\n'/ }] running, wanted nodes $*"
    sleep 1
  done
}

stop_one() {
  local n=$1 pid
  pid=$(beam_pid "$n")
  [ -n "$pid" ] || return 0
  timeout 30 rabbitmqctl -q -n "$(name "$n")" stop > /dev/null 2>&1 || kill -9 "$pid" 2> /dev/null || true
  wait_gone "$n" "$pid"
}

kill_one() {
  local n=$1 pid
  pid=$(beam_pid "$n")
  [ -n "$pid" ] || return 0
  kill -9 "$pid" 2> /dev/null || true
  wait_gone "$n" "$pid"
}

wait_gone() {
  local n=$1 pid=$2
  while kill -0 "$pid" 2> /dev/null; do
    [ "$(left)" -gt 0 ] || die "$(name "$n") (pid $pid) did not stop within ${TIMEOUT}s"
    sleep 0.2
  done
}

cmd_start() {
  exec 9> "$LOCK"
  flock -w "$TIMEOUT" 9 || die "another cluster.sh start holds $LOCK"
  ensure_installed
  deadline=$((SECONDS + TIMEOUT)) # the install is not part of the bound
  local n pids=()
  for n in "${NODES[@]}"; do
    if [ -z "$(beam_pid "$n")" ]; then
      prepare "$n"
      launch "$n" &
      pids+=($!)
    fi
  done
  for n in "${pids[@]}"; do wait "$n" || die "a node did not launch"; done
  wait_up "${NODES[@]}"
  if [ "$(running_nodes 1 | grep -c .)" != "${#NODES[@]}" ]; then
    join 2
    join 3
    wait_up "${NODES[@]}"
  fi
  wait_clustered 1 "${NODES[@]}"
}

cmd_await() {
  wait_up "${NODES[@]}"
  wait_clustered 1 "${NODES[@]}"
}

cmd_start_node() {
  local n=$1 m alive=()
  [ -n "$(beam_pid "$n")" ] || {
    prepare "$n"
    launch "$n"
  }
  wait_up "$n"
  [ "$n" = 1 ] || {
    join "$n"
    wait_up "$n"
  }
  for m in "${NODES[@]}"; do
    if [ "$m" = "$n" ] || up "$m"; then alive+=("$m"); fi
  done
  wait_clustered "$n" "${alive[@]}"
}

cmd_status() {
  local n
  for n in "${NODES[@]}"; do
    if up "$n"; then echo "$(name "$n") up"; else echo "$(name "$n") down"; fi
  done
}

cmd_stop() {
  local n
  for n in "${NODES[@]}"; do stop_one "$n" & done
  wait
  for n in "${NODES[@]}"; do [ -z "$(beam_pid "$n")" ] || die "$(name "$n") still runs"; done
}

MODE=${1:-}
case "$MODE" in
  start) cmd_start ;;
  await) cmd_await ;;
  stop-node) check_n "${2:-}" && stop_one "$2" ;;
  kill-node) check_n "${2:-}" && kill_one "$2" ;;
  start-node) check_n "${2:-}" && cmd_start_node "$2" ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  wipe)
    cmd_stop
    for n in "${NODES[@]}"; do rm -rf "$(base "$n")"; done
    ;;
  *)
    echo "usage: $0 start|await|status|stop|wipe|stop-node N|kill-node N|start-node N" >&2
    exit 2
    ;;
esac
