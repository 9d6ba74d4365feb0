"""The server pair in the benchmarks: growth's ``servers`` backend (a PostgreSQL catalog beside a
``chroma run`` server, started and stopped by benchmarks/growth.py), the load benchmark's kept
results, and their section of docs/measurements.md with and without results.

The growth itself is never run here (minutes); one ``worker.py grow`` step on one seed file is,
against the servers, to check that it keeps nothing local.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

from .conftest import ROOT, SEED_SOURCE

sys.path.insert(0, str(ROOT / "benchmarks"))

import cluster_load  # noqa: E402
import docs_tables  # noqa: E402
import growth  # noqa: E402

PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
HOST = {"cpu": "Test CPU", "cores": 2, "flags": ["avx2"], "gemm_gflops_1core": 80.0}


def load_run(instances: int, qps: float, host: dict | None = None) -> dict:
    return {"instances": instances, "clients": 8, "rounds": 2, "started": "2026-12-02T19:00:00+00:00",
            "questions": 98, "seconds": 7.0, "throughput_qps": qps, "p50_ms": 400.0, "p95_ms": 700.0, "errors": 0,
            "disagreeing_questions": 0, "host": host or HOST}


def test_the_section_says_not_measured_yet_with_the_commands_when_results_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docs_tables, "RESULTS", tmp_path)
    text = "\n".join(docs_tables.servers_section())
    assert "## Many machines, one index" in text
    assert text.count("not measured yet") == 2
    assert "--backends embedded,servers --out benchmarks/results/growth-servers.json" in text
    assert "cluster_load.py --urls http://127.0.0.1:7860 --out benchmarks/results/cluster_load.json" in text


def test_the_section_renders_growth_side_by_side_and_the_load_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def step(backend: str, chunks: int, ingest: float, p50: float, memory: float | None) -> dict:
        return {"backend": backend, "target": chunks, "chunks": chunks, "ingest_s_cumulative": ingest, "p50_ms": p50,
                "p95_ms": 2 * p50, "server_rss_mb": memory}

    steps = [step("embedded", 1000, 20.0, 50.0, None), step("embedded", 10_000, 200.0, 60.0, None),
             step("servers", 1000, 30.0, 55.0, 170.0), step("servers", 10_000, 300.0, 90.0, 400.0)]
    (tmp_path / "growth-servers.json").write_text(json.dumps(
        {"command": "benchmarks/growth.py --backends embedded,servers", "started": "2026-12-02T18:00:00+00:00",
         "host": HOST, "steps": steps}))
    for run in (load_run(2, 15.5), load_run(1, 14.0)):
        cluster_load.keep(tmp_path / "cluster_load.json", run, "benchmarks/cluster_load.py --urls URL")
    monkeypatch.setattr(docs_tables, "RESULTS", tmp_path)
    lines = docs_tables.servers_section()
    assert "not measured yet" not in "\n".join(lines)
    assert "| 1,000 | 20.0 | 30.0 | 1.50 | 50.0 | 55.0 | 1.10 | 100.0 | 110.0 | 170 |" in lines
    assert "| 10,000 | 200.0 | 300.0 | 1.50 | 60.0 | 90.0 | 1.50 | 120.0 | 180.0 | 400 |" in lines
    rows = [line for line in lines if line.startswith("| 1 | 8 |") or line.startswith("| 2 | 8 |")]
    assert rows == ["| 1 | 8 | 98 | 14.00 | 400 | 700 | 0 | 0 |", "| 2 | 8 | 98 | 15.50 | 400 | 700 | 0 | 0 |"]
    assert sum("Test CPU, 2 cores" in line for line in lines) == 2  # each table names its host


def test_load_results_are_kept_by_instances_and_a_run_on_another_host_starts_afresh(tmp_path: Path) -> None:
    out = tmp_path / "cluster_load.json"
    cluster_load.keep(out, load_run(1, 10.0), "c1")
    cluster_load.keep(out, load_run(2, 12.0, {**HOST, "gemm_gflops_1core": 79.0}), "c2")  # same host, GEMM noise
    kept = json.loads(out.read_text())
    assert sorted(kept["runs"]) == ["1", "2"] and kept["runs"]["2"]["command"] == "c2"
    cluster_load.keep(out, load_run(1, 30.0, {**HOST, "cpu": "Other CPU"}), "c3")
    kept = json.loads(out.read_text())
    assert list(kept["runs"]) == ["1"] and kept["host"]["cpu"] == "Other CPU"


def test_growth_refuses_an_unknown_backend_before_generating_anything(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'postgres'"):
        growth.run_growth(tmp_path, [1000], tmp_path / "q.jsonl", ["embedded", "postgres"], print)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.server
@pytest.mark.timeout(300)
@pytest.mark.skipif(not (PGBIN / "initdb").exists(), reason=f"needs PostgreSQL's initdb in {PGBIN} (PGBIN)")
def test_the_servers_backend_grows_an_index_that_keeps_nothing_local_and_stops_its_servers(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / SEED_SOURCE).write_bytes((ROOT / "corpus" / SEED_SOURCE).read_bytes())
    files, questions, store = tmp_path / "files.txt", tmp_path / "q.jsonl", tmp_path / "growth-servers" / "index"
    files.write_text(f"{corpus / SEED_SOURCE}\n")
    questions.write_text(json.dumps({"id": "q1", "question": "What share of microelectronics came from China?"}) + "\n")
    store.parent.mkdir()
    with growth.backend_servers("servers", store.parent, tmp_path) as servers:
        args = dict(zip(servers.args[::2], servers.args[1::2], strict=True))
        with urllib.request.urlopen(f"{args['--chroma-url']}/api/v2/heartbeat", timeout=5):
            pass
        r = growth.run_worker(["grow", "--store", str(store), "--files", str(files), "--questions", str(questions),
                               "--warmup", "1", *servers.args], tmp_path / "grow.json", tmp_path / "grow.log")
        # psutil comes with the benchmarks' extra (bench), which the tests do not install
        memory = servers.memory() if importlib.util.find_spec("psutil") else None
        with psycopg.connect(args["--catalog-url"]) as conn:
            (documents,), = conn.execute("SELECT count(*) FROM documents").fetchall()
        pids = (servers.chroma_pid, servers.postgres_pid)
    assert r["documents"] == documents == 1 and r["chunks"] > 0 and len(r["latencies_ms"]) == 1
    assert not store.exists()  # the catalog is in PostgreSQL, the vectors on the Chroma server
    if memory is not None:
        chroma, postgres = memory["chroma_rss_mb"], memory["postgres_pss_mb"]
        assert chroma and postgres and chroma > 0 and postgres > 0
        assert memory["server_rss_mb"] == pytest.approx(chroma + postgres, abs=0.11)
    for pid in pids:
        assert pid is not None and not running(pid), f"server {pid} still runs"


def running(pid: int, within_s: float = 10.0) -> bool:
    """Whether ``pid`` still runs after ``within_s`` (a stopped postmaster takes a moment to exit;
    a zombie waiting for its parent counts as stopped)."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        except FileNotFoundError:
            return False
        time.sleep(0.1)
    return True
