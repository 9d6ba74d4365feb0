"""Hybrid retrieval: dense (Chroma) + BM25 candidates, fused with reciprocal rank fusion.

The Assistant's ``Query`` (``rag.query``) comes in embedded, or being embedded in another thread
(the words are searched first, meanwhile): nothing here embeds again.
Its ``Filters`` (by source, exact names or a trailing-``*`` prefix, and by date range) are
applied inside the stores, before their top candidates are taken, each store translating them
itself: the catalog selects the allowed documents in SQL (the BM25 search keeps to them) and the
vector store gets the filters and those documents to translate into its own terms. An
optional sentence-transformers ``CrossEncoder`` reranks the fused list. Each returned ``Hit``
carries what an answerer reads (its sentence rows and vectors, the document text and the BM25
term statistics), read from one catalog snapshot here, so answerers never open the index.

The catalog is the truth: a vector hit counts only when its document version equals the
version committed in the snapshot read (another process may be writing Chroma right now).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

from rag.config import RetrievalSettings
from rag.domain import Hit, TermStats, chunk_id
from rag.errors import ConfigError
from rag.index.folder import Index
from rag.query import Filters, Query
from rag.text.tokens import tokenize

logger = logging.getLogger(__name__)


def reciprocal_rank_fusion(
    rankings: list[list[str]], k: int = 60, weights: list[float] | None = None
) -> list[tuple[str, float]]:
    """Fuse ranked id lists: score(id) = sum_i w_i / (k + rank_i(id)), ranks from 1.

    RRF, Cormack, Clarke and Buettcher, SIGIR 2009. Ties keep first-seen order.

    >>> reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=1)
    [('b', 0.8333333333333333), ('a', 0.5), ('c', 0.3333333333333333)]
    """
    if k < 1:
        raise ValueError(f"RRF constant k ({k}) must be at least 1")
    weights = weights or [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights given for {len(rankings)} rankings")
    scores: dict[str, float] = {}
    for ranking, w in zip(rankings, weights):
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


class Retriever:
    """Retrieves ``Hit``s for a question from one ``Index``."""

    def __init__(self, index: Index, settings: RetrievalSettings) -> None:
        self.index = index
        self.settings = settings
        self._reranker: Any = None
        self._reranker_lock = threading.Lock()

    def retrieve(self, query: Query) -> list[Hit]:
        """The top ``query.top_k`` hits (default ``retrieval.top_k``) for ``query.standalone``."""
        with self.index.catalog.snapshot():  # re-entrant: the caller's snapshot when it holds one
            return self._retrieve(query, query.top_k or self.settings.top_k)

    def _retrieve(self, query: Query, top_k: int) -> list[Hit]:
        s = self.settings
        catalog = self.index.catalog
        filters = query.filters
        allowed = None if filters.empty else catalog.doc_ids_where(filters)
        if allowed is not None and not allowed:
            return []
        # The words first: the question's vector may still be being made in another thread.
        tokens = tokenize(query.standalone)
        lexical = catalog.lexical_search(tokens, s.candidates, allowed)
        terms = catalog.term_stats(tokens)
        dense = self._dense_chunks(query.vector, filters, allowed)
        fused = reciprocal_rank_fusion(
            [[cid for cid, _ in dense], [cid for cid, _ in lexical]], s.rrf_k, [s.dense_weight, s.lexical_weight]
        )
        dense_rank = {cid: r for r, (cid, _) in enumerate(dense, 1)}
        dense_sim = dict(dense)
        lexical_rank = {cid: r for r, (cid, _) in enumerate(lexical, 1)}
        pool = fused[: max(top_k * 3, top_k) if s.reranker else top_k]
        chunks = catalog.chunks([cid for cid, _ in pool])
        hits = [
            Hit(chunks[cid][0], chunks[cid][1], score, dense_rank.get(cid), lexical_rank.get(cid), dense_sim.get(cid))
            for cid, score in pool
            if cid in chunks  # a chunk deleted by a concurrent ingest is simply left out
        ]
        if s.reranker:
            hits = self._rerank(query.standalone, hits)
        hits = hits[:top_k]
        if s.keep_only_last and hits:
            hits = hits[-1:]
        return self._with_evidence(hits, terms)

    def _with_evidence(self, hits: list[Hit], terms: TermStats) -> list[Hit]:
        """The hits with their sentence rows (and one neighbour each side), text and term stats.

        Called inside the caller's catalog snapshot, so offsets, vectors and text agree.
        """
        catalog = self.index.catalog
        texts: dict[str, str] = {}
        out = []
        for hit in hits:
            span = catalog.sentence_index_range(hit.chunk.id)
            if span is None:  # deleted by a concurrent ingest: nothing to answer from
                out.append(replace(hit, terms=terms))
                continue
            doc_id, first, last = span
            if doc_id not in texts:
                texts[doc_id] = catalog.text(doc_id) or ""
            rows = tuple(catalog.sentences(doc_id, max(first - 1, 0), last + 1))
            out.append(replace(hit, sentences=rows, first=first, last=last, document_text=texts[doc_id], terms=terms))
        return out

    def _dense_chunks(self, vector: Any, filters: Filters, allowed: set[str] | None) -> list[tuple[str, float]]:
        """Chunks ranked by their best sentence's similarity (max-pooling over sentence hits).

        The vector store applies the filters itself (``allowed``: the documents the catalog
        selected for them). A hit whose document version is not the committed one (a write in
        progress, or a stale client) is left out.
        """
        hits = self.index.query_vectors(vector, self.settings.candidates * 3, filters, allowed)
        committed = self.index.catalog.versions(h.doc_id for h in hits)
        best: dict[str, float] = {}
        for h in hits:  # hits come best first, so the first score seen for a chunk is its max
            if committed.get(h.doc_id) != h.version:
                continue
            for c in h.chunks:
                cid = chunk_id(h.doc_id, c)
                if cid not in best:
                    best[cid] = h.similarity
        return sorted(best.items(), key=lambda kv: -kv[1])[: self.settings.candidates]

    def _rerank(self, question: str, hits: list[Hit]) -> list[Hit]:
        model = self._load_reranker()
        scores = model.predict([(question, h.chunk.text) for h in hits], show_progress_bar=False)
        order = sorted(range(len(hits)), key=lambda i: -float(scores[i]))
        return [hits[i] for i in order]

    def _load_reranker(self) -> Any:
        with self._reranker_lock:
            if self._reranker is None:
                from sentence_transformers import CrossEncoder

                try:
                    self._reranker = CrossEncoder(self.settings.reranker, device="cpu")
                except Exception as e:
                    raise ConfigError(
                        f"reranker {self.settings.reranker!r} cannot be loaded offline ({type(e).__name__})"
                    ) from e
            return self._reranker
