"""What one question asks of the index: the ``Query`` and its store-neutral ``Filters``.

The Assistant makes a ``Query`` once per question (the standalone question, its focus and its
vector, embedded once) and hands it down; each store translates ``Filters`` into its own terms,
once: the catalog into SQL (``rag.index.catalog_schema.filter_sql``), Chroma into its ``where``
(``rag.index.vectors``), the exact in-memory search into a mask over its documents
(``Filters.allows``). Every layer may import this module; it imports only ``rag.errors``.
"""

from __future__ import annotations

import datetime as dt
import re
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from rag.errors import QueryError

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)


def _is_iso_date(value: object) -> bool:
    """``YYYY-MM-DD`` and a real date (``fromisoformat`` alone also takes ``2024-W15-1``)."""
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Filters:
    """Restrict retrieval to some sources and/or a date range (ISO dates, inclusive).

    A document passes when its source equals one of ``sources`` or starts with one that ends in
    ``*`` (no sources: any), and, when a date bound is given, it has a date within the bounds
    (a document without a date does not pass).
    """

    sources: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None and not _is_iso_date(value):
                raise QueryError(f"{name} ({value!r}) must be a date like 2024-04-13")
        for source in self.sources:
            if not isinstance(source, str) or not source.strip("*").strip():
                raise QueryError(f"source filter ({source!r}) must name a document or a prefix ending in *")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise QueryError(f"date_from ({self.date_from}) is after date_to ({self.date_to})")

    @property
    def empty(self) -> bool:
        return not (self.sources or self.date_from or self.date_to)

    @property
    def dated(self) -> bool:
        return bool(self.date_from or self.date_to)

    def allows(self, source: str, date: str | None) -> bool:
        """Whether a document with this source and date passes (the in-memory translation).

        >>> Filters(sources=("news/*",), date_from="2024-01-01").allows("news/a.txt", "2024-04-13")
        True
        """
        if self.sources and not any(
            source.startswith(p[:-1]) if p.endswith("*") else source == p for p in self.sources
        ):
            return False
        if self.dated:
            if not date:
                return False
            if (self.date_from and date < self.date_from) or (self.date_to and date > self.date_to):
                return False
        return True


NO_FILTERS = Filters()


@dataclass(frozen=True)
class Query:
    """One question as the index sees it, made once by the Assistant and passed down.

    ``standalone`` is what is searched (a follow-up rewritten to stand alone); ``focus`` is the
    narrower part an answerer may pick its sentence for (``rag.answering.rewrite.Rewrite``);
    ``embedding`` is ``standalone`` embedded, once, or the embedding still being made (a
    ``Future``: the Assistant embeds while the catalog is searched); ``vector`` waits for it.
    ``top_k`` None means the configured value.
    """

    question: str
    standalone: str
    embedding: np.ndarray | Future[np.ndarray] = field(repr=False, compare=False)
    focus: str = ""
    filters: Filters = NO_FILTERS
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise QueryError(f"top_k ({self.top_k}) must be at least 1")
        if not self.focus:
            object.__setattr__(self, "focus", self.standalone)

    @property
    def vector(self) -> np.ndarray:
        """``standalone`` embedded (waiting for it if it is still being made)."""
        return self.embedding.result() if isinstance(self.embedding, Future) else self.embedding
