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

This module and its two parts, ``catalog_schema`` (the tables and their upgrade) and
``catalog_lexical`` (BM25 over the FTS5 table), are the only ones that speak SQL (``CatalogStore``
is their interface): a catalog on a database server would be a second implementation of it. Connections are per thread (SQLite
objects must not cross threads); WAL mode lets readers run while a writer commits, and every
reader sees a document either old or new, never half. A read-only catalog (``readonly=True``)
never writes, not even its schema, and also opens a folder it may not write to.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import numpy as np

from rag.domain import Chunk, Document, DocumentInfo, SentenceRow, TermStats, VectorEntry, sentence_id
from rag.errors import StoreError
from rag.errors import disk_hint as _disk_hint
from rag.index.catalog_lexical import Lexicon
from rag.index.catalog_schema import SCHEMA_VERSION, filter_sql, migrate
from rag.index.faults import failpoint
from rag.index.lexical import stored_tokens
from rag.query import Filters

CATALOG_FILE = "catalog.sqlite3"

_DOC_COLUMNS = "id, source, title, date, kind, sha256, n_chunks, n_chars"


class CatalogStore(Protocol):
    """What the index, the ingester and the retriever need from a catalog (SQLite here)."""

    generation: int

    def snapshot(self) -> object: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def documents(self) -> list[DocumentInfo]: ...
    def document_by_source(self, source: str) -> DocumentInfo | None: ...
    def text(self, doc_id: str) -> str | None: ...
    def text_by_source(self, source: str) -> str | None: ...
    def versions(self, doc_ids: Iterable[str]) -> dict[str, str]: ...

    def counts(self) -> tuple[int, int]: ...
    def chunks(self, ids: list[str]) -> dict[str, tuple[Chunk, str]]: ...
    def sentences(self, doc_id: str, first: int, last: int) -> list[SentenceRow]: ...
    def sentence_index_range(self, chunk_id: str) -> tuple[str, int, int] | None: ...
    def doc_ids_where(self, filters: Filters) -> set[str]: ...
    def lexical_search(self, tokens: list[str], k: int, doc_ids: set[str] | None = None) -> list[tuple[str, float]]: ...
    def term_stats(self, tokens: Iterable[str] = ()) -> TermStats: ...
    def vector_entries(self, doc_id: str) -> list[VectorEntry]: ...
    def all_sentence_vectors(self) -> tuple[list[tuple[str, str, str | None, str]], list[tuple[str, int, bytes]],
                                            list[tuple[str, int, int]]]: ...
    def sentence_count(self) -> int: ...
    def mark_pending(self, doc_ids: list[str]) -> None: ...
    def pending(self) -> list[str]: ...
    def clear_pending(self, doc_ids: list[str]) -> None: ...
    def put_document(self, doc: Document, chunks: list[Chunk], sentences: list[tuple[int, int]],
                     vectors: np.ndarray, version: str = "") -> None: ...
    def delete_document(self, doc_id: str) -> None: ...



