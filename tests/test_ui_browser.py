"""The chat UI in a real headless Chromium (Debian ``/usr/bin/chromium`` driven by playwright).

One app per module on a free 127.0.0.1 port, over a private copy of the seed index and corpus;
a fresh browser context (a separate session) per test. Each test leaves a screenshot in
``artifacts/ui/<test>.png``, taken at teardown, failures included.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.ui_helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, FOLLOW_UP, QUESTION, RunningApp, running_app

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
Page = sync_api.Page
expect = sync_api.expect
# Answers share two cores with whatever else runs: wait up to 20 s for what must appear.
expect.set_options(timeout=20_000)

ARTICLE_NAME = "Harbour report (2024).md"
ARTICLE = """date: 2024-05-02

# Port of Talvik opens a second container terminal

The Port of Talvik opened a second container terminal in May 2024.
The new terminal raised the port's annual capacity to 1.8 million containers, harbour master Ilse Moravec said.
Dredging of the approach channel took eleven months and cost 240 million euros.
"""
PAYLOAD = """Glacier survey notes <script>window.__pwned = 'script'</script>

The Velloran glacier retreated 41 metres in 2022 <img src=x onerror="window.__pwned = 'img'"> according to the survey team.

Template text ${window.__pwned = 'template'} and <b onmouseover="window.__pwned='hover'">bold</b> and [a link](javascript:window.__pwned='link').
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, seed_index_dir: Path, embedder: object) -> Iterator[RunningApp]:
    yield from running_app(tmp_path_factory.mktemp("ui-browser"), seed_index_dir, embedder)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def open_page(browser: object, app: RunningApp, request: pytest.FixtureRequest) -> Iterator[Callable[[], Page]]:
    """Open the app in a new browser context (a new session); screenshots each page at teardown."""
    pages: list[Page] = []
    contexts = []

    def opener(width: int = 1440, height: int = 900, color_scheme: str = "light") -> Page:
        context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=color_scheme)  # type: ignore[attr-defined]
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(app.url)
        expect(page.locator("#rag-question textarea")).to_be_visible()
        pages.append(page)
        return page

    yield opener
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for i, page in enumerate(pages):
        page.mouse.move(0, 0)  # no hover styles in the picture
        suffix = "" if i == 0 else f"-{i + 1}"
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}{suffix}.png"))
    for context in contexts:
        context.close()


def ask(page: Page, question: str, key: str | None = None) -> sync_api.Locator:
    """Ask through the chat box (the Ask button, or pressing ``key``); return the new, final answer."""
    answers = page.locator("#rag-chat .rag-answer:not(.rag-streaming)")
    before = answers.count()
    box = page.locator("#rag-question textarea")
    box.fill(question)
    if key is None:
        page.locator("#rag-ask").click()
    else:
        box.press(key)
    expect(answers).to_have_count(before + 1)
    return answers.nth(before)


def ask_button(page: Page) -> sync_api.Locator:
    return page.locator("button#rag-ask, #rag-ask button").first


def watch_updates(page: Page) -> None:
    """Record each distinct streaming state of the answer and whether Ask was ever disabled."""
    page.evaluate(
        """() => { window.__partials = []; window.__askDisabled = false;
        new MutationObserver(() => {
            const s = document.querySelector('#rag-chat .rag-streaming');
            if (s && !window.__partials.includes(s.textContent)) window.__partials.push(s.textContent);
            const holder = document.querySelector('#rag-ask');
            const b = holder && (holder.tagName === 'BUTTON' ? holder : holder.querySelector('button'));
            if (b && b.disabled) window.__askDisabled = true;
        }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true}); }"""
    )


def open_citation(page: Page, link: sync_api.Locator) -> sync_api.Locator:
    """Click a citation link and return the source panel's mark once it shows that citation."""
    key = link.get_attribute("href").removeprefix("#cite-")
    link.click()
    mark = page.locator(f'#rag-source-panel mark.cite-mark[data-key="{key}"]')
    expect(mark).to_be_visible()
    return mark


