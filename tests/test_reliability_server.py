"""Chroma server mode: ingest and ask through ``RAG_CHROMA_URL``; a server that is down or dies.

The happy-path tests use the server ``scripts/test.sh`` starts (``RAG_TEST_CHROMA_URL``) or, when
that is unset, one of their own. Tests that stop or kill a server always start their own
``chroma run --path TMP --host 127.0.0.1 --port FREE``, so the shared one stays up.

- A down server: ``rag ask`` and ``rag ingest`` exit 1 with one ``error:`` line (no traceback)
  and the catalog is byte-for-byte what it was.
- A server killed between two Chroma calls of an ingest: the ingest fails with a one-line
  ``StoreError``; the catalog still holds the old documents (the ones being written are marked
  pending); once the server is back the next ingest repairs and ends equal to a clean ingest.
- Two index folders on one server each use their own collection and never see the other's
  vectors.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.errors import StoreError
from rag.index.folder import Index

from .conftest import CORPUS, SEED_SOURCE, make_settings
from .test_reliability_crash import (
    V1,
    V2,
    IndexState,
    catalog_rows,
    index_state,
    ingest_in_process,
    run_rag,
    write_corpus,
)

pytestmark = [pytest.mark.server, pytest.mark.timeout(420)]

CHROMA = Path(sys.executable).parent / "chroma"
QUESTION = "What share of microelectronics came from China?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def heartbeat(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as r:  # noqa: S310 - 127.0.0.1 only
            return r.status == 200
    except OSError:
        return False


@dataclass
class ChromaServer:
    """A ``chroma run`` process on 127.0.0.1 that a test may stop, kill and start again."""

    path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_s: float = 60) -> None:
        log = open(self.path.with_suffix(".log"), "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        log.close()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self.proc.returncode}: {self.path.with_suffix('.log')}")
            if heartbeat(self.url):
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"chroma run on port {self.port} did not answer within {wait_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The CI server (RAG_TEST_CHROMA_URL) or, when unset, one started for this module."""
    url = os.environ.get("RAG_TEST_CHROMA_URL")
    if url:
        assert heartbeat(url), f"RAG_TEST_CHROMA_URL={url} does not answer"
        yield url
        return
    server = ChromaServer(tmp_path_factory.mktemp("chroma-shared") / "data")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture()