class Catalog:
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

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    # -- documents --------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        rows = self._read(
            "SELECT id, source, title, date, kind, sha256, n_chunks, n_chars FROM documents ORDER BY source"
        )
        return [DocumentInfo(*r) for r in rows]

    def document_by_source(self, source: str) -> DocumentInfo | None:
        rows = self._read(
            "SELECT id, source, title, date, kind, sha256, n_chunks, n_chars FROM documents WHERE source = ?",
            (source,),
        )
        return DocumentInfo(*rows[0]) if rows else None

    def document(self, doc_id: str) -> DocumentInfo | None:
        rows = self._read(
            "SELECT id, source, title, date, kind, sha256, n_chunks, n_chars FROM documents WHERE id = ?",
            (doc_id,),
        )
        return DocumentInfo(*rows[0]) if rows else None

    def text(self, doc_id: str) -> str | None:
        rows = self._read("SELECT text FROM documents WHERE id = ?", (doc_id,))
        return rows[0][0] if rows else None

    def text_by_source(self, source: str) -> str | None:
        rows = self._read("SELECT text FROM documents WHERE source = ?", (source,))
        return rows[0][0] if rows else None

    def versions(self, doc_ids: Iterable[str]) -> dict[str, str]:
        """The committed version of each stored document among ``doc_ids`` (see ``put_document``)."""
        ids = list(dict.fromkeys(doc_ids))
        out: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self._read(f"SELECT id, version FROM documents WHERE id IN ({','.join('?' * len(part))})", part)
            out.update(dict(rows))
        return out

    def counts(self) -> tuple[int, int]:
        (docs,), = self._read("SELECT COUNT(*) FROM documents")
        (chunks,), = self._read("SELECT COUNT(*) FROM chunks")
        return docs, chunks

    # -- chunks and sentences ---------------------------------------------------------------
    def chunks(self, ids: list[str]) -> dict[str, tuple[Chunk, str]]:
        """Chunks by id (missing ids are left out), each with its document's source."""
        out: dict[str, tuple[Chunk, str]] = {}
        with self.snapshot():  # each chunk with its sentence spans from the same version
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                rows = self._read(
                    f'SELECT c.id, c.doc_id, c.idx, c.start, c."end", c.first_sentence, c.n_sentences, c.text, '
                    f"d.source FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})",
                    part,
                )
                for cid, doc_id, idx, start, end, first, n, text, source in rows:
                    spans = self._sentence_spans(doc_id, first, n)
                    out[cid] = (Chunk(doc_id, idx, start, end, text, spans), source)
        return out

    def _sentence_spans(self, doc_id: str, first: int, n: int) -> tuple[tuple[int, int], ...]:
        rows = self._read(
            'SELECT start, "end" FROM sentences WHERE doc_id = ? AND idx >= ? AND idx < ? ORDER BY idx',
            (doc_id, first, first + n),
        )
        return tuple((s, e) for s, e in rows)

    def sentences(self, doc_id: str, first: int, last: int) -> list[SentenceRow]:
        """Sentences ``first..last`` (inclusive) of a document with their vectors."""
        rows = self._read(
            'SELECT idx, start, "end", vector FROM sentences WHERE doc_id = ? AND idx BETWEEN ? AND ? ORDER BY idx',
            (doc_id, first, last),
        )
        return [SentenceRow(i, s, e, np.frombuffer(v, dtype=np.float16).astype(np.float32)) for i, s, e, v in rows]

    def sentence_index_range(self, chunk_id: str) -> tuple[str, int, int] | None:
        rows = self._read("SELECT doc_id, first_sentence, n_sentences FROM chunks WHERE id = ?", (chunk_id,))
        if not rows:
            return None
        doc_id, first, n = rows[0]
        return doc_id, first, first + n - 1

    def chunk_ids(self, doc_id: str | None = None) -> list[str]:
        if doc_id is None:
            return [r[0] for r in self._read("SELECT id FROM chunks ORDER BY id")]
        return [r[0] for r in self._read("SELECT id FROM chunks WHERE doc_id = ? ORDER BY idx", (doc_id,))]

    def doc_ids_where(self, filters: Filters) -> set[str]:
        """Ids of the documents that pass ``filters`` (see ``rag.query.Filters``), selected by SQL."""
        where, params = filter_sql(filters)
        return {r[0] for r in self._read(f"SELECT d.id FROM documents d{where}", params)}

    def chunk_ids_where(self, filters: Filters) -> set[str]:
        """Chunk ids of the documents that pass ``filters``."""
        where, params = filter_sql(filters)
        return {r[0] for r in self._read(f"SELECT c.id FROM chunks c JOIN documents d ON c.doc_id = d.id{where}", params)}

    # -- lexical ----------------------------------------------------------------------------
    def lexical_search(self, tokens: list[str], k: int, doc_ids: set[str] | None = None) -> list[tuple[str, float]]:
        """Top ``k`` chunk ids by BM25 over ``tokens`` (positive scores only), optionally only
        chunks of ``doc_ids``; read from the FTS5 index in the caller's snapshot."""
        if not tokens or k < 1:
            return []
        with self.snapshot():
            return self.lexicon.search(tokens, k, doc_ids)

    def term_stats(self, tokens: Iterable[str] = ()) -> TermStats:
        """Document frequencies of the chunks' tokens and the number of chunks, for idf (see ``Lexicon.term_stats``)."""
        with self.snapshot():
            return self.lexicon.term_stats(tokens)

    def sentence_ids(self) -> list[str]:
        return [sentence_id(d, i) for d, i in self._read("SELECT doc_id, idx FROM sentences")]

    def all_chunk_texts(self) -> tuple[list[str], list[str]]:
        rows = self._read("SELECT id, text FROM chunks ORDER BY id")
        return [r[0] for r in rows], [r[1] for r in rows]

    def lexical_rows(self) -> dict[str, str]:
        """Each chunk id with its stored lexical tokens (tests compare indexes with it)."""
        rows = self._read("SELECT c.id, t.tokens FROM chunks c JOIN chunk_terms t ON t.rowid = c.rowid")
        return dict(rows)

    def vector_entries(self, doc_id: str) -> list[VectorEntry]:
        """The Chroma entries of a stored document, rebuilt from the catalog (for repair)."""
        with self.snapshot():  # the document, its sentences and chunks from the same version
            info = self.document(doc_id)
            if info is None:
                return []
            version = self.versions([doc_id]).get(doc_id, "")
            sentences = self.sentences(doc_id, 0, 1 << 30)
            rows = self._read("SELECT idx, first_sentence, n_sentences FROM chunks WHERE doc_id = ?", (doc_id,))
        members = sentence_chunks(len(sentences), [(first, n) for _, first, n in sorted(rows)])
        return [
            VectorEntry(sentence_id(doc_id, s.idx), s.vector, doc_id, info.source, s.start, s.end, info.date,
                        members[s.idx], version)
            for s in sentences
        ]

    def all_sentence_vectors(self) -> tuple[list[tuple[str, str, str | None, str]], list[tuple[str, int, bytes]],
                                            list[tuple[str, int, int]]]:
        """Everything exact search needs, from one snapshot: the documents (id, source, date,
        version), every sentence (doc_id, idx, float16 vector bytes) and every chunk (doc_id,
        first_sentence, n_sentences), each ordered by document and position."""
        with self.snapshot():
            docs = self._read("SELECT id, source, date, version FROM documents ORDER BY id")
            sentences = self._read("SELECT doc_id, idx, vector FROM sentences ORDER BY doc_id, idx")
            chunks = self._read("SELECT doc_id, first_sentence, n_sentences FROM chunks ORDER BY doc_id, idx")
        return docs, sentences, chunks

    def sentence_count(self) -> int:
        (n,), = self._read("SELECT COUNT(*) FROM sentences")
        return int(n)

    # -- writes -----------------------------------------------------------------------------
    def mark_pending(self, doc_ids: list[str]) -> None:
        """Record, durably, that Chroma is about to change for these documents."""
        now = time.time()
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO pending VALUES (?, ?)", [(d, now) for d in doc_ids])

    def pending(self) -> list[str]:
        return [r[0] for r in self._read("SELECT doc_id FROM pending ORDER BY doc_id")]

    def clear_pending(self, doc_ids: list[str]) -> None:
        with self._write() as conn:
            conn.executemany("DELETE FROM pending WHERE doc_id = ?", [(d,) for d in doc_ids])

    def put_document(
        self,
        doc: Document,
        chunks: list[Chunk],
        sentences: list[tuple[int, int]],
        vectors: np.ndarray,
        version: str = "",
    ) -> None:
        """Replace a document's rows (document, chunks, sentences, lexical terms) in one transaction.

        ``version`` names this version of the document (the ingester derives it from the text
        and the pipeline); the vector store carries it too, so a reader can tell vectors of the
        committed version from those of a version still being written.
        """
        first_of = {span: i for i, span in enumerate(sentences)}
        tokens = [stored_tokens(c.text) for c in chunks]
        with self._write() as conn:
            self._delete_rows(conn, doc.id)
            conn.execute(
                "INSERT INTO documents (id, source, title, date, kind, sha256, text, n_chunks, n_chars, ingested_at, "
                "version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (doc.id, doc.source, doc.title, doc.date, doc.kind, doc.sha256, doc.text, len(chunks),
                 len(doc.text), time.time(), version),
            )
            for c, toks in zip(chunks, tokens):
                cur = conn.execute(
                    'INSERT INTO chunks (id, doc_id, idx, start, "end", first_sentence, n_sentences, text, n_tokens) '
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (c.id, doc.id, c.index, c.start, c.end, first_of[c.sentences[0]], len(c.sentences), c.text, len(toks)),
                )
                conn.execute("INSERT INTO chunk_terms (rowid, tokens) VALUES (?, ?)", (cur.lastrowid, " ".join(toks)))
            half = vectors.astype(np.float16)
            conn.executemany(
                "INSERT INTO sentences VALUES (?, ?, ?, ?, ?)",
                [(doc.id, i, s, e, half[i].tobytes()) for i, (s, e) in enumerate(sentences)],
            )
            conn.execute("DELETE FROM pending WHERE doc_id = ?", (doc.id,))
            self._bump(conn)
            failpoint("catalog.put_document.before_commit")

    def invalidate_hashes(self) -> None:
        """Make every document look changed, so the next ingest re-chunks and re-embeds it."""
        with self._write() as conn:
            conn.execute("UPDATE documents SET sha256 = 'stale'")

    def delete_document(self, doc_id: str) -> None:
        with self._write() as conn:
            self._delete_rows(conn, doc_id)
            conn.execute("DELETE FROM pending WHERE doc_id = ?", (doc_id,))
            self._bump(conn)
            failpoint("catalog.delete_document.before_commit")

    @staticmethod
    def _delete_rows(conn: sqlite3.Connection, doc_id: str) -> None:
        conn.execute("DELETE FROM chunk_terms WHERE rowid IN (SELECT rowid FROM chunks WHERE doc_id = ?)", (doc_id,))
        conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM sentences WHERE doc_id = ?", (doc_id,))

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'")


def sentence_chunks(n_sentences: int, chunks: Sequence[tuple[int, int]]) -> list[tuple[int, ...]]:
    """For each of a document's sentences, the indices of its chunks (first_sentence, n_sentences) holding it."""
    members: list[list[int]] = [[] for _ in range(n_sentences)]
    for chunk_index, (first, n) in enumerate(chunks):
        for i in range(first, first + n):
            members[i].append(chunk_index)
    return [tuple(m) for m in members]