def mark_in_view(page: Page) -> bool:
    """Whether the mark lies inside both its scroll box and the window (it was scrolled to)."""
    return page.evaluate(
        """() => {
        const mark = document.querySelector('#rag-source-panel mark.cite-mark');
        const box = mark.closest('.rag-source-text').getBoundingClientRect();
        const r = mark.getBoundingClientRect();
        return r.height > 0 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1
            && r.top >= 0 && r.bottom <= window.innerHeight;
    }"""
    )


def test_answer_shows_at_once_and_its_citation_highlights_the_passage(open_page: Callable[[], Page], app: RunningApp) -> None:
    page = open_page()
    watch_updates(page)
    answer = ask(page, QUESTION)
    expect(answer.locator(".rag-text")).to_contain_text("90%")
    # The question was shown with a "searching" bubble before the answer came.
    assert any("Searching" in p for p in page.evaluate("window.__partials")), page.evaluate("window.__partials")
    expect(answer.locator(".rag-searched")).to_have_count(0)  # not a follow-up: nothing rewritten
    expect(answer.locator(".rag-sources li")).not_to_have_count(0)

    # The source list under the answer opens the passage; so does the [1] in the text.
    mark = open_citation(page, answer.locator(".rag-sources .rag-source-item a.cite").first)  # [1]'s title
    expect(mark).to_contain_text("90%")
    page.locator("#rag-source-panel .rag-source-text").evaluate("box => { box.scrollTop = 0; }")
    mark = open_citation(page, answer.locator(".rag-text a.cite", has_text="[1]").first)
    expect(mark).to_contain_text("90%")
    assert mark_in_view(page)
    expected = app.assistant.ask(QUESTION).citations[0]
    text = app.assistant.document_text(expected.source)
    assert mark.inner_text() == text[expected.start : expected.end] == expected.quote
    # The short answer inside the highlighted sentence is marked again, at its place.
    span = mark.locator("mark.rag-span")
    expect(span).to_have_text("90%")
    before_span = mark.evaluate("m => { const r = document.createRange(); r.setStart(m, 0);"
                                " r.setEndBefore(m.querySelector('mark.rag-span')); return r.toString(); }")
    assert expected.quote.startswith(before_span + "90%")
    panel = page.locator("#rag-source-panel")
    for shown in ("2024-04-13", expected.source, f"{expected.start:,}–{expected.end:,}", "China is helping Russia"):
        expect(panel).to_contain_text(shown)


def test_follow_up_shows_standalone_question_and_old_citations_stay_clickable(
    open_page: Callable[[], Page], app: RunningApp
) -> None:
    page = open_page()
    first = ask(page, QUESTION)
    second = ask(page, FOLLOW_UP)
    expected = app.assistant.ask(FOLLOW_UP, history=[{"question": QUESTION, "answer": app.assistant.ask(QUESTION).answer}])
    assert expected.standalone_question != FOLLOW_UP
    expect(second.locator(".rag-standalone")).to_have_text(expected.standalone_question)

    later = open_citation(page, second.locator(".rag-text a.cite").first)
    assert later.get_attribute("data-key").startswith("1-")
    earlier = open_citation(page, first.locator(".rag-text a.cite").first)  # the older answer's [1]
    expect(earlier).to_contain_text("90%")
    expect(page.locator("#rag-source-panel")).to_contain_text("in answer 1")

    page.locator("#rag-new").click()
    expect(page.locator("#rag-chat .rag-answer")).to_have_count(0)
    expect(page.locator("#rag-source-panel mark")).to_have_count(0)
    fresh = ask(page, FOLLOW_UP)  # no history any more: nothing to rewrite it with
    expect(fresh.locator(".rag-searched")).to_have_count(0)


