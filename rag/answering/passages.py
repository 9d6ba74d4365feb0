"""What the span reader reads: passages cut from the retrieved hits, best first.

Reading is the answer's cost (one forward pass per window, time linear in its tokens), so the
reader does not read whole chunks by default: ``focused_passages`` takes the sentences that the
feature model ranks best among the retrieved passages (``ExtractiveAnswerer.score_sentences``),
each with one neighbour on either side for context (the sentence before often names what "it"
is), and merges neighbours of one document into one passage. ``chunk_passages`` is the older way:
each of the top hits' whole chunk. The measured trade-off between them is in docs/reader.md.

A passage carries document offsets and the spans of the whole sentences it holds, so an answer
span found in it maps back to exact document offsets and to the sentence that holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rag.answering.draft import ScoredSentence
from rag.domain import Hit, SentenceRow


@dataclass(frozen=True)
class Passage:
    """A run of whole sentences of one hit's document: ``text == document[start:end]``."""

    hit: Hit
    start: int
    end: int
    text: str
    sentences: tuple[tuple[int, int], ...]  # absolute (start, end) of the sentences it holds
    score: float = 0.0  # the best feature-model probability among its focus sentences

    def __post_init__(self) -> None:
        if not self.start <= self.end or len(self.text) != self.end - self.start:
            raise ValueError(f"passage span {self.start}:{self.end} does not match its text of {len(self.text)} characters")


def document_view(hit: Hit) -> tuple[str, int]:
    """The text a hit's document offsets index into, and the offset of its first character: the
    document's text, or its chunk's when the hit carries none (hits made by hand)."""
    return (hit.document_text, 0) if hit.document_text else (hit.chunk.text, hit.chunk.start)


def document_slice(hit: Hit, start: int, end: int) -> str:
    """``document[start:end]`` from the hit (``document_view``); absolute offsets either way."""
    text, base = document_view(hit)
    if not base <= start <= end <= base + len(text):
        raise ValueError(f"span {start}:{end} lies outside the text the hit holds ({base}:{base + len(text)})")
    return text[start - base : end - base]


def chunk_passages(hits: Sequence[Hit], limit: int) -> list[Passage]:
    """The whole chunk of each of the top ``limit`` hits."""
    return [Passage(h, h.chunk.start, h.chunk.end, h.chunk.text, h.chunk.sentences, 1.0 / (1 + i))
            for i, h in enumerate(hits[:limit])]


def focused_passages(hits: Sequence[Hit], scored: Sequence[ScoredSentence], sentences: int, context: int = 1) -> list[Passage]:
    """Passages around the ``sentences`` best-scored sentences, best first.

    Each focus sentence brings ``context`` neighbours on either side where the hits hold them
    (a hit carries its chunk's sentences and one more on each side); runs of one document that
    overlap or touch become one passage. ``scored`` is best first. Hits without sentence rows
    (made by hand) fall back to their whole chunks.
    """
    if not scored or not any(h.sentences for h in hits):
        return chunk_passages(hits, len(hits))
    rows: dict[str, dict[int, SentenceRow]] = {}  # doc -> idx -> row, over all its hits
    first_hit: dict[str, Hit] = {}
    for h in hits:
        rows.setdefault(h.chunk.doc_id, {}).update((r.idx, r) for r in h.sentences)
        first_hit.setdefault(h.chunk.doc_id, h)
    runs: dict[str, list[tuple[int, int, float]]] = {}
    for s in scored[:sentences]:
        known = rows[s.doc_id]
        lo = min((s.idx - k for k in range(1, context + 1) if s.idx - k in known), default=s.idx)
        hi = max((s.idx + k for k in range(1, context + 1) if s.idx + k in known), default=s.idx)
        runs.setdefault(s.doc_id, []).append((lo, hi, s.prob))
    out = []
    for doc, spans in runs.items():
        hit, known = first_hit[doc], rows[doc]
        for lo, hi, score in _merge(spans):
            inside = tuple((known[i].start, known[i].end) for i in range(lo, hi + 1) if i in known)
            start, end = inside[0][0], inside[-1][1]
            out.append(Passage(hit, start, end, document_slice(hit, start, end), inside, score))
    out.sort(key=lambda p: -p.score)
    return out


def _merge(spans: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """Sentence-index runs merged where they overlap or touch; each keeps its best score."""
    merged: list[tuple[int, int, float]] = []
    for lo, hi, score in sorted(spans):
        if merged and lo <= merged[-1][1] + 1:
            a, b, best = merged[-1]
            merged[-1] = (a, max(b, hi), max(best, score))
        else:
            merged.append((lo, hi, score))
    return merged
