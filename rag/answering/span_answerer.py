"""The default answerer: a trained span reader reads the top passages and cites where it read.

The reader (``rag.answering.reader.SpanReader``) reads each of the best ``reader_passages`` retrieved
passages for the standalone question and proposes answer spans, each with a margin over its
window's "no answer" score and a has-answer probability. The best span whose text holds an
answer of the kind asked for (a number for "how many", a date for "when"...; ``rag.text.answer_kinds``) becomes the short
answer; the sentence(s) holding it become the lead citation, with exact offsets. Other sentences
are cited only when the reader found the same answer there too (they support it). The answer is
refused when the reader's confidence in its best span is under the refusal threshold, or when no
proposed span holds the kind of answer asked for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rag.answering.draft import NO_PASSAGES_TEXT, REFUSAL_TEXT, Draft, ScoredSentence
from rag.answering.extractive import ExtractiveAnswerer
from rag.answering.passages import Passage, chunk_passages, document_slice, document_view, focused_passages
from rag.answering.reader import Span, SpanReader
from rag.config import AnswerSettings
from rag.domain import Hit
from rag.records import Citation
from rag.text.answer_kinds import AType, Candidate, candidates, holds, requirement
from rag.text.normalize import normalize_answer
from rag.text.qualifiers import with_qualifiers

# Confidence = sigmoid(MARGIN_SCALE * margin + HAS_SCALE * logit(has_answer) + CONFIDENCE_BIAS):
# the span's lead over its window's no-answer score and the window's has-answer probability,
# both from the reader's forward pass. Equal weights: on the slice's training-use articles no other
# mix (margin alone, has-answer alone, 0.3/1) separated answerable from unanswerable questions
# better at the same false-refusal rate. The refusal threshold belongs to the model: each export
# is calibrated to refuse about 7% of answerable questions on SQuAD 1.1 articles it never saw
# (scripts/ship_reader.sh), and its ``reader.json`` carries the value (``refusal_threshold``), with
# the trade-off table in its MODEL_CARD.md. A model folder without one gets READER_REFUSAL_THRESHOLD.
MARGIN_SCALE = 0.5
HAS_SCALE = 0.5
CONFIDENCE_BIAS = 0.0
READER_REFUSAL_THRESHOLD = 0.3


@dataclass(frozen=True)
class Choice:
    """What the answer policy decided: the lead proposal and the cited sentence spans, or a refusal."""

    refused: bool
    lead: Proposal | None
    cited: tuple[tuple[int, int, Hit], ...]  # document (start, end) of each cited sentence run, lead first
    confidence: float
    reason: str = ""
    short: tuple[int, int, str] | None = None  # document (start, end) and text of the short answer


@dataclass(frozen=True)
class Proposal:
    """A reader span placed in its document: absolute offsets and the sentences holding it."""

    span: Span
    hit: Hit
    start: int  # document offsets of the span
    end: int
    sentence_start: int  # document offsets of the sentence(s) holding it
    sentence_end: int
    confidence: float


def confidence(margin: float, has_answer: float, margin_scale: float = MARGIN_SCALE, has_scale: float = HAS_SCALE) -> float:
    """The reader's confidence in a span, 0..1, from its margin and its window's has-answer probability."""
    p = min(max(has_answer, 1e-4), 1 - 1e-4)
    z = margin_scale * margin + has_scale * math.log(p / (1 - p)) + CONFIDENCE_BIAS
    return 1.0 / (1.0 + math.exp(-z))


def overlapping_sentences(chunk_sentences: tuple[tuple[int, int], ...], start: int, end: int) -> list[tuple[int, int]]:
    """The chunk's sentence spans that share text with ``[start, end)``, in order."""
    return [(s, e) for s, e in chunk_sentences if s < end and start < e]


def _strip_edges(text: str) -> str:
    return re.sub(r"^[\s,;:]+|[\s,;:.]+$", "", text)


_PAIRS = (("(", ")"), ("[", "]"), ("\u201c", "\u201d"))
BRACKET_REACH = 80  # characters a span may grow to reach its closing bracket


