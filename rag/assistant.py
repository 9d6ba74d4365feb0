"""The Python API: ``Assistant.open(index_dir).ask(question, history=...)`` -> ``Answer``.

One Assistant holds one index's resources (settings are passed, not global): two assistants on two indexes work
side by side in one process, and one assistant serves concurrent threads. Every answer passes the
citation check (``rag.answering.citations.enforce_citations``) before it is returned. (The
"citation gate" is something else: what a generated answer passes, ``rag.answering.llm.gate``.)
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag.answering.citations import enforce_citations
from rag.answering.draft import REFUSAL_TEXT, Draft
from rag.answering.extractive import ExtractiveAnswerer, Focus
from rag.answering.provenance import annotate
from rag.answering.rewrite import Rewrite, rewrite_parts
from rag.answering.span_answerer import ReaderAnswerer
from rag.config import Settings
from rag.domain import DocumentInfo, Hit
from rag.errors import ConfigError, QueryError, RagError
from rag.index.embedding import Embedder
from rag.index.folder import Index
from rag.ingest.pipeline import IngestReport, ProgressFn, ingest
from rag.query import Filters, Query
from rag.records import Answer, RetrievedPassage, Turn
from rag.retrieval.hybrid import Retriever

logger = logging.getLogger(__name__)


class Answerer(Protocol):
    """Turns a standalone question and its retrieved passages into a draft answer.

    An answerer may also condense follow-ups (``Condenses``), stream its answer (``Streams``)
    and hold resources to release (``Closes``); the Assistant uses each when it is there.
    """

    name: str

    def answer(self, question: str, hits: list[Hit], query_vector: np.ndarray) -> Draft: ...


@runtime_checkable
class Condenses(Protocol):
    """An answerer that rewrites a follow-up into a standalone question itself (an LLM)."""

    def condense(self, question: str, history: list[Turn]) -> str: ...


@runtime_checkable
class Streams(Protocol):
    """An answerer that yields its text as it is written, then the ``Draft`` last."""

    def stream(self, question: str, hits: list[Hit], query_vector: np.ndarray) -> Iterator[str | Draft]: ...


@runtime_checkable
class Preloads(Protocol):
    """An answerer whose model can start loading in the background before it is needed."""

    def preload(self) -> None: ...


@runtime_checkable
class Closes(Protocol):
    """An answerer holding resources (an in-process LLM server) that ``close`` releases."""

    def close(self) -> None: ...


def make_answerer(name: str, settings: Settings, extractive: ExtractiveAnswerer) -> Answerer:
    """The answerer called ``name`` ("extractive", "reader", or an LLM one configured in
    ``settings``), or ConfigError naming what is missing. The one factory the Assistant and the
    UI use; ``extractive`` is the fallback an LLM answerer refuses or falls back with."""
    if name == "extractive":
        return extractive
    if name == "reader":
        return ReaderAnswerer(settings.answer)
    # Imported here: the LLM answerers' modules are not needed by a `rag ask` with the reader.
    from rag.answering.llm.generative import GenerativeAnswerer

    try:
        configured = settings if name == settings.answer.answerer else settings.with_overrides(answer={"answerer": name})
        return GenerativeAnswerer.from_settings(configured, fallback=extractive)
    except RagError:
        raise
    except Exception as e:  # a missing optional package or an unconfigured model
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"the {name} answerer is not available: {first_line}") from e


HistoryLike = Sequence[Turn | dict[str, Any]]


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean_question(question: str, max_chars: int) -> str:
    """The question with control characters removed and white space collapsed; or QueryError."""
    if not isinstance(question, str):
        raise QueryError(f"question must be text, not {type(question).__name__}")
    if len(question) > max_chars:
        raise QueryError(
            f"question is {len(question):,} characters long; the limit is {max_chars:,} "
            "(RAG_ANSWER__MAX_QUESTION_CHARS)"
        )
    # Terminal colour codes go whole; invisible format characters (zero-width space, soft
    # hyphen) join what they split ("micro\u200belectronics"); other control characters and
    # lone surrogates separate words.
    question = _ANSI_ESCAPE.sub("", question)
    kept = "".join(
        "" if unicodedata.category(ch) == "Cf" else " " if unicodedata.category(ch).startswith("C") else ch
        for ch in question
    )
    kept = " ".join(kept.split())
    if not kept:
        raise QueryError("question is empty (nothing but white space or control characters)")
    return kept


def parse_history(history: HistoryLike | None) -> list[Turn]:
    """Earlier turns, oldest first, from Turn objects or ``{"question", "answer"}`` dicts."""
    turns: list[Turn] = []
    for i, turn in enumerate(history or []):
        if isinstance(turn, Turn):
            turns.append(turn)
        elif isinstance(turn, dict) and isinstance(turn.get("question"), str):
            turns.append(Turn(question=turn["question"], answer=str(turn.get("answer") or "")))
        else:
            raise QueryError(f"history turn {i + 1} must be an object with a 'question' string")
    return turns


class Assistant:
    """Ask questions of one index; see the module docstring."""

    def __init__(self, index: Index, answerer: Answerer | str | None = None) -> None:
        """``answerer``: an Answerer, the name of one to build (``make_answerer``), or None for
        the one ``settings.answer.answerer`` names."""
        self.index = index
        self.settings = index.settings
        self.retriever = Retriever(index, self.settings.retrieval)
        self.extractive = ExtractiveAnswerer(self.settings.answer)
        self._aside: ThreadPoolExecutor | None = None  # embeds questions beside the catalog search
        self._aside_lock = threading.Lock()
        if answerer is None or isinstance(answerer, str):
            answerer = make_answerer(answerer or self.settings.answer.answerer, self.settings, self.extractive)
        self.answerer: Answerer = answerer

    @classmethod
    def open(
        cls,
        index_dir: str | Path | None = None,
        settings: Settings | None = None,
        create: bool = False,
        answerer: Answerer | str | None = None,
        embedder: Embedder | None = None,
        readonly: bool | None = None,
    ) -> Assistant:
        """Open an index folder (default: ``settings.index_dir``); ``create`` makes a new one
        and allows ingesting; without it the assistant is a reader (``readonly``, see
        ``rag.index.folder``) that never writes the folder.

        ``embedder`` lets several assistants share one loaded model (tests, servers).
        """
        settings = settings or Settings()
        if index_dir is not None:
            settings = settings.with_overrides(index_dir=Path(index_dir))
        return cls(Index.open(settings, create=create, embedder=embedder, readonly=readonly), answerer)

    # -- asking -----------------------------------------------------------------------------
    def standalone_question(self, question: str, history: list[Turn]) -> str:
        """The question to search: the follow-up condensed by the LLM, or rewritten by rule."""
        return self._rewrite(question, history).standalone

    def _rewrite(self, question: str, history: list[Turn]) -> Rewrite:
        if isinstance(self.answerer, Condenses) and history:
            standalone = self.answerer.condense(question, history)
            return Rewrite(standalone, standalone)
        return rewrite_parts(question, history)

    def query(
        self,
        question: str,
        history: HistoryLike | None = None,
        filters: Filters | None = None,
        top_k: int | None = None,
    ) -> Query:
        """The ``Query`` a question makes: cleaned, rewritten to stand alone, embedded once."""
        question = clean_question(question, self.settings.answer.max_question_chars)
        return self._embedded(question, self._rewrite(question, parse_history(history)), filters, top_k)

    def _embedded(self, question: str, rewritten: Rewrite, filters: Filters | None, top_k: int | None,
                  aside: bool = False) -> Query:
        """The ``Query``; ``aside``: embedded in another thread, while the caller searches the
        catalog's words (ONNX Runtime leaves Python's lock free during the pass)."""
        if aside:
            with self._aside_lock:
                if self._aside is None:
                    self._aside = ThreadPoolExecutor(max(8, 4 * (os.cpu_count() or 1)), thread_name_prefix="embed")
            embedding: Any = self._aside.submit(self.index.embed_query, rewritten.standalone)
        else:
            embedding = self.index.embed_query(rewritten.standalone)
        return Query(question, rewritten.standalone, embedding, rewritten.focus, filters or Filters(), top_k)

    def ask(
        self,
        question: str,
        history: HistoryLike | None = None,
        filters: Filters | None = None,
        top_k: int | None = None,
    ) -> Answer:
        """Answer ``question`` (a follow-up of ``history`` if given) with verified citations."""
        final: Answer | None = None
        for item in self._run(question, history, filters, top_k, stream=False):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def stream(
        self,
        question: str,
        history: HistoryLike | None = None,
        filters: Filters | None = None,
        top_k: int | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the answer text as it grows (each item the text so far), then the final record.

        The final record's ``answer`` is authoritative: it has passed the citation check and may
        differ from the streamed text.
        """
        yield from self._run(question, history, filters, top_k, stream=True)

    def _run(
        self,
        question: str,
        history: HistoryLike | None,
        filters: Filters | None,
        top_k: int | None,
        stream: bool,
    ) -> Iterator[str | Answer]:
        started = time.perf_counter()
        if isinstance(self.answerer, Preloads):
            self.answerer.preload()  # the model loads while the question is embedded and searched
        question = clean_question(question, self.settings.answer.max_question_chars)
        rewritten = self._rewrite(question, parse_history(history))
        t_rewrite = time.perf_counter()  # the question's embedding counts as retrieval, as before
        query = self._embedded(question, rewritten, filters, top_k, aside=True)
        standalone = query.standalone
        # A follow-up whose pronoun was resolved has a narrower focus than what was searched;
        # the extractive answerer picks its sentence for the focus (see rag.answering.rewrite.Rewrite).
        use_focus = query.focus != standalone and self.answerer is self.extractive
        focus_arg = Focus(query.focus, self.index.embed_query(query.focus)) if use_focus else None
        streamer = self.answerer.stream if stream and isinstance(self.answerer, Streams) else None
        answer: Answer | None = None
        # One read snapshot of the catalog for retrieval, answer and gate: a commit landing
        # mid-question must not pair one version's offsets with another version's text.
        with self.index.catalog.snapshot():
            hits = self.retriever.retrieve(query)
            query_vector = query.vector  # made by now: retrieval searched with it
            t_retrieve = time.perf_counter()
            if streamer is None:
                answer = self._verified(question, standalone, self._answer(standalone, hits, query_vector, focus_arg), hits)
        if streamer is not None:
            # A snapshot is not held across yields (a consumer may resume us on another
            # thread); the gate then verifies against whatever version is current, so a commit
            # during generation can only drop citations, never return a wrong one.
            draft: Draft | None = None
            for item in streamer(standalone, hits, query_vector):
                if isinstance(item, Draft):
                    draft = item
                else:
                    yield item
            assert draft is not None
            with self.index.catalog.snapshot():
                answer = self._verified(question, standalone, draft, hits)
        assert answer is not None
        t_answer = time.perf_counter()
        if stream and streamer is None:
            yield from _word_stream(answer.answer)
        timings = {
            "rewrite": (t_rewrite - started) * 1000,
            "retrieve": (t_retrieve - t_rewrite) * 1000,
            "answer": (t_answer - t_retrieve) * 1000,
            "total": (time.perf_counter() - started) * 1000,
        }
        yield answer.model_copy(update={"timings_ms": {k: round(v, 2) for k, v in timings.items()}})

    def _answer(self, standalone: str, hits: list[Hit], query_vector: np.ndarray, focus: Focus | None) -> Draft:
        if focus is not None:
            return self.extractive.answer(standalone, hits, query_vector, focus=focus)
        return self.answerer.answer(standalone, hits, query_vector)

    def _verified(self, question: str, standalone: str, draft: Draft, hits: list[Hit]) -> Answer:
        """Verify every citation against the document text; never return an unbacked marker."""
        text_of = functools.cache(self.index.catalog.text_by_source)  # each document read once
        text, citations = enforce_citations(draft.answer, draft.citations, text_of)
        refused = draft.refused
        short = draft.short_answer
        if not refused and not citations:
            logger.warning("every citation of the answer failed verification; refusing instead")
            text, short, refused = REFUSAL_TEXT, None, True
        if short is not None and not any(short in c.quote for c in citations):
            short = None  # the short answer must be copied from a cited quote
        retrieved = [RetrievedPassage(source=h.source, start=h.chunk.start, end=h.chunk.end, score=h.score) for h in hits]
        answer = Answer(
            question=question,
            standalone_question=standalone,
            answer=text,
            short_answer=None if refused else short,
            refused=refused,
            citations=citations,
            retrieved=retrieved,
            answerer=draft.answerer,
            details=draft.details,
        )
        # Who says it, as of when, where sources differ: a layer after any answerer, its offsets
        # verified like citations (rag.answering.provenance).
        return annotate(answer, hits, text_of, self._date_of, getattr(self.answerer, "threshold", None),
                        functools.cache(self._sentence_spans))

    def _date_of(self, source: str) -> str | None:
        info = self.index.catalog.document_by_source(source)
        return info.date if info is not None else None

    def _sentence_spans(self, source: str) -> list[tuple[int, int]] | None:
        """The document's sentences as ingest split them: attribution reads a paragraph's
        sentences from here instead of loading a sentence splitter (NLTK takes over a second to
        import) while answering."""
        info = self.index.catalog.document_by_source(source)
        if info is None:
            return None
        return list(self.index.catalog.sentence_spans(info.id))

    # -- the index --------------------------------------------------------------------------
    def ingest(
        self,
        paths: Sequence[str | Path],
        prune: bool = False,
        progress: ProgressFn | None = None,
        root: str | Path | None = None,
    ) -> IngestReport:
        """Add or update the files under ``paths``, named relative to the corpus root; see
        ``rag.ingest.pipeline.ingest``. Needs an assistant opened with ``create=True``."""
        return ingest(self.index, [Path(p) for p in paths], prune=prune, progress=progress,
                      root=Path(root) if root is not None else None)

    def documents(self) -> list[DocumentInfo]:
        return self.index.documents()

    def document_text(self, source: str) -> str:
        """The exact text that citation offsets of ``source`` index into."""
        return self.index.document_text(source)

    def document(self, source: str) -> DocumentInfo | None:
        """One document's catalog entry (title, date, chunks...), or None if not indexed."""
        return self.index.catalog.document_by_source(source)

    def as_llamaindex_retriever(self, top_k: int | None = None, filters: Filters | None = None) -> Any:
        """This index's hybrid retriever as a llama-index ``BaseRetriever``."""
        # Imported here, not at the top: llama-index takes ~1.4 s to import and only this
        # method needs it (every `rag ask` would pay for it otherwise).
        from rag.retrieval.llamaindex import HybridRetriever

        return HybridRetriever(self.retriever, lambda question: self.query(question, filters=filters, top_k=top_k))

    def close(self) -> None:
        """Release the answerer's resources (an in-process LLM server), the question-embedding
        threads and this thread's catalog."""
        if isinstance(self.answerer, Closes) and self.answerer is not self.extractive:
            self.answerer.close()
        with self._aside_lock:
            if self._aside is not None:
                self._aside.shutdown(wait=False)
                self._aside = None
        self.index.catalog.close()


def _word_stream(text: str, words_per_step: int = 4) -> Iterator[str]:
    """The text so far, a few words at a time (the extractive answer exists all at once)."""
    parts = text.split(" ")
    for i in range(words_per_step, len(parts) + words_per_step, words_per_step):
        yield " ".join(parts[:i])
