"""Speed of this code against another version of it, in one run on one host: warm ask and cold rag ask.

    git archive 59f79a9 | tar -x -C /tmp/before           # the code to compare against (--label 59f79a9)
    .venv/bin/python benchmarks/reader_compare.py --before /tmp/before --corpus build/squad/corpus \\
        --gold build/reader_dev/heldout/gold.jsonl --questions 300 --cold 7

Each version indexes ``--corpus`` into its own folder under ``--work`` (kept for reruns) and runs in
its own worker process (``PYTHONPATH`` puts ``--before`` first for the old code). Warm: both workers
load their models and answer five questions, then take the same questions one at a time,
alternating which version goes first, so that a change in the machine's load falls on both alike.
Cold: new ``rag ask`` processes for the first question, alternating versions, median of ``--cold``.
Printed and written (``--out``): the host (benchmarks/host.py), p50/p95 of each version and the
ratios new/old. Nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from host import describe, host

ROOT = Path(__file__).resolve().parent.parent
WORKER = """
import json, sys, time
from rag.assistant import Assistant
from rag.config import Settings
assistant = Assistant.open(settings=Settings().with_overrides(index_dir=sys.argv[1]))
print("ready", flush=True)
for line in sys.stdin:
    q = json.loads(line)
    t = time.perf_counter()
    a = assistant.ask(q)
    print(json.dumps({"ms": (time.perf_counter() - t) * 1000, "refused": a.refused, "short": a.short_answer}), flush=True)
"""


def env_for(src: Path | None) -> dict[str, str]:
    # As a user runs it: no RAG_* overrides, and bytecode cached (a shell with
    # PYTHONDONTWRITEBYTECODE=1 would compile every module of the package on every cold start).
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") and k != "PYTHONDONTWRITEBYTECODE"}
    env |= {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "ANONYMIZED_TELEMETRY": "False"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def ensure_index(src: Path | None, corpus: Path, index: Path) -> None:
    if (index / "catalog.sqlite3").exists():
        return
    cmd = [sys.executable, "-m", "rag.cli.main", "ingest", str(corpus), "--index", str(index)]
    done = subprocess.run(cmd, env=env_for(src), cwd=src or ROOT, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 3):
        raise SystemExit(f"ingest with {src or ROOT} failed: {done.stderr[-400:]}")


class Worker:
    def __init__(self, src: Path | None, index: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(index)], env=env_for(src), cwd=src or ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def ask(self, question: str) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(question) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(times: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(percentile(times, 0.95), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="a source tree of the code to compare against")
    ap.add_argument("--label", default="", help="what --before is, for the report (e.g. a commit)")
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--gold", type=Path, required=True, help="a gold .jsonl whose questions are asked")
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--cold", type=int, default=7)
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "reader_compare")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reader_compare.json")
    args = ap.parse_args()
    record = host()
    print("host:", describe(record), flush=True)
    questions = [json.loads(line)["question"] for line in args.gold.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = questions[:: max(1, len(questions) // args.questions)][: args.questions]
    sides = {"before": args.before.resolve(), "after": None}
    for name, src in sides.items():
        ensure_index(src, args.corpus.resolve(), (args.work / name).resolve())
    workers = {name: Worker(src, (args.work / name).resolve()) for name, src in sides.items()}
    warm: dict[str, list[float]] = {name: [] for name in sides}
    refused: dict[str, int] = {name: 0 for name in sides}
    for q in questions[:5]:
        for w in workers.values():
            w.ask(q)
    for i, q in enumerate(questions):
        for name in (("before", "after") if i % 2 == 0 else ("after", "before")):
            out = workers[name].ask(q)
            warm[name].append(out["ms"])
            refused[name] += out["refused"]
    for w in workers.values():
        w.close()
    cold: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(args.cold):
        for name in (("before", "after") if i % 2 == 0 else ("after", "before")):
            src = sides[name]
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "rag.cli.main", "ask", questions[0], "--index", str((args.work / name).resolve())],
                                  env=env_for(src), cwd=src or ROOT, capture_output=True, text=True, check=False)
            cold[name].append(time.perf_counter() - t)
            if done.returncode != 0:
                raise SystemExit(f"cold rag ask ({name}) failed: {done.stderr[-400:]}")
    result = {"host": record, "date": time.strftime("%Y-%m-%d"), "questions": len(questions),
              "before_source": args.label or str(args.before)}
    for name in sides:
        result[name] = summary(warm[name]) | {"refused": refused[name], "cold_s": round(statistics.median(cold[name]), 3)}
    b, a = result["before"], result["after"]
    result["ratio_after_over_before"] = {"warm_p50": round(a["p50_ms"] / b["p50_ms"], 3), "warm_p95": round(a["p95_ms"] / b["p95_ms"], 3),
                                         "cold": round(a["cold_s"] / b["cold_s"], 3)}
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
