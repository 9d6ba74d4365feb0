"""Load on app instances that share one index: throughput and latency of C clients spread over N
``rag serve`` instances (e.g. the ones ``scripts/cluster.sh`` starts).

    .venv/bin/python benchmarks/cluster_load.py --urls URL [URL ...] [--clients 8] [--rounds 2] [--out FILE]

Each client is a ``gradio_client`` of one instance (round robin over ``--urls``) and asks its
share of the gold set's questions (evals/gold/seed.jsonl, each asked alone) through ``/ask``,
``--rounds`` times. Every answer is compared with the first answer to the same question: the
instances share one index, so they must agree. Prints one JSON object, and with ``--out`` keeps
it in that file under its number of instances (a run with one URL and a run with two, against
the same ``scripts/cluster.sh 2``, fill benchmarks/results/cluster_load.json, which
benchmarks/docs_tables.py renders), with the host (``benchmarks/host.py``) and the command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from host import host

ROOT = Path(__file__).resolve().parent.parent


def questions(gold: Path) -> list[str]:
    return [json.loads(line)["question"] for line in gold.read_text(encoding="utf-8").splitlines() if line.strip()]


def keep(out: Path, result: dict[str, Any], command: str) -> None:
    """Put ``result`` into ``out`` under its number of instances, beside the other runs' results
    (a run on another host replaces them all: the runs of one file compare on one host)."""
    kept: dict[str, Any] = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    same = ("cpu", "cores")  # the GEMM figure varies a little from run to run on one host
    if {k: kept.get("host", {}).get(k) for k in same} != {k: result["host"][k] for k in same}:
        kept = {"host": result["host"], "runs": {}}
    kept["runs"][str(result["instances"])] = {**result, "command": command}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(kept, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", nargs="+", required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gold", type=Path, default=ROOT / "evals" / "gold" / "seed.jsonl")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the result in this JSON file, e.g. benchmarks/results/cluster_load.json")
    args = parser.parse_args()
    from gradio_client import Client

    machine = host()  # before the load: its GEMM figure must not compete with the instances
    started_at = datetime.now(UTC).isoformat(timespec="seconds")

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
    result = {
        "instances": len(args.urls), "clients": args.clients, "rounds": args.rounds, "started": started_at,
        "questions": len(latencies), "seconds": round(seconds, 2),
        "throughput_qps": round(len(latencies) / seconds, 2),
        "p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 1) if ordered else None,
        "errors": len(errors), "disagreeing_questions": sum(len(v) > 1 for v in answers.values()),
        "host": machine,
    }
    print(json.dumps(result))
    if args.out is not None:
        urls = " ".join("URL" for _ in args.urls)  # the ports are the run's own
        keep(args.out, result, f"benchmarks/cluster_load.py --urls {urls} --clients {args.clients} --rounds {args.rounds}")


if __name__ == "__main__":
    main()
