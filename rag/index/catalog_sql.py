"""What the two catalogs share: the catalog interface, and its operations in portable SQL.

``SqlCatalog`` holds every operation whose SQL reads the same on SQLite (``rag.index.catalog``)
and PostgreSQL (``rag.index.catalog_pg``): statements use ``?`` placeholders, which the
PostgreSQL catalog turns into psycopg's. A subclass supplies the connection (``_read``,
``_write``, ``snapshot``) and the lexical index, which differ: an FTS5 table in SQLite, a
postings table in PostgreSQL (``_insert_chunks``, ``_delete_lexical``, ``lexicon``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from rag.domain import (
    Chunk,
    Document,
    DocumentInfo,
    SentenceRow,
    TermStats,
    VectorEntry,
    sentence_id,
)
from rag.index.catalog_lexical import Lexicon
from rag.index.catalog_schema import filter_sql
from rag.index.faults import failpoint
from rag.index.lexical import stored_tokens
from rag.query import Filters


class Conn(Protocol):
    """The part of a DB-API connection a write uses (a psycopg one is wrapped to take ``?``)."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any: ...


class CatalogStore(Protocol):
    """What the index, the ingester and the retriever need from a catalog (SQLite or PostgreSQL)."""

    readonly: bool

    @property
    def generation(self) -> int: ...
    def snapshot(self) -> AbstractContextManager[None]: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def documents(self) -> list[DocumentInfo]: ...
    def document(self, doc_id: str) -> DocumentInfo | None: ...
    def chunk_ids(self, doc_id: str | None = None) -> list[str]: ...
    def chunk_ids_where(self, filters: Filters) -> set[str]: ...
    def sentence_ids(self) -> list[str]: ...
    def lexical_rows(self) -> dict[str, str]: ...
    def document_by_source(self, source: str) -> DocumentInfo | None: ...
    def text(self, doc_id: str) -> str | None: ...
    def text_by_source(self, source: str) -> str | None: ...
    def invalidate_hashes(self) -> None: ...
    def versions(self, doc_ids: Iterable[str]) -> dict[str, str]: ...

    def counts(self) -> tuple[int, int]: ...
    def chunks(self, ids: list[str]) -> dict[str, tuple[Chunk, str]]: ...
    def sentences(self, doc_id: str, first: int, last: int) -> list[SentenceRow]: ...
    def sentence_spans(self, doc_id: str) -> tuple[tuple[int, int], ...]: ...
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
    def close(self) -> None: ...


class SqlCatalog:
    """The catalog's operations over a subclass's connection; see the module docstring."""

    readonly: bool
    lexicon: Lexicon

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Conn]:
        raise NotImplementedError

    def snapshot(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _insert_chunks(self, conn: Conn, rows: list[tuple], tokens: list[list[str]]) -> None:
        """Insert a document's chunk rows and their lexical terms (``tokens``, one list per chunk)."""
        raise NotImplementedError

    def _delete_lexical(self, conn: Conn, doc_id: str) -> None:
        raise NotImplementedError

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         (key, value))

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

    def sentence_spans(self, doc_id: str) -> tuple[tuple[int, int], ...]:
        """Every sentence span of a document, in order, without the vectors."""
        return self._sentence_spans(doc_id, 0, 2**31 - 1)

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
            conn.executemany("INSERT INTO pending VALUES (?, ?) ON CONFLICT (doc_id) DO UPDATE SET since = excluded.since",
                             [(d, now) for d in doc_ids])

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
            self._insert_chunks(conn, [
                (c.id, doc.id, c.index, c.start, c.end, first_of[c.sentences[0]], len(c.sentences), c.text, len(toks))
                for c, toks in zip(chunks, tokens)
            ], tokens)
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

    def _delete_rows(self, conn: Conn, doc_id: str) -> None:
        self._delete_lexical(conn, doc_id)
        conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM sentences WHERE doc_id = ?", (doc_id,))

    @staticmethod
    def _bump(conn: Conn) -> None:
        conn.execute("UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'generation'")


def sentence_chunks(n_sentences: int, chunks: Sequence[tuple[int, int]]) -> list[tuple[int, ...]]:
    """For each of a document's sentences, the indices of its chunks (first_sentence, n_sentences) holding it."""
    members: list[list[int]] = [[] for _ in range(n_sentences)]
    for chunk_index, (first, n) in enumerate(chunks):
        for i in range(first, first + n):
            members[i].append(chunk_index)
    return [tuple(m) for m in members]


