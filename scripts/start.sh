#!/usr/bin/env bash
# The main job on the embedded defaults: install, index corpus/, open the chat UI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh llm
.venv/bin/rag ingest corpus || [ $? -eq 3 ]   # 3 = some files skipped; the rest is indexed
exec .venv/bin/rag serve "$@"
