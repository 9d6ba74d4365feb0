"""Shared by the gold loader, the metrics and the reader's training script: document spans, SQuAD
answer normalisation and the SQuAD answer scores (plain Python, no third-party imports)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rag.text.normalize import normalize_answer

__all__ = ["DocSpan", "exact_match", "f1_score", "normalize_answer"]


@dataclass(frozen=True)
class DocSpan:
    """A character span ``[start, end)`` of document ``source``."""

    source: str
    start: int
    end: int

    def overlaps(self, other: DocSpan) -> bool:
        """True when both spans are in the same document and share at least one character."""
        return self.source == other.source and self.start < other.end and other.start < self.end


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer ('' when none)."""
    targets = list(golds) or [""]
    return float(any(normalize_answer(prediction) == normalize_answer(g) for g in targets))


def _token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)  # SQuAD 2.0: no-answer vs no-answer is 1, else 0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    """The best token F1 of the prediction against any gold answer ('' when none)."""
    return max(_token_f1(prediction, g) for g in (list(golds) or [""]))
