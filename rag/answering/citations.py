"""Citation verification and quote location: the guarantee behind every ``[n]``.

``verify_citation`` is the invariant of the answer record: ``text[start:end] == quote``.
``locate_quote`` finds a quote (typed by a person or a language model) in a passage, exactly or
after normalising white space, quote marks, dashes and case, and maps the match back to exact
offsets of the original text. ``enforce_citations`` drops citations that fail and renumbers the
``[n]`` markers so that the answer never names a citation it does not carry.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable

from rag.records import Citation

logger = logging.getLogger(__name__)

_MARKER = re.compile(r"\s?\[(\d+)\]")
_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2026": ".",
})


def verify_citation(text: str | None, start: int, end: int, quote: str) -> bool:
    """True when ``text[start:end] == quote`` (and the span is a real, non-empty one)."""
    return text is not None and 0 <= start < end <= len(text) and text[start:end] == quote


def _normalise(text: str) -> tuple[str, list[int]]:
    """Folded text and, for each of its characters, the index of the original character."""
    out: list[str] = []
    pos: list[int] = []
    prev_space = True
    for i, ch in enumerate(text):
        ch = unicodedata.normalize("NFKC", ch).translate(_FOLD).lower()
        for c in ch:
            if c.isspace():
                if prev_space:
                    continue
                c = " "
                prev_space = True
            else:
                prev_space = False
            out.append(c)
            pos.append(i)
    while out and out[-1] == " ":
        out.pop()
        pos.pop()
    return "".join(out), pos


def locate_quote(passage: str, quote: str) -> tuple[int, int] | None:
    """Offsets ``(start, end)`` in ``passage`` of ``quote``, exact or normalised; None if absent.

    >>> locate_quote("He said “ninety  percent”.", '"ninety percent"')
    (8, 25)
    """
    quote = quote.strip()
    if not quote:
        return None
    i = passage.find(quote)
    if i >= 0:
        return i, i + len(quote)
    norm_passage, positions = _normalise(passage)
    norm_quote, _ = _normalise(quote)
    norm_quote = norm_quote.strip(" .\"'")
    if len(norm_quote) < 3:
        return None
    j = norm_passage.find(norm_quote)
    if j < 0:
        return None
    start = positions[j]
    end = positions[j + len(norm_quote) - 1] + 1
    return start, end


def enforce_citations(
    answer: str, citations: list[Citation], text_of: Callable[[str], str | None]
) -> tuple[str, list[Citation]]:
    """Keep verified citations only, renumber them 1..n and rewrite the answer's markers.

    A marker whose citation failed (or never existed) is removed from the answer text.
    """
    kept: list[Citation] = []
    renumber: dict[int, int] = {}
    for c in citations:
        if verify_citation(text_of(c.source), c.start, c.end, c.quote):
            if c.id not in renumber:
                renumber[c.id] = len(kept) + 1
                kept.append(c.model_copy(update={"id": renumber[c.id]}))
        else:
            logger.warning("dropped citation %d: %s[%d:%d] does not match its quote", c.id, c.source, c.start, c.end)

    def sub(m: re.Match[str]) -> str:
        new = renumber.get(int(m.group(1)))
        return f" [{new}]" if new is not None and m.group(0).startswith(" ") else (f"[{new}]" if new else "")

    return _MARKER.sub(sub, answer).strip(), kept


def markers(answer: str) -> list[int]:
    """The citation numbers an answer text refers to, in order of appearance."""
    return [int(m.group(1)) for m in _MARKER.finditer(answer)]
