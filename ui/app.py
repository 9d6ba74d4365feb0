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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, get_args

import gradio as gr

from rag.assistant import Assistant, Streams
from rag.config import AnswerSettings, Settings
from rag.errors import ConfigError, RagError
from rag.records import Answer, Citation
from rag.retrieval.hybrid import Filters
from ui import render
from ui.assets import PAGE_CSS, PAGE_HEAD, PAGE_JS
from ui.layout import build_layout
from ui.uploads import UPLOAD_SUFFIXES, UploadRefused, save_upload

logger = logging.getLogger(__name__)

ANSWERERS: tuple[str, ...] = tuple(get_args(AnswerSettings.model_fields["answerer"].annotation))
AUTH_ENV = "RAG_UI_AUTH"
# {"turns": [{"question": str, "answer": Answer as a JSON dict, "nearest": [Citation dict] (refusals)}]}
Conversation = dict[str, Any]
# Answers computed at once. An answer holds a worker while an LLM writes, and threads waiting
# on a model cost nothing; the CPU-bound extractive answers share the cores whatever the limit.
# Uploads have their own limit of one.
ANSWER_CONCURRENCY = 32


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
        # One factory for every answerer: rag.assistant.make_answerer (ConfigError when unavailable).
        return Assistant(self.base.index, answerer=name)

    def render_chat(self, conversation: Conversation) -> list[dict[str, str]]:
        titles = self.titles()
        messages: list[dict[str, str]] = []
        for i, turn in enumerate(conversation["turns"]):
            messages.append({"role": "user", "content": render.question_html(turn["question"])})
            answer = Answer.model_validate(turn["answer"])
            nearest = [Citation.model_validate(p) for p in turn.get("nearest", [])]
            messages.append({"role": "assistant", "content": render.answer_html(answer, i, titles, nearest)})
        return messages

    def nearest_passages(self, answer: Answer) -> list[dict[str, Any]]:
        """The passages a refusal searched, with their text, as Citation dicts numbered from 1.

        They are kept in the turn so that the user can open each in its document, and the
        source panel can tell when a document has changed since (as it does for citations).
        """
        texts: dict[str, str | None] = {}
        passages = []
        for n, p in enumerate(answer.retrieved, 1):
            if p.source not in texts:
                try:
                    texts[p.source] = self.base.document_text(p.source)
                except RagError:
                    texts[p.source] = None
            body = texts[p.source]
            if body is not None and 0 <= p.start < p.end <= len(body):
                quote = body[p.start : p.end]
                passage = Citation(id=n, source=p.source, start=p.start, end=p.end, quote=quote)
                passages.append(passage.model_dump(mode="json") | {"score": p.score})
        return passages

    # -- chat -------------------------------------------------------------------------------
    def take_question(self, question: str, conversation: Conversation, asking: str) -> tuple[Any, ...]:
        """Show the question in the chat at once, before any work; ``respond`` answers it next.

        Returns (chat, question box, Ask button, the question being answered). A separate step
        so that the page shows the question before the answer's work starts: an update sent
        from the same handler waits for the CPU-bound answer (the GIL) and arrives with it.
        While an answer is coming (``asking`` is set), or for a blank box, nothing changes and
        the text stays in the box.
        """
        if asking or not (question or "").strip():
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        conversation = conversation or new_conversation()
        shown = self.render_chat(conversation) + [
            {"role": "user", "content": render.question_html(question)},
            {"role": "assistant", "content": render.SEARCHING_HTML},
        ]
        return shown, "", gr.Button(interactive=False), question

    def respond(
        self,
        question: str,
        conversation: Conversation,
        top_k: float,
        answerer: str,
        sources: list[str] | None,
        date_from: str,
        date_to: str,
    ) -> Iterator[tuple[Any, ...]]:
        """Answer the question ``take_question`` showed, streaming when the answerer streams.

        Yields (chat, conversation, question box, Ask button, the question being answered). The
        last update, error or not, enables Ask again and clears the question being answered;
        no update but an error's touches the box, so a user may type the next question meanwhile.
        """
        conversation = {"turns": list((conversation or new_conversation())["turns"])}
        if not (question or "").strip():
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        shown = self.render_chat(conversation) + [{"role": "user", "content": render.question_html(question)}]
        final: Answer | None = None
        try:
            for item in self._answer(question, conversation, top_k, answerer, sources, date_from, date_to):
                if isinstance(item, Answer):
                    final = item
                else:
                    partial = {"role": "assistant", "content": render.pending_html(item)}
                    yield shown + [partial], conversation, gr.skip(), gr.skip(), gr.skip()
        except Exception as e:
            # The question goes back into the box and Ask comes back here: Gradio (6.31) runs no
            # ``.then`` after an event that raised.
            yield self.render_chat(conversation), conversation, question, gr.Button(interactive=True), ""
            if isinstance(e, RagError):
                raise gr.Error(str(e), print_exception=False) from None
            raise
        assert final is not None
        turn: dict[str, Any] = {"question": question, "answer": final.model_dump(mode="json")}
        if final.refused:
            turn["nearest"] = self.nearest_passages(final)
        conversation = {"turns": [*conversation["turns"], turn]}
        yield self.render_chat(conversation), conversation, gr.skip(), gr.Button(interactive=True), ""

    def _answer(
        self,
        question: str,
        conversation: Conversation,
        top_k: float,
        answerer: str,
        sources: list[str] | None,
        date_from: str,
        date_to: str,
    ) -> Iterable[str | Answer]:
        """The answer's growing text then its record, or only the record when nothing streams.

        An answerer without ``stream`` (the extractive one) has its answer all at once; asking
        it directly shows the whole answer as soon as it exists, and ``timings_ms`` then times
        the assistant alone, not the chat updates a word-by-word replay would cost.
        """
        filters = make_filters(sources, date_from, date_to)
        assistant = self.assistant_for(answerer)
        args = {"history": history_of(conversation), "filters": filters, "top_k": int(top_k)}
        if not isinstance(assistant.answerer, Streams):
            return [assistant.ask(question, **args)]
        return assistant.stream(question, **args)

    def new_chat(self) -> tuple[list[dict[str, str]], Conversation, str, str]:
        return [], new_conversation(), render.EMPTY_SOURCE_HTML, ""

    def show_source(self, key: str, conversation: Conversation) -> str:
        """The source panel for the link ``key`` ("turn-id", "turn-rN") of this session's conversation."""
        found = render.find_citation((conversation or new_conversation())["turns"], key or "")
        if found is None:
            return render.EMPTY_SOURCE_HTML
        source = found.citation.source
        try:
            body: str | None = self.base.document_text(source)
        except RagError:
            body = None
        view = render.SourceView(found.citation, found.turn, self.base.document(source), body, found.span, found.nearest)
        return render.source_html(view)

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
                report = self.base.ingest(paths, progress=report_progress, root=self.settings.corpus_dir)
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
        """Answer a question and return the answer record (docs/answer-json.md) as a dict.

        Args:
            question: the question; a follow-up is read in the light of `history`.
            history: earlier turns, oldest first, as [{"question": ..., "answer": ...}].
            top_k: passages to retrieve (default: the server's setting).
            sources: only search these document sources (corpus-relative paths).
            date_from: only documents dated on or after this day (YYYY-MM-DD).
            date_to: only documents dated on or before this day (YYYY-MM-DD).
            answerer: "reader", "extractive" or a configured LLM answerer (default: the server's RAG_ANSWER__ANSWERER).
        """
        try:
            filters = make_filters(sources, date_from, date_to)
            answer = self.assistant_for(answerer).ask(question, history=history or [], filters=filters, top_k=top_k)
        except RagError as e:
            raise gr.Error(str(e), print_exception=False) from None
        return answer.model_dump(mode="json")


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
    app.queue(default_concurrency_limit=ANSWER_CONCURRENCY)
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
        head=PAGE_HEAD,
        theme=_theme(),
        max_threads=2 * ANSWER_CONCURRENCY,
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
        report = assistant.ingest([settings.corpus_dir], root=settings.corpus_dir)
        print(
            f"indexed {settings.corpus_dir}: {len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.skipped)} skipped; {report.total_documents} documents",
            file=sys.stderr,
        )
    launch(build_app(assistant, settings), settings, block=True, quiet=True)


__all__ = ["ANSWERERS", "UPLOAD_SUFFIXES", "ChatApp", "build_app", "launch", "serve"]
