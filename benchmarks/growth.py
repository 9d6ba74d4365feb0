"""How ingest time and warm query latency grow with the corpus, embedded and on servers.

For each backend one index grows through the sizes of ``benchmarks/scale_corpus.py`` (about 1k,
10k and 100k chunks): each step ingests the files that take the index to the next size (an incremental ``Assistant.ingest``: embedding, Chroma and
catalog writes, and the BM25 rebuild over *all* chunks), then answers a fixed sample of SQuAD
questions through ``Assistant.ask`` after a few warm-up questions. Every step is a fresh process
(``worker.py grow``), so its peak RSS is its own. The backends:

- ``embedded``: the index folder (SQLite catalog, ``PersistentClient`` Chroma);
- ``server``: the SQLite catalog beside a ``chroma run`` server;
- ``servers``: the deployment of docs/deploy.md, a PostgreSQL catalog (a throwaway cluster of
  ``scripts/pg_temp.sh``) beside a ``chroma run`` server: the worker keeps nothing local.

The servers bind 127.0.0.1, start before the backend's first step and stop after its last (or
when a step fails). Their memory is recorded after each step: the ``chroma run`` process tree's
RSS, and PostgreSQL's summed PSS (its processes share their buffers: RSS would count them once
a process).

Encoding is the same work for every backend and most of the ingest time, so by default the later
backends reuse the first one's vectors (benchmarks/embed_cache.py) and their ingest time is their
measured time plus the first run's encoding time for the same texts: the comparison measures the
stores, not the encoder twice. ``reencode`` (the ``--server-reencode`` option of run.py) encodes
again and measures everything directly.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from host import host
from scale_corpus import files_for, write_corpus
from speed import (
    BIN,
    ROOT,
    BenchmarkError,
    Calm,
    _tree_rss_mb,
    child_env,
    free_port,
    load,
    run_worker,
)

DEFAULT_SIZES = (1_000, 10_000, 100_000)


BACKENDS = ("embedded", "server", "servers")
PG_TEMP = ROOT / "scripts" / "pg_temp.sh"


@contextmanager
def chroma_server(path: Path, log: Path) -> Iterator[tuple[str, int]]:
    """``chroma run`` on 127.0.0.1 and a free port; yields (URL, pid); stopped on exit."""
    port = free_port()
    log_file = log.open("w")
    proc = subprocess.Popen([str(BIN / "chroma"), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            env=child_env(), stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise BenchmarkError(f"chroma run exited with {proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchmarkError(f"chroma run did not answer within 60 s; see {log}") from None
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


@contextmanager
def postgres_server() -> Iterator[tuple[str, int]]:
    """A throwaway PostgreSQL cluster (``scripts/pg_temp.sh``) on 127.0.0.1 and a free port with an
    empty database ``rag``; yields (its URL, the postmaster's pid); stopped and deleted on exit."""
    import psycopg

    # A folder of its own under the system's temporary folder: as root the cluster belongs to
    # `nobody`, who may not be able to enter the work folder (scripts/cluster.sh does the same).
    folder = Path(tempfile.mkdtemp(prefix="growth-pg-"))
    try:
        done = subprocess.run(["bash", str(PG_TEMP), "start", str(folder), str(free_port())], capture_output=True,
                              text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise BenchmarkError(f"scripts/pg_temp.sh start failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
        admin_url = done.stdout.strip().splitlines()[-1]
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE rag")
        pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
        yield admin_url.rsplit("/", 1)[0] + "/rag", pid
    finally:
        subprocess.run(["bash", str(PG_TEMP), "stop", str(folder)], capture_output=True, timeout=120, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _tree_pss_mb(pid: int) -> float:
    """Proportional set size of a process and its children, MiB: shared memory (PostgreSQL's
    buffers) counted once in all, not once a process as summed RSS would."""
    import psutil

    try:
        root = psutil.Process(pid)
        return sum(p.memory_full_info().pss for p in [root, *root.children(recursive=True)]) / 2**20
    except psutil.Error:
        return float("nan")


@dataclass(frozen=True)
class Servers:
    """What a backend's steps run against: worker arguments and the servers to weigh after each step."""

    args: tuple[str, ...] = ()
    chroma_pid: int | None = None
    postgres_pid: int | None = None

    def memory(self) -> dict[str, float | None]:
        chroma = round(_tree_rss_mb(self.chroma_pid), 1) if self.chroma_pid else None
        postgres = round(_tree_pss_mb(self.postgres_pid), 1) if self.postgres_pid else None
        total = None if chroma is None else round(chroma + (postgres or 0.0), 1)
        return {"server_rss_mb": total, "chroma_rss_mb": chroma, "postgres_pss_mb": postgres}


@contextmanager
def backend_servers(backend: str, store: Path, work: Path) -> Iterator[Servers]:
    """Start what ``backend`` needs (nothing for ``embedded``) and stop it afterwards."""
    if backend == "embedded":
        yield Servers()
        return
    with chroma_server(store / "server-data", work / f"chroma-{backend}.log") as (url, chroma_pid):
        if backend == "server":
            yield Servers(("--chroma-url", url), chroma_pid)
            return
        with postgres_server() as (catalog_url, postgres_pid):
            yield Servers(("--chroma-url", url, "--catalog-url", catalog_url), chroma_pid, postgres_pid)


def _grow(backend: str, store: Path, sizes: list[int], corpus: Path, manifest: dict, questions: Path,
          work: Path, servers: Servers, progress: Any, calm: Calm | None,
          cache: Path | None, encode_s: dict[int, float], first: str) -> list[dict[str, Any]]:
    """Grow one index through ``sizes``. With a ``cache`` the first backend's vectors are kept and
    later backends reuse them: their step time is then measured without encoding, and the
    first backend's encoding time for the same texts (``encode_s``, by size) is added."""
    steps = []
    cumulative = 0.0
    for size in sizes:
        files = work / f"files-{size}.txt"
        files.write_text("\n".join(str(p) for p in files_for(corpus, manifest, size)) + "\n")
        args = ["grow", "--store", str(store), "--files", str(files), "--questions", str(questions), *servers.args]
        if cache is not None:  # the first backend writes the vectors, the others read them
            args += ["--embedding-cache", str(cache), "--cache-mode", "write" if backend == first else "read"]
        progress(f"growth: {backend}, {size:,} chunks")
        r = run_worker(args, work / f"grow-{backend}-{size}.json", work / f"grow-{backend}-{size}.log", calm=calm)
        reused = backend != first and cache is not None
        if not reused and "encode_s" in r:
            encode_s[size] = r["encode_s"]
        step_s = r["ingest_s"] + (encode_s.get(size, 0.0) if reused else 0.0)
        cumulative += step_s
        lat = sorted(r.pop("latencies_ms"))
        new_chunks = r["chunks_written"]
        steps.append({
            "backend": backend, "target": size, "chunks": r["chunks"], "documents": r["documents"],
            "step_chunks": new_chunks, "step_ingest_s": round(step_s, 1), "ingest_s_cumulative": round(cumulative, 1),
            "step_chunks_per_s": round(new_chunks / step_s, 1) if step_s else None,
            "measured_ingest_s": r["ingest_s"], "encode_s": r.get("encode_s"), "vectors_reused": reused,
            "queries": len(lat), "p50_ms": _pct(lat, 50), "p95_ms": _pct(lat, 95),
            "peak_rss_mb": r["peak_rss_mb"], **servers.memory(),
            "load_before": r["load_before"], "load_after": r["load_after"],
        })
    return steps


def _pct(values: list[float], q: float) -> float:
    from rag.evals.metrics import percentile

    return round(float(percentile(values, q)), 1)


def run_growth(work: Path, sizes: list[int], questions: Path, backends: list[str], progress: Any,
               seed: int = 0, calm: Calm | None = None, reencode: bool = False) -> dict[str, Any]:
    """Grow one index per backend through ``sizes``; the steps, the generator manifest, timings."""
    for backend in backends:
        if backend not in BACKENDS:
            raise ValueError(f"backend ({backend!r}) must be one of {', '.join(BACKENDS)}")
    corpus = work / "scaled"
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    machine = host()  # before the run: its GEMM figure should not compete with a step
    started = time.perf_counter()
    progress(f"growth: generating the scaled corpus up to {max(sizes):,} chunks")
    manifest = write_corpus(corpus, sizes, seed)
    generated_s = time.perf_counter() - started
    steps: list[dict[str, Any]] = []
    cache = None if reencode else work / "embedding-cache"
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)  # never reuse vectors from an earlier run
    encode_s: dict[int, float] = {}
    for backend in backends:
        store = work / f"growth-{backend}"
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir(parents=True)
        with backend_servers(backend, store, work) as servers:
            steps += _grow(backend, store / "index", sizes, corpus, manifest, questions, work, servers, progress, calm,
                           cache, encode_s, backends[0])
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)
    return {"started": started_at, "host": machine, "backends": backends, "manifest": manifest,
            "generate_s": round(generated_s, 1), "steps": steps, "reencode": reencode,
            "seconds": round(time.perf_counter() - started, 1), "load_end": load()}


def main() -> None:
    """Growth alone (benchmarks/run.py runs it as one of its parts), e.g. the embedded store only."""
    import argparse
    import json
    import sys

    import quality

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--backends", default="embedded,server",
                    help="comma-separated, the first one encodes: embedded, server (SQLite + chroma run), "
                         "servers (PostgreSQL + chroma run)")
    ap.add_argument("--max-chunks", type=int, default=max(DEFAULT_SIZES))
    ap.add_argument("--questions", type=int, default=200, help="SQuAD questions asked warm at each step")
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "results" / "tmp")
    ap.add_argument("--out", type=Path, required=True, help="JSON file for the steps")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    _, gold = quality.prepare_squad(args.work)
    questions = args.work / "growth-questions.jsonl"
    items = quality.load_items(gold)[: args.questions]
    quality.write_questions([i.model_copy(update={"history": []}) for i in items], questions)
    sizes = [s for s in DEFAULT_SIZES if s <= args.max_chunks] or [args.max_chunks]
    result = run_growth(args.work, sizes, questions, args.backends.split(","), lambda m: print(m, flush=True))
    result["command"] = " ".join(["benchmarks/growth.py", *sys.argv[1:]])
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for step in result["steps"]:
        print({k: step.get(k) for k in ("backend", "chunks", "step_ingest_s", "encode_s", "ingest_s_cumulative",
                                         "p50_ms", "p95_ms", "peak_rss_mb", "server_rss_mb", "load_before",
                                         "load_after")})


if __name__ == "__main__":  # pragma: no cover
    main()
