"""The component tree of the UI and its event wiring; the handlers live in ``ui.app.ChatApp``
(which this module sees only through the ``Handlers`` protocol, so it never imports ``ui.app``).

Element ids the page script and the browser tests rely on: ``rag-chat``, ``rag-question``,
``rag-ask``, ``rag-stop``, ``rag-new``, ``rag-status``, ``rag-counter``, ``rag-date-hint``,
``rag-source-panel``, ``rag-cite-key``/``rag-cite-go`` (hidden), ``rag-documents``,
``rag-upload``, ``rag-add``, ``rag-upload-results``.

The conversation, and a question still being answered, live in the browser (``gr.BrowserState``,
localStorage, encrypted by the server): a reload keeps them, "New conversation" clears them.
"""

from __future__ import annotations

from typing import Any, Protocol

import gradio as gr

from rag.config import Settings
from ui import feedback, render
from ui.assets import submit_js
from ui.uploads import UPLOAD_SUFFIXES


class Handlers(Protocol):
    """What the layout wires to its events (``ui.app.ChatApp`` implements it). Each handler's
    own signature is Gradio's business (inputs map to parameters), hence ``*args``."""

    answerers: Any

    def take_question(self, *args: Any, **kwargs: Any) -> Any: ...
    def respond(self, *args: Any, **kwargs: Any) -> Any: ...
    def stop(self, *args: Any, **kwargs: Any) -> Any: ...
    def restore(self, *args: Any, **kwargs: Any) -> Any: ...
    def check_dates(self, *args: Any, **kwargs: Any) -> Any: ...
    def new_chat(self, *args: Any, **kwargs: Any) -> Any: ...
    def show_source(self, *args: Any, **kwargs: Any) -> Any: ...
    def corpus_outputs(self, *args: Any, **kwargs: Any) -> Any: ...
    def add_files(self, *args: Any, **kwargs: Any) -> Any: ...
    def api_ask(self, *args: Any, **kwargs: Any) -> Any: ...


_BRAND = (
    '<div class="rag-brand">rag-cite'
    "<small>Answers from your documents, every claim cited to the exact passage</small></div>"
)
_PLACEHOLDER = (
    "**Ask a question about your documents.** Every answer cites the passages it rests on: "
    "click a citation to see it highlighted in its document."
)


