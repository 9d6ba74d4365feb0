"""The Gradio chat UI: chat with clickable citations, a source panel, the corpus and settings.

``build_app(assistant, settings)`` makes the ``gr.Blocks`` (tests launch it themselves);
``serve(settings)`` opens the index, optionally ingests the corpus folder and launches it on
``settings.ui.host``/``port`` (127.0.0.1 unless told otherwise), with a login when
``settings.ui.auth`` (``RAG_UI__AUTH``) or ``RAG_UI_AUTH`` is ``user:password``.

Each browser session keeps its own conversation in a ``gr.State``; the chat is re-rendered
from that state (``ui.render``), so what a user sees is always what the state holds. All
document and question text reaches the page escaped; see ``ui.render``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import gradio as gr

from rag.assistant import Assistant
from rag.config import AnswerSettings, Settings
from rag.errors import ConfigError, RagError
from rag.records import Answer
from rag.retrieval.hybrid import Filters
from ui import render
from ui.assets import PAGE_CSS, PAGE_JS
from ui.layout import build_layout
from ui.uploads import UPLOAD_SUFFIXES, UploadRefused, save_upload

logger = logging.getLogger(__name__)

ANSWERERS: tuple[str, ...] = tuple(get_args(AnswerSettings.model_fields["answerer"].annotation))
AUTH_ENV = "RAG_UI_AUTH"
Conversation = dict[str, Any]  # {"turns": [{"question": str, "answer": Answer as a JSON dict}]}


def new_conversation() -> Conversation:
    return {"turns": []}


def history_of(conversation: Conversation) -> list[dict[str, str]]:
    """The conversation's turns as the Python API's history (oldest first)."""
    return [{"question": t["question"], "answer": t["answer"]["answer"]} for t in conversation["turns"]]


def make_filters(sources: list[str] | None, date_from: str | None, date_to: str | None) -> Filters | None:
    """Filters from the settings panel, or None when nothing is restricted (QueryError if bad)."""
    filters = Filters(
        sources=tuple(sources or ()),
        date_from=(date_from or "").strip() or None,
        date_to=(date_to or "").strip() or None,
    )
    return None if filters.empty else filters


class ChatApp:
    """The handlers behind the page; one per app, shared by every session (sessions own only state)."""

    answerers = ANSWERERS

    def __init__(self, assistant: Assistant, settings: Settings) -> None:
        self.settings = settings
        self.base = assistant
        self._assistants: dict[str, Assistant] = {assistant.answerer.name: assistant}
        self._lock = threading.Lock()
        self._ingest_lock = threading.Lock()
        self._titles: dict[str, str] | None = None

    # -- helpers ----------------------------------------------------------------------------
    def titles(self) -> dict[str, str]:
        with self._lock:
            if self._titles is None:
                self._titles = {d.source: d.title for d in self.base.documents()}
            return self._titles

    def assistant_for(self, name: str | None) -> Assistant:
        """The assistant answering with ``name`` (built once, on first use), or ConfigError."""
        name = name or self.base.answerer.name
        if name not in ANSWERERS:
            raise ConfigError(f"unknown answerer {name!r}; choose one of {', '.join(ANSWERERS)}")
        with self._lock:
            if name not in self._assistants:
                self._assistants[name] = self._build_assistant(name)
            return self._assistants[name]

    def _build_assistant(self, name: str) -> Assistant:
        if name == "extractive":
            return Assistant(self.base.index, answerer=self.base.extractive)
        try:
            from rag.answering.llm.generative import GenerativeAnswerer

            configured = self.settings.with_overrides(answer={"answerer": name})
            answerer = GenerativeAnswerer.from_settings(configured, fallback=self.base.extractive)
        except RagError:
            raise
        except Exception as e:  # a missing optional package or an unconfigured model
            first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ConfigError(f"the {name} answerer is not available: {first_line}") from e
        return Assistant(self.base.index, answerer=answerer)

    def render_chat(self, conversation: Conversation) -> list[dict[str, str]]:
        titles = self.titles()
        messages: list[dict[str, str]] = []
        for i, turn in enumerate(conversation["turns"]):
            messages.append({"role": "user", "content": render.question_html(turn["question"])})
            answer = Answer.model_validate(turn["answer"])
            messages.append({"role": "assistant", "content": render.answer_html(answer, i, titles)})
        return messages

    # -- chat -------------------------------------------------------------------------------
    def respond(
        self,
        question: str,
        conversation: Conversation,
        top_k: float,
        answerer: str,
        sources: list[str] | None,
        date_from: str,
        date_to: str,
    ) -> Iterator[tuple[list[dict[str, str]], Conversation, str]]:
        """Stream the answer into the chat, then store the verified record in this session's state."""
        conversation = {"turns": list((conversation or new_conversation())["turns"])}
        if not (question or "").strip():
            yield self.render_chat(conversation), conversation, ""
            return
        try:
            filters = make_filters(sources, date_from, date_to)
            stream = self.assistant_for(answerer).stream(
                question, history=history_of(conversation), filters=filters, top_k=int(top_k)
            )
            first = next(stream)
        except RagError as e:
            raise gr.Error(str(e), print_exception=False) from None
        shown = self.render_chat(conversation) + [{"role": "user", "content": render.question_html(question)}]
        final: Answer | None = None
        pace = _Pacer()
        try:
            for item in _chain(first, stream):
                if isinstance(item, Answer):
                    final = item
                else:
                    pace.wait()
                    yield shown + [{"role": "assistant", "content": render.pending_html(item)}], conversation, ""
        except RagError as e:
            yield self.render_chat(conversation), conversation, question
            raise gr.Error(str(e), print_exception=False) from None
        assert final is not None
        conversation["turns"].append({"question": question, "answer": final.model_dump(mode="json")})
        yield self.render_chat(conversation), conversation, ""

    def new_chat(self) -> tuple[list[dict[str, str]], Conversation, str, str]:
        return [], new_conversation(), render.EMPTY_SOURCE_HTML, ""

    def show_source(self, key: str, conversation: Conversation) -> str:
        """The source panel for the citation ``key`` ("turn-id") of this session's conversation."""
        found = render.find_citation((conversation or new_conversation())["turns"], key or "")
        if found is None:
            return render.EMPTY_SOURCE_HTML
        turn, citation = found
        document = next((d for d in self.base.documents() if d.source == citation.source), None)
        try:
            body: str | None = self.base.document_text(citation.source)
        except RagError:
            body = None
        return render.source_html(render.SourceView(citation, turn, document, body))

    # -- corpus -----------------------------------------------------------------------------
    def corpus_outputs(self) -> tuple[list[list[object]], str, Any]:
        documents = self.base.documents()
        with self._lock:
            self._titles = {d.source: d.title for d in documents}
        choices = [(f"{d.title} ({d.source})" if d.title != d.source else d.source, d.source) for d in documents]
        return render.document_rows(documents), render.index_summary_html(documents), gr.update(choices=choices)

    def add_files(self, files: list[str] | None, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """Save uploads into the corpus folder, ingest them, and report each file's result."""
        results: list[render.FileResult] = []
        saved: dict[str, str] = {}  # safe name -> the name the user uploaded
        max_bytes = int(self.settings.ui.max_upload_mb * 1e6)
        for path in files or []:
            original = Path(path).name
            try:
                upload = save_upload(path, original, self.settings.corpus_dir, max_bytes)
            except UploadRefused as e:
                results.append(render.FileResult(original, "refused", str(e)))
                continue
            saved[upload.name] = original
        if saved:
            results += self._ingest(saved, progress)
        return (render.upload_results_html(results), *self.corpus_outputs(), None)

    def _ingest(self, saved: dict[str, str], progress: gr.Progress | None) -> list[render.FileResult]:
        def report_progress(done: int, total: int, source: str) -> None:
            if progress is not None:
                progress((done, total), desc=f"Indexing {source}" if source else "Updating the search index")

        paths = [self.settings.corpus_dir / name for name in saved]
        try:
            with self._ingest_lock:
                report = self.base.ingest(paths, progress=report_progress)
        except RagError as e:
            return [render.FileResult(original, "failed", str(e)) for original in saved.values()]
        chunks = {d.source: d.n_chunks for d in self.base.documents()}
        skipped = {Path(p).name: reason for p, reason in report.skipped}
        results = []
        for name, original in saved.items():
            renamed = f"saved as {name}; " if name != original else ""
            if name in skipped:
                results.append(render.FileResult(original, "skipped", renamed + skipped[name]))
                continue
            status = next(
                (s for s, names in (("added", report.added), ("updated", report.updated), ("unchanged", report.unchanged)) if name in names),
                "skipped",
            )
            detail = f"{chunks[name]} passages" if name in chunks else "not indexed"
            results.append(render.FileResult(original, status, renamed + detail))
        return results

    # -- API --------------------------------------------------------------------------------
    def api_ask(
        self,
        question: str,
        history: list[dict[str, Any]] | None = None,
        top_k: int | None = None,
        sources: list[str] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        answerer: str | None = None,
    ) -> dict[str, Any]:
        """Answer a question and return the answer record (shared/specs/answer-json.md) as a dict.

        Args:
            question: the question; a follow-up is read in the light of `history`.
            history: earlier turns, oldest first, as [{"question": ..., "answer": ...}].
            top_k: passages to retrieve (default: the server's setting).
            sources: only search these document sources (corpus-relative paths).
            date_from: only documents dated on or after this day (YYYY-MM-DD).
            date_to: only documents dated on or before this day (YYYY-MM-DD).
            answerer: "extractive" (default) or a configured LLM answerer.
        """
        try:
            filters = make_filters(sources, date_from, date_to)
            answer = self.assistant_for(answerer).ask(question, history=history or [], filters=filters, top_k=top_k)
        except RagError as e:
            raise gr.Error(str(e), print_exception=False) from None
        return answer.model_dump(mode="json")


class _Pacer:
    """Spaces streamed updates at least ``interval`` seconds apart, sleeping ``budget`` at most.

    The extractive answer exists all at once and ``Assistant.stream`` yields it a few words at a
    time with no delay, which the browser would show as one update; this lets it appear as it
    streams (about a quarter of a second in all). A model's tokens arrive slower than the
    interval, so a generative answer is never delayed.
    """

    def __init__(self, interval: float = 0.04, budget: float = 0.4) -> None:
        self.interval, self.budget = interval, budget
        self.last = 0.0

    def wait(self) -> None:
        now = time.monotonic()
        pause = min(self.interval - (now - self.last), self.budget) if self.last else 0.0
        if pause > 0:
            time.sleep(pause)
            self.budget -= pause
        self.last = time.monotonic()


def _chain(first: str | Answer, rest: Iterator[str | Answer]) -> Iterator[str | Answer]:
    yield first
    yield from rest


def build_app(assistant: Assistant, settings: Settings) -> gr.Blocks:
    """The UI and its ``ask`` API endpoint for ``assistant``; launch it with ``launch``."""
    return build_layout(ChatApp(assistant, settings), settings)


def _auth(settings: Settings) -> tuple[str, str] | None:
    raw = settings.ui.auth or os.environ.get(AUTH_ENV) or None
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        raise ConfigError(f"{AUTH_ENV} must look like user:password")
    return user, password


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def launch(app: gr.Blocks, settings: Settings, *, block: bool = True, quiet: bool = True) -> str:
    """Launch ``app`` on ``settings.ui.host``/``port`` (port 0: a free one); return its URL."""
    host = settings.ui.host
    port = settings.ui.port or _free_port(host)
    auth = _auth(settings)
    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("the UI is reachable from other machines at %s%s", host, "" if auth else " without a login")
    app.queue(default_concurrency_limit=4)
    _, url, _ = app.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        auth_message="Sign in to ask questions of this index.",
        ssr_mode=False,
        prevent_thread_lock=True,
        quiet=quiet,
        show_error=False,
        max_file_size=int(settings.ui.max_upload_mb * 1_000_000),  # gradio refuses bigger uploads itself
        footer_links=["api"],
        css=PAGE_CSS,
        js=PAGE_JS,
        theme=_theme(),
    )
    if block:
        print(f"rag-cite UI: {url}  (Ctrl+C to stop)", file=sys.stderr, flush=True)
        app.block_thread()
    return url


def _theme() -> gr.themes.Base:
    # System fonts only: the default theme asks Google Fonts, which an offline machine cannot reach.
    return gr.themes.Soft(
        primary_hue="indigo",
        neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


def serve(settings: Settings, ingest_first: bool = False) -> None:
    """Open (or create) the index at ``settings.index_dir``, optionally ingest the corpus, serve."""
    assistant = Assistant.open(settings=settings, create=True)
    if ingest_first:
        report = assistant.ingest([settings.corpus_dir])
        print(
            f"indexed {settings.corpus_dir}: {len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.skipped)} skipped; {report.total_documents} documents",
            file=sys.stderr,
        )
    launch(build_app(assistant, settings), settings, block=True, quiet=True)


__all__ = ["ANSWERERS", "UPLOAD_SUFFIXES", "ChatApp", "build_app", "launch", "serve"]
