"""Move an index from one place to another: ``rag migrate`` (an index folder -> the servers).

Nothing is re-read from the corpus or re-embedded: each document's stored rows (text, chunks,
sentence spans and float16 vectors, version) are copied as they are, so the copy answers exactly
as the original. Each document goes in the ingester's crash-safe order (mark pending -> vector
store -> catalog commit), holding the target's writer lock, so a copy killed at any point is
repaired by the next writer and can simply be run again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rag.domain import Chunk, Document
from rag.errors import StoreError
from rag.index.catalog_sql import CatalogStore
from rag.index.folder import Index

logger = logging.getLogger(__name__)

# What an index records about itself besides its documents (the collection's name is the target's own).
COPIED_META = ("pipeline", "embedding_model", "embedding_variant", "corpus_root")


@dataclass(frozen=True)
class StoredDocument:
    """Everything a catalog holds of one document, in the form ``put_document`` takes."""

    doc: Document
    chunks: list[Chunk]
    sentences: list[tuple[int, int]]
    vectors: np.ndarray
    version: str


def read_document(catalog: CatalogStore, doc_id: str) -> StoredDocument | None:
    """A document's rows from one snapshot of ``catalog``, or None when it is not there."""
    with catalog.snapshot():
        info = catalog.document(doc_id)
        text = catalog.text(doc_id)
        if info is None or text is None:
            return None
        chunks = catalog.chunks(catalog.chunk_ids(doc_id))
        rows = catalog.sentences(doc_id, 0, 1 << 30)
        version = catalog.versions([doc_id]).get(doc_id, "")
    doc = Document(info.source, text, info.title, info.date, info.kind, info.id, info.sha256)
    ordered = [chunks[cid][0] for cid in sorted(chunks)]
    vectors = np.stack([r.vector for r in rows]) if rows else np.zeros((0, 1), np.float32)
    return StoredDocument(doc, ordered, [(r.start, r.end) for r in rows], vectors, version)


def copy_index(source: Index, target: Index, progress: Callable[[int, int, str], None] | None = None) -> int:
    """Copy every document of ``source`` (an ``Index``) into ``target`` (an empty writable
    ``Index``); the number copied. StoreError when the target already holds documents."""
    src, dst = source.catalog, target.catalog
    if dst.counts()[0]:
        raise StoreError(f"the target index {target.label} already holds documents; migrate only into an empty one")
    src_variant = src.get_meta("embedding_variant")
    dst_variant = getattr(target.embedder, "variant", src_variant)
    if src_variant and dst_variant and src_variant != dst_variant:
        raise StoreError(f"index {source.label} holds {src_variant} embeddings, the target is set for {dst_variant}; "
                         f"set RAG_EMBEDDING__VARIANT={src_variant}")
    docs = src.documents()
    with target.writing():
        for key in COPIED_META:
            value = src.get_meta(key)
            if value is not None:
                dst.set_meta(key, value)
        for n, info in enumerate(docs, 1):
            stored = read_document(src, info.id)
            if stored is None:  # removed by a writer of the source meanwhile
                continue
            dst.mark_pending([info.id])
            target.store.upsert(src.vector_entries(info.id))
            dst.put_document(stored.doc, stored.chunks, stored.sentences, stored.vectors, stored.version)
            if progress is not None:
                progress(n, len(docs), info.source)
    return len(docs)
