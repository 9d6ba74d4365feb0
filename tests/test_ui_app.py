"""The UI's handlers called directly (no server, no browser) on a private copy of the seed index."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from rag.assistant import Assistant
from rag.errors import QueryError
from tests.conftest import CORPUS, make_settings
from tests.ui_helpers import FOLLOW_UP, QUESTION
from ui import feedback, render
from ui.app import ChatApp, build_app, history_of, make_filters, new_conversation


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory, seed_index_dir: Path, embedder: object) -> Iterator[ChatApp]:
    tmp = tmp_path_factory.mktemp("ui-app")
    shutil.copytree(seed_index_dir, tmp / "index")
    shutil.copytree(CORPUS, tmp / "corpus")
    settings = make_settings(tmp / "index").with_overrides(corpus_dir=tmp / "corpus", ui={"max_upload_mb": 0.001})
    assistant = Assistant.open(settings=settings, create=True, embedder=embedder)  # type: ignore[arg-type]
    yield ChatApp(assistant, settings)
    assistant.close()


def run(chat: ChatApp, question: str, conversation: dict, **settings: object) -> list[tuple]:
    args = {"top_k": 5, "answerer": "extractive", "sources": [], "date_from": "", "date_to": ""} | settings
    return list(chat.respond(question, conversation, **args))  # type: ignore[arg-type]


SKIP = gr.skip()


def test_take_question_shows_it_at_once_and_respond_then_the_whole_answer(chat: ChatApp) -> None:
    # First, before any work: the question, a "searching" bubble, Ask disabled, Stop shown; the
    # box is left alone (the page script emptied it), the question kept as pending in the browser.
    messages, box, ask, stop, asking, pending, status, hint = chat.take_question(QUESTION, new_conversation(), "", "", "")
    assert [m["content"] for m in messages] == [render.question_html(QUESTION), render.SEARCHING_HTML]
    assert box == SKIP and ask.interactive is False and stop.visible is True and asking == pending == QUESTION
    # The extractive answer exists all at once: one update, the whole verified answer; it leaves
    # the box alone (the user may be typing the next question), enables Ask again, hides Stop.
    steps = run(chat, asking, new_conversation())
    assert len(steps) == 1
    messages, conversation, box, ask, stop, asking, pending, status = steps[-1]
    assert box == SKIP and ask.interactive is True and stop.visible is False and asking == pending == ""
    assert len(conversation["turns"]) == 1 and len(messages) == 2
    record = conversation["turns"][0]["answer"]
    assert record["short_answer"] == "90%" and 'href="#cite-0-1"' in messages[1]["content"]
    assert "<strong>90%</strong>" in messages[1]["content"] and '<mark class="rag-span">90%</mark>' in messages[1]["content"]
    assert "nearest" not in conversation["turns"][0]
    follow = run(chat, FOLLOW_UP, conversation)[-1][1]
    assert len(follow["turns"]) == 2 and len(conversation["turns"]) == 1  # the old state is not mutated
    assert "microelectronics" in follow["turns"][1]["answer"]["standalone_question"]


def test_take_question_sends_nothing_while_an_answer_is_coming_or_for_a_blank_box(chat: ChatApp) -> None:
    waiting = chat.take_question(FOLLOW_UP, new_conversation(), QUESTION, "", "")
    assert waiting[:6] == (SKIP,) * 6 and "Still answering" in waiting[6] and waiting[7] == SKIP
    assert chat.take_question("  \n ", new_conversation(), "", "", "") == (SKIP,) * 8


@pytest.mark.parametrize(
    ("date_from", "date_to", "message"),
    [("last year", "", "Published from: “last year” is not a date. Write it as YYYY-MM-DD, e.g. 2024-04-13."),
     ("", "2024-02-30", "Published until: “2024-02-30” is not a date"),
     ("2024-05-01", "2024-04-01", "“Published from” (2024-05-01) is after “Published until” (2024-04-01).")],
)
def test_a_wrong_date_is_named_by_its_field_and_nothing_is_sent(chat: ChatApp, date_from: str, date_to: str, message: str) -> None:
    chat_out, box, ask, stop, asking, pending, status, hint = chat.take_question(QUESTION, new_conversation(), "", date_from, date_to)
    assert (chat_out, ask, stop, asking, pending) == (SKIP,) * 5 and box == QUESTION  # back in the box
    assert message in hint and "Not sent" in status and "date_from" not in status + hint
    assert message in chat.check_dates(date_from, date_to) and chat.check_dates("2024-01-01", "") == feedback.date_hint_html(None)


def test_an_over_long_question_is_not_sent_and_the_status_says_the_limit(chat: ChatApp) -> None:
    limit = chat.settings.answer.max_question_chars
    out = chat.take_question("x" * (limit + 1), new_conversation(), "", "", "")
    assert out[:6] == (SKIP,) * 6 and f"{limit + 1:,} characters long; the limit is {limit:,}" in out[6]


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"date_from": "yesterday"}, "date_from"), ({"answerer": "openai"}, "openai answerer")],
)
def test_respond_shows_one_line_errors_and_keeps_the_conversation(chat: ChatApp, settings: dict, message: str) -> None:
    conversation = new_conversation()
    args = {"top_k": 5, "answerer": "extractive", "sources": [], "date_from": "", "date_to": ""} | settings
    steps = list(chat.respond(QUESTION, conversation, **args))
    assert conversation == new_conversation()
    # The error is one line in the status; the chat as it was, the question back in the box, Ask enabled.
    messages, kept, box, ask, stop, asking, pending, status = steps[-1]
    assert message in status and status.count("\n") == 0 and 'role="alert"' in status
    assert messages == [] and kept == new_conversation() and box["value"] == QUESTION and ask.interactive is True
    assert stop.visible is False and asking == pending == ""


def test_empty_question_changes_nothing(chat: ChatApp) -> None:
    assert run(chat, "   ", new_conversation()) == [(SKIP,) * 8]


class SlowWriter:
    """An answerer that streams like an LLM: sentences, then the draft (the extractive one's)."""

    name = "extractive"

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def answer(self, question: str, hits: list, query_vector: object) -> object:
        return self.inner.answer(question, hits, query_vector)  # type: ignore[attr-defined]

    def stream(self, question: str, hits: list, query_vector: object) -> Iterator[object]:
        draft = self.answer(question, hits, query_vector)
        words = draft.answer.split(" ")  # type: ignore[attr-defined]
        yield " ".join(words[: len(words) // 2])
        yield draft


def test_respond_streams_an_answerer_that_streams(chat: ChatApp) -> None:
    streaming = ChatApp(Assistant(chat.base.index, answerer=SlowWriter(chat.base.extractive)), chat.settings)
    steps = run(streaming, QUESTION, new_conversation())
    assert len(steps) == 2 and "rag-streaming" in steps[0][0][-1]["content"] and steps[0][2] == SKIP
    assert steps[-1][1]["turns"][0]["answer"]["short_answer"] == "90%"


def test_a_refusal_keeps_the_passages_it_searched_and_each_opens_in_its_document(chat: ChatApp) -> None:
    steps = run(chat, "How many penguins live on the moon?", new_conversation())
    conversation = steps[-1][1]
    turn = conversation["turns"][0]
    assert turn["answer"]["refused"] and len(turn["nearest"]) == len(turn["answer"]["retrieved"]) == 5
    for n, passage in enumerate(turn["nearest"], 1):
        assert passage["id"] == n
        assert chat.base.document_text(passage["source"])[passage["start"] : passage["end"]] == passage["quote"]
    assert 'href="#cite-0-r1"' in steps[-1][0][1]["content"]
    panel = chat.show_source("0-r2", conversation)
    assert 'data-key="0-r2"' in panel and "nearest passage 2 for question 1, not cited" in panel
    assert chat.show_source("0-r9", conversation) == render.EMPTY_SOURCE_HTML


def test_show_source_resolves_keys_in_the_given_conversation_only(chat: ChatApp) -> None:
    conversation = run(chat, QUESTION, new_conversation())[-1][1]
    panel = chat.show_source("0-1", conversation)
    assert '<mark class="cite-mark" id="cite-mark" data-key="0-1">' in panel and "90%" in panel
    assert '<mark class="rag-span">90%</mark>' in panel
    assert chat.show_source("0-1", new_conversation()) == render.EMPTY_SOURCE_HTML
    assert chat.show_source("<script>", conversation) == render.EMPTY_SOURCE_HTML


def test_add_files_reports_each_file(chat: ChatApp, tmp_path: Path) -> None:
    small = tmp_path / "tiny note.md"
    small.write_text("date: 2024-06-01\n\nThe Orvik ferry carries 212 passengers.\n", encoding="utf-8")
    big = tmp_path / "big.txt"
    big.write_text("word " * 400, encoding="utf-8")  # over the 0.001 MB (1,000 byte) limit of this app
    html_out, cleared = chat.add_files([str(small), str(big)], progress=None)  # type: ignore[arg-type]
    assert "tiny note.md</td><td class=\"rag-status\">added" in html_out
    assert "big.txt</td><td class=\"rag-status\">refused" in html_out and "upload limit" in html_out
    rows, summary, _choices = chat.corpus_outputs()
    assert any(r[2] == "tiny note.md" for r in rows) and "2 documents" in summary and cleared is None
    assert not (chat.settings.corpus_dir / "big.txt").exists()
    again = chat.add_files([str(small)], progress=None)[0]  # type: ignore[arg-type]
    assert "unchanged" in again


def test_build_app_has_the_ask_endpoint(chat: ChatApp) -> None:
    blocks = build_app(chat.base, chat.settings)
    assert "/ask" in [f"/{d.api_name}" for d in blocks.fns.values() if d.api_visibility == "public"]


def test_settings_panel_values_become_filters() -> None:
    assert make_filters([], "", " ") is None
    f = make_filters(["a.txt"], "2024-01-01", "")
    assert f is not None and f.sources == ("a.txt",) and f.date_from == "2024-01-01" and f.date_to is None
    with pytest.raises(QueryError):
        make_filters([], "April", "")
    conv = {"turns": [{"question": "q", "answer": {"answer": "x [1]", "citations": []}}]}
    assert history_of(conv) == [{"question": "q", "answer": "x [1]"}]


def test_restore_brings_back_the_kept_conversation_and_an_unanswered_question(chat: ChatApp) -> None:
    conversation = run(chat, QUESTION, new_conversation())[-1][1]
    messages, kept, box, pending, status = chat.restore(conversation, "")
    assert kept == conversation and len(messages) == 2 and box == SKIP and pending == ""
    messages, kept, box, pending, status = chat.restore(conversation, FOLLOW_UP)
    assert box == FOLLOW_UP and pending == "" and "press Enter to ask it again" in status
    # A stored conversation that no longer reads starts over instead of half-rendering.
    messages, kept, box, pending, status = chat.restore({"turns": [{"question": "q", "answer": {"bad": 1}}]}, "")
    assert messages == [] and kept == new_conversation()


def test_stop_puts_the_question_back_and_the_answer_computed_meanwhile_is_dropped(chat: ChatApp) -> None:
    session = SimpleNamespace(session_hash="s1")
    out = chat.stop(new_conversation(), QUESTION, "", session)  # type: ignore[arg-type]
    messages, box, ask, stop, asking, pending, status = out
    assert messages == [] and box == QUESTION and ask.interactive is True and stop.visible is False
    assert asking == pending == "" and "Stopped" in status
    args = {"top_k": 5, "answerer": "extractive", "sources": [], "date_from": "", "date_to": ""}
    assert list(chat.respond(QUESTION, new_conversation(), **args, request=session)) == []  # type: ignore[arg-type]
    # Another session, or the next question of this one, is answered as usual.
    assert len(list(chat.respond(QUESTION, new_conversation(), **args, request=session))[-1][1]["turns"]) == 1  # type: ignore[arg-type]
    assert chat.stop(new_conversation(), QUESTION, "typing the next one", session)[1] == SKIP  # type: ignore[arg-type]


def test_a_question_not_in_english_gets_the_note_and_an_english_one_does_not() -> None:
    assert feedback.language_note("Wie viel Prozent der Mikroelektronik kam aus China?") == (
        "Only English is supported: questions in other languages are usually refused. Ask in English.")
    for english in (QUESTION, FOLLOW_UP, "When did Talvik open?", "Who is Ilse Moravec?", "90%?"):
        assert feedback.language_note(english) is None, english


def test_a_second_answer_step_for_the_same_turn_of_a_session_changes_nothing(chat: ChatApp) -> None:
    session = SimpleNamespace(session_hash="s2")
    args = {"top_k": 5, "answerer": "extractive", "sources": [], "date_from": "", "date_to": ""}
    first = list(chat.respond(QUESTION, new_conversation(), **args, request=session))  # type: ignore[arg-type]
    assert len(first[-1][1]["turns"]) == 1
    assert list(chat.respond(QUESTION, new_conversation(), **args, request=session)) == [(SKIP,) * 8]  # type: ignore[arg-type]
    again = list(chat.respond(QUESTION, first[-1][1], **args, request=session))  # type: ignore[arg-type]
    assert len(again[-1][1]["turns"]) == 2  # the same question asked again later is answered


def test_a_refusals_nearest_passages_read_from_a_sentence_start(chat: ChatApp) -> None:
    # The seed article has chunks that open mid-sentence ("in kyiv. One of the most…").
    for question in ("What is the capital of Peru?", "How many penguins live on the moon?"):
        turn = run(chat, question, new_conversation())[-1][1]["turns"][0]
        assert turn["answer"]["refused"]
        for passage in turn["nearest"]:
            text = chat.base.document_text(passage["source"])
            assert text[passage["start"] : passage["end"]] == passage["quote"]
            at_line_start = passage["start"] == 0 or text[passage["start"] - 1] == "\n"
            assert at_line_start or not passage["quote"][:1].islower(), passage["quote"][:60]
