"""Many machines, one index: two `rag serve` instances and a writer on a PostgreSQL catalog and a
Chroma server, each process in its own empty working folder.

While the writer ingests (and is SIGKILLed at random points: at a random moment, or at a random
named failpoint, then run again), both instances answer questions through their ``/ask`` API
with no error, and every citation they return quotes the text of one version of its document.
After the last ingest both answer from the new document, and the servers hold exactly what a
clean ingest of the final corpus holds: documents, versions, chunk and sentence ids, Chroma ids
and vectors, lexical rows, nothing pending. No process wrote into its working folder.

The default run starts the writer 4 times (about 50 s here); the ``slow`` run 30 times and
needs 20 or more of them killed (about 3 minutes). RAG_TEST_SEED repeats a run.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.index.folder import Index

from .conftest import CORPUS, ROOT, SEED_SOURCE
from .pg_helpers import chroma_url, fresh_database, server_url
from .test_reliability_crash import V1, V2, write_corpus

pytestmark = [pytest.mark.server, pytest.mark.timeout(900)]

FAILPOINTS = ["ingest.discovered", "ingest.embedded", "ingest.marked_pending", "ingest.chroma_upserted",
              "ingest.chroma_written", "ingest.catalog_committed", "ingest.prune_chroma_deleted",
              "catalog.put_document.before_commit", "catalog.delete_document.before_commit", "index.repair.resynced"]
QUESTIONS = ["When was the harbour rebuilt?", "What happened to the mill?", "When did the tram line close?",
             "What share of microelectronics came from China?", "When was the swing bridge opened?"]
NEW_QUESTION = "Who opened the swing bridge?"
# More files than V1/V2 alone, so that an ingest lasts long enough to be killed inside it.
FILLER = {f"filler/{i:02d}.txt": f"Report {i}: the ferry to island {i} ran {i + 2} times a week in {1900 + i}. "
          f"Its captain was paid {i * 10} pounds. The pier was painted in {1950 + i}.\n" for i in range(10)}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False", GRADIO_ANALYTICS_ENABLED="False",
               PYTHONPATH=str(ROOT), **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dbs() -> Iterator[tuple[str, str]]:
    """(the shared index's catalog, a clean ingest's catalog): two fresh databases."""
    with fresh_database(server_url()) as shared, fresh_database(server_url()) as clean:
        yield shared, clean


def texts_of(*versions: dict[str, str]) -> dict[str, list[str]]:
    """Every text each document may have had."""
    out: dict[str, list[str]] = {SEED_SOURCE: [(CORPUS / SEED_SOURCE).read_text(encoding="utf-8")]}
    for files in versions:
        for name, text in files.items():
            out.setdefault(name, []).append(text)
    return out


class Asker(threading.Thread):
    """Asks both instances questions until stopped; records errors and unverifiable citations."""

    def __init__(self, urls: list[str], texts: dict[str, list[str]]) -> None:
        super().__init__(daemon=True)
        from gradio_client import Client

        self.clients = [Client(url, verbose=False) for url in urls]
        self.texts = texts
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.answers = 0
        self.citations = 0

    def run(self) -> None:
        rng = random.Random(7)
        while not self.stop.is_set():
            for client in self.clients:
                self.check(client.predict, rng.choice(QUESTIONS))

    def check(self, predict: object, question: str) -> None:
        try:
            record = predict(question, api_name="/ask")  # type: ignore[operator]
        except Exception as e:  # noqa: BLE001 - every failure is what this test counts
            self.errors.append(f"{question!r}: {type(e).__name__}: {e}")
            return
        self.answers += 1
        for c in record["citations"]:
            self.citations += 1
            if not any(t[c["start"] : c["end"]] == c["quote"] for t in self.texts.get(c["source"], [])):
                self.errors.append(f"citation of {c['source']} {c['start']}-{c['end']} quotes no version of it")


def start_serve(cwd: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cwd.mkdir()
    return subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(port)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(cwd.parent / f"serve-{port}.log", "wb"))


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"rag serve exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"rag serve at {url} not ready after {timeout} s")


def server_state(catalog_url: str, embedder: object) -> tuple:
    """What must be equal to a clean ingest's, after checking that catalog and Chroma agree."""
    index = Index.open(Settings(catalog_url=catalog_url, chroma_url=chroma_url()), embedder=embedder)  # type: ignore[arg-type]
    catalog = index.catalog
    try:
        assert catalog.pending() == [], "documents left pending"
        sentence_ids = sorted(catalog.sentence_ids())
        got = index.store._collection.get(include=["embeddings", "metadatas"])  # type: ignore[attr-defined]
        assert sorted(got["ids"]) == sentence_ids, "Chroma ids differ from the catalog's sentences"
        stored = {e.id: e for d in catalog.documents() for e in catalog.vector_entries(d.id)}
        for vid, vector, meta in zip(got["ids"], got["embeddings"], got["metadatas"]):
            want = stored[vid]
            assert (meta["doc_id"], meta["start"], meta["end"], meta["version"]) == (
                want.doc_id, want.start, want.end, want.version), vid
            assert np.allclose(np.asarray(vector, np.float32), want.vector, atol=1e-3), vid
        versions = catalog.versions(d.id for d in catalog.documents())
        lexical = catalog.lexical_rows()
        assert sorted(lexical) == sorted(catalog.chunk_ids())
        return (tuple((d.source, d.sha256, d.n_chunks, versions[d.id]) for d in catalog.documents()),
                tuple(sorted(catalog.chunk_ids())), tuple(sentence_ids), tuple(sorted(lexical.items())))
    finally:
        index.close()


