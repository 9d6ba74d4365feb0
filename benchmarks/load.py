"""Concurrent load: throughput and p95 latency for 16 threads and for 16 UI API clients.

    .venv/bin/python benchmarks/load.py [--index DIR] [--rounds N] [--workers 16] [--json PATH]

Without ``--index`` it ingests corpus/ into a temporary index first. Each round asks every
conversation of the seed gold set (evals/gold/seed.jsonl; a follow-up is asked with the history
its own session built), first by ``--workers`` threads on one ``Assistant``, then by as many
``gradio_client`` clients of the UI's ``/ask`` endpoint, with the app served in this process on
127.0.0.1 (a free port). Every answer is compared with the one asked alone; mismatches and
errors are counted and printed. Bounded: ``--rounds`` rounds, each question timing out after
``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from rag.assistant import Assistant  # noqa: E402
from rag.config import Settings  # noqa: E402

Ask = Callable[[str, list[dict[str, str]]], dict[str, Any]]
Conversation = tuple[str, ...]


def conversations(gold: Path) -> list[Conversation]:
    """Each gold item as a session: its history questions, then its question."""
    out = []
    for line in gold.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        out.append((*[h["question"] for h in item.get("history", [])], item["question"]))
    return out


def converse(ask: Ask, questions: Conversation, latencies: list[float]) -> list[dict[str, Any]]:
    """Ask in order with this session's own history; records without their timings."""
    history: list[dict[str, str]] = []
    records = []
    for question in questions:
        started = time.perf_counter()
        record = ask(question, list(history))
        latencies.append(time.perf_counter() - started)
        records.append({k: v for k, v in record.items() if k != "timings_ms"})
        history.append({"question": record["question"], "answer": record["answer"]})
    return records


def run(label: str, ask: Ask, convs: list[Conversation], expected: list[list[dict]], workers: int, rounds: int) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    errors = mismatches = 0

    def one(i: int) -> list[dict[str, Any]]:
        mine: list[float] = []
        try:
            return converse(ask, convs[i], mine)
        finally:
            with lock:
                latencies.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [(i, pool.submit(one, i)) for _ in range(rounds) for i in range(len(convs))]
        for i, future in futures:
            try:
                got = future.result(timeout=600)
            except Exception as e:  # noqa: BLE001 - counted and shown, the run goes on
                errors += 1
                print(f"  error in conversation {i}: {type(e).__name__}: {str(e)[:120]}", file=sys.stderr)
                continue
            mismatches += got != expected[i]
    wall = time.perf_counter() - started
    result = {
        "label": label,
        "workers": workers,
        "questions": len(latencies),
        "seconds": round(wall, 2),
        "throughput_qps": round(len(latencies) / wall, 2),
        "median_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(statistics.quantiles(latencies, n=20)[-1] * 1000, 1),
        "errors": errors,
        "mismatches": mismatches,
    }
    print(
        f"{label}: {result['questions']} questions in {wall:.1f} s = {result['throughput_qps']} q/s; "
        f"median {result['median_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms; "
        f"{errors} errors, {mismatches} conversations differing from one-by-one"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="an existing index folder (default: ingest corpus/ into a temp one)")
    parser.add_argument("--gold", type=Path, default=ROOT / "evals" / "gold" / "seed.jsonl")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per UI question")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="rag-bench-load-"))
    try:
        index_dir = args.index or workdir / "index"
        settings = Settings(index_dir=index_dir, chroma_url=None, corpus_dir=ROOT / "corpus")
        settings = settings.with_overrides(ui={"host": "127.0.0.1", "port": 0})
        assistant = Assistant.open(settings=settings, create=args.index is None)
        if args.index is None:
            assistant.ingest([ROOT / "corpus"])
        convs = conversations(args.gold)

        def ask_local(question: str, history: list[dict[str, str]]) -> dict[str, Any]:
            return assistant.ask(question, history=history).model_dump(mode="json")

        expected = [converse(ask_local, c, []) for c in convs]  # the answers asked alone; also a warm-up
        results = [
            run("1 thread (one by one)", ask_local, convs, expected, 1, 1),
            run(f"{args.workers} threads, one Assistant", ask_local, convs, expected, args.workers, args.rounds),
        ]
        results.append(ui_load(assistant, settings, convs, expected, args))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def ui_load(assistant: Assistant, settings: Settings, convs: list[Conversation], expected: list[list[dict]],
            args: argparse.Namespace) -> dict[str, Any]:
    """The same load through the UI's /ask endpoint, one gradio_client client per worker."""
    from gradio_client import Client

    from ui.app import build_app, launch

    blocks = build_app(assistant, settings)
    url = launch(blocks, settings, block=False)
    try:
        clients = [Client(url, verbose=False) for _ in range(args.workers)]
        free = list(clients)
        lock = threading.Lock()

        def ask_remote(question: str, history: list[dict[str, str]]) -> dict[str, Any]:
            with lock:
                client = free.pop()
            try:
                return client.submit(question=question, history=history, api_name="/ask").result(timeout=args.timeout)
            finally:
                with lock:
                    free.append(client)

        return run(f"{args.workers} gradio_client clients, UI /ask", ask_remote, convs, expected, args.workers, args.rounds)
    finally:
        blocks.close()


if __name__ == "__main__":
    main()
