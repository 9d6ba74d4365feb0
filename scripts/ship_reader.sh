#!/usr/bin/env bash
# Ship a trained reader: export it, measure it open-book, calibrate its refusal threshold, write its card.
#
#   SQUAD11_TRAIN=path/to/train-v1.1.json.gz scripts/ship_reader.sh [WEIGHTS] [NOTE]
#
# SQUAD11_TRAIN: the SQuAD 1.1 training set the reader was trained on (its 16 held-out articles choose
# the threshold); the public SQuAD 2.0 slice is read from evals/data/squad2-dev/.
# WEIGHTS: a final.pt from training/train_reader.py (default ~/.cache/rag-cite/reader/final.pt), or several
# of one run, comma-separated, whose parameters are averaged (the curve is copied from the last one's folder).
# NOTE: a sentence for the model card about this run (budgets changed on resume, ...).
#
# 1. export the int8 ONNX model, tokenizer and reader.json to rag/answering/reader_model/;
# 2. collect the reader's proposals, retrieving exactly as `rag ask` does, on the 16 held-out
#    SQuAD 1.1 articles (1,200 answerable questions), the held-out half of the public SQuAD 2.0
#    slice and its training-use half (build/reader_dev/; an index there is reused);
# 3. score each over a threshold grid (benchmarks/results/reader/*.json);
# 4. the threshold: the grid value whose false refusals on SQuAD 1.1 held-out come closest to 7%
#    (ties: the higher), written to reader.json as refusal_threshold. Nothing on the slice chooses it;
# 5. MODEL_CARD.md from all of that and the learning curve (copied from the training cache to
#    benchmarks/results/reader/curve.jsonl).
# Then run scripts/make_baselines.sh and benchmarks/docs_tables.py, and review the diffs.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 ANONYMIZED_TELEMETRY=False
while IFS= read -r var; do unset "$var"; done < <(env | sed -n 's/^\(RAG_[A-Za-z0-9_]*\)=.*/\1/p')

weights="${1:-$HOME/.cache/rag-cite/reader/final.pt}"
note="${2:-}"
py=.venv/bin/python
squad11="${SQUAD11_TRAIN:?set SQUAD11_TRAIN to the SQuAD 1.1 training set (train-v1.1.json.gz) the reader was trained on}"
slice=evals/data/squad2-dev/squad2-dev-public.json
model=rag/answering/reader_model
grid=0,0.1,0.2,0.3,0.4,0.5,0.6,0.7
results=benchmarks/results/reader

$py training/train_reader.py "$squad11" --export "$model" --weights "$weights"
# The learning curve, every row (resumed runs included), from the training cache beside the weights.
[[ -f "$(dirname "$weights")/curve.jsonl" ]] && cp "$(dirname "$weights")/curve.jsonl" $results/curve.jsonl
rm -f build/reader_dev/*/proposals.pkl  # the indexes stay: they do not depend on the reader
$py benchmarks/reader_dev.py collect "$squad11" --titles squad11-heldout --out build/reader_dev/squad11-heldout --limit 1200
$py benchmarks/reader_dev.py collect "$slice" --titles heldout --out build/reader_dev/heldout
$py benchmarks/reader_dev.py collect "$slice" --titles trainuse --out build/reader_dev/trainuse
for run in squad11-heldout heldout trainuse; do
  $py benchmarks/reader_dev.py score build/reader_dev/$run --thresholds $grid --json $results/$run.json
done
$py - "$results/squad11-heldout.json" "$model/reader.json" <<'PY'
import json, sys
table = json.load(open(sys.argv[1]))["table"]
best = min(table, key=lambda r: (abs(r["false_refusals"] - 0.07), -r["threshold"]))
meta = json.load(open(sys.argv[2]))
meta["refusal_threshold"] = best["threshold"]
open(sys.argv[2], "w").write(json.dumps(meta, indent=2) + "\n")
print(f"refusal threshold {best['threshold']}: {best['false_refusals']:.1%} of SQuAD 1.1 held-out answerable questions refused")
PY
$py training/model_card.py "$model" --curve $results/curve.jsonl \
  --table "SQuAD 1.1, 16 held-out articles, 1,200 answerable questions (chose the threshold)=$results/squad11-heldout.json" \
  --table "SQuAD 2.0 public slice, the 6 held-out articles (nothing chosen on them)=$results/heldout.json" \
  --table "SQuAD 2.0 public slice, the 5 training-use articles (in-sample; chose the confidence mix)=$results/trainuse.json" \
  --note "$note"
echo "shipped $weights to $model; now: scripts/make_baselines.sh && $py benchmarks/docs_tables.py"
