"""An index folder: the catalog (truth, with the BM25 index inside) and the Chroma collection.

One writer, many readers, across processes:

- A writer (ingest, prune, repair) holds ``write.lock`` in the folder (``filelock``) for the
  whole write; a second writer waits for it, with a message, or fails at once with one line
  (``Settings.write_lock``). Holding it, the writer first repairs what a crash may have left:
  documents whose Chroma write was interrupted (pending in the catalog) get their vectors
  re-written from the catalog's stored sentence vectors.
- A reader (``Index.open(readonly=True)``: ``rag ask``, ``rag serve``'s queries, evals) opens
  the catalog read-only and never repairs or writes; each question reads one committed SQLite
  snapshot. Embedded Chroma is not a shared-memory store: a process's client keeps its HNSW
  graph in memory and does not see another process's writes, so a reader reopens its client
  when the catalog's generation moves, and the retriever keeps a vector hit only when its
  document version equals the committed one (``rag.retrieval.hybrid``). A reader of a small
  embedded index (up to ``retrieval.exact_search_max_vectors`` sentence vectors), or of a
  folder it may not write to (where Chroma cannot even open), searches the catalog's own
  sentence vectors exactly instead, in the question's own snapshot (``rag.index.catalog_vectors``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.domain import DocumentInfo
from rag.errors import StoreError
from rag.index.catalog import Catalog, CatalogStore
from rag.index.catalog_vectors import CatalogVectors
from rag.index.embedding import DEFAULT_VARIANT, Embedder, OnnxEmbedder
from rag.index.faults import failpoint
from rag.index.locks import WriterLock
from rag.index.vectors import ChromaStore, VectorStore
from rag.query import Filters

logger = logging.getLogger(__name__)


# Embedded Chroma shares one client system per folder in a process; closing it under another
# live Index of the same folder breaks (or hangs) that one. Reopening is done only by the sole
# user of a folder's embedded store in this process (as in `rag ask`, `rag serve`, `rag ingest`).
_EMBEDDED_USERS: dict[str, int] = {}
_EMBEDDED_LOCK = threading.Lock()
OLD_LEXICAL_DIR = "bm25"  # schema 1 kept BM25 here; removed by the first writer of schema 2
CORPUS_ROOT_META = "corpus_root"  # the catalog's record of the corpus root (rag.ingest.pipeline)


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


def _index_variant(catalog: CatalogStore) -> str:
    """The embedding variant an index was built with; a new index gets the default."""
    stored = catalog.get_meta("embedding_variant")
    if stored:
        return stored
    # An index from before variants were recorded holds sentence-transformers' fp32 vectors.
    return "fp32" if catalog.counts()[0] else DEFAULT_VARIANT


def _make_embedder(settings: Settings, catalog: CatalogStore) -> OnnxEmbedder:
    """The configured embedder in the index's own variant unless a variant is set."""
    e = settings.embedding
    return OnnxEmbedder(e.model, e.variant or _index_variant(catalog), e.batch_size, e.threads, e.cache_dir)


def _reader_store(settings: Settings, catalog: CatalogStore) -> tuple[VectorStore, Any]:
    """A reader's vector store and how to reopen it: the catalog's own vectors for a small
    embedded index (``retrieval.exact_search_max_vectors``) or where embedded Chroma cannot open
    (a folder this process may not write), else Chroma."""
    name = catalog.get_meta("collection")
    if name is None:
        return CatalogVectors(catalog), None
    if settings.chroma_url:
        return ChromaStore(settings.index_dir, settings.chroma_url, name), None
    if catalog.sentence_count() <= settings.retrieval.exact_search_max_vectors:
        return CatalogVectors(catalog), None
    if not os.access(settings.index_dir / "chroma", os.W_OK) or not _can_write_chroma(settings.index_dir):
        logger.info("index folder %s is read-only: searching the catalog's vectors", settings.index_dir)
        return CatalogVectors(catalog), None
    try:
        store = ChromaStore(settings.index_dir, None, name)
    except StoreError as e:
        logger.warning("%s; searching the catalog's vectors instead", e)
        return CatalogVectors(catalog), None
    return store, lambda: ChromaStore(settings.index_dir, None, name)


def _can_write_chroma(index_dir: Path) -> bool:
    """Embedded Chroma writes its own SQLite file even to read; a read-only mount refuses that."""
    probe = index_dir / "chroma" / "chroma.sqlite3"
    try:
        with probe.open("r+b"):
            return True
    except OSError:
        return False


