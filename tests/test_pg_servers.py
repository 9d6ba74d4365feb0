"""An index on servers (PostgreSQL catalog + Chroma server): stateless instances, `rag migrate`,
`rag eval` with no folder. The bad states are in tests/test_pg_bad_states.py.

The ``rag`` commands run as subprocesses, each in an empty working folder that must stay empty.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.config import Settings
from rag.index.catalog_pg import PgCatalog

from .conftest import ROOT, SEED_SOURCE
from .pg_helpers import chroma_url
from .stress_worker import TinyEmbedder

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]


def rag(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``rag ARGS`` in ``cwd`` with only the given RAG_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    clean.update(HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False", PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=cwd, env=clean, capture_output=True, check=False,
                          text=True, timeout=240)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def servers(catalog: str, chroma: str | None = None) -> dict[str, str]:
    return {"RAG_CATALOG_URL": catalog, "RAG_CHROMA_URL": chroma or chroma_url()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tables(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def open_tiny(url: str, create: bool = False) -> Assistant:
    settings = Settings(catalog_url=url, chroma_url=chroma_url(), answer={"answerer": "extractive"})
    return Assistant.open(settings=settings, create=create, embedder=TinyEmbedder())  # type: ignore[arg-type]


# -- stateless instances ----------------------------------------------------------------------
def test_an_ingest_on_one_instance_is_answered_by_another_on_its_next_question(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The harbour was rebuilt in 1887 by the council.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # nothing may appear here but the corpus the test wrote
    writer = open_tiny(pg_url, create=True)
    writer.ingest([corpus], root=corpus)
    reader = open_tiny(pg_url)
    question = "When did the old mill burn down?"
    assert reader.ask(question).citations == [] or all(c.source == "a.txt" for c in reader.ask(question).citations)
    (corpus / "b.txt").write_text("The old mill burned down in 1901 and was never rebuilt.\n", encoding="utf-8")
    writer.ingest([corpus], root=corpus)
    answer = reader.ask(question)
    assert [c.source for c in answer.citations] == ["b.txt"]
    assert all(reader.document_text(c.source)[c.start : c.end] == c.quote for c in answer.citations)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]
    writer.close()
    reader.close()


def test_rag_migrate_moves_an_index_folder_to_the_servers(tmp_path: Path, pg_url: str) -> None:
    corpus, folder, work = tmp_path / "corpus", tmp_path / "idx", tmp_path / "work"
    corpus.mkdir()
    work.mkdir()
    (corpus / SEED_SOURCE).write_bytes((ROOT / "corpus" / SEED_SOURCE).read_bytes())
    assert rag(tmp_path, "ingest", str(corpus), "--index", str(folder), "--root", str(corpus)).returncode == 0
    done = rag(work, "migrate", "--index", str(folder), **servers(pg_url))
    assert done.returncode == 0, done.stderr
    assert "copied 1 documents" in done.stdout
    question = "What share of microelectronics came from China?"
    embedded = rag(work, "ask", question, "--json", "--index", str(folder))
    served = rag(work, "ask", question, "--json", **servers(pg_url))
    a, b = json.loads(embedded.stdout), json.loads(served.stdout)
    assert (a["answer"], a["citations"], a["retrieved"]) == (b["answer"], b["citations"], b["retrieved"])
    assert_one_line_error(rag(work, "migrate", "--index", str(folder), **servers(pg_url)), "already holds documents")
    assert list(work.iterdir()) == []


def test_an_eval_of_a_corpus_never_touches_the_servers_index(tmp_path: Path, pg_url: str, embedder: object) -> None:
    """``rag eval --corpus`` ingests into a temporary index and drops its collection afterwards:
    with RAG_CATALOG_URL set, that must not be the servers' shared index."""
    from rag.evals.run import open_assistant

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The harbour was rebuilt in 1887 by the council.\n", encoding="utf-8")
    shared = Assistant.open(settings=Settings(catalog_url=pg_url, chroma_url=chroma_url()), create=True,
                            embedder=embedder)  # type: ignore[arg-type]
    shared.ingest([corpus], root=corpus)
    vectors = shared.index.store.count()
    with open_assistant(Settings(catalog_url=pg_url, chroma_url=chroma_url()), corpus=corpus) as temporary:
        assert not isinstance(temporary.index.catalog, PgCatalog)
    assert shared.index.store.count() == vectors > 0 and [d.source for d in shared.documents()] == ["a.txt"]
    shared.close()


def test_rag_eval_runs_on_the_servers_index_with_no_folder(tmp_path: Path, pg_url: str) -> None:
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    assert rag(work, "ingest", str(ROOT / "corpus"), "--root", str(ROOT / "corpus"), **servers(pg_url)).returncode == 0
    done = rag(work, "eval", str(ROOT / "evals" / "gold" / "seed.jsonl"), "--out", str(out), "--limit", "3",
               **servers(pg_url))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 3 and not any(r.get("error") for r in records) and records[0]["citations"]
    assert list(work.iterdir()) == []