def balanced(text: str, start: int, end: int, limit: int) -> tuple[int, int]:
    """``[start, end)`` of ``text`` with its brackets and curly quotes paired.

    The reader's span often stops one token short of a closing bracket: "the PRC (People's
    Republic of China" grows to its ")" when that lies within ``BRACKET_REACH`` characters and
    before ``limit`` (the end of its sentence); otherwise the unclosed part is cut off ("the PRC").
    A closing bracket the span never opened is dropped from its end.
    """
    for opening, closing in _PAIRS:
        span = text[start:end]
        if span.count(opening) > span.count(closing):
            close = text.find(closing, end, min(limit, end + BRACKET_REACH))
            if close >= 0 and text[end:close].count(opening) == 0:
                end = close + 1
            else:
                cut = span.rfind(opening)
                end = start + len(span[:cut].rstrip(" ,;:"))
        elif span.count(closing) > span.count(opening) and span.endswith(closing):
            end -= 1
    return start, end


def choose(
    proposals: list[Proposal],
    required: frozenset | None,
    threshold: float,
    runner_up_ratio: float,
    max_chars: int,
    max_sentences: int,
    narrow: bool = True,
    whole: bool = True,
) -> Choice:
    """The answer policy, a pure function of the reader's proposals (best first).

    The lead is the most confident proposal holding the kind of answer asked for (``required``,
    from ``rag.text.answer_kinds.requirement``); under ``threshold``, or with no such proposal, the
    answer is refused. Then, within ``max_chars`` and ``max_sentences``, other sentences are cited
    where the reader found the same answer (support), or another answer nearly as good
    (confidence at least ``runner_up_ratio`` of the lead's; 1.0 or more turns that off). With
    ``narrow`` the short answer is the one value of the kind asked for inside the lead span.
    """
    typed = [p for p in proposals if required is None or holds(required, kinds_in(p))]
    if not typed:
        best = proposals[0].confidence if proposals else 0.0
        reason = "no proposed span holds the kind of answer asked for" if proposals else "the reader proposed nothing"
        return Choice(True, None, (), best, reason)
    lead = typed[0]
    if lead.confidence < threshold:
        return Choice(True, lead, (), lead.confidence, "the reader's confidence is under the threshold")
    cited = [(lead.sentence_start, lead.sentence_end, lead.hit)]
    quotes = {_quote(lead)}
    budget = max_chars - (lead.sentence_end - lead.sentence_start)
    key = normalize_answer(lead.span.text)
    for p in typed[1:]:
        if len(cited) >= max_sentences:
            break
        same = normalize_answer(p.span.text) == key and p.confidence >= threshold
        close = p.confidence >= runner_up_ratio * lead.confidence
        if not (same or close):
            continue
        length = p.sentence_end - p.sentence_start
        overlaps = any(p.hit.source == h.source and p.sentence_start < e and s < p.sentence_end for s, e, h in cited)
        if overlaps or length > budget or _quote(p) in quotes:  # the same sentence in a duplicate document
            continue
        cited.append((p.sentence_start, p.sentence_end, p.hit))
        quotes.add(_quote(p))
        budget -= length
    short = narrowed(lead, required) if narrow else (lead.start, lead.end, lead.span.text)
    return Choice(False, lead, tuple(cited), lead.confidence, short=qualified(lead, short) if whole else short)


def _quote(p: Proposal) -> str:
    return document_slice(p.hit, p.sentence_start, p.sentence_end)


def kinds_in(p: Proposal) -> list[Candidate]:
    """The typed candidates (numbers, dates, names...) inside a proposal's span, document offsets."""
    text, base = document_view(p.hit)
    return [replace(c, start=c.start + base, end=c.end + base) for c in candidates(text, p.start - base, p.end - base)]


# Kinds whose answer is the value itself: "what share...?" is answered by "90%", not "90% of Russia".
VALUE_KINDS = frozenset({AType.PERCENT, AType.MONEY, AType.NUMBER, AType.DATE, AType.DURATION})


def qualified(lead: Proposal, short: tuple[int, int, str]) -> tuple[int, int, str]:
    """The short answer with what qualifies its value ("over 400", "the late 1960s", "1759-60";
    ``rag.text.qualifiers``), within the lead's sentence."""
    text, base = document_view(lead.hit)
    a, b = with_qualifiers(text, short[0] - base, short[1] - base, lead.sentence_start - base, lead.sentence_end - base)
    return short if (a + base, b + base) == short[:2] else (a + base, b + base, text[a:b])


