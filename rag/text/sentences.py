"""Sentence boundaries with exact character offsets (pure functions).

``split_sentences(text)`` returns ``(start, end)`` offsets of sentences, stripped of surrounding
white space and never crossing a blank line or a markdown line start. Boundaries inside a
paragraph come from NLTK's Punkt model with its English parameters, vendored in
``rag/text/data/punkt_tab/english`` (NLTK data, Apache-2.0, see the LICENSE there) so that
nothing is downloaded. A sentence longer than ``max_sentence_chars`` (a table row, text without
punctuation) is cut at white space into pieces, so no unit exceeds what the embedding model reads
(MiniLM: 256 word pieces, ~1,000 characters).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Offsets = tuple[int, int]

PUNKT_DIR = Path(__file__).parent / "data" / "punkt_tab" / "english"

_BLOCK_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")  # a blank line (CRLF included) ends a paragraph
# Lines that begin a new unit even without a blank line before them: markdown headings, list
# items, quotes and table rows.
_LINE_START = re.compile(r"\n(?=[ \t]*(?:#{1,6}\s|[-*+]\s|\d{1,3}[.)]\s|>|\|))")
_HEADING_LINE = re.compile(r"^[ \t]*#{1,6}[ \t][^\n]*$", re.M)  # a heading ends at its line end
_NON_SPACE = re.compile(r"\S")


def load_punkt_parameters(folder: Path = PUNKT_DIR) -> Any:
    """NLTK ``PunktParameters`` from a ``punkt_tab`` folder, read as NLTK's ``load_punkt_params`` does.

    Read here rather than through NLTK's loader, whose path sandbox refuses files outside
    ``nltk.data.path`` (and widening that global path would affect every NLTK user in the process).
    NLTK is imported on first use: it takes seconds to import, and a question never needs it.
    """
    from nltk.tabdata import PunktDecoder
    from nltk.tokenize.punkt import PunktParameters

    decode = PunktDecoder()
    params = PunktParameters()

    def lines(name: str) -> list[str]:
        return (folder / name).read_text(encoding="utf-8").splitlines(keepends=True)

    params.collocations = set(decode.tab2tups(lines("collocations.tab")))
    params.sent_starters = decode.txt2set(lines("sent_starters.txt"))
    params.abbrev_types = decode.txt2set(lines("abbrev_types.txt"))
    params.ortho_context = decode.tab2intdict(lines("ortho_context.tab"))
    return params


@functools.lru_cache(maxsize=1)
def _punkt() -> Callable[[str], Iterator[Offsets]]:
    """NLTK's English Punkt sentence splitter, from the vendored parameters (no download)."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer(load_punkt_parameters()).span_tokenize


def _segments(text: str) -> Iterator[Offsets]:
    """Paragraph-like segments: split at blank lines and at markdown line starts."""
    cuts = {0, len(text)}
    for m in _BLOCK_BREAK.finditer(text):
        cuts.update((m.start(), m.end()))
    for m in _LINE_START.finditer(text):
        cuts.add(m.start())
    for m in _HEADING_LINE.finditer(text):
        cuts.add(m.end())
    bounds = sorted(cuts)
    for a, b in zip(bounds, bounds[1:]):
        if _NON_SPACE.search(text, a, b):
            yield a, b


def _strip(text: str, start: int, end: int) -> Offsets | None:
    """Shrink ``[start, end)`` to exclude leading and trailing white space; None if empty."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _cut_long(text: str, start: int, end: int, limit: int) -> Iterator[Offsets]:
    """Cut a span longer than ``limit`` at white space (or hard, if a word is longer)."""
    while end - start > limit:
        cut = text.rfind(" ", start + limit // 2, start + limit)
        if cut <= start:
            cut = max((text.rfind(c, start + 1, start + limit) for c in "\n\t"), default=-1)
        if cut <= start:
            cut = start + limit
        piece = _strip(text, start, cut)
        if piece:
            yield piece
        nxt = _strip(text, cut, end)
        if nxt is None:
            return
        start = nxt[0]
    yield start, end


def split_sentences(text: str, max_sentence_chars: int = 600) -> list[Offsets]:
    """Sentence spans of ``text``, in order, stripped, none longer than ``max_sentence_chars``.

    >>> t = "It rained. Then it stopped.\\n\\nNew paragraph"
    >>> [t[s:e] for s, e in split_sentences(t)]
    ['It rained.', 'Then it stopped.', 'New paragraph']
    """
    if max_sentence_chars < 20:
        raise ValueError(f"max_sentence_chars ({max_sentence_chars}) must be at least 20")
    tokenize = _punkt()
    spans: list[Offsets] = []
    for a, b in _segments(text):
        for s, e in tokenize(text[a:b]):
            stripped = _strip(text, a + s, a + e)
            if stripped:
                spans.extend(_cut_long(text, *stripped, max_sentence_chars))
    return spans
