"""Sentence-aware chunking with exact character offsets.

Pure functions: ``split_sentences(text)`` returns ``(start, end)`` spans of sentences (stripped of
surrounding white space, never crossing a blank line), and ``chunk_document`` packs whole sentences
into overlapping chunks. Every chunk satisfies ``text[chunk.start:chunk.end] == chunk.text`` and
every non-white-space character of the text lies in some sentence and some chunk.

Sentence boundaries inside a paragraph come from NLTK's Punkt model (English parameters, shipped
inside llama-index-core's wheel, so nothing is downloaded). A sentence longer than
``max_sentence_chars`` (a table row, text without punctuation) is cut at white space into pieces,
so no unit exceeds what the embedding model reads (MiniLM: 256 word pieces, ~1,000 characters).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from collections.abc import Callable, Iterator

from rag.domain import Chunk

Span = tuple[int, int]

_BLOCK_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")  # a blank line (CRLF included) ends a paragraph
# Lines that begin a new unit even without a blank line before them: markdown headings, list
# items, quotes and table rows.
_LINE_START = re.compile(r"\n(?=[ \t]*(?:#{1,6}\s|[-*+]\s|\d{1,3}[.)]\s|>|\|))")
_HEADING_LINE = re.compile(r"^[ \t]*#{1,6}[ \t][^\n]*$", re.M)  # a heading ends at its line end
_NON_SPACE = re.compile(r"\S")


@functools.lru_cache(maxsize=1)
def _punkt() -> Callable[[str], Iterator[Span]]:
    """Load NLTK's English Punkt parameters from llama-index-core's bundled data (no download)."""
    import nltk
    from nltk.tokenize.punkt import PunktTokenizer

    spec = importlib.util.find_spec("llama_index.core")
    if spec and spec.submodule_search_locations:
        bundled = os.path.join(spec.submodule_search_locations[0], "_static", "nltk_cache")
        if bundled not in nltk.data.path:
            nltk.data.path.insert(0, bundled)
    try:
        tokenizer = PunktTokenizer("english")
    except LookupError:  # no bundled data: fall back to untrained Punkt (still offset-exact)
        from nltk.tokenize.punkt import PunktSentenceTokenizer

        return PunktSentenceTokenizer().span_tokenize
    return tokenizer.span_tokenize


def _segments(text: str) -> Iterator[Span]:
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


def _strip(text: str, start: int, end: int) -> Span | None:
    """Shrink ``[start, end)`` to exclude leading and trailing white space; None if empty."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _cut_long(text: str, start: int, end: int, limit: int) -> Iterator[Span]:
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


def split_sentences(text: str, max_sentence_chars: int = 600) -> list[Span]:
    """Sentence spans of ``text``, in order, stripped, none longer than ``max_sentence_chars``.

    >>> t = "It rained. Then it stopped.\\n\\nNew paragraph"
    >>> [t[s:e] for s, e in split_sentences(t)]
    ['It rained.', 'Then it stopped.', 'New paragraph']
    """
    if max_sentence_chars < 20:
        raise ValueError(f"max_sentence_chars ({max_sentence_chars}) must be at least 20")
    tokenize = _punkt()
    spans: list[Span] = []
    for a, b in _segments(text):
        for s, e in tokenize(text[a:b]):
            stripped = _strip(text, a + s, a + e)
            if stripped:
                spans.extend(_cut_long(text, *stripped, max_sentence_chars))
    return spans


def pack_sentences(sentences: list[Span], chunk_chars: int, overlap: int) -> list[list[Span]]:
    """Group consecutive sentences into windows of about ``chunk_chars`` characters.

    Each window after the first repeats the last ``overlap`` sentences of the one before (never
    the whole window), so an answer that spans a boundary still lies in one chunk.
    """
    if chunk_chars <= 0:
        raise ValueError(f"chunk_chars ({chunk_chars}) must be positive")
    if overlap < 0:
        raise ValueError(f"overlap ({overlap}) must not be negative")
    windows: list[list[Span]] = []
    i = 0
    while i < len(sentences):
        j = i + 1
        while j < len(sentences) and sentences[j][1] - sentences[i][0] <= chunk_chars:
            j += 1
        windows.append(sentences[i:j])
        if j >= len(sentences):
            break
        i = max(j - overlap, i + 1)
    return windows


def chunk_document(
    doc_id: str,
    text: str,
    chunk_chars: int = 500,
    overlap: int = 1,
    max_sentence_chars: int = 600,
) -> list[Chunk]:
    """Chunks of whole sentences with exact offsets: ``text[c.start:c.end] == c.text``."""
    sentences = split_sentences(text, max_sentence_chars)
    chunks = []
    for index, window in enumerate(pack_sentences(sentences, chunk_chars, overlap)):
        start, end = window[0][0], window[-1][1]
        chunks.append(Chunk(doc_id, index, start, end, text[start:end], tuple(window)))
    return chunks
