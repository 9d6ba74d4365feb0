"""Retrieval quality and warm query latency of one index, for comparing two versions of the code.

    PYTHONPATH=<checkout> .venv/bin/python benchmarks/retrieval_ab.py --index DIR --gold GOLD.jsonl \\
        [--every 4] [--latency 200] [--out results.json]

Runs with whichever ``rag`` package is first on ``PYTHONPATH``, so the same script measures
two checkouts (e.g. main and a branch) on indexes each built by its own code, one after the
other and alternating, so background load falls on both alike. For every answerable gold item
with evidence: recall@1/@5 and MRR of the retriever's top 5 passages against the evidence
spans (as ``rag eval`` counts them: a passage overlapping an evidence span in the same
document). Latency: the first ``--latency`` items asked warm through ``Assistant.ask`` (the
whole question, as ``benchmarks/run.py`` times it) and through the retriever alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from rag.assistant import Assistant
from rag.config import Settings
from rag.evals.gold import load_gold, locate_evidence
from rag.evals.metrics import percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--gold", type=Path, required=True)
    parser.add_argument("--every", type=int, default=1, help="use every n-th gold item for quality")
    parser.add_argument("--latency", type=int, default=200, help="questions timed warm")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    assistant = Assistant.open(args.index, settings=Settings(index_dir=args.index))
    items = [i for i in load_gold(args.gold).items if not i.unanswerable and i.evidence]
    text_of = assistant.index.catalog.text_by_source
    spans, _ = locate_evidence(items, text_of)
    ranks: list[int | None] = []
    for item in items[:: args.every]:
        hits = assistant.retriever.retrieve(assistant.query(item.question, top_k=5))
        evidence = spans.get(item.id) or []
        rank = next((r for r, h in enumerate(hits, 1) if any(
            e.source == h.source and h.chunk.start < e.end and e.start < h.chunk.end for e in evidence)), None)
        ranks.append(rank)
    timed = items[: args.latency]
    for item in timed[:10]:  # warm up: model sessions, caches
        assistant.ask(item.question)
    ask_ms, retrieve_ms = [], []
    for item in timed:
        started = time.perf_counter()
        assistant.ask(item.question)
        ask_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        assistant.retriever.retrieve(assistant.query(item.question))
        retrieve_ms.append((time.perf_counter() - started) * 1000)
    n = len(ranks)
    result = {
        "package": str(Path(sys.modules["rag"].__file__).parent),
        "questions": n,
        "recall_at_1": round(sum(r is not None and r <= 1 for r in ranks) / n, 4),
        "recall_at_5": round(sum(r is not None for r in ranks) / n, 4),
        "mrr": round(sum(1 / r for r in ranks if r) / n, 4),
        "ask_p50_ms": round(statistics.median(ask_ms), 1), "ask_p95_ms": round(percentile(ask_ms, 95) or 0, 1),
        "retrieve_p50_ms": round(statistics.median(retrieve_ms), 1),
        "retrieve_p95_ms": round(percentile(retrieve_ms, 95) or 0, 1),
        "timed": len(timed),
    }
    print(json.dumps(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
