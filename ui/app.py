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
from typing import Any, get_args

import gradio as gr

from rag.assistant import Assistant, Streams
from rag.config import AnswerSettings, Settings
from rag.errors import ConfigError, RagError
from rag.records import Answer, Citation
from rag.retrieval.hybrid import Filters
from ui import feedback, render
from ui.assets import PAGE_CSS, PAGE_HEAD, PAGE_JS
from ui.corpus import add_uploads, nearest_passages
from ui.layout import build_layout
from ui.uploads import UPLOAD_SUFFIXES

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
        self._stopped: dict[str, str] = {}  # session -> the question Stop was pressed for
        self._answered: dict[str, tuple[str, int]] = {}  # session -> (last question answered, its turn)

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
            note = turn.get("note")
            content = render.answer_html(answer, i, titles, nearest)
            if note:
                content += f'<div class="rag-note" role="note">{render.text(note)}</div>'
            messages.append({"role": "assistant", "content": content})
        return messages

    def restore(self, conversation: Conversation, pending: str) -> tuple[Any, ...]:
        """On page load: the conversation kept in this browser, and a question that was still
        being answered when the page was left, back in the box.

        Returns (chat, conversation, question box, pending question, status). A stored
        conversation that no longer reads (another version's records) is dropped, not shown half.
        """
        try:
            conversation = {"turns": list((conversation or new_conversation())["turns"])}
            chat = self.render_chat(conversation)
        except (KeyError, TypeError, ValueError):
            logger.info("a stored conversation did not read; starting a new one")
            conversation, chat = new_conversation(), []
        if not pending:
            return chat, conversation, gr.skip(), "", feedback.status_html()
        status = feedback.status_html(f"The page was left before “{render.clip(pending, 60)}” was answered; "
                                      "it is back in the box: press Enter to ask it again.")
        return chat, conversation, pending, "", status

    # -- chat -------------------------------------------------------------------------------
    def take_question(
        self, question: str, conversation: Conversation, asking: str, date_from: str, date_to: str
    ) -> tuple[Any, ...]:
        """Show the question in the chat at once, before any work; ``respond`` answers it next.

        Returns (chat, question box, Ask, Stop, the question being answered, the pending question
        kept in the browser, status, date hint). A separate step so that the page shows the
        question before the answer's work starts. The page script has already emptied the box
        (``ui.assets.SUBMIT_JS``) unless an answer is coming or the question is too long, so no
        late update here can erase what the user types next. While an answer is coming, or for a
        blank box, nothing is sent and the status says why.
        """
        skip = gr.skip()
        if not (question or "").strip():
            return (skip,) * 8
        if asking:
            status = feedback.status_html("Still answering the last question: Enter sends this one when it is "
                                          "done, or press Stop.")
            return skip, skip, skip, skip, skip, skip, status, skip
        limit = self.settings.answer.max_question_chars
        if (problem := feedback.too_long(question, limit)) is not None:
            return skip, skip, skip, skip, skip, skip, feedback.status_html(problem, "error"), skip
        if (problem := feedback.date_problem(date_from, date_to)) is not None:
            status = feedback.status_html(f"Not sent: {problem} (Settings)", "error")
            return skip, question, skip, skip, skip, skip, status, feedback.date_hint_html(problem)
        conversation = conversation or new_conversation()
        shown = self.render_chat(conversation) + [
            {"role": "user", "content": render.question_html(question)},
            {"role": "assistant", "content": render.SEARCHING_HTML},
        ]
        return (shown, skip, gr.Button(interactive=False), gr.Button(visible=True), question, question,
                feedback.status_html(), feedback.date_hint_html(None))

    def check_dates(self, date_from: str, date_to: str) -> str:
        """The hint under the date fields, as the user leaves one."""
        return feedback.date_hint_html(feedback.date_problem(date_from, date_to))

    def respond(
        self,
        question: str,
        conversation: Conversation,
        top_k: float,
        answerer: str,
        sources: list[str] | None,
        date_from: str,
        date_to: str,
        request: gr.Request | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """Answer the question ``take_question`` showed, streaming when the answerer streams.

        Yields (chat, conversation, question box, Ask, Stop, the question being answered, the
        pending question, status). The last update, error or not, enables Ask again and clears
        the question being answered. An error never replaces the chat: it is one line in the
        status, and the question goes back into the box.
        """
        conversation = {"turns": list((conversation or new_conversation())["turns"])}
        skip = gr.skip()
        if not (question or "").strip() or self._already_answered(request, question, conversation):
            yield (skip,) * 8
            return
        shown = self.render_chat(conversation) + [{"role": "user", "content": render.question_html(question)}]
        final: Answer | None = None
        try:
            for item in self._answer(question, conversation, top_k, answerer, sources, date_from, date_to):
                if isinstance(item, Answer):
                    final = item
                else:
                    partial = {"role": "assistant", "content": render.pending_html(item)}
                    yield shown + [partial], conversation, skip, skip, skip, skip, skip, skip
        except Exception as e:
            if not isinstance(e, RagError):
                logger.exception("answering %r failed", question)
            message = str(e) if isinstance(e, RagError) else f"Answering failed ({type(e).__name__}); the server log has the details."
            yield (self.render_chat(conversation), conversation, gr.update(value=question), *self._idle(),
                   feedback.status_html(f"Not answered: {message}", "error"))
            return
        assert final is not None
        if self._was_stopped(request, question):
            return  # Stop came while the answer was being computed: the chat stays as Stop left it
        if request is not None:
            with self._lock:
                self._answered[request.session_hash or ""] = (question, len(conversation["turns"]))
        turn: dict[str, Any] = {"question": question, "answer": final.model_dump(mode="json")}
        if final.refused:
            turn["nearest"] = nearest_passages(self.base, final)
        if note := feedback.language_note(question):
            turn["note"] = note
        conversation = {"turns": [*conversation["turns"], turn]}
        yield self.render_chat(conversation), conversation, skip, *self._idle(), feedback.status_html()

    def _already_answered(self, request: gr.Request | None, question: str, conversation: Conversation) -> bool:
        """Whether this session's last answer was to this very question at this very turn: an
        Enter pressed during that answer whose answer step the queue ran all the same."""
        if request is None:
            return False
        with self._lock:
            return self._answered.get(request.session_hash or "") == (question, len(conversation["turns"]))

    def _was_stopped(self, request: gr.Request | None, question: str) -> bool:
        if request is None:
            return False
        with self._lock:
            return self._stopped.pop(request.session_hash or "", None) == question

    @staticmethod
    def _idle() -> tuple[Any, ...]:
        """(Ask, Stop, the question being answered, the pending question) when nothing is answering."""
        return gr.Button(interactive=True), gr.Button(visible=False), "", ""

    def stop(self, conversation: Conversation, asking: str, box: str, request: gr.Request | None = None) -> tuple[Any, ...]:
        """Stop the answer being written: the chat as before the question, which goes back into
        the box unless the user has typed another there.

        Gradio cancels a streaming answer at its next step but lets a computation under way
        finish, so the session's stopped question is also noted for ``respond`` to drop.
        Returns (chat, question box, Ask, Stop, the question being answered, pending, status).
        """
        if asking and request is not None:
            with self._lock:
                self._stopped[request.session_hash or ""] = asking
        chat = self.render_chat(conversation or new_conversation())
        back = asking if asking and (box or "").strip() in ("", asking.strip()) else gr.skip()
        return chat, back, *self._idle(), feedback.status_html("Stopped; nothing was added to the conversation.")

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
        history = history_of(conversation)
        if not isinstance(assistant.answerer, Streams):
            return [assistant.ask(question, history=history, filters=filters, top_k=int(top_k))]
        return assistant.stream(question, history=history, filters=filters, top_k=int(top_k))

    def new_chat(self) -> tuple[list[dict[str, str]], Conversation, str, str, str]:
        """An empty chat and source panel; the conversation kept in the browser is cleared too."""
        return [], new_conversation(), render.EMPTY_SOURCE_HTML, "", ""

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

    def add_files(self, files: list[str] | None, progress: gr.Progress = gr.Progress()) -> tuple[str, None]:  # noqa: B008  (how Gradio injects progress)
        """Save uploads into the corpus folder, ingest them, and report each file's result
        (``ui.corpus.add_uploads``); returns (results, the cleared upload box)."""
        results = add_uploads(self.base, self.settings, files or [], progress, self._ingest_lock)
        return render.upload_results_html(results), None  # the table and header follow (corpus_outputs)

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
