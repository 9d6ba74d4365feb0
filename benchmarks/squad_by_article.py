"""SQuAD slice metrics per half: the held-out articles (every other title, sorted, from the second), the
training-use ones, and all 11, from a rag eval answers.jsonl (after scripts/make_baselines.sh squad).

    .venv/bin/python benchmarks/squad_by_article.py evals/baselines/squad/answers.jsonl
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from rag.evals.metrics import f1_score, normalize_answer  # noqa: E402

sl = json.load(open(str(ROOT / "evals/data/squad2-dev/squad2-dev-public.json")))["data"]
titles = sorted(a["title"] for a in sl)
held = set(titles[1::2])
art = {qa["id"]: a["title"] for a in sl for p in a["paragraphs"] for qa in p["qas"]}
gold = {g["id"]: g for g in map(json.loads, open(str(ROOT / "build/squad/gold.jsonl")))}
run = sys.argv[1]
recs = [json.loads(line) for line in open(run)]
for name, keep in (("held-out 6", lambda t: t in held), ("training-use 5", lambda t: t not in held), ("all 11", lambda t: True)):
    pos = [r for r in recs if keep(art[r["id"]]) and not gold[r["id"]]["unanswerable"]]
    neg = [r for r in recs if keep(art[r["id"]]) and gold[r["id"]]["unanswerable"]]
    f1 = sum(0 if r["refused"] else f1_score(r["short_answer"] or r["answer"], gold[r["id"]]["answers"]) for r in pos) / len(pos)
    inside = sum((not r["refused"]) and any(normalize_answer(a) in normalize_answer(" ".join(c["quote"] for c in r["citations"])) for a in gold[r["id"]]["answers"]) for r in pos) / len(pos)
    chars = [sum(c["end"] - c["start"] for c in r["citations"]) for r in pos + neg if not r["refused"]]
    print(f"{name}: answerable {len(pos)}, unanswerable {len(neg)}; F1(answerable, refusal=0) {f1:.3f}; answer inside cited {inside:.3f}; "
          f"cited chars {sum(chars)/len(chars):.0f}; unanswerable refused {sum(r['refused'] for r in neg)/len(neg):.3f}; "
          f"false refusals {sum(r['refused'] for r in pos)/len(pos):.3f}")
