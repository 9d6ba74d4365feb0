"""BM25 scoring: the array ranking the catalog uses equals the plain reference, bit for bit,
and the catalog's search equals the reference on a real index (after a commit too)."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.index.lexical import K1, B, bm25_rank_arrays
from rag.text.tokens import tokenize

from .test_index_sharing import open_tiny


def bm25_rank(
    query: Sequence[str],
    postings: Mapping[str, Sequence[tuple[int, int]]],
    df: Mapping[str, int],
    lengths: Mapping[int, int],
    n: int,
    avg_length: float,
    k: int,
) -> list[tuple[int, float]]:
    """The ``k`` best rows by BM25 (positive scores), best first; ties by row.

    ``postings[term]`` lists ``(row, term frequency)``; rows missing from ``lengths`` are left
    out (that is how a filter applies). ``query`` may repeat a term: it then counts twice.
    The plain reference for ``bm25_rank_arrays``, which the catalog uses.
    """
    scores: dict[int, float] = {}
    for term in query:
        rows = postings.get(term)
        if not rows:
            continue
        idf = math.log(1.0 + (n - df[term] + 0.5) / (df[term] + 0.5))
        for row, tf in rows:
            length = lengths.get(row)
            if length is None:
                continue
            norm = K1 * (1.0 - B + B * length / avg_length)
            scores[row] = scores.get(row, 0.0) + idf * tf / (tf + norm)
    best = heapq.nsmallest(k, scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(row, score) for row, score in best if score > 0]


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 40), filtered=st.booleans())
def test_array_ranking_equals_the_reference(seed: int, k: int, filtered: bool) -> None:
    rng = random.Random(seed)
    n_rows = rng.randint(1, 300)
    lengths = {r: rng.randint(1, 120) for r in rng.sample(range(n_rows * 2), n_rows)}
    kept = {r: v for r, v in lengths.items() if not filtered or rng.random() < 0.6}
    terms = [f"t{i}" for i in range(rng.randint(1, 6))]
    postings = {t: sorted((r, rng.randint(1, 5)) for r in rng.sample(sorted(lengths), rng.randint(0, n_rows)))
                for t in terms}
    df = {t: max(len(p), 1) for t, p in postings.items()}
    query = [rng.choice(terms) for _ in range(rng.randint(1, 8))]  # repeats count twice
    array = np.zeros(max(lengths) + 1, dtype=np.int64)
    for r, v in kept.items():
        array[r] = v
    arrays = {t: np.array(p, dtype=np.int64).reshape(-1, 2) for t, p in postings.items()}
    avg = sum(lengths.values()) / len(lengths)
    want = bm25_rank(query, postings, df, kept, len(lengths), avg, k)
    assert bm25_rank_arrays(query, arrays, df, array, len(lengths), avg, k) == want


def test_catalog_search_equals_the_reference_and_follows_commits(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    words = ["harbour", "mill", "bridge", "council", "market", "river", "guild", "fire", "ships", "stone"]
    rng = random.Random(7)
    for i in range(30):
        (corpus / f"{i:02d}.txt").write_text(
            " ".join(f"The {rng.choice(words)} and the {rng.choice(words)} in {1800 + i}." for _ in range(rng.randint(2, 30))) + "\n",
            encoding="utf-8")
    a = open_tiny(tmp_path / "idx", corpus_dir=corpus, create=True)
    a.ingest([corpus])
    catalog = a.index.catalog

    def reference(tokens: list[str], k: int, doc_ids: set[str] | None = None) -> list[tuple[str, float]]:
        rows = catalog._read("SELECT rowid, id, doc_id, n_tokens FROM chunks")
        ids = {r: cid for r, cid, _, _ in rows}
        lengths = {r: max(n, 1) for r, _, d, n in rows if doc_ids is None or d in doc_ids}
        total = sum(max(n, 1) for *_, n in rows)
        df = {t: r[0][0] for t in set(tokens) if (r := catalog._read("SELECT doc FROM chunk_vocab WHERE term = ?", (t,)))}
        postings = {t: catalog._read("SELECT doc, count(*) FROM chunk_occurrences WHERE term = ? GROUP BY doc", (t,))
                    for t in set(tokens) if df.get(t)}
        return [(ids[r], s) for r, s in bm25_rank(tokens, postings, df, lengths, len(rows), total / len(rows), k)]

    some = {d.id for d in catalog.documents()[:7]}
    for question in ["harbour fire", "the river and the guild", "ships ships stone", "nothing matches zzz"]:
        tokens = tokenize(question)
        assert catalog.lexical_search(tokens, 10) == reference(tokens, 10)
        assert catalog.lexical_search(tokens, 10, some) == reference(tokens, 10, some)
    (corpus / "00.txt").write_text("The harbour fire, the harbour fire again.\n", encoding="utf-8")
    (corpus / "01.txt").unlink()
    a.ingest([corpus], prune=True)
    tokens = tokenize("harbour fire")
    got = catalog.lexical_search(tokens, 10)
    assert got == reference(tokens, 10) and got[0][0].startswith(catalog.document_by_source("00.txt").id)
