"""Exact search over the catalog's own sentence vectors: a reader's vector store without Chroma.

The catalog stores every sentence vector (float16) in the same SQLite transaction as the
chunks, so this store always sees exactly the committed version a question reads: nothing to
reopen, no stale client. A reader uses it

- for a small index (``retrieval.exact_search_max_vectors``, default 20,000 sentence vectors,
  about 10,000 chunks): one matrix product is exact where HNSW is approximate, costs well under
  a millisecond at that size, and a ``rag ask`` process then never imports chromadb (0.4 s of
  its start-up) or opens a client; a reader opened while the index was small moves to Chroma
  once writers grow it past that (``Index.query_vectors``, checked once per generation);
- on a folder it may not write (a read-only mount, another user's index), where embedded
  Chroma cannot open at all (it writes its SQLite file even to answer a query);
- for one question, when its Chroma client fails (``Index.query_vectors``).

The vectors are loaded once per catalog generation, in one read of three tables (about 1.5 MB
per 1,000 sentences in memory, as float32). ``Filters`` are evaluated once per document
(``Filters.allows``), into a mask over the rows. Read-only.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from rag.domain import VectorEntry, sentence_id
from rag.index.catalog import CatalogStore, sentence_chunks
from rag.index.vectors import VectorHit
from rag.query import Filters


@dataclass
class _Doc:
    doc_id: str
    source: str
    date: str | None
    version: str
    chunks: tuple[tuple[int, int], ...]  # (first_sentence, n_sentences), in chunk order

    @cached_property
    def _members(self) -> list[tuple[int, ...]]:
        # The chunks cover every sentence, so the last chunk's end is the sentence count.
        return sentence_chunks(max((first + n for first, n in self.chunks), default=0), self.chunks)

    def chunks_holding(self, sentence: int) -> tuple[int, ...]:
        return self._members[sentence] if sentence < len(self._members) else ()


@dataclass(frozen=True)
class _Table:
    generation: int
    docs: list[_Doc]
    doc_of_row: np.ndarray  # the row's index in ``docs``
    sentence_of_row: np.ndarray
    matrix: np.ndarray  # rows L2-normalised, float32


class CatalogVectors:
    """``VectorStore`` over the catalog's sentence vectors (queries only; exact cosine)."""

    def __init__(self, catalog: CatalogStore) -> None:
        self._catalog = catalog
        self._lock = threading.Lock()
        self._table: _Table | None = None

    def _load(self) -> _Table:
        generation = self._catalog.generation
        with self._lock:
            if self._table is None or self._table.generation != generation:
                with self._catalog.snapshot():
                    generation = self._catalog.generation
                    doc_rows, sentence_rows, chunk_rows = self._catalog.all_sentence_vectors()
                self._table = _build(generation, doc_rows, sentence_rows, chunk_rows)
            return self._table

    def query(self, vector: np.ndarray, k: int, filters: Filters | None = None,
              doc_ids: Collection[str] | None = None) -> list[VectorHit]:
        """The ``k`` nearest sentences whose documents pass ``filters`` (``doc_ids`` is not
        needed: each document's source and date are at hand)."""
        table = self._load()
        if not len(table.doc_of_row) or k < 1:
            return []
        q = np.asarray(vector, dtype=np.float32)
        # einsum, not ``@``: the product is small, and BLAS's worker threads, once woken, spin
        # for a while and slowed the reader's passes after it (ask p50 on the slice +45%).
        sims = np.einsum("ij,j->i", table.matrix, q / max(float(np.linalg.norm(q)), 1e-12))
        if filters is not None and not filters.empty:
            allowed = np.array([filters.allows(d.source, d.date) for d in table.docs], dtype=bool)
            sims = np.where(allowed[table.doc_of_row], sims, -np.inf)
        k = min(k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        top = top[np.lexsort((top, -sims[top]))]  # best first; ties in stored order
        out: list[VectorHit] = []
        for row in top:
            if not np.isfinite(sims[row]):
                break
            doc = table.docs[int(table.doc_of_row[row])]
            s = int(table.sentence_of_row[row])
            out.append(VectorHit(sentence_id(doc.doc_id, s), float(sims[row]), doc.doc_id, doc.chunks_holding(s),
                                 doc.version))
        return out

    def count(self) -> int:
        return len(self._load().doc_of_row)

    def upsert(self, entries: list[VectorEntry]) -> None:
        raise NotImplementedError("the catalog's vectors are read-only here")

    def delete(self, ids: list[str]) -> None:
        raise NotImplementedError("the catalog's vectors are read-only here")

    def ids_for_document(self, doc_id: str) -> list[str]:
        table = self._load()
        at = next((i for i, d in enumerate(table.docs) if d.doc_id == doc_id), None)
        if at is None:
            return []
        return [sentence_id(doc_id, int(s)) for s in table.sentence_of_row[table.doc_of_row == at]]


def _build(generation: int, doc_rows: list[tuple[str, str, str | None, str]], sentence_rows: list[tuple[str, int, bytes]],
           chunk_rows: list[tuple[str, int, int]]) -> _Table:
    layout: dict[str, list[tuple[int, int]]] = {}
    for doc_id, first, n in chunk_rows:
        layout.setdefault(doc_id, []).append((first, n))
    docs = [_Doc(i, source, date, version, tuple(layout.get(i, ()))) for i, source, date, version in doc_rows]
    position = {d.doc_id: n for n, d in enumerate(docs)}
    rows = [(position[doc_id], idx, blob) for doc_id, idx, blob in sentence_rows if doc_id in position]
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return _Table(generation, docs, empty, empty, np.zeros((0, 1), np.float32))
    matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float16).reshape(len(rows), -1).astype(np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return _Table(generation, docs, np.array([r[0] for r in rows], dtype=np.int64),
                  np.array([r[1] for r in rows], dtype=np.int64), matrix)

