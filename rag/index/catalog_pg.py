"""The catalog in PostgreSQL (``RAG_CATALOG_URL=postgresql://USER:PASSWORD@HOST:PORT/DB``).

The same interface and the same SQL as the SQLite catalog (``rag.index.catalog_sql``), so that
app instances on several machines share one index with no folder of their own:

- readers take no lock: each question reads one ``REPEATABLE READ READ ONLY`` transaction, the
  snapshot of its first statement, so a document is old or new, never half (PostgreSQL's MVCC);
- one writer at a time, across machines, through a session advisory lock (``PgWriterLock``);
  a writer that dies loses its connection and with it the lock, and the next writer repairs
  what it left pending (``rag.index.folder``);
- the lexical index is a postings table (term, chunk rowid, term frequency) written in the
  document's transaction; BM25 is scored by the same code on the same numbers as in SQLite
  (``rag.index.catalog_lexical``), so rankings and scores are equal (tests/test_pg_catalog.py).
  Chunk rowids are given as in SQLite (the largest plus one), so ties break the same way;
- ``meta.schema`` is this module's schema version; a newer one is refused in one line.

Connections come from a ``psycopg_pool.ConnectionPool``; every error is one ``StoreError`` line
naming the server without its password.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from rag.errors import StoreError
from rag.index.catalog_lexical import LexicalSql, Lexicon
from rag.index.catalog_sql import Conn, SqlCatalog

logger = logging.getLogger(__name__)

PG_SCHEMA_VERSION = 1

PG_SCHEMA = """
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE documents (
    id text PRIMARY KEY, source text NOT NULL UNIQUE, title text NOT NULL, date text,
    kind text NOT NULL, sha256 text NOT NULL, text text NOT NULL, n_chunks integer NOT NULL,
    n_chars integer NOT NULL, ingested_at double precision NOT NULL, version text NOT NULL DEFAULT '');
CREATE TABLE chunks (
    rowid bigint NOT NULL UNIQUE, id text PRIMARY KEY, doc_id text NOT NULL, idx integer NOT NULL,
    start integer NOT NULL, "end" integer NOT NULL, first_sentence integer NOT NULL,
    n_sentences integer NOT NULL, text text NOT NULL, n_tokens integer NOT NULL DEFAULT 0);
CREATE INDEX chunks_doc ON chunks (doc_id, idx);
CREATE TABLE sentences (
    doc_id text NOT NULL, idx integer NOT NULL, start integer NOT NULL, "end" integer NOT NULL,
    vector bytea NOT NULL, PRIMARY KEY (doc_id, idx));
