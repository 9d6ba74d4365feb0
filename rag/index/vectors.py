"""The vector store: sentence vectors in a Chroma collection, embedded or on a ``chroma run`` server.

Each entry is one sentence of a document (id ``DOCID:sNNNNN``) with the indices of the chunks
that contain it; the retriever scores a chunk by its best sentence (max-pooling). Measured on
the SQuAD slice (by a one-off script that was never committed), max-pooled sentence vectors retrieve the chunk
holding the answer as well as encoding whole chunks (recall@5 0.863 vs 0.849) while encoding
fewer tokens, and they give the answerer sentence vectors for free.

Embedded (``PersistentClient`` in ``INDEX_DIR/chroma``) by default; with a URL the same code talks
to a server through ``HttpClient``, one collection per index folder. Embeddings are always passed
in: Chroma's default embedding function would try to download a model.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np

from rag.domain import VectorEntry, date_number
from rag.errors import StoreError, disk_hint
from rag.query import Filters

logger = logging.getLogger(__name__)

EMBEDDING_KEY = "rag:embedding"  # a collection's metadata: the model and variant of its vectors
_BATCH = 4000  # below Chroma's max batch size (5461 on the embedded SQLite backend)


@dataclass(frozen=True)
class VectorHit:
    id: str
    similarity: float  # cosine similarity in [-1, 1]
    doc_id: str
    chunks: tuple[int, ...]
    version: str = ""  # the document version the vector was written for


class VectorStore(Protocol):
    """What the retriever and the ingester need from a vector store."""

    def upsert(self, entries: list[VectorEntry]) -> None: ...

    def delete(self, ids: list[str]) -> None: ...

    def ids_for_document(self, doc_id: str) -> list[str]: ...

    def query(self, vector: np.ndarray, k: int, filters: Filters | None = None,
              doc_ids: Collection[str] | None = None) -> list[VectorHit]: ...

    def count(self) -> int: ...


class ChromaStore:
    """A Chroma collection of sentence vectors (cosine space) with doc id, source, span, date, chunks."""

    def __init__(self, index_dir: Path, url: str | None = None, name: str = "rag_chunks",
                 embedding: str | None = None) -> None:
        """``embedding`` (model and variant): recorded on a new collection, and an existing one
        that records another is refused (its vectors could not be compared with the questions')."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.url = url
        self._folder = index_dir / "chroma"
        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        try:
            if url:
                parsed = urlparse(url)
                if not parsed.hostname:
                    raise StoreError(f"RAG_CHROMA_URL ({url!r}) has no host")
                port = parsed.port or (443 if parsed.scheme == "https" else 8000)
                self._client = chromadb.HttpClient(
                    host=parsed.hostname, port=port, ssl=parsed.scheme == "https", settings=chroma_settings
                )
                self._client.heartbeat()
            else:
                self._client = chromadb.PersistentClient(path=str(index_dir / "chroma"), settings=chroma_settings)
            metadata = {"hnsw:space": "cosine"} | ({EMBEDDING_KEY: embedding} if embedding else {})
            self._collection = self._client.get_or_create_collection(name, metadata=metadata, embedding_function=None)
            stored = (self._collection.metadata or {}).get(EMBEDDING_KEY)
        except StoreError:
            raise
        except Exception as e:  # connection refused, permission denied, corrupt files...
            where = f"Chroma server at {url}" if url else f"Chroma store in {self._folder}"
            hint = "" if url or not index_dir.exists() else disk_hint(index_dir)
            raise StoreError(f"cannot open {where}: {_one_line(e)}{hint}") from e
        if embedding and stored and stored != embedding:
            where = f"Chroma server at {url}" if url else f"Chroma store in {self._folder}"
            raise StoreError(f"collection {name} on the {where} holds vectors of {stored}, not {embedding}; "
                             "point the catalog at its own collection or rebuild with `rag ingest --rebuild`")

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            where = f"Chroma server at {self.url}" if self.url else "the embedded Chroma store"
            hint = "" if self.url else disk_hint(self._folder.parent)
            raise StoreError(f"{what} failed on {where}: {_one_line(e)}{hint}") from e

    def upsert(self, entries: list[VectorEntry]) -> None:
        """Add or replace sentence vectors (ids are deterministic, so this is idempotent)."""
        for i in range(0, len(entries), _BATCH):
            part = entries[i : i + _BATCH]
            self._call(
                "upsert",
                self._collection.upsert,
                ids=[e.id for e in part],
                embeddings=np.stack([e.vector for e in part]).astype(np.float32),
                metadatas=[
                    {"doc_id": e.doc_id, "source": e.source, "start": e.start, "end": e.end,
                     "date": date_number(e.date), "chunks": ",".join(map(str, e.chunks)), "version": e.version}
                    for e in part
                ],
            )

    def delete(self, ids: list[str]) -> None:
        for i in range(0, len(ids), _BATCH):
            self._call("delete", self._collection.delete, ids=ids[i : i + _BATCH])

    def ids_for_document(self, doc_id: str) -> list[str]:
        got = self._call("get", self._collection.get, where={"doc_id": doc_id}, include=[])
        return list(got["ids"])

    def all_ids(self) -> list[str]:
        got = self._call("get", self._collection.get, include=[])
        return list(got["ids"])

    def query(self, vector: np.ndarray, k: int, filters: Filters | None = None,
              doc_ids: Collection[str] | None = None) -> list[VectorHit]:
        """The ``k`` nearest sentences that pass ``filters`` (a source filter needs ``doc_ids``,
        the documents the catalog selected for it: Chroma cannot match a prefix)."""
        if filters is not None and filters.sources and doc_ids is not None and not doc_ids:
            return []  # no document passes (Chroma refuses an empty $in)
        # No count() first: Chroma returns fewer than k (or none) by itself, and counting costs
        # 13-19 ms per query at 180k vectors (benchmarks/results/profiles).
        res = self._call(
            "query",
            self._collection.query,
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=k,
            where=chroma_where(filters, doc_ids),
            include=["distances", "metadatas"],
        )
        return [
            VectorHit(vid, 1.0 - float(d), str(m["doc_id"]), tuple(int(x) for x in str(m["chunks"]).split(",") if x),
                      str(m.get("version", "")))
            for vid, d, m in zip(res["ids"][0], res["distances"][0], res["metadatas"][0])
            if m is not None  # deleted by a concurrent ingest between Chroma's search and its metadata read
        ]

    def count(self) -> int:
        return int(self._call("count", self._collection.count))

    def drop(self) -> None:
        """Delete this index's collection and close the client (tests, ``rag ingest --rebuild``)."""
        try:
            self._call("delete collection", self._client.delete_collection, self._collection.name)
        finally:
            self.close()

    def close(self) -> None:
        """Release the client. Chroma shares one system per folder in a process; until it is
        released, a folder deleted and made again in the same process (``--rebuild``) fails
        with "attempt to write a readonly database"."""
        close = getattr(self._client, "close", None)
        if close is not None:
            try:
                close()
            except Exception as e:  # noqa: BLE001 - closing must not mask what the caller is doing
                logger.debug("closing the Chroma client failed: %s", e)


def chroma_where(filters: Filters | None, doc_ids: Collection[str] | None = None) -> dict[str, Any] | None:
    """Chroma's ``where`` for ``filters``: the allowed documents by id, and the date bounds as
    YYYYMMDD numbers (0, no date, never passes a date bound).

    >>> chroma_where(Filters(date_from="2024-01-01"))
    {'$and': [{'date': {'$gte': 20240101}}, {'date': {'$gt': 0}}]}
    """
    if filters is None or filters.empty:
        return None
    clauses: list[dict[str, Any]] = []
    if filters.sources:
        if doc_ids is None:
            raise ValueError("a source filter reaches Chroma as the catalog's document ids; none were given")
        clauses.append({"doc_id": {"$in": sorted(doc_ids)}})
    if filters.date_from:
        clauses.append({"date": {"$gte": date_number(filters.date_from)}})
    if filters.date_to:
        clauses.append({"date": {"$lte": date_number(filters.date_to)}})
    if filters.dated:
        clauses.append({"date": {"$gt": 0}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(e).__name__}: {first[:200]}" if first else type(e).__name__
