#!/usr/bin/env bash
# Install what the tests need (venv, Debian chromium and postgresql, a Chroma server, a throwaway
# PostgreSQL cluster), check the import layers and run the tests.
# Extra arguments go to pytest, e.g. scripts/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh llm,test
if [ ! -x /usr/bin/chromium ]; then
  echo "test: installing Debian chromium for the browser tests" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
# A real `chroma run` server on 127.0.0.1 for the server-mode tests; stopped on exit.
chroma_dir="$(mktemp -d)"
port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ANONYMIZED_TELEMETRY=False .venv/bin/chroma run --path "$chroma_dir" --host 127.0.0.1 --port "$port" >"$chroma_dir.log" 2>&1 &
chroma_pid=$!
pg_dir="$(mktemp -d)"
trap 'kill $chroma_pid 2>/dev/null; wait $chroma_pid 2>/dev/null; rm -rf "$chroma_dir" "$chroma_dir.log"; scripts/pg_temp.sh stop "$pg_dir"' EXIT
for _ in $(seq 1 60); do
  if curl -sf "http://127.0.0.1:$port/api/v2/heartbeat" >/dev/null; then break; fi
  sleep 0.5
done
export RAG_TEST_CHROMA_URL="http://127.0.0.1:$port"
# A throwaway PostgreSQL cluster (Debian's postgresql, installed when missing; as `nobody` when
# root) on a free port of 127.0.0.1 for the catalog-on-a-server tests; stopped and deleted on exit.
pg_port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
RAG_TEST_PG_URL="$(scripts/pg_temp.sh start "$pg_dir" "$pg_port")"
export RAG_TEST_PG_URL
# The layers contract in pyproject.toml: no module imports from a layer above its own.
.venv/bin/lint-imports
# Lint (the whole repository) and types (rag/ and ui/), as configured in pyproject.toml.
.venv/bin/ruff check .
.venv/bin/mypy
# --durations=20: the slowest tests, in every CI log.
.venv/bin/python -m pytest -m "not slow" --durations=20 "$@"
