"""BM25 over the same chunk ids as the vector store (bm25s), tokenized by ``rag.text.tokens``.

The index is derived from the catalog: it is rebuilt from the catalog's chunk texts after every
committed ingest and saved with the catalog generation it was built from, so a stale or missing
index (after a crash, say) is detected on open and rebuilt. Writes go to a temporary folder that
replaces the old one, so a reader never loads half an index.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from rag.domain import TermStats
from rag.index.faults import failpoint
from rag.text.tokens import tokenize

STAMP_FILE = "stamp.json"


def _import_bm25s():  # noqa: ANN202
    """bm25s, with the DEBUG level it sets on its own logger at import turned back down."""
    import logging

    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class LexicalIndex:
    """A BM25 index whose rows are chunk ids; also exposes inverse document frequencies."""

    def __init__(self, ids: list[str], retriever: object | None, df: dict[str, int], generation: int) -> None:
        self.ids = ids
        self._retriever = retriever
        self._df = df
        self.generation = generation
        self._n = len(ids)
        self.stats = TermStats(df, self._n)

    @classmethod
    def build(cls, ids: list[str], texts: list[str], generation: int) -> LexicalIndex:
        bm25s = _import_bm25s()

        tokens = [tokenize(t) for t in texts]
        df: Counter[str] = Counter()
        for toks in tokens:
            df.update(set(toks))
        retriever = None
        if ids:
            retriever = bm25s.BM25()
            retriever.index([t or [""] for t in tokens], show_progress=False)
        return cls(ids, retriever, dict(df), generation)

    def idf(self, token: str) -> float:
        """BM25-style idf, >0; a token no chunk contains gets the largest value."""
        return self.stats.idf(token)

    def max_idf(self) -> float:
        """The idf of a token no chunk contains: the scale of this index's idf values."""
        return self.stats.max_idf()

    def document_frequency(self, token: str) -> int:
        return self._df.get(token, 0)

    @property
    def size(self) -> int:
        return self._n

    def search(self, query: str, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """Top ``k`` chunk ids by BM25 score (only positive scores), optionally within ``allowed``."""
        if self._retriever is None or not self.ids:
            return []
        toks = [t for t in tokenize(query) if t in self._df]
        if not toks:
            return []
        want = self._n if allowed is not None else min(k, self._n)
        docs, scores = self._retriever.retrieve([toks], k=want, show_progress=False, n_threads=1)
        out = []
        for row, score in zip(docs[0], scores[0]):
            if score <= 0:
                break
            cid = self.ids[int(row)]
            if allowed is None or cid in allowed:
                out.append((cid, float(score)))
                if len(out) >= k:
                    break
        return out

    # -- persistence ------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write atomically: build in a sibling temp folder, then swap it in."""
        tmp = folder.with_name(folder.name + ".tmp")
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self._retriever is not None:
            self._retriever.save(str(tmp), show_progress=False)
        (tmp / "ids.json").write_text(json.dumps(self.ids))
        (tmp / "df.json").write_text(json.dumps(self._df))
        # The stamp is written last: a folder without it is never trusted.
        (tmp / STAMP_FILE).write_text(json.dumps({"generation": self.generation, "n": self._n}))
        failpoint("lexical.save.tmp_written")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        failpoint("lexical.save.between_renames")
        tmp.rename(folder)
        failpoint("lexical.save.swapped")
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex | None:
        """The saved index, or None when missing or incomplete."""
        bm25s = _import_bm25s()

        try:
            stamp = json.loads((folder / STAMP_FILE).read_text())
            ids = json.loads((folder / "ids.json").read_text())
            df = json.loads((folder / "df.json").read_text())
            retriever = bm25s.BM25.load(str(folder), show_progress=False) if ids else None
        except (OSError, ValueError, KeyError):
            return None
        if len(ids) != stamp.get("n"):
            return None
        return cls(ids, retriever, df, int(stamp["generation"]))

