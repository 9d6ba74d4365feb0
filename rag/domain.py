"""Domain records that flow through the pipeline: Document -> Chunk -> Hit.

Invariants (tested in tests/test_domain.py and tests/test_chunking.py):
- ``Chunk.text == document.text[chunk.start:chunk.end]``;
- a chunk's sentence spans lie inside ``[start, end)`` and are in order;
- ``Hit`` carries the chunk it scored, so offsets never get lost on the way to a citation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def content_hash(text: str) -> str:
    """SHA-256 of the document text (UTF-8), used to skip unchanged files."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_id(source: str) -> str:
    """Stable id of a document: derived from its corpus-relative path, so re-ingest keeps it."""
    return hashlib.sha1(source.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Document:
    """A source document with its exact text (file text, or extracted text for HTML/PDF)."""

    source: str  # path relative to the corpus root, with "/"
    text: str
    title: str
    date: str | None = None  # ISO "YYYY-MM-DD" when the file has one
    kind: str = "txt"  # txt | md | html | pdf
    id: str = ""
    sha256: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", document_id(self.source))
        if not self.sha256:
            object.__setattr__(self, "sha256", content_hash(self.text))


@dataclass(frozen=True)
class Chunk:
    """A contiguous span of a document, made of whole sentences (or pieces of a giant one)."""

    doc_id: str
    index: int
    start: int
    end: int
    text: str
    sentences: tuple[tuple[int, int], ...] = field(default=())  # absolute (start, end) spans

    @property
    def id(self) -> str:
        return chunk_id(self.doc_id, self.index)

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"chunk span {self.start}:{self.end} is not ordered")
        if len(self.text) != self.end - self.start:
            raise ValueError(f"chunk text length {len(self.text)} != span {self.start}:{self.end}")
        for s, e in self.sentences:
            if not self.start <= s < e <= self.end:
                raise ValueError(f"sentence {s}:{e} lies outside chunk {self.start}:{self.end}")


def chunk_id(doc_id: str, index: int) -> str:
    """Deterministic chunk id: the same file chunked the same way gets the same ids."""
    return f"{doc_id}:{index:05d}"


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the per-retriever ranks that produced it."""

    chunk: Chunk
    source: str
    score: float
    dense_rank: int | None = None
    lexical_rank: int | None = None
    dense_score: float | None = None
