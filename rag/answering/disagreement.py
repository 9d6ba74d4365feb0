"""Where documents disagree: the reader found a different value of the kind asked for elsewhere.

A pure function of the reader's proposals (``Draft.details["proposals"]``: text, source, document
offsets, confidence, best first). A proposal is the other side of a disagreement when

- it is confident enough to be an answer on its own (at least the refusal ``threshold``);
- it lies in another document than the answer's citation (one document saying two things is
  not two sources differing);
- the question asks for a quantity (a share, an amount, a count, a duration:
  ``rag.text.answer_kinds.requirement``) and the proposal holds exactly one value of that kind,
  different from the answer's after dropping hedges ("about 75%" is 75%, "$420 million" is
  "420 million"). Names are not compared (a question may have several right names), nor dates:
  a date question often has right answers of several grains that no value comparison tells
  apart (on a 400-question SQuAD sample the only two cross-document date "disagreements" were
  "1598" against "16th century" and "1754–1763" against "1759");
- its sentence holds at least ``MIN_SHARED`` of the question's content words that the answer's
  sentence holds (those very words): a value from a passage about something else is not a
  disagreement ("Nine children have been treated in hospital" against "38 cases of measles had
  been confirmed in Norwood County" share question words, but not the ones the answer matched).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rag.text.answer_kinds import AType, candidates, requirement
from rag.text.tokens import tokenize

QUANTITY_KINDS = frozenset({AType.PERCENT, AType.MONEY, AType.NUMBER, AType.DURATION})
MIN_SHARED = 0.6  # of the question words the answer's sentence holds, the other side's must hold this share
MAX_OTHER_SIDES = 2

_HEDGES = re.compile(
    r"\b(?:about|around|approximately|roughly|nearly|almost|some|just|over|under|more than|less than|"
    r"fewer than|up to|at least|at most|an estimated|estimated)\b",
    re.I,
)


@dataclass(frozen=True)
class OtherSide:
    """A value of another document: ``text == document[start:end]``, inside sentence ``sentence``."""

    source: str
    start: int
    end: int
    text: str
    sentence: tuple[int, int]
    confidence: float


_SCALE_WORDS = frozenset({"percent", "million", "billion", "trillion", "thousand", "hundred", "bn"})


def value_key(text: str) -> tuple[str, ...]:
    """A value without hedges, thousands separators, currency signs and the thing counted, as
    sorted words: "about 75%" and "75 percent" give the same key, "$420 million" and "420 million"
    too, and so do "730" and "730 workers" (the reader's span may or may not take the noun).
    A value written without digits keeps all its words."""
    text = _HEDGES.sub(" ", text.lower())
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text).replace("%", " percent ").replace("per cent", "percent")
    words = re.findall(r"\d+(?:\.\d+)?|[a-z]+", text)
    if any(w[0].isdigit() for w in words):
        words = [w for w in words if w[0].isdigit() or w in _SCALE_WORDS]
    return tuple(sorted(words))


def _shared(question_words: set[str], text: str) -> int:
    return len(question_words & set(tokenize(text)))


def _value(text: str, start: int, end: int, kinds: frozenset[AType]) -> tuple[int, int, str] | None:
    """The one value of ``kinds`` inside ``text[start:end]``, or None (none, or several)."""
    values = [c for c in candidates(text, start, end) if c.type in kinds]
    return (values[0].start, values[0].end, values[0].text) if len(values) == 1 else None


def other_sides(
    question: str,
    answer: str,
    answer_source: str,
    answer_sentence: str,
    proposals: Sequence[Mapping[str, Any]],
    threshold: float,
    text_of: Callable[[str], str | None],
    sentence_of: Callable[[str, int, int], tuple[int, int] | None],
) -> list[OtherSide]:
    """The other documents' different values for ``question`` (see the module docstring), best first.

    ``answer`` is the short answer, cited from ``answer_sentence`` of ``answer_source``;
    ``sentence_of(source, start, end)`` gives the document offsets of the sentence holding a span.
    """
    kinds = requirement(question)
    if not kinds or not kinds <= QUANTITY_KINDS:
        return []
    q = set(tokenize(question)) & set(tokenize(answer_sentence))  # what the answer's sentence matched
    needed = MIN_SHARED * len(q)
    seen = {answer_source}
    keys = {value_key(answer)}
    out: list[OtherSide] = []
    for p in proposals:
        source, start, end = p.get("source"), p.get("start"), p.get("end")
        confidence = p.get("confidence")
        if not isinstance(source, str) or type(start) is not int or type(end) is not int:
            continue
        if source in seen or not isinstance(confidence, float | int) or confidence < threshold:
            continue
        text = text_of(source)
        if text is None or text[start:end] != p.get("text"):
            continue  # the document changed since it was read
        value = _value(text, start, end, kinds)
        sentence = sentence_of(source, start, end) if value else None
        if value is None or sentence is None or value_key(value[2]) in keys:
            continue
        if _shared(q, text[sentence[0] : sentence[1]]) < max(needed, 1):
            continue
        seen.add(source)
        keys.add(value_key(value[2]))
        out.append(OtherSide(source, value[0], value[1], value[2], sentence, float(confidence)))
        if len(out) == MAX_OTHER_SIDES:
            break
    return out
