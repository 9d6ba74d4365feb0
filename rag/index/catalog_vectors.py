"""A vector store read from the catalog's own sentence vectors: for readers where Chroma cannot open.

Embedded Chroma writes its SQLite file even to answer a query, so on a folder a reader may not
write (a read-only mount, another user's index) it cannot open at all. The catalog stores every
sentence vector (float16) anyway; this store loads them once per catalog generation and searches
them exactly (cosine, one matrix product), with the same ``where`` clauses the retriever gives
Chroma. Read-only; fine at the sizes such a reader meets (about 1.5 MB of vectors per 1,000
sentences in memory).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from rag.domain import VectorEntry, date_number
from rag.index.catalog import Catalog
from rag.index.vectors import VectorHit


class CatalogVectors:
    """``VectorStore`` over ``Catalog.vector_entries`` (queries only)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._lock = threading.Lock()
        self._loaded: tuple[int, list[VectorEntry], np.ndarray] | None = None

    def _entries(self) -> tuple[list[VectorEntry], np.ndarray]:
        generation = self._catalog.generation
        with self._lock:
            if self._loaded is None or self._loaded[0] != generation:
                with self._catalog.snapshot():
                    generation = self._catalog.generation
                    entries = [e for d in self._catalog.documents() for e in self._catalog.vector_entries(d.id)]
                matrix = np.stack([e.vector for e in entries]).astype(np.float32) if entries else np.zeros((0, 1), np.float32)
                norms = np.linalg.norm(matrix, axis=1, keepdims=True)
                self._loaded = (generation, entries, matrix / np.maximum(norms, 1e-12))
            return self._loaded[1], self._loaded[2]

    def query(self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[VectorHit]:
        entries, matrix = self._entries()
        if not entries:
            return []
        q = np.asarray(vector, dtype=np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        sims = matrix @ q
        order = np.argsort(-sims, kind="stable")
        out: list[VectorHit] = []
        for i in order:
            e = entries[int(i)]
            if where is None or _matches(where, e):
                out.append(VectorHit(e.id, float(sims[i]), e.doc_id, e.chunks, e.version))
                if len(out) >= k:
                    break
        return out

    def count(self) -> int:
        return len(self._entries()[0])

    def upsert(self, entries: list[VectorEntry]) -> None:
        raise NotImplementedError("the catalog's vectors are read-only here")

    def delete(self, ids: list[str]) -> None:
        raise NotImplementedError("the catalog's vectors are read-only here")

    def ids_for_document(self, doc_id: str) -> list[str]:
        return [e.id for e in self._entries()[0] if e.doc_id == doc_id]


def _matches(where: dict[str, Any], e: VectorEntry) -> bool:
    """The subset of Chroma's ``where`` the retriever uses: ``$and``, ``$in``, ``$gt``, ``$gte``, ``$lte``."""
    if "$and" in where:
        return all(_matches(w, e) for w in where["$and"])
    values = {"doc_id": e.doc_id, "source": e.source, "date": date_number(e.date)}
    for key, cond in where.items():
        value = values[key]
        for op, arg in cond.items():
            ok = {"$in": lambda: value in arg, "$eq": lambda: value == arg, "$gt": lambda: value > arg,
                  "$gte": lambda: value >= arg, "$lte": lambda: value <= arg}[op]()
            if not ok:
                return False
    return True
