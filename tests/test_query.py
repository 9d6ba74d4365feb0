"""The Query made once per question, and Filters that every store translates itself.

Each store's own translation (the catalog's SQL, Chroma's ``where``, the exact search's
``Filters.allows``) must select the same documents; the retriever never embeds the question.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from rag.assistant import Assistant, Filters  # the README's import
from rag.errors import QueryError
from rag.index.catalog_vectors import CatalogVectors
from rag.index.vectors import ChromaStore
from rag.query import Query

from .conftest import make_settings
from .stress_worker import TinyEmbedder

DOCS = {
    "news/a.txt": "date 2024-04-13\nThe dam opened in spring near the harbour.\n",
    "news/b_%.txt": "date 2023-12-31\nThe bridge closed in winter near the harbour.\n",
    "news/c.txt": "date 2024-06-01\nThe harbour froze in June, the council said.\n",
    "undated.txt": "The tower stands on the hill above the harbour.\n",
    "newsletter.txt": "date 2024-05-05\nThe harbour newsletter went out in May.\n",
}

FILTERS = [
    Filters(),
    Filters(sources=("news/*",)),
    Filters(sources=("news/b_*",)),  # _ and % are not wildcards
    Filters(sources=("news/b?*",)),
    Filters(sources=("undated.txt", "news/a.txt")),
    Filters(date_from="2024-01-01"),
    Filters(date_to="2023-12-31"),
    Filters(sources=("news/*",), date_from="2024-04-13", date_to="2024-05-31"),
    Filters(sources=("undated.txt",), date_from="2000-01-01"),
]


class CountingEmbedder(TinyEmbedder):
    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return super().embed(texts)


@pytest.fixture
def tiny(tmp_path: Path) -> Assistant:
    corpus = tmp_path / "corpus"
    for source, text in DOCS.items():
        (corpus / source).parent.mkdir(parents=True, exist_ok=True)
        (corpus / source).write_text(text, encoding="utf-8")
    settings = make_settings(tmp_path / "idx", corpus_dir=corpus, answer={"answerer": "extractive"})
    assistant = Assistant.open(settings=settings, create=True, embedder=CountingEmbedder())
    assistant.ingest([corpus])
    yield assistant
    assistant.close()


@pytest.mark.parametrize("filters", FILTERS, ids=str)
def test_every_store_translates_filters_to_the_same_documents(tiny: Assistant, filters: Filters) -> None:
    catalog = tiny.index.catalog
    by_id = {d.id: d for d in tiny.documents()}
    want = {i for i, d in by_id.items() if filters.allows(d.source, d.date)}
    assert catalog.doc_ids_where(filters) == want  # SQL
    vector = tiny.index.embed_query("the harbour")
    allowed = None if filters.empty else want
    chroma = tiny.index.store
    assert isinstance(chroma, ChromaStore)
    exact = CatalogVectors(catalog)
    for store in (chroma, exact):
        got = {h.doc_id for h in store.query(vector, 100, filters, allowed)}
        assert got == want, type(store).__name__


def test_the_filters_allow_what_the_tests_say(tiny: Assistant) -> None:
    sources = {d.source for d in tiny.documents() if Filters(sources=("news/*",), date_from="2024-04-13",
                                                              date_to="2024-05-31").allows(d.source, d.date)}
    assert sources == {"news/a.txt"}  # newsletter.txt is not under news/; c.txt is too late


def test_a_question_is_embedded_once_and_the_retriever_never_embeds(tiny: Assistant) -> None:
    embedder = tiny.index.embedder
    assert isinstance(embedder, CountingEmbedder)
    embedder.texts.clear()
    query = tiny.query("  When did the dam open? ", filters=Filters(sources=("news/*",)), top_k=2)
    assert (query.question, query.standalone, query.top_k) == ("When did the dam open?", "When did the dam open?", 2)
    assert embedder.texts == ["When did the dam open?"]
    hits = tiny.retriever.retrieve(query)
    assert embedder.texts == ["When did the dam open?"]
    assert 0 < len(hits) <= 2 and {h.source for h in hits} <= {"news/a.txt", "news/b_%.txt", "news/c.txt"}
    embedder.texts.clear()
    answer = tiny.ask("When did the dam open?")
    assert embedder.texts == ["When did the dam open?"] and answer.citations


def test_a_query_validates_top_k() -> None:
    with pytest.raises(QueryError, match=r"top_k \(0\)"):
        Query("q", "q", np.zeros(4, np.float32), top_k=0)
    assert Query("q", "q", np.zeros(4, np.float32)).focus == "q"


def test_a_query_embedded_in_another_thread_gives_its_vector_when_asked() -> None:
    from concurrent.futures import ThreadPoolExecutor

    started = threading.Event()

    def embed() -> np.ndarray:
        started.wait(5)
        return np.ones(4, np.float32)

    with ThreadPoolExecutor(1) as pool:
        query = Query("q", "q", pool.submit(embed))
        started.set()
        assert query.vector.tolist() == [1.0, 1.0, 1.0, 1.0]

    def fail() -> np.ndarray:
        raise RuntimeError("model file missing")

    with ThreadPoolExecutor(1) as pool:
        broken = Query("q", "q", pool.submit(fail))
        with pytest.raises(RuntimeError, match="model file missing"):
            _ = broken.vector
