"""Shared by the gold loader and the metrics: document spans and SQuAD answer normalisation."""

from __future__ import annotations

from dataclasses import dataclass

from rag.text.normalize import normalize_answer

__all__ = ["DocSpan", "normalize_answer"]


@dataclass(frozen=True)
class DocSpan:
    """A character span ``[start, end)`` of document ``source``."""

    source: str
    start: int
    end: int

    def overlaps(self, other: DocSpan) -> bool:
        """True when both spans are in the same document and share at least one character."""
        return self.source == other.source and self.start < other.end and other.start < self.end