def narrowed(lead: Proposal, required: frozenset[AType] | None) -> tuple[int, int, str]:
    """The short answer: the lead span, or the one value of the kind asked for inside it.

    Only for value kinds (numbers, amounts, dates, durations), and only when the span holds
    exactly one such value; names and descriptions keep the reader's span.
    """
    whole = (lead.start, lead.end, lead.span.text)
    if not required or not required <= VALUE_KINDS:
        return whole
    values = [c for c in kinds_in(lead) if c.type in required]
    if len(values) != 1:
        return whole
    v = values[0]
    return v.start, v.end, v.text


class ReaderAnswerer:
    """Answers with a trained span reader (see module docstring); ``name`` is ``reader``."""

    name = "reader"

    def __init__(self, settings: AnswerSettings, reader: SpanReader | None = None) -> None:
        self.settings = settings
        self.reader = reader or SpanReader(settings.reader_model or None, threads=settings.reader_threads)
        self.sentences = ExtractiveAnswerer(settings)  # the feature model's sentence ranking, for one more citation
        if settings.reader_refusal_threshold is not None:
            self.threshold = settings.reader_refusal_threshold
        else:
            calibrated = self.reader.calibrated_threshold()
            self.threshold = calibrated if calibrated is not None else READER_REFUSAL_THRESHOLD

    def preload(self) -> None:
        """Start loading the reader model in the background (``SpanReader.preload``)."""
        self.reader.preload()

    def passages(self, hits: list[Hit], scored: list[ScoredSentence] | None) -> list[Passage]:
        """What the reader reads, best first: the sentences around the feature model's best
        ones (``reader_read="sentences"``), or the top hits' whole chunks."""
        s = self.settings
        if s.reader_read == "sentences" and scored:
            return focused_passages(hits, scored, s.reader_focus_sentences, s.reader_focus_context)
        return chunk_passages(hits, s.reader_passages)

    def propose(self, question: str, hits: list[Hit], scored: list[ScoredSentence] | None = None) -> list[Proposal]:
        """Every span the reader proposes in what it reads, most confident first: the first
        ``reader_first`` passages, then the rest only while no proposal of the kind asked for
        reaches ``reader_stop_confidence`` (the cascade)."""
        s = self.settings
        passages = self.passages(hits, scored)
        first = s.reader_first if s.reader_stop_confidence < 1.0 else len(passages)
        early, later = first_read(passages, first)
        out = self.read(question, early)
        if later:
            required = requirement(question) if s.reader_kind_check else None
            lead = next((p for p in out if required is None or holds(required, kinds_in(p))), None)
            # Never stop under the refusal threshold: the cascade changes no refusal, only which
            # passages a confident answer is looked for in.
            if lead is None or lead.confidence < max(s.reader_stop_confidence, self.threshold):
                out = sorted(out + self.read(question, later), key=lambda p: -p.confidence)
        return out

    def read(self, question: str, passages: list[Passage]) -> list[Proposal]:
        """The reader's spans in ``passages``, placed in their documents, most confident first."""
        read = self.reader.read(question, [p.text for p in passages], top_n=self.settings.reader_spans)
        out = [p for passage, spans in zip(passages, read) for span in spans if (p := place(passage, span)) is not None]
        out.sort(key=lambda p: -p.confidence)
        return out

    def _best_sentence(self, scored: list[ScoredSentence], citations: list[Citation]) -> list[Citation]:
        """The feature model's best sentence as one more citation, when the reader did not cite it
        and it fits the budget: two different readers of the passages cover the answer more often
        than either alone."""
        if not scored or not _fits(scored[0], citations, self.settings.reader_max_cited_chars, self.settings.max_sentences):
            return []
        best = scored[0]
        return [Citation(id=len(citations) + 1, source=best.source, start=best.start, end=best.end, quote=best.text)]

    def answer(self, question: str, hits: list[Hit], query_vector: np.ndarray | None = None) -> Draft:
        if not hits:
            return Draft(NO_PASSAGES_TEXT, None, [], True, 0.0, answerer=self.name)
        s = self.settings
        scored: list[ScoredSentence] | None = None
        if query_vector is not None and s.reader_read == "sentences":
            scored = self.sentences.score_sentences(question, hits, query_vector)
        proposals = self.propose(question, hits, scored)
        required = requirement(question) if s.reader_kind_check else None
        choice = choose(proposals, required, self.threshold, s.reader_runner_up_ratio, s.reader_max_cited_chars, s.max_sentences)
        details: dict[str, Any] = {"confidence": round(choice.confidence, 4), "proposals": [_describe(p) for p in proposals[:5]]}
        if choice.refused or choice.lead is None:
            details["refusal"] = choice.reason
            return Draft(REFUSAL_TEXT, None, [], True, choice.confidence, answerer=self.name, details=details)
        citations = [Citation(id=i, source=hit.source, start=a, end=b, quote=document_slice(hit, a, b))
                     for i, (a, b, hit) in enumerate(choice.cited, 1)]
        if s.reader_cite_best_sentence and query_vector is not None:
            # Scored only for an answer (a refusal cites nothing), once.
            scored = scored or self.sentences.score_sentences(question, hits, query_vector)
            citations += self._best_sentence(scored, citations)
        assert choice.short is not None
        start, end, short = choice.short
        details["short_answer_span"] = {"citation": 1, "start": start, "end": end}
        body = " ".join(f"{c.quote} [{c.id}]" for c in citations)
        text = body if normalize_answer(short) == normalize_answer(citations[0].quote) else f"{short} [1]. {body}"
        return Draft(text, short, citations, False, choice.confidence, answerer=self.name, details=details)


