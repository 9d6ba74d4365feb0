"""BM25 search and term statistics over the catalog's FTS5 table, with caches per generation.

``Lexicon`` is the lexical half of a catalog (``rag.index.catalog``, ``rag.index.catalog_pg``): it reads through the catalog's
connection (its ``read``), always inside the caller's snapshot, and keeps two caches keyed by the
catalog's generation, which every commit increases:

- the chunks' token counts and documents by rowid (one scan of the chunks table, 26 ms at 100k
  chunks, that every question used to pay twice);
- document frequencies, so that the BM25 search and the term statistics of one question (and
  the next questions) read each term's frequency once.

The scoring itself is ``rag.index.lexical`` (pure functions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np

from rag.domain import TermStats
from rag.index.lexical import bm25_rank_arrays, fts_token

Read = Callable[[str, Iterable[object]], list[tuple]]


@dataclass(frozen=True)
class LexicalSql:
    """How a catalog reads its lexical index: a term's postings as (chunk rowid, term frequency),
    and its document frequency (one row, one count), both by the term's stored form (``fts_token``)."""

    postings: str
    frequency: str


# SQLite: the FTS5 table's vocabulary views (``rag.index.catalog_schema.LEXICAL_SCHEMA``).
FTS5_SQL = LexicalSql(
    postings="SELECT doc, count(*) FROM chunk_occurrences WHERE term = ? GROUP BY doc",
    frequency="SELECT doc FROM chunk_vocab WHERE term = ?",
)


@dataclass(frozen=True)
class LexicalTable:
    """The chunks' BM25 lengths by rowid for one generation (0: no chunk at that rowid)."""

    generation: int
    n: int
    total: int  # the sum of the lengths
    lengths: np.ndarray
    doc_of_row: np.ndarray  # a code from ``doc_codes``, -1: no chunk
    doc_codes: dict[str, int]


class Lexicon:
    """The catalog's BM25 index; every method must run inside one of the catalog's snapshots,
    except ``frequency`` (a late lookup), which opens its own."""

    def __init__(self, read: Read, snapshot: Callable[[], AbstractContextManager[None]], generation: Callable[[], int],
                 sql: LexicalSql = FTS5_SQL) -> None:
        self._read = read
        self._sql = sql
        self._snapshot = snapshot
        self._generation = generation
        self._table: LexicalTable | None = None
        self._frequencies: tuple[int, dict[str, int]] = (-1, {})

    def search(self, tokens: list[str], k: int, doc_ids: set[str] | None = None) -> list[tuple[str, float]]:
        """Top ``k`` chunk ids by BM25 over ``tokens`` (positive scores only), optionally only chunks of ``doc_ids``."""
        generation = self._generation()
        table = self.table(generation)
        if not table.n:
            return []
        terms = sorted(set(tokens))
        df = self.frequencies(generation, terms)
        postings: dict[str, np.ndarray] = {}
        for term in terms:
            if df.get(term):
                rows = self._read(self._sql.postings, (fts_token(term),))
                postings[term] = np.array(rows, dtype=np.int64).reshape(-1, 2)
        lengths = table.lengths
        if doc_ids is not None:
            allowed = np.array([c for d, c in table.doc_codes.items() if d in doc_ids], dtype=np.int32)
            lengths = np.where(np.isin(table.doc_of_row, allowed), lengths, 0)
        ranked = bm25_rank_arrays(tokens, postings, df, lengths, table.n, table.total / table.n, k)
        if not ranked:
            return []
        ids = dict(self._read(f"SELECT rowid, id FROM chunks WHERE rowid IN ({','.join('?' * len(ranked))})", [r for r, _ in ranked]))
        return [(ids[row], score) for row, score in ranked]

    def term_stats(self, tokens: Iterable[str]) -> TermStats:
        """Document frequencies of ``tokens`` (read now) and the number of chunks; any other
        token's frequency is looked up when first asked for, so no whole vocabulary is loaded."""
        generation = self._generation()
        n = self.table(generation).n
        return TermStats(_LazyFrequencies(self, generation, self.frequencies(generation, tokens)), n)

    def table(self, generation: int) -> LexicalTable:
        """Every chunk's token count and document by rowid, read once per generation."""
        cached = self._table
        if cached is not None and cached.generation == generation:
            return cached
        rows = self._read("SELECT rowid, doc_id, n_tokens FROM chunks", ())
        size = max((r[0] for r in rows), default=0) + 1
        lengths = np.zeros(size, dtype=np.int64)
        doc_of_row = np.full(size, -1, dtype=np.int32)
        codes: dict[str, int] = {}
        for rowid, doc_id, n_tokens in rows:
            lengths[rowid] = max(n_tokens, 1)
            doc_of_row[rowid] = codes.setdefault(doc_id, len(codes))
        table = LexicalTable(generation, len(rows), int(lengths.sum()), lengths, doc_of_row, codes)
        self._table = table
        return table

    def frequencies(self, generation: int, terms: Iterable[str]) -> dict[str, int]:
        """Each term's document frequency at ``generation``, the catalog's generation now."""
        cached_generation, cache = self._frequencies
        if cached_generation != generation:
            cache = {}
            self._frequencies = (generation, cache)
        out: dict[str, int] = {}
        for term in terms:
            if term not in cache:
                cache[term] = self._read_frequency(term)
            out[term] = cache[term]
        return out

    def _read_frequency(self, term: str) -> int:
        rows = self._read(self._sql.frequency, (fts_token(term),))
        return int(rows[0][0]) if rows else 0

    def frequency(self, generation: int, term: str) -> int:
        """A late lookup, after the question's snapshot has closed: the frequency at ``generation``
        when the catalog is still there; else the current one, which is not cached."""
        with self._snapshot():
            now = self._generation()
            if now == generation:
                return self.frequencies(generation, [term])[term]
            return self._read_frequency(term)


class _LazyFrequencies(Mapping[str, int]):
    """Document frequencies: those read with the question, the rest looked up on first use."""

    def __init__(self, lexicon: Lexicon, generation: int, known: dict[str, int]) -> None:
        self._lexicon = lexicon
        self._generation = generation
        self._known = known

    def __getitem__(self, term: str) -> int:
        if term not in self._known:
            self._known[term] = self._lexicon.frequency(self._generation, term)
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
