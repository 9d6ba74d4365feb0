"""A small index's reader searches the catalog's own vectors exactly instead of opening Chroma.

The same hits as Chroma's (up to float16 storage), the threshold honoured, filters applied
inside the search, and a writer's commit seen by the next question.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.assistant import Assistant
from rag.index.catalog_vectors import CatalogVectors
from rag.index.folder import Index
from rag.index.vectors import ChromaStore
from rag.retrieval.hybrid import Filters

from .conftest import make_settings
from .test_index_sharing import TinyEmbedder, open_tiny

QUESTIONS = ["What share of microelectronics came from China?", "Who commands U.S. European Command?",
             "What did Russia build with the imports?", "satellites and space capabilities", "Blinken allies"]


def test_a_small_index_reader_searches_the_catalog_and_finds_what_chroma_finds(seed_index_dir: Path, embedder) -> None:
    exact = Index.open(make_settings(seed_index_dir), embedder=embedder)
    chroma = Index.open(make_settings(seed_index_dir, retrieval={"exact_search_max_vectors": 0}), embedder=embedder)
    assert isinstance(exact.store, CatalogVectors) and isinstance(chroma.store, ChromaStore)
    n = exact.store.count()
    assert n == len(exact.catalog.sentence_ids()) > 10
    for question in QUESTIONS:
        vector = exact.embed_query(question)
        got, want = exact.query_vectors(vector, 10), chroma.query_vectors(vector, 10)
        sims = [h.similarity for h in got]
        assert sims == sorted(sims, reverse=True)
        assert got[0].id == want[0].id, question
        assert len({h.id for h in got} & {h.id for h in want}) >= 9, question
        theirs = {h.id: h for h in want}
        for h in got:  # same vector up to float16 storage; same chunks and document version
            if h.id in theirs:
                assert abs(h.similarity - theirs[h.id].similarity) < 2e-3
                assert (h.doc_id, h.chunks, h.version) == (theirs[h.id].doc_id, theirs[h.id].chunks, theirs[h.id].version)
    assert len(exact.query_vectors(exact.embed_query("x"), n + 50)) == n
    exact.close()
    chroma.close()


def test_the_threshold_decides_which_store_a_reader_searches(seed_index_dir: Path, embedder) -> None:
    n = Index.open(make_settings(seed_index_dir), embedder=embedder).catalog.sentence_count()
    at = Index.open(make_settings(seed_index_dir, retrieval={"exact_search_max_vectors": n}), embedder=embedder)
    below = Index.open(make_settings(seed_index_dir, retrieval={"exact_search_max_vectors": n - 1}), embedder=embedder)
    assert isinstance(at.store, CatalogVectors) and isinstance(below.store, ChromaStore)
    below.close()


def test_filters_apply_inside_the_exact_search(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "wanted").mkdir(parents=True)
    (corpus / "other").mkdir()
    line = "The harbour was rebuilt in 1887 by the council."
    for i in range(120):  # more dense candidates than the retriever takes
        (corpus / "other" / f"{i:03d}.txt").write_text(f"{line} Copy {i}.\n", encoding="utf-8")
    (corpus / "wanted" / "far.txt").write_text("A quiet meadow lies east of the town.\n", encoding="utf-8")
    writer = open_tiny(tmp_path / "idx", corpus_dir=corpus, create=True)
    writer.ingest([corpus])
    reader = open_tiny(tmp_path / "idx", corpus_dir=corpus)
    assert isinstance(reader.index.store, CatalogVectors)
    assert [h.source for h in reader.retriever.retrieve(reader.query(line, filters=Filters(sources=("wanted/*",))))] == ["wanted/far.txt"]
    hits = reader.index.query_vectors(reader.index.embed_query(line), 500, Filters(sources=("other/007.txt",)))
    assert {h.doc_id for h in hits} == {reader.index.catalog.document_by_source("other/007.txt").id}
    assert reader.index.query_vectors(np.ones(16, np.float32), 5, Filters(sources=("nowhere.txt",))) == []


def test_a_reader_sees_the_next_commit(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The harbour was rebuilt in 1887 by the council.\n", encoding="utf-8")
    writer = open_tiny(tmp_path / "idx", corpus_dir=corpus, create=True)
    writer.ingest([corpus])
    reader = open_tiny(tmp_path / "idx", corpus_dir=corpus)
    question = "The old mill burned down in 1901"
    assert [h.source for h in reader.retriever.retrieve(reader.query(question))] == ["a.txt"]
    (corpus / "b.txt").write_text("The old mill burned down in 1901 and was never rebuilt.\n", encoding="utf-8")
    (corpus / "a.txt").unlink()
    writer.ingest([corpus], prune=True)
    hits = reader.retriever.retrieve(reader.query(question))
    assert [h.source for h in hits] == ["b.txt"]
    assert hits[0].document_text[hits[0].chunk.start : hits[0].chunk.end] == hits[0].chunk.text


def test_a_reader_moves_to_chroma_once_writers_outgrow_exact_search(tmp_path: Path) -> None:
    """A long-running reader (``rag serve``) opened on a small index switches to Chroma when the
    index grows past the threshold, and keeps seeing every later commit there."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The harbour was rebuilt in 1887 by the council.\n", encoding="utf-8")
    writer = open_tiny(tmp_path / "idx", corpus_dir=corpus, create=True)
    writer.ingest([corpus])
    limit = writer.index.catalog.sentence_count() + 1
    settings = make_settings(tmp_path / "idx", corpus_dir=corpus, retrieval={"exact_search_max_vectors": limit})
    reader = Assistant.open(settings=settings, embedder=TinyEmbedder(), answerer=None)  # type: ignore[arg-type]
    assert isinstance(reader.index.store, CatalogVectors)

    def sources(question: str) -> list[str]:
        return [h.source for h in reader.retriever.retrieve(reader.query(question))]

    (corpus / "b.txt").write_text("The old mill burned down in 1901.\n", encoding="utf-8")
    writer.ingest([corpus])
    assert writer.index.catalog.sentence_count() == limit
    assert sources("The old mill burned down in 1901")[0] == "b.txt"
    assert isinstance(reader.index.store, CatalogVectors)  # at the threshold: still exact

    (corpus / "c.txt").write_text("A ferry crosses the fjord each hour. It carries forty cars.\n", encoding="utf-8")
    writer.ingest([corpus])
    assert sources("A ferry crosses the fjord each hour")[0] == "c.txt"
    assert isinstance(reader.index.store, ChromaStore)

    (corpus / "d.txt").write_text("The lighthouse keeper retired in 1950.\n", encoding="utf-8")
    writer.ingest([corpus])
    assert sources("The lighthouse keeper retired in 1950")[0] == "d.txt"
    reader.close()
    writer.close()
