"""Reciprocal rank fusion and filters (pure), and hybrid retrieval on the seed index."""

from __future__ import annotations

import pytest

from rag.assistant import Assistant
from rag.errors import QueryError
from rag.retrieval.hybrid import Filters, reciprocal_rank_fusion

from .conftest import SEED_SOURCE, make_settings


def test_rrf_rewards_agreement_and_respects_weights() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "b", "d"]], k=60)
    # c: 1/63 + 1/61 edges out b: 2/62; both, found by both rankings, beat a and d found once.
    assert [i for i, _ in fused] == ["c", "b", "a", "d"]
    scores = dict(fused)
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 62)
    assert scores["a"] == pytest.approx(1 / 61) and scores["d"] == pytest.approx(1 / 63)
    only_second = reciprocal_rank_fusion([["a"], ["d"]], k=1, weights=[0.0, 1.0])
    assert only_second[0] == ("d", 0.5)


def test_rrf_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"k \(0\)"):
        reciprocal_rank_fusion([["a"]], k=0)
    with pytest.raises(ValueError, match="2 weights given for 1 rankings"):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])


def test_filters_validate_dates() -> None:
    with pytest.raises(QueryError, match="date_from"):
        Filters(date_from="April 2024")
    with pytest.raises(QueryError, match="is after"):
        Filters(date_from="2024-05-01", date_to="2024-04-01")
    assert Filters().empty and not Filters(sources=("a.txt",)).empty


def test_hybrid_retrieval_finds_the_evidence_chunk(seed_assistant) -> None:  # noqa: ANN001
    hits = seed_assistant.retriever.retrieve(seed_assistant.query("What share of microelectronics came from China?"))
    assert hits and hits[0].source == SEED_SOURCE
    assert any("90% of Russia's microelectronics" in h.chunk.text for h in hits[:2])
    for h in hits:
        text = seed_assistant.document_text(h.source)
        assert text[h.chunk.start : h.chunk.end] == h.chunk.text
    # Fusion fused: the evidence chunk was found by both searches, and within each search no two
    # hits claim one rank (a broken search or a mixed-up rank mapping fails here).
    assert hits[0].dense_rank is not None and hits[0].lexical_rank is not None
    for ranks in ([h.dense_rank for h in hits], [h.lexical_rank for h in hits]):
        known = [r for r in ranks if r is not None]
        assert len(known) == len(set(known)) and all(r >= 1 for r in known)


def test_source_and_date_filters(seed_assistant) -> None:  # noqa: ANN001
    q = "microelectronics imports"

    def retrieve(filters: Filters) -> list:  # noqa: ANN401
        return seed_assistant.retriever.retrieve(seed_assistant.query(q, filters=filters))

    assert retrieve(Filters(sources=("other.txt",))) == []
    assert retrieve(Filters(sources=("000_*",)))
    assert retrieve(Filters(date_from="2024-04-01", date_to="2024-04-30"))
    assert retrieve(Filters(date_from="2025-01-01")) == []


def test_the_catalog_applies_filters_by_source_prefix_and_date(tmp_path, embedder) -> None:  # noqa: ANN001
    corpus = tmp_path / "corpus"
    (corpus / "news").mkdir(parents=True)
    (corpus / "news" / "a.txt").write_text("date 2024-04-13\nThe dam opened in spring.\n", encoding="utf-8")
    (corpus / "news" / "b_%.txt").write_text("date 2023-12-31\nThe bridge closed in winter.\n", encoding="utf-8")
    (corpus / "undated.txt").write_text("The tower stands on the hill.\n", encoding="utf-8")
    assistant = Assistant.open(settings=make_settings(tmp_path / "idx"), create=True, embedder=embedder)
    assistant.ingest([corpus])
    catalog = assistant.index.catalog
    docs = {d.source: set(catalog.chunk_ids(d.id)) for d in assistant.documents()}
    assert sorted(docs) == ["news/a.txt", "news/b_%.txt", "undated.txt"]

    def chunks(*sources: str) -> set[str]:
        return set().union(*(docs[s] for s in sources))

    assert catalog.chunk_ids_where(Filters()) == chunks(*docs)
    assert catalog.chunk_ids_where(Filters(("news/*",))) == chunks("news/a.txt", "news/b_%.txt")
    assert catalog.chunk_ids_where(Filters(("news/b_*",))) == chunks("news/b_%.txt")  # _ and % are not wildcards
    assert catalog.chunk_ids_where(Filters(("news/b_%*",))) == chunks("news/b_%.txt")
    assert catalog.chunk_ids_where(Filters(("news/b?*",))) == set()
    assert catalog.chunk_ids_where(Filters(("undated.txt", "news/a.txt"))) == chunks("undated.txt", "news/a.txt")
    assert catalog.chunk_ids_where(Filters(date_from="2024-01-01")) == chunks("news/a.txt")  # undated: left out
    assert catalog.chunk_ids_where(Filters(date_to="2023-12-31")) == chunks("news/b_%.txt")  # bounds inclusive
    assert catalog.chunk_ids_where(Filters(("news/*",), "2024-04-13", "2024-04-13")) == chunks("news/a.txt")
    assert catalog.chunk_ids_where(Filters(("undated.txt",), date_from="2000-01-01")) == set()
    assistant.close()


def test_llamaindex_retriever_returns_nodes_with_exact_offsets(seed_assistant) -> None:  # noqa: ANN001
    from llama_index.core.retrievers import BaseRetriever

    # top_k 5, the passages the answerer gets: the Cavoli passage ranks 3rd with fp32 vectors and
    # 4th with int8 (fused scores 0.0315 and 0.0311, within a hair of the passages around it).
    retriever = seed_assistant.as_llamaindex_retriever(top_k=5)
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve("Who commands U.S. European Command?")
    assert len(nodes) == 5
    for n in nodes:
        text = seed_assistant.document_text(n.node.metadata["source"])
        assert text[n.node.start_char_idx : n.node.end_char_idx] == n.node.get_content()
    assert any("Cavoli" in n.node.get_content() for n in nodes)
