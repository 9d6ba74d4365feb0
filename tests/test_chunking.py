"""Chunking invariants: exact offsets, full coverage, bounded sizes, on real and random text."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rag.ingest.chunking import chunk_document, pack_sentences
from rag.text.sentences import split_sentences

from .conftest import CORPUS, SQUAD_SLICE


def check_invariants(text: str, chunk_chars: int = 500, overlap: int = 1, max_sentence: int = 600) -> None:
    sentences = split_sentences(text, max_sentence)
    chunks = chunk_document("doc", text, chunk_chars, overlap, max_sentence)
    # Sentences: exact, ordered, non-overlapping, stripped, bounded, covering every visible char.
    previous_end = 0
    covered = bytearray(len(text))
    for s, e in sentences:
        assert previous_end <= s < e <= len(text)
        assert not text[s].isspace() and not text[e - 1].isspace()
        assert e - s <= max_sentence
        covered[s:e] = b"\x01" * (e - s)
        previous_end = e
    for i, ch in enumerate(text):
        assert covered[i] or ch.isspace(), f"character {i} ({ch!r}) is in no sentence"
    # Chunks: the offset invariant, whole sentences, ordered, covering every sentence.
    in_chunks = set()
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.sentences[0][0] == c.start and c.sentences[-1][1] == c.end
        in_chunks.update(c.sentences)
    assert in_chunks == set(sentences)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert len({c.id for c in chunks}) == len(chunks)


def test_seed_article_chunks_satisfy_the_offset_invariant() -> None:
    for path in sorted(CORPUS.rglob("*.txt")):
        check_invariants(path.read_bytes().decode("utf-8"))


def test_every_squad_article_satisfies_the_offset_invariant() -> None:
    data = json.loads(SQUAD_SLICE.read_text(encoding="utf-8"))
    assert len(data["data"]) == 11
    for article in data["data"]:
        check_invariants("\n\n".join(p["context"] for p in article["paragraphs"]))


def test_sentences_split_at_terminal_punctuation_and_blank_lines() -> None:
    text = "Gen. Chris Cavoli spoke. U.S. officials agreed!\n\nA heading\nNext line goes on. End"
    got = [text[s:e] for s, e in split_sentences(text)]
    assert got[0] == "Gen. Chris Cavoli spoke."
    assert "U.S. officials agreed!" in got
    assert got[-1] == "End"


def test_one_giant_sentence_is_cut_at_white_space_within_the_limit() -> None:
    text = " ".join(["word"] * 2000)
    spans = split_sentences(text, max_sentence_chars=300)
    assert len(spans) > 5
    assert all(e - s <= 300 for s, e in spans)
    assert all(text[s:e].startswith("word") and text[s:e].endswith("word") for s, e in spans)


def test_overlap_repeats_the_last_sentence_of_the_previous_chunk() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    chunks = chunk_document("d", text, chunk_chars=120, overlap=1)
    assert len(chunks) > 3
    for a, b in zip(chunks, chunks[1:]):
        assert a.sentences[-1] == b.sentences[0]


def test_pack_never_stalls_when_overlap_exceeds_window() -> None:
    spans = [(i * 10, i * 10 + 9) for i in range(20)]
    windows = pack_sentences(spans, chunk_chars=5, overlap=3)
    assert [w[0] for w in windows] == spans  # one sentence per window, always progressing


def test_bad_sizes_are_rejected_with_the_value_named() -> None:
    with pytest.raises(ValueError, match=r"chunk_chars \(0\)"):
        pack_sentences([(0, 1)], 0, 1)
    with pytest.raises(ValueError, match=r"max_sentence_chars \(5\)"):
        split_sentences("text", 5)


def test_crlf_and_empty_and_tiny_documents() -> None:
    check_invariants("One.\r\n\r\nTwo three.\r\nFour")
    assert chunk_document("d", "") == []
    assert chunk_document("d", " \n\t ") == []
    chunks = chunk_document("d", "x")
    assert [(c.start, c.end, c.text) for c in chunks] == [(0, 1, "x")]


_alphabet = st.sampled_from(list("abc XYZ.!?\n\r\t,;:'\"é漢字🙂\u00a0\u2029-0123456789") + ["Mr. ", "U.S. ", "\n\n", "\r\n"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.lists(_alphabet, max_size=400).map("".join),
    chunk_chars=st.integers(50, 400),
    overlap=st.integers(0, 3),
)
@example(text="no punctuation at all " * 60, chunk_chars=100, overlap=1)
@example(text="\n\n\n", chunk_chars=100, overlap=0)
@example(text="🙂", chunk_chars=50, overlap=2)
def test_invariants_hold_on_random_text(text: str, chunk_chars: int, overlap: int) -> None:
    check_invariants(text, chunk_chars, overlap, max_sentence=min(200, chunk_chars * 4))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_invariants_hold_on_arbitrary_unicode(text: str) -> None:
    check_invariants(text, 100, 1, 200)


def test_no_chunk_is_only_markup_of_a_heading_glued_to_text() -> None:
    text = "# Title\nBody sentence one. Body two.\n- item one\n- item two"
    got = [text[s:e] for s, e in split_sentences(text)]
    assert got[0] == "# Title"
    assert "- item one" in got and "- item two" in got
    assert not any(re.search(r"Title.*Body", g, re.S) for g in got)
