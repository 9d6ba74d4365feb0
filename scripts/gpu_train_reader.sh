#!/usr/bin/env bash
# Runs ON a lent GPU machine (the device tool), never in CI: train the reader on all of SQuAD 1.1
# (two epochs) and leave the weights in $OUT in parts that can come back. Prepared and tested on
# the CPU here (tests/test_reader.py::test_gpu_round_trip); how to call it: docs/reader.md.
#
#   EXAMPLES=280000 WORKERS=12 bash scripts/gpu_train_reader.sh
#
# Needs .gpu/ (GPU_DIR; carried; made by `training/gpu_run.py bundle .gpu`) and the image's python3, which
# holds torch and transformers (no pydantic: the training script does not need it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
out="${OUT:?set OUT to the folder whose files come back}"
py="${PYTHON:-python3}"
gpu="${GPU_DIR:-.gpu}"
cache="${CACHE:-/tmp/reader}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
# EXTRA: more train_reader.py options (the CPU test passes a tiny window and dev set).
# shellcheck disable=SC2086
"$py" training/train_reader.py "$gpu/train-v1.1.json.gz" --slice "$gpu/squad2-dev-public.json" \
  --backbone "$gpu/backbone" --cache "$cache" --restart \
  --examples "${EXAMPLES:-280000}" --epochs "${EPOCHS:-2}" --workers "${WORKERS:-12}" \
  --device "${DEVICE:-cuda}" --eval-every "${EVAL_EVERY:-1000}" --ckpt-every-s 120 ${EXTRA:-} 2>&1 | tee "$out/train.log"
"$py" training/gpu_run.py pack-result "$cache" "$out"
