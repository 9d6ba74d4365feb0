"""The PostgreSQL catalog on a real server: the same answers as the SQLite catalog, snapshots,
one writer through an advisory lock, and a newer schema refused.

The SQLite catalog is built by a real ingest (tiny embedder) and copied row for row into
PostgreSQL (``rag.index.migrate``); every read of the catalog interface must then agree,
BM25 scores to the last bit.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from rag.assistant import Assistant
from rag.errors import StoreError
from rag.index.catalog_pg import PgCatalog, PgWriterLock
from rag.index.migrate import read_document
from rag.query import Filters
from rag.text.tokens import tokenize

from .conftest import ROOT, make_settings
from .pg_helpers import admin
from .stress_worker import TinyEmbedder
from .test_query import DOCS, FILTERS

pytestmark = pytest.mark.server

# More text than DOCS alone, so that BM25's document frequencies and lengths vary.
EXTRA = {
    f"wiki/{i:02d}.txt": " ".join(
        f"The {w} of the harbour was rebuilt in {1850 + i * 7 + j} by the council of {t}."
        for j, (w, t) in enumerate(zip(["quay", "mill", "bridge", "tower", "dock", "wall"] * (1 + i % 4),
                                       ["Leeds", "York", "Bergen", "Hull", "Oslo", "Cork"][i % 3 :] * 4))
    ) + f" Item {i} cost {i * 1000} pounds; the café reopened.\n"
    for i in range(24)
}
QUESTIONS = ["When was the harbour rebuilt?", "the council of Leeds", "café", "bridge tower dock", "item 7 cost",
             "pounds pounds harbour", "nothing matches zzz", "the the the", "Bergen quay 1871"]


HOLD_THE_LOCK = """
import sys, time
from rag.index.catalog_pg import PgWriterLock
with PgWriterLock(sys.argv[1], "fail").hold():
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def both(tmp_path: Path, pg_url: str) -> Iterator[tuple[object, PgCatalog]]:
    """(the SQLite catalog of an ingested corpus, the same rows in PostgreSQL)."""
    corpus = tmp_path / "corpus"
    for source, text in {**DOCS, **EXTRA}.items():
        (corpus / source).parent.mkdir(parents=True, exist_ok=True)
        (corpus / source).write_text(text, encoding="utf-8")
    assistant = Assistant.open(settings=make_settings(tmp_path / "idx", corpus_dir=corpus), create=True,
                               embedder=TinyEmbedder())  # type: ignore[arg-type]
    assistant.ingest([corpus])
    sqlite = assistant.index.catalog
    pg = PgCatalog(pg_url, create=True)
    for info in sqlite.documents():
        stored = read_document(sqlite, info.id)
        assert stored is not None
        pg.put_document(stored.doc, stored.chunks, stored.sentences, stored.vectors, stored.version)
    yield sqlite, pg
    pg.close()
    assistant.close()


def test_bm25_rankings_and_scores_equal_sqlites(both: tuple) -> None:
    sqlite, pg = both
    assert pg.counts() == sqlite.counts() and pg.counts()[1] > pg.counts()[0] + 20
    found = 0
    for question in QUESTIONS:
        tokens = tokenize(question)
        want = sqlite.lexical_search(tokens, 10)
        assert pg.lexical_search(tokens, 10) == want, question  # ids, order and float scores
        found += bool(want)
        for filters in FILTERS[1:4]:
            allowed = sqlite.doc_ids_where(filters)
            assert pg.lexical_search(tokens, 10, allowed) == sqlite.lexical_search(tokens, 10, allowed)
        ts, tp = sqlite.term_stats(tokens), pg.term_stats(tokens)
        assert tp.n == ts.n and {t: tp.df.get(t) for t in tokens} == {t: ts.df.get(t) for t in tokens}
    assert found >= 6


