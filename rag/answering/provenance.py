"""Provenance, added to an answer after its citations are verified: who says it, as of when, and
where documents disagree.

``annotate`` takes the verified answer record and returns it with ``attribution`` (the speaker
phrase of the cited claim, ``rag.answering.attribution``), ``as_of`` (the cited document's date)
and ``disagreement`` (``rag.answering.disagreement``: each side cited, the answer's own first;
the other sides' sentences become extra citations and the answer text ends with "Sources
differ: ..."). It runs after any answerer and changes nothing else. Every offset it adds is
verified like a citation, ``document_text(source)[start:end] == text``; what fails is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from rag.answering.attribution import find_attribution
from rag.answering.citations import verify_citation
from rag.answering.disagreement import OtherSide, other_sides
from rag.domain import Hit
from rag.records import Answer, Attribution, Citation, Side, speaker_phrase
from rag.text.sentences import split_sentences

logger = logging.getLogger(__name__)

TextOf = Callable[[str], str | None]
DateOf = Callable[[str], str | None]
# A document's sentence spans as ingest split them (from the catalog), or None to split here.
SpansOf = Callable[[str], list[tuple[int, int]] | None]


def _no_spans(source: str) -> None:
    return None


def lead_citation(answer: Answer) -> tuple[Citation, tuple[int, int] | None]:
    """The citation the short answer is read from, and the short answer's document offsets."""
    by_id = {c.id: c for c in answer.citations}
    span = answer.details.get("short_answer_span")
    short = answer.short_answer
    if isinstance(span, dict) and span.get("citation") in by_id and short:
        c, a, b = by_id[span["citation"]], span.get("start"), span.get("end")
        if type(a) is int and type(b) is int and c.start <= a < b <= c.end and c.quote[a - c.start : b - c.start] == short:
            return c, (a, b)
    for c in answer.citations:
        at = c.quote.find(short) if short else -1
        if at >= 0:
            return c, (c.start + at, c.start + at + len(short or ""))
    return answer.citations[0], None


def attribute(citation: Citation, claim: tuple[int, int] | None, text_of: TextOf, spans_of: SpansOf = _no_spans) -> Attribution | None:
    """The verified attribution of the claim cited by ``citation``, or None."""
    text = text_of(citation.source)
    if not verify_citation(text, citation.start, citation.end, citation.quote):
        return None
    assert text is not None
    found = find_attribution(text, citation.start, citation.end, claim, spans_of(citation.source))
    if found is None or not verify_citation(text, found.start, found.end, found.text):
        return None
    return Attribution(citation=citation.id, source=citation.source, start=found.start, end=found.end, text=found.text)


def _sentence_of(hits: Sequence[Hit], text_of: TextOf, spans_of: SpansOf) -> Callable[[str, int, int], tuple[int, int] | None]:
    """The sentence holding a span: from the retrieved chunk's sentences, else the document's
    stored sentences, else split afresh."""

    def find(source: str, start: int, end: int) -> tuple[int, int] | None:
        for h in hits:
            if h.source == source and h.chunk.start <= start and end <= h.chunk.end:
                held = [(s, e) for s, e in h.chunk.sentences if s <= start and end <= e]
                if held:
                    return held[0]
        stored = spans_of(source)
        if stored is None:
            text = text_of(source)
            stored = [(s, e) for s, e in split_sentences(text)] if text else []
        return next(((s, e) for s, e in stored if s <= start and end <= e), None)

    return find


def _side_citation(side: OtherSide, citations: list[Citation], text_of: TextOf) -> Citation | None:
    """The citation of a side's sentence: one already given, or a new, verified one."""
    s0, s1 = side.sentence
    for c in citations:
        if c.source == side.source and c.start <= side.start and side.end <= c.end:
            return c
    text = text_of(side.source)
    if text is None or not verify_citation(text, s0, s1, text[s0:s1]):
        return None
    return Citation(id=len(citations) + 1, source=side.source, start=s0, end=s1, quote=text[s0:s1])


def disagreement_text(sides: Sequence[Side]) -> str:
    """"Sources differ: 14% [1] (the port authority, 2024-03-05); 9% [2] (calder.txt, 2024-03-20)."."""
    parts = []
    for s in sides:
        who = speaker_phrase(s.attribution.text) if s.attribution else s.source
        parts.append(f"{s.answer} [{s.citation}] ({who}{', ' + s.as_of if s.as_of else ''})")
    return "Sources differ: " + "; ".join(parts) + "."


def annotate(
    answer: Answer, hits: Sequence[Hit], text_of: TextOf, date_of: DateOf, threshold: float | None,
    spans_of: SpansOf = _no_spans,
) -> Answer:
    """``answer`` with its provenance (see the module docstring); a refusal is returned as it is.
    ``spans_of`` gives a document's stored sentence spans (or None: split them here)."""
    if answer.refused or not answer.citations:
        return answer
    lead, claim = lead_citation(answer)
    attribution = attribute(lead, claim, text_of, spans_of)
    as_of = date_of(lead.source)
    update: dict[str, object] = {"attribution": attribution, "as_of": as_of}
    proposals = answer.details.get("proposals")
    if threshold is None or not answer.short_answer or not isinstance(proposals, list):
        return answer.model_copy(update=update)
    found = other_sides(answer.standalone_question, answer.short_answer, lead.source, lead.quote, proposals,
                        threshold, text_of, _sentence_of(hits, text_of, spans_of))
    citations = list(answer.citations)
    sides = [Side(answer=answer.short_answer, citation=lead.id, source=lead.source, as_of=as_of,
                  attribution=attribution)]
    for other in found:
        cited = _side_citation(other, citations, text_of)
        if cited is None:
            continue
        if cited not in citations:
            citations.append(cited)
        sides.append(Side(answer=other.text, citation=cited.id, source=other.source, as_of=date_of(other.source),
                          attribution=attribute(cited, (other.start, other.end), text_of, spans_of)))
    if len(sides) < 2:
        return answer.model_copy(update=update)
    logger.info("sources differ for %r: %s", answer.standalone_question, [s.answer for s in sides])
    text = f"{answer.answer} {disagreement_text(sides)}"
    return answer.model_copy(update={**update, "disagreement": sides, "citations": citations, "answer": text})
