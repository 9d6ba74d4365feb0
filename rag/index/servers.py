"""An index on servers: the catalog in PostgreSQL (``RAG_CATALOG_URL``) and the vectors on a
Chroma server (``RAG_CHROMA_URL``). An app instance opened this way reads and writes no folder
of its own: any number of them, on any machines, share one index.

Writers take the catalog's advisory lock (``rag.index.catalog_pg.PgWriterLock``) and repair
what a killed writer left pending, as in a folder; readers take no lock and see every commit on
their next question (the generation lives in PostgreSQL; a Chroma server's collection is shared,
so nothing needs reopening).
"""

from __future__ import annotations

from rag.config import Settings
from rag.errors import StoreError
from rag.index.catalog_pg import PgCatalog, PgWriterLock
from rag.index.embedding import Embedder
from rag.index.folder import Index, _collection_name, _make_embedder
from rag.index.vectors import ChromaStore, VectorStore


def embedding_label(embedder: Embedder) -> str:
    """What a Chroma collection records about its vectors: the model and its variant (an
    embedder of one's own may have no variant: its name alone)."""
    variant = getattr(embedder, "variant", None)
    return f"{embedder.name} {variant}" if variant else embedder.name


def open_on_servers(
    settings: Settings, create: bool, embedder: Embedder | None, store: VectorStore | None, readonly: bool
) -> Index:
    """Open the index of ``settings.catalog_url``; ``create`` makes its schema (a writer)."""
    url = settings.catalog_url
    assert url is not None
    if not settings.chroma_url and store is None:
        raise StoreError("RAG_CATALOG_URL needs RAG_CHROMA_URL too: every instance must reach the same vectors")
    lock = None
    if readonly:
        catalog = PgCatalog(url, create=False, readonly=True)
        name = catalog.get_meta("collection")
    else:
        lock = PgWriterLock(url, settings.write_lock)
        with lock.hold():  # the schema and the collection's name are writes too
            catalog = PgCatalog(url, create=create)
            name = _collection_name(catalog)
    try:
        embedder = embedder or _make_embedder(settings, catalog)
        if store is None:
            store = ChromaStore(settings.index_dir, settings.chroma_url, name or "rag_chunks",
                                embedding=embedding_label(embedder))
        index = Index(settings, catalog, store, embedder, not readonly, lock)
        index.label = catalog.label
        index._check_model()
    except BaseException:
        catalog.close()
        raise
    return index