def test_every_read_agrees_with_sqlite(both: tuple) -> None:
    sqlite, pg = both
    assert pg.documents() == sqlite.documents()
    for filters in FILTERS:
        assert pg.doc_ids_where(filters) == sqlite.doc_ids_where(filters), filters
        assert pg.chunk_ids_where(filters) == sqlite.chunk_ids_where(filters), filters
    ids = sqlite.chunk_ids()
    assert pg.chunks(ids) == sqlite.chunks(ids)
    for info in sqlite.documents():
        assert pg.text_by_source(info.source) == sqlite.text_by_source(info.source)
        assert _same_entries(pg.vector_entries(info.id), sqlite.vector_entries(info.id)), info.source
    docs_s, sents_s, chunks_s = sqlite.all_sentence_vectors()
    docs_p, sents_p, chunks_p = pg.all_sentence_vectors()
    assert (docs_p, [tuple(r) for r in chunks_p]) == (docs_s, [tuple(r) for r in chunks_s])
    assert [(d, i, bytes(v)) for d, i, v in sents_p] == [(d, i, bytes(v)) for d, i, v in sents_s]
    assert sorted(pg.lexical_rows().items()) == sorted(
        (cid, " ".join(sorted(tokens.split()))) for cid, tokens in sqlite.lexical_rows().items())


def _same_entries(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (x.id, x.doc_id, x.source, x.start, x.end, x.date, x.chunks, x.version)
        == (y.id, y.doc_id, y.source, y.start, y.end, y.date, y.chunks, y.version)
        and np.array_equal(x.vector, y.vector) for x, y in zip(a, b))


def test_a_snapshot_sees_one_version_while_a_writer_commits(both: tuple, pg_url: str) -> None:
    sqlite, pg = both
    source = "news/a.txt"
    doc_id = sqlite.document_by_source(source).id
    stored = read_document(sqlite, doc_id)
    assert stored is not None
    before = pg.generation
    with pg.snapshot():
        old_text = pg.text(doc_id)
        writer = threading.Thread(target=pg.delete_document, args=(doc_id,))
        writer.start()
        writer.join(timeout=30)
        assert not writer.is_alive()  # the reader held no lock that blocked the writer
        assert pg.text(doc_id) == old_text and pg.generation == before
        assert pg.chunks(pg.chunk_ids(doc_id))
    assert pg.text(doc_id) is None and pg.generation == before + 1
    assert pg.doc_ids_where(Filters(sources=(source,))) == set()


def test_one_writer_at_a_time_and_a_killed_writer_frees_the_lock(pg_url: str) -> None:
    first, second = PgWriterLock(pg_url, "fail"), PgWriterLock(pg_url, "fail")
    with first.hold():
        with first.hold():  # re-entrant
            pass
        with pytest.raises(StoreError, match="another process is writing the catalog at postgresql://") as caught, \
                second.hold():
            pass
        password = urlsplit(pg_url).password
        assert "\n" not in str(caught.value) and password and password not in str(caught.value)
    with second.hold():
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, pg_url],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="another process is writing"), second.hold():
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
    for _ in range(50):  # the server notices the closed connection at once; allow it a moment
        try:
            with second.hold():
                break
        except StoreError:
            threading.Event().wait(0.1)
    else:
        pytest.fail("the lock of a killed writer was never released")


def test_a_newer_schema_is_refused_in_one_line(pg_url: str) -> None:
    PgCatalog(pg_url, create=True).close()
    admin(pg_url, "UPDATE meta SET value = '7' WHERE key = 'schema'")
    for create in (False, True):
        with pytest.raises(StoreError) as caught:
            PgCatalog(pg_url, create=create)
        message = str(caught.value)
        assert "has schema 7, this version of rag-cite reads 1; upgrade rag-cite" in message and "\n" not in message


def test_a_reader_of_an_empty_database_is_told_to_ingest(pg_url: str) -> None:
    with pytest.raises(StoreError, match=r"no index in the catalog at postgresql://rag@.*; build one with `rag ingest"):
        PgCatalog(pg_url, create=False)