@pytest.mark.parametrize("runs", [4, pytest.param(30, marks=pytest.mark.slow)])
def test_two_instances_and_a_killed_writer_on_the_servers(tmp_path: Path, dbs: tuple[str, str], embedder: object,
                                                          runs: int) -> None:
    shared, clean = dbs
    seed = int(os.environ.get("RAG_TEST_SEED") or time.time())
    rng = random.Random(seed)
    v1, v2 = {**V1, **FILLER}, {**V2, **{k: v.replace("pounds", "shillings") for k, v in FILLER.items()}}
    corpora = {"v1": write_corpus(tmp_path / "v1", v1), "v2": write_corpus(tmp_path / "v2", v2)}
    env = _env(RAG_CATALOG_URL=shared, RAG_CHROMA_URL=chroma_url(), RAG_ANSWER__ANSWERER="extractive")
    writer_dir = tmp_path / "writer"
    writer_dir.mkdir()

    def ingest(version: str, **extra: str) -> subprocess.Popen[str]:
        corpus = str(corpora[version])
        return subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", corpus, "--root", corpus, "--prune"],
                                cwd=writer_dir, env={**env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    ports = [_free_port(), _free_port()]
    serves = [start_serve(tmp_path / f"serve{n}", port, env) for n, port in enumerate(ports)]
    first = ingest("v1")  # while the instances start (they wait for it if they need the writer lock)
    assert first.wait(timeout=300) == 0, first.communicate()[1]
    final = str(corpora["v2"])  # the clean ingest to compare with, into its own database, meanwhile
    reference = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", final, "--root", final], cwd=writer_dir,
                                 env=_env(RAG_CATALOG_URL=clean, RAG_CHROMA_URL=chroma_url()), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    asker = None
    try:
        urls = [f"http://127.0.0.1:{port}/" for port in ports]
        for url, proc, port in zip(urls, serves, ports):
            wait_ready(url, proc, tmp_path / f"serve-{port}.log")
        asker = Asker(urls, texts_of(v1, v2))
        asker.start()
        killed = 0
        for n in range(runs):  # alternate the corpus, so that every run has work to be killed in
            version = "v2" if n % 2 == 0 else "v1"
            point = rng.choice(FAILPOINTS) if rng.random() < 0.5 else None
            proc = ingest(version, **({"RAG_FAILPOINT": point} if point else {}))
            try:
                proc.wait(timeout=rng.uniform(0.3, 4.5) if point is None else 300)
            except subprocess.TimeoutExpired:
                pass
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            code = proc.wait(timeout=60)
            _, err = proc.communicate()
            assert code in (0, -signal.SIGKILL), f"seed {seed}: ingest exited {code}: {err[-2000:]}"
            killed += code == -signal.SIGKILL
        last = ingest("v2")
        assert last.wait(timeout=300) == 0, last.communicate()[1]
        asker.stop.set()
        asker.join(timeout=120)
        assert asker.errors == [], f"seed {seed}: {asker.errors[:5]}"
        assert asker.answers > 0 and killed >= (20 if runs >= 30 else 1), (seed, asker.answers, killed)
        for client in asker.clients:  # both answer from the new document
            record = client.predict(NEW_QUESTION, api_name="/ask")
            assert "new/bridge.txt" in [c["source"] for c in record["citations"]], record["answer"]
    finally:
        if asker is not None:
            asker.stop.set()
        for proc in serves:
            proc.terminate()
        for proc in serves:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert reference.wait(timeout=300) == 0, reference.communicate()[1]
    assert server_state(shared, embedder) == server_state(clean, embedder), f"seed {seed}"
    for folder in [writer_dir, tmp_path / "serve0", tmp_path / "serve1"]:
        assert list(folder.iterdir()) == [], folder
    print(f"seed {seed}: {runs} runs, {killed} killed, {asker.answers} answers, {asker.citations} citations checked")
