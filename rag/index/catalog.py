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

This module is the only one that speaks SQL (``CatalogStore`` is its interface): a catalog on a
database server would be a second implementation of it. Connections are per thread (SQLite
objects must not cross threads); WAL mode lets readers run while a writer commits, and every
reader sees a document either old or new, never half. A read-only catalog (``readonly=True``)
never writes, not even its schema, and also opens a folder it may not write to.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import numpy as np

from rag.domain import Chunk, Document, DocumentInfo, SentenceRow, TermStats, VectorEntry, sentence_id
from rag.errors import StoreError
from rag.errors import disk_hint as _disk_hint
from rag.index.faults import failpoint
from rag.index.lexical import bm25_rank_arrays, fts_token, stored_tokens

CATALOG_FILE = "catalog.sqlite3"
SCHEMA_VERSION = "2"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, source TEXT NOT NULL UNIQUE, title TEXT NOT NULL, date TEXT,
    kind TEXT NOT NULL, sha256 TEXT NOT NULL, text TEXT NOT NULL, n_chunks INTEGER NOT NULL,
    n_chars INTEGER NOT NULL, ingested_at REAL NOT NULL, version TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, idx INTEGER NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, first_sentence INTEGER NOT NULL, n_sentences INTEGER NOT NULL,
    text TEXT NOT NULL, n_tokens INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, idx);
CREATE TABLE IF NOT EXISTS sentences (
    doc_id TEXT NOT NULL, idx INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    vector BLOB NOT NULL, PRIMARY KEY (doc_id, idx));
CREATE TABLE IF NOT EXISTS pending (doc_id TEXT PRIMARY KEY, since REAL NOT NULL);
"""

# The lexical index: one row per chunk, rowid = the chunk's rowid in ``chunks`` (nothing here
# runs VACUUM, which could renumber it). Tokens are stored already tokenised and encoded to
# [a-z0-9_] (``rag.index.lexical.fts_token``), so FTS5's tokenizer only splits on spaces and the
# terms are exactly ours. ``chunk_occurrences`` gives term frequencies, ``chunk_vocab``
# document frequencies.
_LEXICAL_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_terms USING fts5(
    tokens, tokenize = "unicode61 remove_diacritics 0 tokenchars '_'");
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_occurrences USING fts5vocab(chunk_terms, 'instance');
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_vocab USING fts5vocab(chunk_terms, 'row');
"""

_DOC_COLUMNS = "id, source, title, date, kind, sha256, n_chunks, n_chars"


