"""The catalog: an SQLite file in the index folder that is the source of truth of an index.

It holds each document's exact text and metadata, its chunks (offsets and sentence spans), its
sentences' embeddings (float16) and the lexical (BM25) index of its chunks. Chroma's vectors are
derived from it and can be rebuilt from it, so a crash between writes is repaired by the next
writer (see ``rag.index.folder``):

- ``pending`` rows are written (and committed) before Chroma is touched for a document and
  deleted in the same transaction that commits the document's new rows; a pending row means
  Chroma may disagree with the catalog for that document, and it is re-synced.
- the lexical index is an FTS5 table of each chunk's tokens (``rag.text.tokens``, stored
  pre-tokenised, see ``rag.index.lexical``), written in the same transaction as the chunk, so it
  changes with the commit: no separate file, no rebuild, nothing to go stale.
- ``meta.generation`` increases with every committed change.

This module and its parts, ``catalog_sql`` (the operations in portable SQL, shared with the
PostgreSQL catalog ``catalog_pg``), ``catalog_schema`` (the tables and their upgrade) and
``catalog_lexical`` (BM25 over the lexical index), are the only ones that speak SQL
(``CatalogStore`` is their interface). Connections are per thread (SQLite objects must not cross
threads); WAL mode lets readers run while a writer commits, and every
reader sees a document either old or new, never half. A read-only catalog (``readonly=True``)
never writes, not even its schema, and also opens a folder it may not write to.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from rag.errors import StoreError
from rag.errors import disk_hint as _disk_hint
from rag.index.catalog_lexical import Lexicon
from rag.index.catalog_schema import SCHEMA_VERSION, migrate
from rag.index.catalog_sql import CatalogStore, Conn, SqlCatalog, sentence_chunks

__all__ = ["CATALOG_FILE", "Catalog", "CatalogStore", "sentence_chunks"]

CATALOG_FILE = "catalog.sqlite3"


class Catalog(SqlCatalog):
    """Thread-safe access to ``catalog.sqlite3``; writes are serialised by one lock.

    ``readonly``: every connection is opened read-only (``mode=ro``; ``immutable=1`` when the
    folder cannot be written, so SQLite needs no ``-shm`` file there) and writing is refused.
    """

    def __init__(self, index_dir: Path, create: bool = True, readonly: bool = False) -> None:
        self.path = index_dir / CATALOG_FILE
        if not create and not self.path.exists():
            raise StoreError(f"no index at {index_dir} (missing {CATALOG_FILE}); run `rag ingest` first")
        self.readonly = readonly
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self.lexicon = Lexicon(self._read, self.snapshot, lambda: self.generation)
        if readonly:
            self._check_schema()
        else:
            with self._write():
                pass

    def _connect(self) -> sqlite3.Connection:
        if not self.readonly:
            return sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        folder_writable = os.access(self.path.parent, os.W_OK)
        mode = "mode=ro" if folder_writable else "mode=ro&immutable=1"
        uri = f"file:{quote(str(self.path.resolve()))}?{mode}"
        return sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect()
                if not self.readonly:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    migrate(conn)
            except sqlite3.Error as e:
                raise StoreError(f"cannot open catalog {self.path}: {e}{_disk_hint(self.path.parent)}") from e
            self._local.conn = conn
        return conn

    def _check_schema(self) -> None:
        schema = self.get_meta("schema")
        if schema != SCHEMA_VERSION:
            raise StoreError(
                f"index {self.path.parent} has catalog schema {schema}, this version reads {SCHEMA_VERSION}; "
                f"run `rag ingest --index {self.path.parent}` once to upgrade it"
            )

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read on this thread inside the block sees one committed state of the catalog.

        A query reads a document's chunks, sentence spans and text in separate statements; an
        ingest committing a new version between them would pair old offsets with new text and
        yield quotes that verify but are cut mid-word. In WAL mode a read transaction keeps the
        snapshot of its first read, so inside this block a document is old or new, never half.
        Re-entrant; the thread must not write the catalog inside it.
        """
        depth = getattr(self._local, "snapshot_depth", 0)
        if depth:
            self._local.snapshot_depth = depth + 1
            try:
                yield
            finally:
                self._local.snapshot_depth = depth
            return
        conn = self._conn()
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchall()  # pin it now
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"cannot read catalog {self.path}: {e}") from e
        self._local.snapshot_depth = 1
        try:
            yield
        finally:
            self._local.snapshot_depth = 0
            if conn.in_transaction:
                conn.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction; rolled back on any error, which is raised as StoreError."""
        if self.readonly:
            raise StoreError(f"catalog {self.path} is open read-only")
        if getattr(self._local, "snapshot_depth", 0):
            raise StoreError("cannot write the catalog inside a read snapshot")
        with self._write_lock:
            conn = self._conn()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"cannot write catalog {self.path}: {e}{_disk_hint(self.path.parent)}") from e
                raise

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        try:
            return self._conn().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"cannot read catalog {self.path}: {e}") from e

    def _insert_chunks(self, conn: Conn, rows: list[tuple], tokens: list[list[str]]) -> None:
        for row, toks in zip(rows, tokens):
            cur = conn.execute(
                'INSERT INTO chunks (id, doc_id, idx, start, "end", first_sentence, n_sentences, text, n_tokens) '
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            conn.execute("INSERT INTO chunk_terms (rowid, tokens) VALUES (?, ?)", (cur.lastrowid, " ".join(toks)))

    def _delete_lexical(self, conn: Conn, doc_id: str) -> None:
        conn.execute("DELETE FROM chunk_terms WHERE rowid IN (SELECT rowid FROM chunks WHERE doc_id = ?)", (doc_id,))

    def lexical_rows(self) -> dict[str, str]:
        """Each chunk id with its stored lexical tokens (tests compare indexes with it)."""
        rows = self._read("SELECT c.id, t.tokens FROM chunks c JOIN chunk_terms t ON t.rowid = c.rowid")
        return dict(rows)