def test_uploaded_article_is_indexed_and_cited(open_page: Callable[[], Page], app: RunningApp, tmp_path: Path) -> None:
    page = open_page()
    article = tmp_path / ARTICLE_NAME
    article.write_text(ARTICLE, encoding="utf-8")
    unsupported = tmp_path / "tool.exe"
    unsupported.write_bytes(b"MZ not a document")
    page.get_by_role("tab", name="Documents").click()
    page.locator("#rag-upload input[type=file]").set_input_files([str(article), str(unsupported)])
    page.locator("#rag-add").click()
    results = page.locator("#rag-upload-results")
    expect(results.locator("tr", has_text=ARTICLE_NAME)).to_contain_text("added")
    # A type outside the list is refused on its own line, naming the file; the rest is indexed.
    expect(results.locator("tr", has_text="tool.exe")).to_contain_text("unsupported file type .exe")
    expect(page.locator("#rag-documents")).to_contain_text("Port of Talvik opens a second container terminal")
    saved = "Harbour report _2024_.md"
    assert (app.corpus_dir / saved).read_text(encoding="utf-8") == ARTICLE
    assert not (app.corpus_dir / "tool.exe").exists()

    page.get_by_role("tab", name="Chat").click()
    answer = ask(page, "How much did dredging the approach channel to Talvik cost?")
    expect(answer.locator(".rag-text")).to_contain_text("240 million euros")
    expect(answer.locator(".rag-sources")).to_contain_text(saved)
    mark = open_citation(page, answer.locator(".rag-text a.cite").first)
    expect(mark).to_contain_text("240 million euros")
    expect(page.locator("#rag-source-panel")).to_contain_text("2024-05-02")


def test_markup_in_documents_and_questions_is_shown_as_text_and_never_runs(
    open_page: Callable[[], Page], app: RunningApp, tmp_path: Path
) -> None:
    page = open_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    payload = tmp_path / "payload.txt"
    payload.write_text(PAYLOAD, encoding="utf-8")
    page.get_by_role("tab", name="Documents").click()
    page.locator("#rag-upload input[type=file]").set_input_files([str(payload)])
    page.locator("#rag-add").click()
    expect(page.locator("#rag-upload-results tr", has_text="payload.txt")).to_contain_text("added")
    expect(page.locator("#rag-documents")).to_contain_text("<script>window.__pwned = 'script'</script>")

    page.get_by_role("tab", name="Chat").click()
    answer = ask(page, "How far did the Velloran glacier retreat?")
    expect(answer.locator(".rag-text")).to_contain_text('<img src=x onerror="window.__pwned = \'img\'">')
    expect(answer.locator(".rag-sources")).to_contain_text("<script>")
    open_citation(page, answer.locator(".rag-text a.cite").first)
    panel = page.locator("#rag-source-panel")
    expect(panel).to_contain_text("${window.__pwned = 'template'}")
    expect(panel).to_contain_text("[a link](javascript:")
    ask(page, "Was it <img src=x onerror=\"window.__pwned='question'\"> 41 metres?")
    expect(page.locator("#rag-chat .rag-question").last).to_contain_text("<img src=x onerror=")

    page.wait_for_timeout(300)  # time for any onerror handler to have fired
    assert page.evaluate("window.__pwned") is None
    for selector in ('img[src="x"]', "#rag-chat script", "#rag-source-panel script", "[onerror]", "[onmouseover]"):
        assert page.locator(selector).count() == 0, selector
    assert page.locator('a[href^="javascript:"]').count() == 0
    assert not errors, errors


def test_two_sessions_keep_separate_histories(open_page: Callable[[], Page]) -> None:
    alice, bob = open_page(), open_page()
    ask(alice, QUESTION)
    bob_answer = ask(bob, "What did Russia use the nitrocellulose from China for?")
    expect(bob_answer).to_be_visible()
    expect(alice.locator("#rag-chat .rag-question")).to_have_count(1)
    expect(bob.locator("#rag-chat .rag-question")).to_have_count(1)
    expect(alice.locator("#rag-chat")).not_to_contain_text("nitrocellulose from China for")
    expect(bob.locator("#rag-chat")).not_to_contain_text(QUESTION)
    # Bob's follow-up is read against Bob's history, not Alice's.
    follow = ask(bob, FOLLOW_UP)
    expect(follow.locator(".rag-standalone")).not_to_contain_text("microelectronics")
    # Each session's citation keys resolve in its own conversation.
    mark = open_citation(alice, alice.locator("#rag-chat .rag-text a.cite").first)
    expect(mark).to_contain_text("90%")
    expect(alice.locator("#rag-chat .rag-question")).to_have_count(1)