def own_chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    """A server of this test's own, which it may stop or kill."""
    server = ChromaServer(tmp_path / "chroma-data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def server_settings(index_dir: Path, url: str):  # noqa: ANN201
    return make_settings(index_dir).with_overrides(chroma_url=url)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr


# -- through a running server ----------------------------------------------------------------
def test_cli_ingests_and_answers_through_the_server(tmp_path: Path, chroma_url: str, embedder: object) -> None:
    index_dir = tmp_path / "idx"
    done = run_rag("ingest", str(CORPUS), "--index", str(index_dir), plain=True, RAG_CHROMA_URL=chroma_url)
    assert done.returncode == 0, done.stderr
    assert "added 1" in done.stdout
    assert not (index_dir / "chroma").exists()  # the vectors live on the server
    asked = run_rag("ask", QUESTION, "--json", "--index", str(index_dir), plain=True, RAG_CHROMA_URL=chroma_url)
    assert asked.returncode == 0, asked.stderr
    record = json.loads(asked.stdout)
    assert record["short_answer"] == "90%" and record["citations"]
    text = (CORPUS / SEED_SOURCE).read_text(encoding="utf-8")
    for c in record["citations"]:
        assert text[c["start"] : c["end"]] == c["quote"]
    index = Index.open(server_settings(index_dir, chroma_url), embedder=embedder)  # type: ignore[arg-type]
    try:
        state = index_state(index)
        assert len(state.sentence_ids) == index.store.count() > 0
    finally:
        index.store.drop()  # leave the shared server as it was


def test_two_index_folders_on_one_server_keep_their_own_vectors(tmp_path: Path, chroma_url: str, embedder: object) -> None:
    seed = Assistant.open(settings=server_settings(tmp_path / "a", chroma_url), create=True, embedder=embedder)  # type: ignore[arg-type]
    town_corpus = tmp_path / "town"
    town_corpus.mkdir()
    (town_corpus / "harbour.txt").write_text(V1["harbour.txt"], encoding="utf-8")
    town = Assistant.open(settings=server_settings(tmp_path / "b", chroma_url), create=True, embedder=embedder)  # type: ignore[arg-type]
    try:
        seed.ingest([CORPUS])
        town.ingest([town_corpus])
        assert seed.index.catalog.get_meta("collection") != town.index.catalog.get_meta("collection")
        for a in (seed, town):
            assert sorted(a.index.store.all_ids()) == sorted(a.index.catalog.sentence_ids())
        assert not set(seed.index.store.all_ids()) & set(town.index.store.all_ids())
        elsewhere = town.ask(QUESTION)
        assert all(c.source == "harbour.txt" for c in elsewhere.citations)
        assert seed.ask(QUESTION).short_answer == "90%"
        assert all(c.source == SEED_SOURCE for c in seed.ask("When was the harbour rebuilt?").citations)
    finally:
        seed.index.store.drop()
        town.index.store.drop()


# -- a server that is down or dies -----------------------------------------------------------
def test_a_down_server_is_a_one_line_error_and_changes_nothing(tmp_path: Path, own_chroma: ChromaServer) -> None:
    corpus = write_corpus(tmp_path / "corpus", V1)
    index_dir = tmp_path / "idx"
    url = own_chroma.url
    assert run_rag("ingest", str(corpus), "--index", str(index_dir), RAG_CHROMA_URL=url).returncode == 0
    before = catalog_rows(index_dir)
    own_chroma.stop()
    assert not heartbeat(url)
    asked = run_rag("ask", QUESTION, "--index", str(index_dir), plain=True, RAG_CHROMA_URL=url)
    assert_one_line_error(asked, f"cannot open Chroma server at {url}")
    write_corpus(corpus, V2)
    ingested = run_rag("ingest", str(corpus), "--index", str(index_dir), "--prune", RAG_CHROMA_URL=url)
    assert_one_line_error(ingested, f"cannot open Chroma server at {url}")
    assert catalog_rows(index_dir) == before
    own_chroma.start()  # back again: the same index answers
    again = run_rag("ask", QUESTION, "--json", "--index", str(index_dir), plain=True, RAG_CHROMA_URL=url)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["short_answer"] == "90%"


def test_a_server_killed_mid_ingest_is_repaired_by_the_next_ingest(
    tmp_path: Path, own_chroma: ChromaServer, chroma_url: str, embedder: object
) -> None:
    url = own_chroma.url
    corpus = write_corpus(tmp_path / "corpus", V1)
    index_dir = tmp_path / "idx"
    index = ingest_in_process(index_dir, corpus, embedder, chroma_url=url)
    before = catalog_rows(index_dir)
    write_corpus(corpus, V2)
    upsert = index.store.upsert
    calls = 0

    def upsert_then_kill(entries: list) -> None:  # noqa: ANN001
        nonlocal calls
        upsert(entries)
        calls += 1
        own_chroma.kill()  # the server dies after the first document's vectors went in

    index.store.upsert = upsert_then_kill  # type: ignore[method-assign]
    with pytest.raises(StoreError) as caught:
        Assistant(index).ingest([corpus], prune=True)
    assert calls == 1 and "\n" not in str(caught.value) and url in str(caught.value)
    after = catalog_rows(index_dir)
    for key in ("documents", "chunks", "sentences", "meta"):
        assert after[key] == before[key], key  # the catalog still holds version 1, whole
    assert after["pending"]  # the documents being written are marked pending, for the repair
    index.catalog.close()

    down = run_rag("ingest", str(corpus), "--index", str(index_dir), "--prune", RAG_CHROMA_URL=url)
    assert_one_line_error(down, "cannot open Chroma server")
    own_chroma.start()
    done = run_rag("ingest", str(corpus), "--index", str(index_dir), "--prune", RAG_CHROMA_URL=url)
    assert done.returncode == 0, done.stderr
    recovered = Index.open(server_settings(index_dir, url), embedder=embedder)  # type: ignore[arg-type]
    reference = clean_v2_on(chroma_url, tmp_path / "clean", embedder)
    assert index_state(recovered) == reference


def clean_v2_on(url: str, tmp: Path, embedder: object) -> IndexState:
    """A clean ingest of corpus version 2 through a server (its collection dropped afterwards)."""
    index = ingest_in_process(tmp / "idx", write_corpus(tmp / "corpus", V2), embedder, chroma_url=url)
    try:
        return index_state(index)
    finally:
        index.store.drop()
