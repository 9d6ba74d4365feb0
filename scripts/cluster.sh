#!/usr/bin/env bash
# Try the server setup on one machine: a throwaway PostgreSQL (the catalog), a `chroma run` server
# (the vectors) and N `rag serve` instances sharing that one index, each in an empty folder of its
# own. Ingests CORPUS first; Ctrl+C stops and deletes everything. docs/deploy.md says how to run
# it for real.
#
#   bash scripts/cluster.sh [N=2] [CORPUS=corpus]      instances on ports BASE_PORT.. (7860)
#
# Everything binds 127.0.0.1. While it runs, another shell can ingest into the same index:
#   RAG_CATALOG_URL=... RAG_CHROMA_URL=... .venv/bin/rag ingest FOLDER    (the URLs are printed)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-2}"
corpus="$(realpath "${2:-corpus}")"
base_port="${BASE_PORT:-7860}"
[ -x .venv/bin/rag ] || scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False ANONYMIZED_TELEMETRY=False
rag="$(pwd)/.venv/bin/rag"
free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

work="$(mktemp -d)"
pg_dir="$(mktemp -d)"  # its own: as root the cluster belongs to nobody, who cannot enter $work
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/pg_temp.sh stop "$pg_dir"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT  # Ctrl+C: leave through the EXIT trap (a script waiting on jobs would not)
trap 'exit 143' TERM

admin_url="$(scripts/pg_temp.sh start "$pg_dir" "$(free_port)")"
.venv/bin/python -c 'import sys, psycopg; psycopg.connect(sys.argv[1], autocommit=True).execute("CREATE DATABASE rag")' "$admin_url"
chroma_port="$(free_port)"
.venv/bin/chroma run --path "$work/chroma" --host 127.0.0.1 --port "$chroma_port" >"$work/chroma.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do
  if curl -sf "http://127.0.0.1:$chroma_port/api/v2/heartbeat" >/dev/null; then break; fi
  sleep 0.5
done
export RAG_CATALOG_URL="${admin_url%/postgres}/rag" RAG_CHROMA_URL="http://127.0.0.1:$chroma_port"

"$rag" ingest "$corpus" --root "$corpus"
for i in $(seq 1 "$n"); do
  port=$((base_port + i - 1))
  mkdir "$work/instance$i"
  (cd "$work/instance$i" && exec "$rag" serve --port "$port") &
  pids+=($!)
  echo "instance $i: http://127.0.0.1:$port" >&2
done
echo "RAG_CATALOG_URL=$RAG_CATALOG_URL RAG_CHROMA_URL=$RAG_CHROMA_URL (Ctrl+C stops everything)" >&2
while sleep 1; do :; done  # until Ctrl+C (a plain `wait` on the jobs did not see it)
