"""What the reader reads (rag.answering.passages), the cascade, and whole answers (rag.text.qualifiers)."""

from __future__ import annotations

import numpy as np
import pytest

from rag.answering.draft import ScoredSentence
from rag.answering.passages import chunk_passages, document_slice, focused_passages
from rag.answering.reader import Span
from rag.answering.span_answerer import ReaderAnswerer
from rag.config import AnswerSettings
from rag.domain import Chunk, Hit, SentenceRow
from rag.text.qualifiers import with_qualifiers

DOC = (
    "The harbour opened in 1901. It was built by the Lindvik company. Over 400 ships called there in its first year. "
    "The quay was rebuilt between 1950 and 1953. A storm closed it in the late 1960s. It reopened in 1972. "
    "Today fewer than 10 ships call each week."
)


def _sentences(text: str) -> list[tuple[int, int]]:
    out, pos = [], 0
    while pos < len(text):
        end = text.find(". ", pos)
        end = len(text) if end < 0 else end + 1
        out.append((pos, end))
        pos = end + 1
    return out


SENTENCES = _sentences(DOC)


def _hit(first: int, last: int, rank_score: float) -> Hit:
    """A hit on sentences first..last of DOC, carrying one neighbour each side as the retriever does."""
    start, end = SENTENCES[first][0], SENTENCES[last][1]
    chunk = Chunk("doc", first, start, end, DOC[start:end], tuple(SENTENCES[first : last + 1]))
    rows = tuple(SentenceRow(i, s, e, np.zeros(3, np.float32)) for i, (s, e) in enumerate(SENTENCES)
                 if first - 1 <= i <= last + 1)
    return Hit(chunk, "doc.txt", rank_score, sentences=rows, first=first, last=last, document_text=DOC)


def _scored(idx: int, prob: float, hit_rank: int) -> ScoredSentence:
    s, e = SENTENCES[idx]
    return ScoredSentence("doc", "doc.txt", idx, s, e, DOC[s:e], hit_rank, np.zeros(1), prob)


def test_passages_hold_whole_sentences_at_their_document_offsets() -> None:
    hits = [_hit(0, 2, 1.0), _hit(3, 5, 0.5)]
    for p in chunk_passages(hits, 5) + focused_passages(hits, [_scored(4, 0.9, 1), _scored(1, 0.8, 0), _scored(2, 0.7, 0)], 3):
        assert DOC[p.start : p.end] == p.text == document_slice(p.hit, p.start, p.end)
        assert p.sentences and all(p.start <= s < e <= p.end for s, e in p.sentences)
        assert (p.sentences[0][0], p.sentences[-1][1]) == (p.start, p.end)


def test_focused_passages_take_neighbours_and_merge_runs_of_one_document() -> None:
    hits = [_hit(0, 2, 1.0), _hit(3, 5, 0.5)]
    # sentences 1 and 2 with one neighbour each overlap: one passage 0..3; the last one, 6, with its
    # neighbour before: 5..6, apart from 0..3 (sentence 4 between them is not read)
    out = focused_passages(hits, [_scored(6, 0.9, 1), _scored(1, 0.8, 0), _scored(2, 0.7, 0)], 3)
    assert [(p.start, p.end) for p in out] == [(SENTENCES[5][0], SENTENCES[6][1]), (SENTENCES[0][0], SENTENCES[3][1])]
    touching = focused_passages(hits, [_scored(4, 0.9, 1), _scored(1, 0.8, 0)], 2)  # 3..5 touches 0..2: one passage
    assert [(p.start, p.end) for p in touching] == [(SENTENCES[0][0], SENTENCES[5][1])]
    assert [p.score for p in out] == [0.9, 0.8]  # best first
    alone = focused_passages(hits, [_scored(1, 0.8, 0)], 1, context=0)
    assert [p.text for p in alone] == [DOC[slice(*SENTENCES[1])]]


class CountingReader:
    """A stand-in for SpanReader: proposes ``word`` where a passage holds it, counts what it read."""

    def __init__(self, answers: dict[str, tuple[float, float]]) -> None:
        self.answers = answers  # word -> (margin, has_answer)
        self.read_passages: list[str] = []

    def calibrated_threshold(self) -> float | None:
        return 0.3

    def read(self, question: str, passages: list[str], top_n: int = 5) -> list[list[Span]]:
        self.read_passages += passages
        out = []
        for i, text in enumerate(passages):
            spans = [Span(i, text.index(w), text.index(w) + len(w), w, m, m, h) for w, (m, h) in self.answers.items() if w in text]
            out.append(spans)
        return out