def _collection_name(catalog: CatalogStore) -> str:
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
        catalog: CatalogStore,
        store: VectorStore,
        embedder: Embedder,
        writable: bool,
        lock: WriterLock | Any = None,
        reopen_store: Any = None,
    ) -> None:
        self.settings = settings
        self.dir = settings.index_dir
        self.label = str(settings.index_dir)  # what messages call this index: its folder, or its catalog's URL
        self.catalog = catalog
        self.store = store
        self.embedder = embedder
        self.writable = writable
        self.readonly = catalog.readonly
        self.lock = lock
        self.write_lock = threading.RLock()
        self._reopen_store = reopen_store  # None: the store always sees other processes' writes
        self._store_lock = threading.RLock()
        self._fallback: CatalogVectors | None = None
        self._store_generation = catalog.generation
        self._writer_token = uuid.uuid4().hex
        self._embedded_key: str | None = None
        self._may_outgrow = False  # a reader on the catalog's vectors, chosen by the index's size
        self._sized_generation = catalog.generation
        if reopen_store is not None:
            self._share_embedded()

    def _share_embedded(self) -> None:
        """Count this Index among the users of its folder's embedded Chroma client."""
        self._embedded_key = os.path.realpath(self.dir)
        with _EMBEDDED_LOCK:
            _EMBEDDED_USERS[self._embedded_key] = _EMBEDDED_USERS.get(self._embedded_key, 0) + 1

    @classmethod
    def open(
        cls,
        settings: Settings,
        create: bool = False,
        embedder: Embedder | None = None,
        store: VectorStore | None = None,
        readonly: bool | None = None,
    ) -> Index:
        """Open ``settings.index_dir``; with ``create`` make it (for ingest), else it must exist.

        ``readonly`` (default: not ``create``) opens a reader: nothing in the folder is written.
        """
        index_dir = settings.index_dir
        readonly = (not create) if readonly is None else readonly
        if settings.catalog_url:
            from rag.index.servers import (
                open_on_servers,  # psycopg only for those who use it
            )

            return open_on_servers(settings, create, embedder, store, readonly)
        if create:
            _check_writable(index_dir)
        elif not (index_dir / "catalog.sqlite3").exists():
            raise StoreError(f"no index at {index_dir}; build one with `rag ingest PATH --index {index_dir}`")
        writable = not readonly and os.access(index_dir, os.W_OK)
        if readonly:
            catalog = Catalog(index_dir, create=False, readonly=True)
            embedder = embedder or _make_embedder(settings, catalog)
            chosen = store is None
            if store is None:
                store, reopen = _reader_store(settings, catalog)
            else:
                reopen = None
            index = cls(settings, catalog, store, embedder, False, reopen_store=reopen)
            index._may_outgrow = chosen and isinstance(store, CatalogVectors)
            index._check_model()
            return index
        lock = WriterLock(index_dir, settings.write_lock)
        with lock.hold():  # the schema, its upgrade and the collection's name are writes too
            catalog = Catalog(index_dir, create=create)
            name = _collection_name(catalog)
        embedder = embedder or _make_embedder(settings, catalog)
        reopen = None
        if store is None:
            store = ChromaStore(index_dir, settings.chroma_url, name)
            if not settings.chroma_url:
                reopen = functools.partial(ChromaStore, index_dir, None, name)
        index = cls(settings, catalog, store, embedder, writable, lock, reopen)
        index._check_model()
        return index

    def _check_model(self) -> None:
        """The index's vectors and the embedder's must come from the same model and variant."""
        if not self.catalog.counts()[0]:
            return
        stored = self.catalog.get_meta("embedding_model")
        if stored and stored != self.embedder.name:
            raise StoreError(
                f"index {self.label} was built with embedding model {stored!r}, not {self.embedder.name!r}; "
                "use that model or rebuild with `rag ingest --rebuild`"
            )
        stored_variant = _index_variant(self.catalog)
        variant = getattr(self.embedder, "variant", stored_variant)
        if variant != stored_variant:
            raise StoreError(
                f"index {self.label} holds {stored_variant} embeddings, not {variant}; set "
                f"RAG_EMBEDDING__VARIANT={stored_variant} or rebuild with `rag ingest --rebuild`"
            )

    # -- writing ----------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the folder's writer lock (see the module docstring) and repair before writing."""
        if self.readonly or self.lock is None:
            raise StoreError(f"index {self.dir} is open read-only")
        if not self.writable:
            raise StoreError(f"index folder {self.dir} is not writable")
        if self.settings.catalog_url:
            with self.write_lock, self.lock.hold():
                self.repair()
                yield
            return
        with self.write_lock, self.lock.hold():
            if self.catalog.get_meta("writer") != self._writer_token:
                # Another process wrote since this one last did: a client opened before that
                # holds a stale in-memory graph, which must not be written back.
                self._refresh_store()
                self.catalog.set_meta("writer", self._writer_token)
            shutil.rmtree(self.dir / OLD_LEXICAL_DIR, ignore_errors=True)
            self.repair()
            try:
                yield
            finally:
                self._store_generation = self.catalog.generation

    @contextmanager
    def keeping_corpus_root(self) -> Iterator[None]:
        """Write (holding the writer lock, which an ingest inside takes again) and leave the
        recorded corpus root as it was: an ingest from a temporary folder (an upload on servers,
        ``ui.corpus``) names its documents from that folder, which must not become the root later
        ingests name theirs from. An index with no root yet keeps the temporary one (a later
        ``rag ingest`` without ``--root`` then says that it is gone)."""
        with self.writing():
            before = self.catalog.get_meta(CORPUS_ROOT_META)
            try:
                yield
            finally:
                if before is not None and self.catalog.get_meta(CORPUS_ROOT_META) != before:
                    self.catalog.set_meta(CORPUS_ROOT_META, before)

    def repair(self) -> None:
        """Bring Chroma back in step with the catalog for documents an interrupted ingest touched.

        Call it holding the writer lock (``writing`` does).
        """
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

    # -- the vector store across processes --------------------------------------------------
    def query_vectors(
        self, vector: np.ndarray, k: int, filters: Filters | None = None, doc_ids: Collection[str] | None = None
    ) -> list[Any]:
        """``store.query`` (``doc_ids``: the documents the catalog selected for ``filters``; a
        source filter needs them), on a client that has seen the catalog's current generation."""
        generation = self.catalog.generation
        if self._may_outgrow and generation != self._sized_generation:
            self._outgrow_exact_search(generation)
        if self._reopen_store is None:
            return self.store.query(vector, k, filters, doc_ids)
        with self._store_lock:
            if generation != self._store_generation:
                self._refresh_unless_writing(generation)
            try:
                return self.store.query(vector, k, filters, doc_ids)
            except StoreError as e:
                # A client that read the folder while another process wrote it can be left
                # inconsistent ("Error finding id"); reopen it once, and answer this question from
                # the catalog's own vectors if that does not help. Never close the client under
                # this process's own writer: answer from the catalog then.
                if not self._refresh_unless_writing(generation):
                    logger.info("%s; answering from the catalog's vectors while this process writes", e)
                    return self._catalog_vectors().query(vector, k, filters, doc_ids)
                logger.warning("%s; reopened the vector store", e)
                try:
                    return self.store.query(vector, k, filters, doc_ids)
                except StoreError as again:
                    logger.warning("%s; answering from the catalog's vectors", again)
                    return self._catalog_vectors().query(vector, k, filters, doc_ids)

    def _outgrow_exact_search(self, generation: int) -> None:
        """Move a reader from the catalog's vectors to Chroma once writers have grown the index
        past ``retrieval.exact_search_max_vectors`` (checked once per catalog generation): a
        long-running ``rag serve`` would otherwise keep multiplying an ever larger matrix."""
        with self._store_lock:
            if not self._may_outgrow or generation == self._sized_generation:
                return
            self._sized_generation = generation
            store, reopen = _reader_store(self.settings, self.catalog)
            if isinstance(store, CatalogVectors):  # still small, or Chroma cannot open here
                return
            logger.info("index %s outgrew exact search: searching Chroma from now on", self.dir)
            self.store, self._reopen_store, self._may_outgrow = store, reopen, False
            self._store_generation = generation
            if reopen is not None:
                self._share_embedded()

    def _catalog_vectors(self) -> CatalogVectors:
        """The fallback for a failed Chroma query, made on first use; it reloads the vectors
        only when the catalog changes, not for every failed question."""
        with self._store_lock:
            if self._fallback is None:
                self._fallback = CatalogVectors(self.catalog)
            return self._fallback

    def _refresh_unless_writing(self, generation: int) -> bool:
        """Reopen the vector store for ``generation`` unless this process is writing; say whether
        it did. The writer uses the store without ``_store_lock``, so the check and the close must
        be one step under its lock: checked first and closed after, a writer that started in
        between found its client stopped ("'RustBindingsAPI' object has no attribute 'bindings'")."""
        if not self.write_lock.acquire(blocking=False):
            return False
        try:
            self._refresh_store()
            self._store_generation = generation
            return True
        finally:
            self.write_lock.release()

    def _refresh_store(self) -> None:
        if self._reopen_store is None:
            return
        with _EMBEDDED_LOCK:
            shared = _EMBEDDED_USERS.get(self._embedded_key or "", 0) > 1
        if shared:
            logger.debug("another Index in this process uses %s's embedded Chroma: not reopening it", self.dir)
            return
        with self._store_lock:
            close = getattr(self.store, "close", None)
            if close is not None:
                close()
            self.store = self._reopen_store()

    def close(self) -> None:
        """Release the vector store's client and this thread's catalog connection."""
        if self._embedded_key is not None:
            with _EMBEDDED_LOCK:
                _EMBEDDED_USERS[self._embedded_key] = max(_EMBEDDED_USERS.get(self._embedded_key, 1) - 1, 0)
            self._embedded_key = None
        close = getattr(self.store, "close", None)
        if close is not None:
            close()
        self.catalog.close()

    # -- reading ----------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        return self.catalog.documents()

    def document_text(self, source: str) -> str:
        """The exact text that citation offsets of ``source`` index into."""
        text = self.catalog.text_by_source(source)
        if text is None:
            raise StoreError(f"no document {source!r} in index {self.label}")
        return text

    def embed_query(self, text: str) -> np.ndarray:
        fast = getattr(self.embedder, "embed_query", None)
        return fast(text) if fast is not None else self.embedder.embed([text])[0]
