"""Latency and memory of the reader answer path, printed (no assertions).

    .venv/bin/python benchmarks/reader_speed.py --index build/squad-index --gold build/squad/gold.jsonl

Builds the index from ``--corpus`` when it is empty. Prints, for each answerer asked for: warm
``Assistant.ask`` latency p50/p95 over ``--questions`` questions (one process, one at a time),
the process's peak RSS, and the cold ``rag ask`` wall time (new process to printed answer,
median of ``--cold`` runs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from rag.assistant import Assistant  # noqa: E402
from rag.config import Settings  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, default=ROOT / "build" / "squad" / "corpus")
    ap.add_argument("--gold", type=Path, required=True)
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--cold", type=int, default=5)
    ap.add_argument("--answerers", default="reader,extractive")
    args = ap.parse_args()
    questions = [json.loads(line)["question"] for line in args.gold.read_text().splitlines() if line.strip()]
    questions = questions[:: max(1, len(questions) // args.questions)][: args.questions]
    results = {}
    for name in args.answerers.split(","):
        settings = Settings().with_overrides(index_dir=args.index, answer={"answerer": name})
        assistant = Assistant.open(settings=settings, create=True)
        if not assistant.documents():
            assistant.ingest([args.corpus])
        for q in questions[:5]:  # warm up: models loaded, caches filled
            assistant.ask(q)
        times = []
        for q in questions:
            t = time.perf_counter()
            assistant.ask(q)
            times.append((time.perf_counter() - t) * 1000)
        cold = []
        env = dict(os.environ, RAG_ANSWER__ANSWERER=name)
        for _ in range(args.cold):
            t = time.perf_counter()
            out = subprocess.run([str(ROOT / ".venv" / "bin" / "rag"), "ask", questions[0], "--index", str(args.index)],
                                 capture_output=True, text=True, env=env, timeout=120)
            cold.append(time.perf_counter() - t)
            assert out.returncode == 0, out.stderr
        results[name] = {"warm_p50_ms": round(statistics.median(times), 1), "warm_p95_ms": round(percentile(times, 0.95), 1),
                         "cold_rag_ask_s": round(statistics.median(cold), 2), "questions": len(times)}
        print(name, results[name], flush=True)
    print("peak RSS of this process (both answerers loaded):", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "MB")


if __name__ == "__main__":
    main()