def test_enter_sends_and_shift_enter_adds_a_newline(open_page: Callable[[], Page]) -> None:
    page = open_page()
    watch_updates(page)
    box = page.locator("#rag-question textarea")
    box.click()
    page.keyboard.type("What share of microelectronics")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("came from China?")
    expect(box).to_have_value("What share of microelectronics\ncame from China?")
    page.wait_for_timeout(300)  # time for a (wrong) submit to reach the chat
    expect(page.locator("#rag-chat .rag-question")).to_have_count(0)

    page.keyboard.press("Enter")
    expect(page.locator("#rag-chat .rag-question")).to_have_count(1)
    expect(box).to_have_value("")
    answer = page.locator("#rag-chat .rag-answer:not(.rag-streaming)")
    expect(answer).to_have_count(1)
    expect(answer.locator(".rag-short strong")).to_have_text("90%")  # the short answer leads, in bold
    expect(answer.locator(".rag-text mark.rag-span")).to_have_text("90%")  # and is marked in its sentence
    assert page.evaluate("document.activeElement === document.querySelector('#rag-question textarea')")
    assert page.evaluate("window.__askDisabled"), "Ask stayed enabled while the answer was coming"
    expect(ask_button(page)).to_be_enabled()

    # The next question can be typed and sent straight away; Ask also leaves the cursor in the box.
    ask(page, FOLLOW_UP, key="Enter")
    ask(page, QUESTION)
    expect(page.locator("#rag-chat .rag-question")).to_have_count(3)
    expect(box).to_be_focused()


def test_enter_pressed_again_while_answering_asks_nothing_twice(open_page: Callable[[], Page]) -> None:
    page = open_page()
    box = page.locator("#rag-question textarea")
    box.fill(QUESTION)
    for _ in range(3):  # impatient: the first press sends, the others find the box cleared or an answer coming
        box.press("Enter")
    box.type(FOLLOW_UP)  # typed while the answer is coming: kept, and sent only when asked
    for _ in range(2):
        box.press("Enter")
    expect(page.locator("#rag-chat .rag-answer:not(.rag-streaming)").first).to_be_visible()
    page.wait_for_timeout(1500)  # time for any duplicate answer to arrive
    questions = page.locator("#rag-chat .rag-question")
    answers = page.locator("#rag-chat .rag-answer:not(.rag-streaming)")
    # Either the follow-up came after the answer (sent) or during it (kept in the box).
    assert questions.count() == answers.count() in (1, 2), questions.all_inner_texts()
    assert questions.all_inner_texts()[:1] == [QUESTION]
    if questions.count() == 1:
        expect(box).to_have_value(FOLLOW_UP)
    expect(ask_button(page)).to_be_enabled()


SLOW_S = 3.0


class SlowAnswerer:
    """The extractive answerer, three seconds slower: time to press Enter (or Stop) while an
    answer is coming, even on a loaded machine. It takes the default answerer's name, so that
    the page (whose Answerer setting starts at the default) uses it."""

    name = "reader"

    def __init__(self, assistant: object) -> None:
        self.inner = assistant.extractive  # type: ignore[attr-defined]

    def answer(self, question: str, hits: list, query_vector: object) -> object:
        time.sleep(SLOW_S)
        return self.inner.answer(question, hits, query_vector)


@pytest.fixture(scope="module")
def slow_app(tmp_path_factory: pytest.TempPathFactory, seed_index_dir: Path, embedder: object) -> Iterator[RunningApp]:
    yield from running_app(tmp_path_factory.mktemp("ui-slow"), seed_index_dir, embedder, answerer=SlowAnswerer)  # type: ignore[arg-type]


def test_a_question_sent_while_an_answer_is_coming_waits_in_the_box(browser: object, slow_app: RunningApp) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(slow_app.url)
        box = page.locator("#rag-question textarea")
        questions = page.locator("#rag-chat .rag-question")
        answers = page.locator("#rag-chat .rag-answer:not(.rag-streaming)")
        box.fill(QUESTION)
        box.press("Enter")
        expect(page.locator("#rag-chat .rag-searching")).to_be_visible()
        expect(ask_button(page)).to_be_disabled()
        box.fill(FOLLOW_UP)
        box.press("Enter")
        box.press("Enter")
        expect(answers).to_have_count(1)
        page.wait_for_timeout(SLOW_S * 1000 + 500)  # a second answer to the first question would be here by now
        expect(questions).to_have_count(1)
        expect(answers).to_have_count(1)
        expect(box).to_have_value(FOLLOW_UP)  # kept, not lost
        expect(ask_button(page)).to_be_enabled()
        box.press("Enter")
        expect(answers).to_have_count(2)
        expect(questions.nth(1)).to_have_text(FOLLOW_UP)
        expect(answers.nth(1).locator(".rag-standalone")).to_contain_text("microelectronics")  # read after the first
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for page in context.pages:
            page.screenshot(path=str(ARTIFACTS / "test_a_question_sent_while_an_answer_is_coming_waits_in_the_box.png"))
        context.close()


