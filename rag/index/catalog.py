"""The catalog: an SQLite file in the index folder that is the source of truth of an index.

It holds each document's exact text and metadata, its chunks (offsets and sentence spans) and its
sentences' embeddings (float16). Chroma's vectors and the BM25 index are derived from it and
can be rebuilt from it, so a crash between writes is repaired on the next open:

- ``pending`` rows are written (and committed) before Chroma is touched for a document and
  deleted in the same transaction that commits the document's new rows; a pending row found on
  open means Chroma may disagree with the catalog for that document, and it is re-synced.
- ``meta.generation`` increases with every committed change; the BM25 index records the
  generation it was built from and is rebuilt when they differ.

Connections are per thread (SQLite objects must not cross threads); WAL mode lets readers run
while a writer commits, and every reader sees a document either old or new, never half.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rag.domain import Chunk, Document, DocumentInfo, SentenceRow, VectorEntry, sentence_id
from rag.errors import StoreError
from rag.errors import disk_hint as _disk_hint
from rag.index.faults import failpoint

CATALOG_FILE = "catalog.sqlite3"
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, source TEXT NOT NULL UNIQUE, title TEXT NOT NULL, date TEXT,
    kind TEXT NOT NULL, sha256 TEXT NOT NULL, text TEXT NOT NULL, n_chunks INTEGER NOT NULL,
    n_chars INTEGER NOT NULL, ingested_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, idx INTEGER NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, first_sentence INTEGER NOT NULL, n_sentences INTEGER NOT NULL,
    text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, idx);
CREATE TABLE IF NOT EXISTS sentences (
    doc_id TEXT NOT NULL, idx INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    vector BLOB NOT NULL, PRIMARY KEY (doc_id, idx));
CREATE TABLE IF NOT EXISTS pending (doc_id TEXT PRIMARY KEY, since REAL NOT NULL);
"""


class Catalog:
    """Thread-safe access to ``catalog.sqlite3``; writes are serialised by one lock."""

    def __init__(self, index_dir: Path, create: bool = True) -> None:
        self.path = index_dir / CATALOG_FILE
        if not create and not self.path.exists():
            raise StoreError(f"no index at {index_dir} (missing {CATALOG_FILE}); run `rag ingest` first")
        self._local = threading.local()
        self._write_lock = threading.Lock()
        with self._write():
            pass

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
            except sqlite3.Error as e:
                raise StoreError(f"cannot open catalog {self.path}: {e}{_disk_hint(self.path.parent)}") from e
            self._local.conn = conn
        return conn

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

    def chunk_ids_where(
        self, sources: Sequence[str] = (), date_from: str | None = None, date_to: str | None = None
    ) -> set[str]:
        """Chunk ids of the documents that pass a filter, selected by SQLite.

        A document passes when its source equals one of ``sources`` or starts with one that ends
        in ``*`` (no sources: any), and, when a date bound is given, it has a date within the
        bounds (ISO dates, inclusive; a document without a date does not pass).
        """
        clauses: list[str] = []
        params: list[object] = []
        if sources:
            matches = []
            for pattern in sources:
                if pattern.endswith("*"):
                    matches.append("substr(d.source, 1, ?) = ?")  # a prefix, with no LIKE wildcards
                    params += [len(pattern) - 1, pattern[:-1]]
                else:
                    matches.append("d.source = ?")
                    params.append(pattern)
            clauses.append("(" + " OR ".join(matches) + ")")
        if date_from or date_to:
            clauses.append("coalesce(d.date, '') != ''")
        if date_from:
            clauses.append("d.date >= ?")
            params.append(date_from)
        if date_to:
            clauses.append("d.date <= ?")
            params.append(date_to)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return {r[0] for r in self._read(f"SELECT c.id FROM chunks c JOIN documents d ON c.doc_id = d.id{where}", params)}

    def sentence_ids(self) -> list[str]:
        return [sentence_id(d, i) for d, i in self._read("SELECT doc_id, idx FROM sentences")]

    def all_chunk_texts(self) -> tuple[list[str], list[str]]:
        rows = self._read("SELECT id, text FROM chunks ORDER BY id")
        return [r[0] for r in rows], [r[1] for r in rows]

    def vector_entries(self, doc_id: str) -> list[VectorEntry]:
        """The Chroma entries of a stored document, rebuilt from the catalog (for repair)."""
        with self.snapshot():  # the document, its sentences and chunks from the same version
            info = self.document(doc_id)
            if info is None:
                return []
            sentences = self.sentences(doc_id, 0, 1 << 30)
            rows = self._read("SELECT idx, first_sentence, n_sentences FROM chunks WHERE doc_id = ?", (doc_id,))
        spans = [(s.start, s.end) for s in sentences]
        members = sentence_chunks(spans, [(first, n) for _, first, n in sorted(rows)])
        return [
            VectorEntry(sentence_id(doc_id, s.idx), s.vector, doc_id, info.source, s.start, s.end, info.date, members[s.idx])
            for s in sentences
        ]

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
    ) -> None:
        """Replace a document's rows (document, chunks, sentences) in one transaction."""
        first_of = {span: i for i, span in enumerate(sentences)}
        with self._write() as conn:
            self._delete_rows(conn, doc.id)
            conn.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (doc.id, doc.source, doc.title, doc.date, doc.kind, doc.sha256, doc.text, len(chunks),
                 len(doc.text), time.time()),
            )
            conn.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(c.id, doc.id, c.index, c.start, c.end, first_of[c.sentences[0]], len(c.sentences), c.text)
                 for c in chunks],
            )
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
        conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM sentences WHERE doc_id = ?", (doc_id,))

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'")


def sentence_chunks(sentences: list[tuple[int, int]], chunks: list[tuple[int, int]]) -> list[tuple[int, ...]]:
    """For each sentence index, the indices of the chunks (first_sentence, n_sentences) holding it."""
    members: list[list[int]] = [[] for _ in sentences]
    for chunk_index, (first, n) in enumerate(chunks):
        for i in range(first, first + n):
            members[i].append(chunk_index)
    return [tuple(m) for m in members]