def build_layout(app: Handlers, settings: Settings) -> gr.Blocks:
    """Lay out the chat, source, settings and corpus panels and wire them to ``app``."""
    rows, summary_html, source_choices = app.corpus_outputs()
    top_k_max = max(20, settings.retrieval.top_k)
    with gr.Blocks(title="rag-cite", analytics_enabled=False) as blocks:
        conversation = gr.BrowserState({"turns": []}, storage_key="rag-cite-conversation")
        pending = gr.BrowserState("", storage_key="rag-cite-pending")
        with gr.Row(elem_id="rag-header"):
            gr.HTML(_BRAND, padding=False)
            summary = gr.HTML(summary_html, padding=False, elem_id="rag-summary")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=420):
                        chatbot = gr.Chatbot(
                            elem_id="rag-chat",
                            show_label=False,
                            height=610,
                            render_markdown=False,  # messages are HTML built by ui.render, text escaped
                            sanitize_html=True,  # and the chat's own sanitiser stays on
                            latex_delimiters=[],
                            feedback_options=None,
                            placeholder=_PLACEHOLDER,
                            buttons=[],  # a copy button would copy the message's HTML
                        )
                        with gr.Row(equal_height=True):
                            question = gr.Textbox(
                                elem_id="rag-question",
                                label="Your question",
                                show_label=False,
                                placeholder="Ask a question, e.g. What share of microelectronics came from China?",
                                lines=1,  # one line: Enter sends, Shift+Enter adds a line (it grows to 6)
                                max_lines=6,
                                scale=5,
                                autofocus=True,
                                # no max_length: the browser would cut a long paste silently; the
                                # counter shows the limit and an over-long question is not sent
                            )
                            with gr.Column(scale=1, min_width=170):
                                ask = gr.Button("Ask", variant="primary", elem_id="rag-ask")
                                stop = gr.Button("Stop", variant="stop", elem_id="rag-stop", visible=False)
                                new = gr.Button("New conversation", elem_id="rag-new", size="sm")
                        with gr.Row(equal_height=True, elem_id="rag-below-question"):
                            status = gr.HTML(feedback.status_html(), elem_id="rag-status", padding=False)
                            gr.HTML(feedback.counter_html(settings.answer.max_question_chars),
                                    elem_id="rag-counter", padding=False)
                        with gr.Accordion("Settings", open=False, elem_id="rag-settings"):
                            with gr.Row():
                                top_k = gr.Slider(
                                    1, top_k_max, value=settings.retrieval.top_k, step=1,
                                    label="Passages", info="how many passages the answer is drawn from",
                                )
                                answerer = gr.Dropdown(
                                    choices=list(app.answerers), value=settings.answer.answerer,
                                    label="Answerer", info="extractive needs no model; the others need an LLM",
                                )
                            sources = gr.Dropdown(
                                choices=source_choices["choices"], value=[], multiselect=True,
                                label="Only these documents", info="empty: search every document",
                            )
                            with gr.Row():
                                date_from = gr.Textbox(label="Published from", placeholder="YYYY-MM-DD")
                                date_to = gr.Textbox(label="Published until", placeholder="YYYY-MM-DD")
                            date_hint = gr.HTML(feedback.date_hint_html(None), elem_id="rag-date-hint", padding=False)
                    with gr.Column(scale=2, min_width=360):
                        source_panel = gr.HTML(render.EMPTY_SOURCE_HTML, elem_id="rag-source-panel", padding=False)
                        cite_key = gr.Textbox(visible="hidden", elem_id="rag-cite-key")
                        cite_go = gr.Button("Show citation", visible="hidden", elem_id="rag-cite-go")
            with gr.Tab("Documents", id="documents"):
                documents = gr.Dataframe(
                    value=rows, headers=render.DOCUMENT_HEADERS, datatype=["str", "str", "str", "number", "number"],
                    type="array", interactive=False, wrap=True, elem_id="rag-documents", label="Documents in the index",
                    column_widths=["46%", "11%", "27%", "8%", "8%"],
                )
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2):
                        # No file_types: the widget would refuse the whole batch for one wrong file
                        # (a bare red "Error", twice); each file is checked on Add and named in the results.
                        files = gr.File(
                            file_count="multiple", elem_id="rag-upload",
                            label=f"Add documents: {' '.join(UPLOAD_SUFFIXES)}, up to {settings.ui.max_upload_mb:g} MB each",
                        )
                        add = gr.Button("Add to index", variant="primary", elem_id="rag-add")
                    with gr.Column(scale=3):
                        results = gr.HTML(
                            '<div class="rag-muted">Uploaded files are saved into the corpus folder and indexed; '
                            "each file's result is listed here.</div>",
                            elem_id="rag-upload-results", padding=False,
                        )

        # Enter or Ask: the page script empties the box at once (SUBMIT_JS), the question is shown
        # (a quick step outside the queue), then answered. While an answer is coming ``asking``
        # holds its question: take_question then sends nothing and says so, and the answer step,
        # already pending, ignores the trigger ("once"), so two answers never race. Stop cancels it.
        asking = gr.State(value="")
        answering = gr.on(
            [ask.click, question.submit], app.take_question, [question, conversation, asking, date_from, date_to],
            [chatbot, question, ask, stop, asking, pending, status, date_hint], api_visibility="private",
            show_progress="hidden", trigger_mode="once", queue=False,
            js=submit_js(settings.answer.max_question_chars),
        ).then(
            app.respond, [asking, conversation, top_k, answerer, sources, date_from, date_to],
            [chatbot, conversation, question, ask, stop, asking, pending, status], api_visibility="private",
            show_progress="hidden", trigger_mode="once",
        )
        stop.click(
            app.stop, [conversation, asking, question], [chatbot, question, ask, stop, asking, pending, status],
            api_visibility="private", show_progress="hidden", queue=False, cancels=[answering],
        )
        gr.on([date_from.blur, date_to.blur, date_from.submit, date_to.submit], app.check_dates,
              [date_from, date_to], date_hint, api_visibility="private", show_progress="hidden", queue=False)
        reset_outputs = [chatbot, conversation, source_panel, cite_key, pending]
        new.click(app.new_chat, None, reset_outputs, api_visibility="private")
        chatbot.clear(app.new_chat, None, reset_outputs, api_visibility="private")  # the chat's own bin icon
        cite_go.click(
            app.show_source, [cite_key, conversation], source_panel, api_visibility="private", show_progress="hidden"
        )
        # Progress shows on the results panel only: the table, the header and the chat stay usable.
        # The table and header are refreshed by a separate event once the results change (as a
        # step chained with .then they would carry the progress overlay from the start).
        add.click(
            app.add_files, files, [results, files], api_visibility="private", concurrency_limit=1,
            show_progress_on=[results],
        )
        results.change(app.corpus_outputs, None, [documents, summary, sources], api_visibility="private",
                       show_progress="hidden")
        blocks.load(app.corpus_outputs, None, [documents, summary, sources], api_visibility="private",
                    show_progress="hidden")  # the table as served stays readable while it is refreshed
        blocks.load(app.restore, [conversation, pending], [chatbot, conversation, question, pending, status],
                    api_visibility="private", show_progress="hidden")
        gr.api(app.api_ask, api_name="ask")
    return blocks