CREATE TABLE pending (doc_id text PRIMARY KEY, since double precision NOT NULL);
CREATE TABLE postings (term text NOT NULL, rowid bigint NOT NULL, tf integer NOT NULL, PRIMARY KEY (term, rowid));
CREATE INDEX postings_rowid ON postings (rowid);
INSERT INTO meta VALUES ('generation', '0');
"""

POSTINGS_SQL = LexicalSql(
    postings="SELECT rowid, tf FROM postings WHERE term = ?",
    frequency="SELECT count(*) FROM postings WHERE term = ?",
)

# One writer per database: the key of its session advisory lock (any fixed 64-bit number).
WRITER_LOCK_KEY = int.from_bytes(hashlib.sha1(b"rag-cite writer").digest()[:8], "big", signed=True)


def redacted(url: str) -> str:
    """The URL without its password, for messages.

    >>> redacted("postgresql://rag:secret@db:5432/rag")
    'postgresql://rag@db:5432/rag'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"{parts.username}@" if parts.username else "") + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def pg_error(e: BaseException) -> str:
    """A psycopg error as one line: its primary message, without libpq's hints and prefixes."""
    diag = getattr(e, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(e)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    line = lines[0] if lines else type(e).__name__
    # libpq: 'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused'
    return line.rsplit(" failed: ", 1)[-1] if line.startswith("connection") else line


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    """One connection to the server, or a one-line StoreError (unreachable, password, database)."""
    try:
        return psycopg.connect(url, connect_timeout=10, **kwargs)
    except psycopg.Error as e:
        raise StoreError(f"cannot connect to the catalog at {redacted(url)}: {pg_error(e)}") from e


class _Qmark:
    """A psycopg connection that takes the catalog's ``?`` placeholders (no ``?`` or ``%`` in literals)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.conn.execute(sql.replace("?", "%s"), tuple(params) or None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), list(rows))


class PgCatalog(SqlCatalog):
    """The catalog in one PostgreSQL database; thread-safe. ``create`` makes the schema (call it
    holding the writer lock); without it the database must hold an index."""

    def __init__(self, url: str, create: bool = False, readonly: bool = False, max_connections: int = 8) -> None:
        self.url = url
        self.label = redacted(url)
        self.readonly = readonly
        self._local = threading.local()
        self._write_lock = threading.Lock()
        with connect(url, autocommit=True) as conn:  # a clear error before the pool retries in the background
            self._prepare(_Qmark(conn), create)
        self._pool = ConnectionPool(url, min_size=1, max_size=max_connections, kwargs={"autocommit": True},
                                    timeout=30, open=True, name="rag-catalog")
        self.lexicon = Lexicon(self._read, self.snapshot, lambda: self.generation, POSTINGS_SQL)

    def _prepare(self, conn: _Qmark, create: bool) -> None:
        """Check the schema version; make the schema when ``create`` and the database has none."""
        try:
            (exists,), = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchall()
            if not exists:
                if not create:
                    raise StoreError(f"no index in the catalog at {self.label}; build one with `rag ingest PATH`")
                with conn.conn.transaction():
                    conn.conn.execute(PG_SCHEMA)
                    conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(PG_SCHEMA_VERSION),))
            rows = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchall()
        except psycopg.Error as e:
            raise StoreError(f"cannot open the catalog at {self.label}: {pg_error(e)}") from e
        schema = rows[0][0] if rows else "none"
        if schema != str(PG_SCHEMA_VERSION):
            newer = schema.isdigit() and int(schema) > PG_SCHEMA_VERSION
            raise StoreError(
                f"the catalog at {self.label} has schema {schema}, this version of rag-cite reads {PG_SCHEMA_VERSION}"
                + ("; upgrade rag-cite to use it" if newer else "")
            )

    def close(self) -> None:
        self._pool.close()

    def _current(self) -> psycopg.Connection | None:
        return getattr(self._local, "conn", None)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read on this thread inside the block sees one committed state (see the module
        docstring). Re-entrant; the thread must not write the catalog inside it."""
        if self._current() is not None:
            yield
            return
        try:
            conn = self._pool.getconn()
        except PoolTimeout as e:  # no connection to be had: the server is gone
            raise StoreError(f"cannot read the catalog at {self.label}: {pg_error(e)}") from e
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchall()  # take the snapshot now
        except psycopg.Error as e:
            self._pool.putconn(conn)
            raise StoreError(f"cannot read the catalog at {self.label}: {pg_error(e)}") from e
        self._local.conn = conn
        try:
            yield
        finally:
            self._local.conn = None
            try:
                conn.execute("COMMIT")
            except psycopg.Error:
                pass  # a broken connection: the pool discards it
            self._pool.putconn(conn)

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        try:
            conn = self._current()
            if conn is not None:
                return _Qmark(conn).execute(sql, tuple(params)).fetchall()
            with self._pool.connection() as pooled:
                return _Qmark(pooled).execute(sql, tuple(params)).fetchall()
        except (psycopg.Error, PoolTimeout) as e:  # PoolTimeout: no connection to be had, the server is gone
            raise StoreError(f"cannot read the catalog at {self.label}: {pg_error(e)}") from e

    @contextmanager
    def _write(self) -> Iterator[Conn]:
        """One transaction; rolled back on any error, which is raised as StoreError."""
        if self.readonly:
            raise StoreError(f"the catalog at {self.label} is open read-only")
        if self._current() is not None:
            raise StoreError("cannot write the catalog inside a read snapshot")
        with self._write_lock:
            try:
                with self._pool.connection() as conn, conn.transaction():
                    yield _Qmark(conn)
            except (psycopg.Error, PoolTimeout) as e:
                raise StoreError(f"cannot write the catalog at {self.label}: {pg_error(e)}") from e

    # -- the lexical index: a postings table ------------------------------------------------
    def _insert_chunks(self, conn: Conn, rows: list[tuple], tokens: list[list[str]]) -> None:
        assert isinstance(conn, _Qmark)
        (top,), = conn.execute("SELECT coalesce(max(rowid), 0) FROM chunks").fetchall()
        conn.executemany(
            'INSERT INTO chunks (rowid, id, doc_id, idx, start, "end", first_sentence, n_sentences, text, n_tokens) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(top + 1 + i, *row) for i, row in enumerate(rows)],
        )
        with conn.conn.cursor() as cur, cur.copy("COPY postings (term, rowid, tf) FROM STDIN") as copy:
            for i, toks in enumerate(tokens):
                for term, tf in Counter(toks).items():
                    copy.write_row((term, top + 1 + i, tf))

    def _delete_lexical(self, conn: Conn, doc_id: str) -> None:
        conn.execute("DELETE FROM postings WHERE rowid IN (SELECT rowid FROM chunks WHERE doc_id = ?)", (doc_id,))

    def lexical_rows(self) -> dict[str, str]:
        """Each chunk id with its stored lexical tokens, sorted (tests compare indexes with it)."""
        rows = self._read("SELECT c.id, p.term, p.tf FROM chunks c JOIN postings p ON p.rowid = c.rowid")
        terms: dict[str, list[str]] = {}
        for cid, term, tf in rows:
            terms.setdefault(cid, []).extend([term] * tf)
        return {cid: " ".join(sorted(t)) for cid, t in terms.items()}

    def drop(self) -> None:
        """Delete every table of the index (``rag ingest --rebuild``); call it holding the writer lock."""
        with self._write() as conn:
            conn.execute("DROP TABLE IF EXISTS meta, documents, chunks, sentences, pending, postings")


class PgWriterLock:
    """One writing process per catalog database, on any machine: a session advisory lock held on
    its own connection for the whole write (re-entrant per process). ``wait``: a second writer
    logs that it waits and blocks; ``fail``: it raises a one-line StoreError at once."""

    def __init__(self, url: str, mode: str = "wait") -> None:
        if mode not in ("wait", "fail"):
            raise ValueError(f"write_lock ({mode!r}) must be 'wait' or 'fail'")
        self.url = url
        self.mode = mode
        self._threads = threading.RLock()
        self._depth = 0
        self._conn: psycopg.Connection | None = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._threads:
            if self._depth == 0:
                self._conn = self._acquire()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._conn is not None:
                    self._conn.close()  # ends the session, and with it the lock
                    self._conn = None

    def _acquire(self) -> psycopg.Connection:
        conn = connect(self.url, autocommit=True)
        try:
            (got,), = conn.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,)).fetchall()
            if not got:
                if self.mode == "fail":
                    raise StoreError(
                        f"another process is writing the catalog at {redacted(self.url)}; try again when it is "
                        "done, or set RAG_WRITE_LOCK=wait to wait for it"
                    )
                logger.warning("waiting for another process writing the catalog at %s to finish", redacted(self.url))
                conn.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK_KEY,))
        except BaseException as e:
            conn.close()
            if isinstance(e, psycopg.Error):
                raise StoreError(f"cannot lock the catalog at {redacted(self.url)}: {pg_error(e)}") from e
            raise
        return conn
