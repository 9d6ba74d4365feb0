"""What a user meets around the answers, in a real headless Chromium: a wrong date pointed out at
its field, keystrokes never lost, a stop control, the conversation kept across reloads, a visible
length limit, clean upload errors, indexing that does not cover the page, a note for questions
not in English, labelled controls, and the highlight in view on a phone (issue 26).

The fixtures and helpers are the ones of ``test_ui_browser``; this module has its own app.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_ui_browser import (  # noqa: F401  (fixtures: app, browser, open_page, slow_app)
    SLOW_S,
    Page,
    app,
    ask,
    ask_button,
    browser,
    expect,
    open_citation,
    open_page,
    slow_app,
)
from tests.ui_helpers import FOLLOW_UP, QUESTION, RunningApp

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

ANSWERS = "#rag-chat .rag-answer:not(.rag-streaming)"
BOX = "#rag-question textarea"


def open_slow(browser: object, slow_app: RunningApp, width: int = 1440, height: int = 900) -> Page:  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": height})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(slow_app.url)
    expect(page.locator(BOX)).to_be_visible()
    return page


def test_a_wrong_date_is_pointed_out_at_its_field_and_the_chat_stays(open_page: Callable[[], Page]) -> None:  # noqa: F811
    page = open_page()
    first = ask(page, QUESTION)
    page.locator("#rag-settings").get_by_text("Settings").click()
    field = page.locator("#rag-settings").get_by_label("Published from")
    field.fill("last year")
    field.blur()
    hint = page.locator("#rag-date-hint")
    expect(hint).to_contain_text("“last year” is not a date")
    expect(hint).to_contain_text("YYYY-MM-DD")

    box = page.locator(BOX)
    box.fill(FOLLOW_UP)
    box.press("Enter")
    expect(page.locator("#rag-status")).to_contain_text("Not sent")
    expect(box).to_have_value(FOLLOW_UP)  # kept for after the fix
    expect(first).to_be_visible()  # the earlier turn is still there
    expect(page.locator("#rag-chat .rag-question")).to_have_count(1)
    assert "date_from" not in page.locator("body").inner_text()  # no internal field name
    expect(page.locator("#rag-chat .error, #rag-chat .rag-error")).to_have_count(0)

    field.fill("2024-01-01")
    field.blur()
    expect(hint).not_to_contain_text("not a date")
    box.press("Enter")
    expect(page.locator(ANSWERS)).to_have_count(2)


def test_what_is_typed_right_after_enter_is_kept(open_page: Callable[[], Page]) -> None:  # noqa: F811
    page = open_page()
    box = page.locator(BOX)
    box.fill(QUESTION)
    box.press("Enter")
    page.keyboard.insert_text(FOLLOW_UP)  # the next question, within milliseconds
    expect(page.locator(ANSWERS)).to_have_count(1)
    page.wait_for_timeout(500)  # time for any late update to the box
    expect(box).to_have_value(FOLLOW_UP)
    expect(page.locator("#rag-chat .rag-question")).to_have_count(1)


def test_while_answering_enter_says_why_it_waits_and_stop_ends_the_answer(browser: object, slow_app: RunningApp) -> None:  # noqa: F811
    page = open_slow(browser, slow_app)
    try:
        box = page.locator(BOX)
        box.fill(QUESTION)
        box.press("Enter")
        expect(page.locator("#rag-chat .rag-searching")).to_be_visible()
        stop = page.locator("#rag-stop")
        expect(stop).to_be_visible()
        box.fill(FOLLOW_UP)
        box.press("Enter")
        expect(page.locator("#rag-status")).to_contain_text("Still answering")
        expect(box).to_have_value(FOLLOW_UP)
        expect(page.locator(ANSWERS)).to_have_count(1)  # the first answer comes; the follow-up waits
        expect(stop).to_be_hidden()

        box.fill("")
        box.fill("How much nitrocellulose came from China?")
        box.press("Enter")
        expect(stop).to_be_visible()
        stop.click()
        expect(page.locator("#rag-status")).to_contain_text("Stopped")
        expect(box).to_have_value("How much nitrocellulose came from China?")  # back in the box
        expect(ask_button(page)).to_be_enabled()
        page.wait_for_timeout(SLOW_S * 1000 + 500)  # the stopped answer would have arrived by now
        expect(page.locator(ANSWERS)).to_have_count(1)
        expect(page.locator("#rag-chat .rag-question")).to_have_count(1)
    finally:
        page.context.close()


def test_the_conversation_survives_a_reload_until_new_conversation(open_page: Callable[[], Page]) -> None:  # noqa: F811
    page = open_page()
    answer = ask(page, QUESTION)
    shown = answer.locator(".rag-text").text_content()
    page.reload()
    expect(page.locator(ANSWERS)).to_have_count(1)
    expect(page.locator(ANSWERS).first.locator(".rag-text")).to_have_text(shown or "")
    mark = open_citation(page, page.locator("#rag-chat .rag-text a.cite").first)  # still opens its passage
    expect(mark).to_contain_text("90%")
    follow = ask(page, FOLLOW_UP)  # and a follow-up is read against the kept history
    expect(follow.locator(".rag-standalone")).to_contain_text("microelectronics")

    page.locator("#rag-new").click()
    expect(page.locator(ANSWERS)).to_have_count(0)
    page.wait_for_timeout(300)
    page.reload()
    expect(page.locator(BOX)).to_be_visible()
    page.wait_for_timeout(1000)
    expect(page.locator("#rag-chat .rag-question")).to_have_count(0)


def test_a_question_left_by_a_reload_while_answering_comes_back(browser: object, slow_app: RunningApp) -> None:  # noqa: F811
    page = open_slow(browser, slow_app)
    try:
        box = page.locator(BOX)
        box.fill(QUESTION)
        box.press("Enter")
        expect(page.locator("#rag-chat .rag-searching")).to_be_visible()
        page.wait_for_timeout(200)
        page.reload()
        expect(page.locator(BOX)).to_have_value(QUESTION)
        expect(page.locator("#rag-status")).to_contain_text("press Enter to ask it again")
    finally:
        page.context.close()


def test_a_long_paste_is_kept_counted_and_not_sent(open_page: Callable[[], Page], app: RunningApp) -> None:  # noqa: F811
    page = open_page()
    limit = app.settings.answer.max_question_chars
    counter = page.locator("#rag-counter .rag-counter")
    expect(counter).to_contain_text(f"/ {limit:,}")
    box = page.locator(BOX)
    pasted = ("How large was the share of microelectronics from China? " * 400)[:20_000]
    box.fill(pasted)
    assert len(box.input_value()) == 20_000  # nothing cut silently
    expect(counter).to_contain_text("20,000")
    expect(counter).to_have_class("rag-counter rag-over")
    box.press("Enter")
    expect(page.locator("#rag-status")).to_contain_text(f"the limit is {limit:,}")
    page.wait_for_timeout(500)
    expect(page.locator("#rag-chat .rag-question")).to_have_count(0)
    assert len(box.input_value()) == 20_000
    box.fill(QUESTION)
    expect(counter).to_contain_text(f"{len(QUESTION)} / {limit:,}")
    expect(counter).not_to_have_class("rag-counter rag-over")


def test_a_mixed_upload_names_the_refused_file_and_titles_come_from_the_first_line(
    open_page: Callable[[], Page], app: RunningApp, tmp_path: Path  # noqa: F811
) -> None:
    page = open_page()
    note = tmp_path / "harbor-note.txt"
    note.write_text("Harbor operations note\n\nThe north crane at pier 4 was repaired in March 2024 and is back "
                    "in service.\n", encoding="utf-8")
    table = tmp_path / "cranes.csv"
    table.write_text("crane,pier\nnorth,4\n", encoding="utf-8")
    page.get_by_role("tab", name="Documents").click()
    page.locator("#rag-upload input[type=file]").set_input_files([str(note), str(table)])
    upload = page.locator("#rag-upload")
    expect(upload).to_contain_text("harbor-note")  # both files listed, no bare "Error"
    expect(upload).to_contain_text("cranes")
    expect(upload.get_by_text("Error", exact=True)).to_have_count(0)
    page.locator("#rag-add").click()
    results = page.locator("#rag-upload-results")
    expect(results.locator("tr", has_text="harbor-note.txt")).to_contain_text("added")
    expect(results.locator("tr", has_text="cranes.csv")).to_contain_text("unsupported file type .csv")
    expect(page.locator(".toast-body")).to_have_count(0)  # no pop-up, let alone two
    expect(page.locator("#rag-documents")).to_contain_text("Harbor operations note")
    assert not (app.corpus_dir / "cranes.csv").exists()


def test_indexing_shows_progress_without_covering_the_table_or_header(
    open_page: Callable[[], Page], tmp_path: Path  # noqa: F811
) -> None:
    page = open_page()
    files = []
    for n in range(3):
        f = tmp_path / f"ledger-{n}.txt"
        f.write_text(f"Pier ledger {n}\n\n" + "The ledger lists every crane repair at the pier in 2023. " * 200,
                     encoding="utf-8")
        files.append(str(f))
    page.get_by_role("tab", name="Documents").click()
    page.locator("#rag-upload input[type=file]").set_input_files(files)
    # Record any of Gradio's progress overlays (bar, text, level) shown over the table or the header.
    page.evaluate(
        """() => { window.__covered = [];
        new MutationObserver(() => { for (const id of ['rag-documents', 'rag-summary', 'rag-chat']) {
            const el = document.getElementById(id); if (!el) continue;
            for (const o of el.querySelectorAll(':is(.progress-text, .eta-bar, .progress-level):not(.hide *)')) {
                const r = o.getBoundingClientRect();
                if (r.width > 0 && r.height > 0 && !window.__covered.includes(id)) window.__covered.push(id); } } })
        .observe(document.body, {subtree: true, childList: true, attributes: true}); }"""
    )
    page.locator("#rag-add").click()
    expect(page.locator("#rag-upload-results tr", has_text="ledger-2.txt")).to_contain_text("added")
    expect(page.locator("#rag-documents")).to_contain_text("Pier ledger 2")
    assert page.evaluate("window.__covered") == []


def test_a_question_not_in_english_gets_a_one_line_note(open_page: Callable[[], Page]) -> None:  # noqa: F811
    page = open_page()
    ask(page, "Wie viel Prozent der Mikroelektronik kam aus China?")
    expect(page.locator("#rag-chat .rag-note")).to_have_text(
        "Only English is supported: questions in other languages are usually refused. Ask in English.")
    ask(page, QUESTION)
    expect(page.locator("#rag-chat .rag-note")).to_have_count(1)  # an English question gets none


def test_controls_have_names_of_their_own(open_page: Callable[[], Page]) -> None:  # noqa: F811
    page = open_page()
    expect(page.get_by_role("textbox", name="Your question")).to_be_visible()
    answer = ask(page, QUESTION)
    marker = answer.locator(".rag-text a.cite").first
    name = marker.get_attribute("aria-label") or ""
    assert name.startswith("source 1 of answer 1"), name
    expect(page.get_by_role("link", name="source 1 of answer 1: show it in its document").first).to_be_visible()


def test_on_a_phone_the_highlight_is_scrolled_into_the_middle_of_the_screen(open_page: Callable[..., Page]) -> None:  # noqa: F811
    page = open_page(width=390, height=844)
    answer = ask(page, QUESTION, key="Enter")
    mark = open_citation(page, answer.locator(".rag-text a.cite").first)
    page.wait_for_timeout(600)  # smooth scrolling, if any, has settled
    box = mark.bounding_box()
    assert box is not None
    assert box["y"] >= 0 and box["y"] + min(box["height"], 60) <= 844 * 0.8, box
