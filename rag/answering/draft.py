"""What an answerer returns before its citations are checked, shared by every answerer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.records import Citation
from rag.text.answer_kinds import Candidate

REFUSAL_TEXT = "The sources don't say: no passage in the index answers this question."
NO_PASSAGES_TEXT = "The sources don't say: nothing in the index matches this question."


@dataclass
class ScoredSentence:
    """A sentence of the retrieved passages as the extractive answerer scored it."""

    doc_id: str
    source: str
    idx: int
    start: int
    end: int
    text: str
    hit_rank: int
    features: np.ndarray
    prob: float = 0.0
    typed: list[Candidate] = field(default_factory=list)
    support: float = 0.0  # the probability the refusal threshold applies to (prob, or more for a focus)


@dataclass(frozen=True)
class Draft:
    """An answer before the citation check: text with ``[n]`` markers, and its citations."""

    answer: str
    short_answer: str | None
    citations: list[Citation]
    refused: bool
    confidence: float
    sentences: tuple[ScoredSentence, ...] = ()
    answerer: str = "extractive"  # which answerer produced the text that is returned
    details: dict[str, Any] = field(default_factory=dict)  # answerer-specific facts for the record
