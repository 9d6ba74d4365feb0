"""One measurement in a fresh process, so that its peak RSS and start-up belong to one system.

    .venv/bin/python benchmarks/worker.py ingest --system NAME --corpus DIR --store DIR --out FILE
    .venv/bin/python benchmarks/worker.py raw-encode --corpus DIR --out FILE
    .venv/bin/python benchmarks/worker.py query  --system NAME --store DIR --questions FILE --out FILE
    .venv/bin/python benchmarks/worker.py grow   --store DIR --files LIST --questions FILE --out FILE

``benchmarks/speed.py`` starts these and reads the JSON each writes to ``--out``; every result
carries the process's peak resident memory (``ru_maxrss``). ``query`` opens the stored index,
answers the first question once (cold, timed from the process start the parent passes in
``BENCH_SPAWN_TIME``), then answers every question, timing each call (warm). ``grow`` adds files
to an index of this project (embedded, or on the server ``--chroma-url`` names, with the catalog
in the PostgreSQL database ``--catalog-url`` names) and then runs the warm queries. ``--profile FILE`` writes a pyinstrument profile of the warm queries.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from baselines import make_system


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def since_spawn() -> float | None:
    spawned = os.environ.get("BENCH_SPAWN_TIME")
    return round(time.time() - float(spawned), 3) if spawned else None


def read_questions(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def ask_all(system: Any, questions: list[dict[str, Any]], profile: Path | None) -> tuple[list[float], list[dict]]:
    """Every question once, in order; the wall time of each ``ask`` call in ms."""
    profiler = _start_profiler() if profile is not None else None
    latencies, records = [], []
    for q in questions:
        started = time.perf_counter()
        record = system.ask(q["question"], q.get("history") or [])
        latencies.append(round((time.perf_counter() - started) * 1000, 3))
        records.append({"id": q["id"], **record})
    if profiler is not None:
        _write_profile(profiler, profile)
    return latencies, records


def _start_profiler() -> Any:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    return profiler


def _write_profile(profiler: Any, path: Path) -> None:
    """The call tree as text, and ``path.json``: the functions with the most time of their own."""
    profiler.stop()
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    totals: dict[str, float] = {}

    def walk(frame: Any) -> None:
        key = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        totals[key] = totals.get(key, 0.0) + frame.total_self_time
        for child in frame.children:
            if not child.is_synthetic:  # synthetic frames' time is already the parent's self time
                walk(child)

    root = profiler.last_session.root_frame()
    if root is None:
        return
    walk(root)
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:15]
    stages: dict[str, float] = {}
    _stage_times(root, stages)
    Path(str(path) + ".json").write_text(json.dumps(
        {"total_s": round(root.time, 3), "stages_s": {k: round(v, 3) for k, v in stages.items()},
         "self_time_top": [[k, round(v, 3)] for k, v in top]}, indent=1))


# Pipeline stages of this project, by (file suffix, function): a profile's time is summed per stage
# at the outermost matching frame, so a stage's figure includes everything it calls.
STAGES = {
    ("rag/ingest/readers.py", "read_document"): "read files",
    ("rag/ingest/pipeline.py", "_prepare"): "split sentences + chunk",
    ("rag/index/embedding.py", "embed"): "embed (ONNX Runtime)",
    ("rag/index/vectors.py", "upsert"): "Chroma writes",
    ("rag/index/vectors.py", "delete"): "Chroma writes",
    ("rag/index/vectors.py", "ids_for_document"): "Chroma reads at ingest",
    ("rag/index/catalog.py", "put_document"): "catalog (SQLite) writes",
    ("rag/index/catalog.py", "term_stats"): "BM25 term statistics",
    ("rag/index/folder.py", "embed_query"): "question embedding (ONNX Runtime)",
    ("rag/index/vectors.py", "query"): "Chroma query",
    ("rag/index/catalog.py", "lexical_search"): "BM25 search",
    ("rag/index/catalog.py", "chunks"): "catalog chunk reads",
    ("rag/answering/extractive.py", "answer"): "extractive answerer",
    ("rag/assistant.py", "_gate"): "citation gate",
}


def _stage_times(frame: Any, stages: dict[str, float]) -> None:
    path = (frame.file_path or "").replace("\\", "/")
    name = (frame.function or "").rsplit(".", 1)[-1]
    stage = next((s for (suffix, fn), s in STAGES.items() if fn == name and path.endswith(suffix)), None)
    if stage is not None:
        stages[stage] = stages.get(stage, 0.0) + frame.time
        return
    for child in frame.children:
        _stage_times(child, stages)


def cmd_ingest(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"system": args.system}
    system = make_system(args.system, args.store, args.chroma_url)
    started = time.perf_counter()
    system.prepare()
    out["setup_s"] = round(time.perf_counter() - started, 3)  # imports and model load, not timed below
    profiler = _start_profiler() if args.profile else None
    started = time.perf_counter()
    out.update(system.ingest(args.corpus))
    out["ingest_s"] = round(time.perf_counter() - started, 3)
    if profiler is not None:
        _write_profile(profiler, args.profile)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


def cmd_raw_encode(args: argparse.Namespace) -> dict[str, Any]:
    """benchmarks/ingest.py: ingest into a fresh temporary index, then raw encode of the same chunk
    texts with the same loaded model (the compute bound), in this one process."""
    import ingest as ingest_bench

    return {**ingest_bench.measure(args.corpus, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def cmd_query(args: argparse.Namespace) -> dict[str, Any]:
    questions = read_questions(args.questions)
    system = make_system(args.system, args.store, args.chroma_url)
    system.open()
    ready_s = since_spawn()
    started = time.perf_counter()
    system.ask(questions[0]["question"], questions[0].get("history") or [])
    first_query_ms = (time.perf_counter() - started) * 1000
    first_answer_s = since_spawn()
    rss_before = peak_rss_mb()
    latencies, records = ask_all(system, questions, args.profile)
    return {
        "system": args.system,
        "ready_s": ready_s,
        "first_answer_s": first_answer_s,
        "first_query_ms": round(first_query_ms, 2),
        "latencies_ms": latencies,
        "records": records if args.keep_records else [],
        "peak_rss_after_first_answer_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def cmd_grow(args: argparse.Namespace) -> dict[str, Any]:
    files = [Path(line) for line in args.files.read_text().splitlines() if line.strip()]
    system = make_system("rag-cite", args.store, args.chroma_url, args.embedding_cache, args.cache_mode)
    system.prepare()
    started = time.perf_counter()
    ingested = system.ingest(files)
    ingest_s = time.perf_counter() - started
    questions = read_questions(args.questions)
    for q in questions[: args.warmup]:
        system.ask(q["question"], [])
    latencies, _ = ask_all(system, questions, args.profile)
    return {**ingested, "ingest_s": round(ingest_s, 3), "latencies_ms": latencies,
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest")
    p.add_argument("--system", required=True)
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--store", type=Path, required=True)
    r = sub.add_parser("raw-encode", help="this project's ingest against raw encode (benchmarks/ingest.py)")
    r.add_argument("--corpus", type=Path, required=True)
    q = sub.add_parser("query")
    q.add_argument("--system", required=True)
    q.add_argument("--store", type=Path, required=True)
    q.add_argument("--questions", type=Path, required=True)
    q.add_argument("--keep-records", action="store_true")
    g = sub.add_parser("grow")
    g.add_argument("--store", type=Path, required=True)
    g.add_argument("--files", type=Path, required=True, help="a text file: one corpus file path a line")
    g.add_argument("--questions", type=Path, required=True)
    g.add_argument("--warmup", type=int, default=5)
    g.add_argument("--embedding-cache", type=Path, default=None, help="keep or reuse bulk vectors here (embed_cache.py)")
    g.add_argument("--cache-mode", choices=["write", "read"], default="write")
    for sp in (p, r, q, g):
        sp.add_argument("--out", type=Path, required=True)
        sp.add_argument("--chroma-url", default=None)
        sp.add_argument("--catalog-url", default=None, help="postgresql://...: the catalog there (RAG_CATALOG_URL)")
        sp.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    if args.catalog_url:
        # Settings() reads it like a deployed instance would; the parent strips RAG_* (speed.child_env).
        os.environ["RAG_CATALOG_URL"] = args.catalog_url
    commands = {"ingest": cmd_ingest, "raw-encode": cmd_raw_encode, "query": cmd_query, "grow": cmd_grow}
    result = commands[args.command](args)
    args.out.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
