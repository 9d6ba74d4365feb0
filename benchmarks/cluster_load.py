"""Load on app instances that share one index: throughput and latency of C clients spread over N
``rag serve`` instances (e.g. the ones ``scripts/cluster.sh`` starts).

    .venv/bin/python benchmarks/cluster_load.py --urls URL [URL ...] [--clients 8] [--rounds 2]

Each client is a ``gradio_client`` of one instance (round robin over ``--urls``) and asks its
share of the gold set's questions (evals/gold/seed.jsonl, each asked alone) through ``/ask``,
``--rounds`` times. Every answer is compared with the first answer to the same question: the
instances share one index, so they must agree. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def questions(gold: Path) -> list[str]:
    return [json.loads(line)["question"] for line in gold.read_text(encoding="utf-8").splitlines() if line.strip()]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", nargs="+", required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gold", type=Path, default=ROOT / "evals" / "gold" / "seed.jsonl")
    args = parser.parse_args()
    from gradio_client import Client

    asked = questions(args.gold)
    clients = [Client(args.urls[i % len(args.urls)], verbose=False) for i in range(args.clients)]
    for client in clients[: len(args.urls)]:  # warm every instance once
        client.predict(asked[0], api_name="/ask")
    latencies: list[float] = []
    answers: dict[str, set[str]] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        mine = asked[n :: args.clients] * args.rounds
        for question in mine:
            started = time.perf_counter()
            try:
                record: dict[str, Any] = clients[n].predict(question, api_name="/ask")
            except Exception as e:  # noqa: BLE001 - counted, not fatal
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                continue
            with lock:
                latencies.append(time.perf_counter() - started)
                answers.setdefault(question, set()).add(json.dumps([record["answer"], record["citations"]]))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(args.clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    print(json.dumps({
        "instances": len(args.urls), "clients": args.clients, "questions": len(latencies), "seconds": round(seconds, 2),
        "throughput_qps": round(len(latencies) / seconds, 2),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 1),
        "errors": len(errors), "disagreeing_questions": sum(len(v) > 1 for v in answers.values()),
        "host": cpu_model(),
    }))


if __name__ == "__main__":
    main()
