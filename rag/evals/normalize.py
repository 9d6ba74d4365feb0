"""Shared by the gold loader and the metrics: document spans and SQuAD answer normalisation."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass


@dataclass(frozen=True)
class DocSpan:
    """A character span ``[start, end)`` of document ``source``."""

    source: str
    start: int
    end: int

    def overlaps(self, other: DocSpan) -> bool:
        """True when both spans are in the same document and share at least one character."""
        return self.source == other.source and self.start < other.end and other.start < self.end


_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the official SQuAD function).

    >>> normalize_answer("The 90%  share!")
    '90 share'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())
