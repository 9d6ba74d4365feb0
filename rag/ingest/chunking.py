"""Sentence-aware chunking with exact character offsets.

Pure functions: ``chunk_document`` packs whole sentences (``rag.text.sentences.split_sentences``)
into overlapping chunks. Every chunk satisfies ``text[chunk.start:chunk.end] == chunk.text`` and
every non-white-space character of the text lies in some sentence and some chunk.

Sentence boundaries come from ``rag.text.sentences``.
"""

from __future__ import annotations

from rag.domain import Chunk
from rag.text.sentences import Offsets, split_sentences


def pack_sentences(sentences: list[Offsets], chunk_chars: int, overlap: int) -> list[list[Offsets]]:
    """Group consecutive sentences into windows of about ``chunk_chars`` characters.

    Each window after the first repeats the last ``overlap`` sentences of the one before (never
    the whole window), so an answer that spans a boundary still lies in one chunk.
    """
    if chunk_chars <= 0:
        raise ValueError(f"chunk_chars ({chunk_chars}) must be positive")
    if overlap < 0:
        raise ValueError(f"overlap ({overlap}) must not be negative")
    windows: list[list[Offsets]] = []
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
