"""Domain records that flow through the pipeline: Document -> Chunk -> Hit.

Every layer may import this module; it imports nothing of the package. Invariants (tested in
tests/test_chunking.py and tests/test_domain.py):
- ``Chunk.text == document.text[chunk.start:chunk.end]``;
- a chunk's sentence spans lie inside ``[start, end)`` and are in order;
- ``Hit`` carries the chunk it scored, so offsets never get lost on the way to a citation, and
  what the answerer reads (sentence rows, the document text, term statistics), all from one
  catalog snapshot, so the answerer never opens the index.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def content_hash(text: str) -> str:
    """SHA-256 of the document text (UTF-8), used to skip unchanged files."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (model files are checked against it)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def sentence_id(doc_id: str, index: int) -> str:
    """The vector store id of a document's ``index``-th sentence."""
    return f"{doc_id}:s{index:05d}"


def date_number(date: str | None) -> int:
    """``YYYY-MM-DD`` as the integer YYYYMMDD (Chroma filters compare numbers); 0 when unknown."""
    return int(date.replace("-", "")) if date else 0


@dataclass(frozen=True)
class DocumentInfo:
    """A document's catalog row without its text."""

    id: str
    source: str
    title: str
    date: str | None
    kind: str
    sha256: str
    n_chunks: int
    n_chars: int


@dataclass(frozen=True)
class SentenceRow:
    """A sentence of a stored document: its span and unit-length embedding."""

    idx: int
    start: int
    end: int
    vector: np.ndarray


@dataclass(frozen=True)
class VectorEntry:
    """One sentence vector and where it lies: its document, span and containing chunks."""

    id: str
    vector: np.ndarray
    doc_id: str
    source: str
    start: int
    end: int
    date: str | None
    chunks: tuple[int, ...]
    version: str = ""  # the document version these vectors belong to (``Catalog.put_document``)


@dataclass(frozen=True)
class TermStats:
    """Document frequencies of the lexical index's chunks, and the idf computed from them."""

    df: Mapping[str, int]
    n: int  # number of chunks

    def idf(self, token: str) -> float:
        """BM25-style idf, >0; a token no chunk contains gets the largest value."""
        return self._idf(self.df.get(token, 0))

    def max_idf(self) -> float:
        """The idf of a token no chunk contains: the scale of this index's idf values."""
        return self._idf(0)

    def _idf(self, df: int) -> float:
        n = max(self.n, 1)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


EMPTY_STATS = TermStats({}, 0)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the per-retriever ranks that produced it.

    The retriever also attaches what an answerer reads, from the same catalog snapshot: the
    chunk's sentence rows with one neighbour on each side (``sentences``; ``first``..``last``
    are the chunk's own sentence indices), the document's exact text, and the lexical index's
    term statistics (shared by all hits of one question).
    """

    chunk: Chunk
    source: str
    score: float
    dense_rank: int | None = None
    lexical_rank: int | None = None
    dense_score: float | None = None
    # What the answerer reads; left out of repr, equality and hashing (a hit is its chunk and scores).
    sentences: tuple[SentenceRow, ...] = field(default=(), repr=False, compare=False)
    first: int = field(default=0, compare=False)
    last: int = field(default=-1, compare=False)
    document_text: str = field(default="", repr=False, compare=False)
    terms: TermStats = field(default=EMPTY_STATS, repr=False, compare=False)