@pytest.mark.parametrize(("first_answer", "reads"), [((6.0, 0.99), 2), ((0.5, 0.6), 4)])
def test_the_cascade_reads_on_only_while_no_answer_is_confident(first_answer: tuple[float, float], reads: int) -> None:
    hits = [_hit(i, i, 1.0 / (1 + i)) for i in range(4)]
    reader = CountingReader({"1901": first_answer, "1972": (1.0, 0.7)})
    answerer = ReaderAnswerer(AnswerSettings(reader_first=2, reader_stop_confidence=0.9), reader=reader)  # type: ignore[arg-type]
    draft = answerer.answer("When did the harbour open?", hits)
    assert len(reader.read_passages) == reads
    assert not draft.refused and draft.short_answer == "1901" if reads == 2 else True


def test_the_cascade_never_stops_under_the_refusal_threshold() -> None:
    """A first answer above reader_stop_confidence but under the refusal threshold reads on:
    the cascade may change which answer leads, never whether the question is refused."""
    hits = [_hit(i, i, 1.0 / (1 + i)) for i in (0, 1, 2, 5)]
    reader = CountingReader({"1901": (0.2, 0.55), "1972": (6.0, 0.99)})
    answerer = ReaderAnswerer(AnswerSettings(reader_stop_confidence=0.1, reader_refusal_threshold=0.8), reader=reader)  # type: ignore[arg-type]
    draft = answerer.answer("When did the harbour reopen?", hits)
    assert len(reader.read_passages) == 4 and not draft.refused and draft.short_answer == "1972"


@pytest.mark.parametrize(
    ("value", "whole"),
    [("400", "Over 400"), ("10", "fewer than 10"), ("1950", "between 1950 and 1953"), ("1960s", "the late 1960s"),
     ("1901", "1901"), ("1972", "1972")],
)
def test_a_value_keeps_what_qualifies_it(value: str, whole: str) -> None:
    start = DOC.index(value)
    sentence = next((s, e) for s, e in SENTENCES if s <= start < e)
    a, b = with_qualifiers(DOC, start, start + len(value), *sentence)
    assert DOC[a:b] == whole


def test_qualifiers_stay_inside_the_sentence_and_leave_names_alone() -> None:
    text = "Ships came from Oslo. 400 stayed. It had between two poles."
    assert text[slice(*with_qualifiers(text, text.index("400"), text.index("400") + 3, text.index("400"), len(text)))] == "400"
    two = text.index("two poles")
    assert with_qualifiers(text, two, two + 9, 0, len(text)) == (two, two + 9)  # "between" without a range
    oslo = text.index("Oslo")
    assert with_qualifiers(text, oslo, oslo + 4, 0, len(text)) == (oslo, oslo + 4)  # not a value


def test_the_cascade_reads_first_the_best_passage_of_different_documents() -> None:
    from dataclasses import replace as _replace

    from rag.answering.span_answerer import first_read

    hits = [_hit(0, 0, 1.0), _hit(1, 1, 0.9), _hit(2, 2, 0.8), _hit(3, 3, 0.7)]
    other = _replace(hits[2], chunk=_replace(hits[2].chunk, doc_id="other"))
    passages = chunk_passages([hits[0], hits[1], other, hits[3]], 4)
    early, later = first_read(passages, 2)
    assert [p.hit.chunk.doc_id for p in early] == ["doc", "other"]  # not the second chunk of "doc"
    assert [p.start for p in later] == [passages[1].start, passages[3].start]  # the rest, in rank order
    one_document = chunk_passages(hits, 4)
    assert first_read(one_document, 2)[0] == one_document[:2]  # one document: its two best chunks


def test_reading_sentences_reads_fewer_characters_and_still_cites_exactly() -> None:
    hits = [_hit(0, 2, 1.0), _hit(3, 5, 0.5)]
    vector = np.zeros(3, np.float32)
    chunks = CountingReader({"1972": (6.0, 0.99)})
    focused = CountingReader({"1972": (6.0, 0.99)})
    question = "When did the harbour reopen?"
    whole = ReaderAnswerer(AnswerSettings(reader_stop_confidence=1.0), reader=chunks).answer(question, hits, vector)  # type: ignore[arg-type]
    settings = AnswerSettings(reader_read="sentences", reader_focus_sentences=2, reader_focus_context=0, reader_stop_confidence=1.0)
    cut = ReaderAnswerer(settings, reader=focused).answer(question, hits, vector)  # type: ignore[arg-type]
    assert sum(map(len, focused.read_passages)) < sum(map(len, chunks.read_passages))
    assert set(focused.read_passages) <= {DOC[s:e] for s, e in SENTENCES}  # whole sentences, nothing else
    for draft in (whole, cut):
        assert not draft.refused and draft.short_answer == "1972"
        assert all(DOC[c.start : c.end] == c.quote for c in draft.citations)
