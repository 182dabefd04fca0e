#!/usr/bin/env bash
# Install and start Debian's rabbitmq-server on loopback with the management plugin
# (../shared/RABBITMQ.md), so the client tests also run against the real engine.
# Idempotent: safe on a machine where it is already installed or running.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v rabbitmqctl >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq rabbitmq-server >/dev/null
fi
cat > /etc/rabbitmq/rabbitmq.conf <<'CONF'
listeners.tcp.default = 127.0.0.1:5672
management.tcp.ip = 127.0.0.1
management.tcp.port = 15672
CONF
rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
chown rabbitmq:rabbitmq /etc/rabbitmq/rabbitmq.conf /etc/rabbitmq/enabled_plugins
if ! timeout 20 rabbitmqctl status >/dev/null 2>&1; then
  /etc/init.d/rabbitmq-server start >/dev/null
fi
