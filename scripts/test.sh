#!/usr/bin/env bash
# Run every test: installs the third-party clients the suite drives (pika from PyPI,
# amqplib from npm) and Debian's graphviz (`rmq topology --format dot` is rendered by
# `dot`) if missing, then `cargo test`. Set RMQ_TEST_RABBITMQ_URL to also
# run the client scenarios against a real RabbitMQ (.ci/run does).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  -r tests/clients/python/requirements.txt -r tests/clients/python/requirements-celery.txt
if [ ! -d tests/clients/node/node_modules ]; then
  npm ci --silent --no-audit --no-fund --prefix tests/clients/node
fi
if ! command -v dot >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; }
fi
cargo test "$@"
