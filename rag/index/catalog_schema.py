"""The catalog's SQL schema, its upgrade from version 1, and the document filter as SQL.

Only ``rag.index.catalog`` uses this module; it is apart so that the catalog class reads as the
operations it offers.
"""

from __future__ import annotations

import sqlite3
import time

from rag.index.lexical import stored_tokens
from rag.query import Filters

SCHEMA_VERSION = "2"

SCHEMA = """
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
LEXICAL_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_terms USING fts5(
    tokens, tokenize = "unicode61 remove_diacritics 0 tokenchars '_'");
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_occurrences USING fts5vocab(chunk_terms, 'instance');
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_vocab USING fts5vocab(chunk_terms, 'row');
"""


def filter_sql(filters: Filters) -> tuple[str, list[object]]:
    """A WHERE clause over ``documents d`` for ``filters`` (the catalog's translation), and its
    parameters (``?`` placeholders)."""
    sources, date_from, date_to = filters.sources, filters.date_from, filters.date_to
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


def migrate(conn: sqlite3.Connection) -> None:
    """Create the schema, or bring a version 1 catalog (BM25 in files) to version 2."""
    conn.executescript(SCHEMA)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
        rows = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchall()
        schema = rows[0][0] if rows else None
        if schema == "1":
            conn.execute("ALTER TABLE documents ADD COLUMN version TEXT NOT NULL DEFAULT ''")
            conn.execute("ALTER TABLE chunks ADD COLUMN n_tokens INTEGER NOT NULL DEFAULT 0")
        for statement in LEXICAL_SCHEMA.strip().split(";"):
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
