"""An index folder: the catalog (truth), the Chroma collection and the BM25 index, kept in step.

``Index.open`` repairs what a crash may have left: documents whose Chroma write was interrupted
(pending in the catalog) get their vectors re-written from the catalog's stored sentence vectors,
Chroma ids that the catalog does not know are deleted, and a BM25 index built from an older
catalog generation is rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.domain import DocumentInfo
from rag.errors import StoreError
from rag.index.catalog import Catalog
from rag.index.embedding import DEFAULT_VARIANT, Embedder, OnnxEmbedder
from rag.index.faults import failpoint
from rag.index.lexical import LexicalIndex
from rag.index.vectors import ChromaStore, VectorStore

logger = logging.getLogger(__name__)

LEXICAL_DIR = "bm25"


def pipeline_fingerprint(settings: Settings, embedder: Embedder) -> str:
    """What must match for stored chunks and vectors to be reused: chunking and model."""
    c = settings.chunking
    return json.dumps(
        {"model": embedder.name, "chunk_chars": c.chunk_chars, "overlap": c.overlap_sentences,
         "max_sentence_chars": c.max_sentence_chars, "version": 1},
        sort_keys=True,
    )


def _check_writable(index_dir: Path) -> None:
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create index folder {index_dir}: {e.strerror or e}") from e
    if not os.access(index_dir, os.W_OK | os.X_OK):
        raise StoreError(f"index folder {index_dir} is not writable")


def _index_variant(catalog: Catalog) -> str:
    """The embedding variant an index was built with; a new index gets the default."""
    stored = catalog.get_meta("embedding_variant")
    if stored:
        return stored
    # An index from before variants were recorded holds sentence-transformers' fp32 vectors.
    return "fp32" if catalog.counts()[0] else DEFAULT_VARIANT


def _collection_name(catalog: Catalog) -> str:
    """The index's Chroma collection, named once at creation so a moved folder still finds it."""
    name = catalog.get_meta("collection")
    if name is None:
        name = f"rag_chunks_{uuid.uuid4().hex[:12]}"
        catalog.set_meta("collection", name)
    return name


class Index:
    """The resources of one index folder. Thread-safe; cheap to query once open."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        store: VectorStore,
        embedder: Embedder,
        writable: bool,
    ) -> None:
        self.settings = settings
        self.dir = settings.index_dir
        self.catalog = catalog
        self.store = store
        self.embedder = embedder
        self.writable = writable
        self._lexical: LexicalIndex | None = None
        self._lexical_lock = threading.Lock()
        self.write_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        settings: Settings,
        create: bool = False,
        embedder: Embedder | None = None,
        store: VectorStore | None = None,
    ) -> Index:
        """Open ``settings.index_dir``; with ``create`` make it (for ingest), else it must exist."""
        index_dir = settings.index_dir
        if create:
            _check_writable(index_dir)
        elif not (index_dir / "catalog.sqlite3").exists():
            raise StoreError(f"no index at {index_dir}; build one with `rag ingest PATH --index {index_dir}`")
        writable = os.access(index_dir, os.W_OK)
        catalog = Catalog(index_dir, create=create)
        e = settings.embedding
        embedder = embedder or OnnxEmbedder(e.model, e.variant or _index_variant(catalog), e.batch_size, e.threads,
                                            e.cache_dir)
        store = store or ChromaStore(index_dir, settings.chroma_url, _collection_name(catalog))
        index = cls(settings, catalog, store, embedder, writable)
        index._check_model()
        if writable:
            index.repair()
        return index

    def _check_model(self) -> None:
        """The index's vectors and the embedder's must come from the same model and variant."""
        if not self.catalog.counts()[0]:
            return
        stored = self.catalog.get_meta("embedding_model")
        if stored and stored != self.embedder.name:
            raise StoreError(
                f"index {self.dir} was built with embedding model {stored!r}, not {self.embedder.name!r}; "
                "use that model or rebuild with `rag ingest --rebuild`"
            )
        stored_variant = _index_variant(self.catalog)
        variant = getattr(self.embedder, "variant", stored_variant)
        if variant != stored_variant:
            raise StoreError(
                f"index {self.dir} holds {stored_variant} embeddings, not {variant}; set "
                f"RAG_EMBEDDING__VARIANT={stored_variant} or rebuild with `rag ingest --rebuild`"
            )

    # -- consistency ------------------------------------------------------------------------
    def repair(self) -> None:
        """Bring Chroma back in step with the catalog for documents an interrupted ingest touched."""
        pending = self.catalog.pending()
        for doc_id in pending:
            self.resync_document(doc_id)
            failpoint("index.repair.resynced")
        if pending:
            logger.warning("repaired %d document(s) left pending by an interrupted ingest", len(pending))
            self.catalog.clear_pending(pending)

    def resync_document(self, doc_id: str) -> None:
        """Make Chroma hold exactly the catalog's chunks of ``doc_id`` (none if it is gone)."""
        entries = self.catalog.vector_entries(doc_id)
        stale = sorted(set(self.store.ids_for_document(doc_id)) - {e.id for e in entries})
        if stale:
            self.store.delete(stale)
        if entries:
            self.store.upsert(entries)

    def orphan_ids(self) -> list[str]:
        """Chroma ids the catalog does not know (should be none)."""
        all_ids = getattr(self.store, "all_ids", None)
        if all_ids is None:
            return []
        return sorted(set(all_ids()) - set(self.catalog.sentence_ids()))

    # -- lexical ----------------------------------------------------------------------------
    def lexical(self) -> LexicalIndex:
        """The BM25 index for the catalog's current generation (loaded or rebuilt as needed)."""
        generation = self.catalog.generation
        current = self._lexical
        if current is not None and current.generation == generation:
            return current
        with self._lexical_lock:
            if self._lexical is not None and self._lexical.generation == generation:
                return self._lexical
            folder = self.dir / LEXICAL_DIR
            loaded = LexicalIndex.load(folder)
            if loaded is None or loaded.generation != generation:
                loaded = self.rebuild_lexical(generation)
            self._lexical = loaded
            return loaded

    def rebuild_lexical(self, generation: int | None = None) -> LexicalIndex:
        generation = self.catalog.generation if generation is None else generation
        ids, texts = self.catalog.all_chunk_texts()
        built = LexicalIndex.build(ids, texts, generation)
        if self.writable:
            try:
                built.save(self.dir / LEXICAL_DIR)
            except OSError as e:  # a read-only or full disk: keep serving from memory
                logger.warning("could not save the BM25 index (%s); using it from memory", e)
        return built

    # -- reading ----------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        return self.catalog.documents()

    def document_text(self, source: str) -> str:
        """The exact text that citation offsets of ``source`` index into."""
        text = self.catalog.text_by_source(source)
        if text is None:
            raise StoreError(f"no document {source!r} in index {self.dir}")
        return text

    def embed_query(self, text: str) -> np.ndarray:
        fast = getattr(self.embedder, "embed_query", None)
        return fast(text) if fast is not None else self.embedder.embed([text])[0]
