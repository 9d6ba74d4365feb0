#!/usr/bin/env bash
# Regenerate the committed eval baselines with the current answerer and default settings.
#
#   scripts/make_baselines.sh          # both: evals/baselines/seed and evals/baselines/squad
#   scripts/make_baselines.sh seed     # the seed gold set only (~1 minute)
#   scripts/make_baselines.sh squad    # the SQuAD 2.0 public slice only (3,896 questions)
#
# SQUAD_JSON overrides where the SQuAD file is (default: evals/data/squad2-dev/squad2-dev-public.json).
# Review the diff of evals/baselines/*/metrics.json and report.md before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
# A baseline is made with the default settings: drop any RAG_* overrides from the environment.
while IFS= read -r var; do unset "$var"; done < <(env | sed -n 's/^\(RAG_[A-Za-z0-9_]*\)=.*/\1/p')

rag=.venv/bin/rag
which="${1:-all}"
squad_json="${SQUAD_JSON:-evals/data/squad2-dev/squad2-dev-public.json}"

case "$which" in seed|squad|all) ;; *) echo "usage: $0 [seed|squad|all]" >&2; exit 2 ;; esac

if [[ "$which" == seed || "$which" == all ]]; then
  rm -rf evals/baselines/seed
  "$rag" eval evals/gold/seed.jsonl --corpus corpus --out evals/baselines/seed
fi

if [[ "$which" == squad || "$which" == all ]]; then
  # The converted corpus and gold file are build outputs (build/ is git-ignored); the run
  # folder records their paths so `rag score evals/baselines/squad` finds them again.
  "$rag" squad "$squad_json" --out build/squad --force
  rm -rf evals/baselines/squad
  "$rag" eval build/squad/gold.jsonl --corpus build/squad/corpus --out evals/baselines/squad
fi