def first_indices(docs: Sequence[str], first: int) -> list[int]:
    """Which of passages from documents ``docs`` (best first) the cascade reads first, in rank
    order: the best passage of as many different documents as there are, then the next best. Two
    chunks of one document would leave another document's different answer unread (a
    disagreement unseen)."""
    chosen: list[int] = []
    for i, doc in enumerate(docs):
        if len(chosen) < first and doc not in {docs[j] for j in chosen}:
            chosen.append(i)
    chosen += [i for i in range(len(docs)) if i not in chosen][: max(0, first - len(chosen))]
    return sorted(chosen)


def first_read(passages: list[Passage], first: int) -> tuple[list[Passage], list[Passage]]:
    """The cascade's first passages (``first_indices``) and the rest, each in rank order."""
    keep = set(first_indices([p.hit.chunk.doc_id for p in passages], first))
    return [p for i, p in enumerate(passages) if i in keep], [p for i, p in enumerate(passages) if i not in keep]


def place(passage: Passage, span: Span) -> Proposal | None:
    """A reader span of ``passage`` as a proposal with document offsets and its holding sentence;
    None when nothing is left of it, or when it runs across two sentences (a fragment)."""
    text = _strip_edges(span.text)
    if not text:
        return None
    c0 = span.start + span.text.find(text)
    holding = overlapping_sentences(passage.sentences, passage.start + c0, passage.start + c0 + 1)
    limit = holding[0][1] - passage.start if holding else len(passage.text)
    c0, c1 = balanced(passage.text, c0, c0 + len(text), limit)
    if c1 <= c0:
        return None
    start, end = passage.start + c0, passage.start + c1
    sentences = overlapping_sentences(passage.sentences, start, end)
    if len(sentences) > 1:
        return None  # an answer lies inside one sentence; a span across two is a fragment
    s0, s1 = sentences[0] if sentences else (passage.start, passage.end)
    placed = Span(span.passage, c0, c1, passage.text[c0:c1], span.score, span.margin, span.has_answer)
    return Proposal(placed, passage.hit, start, end, s0, s1, confidence(span.margin, span.has_answer))


def _fits(sentence: ScoredSentence, citations: list[Citation], max_chars: int, max_sentences: int) -> bool:
    used = sum(c.end - c.start for c in citations)
    overlaps = any(c.source == sentence.source and sentence.start < c.end and c.start < sentence.end for c in citations)
    duplicate = any(c.quote == sentence.text for c in citations)
    return not overlaps and not duplicate and len(citations) < max_sentences and used + len(sentence.text) <= max_chars


def _describe(p: Proposal) -> dict[str, Any]:
    return {
        "text": p.span.text, "source": p.hit.source, "start": p.start, "end": p.end,
        "margin": round(p.span.margin, 3), "has_answer": round(p.span.has_answer, 4), "confidence": round(p.confidence, 4),
    }
