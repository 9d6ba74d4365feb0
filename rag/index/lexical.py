"""BM25 over chunk tokens: how tokens are stored in the catalog's FTS5 table, and the scoring.

The catalog (``rag.index.catalog``) keeps one FTS5 row per chunk, written in the same
transaction as the chunk, and reads term and document frequencies from it; this module holds
the pure parts. Tokens are ``rag.text.tokens.tokenize`` (the tokenizer the answerer and the
gate share), stored pre-tokenised: FTS5's own tokenizer would split and fold differently.

Scoring is BM25 with Lucene's idf, ``log(1 + (N - df + 0.5) / (df + 0.5))``, k1 = 1.5, b = 0.75,
the variant and parameters of bm25s (which served BM25 here before, from files rebuilt after
every ingest); a query token counts once per occurrence in the query, as there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from rag.text.tokens import tokenize

K1 = 1.5
B = 0.75

_PLAIN = re.compile(r"[a-z0-9]+\Z")


def fts_token(token: str) -> str:
    """``token`` as stored in FTS5: itself when it is plain ``[a-z0-9]+``, else ``_`` and the hex
    of its UTF-8 bytes (so FTS5's tokenizer, which splits on anything but ``[a-z0-9_]`` here,
    keeps it whole, and no two tokens share a stored form).

    >>> fts_token("harbour"), fts_token("café")
    ('harbour', '_636166c3a9')
    """
    return token if _PLAIN.match(token) else "_" + token.encode("utf-8").hex()


def stored_tokens(text: str) -> list[str]:
    """The FTS5 form of a chunk's tokens, in order."""
    return [fts_token(t) for t in tokenize(text)]


def bm25_rank_arrays(
    query: Sequence[str],
    postings: Mapping[str, np.ndarray],
    df: Mapping[str, int],
    lengths: np.ndarray,
    n: int,
    avg_length: float,
    k: int,
) -> list[tuple[int, float]]:
    """The ``k`` best rows by BM25 (positive scores), best first; ties by row. ``postings[term]``
    is an ``(m, 2)`` array of (row, term frequency), ``lengths[row]`` a row's token count, 0 for a
    row left out (that is how a filter applies); ``query`` may repeat a term, which then counts
    twice. tests/test_lexical.py checks it bit for bit against a plain dictionary version. At 100k chunks a common term has tens of thousands of postings, which a Python loop
    over dictionaries scored in ~12 ms a question."""
    scores = np.zeros(len(lengths), dtype=np.float64)
    for term in query:
        rows = postings.get(term)
        if rows is None or not len(rows):
            continue
        idf = math.log(1.0 + (n - df[term] + 0.5) / (df[term] + 0.5))
        row, tf = rows[:, 0], rows[:, 1].astype(np.float64)
        length = lengths[row]
        keep = length > 0
        row, tf, length = row[keep], tf[keep], length[keep].astype(np.float64)
        norm = K1 * (1.0 - B + B * length / avg_length)
        scores[row] += idf * tf / (tf + norm)  # a term's postings name each row once
    hit = np.flatnonzero(scores > 0)
    if len(hit) > k:
        cut = np.partition(-scores[hit], k - 1)[k - 1]
        hit = hit[-scores[hit] <= cut]
    order = np.lexsort((hit, -scores[hit]))[:k]
    return [(int(hit[i]), float(scores[hit[i]])) for i in order]
