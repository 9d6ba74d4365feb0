"""Domain records: their stated invariants, and that the test run sees no developer RAG_* settings."""

from __future__ import annotations

import os

import pytest

from rag.config import Settings
from rag.domain import Chunk, Document, TermStats, chunk_id, date_number, sentence_id


def test_a_chunk_must_match_its_span_and_hold_its_sentences() -> None:
    Chunk("d", 0, 3, 8, "hello", ((3, 8),))
    with pytest.raises(ValueError, match="not ordered"):
        Chunk("d", 0, 8, 3, "")
    with pytest.raises(ValueError, match="text length 4 != span 3:8"):
        Chunk("d", 0, 3, 8, "hell")
    with pytest.raises(ValueError, match="sentence 2:8 lies outside chunk 3:8"):
        Chunk("d", 0, 3, 8, "hello", ((2, 8),))


def test_ids_are_stable_and_derived_from_what_identifies_them() -> None:
    doc = Document(source="a/b.txt", text="x", title="t")
    assert doc.id == Document(source="a/b.txt", text="other text", title="u").id
    assert doc.sha256 != Document(source="a/b.txt", text="y", title="t").sha256
    assert chunk_id(doc.id, 7) == f"{doc.id}:00007" and sentence_id(doc.id, 7) == f"{doc.id}:s00007"
    assert date_number("2024-04-13") == 20240413 and date_number(None) == 0


def test_term_stats_idf_is_positive_and_largest_for_unseen_tokens() -> None:
    stats = TermStats({"common": 9, "rare": 1}, 10)
    assert 0 < stats.idf("common") < stats.idf("rare") < stats.idf("unseen") == stats.max_idf()
    assert TermStats({}, 0).max_idf() > 0  # an empty index still has a scale


def test_no_rag_setting_from_the_environment_reaches_the_tests() -> None:
    leaked = [n for n in os.environ if n.startswith("RAG_") and not n.startswith(("RAG_TEST_", "RAG_CRASH_"))]
    assert leaked == []
    assert Settings().answer.answerer == "reader"  # the default, whatever the shell says