def test_refusal_lists_the_nearest_passages_and_each_opens_its_document(
    open_page: Callable[[], Page], app: RunningApp
) -> None:
    page = open_page()
    refused = ask(page, "How many penguins live on the moon?", key="Enter")
    expect(refused).to_have_class("rag-answer rag-refused")
    nearest = refused.locator("details.rag-nearest")
    expect(nearest.locator("summary")).to_contain_text("nearest passages searched")
    links = nearest.locator(".rag-source-item a.cite")
    expect(links.first).to_be_hidden()  # collapsed until asked for
    nearest.locator("summary").click()
    expect(links).to_have_count(app.settings.retrieval.top_k)
    expected = app.assistant.ask("How many penguins live on the moon?").retrieved[1]
    mark = open_citation(page, links.nth(1))
    assert mark.get_attribute("data-key") == "0-r2"
    text = app.assistant.document_text(expected.source)
    assert mark.inner_text() == text[expected.start : expected.end]
    assert mark_in_view(page)
    expect(page.locator("#rag-source-panel")).to_contain_text("nearest passage 2 for question 1, not cited")


def test_phone_viewport_stacks_the_source_panel_below_without_horizontal_scroll(open_page: Callable[..., Page]) -> None:
    page = open_page(width=390, height=844)
    answer = ask(page, QUESTION, key="Enter")
    open_citation(page, answer.locator(".rag-text a.cite").first)
    wide = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert wide <= 0, f"the page scrolls {wide}px sideways"
    # Both boxes in one step, in page coordinates: the page may be scrolling to the highlight.
    chat, panel = page.evaluate(
        "['#rag-chat', '#rag-source-panel'].map(s => { const r = document.querySelector(s).getBoundingClientRect();"
        " return {y: r.top + window.scrollY, height: r.height, width: r.width}; })"
    )
    assert panel["y"] >= chat["y"] + chat["height"] and panel["width"] <= 390, (chat, panel)
    # Nothing in the chat column is wider than the screen either.
    assert page.evaluate(
        "[...document.querySelectorAll('#rag-chat *, #rag-source-panel *')]"
        ".every(e => e.getBoundingClientRect().right <= window.innerWidth + 1)"
    )


def test_dark_preference_gives_a_dark_page(open_page: Callable[..., Page]) -> None:
    page = open_page(color_scheme="dark")
    answer = ask(page, QUESTION, key="Enter")
    mark = open_citation(page, answer.locator(".rag-text a.cite").first)
    background = page.evaluate("getComputedStyle(document.querySelector('.gradio-container')).backgroundColor")
    assert page.evaluate("document.querySelector('.dark') !== null"), background
    assert sum(int(v) for v in re.findall(r"\d+", background)[:3]) < 3 * 80, background
    expect(mark.locator("mark.rag-span")).to_have_text("90%")


def test_settings_panel_filters_and_answerer(open_page: Callable[[], Page]) -> None:
    page = open_page()
    page.locator("#rag-settings").get_by_text("Settings").click()
    settings = page.locator("#rag-settings")
    expect(settings.get_by_label("Answerer")).to_have_value("reader")
    settings.get_by_label("Published until").fill("2000-01-01")  # before the only dated document
    refused = ask(page, QUESTION)
    expect(refused).to_have_class("rag-answer rag-refused")
    expect(refused.locator("a.cite")).to_have_count(0)
    expect(refused).to_contain_text("No passage matched the search")
    settings.get_by_label("Published until").fill("")
    answer = ask(page, QUESTION)
    expect(answer.locator(".rag-text")).to_contain_text("90%")