@dataclass(frozen=True)
class _LexicalTable:
    """The chunks' BM25 lengths by rowid for one generation (0: no chunk at that rowid)."""

    generation: int
    n: int
    total: int  # the sum of the lengths
    lengths: np.ndarray
    doc_of_row: np.ndarray  # a code from ``doc_codes``, -1: no chunk
    doc_codes: dict[str, int]


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
    def doc_ids_where(self, sources: Sequence[str] = (), date_from: str | None = None,
                      date_to: str | None = None) -> set[str]: ...
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
        self._term_cache: tuple[int, dict[str, int]] = (-1, {})
        self._lexical_cache: _LexicalTable | None = None
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
                    _migrate(conn)
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

    def doc_ids_where(
        self, sources: Sequence[str] = (), date_from: str | None = None, date_to: str | None = None
    ) -> set[str]:
        """Ids of the documents that pass a filter, selected by SQLite.

        A document passes when its source equals one of ``sources`` or starts with one that ends
        in ``*`` (no sources: any), and, when a date bound is given, it has a date within the
        bounds (ISO dates, inclusive; a document without a date does not pass).
        """
        where, params = _filter_sql(sources, date_from, date_to)
        return {r[0] for r in self._read(f"SELECT d.id FROM documents d{where}", params)}

    def chunk_ids_where(
        self, sources: Sequence[str] = (), date_from: str | None = None, date_to: str | None = None
    ) -> set[str]:
        """Chunk ids of the documents that pass a filter (see ``doc_ids_where``)."""
        where, params = _filter_sql(sources, date_from, date_to)
        return {r[0] for r in self._read(f"SELECT c.id FROM chunks c JOIN documents d ON c.doc_id = d.id{where}", params)}

    # -- lexical ----------------------------------------------------------------------------
    def lexical_search(self, tokens: list[str], k: int, doc_ids: set[str] | None = None) -> list[tuple[str, float]]:
        """Top ``k`` chunk ids by BM25 over ``tokens`` (positive scores only), optionally only
        chunks of ``doc_ids``; read from the FTS5 index in the caller's snapshot."""
        if not tokens or k < 1:
            return []
        with self.snapshot():
            table = self._lexical_table()
            if not table.n:
                return []
            terms = sorted(set(tokens))
            df = self._document_frequencies(terms)
            postings: dict[str, np.ndarray] = {}
            for term in terms:
                if df.get(term):
                    rows = self._read(
                        "SELECT doc, count(*) FROM chunk_occurrences WHERE term = ? GROUP BY doc", (fts_token(term),)
                    )
                    postings[term] = np.array(rows, dtype=np.int64).reshape(-1, 2)
            lengths = table.lengths
            if doc_ids is not None:
                allowed = np.array([c for d, c in table.doc_codes.items() if d in doc_ids], dtype=np.int32)
                lengths = np.where(np.isin(table.doc_of_row, allowed), lengths, 0)
            ranked = bm25_rank_arrays(tokens, postings, df, lengths, table.n, table.total / table.n, k)
            ids = dict(self._read(
                f"SELECT rowid, id FROM chunks WHERE rowid IN ({','.join('?' * len(ranked))})", [r for r, _ in ranked]
            )) if ranked else {}
        return [(ids[row], score) for row, score in ranked]

    def _lexical_table(self) -> _LexicalTable:
        """Every chunk's token count and document by rowid, read once per generation (one scan
        of the chunks table: 26 ms at 100k chunks, which every question used to pay twice)."""
        generation = self.generation
        cached = self._lexical_cache
        if cached is not None and cached.generation == generation:
            return cached
        rows = self._read("SELECT rowid, doc_id, n_tokens FROM chunks")
        size = max((r[0] for r in rows), default=0) + 1
        lengths = np.zeros(size, dtype=np.int64)
        doc_of_row = np.full(size, -1, dtype=np.int32)
        codes: dict[str, int] = {}
        for rowid, doc_id, n_tokens in rows:
            lengths[rowid] = max(n_tokens, 1)
            doc_of_row[rowid] = codes.setdefault(doc_id, len(codes))
        table = _LexicalTable(generation, len(rows), int(lengths.sum()), lengths, doc_of_row, codes)
        self._lexical_cache = table
        return table

    def _document_frequencies(self, terms: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for term in terms:
            rows = self._read("SELECT doc FROM chunk_vocab WHERE term = ?", (fts_token(term),))
            out[term] = int(rows[0][0]) if rows else 0
        return out

    def term_stats(self, tokens: Iterable[str] = ()) -> TermStats:
        """Document frequencies of the chunks' tokens and the number of chunks, for idf.

        ``tokens`` are read now, in the caller's snapshot; any other token is looked up when first
        asked for (and cached for this generation), so no whole-vocabulary load is ever needed.
        """
        with self.snapshot():
            generation = self.generation
            n = self._lexical_table().n
            known = self._document_frequencies(tokens)
        return TermStats(_LazyFrequencies(self, generation, known), n)

    def _cached_frequency(self, generation: int, term: str) -> int:
        cached_generation, cache = self._term_cache
        if cached_generation != generation:
            cache = {}
            self._term_cache = (generation, cache)
        if term not in cache:
            cache[term] = self._document_frequencies([term])[term]
        return cache[term]

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


class _LazyFrequencies(Mapping[str, int]):
    """Document frequencies: those read with the question, the rest looked up on first use."""

    def __init__(self, catalog: Catalog, generation: int, known: dict[str, int]) -> None:
        self._catalog = catalog
        self._generation = generation
        self._known = known

    def __getitem__(self, term: str) -> int:
        if term not in self._known:
            self._known[term] = self._catalog._cached_frequency(self._generation, term)
        if not self._known[term]:
            raise KeyError(term)
        return self._known[term]

    def get(self, term: str, default: int | None = None) -> int | None:  # type: ignore[override]
        try:
            return self[term]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return (t for t, df in self._known.items() if df)

    def __len__(self) -> int:
        return sum(1 for df in self._known.values() if df)


def _filter_sql(sources: Sequence[str], date_from: str | None, date_to: str | None) -> tuple[str, list[object]]:
    """A WHERE clause over ``documents d`` for a source/prefix/date filter, and its parameters."""
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
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _migrate(conn: sqlite3.Connection) -> None:
    """Create the schema, or bring a version 1 catalog (BM25 in files) to version 2."""
    conn.executescript(_SCHEMA)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
        rows = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchall()
        schema = rows[0][0] if rows else None
        if schema == "1":
            conn.execute("ALTER TABLE documents ADD COLUMN version TEXT NOT NULL DEFAULT ''")
            conn.execute("ALTER TABLE chunks ADD COLUMN n_tokens INTEGER NOT NULL DEFAULT 0")
        for statement in _LEXICAL_SCHEMA.strip().split(";"):
            if statement.strip():
                conn.execute(statement)
        if schema == "1":
            for rowid, text in conn.execute("SELECT rowid, text FROM chunks").fetchall():
                toks = stored_tokens(text)
                conn.execute("UPDATE chunks SET n_tokens = ? WHERE rowid = ?", (len(toks), rowid))
                conn.execute("INSERT INTO chunk_terms (rowid, tokens) VALUES (?, ?)", (rowid, " ".join(toks)))
            # Chroma's entries carry no version yet: re-sync every document (the next writer's repair).
            conn.execute("UPDATE documents SET version = 'v1:' || sha256")
            conn.execute("INSERT OR REPLACE INTO pending SELECT id, ? FROM documents", (time.time(),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
