"""The UI's pure parts without a browser: HTML rendering (text stays text) and upload names."""

from __future__ import annotations

import html
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.domain import DocumentInfo
from rag.records import Answer, Citation
from ui import render
from ui.uploads import UploadRefused, safe_name, save_upload

DOC_TEXT = "Intro.\n\nIn 2023, 90% <b>of</b> imports came from China & co.\n\nOutro <script>x()</script>."
START = DOC_TEXT.index("In 2023")
END = DOC_TEXT.index("co.") + 3
CITATION = Citation(id=1, source="news/a.txt", start=START, end=END, quote=DOC_TEXT[START:END])
DOC = DocumentInfo(
    id="d1", source="news/a.txt", title="<i>Imports</i>", date="2024-04-13", kind="txt",
    sha256="0" * 64, n_chunks=3, n_chars=len(DOC_TEXT),
)
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)"> & "quotes" \'single\' ${x}'


class Tags(HTMLParser):
    """Every start tag and its attributes, and the text content, of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(fragment: str) -> Tags:
    p = Tags()
    p.feed(fragment)
    p.close()
    return p


SAFE_TAGS = {
    "div", "span", "a", "ol", "li", "br", "mark", "dl", "dt", "dd", "table", "thead", "tbody", "tr", "th", "td",
    "strong", "details", "summary",
}
SAFE_ATTRS = {"class", "href", "id", "data-key"}


def assert_only_our_markup(fragment: str) -> None:
    for tag, attrs in parse(fragment).tags:
        assert tag in SAFE_TAGS, (tag, fragment)
        assert set(attrs) <= SAFE_ATTRS, (attrs, fragment)
        href = attrs.get("href")
        assert href is None or re.fullmatch(r"#cite-\d+-r?\d+", href), href


def answer(text: str, citations: list[Citation], question: str = "q?", standalone: str | None = None) -> Answer:
    return Answer(question=question, standalone_question=standalone or question, answer=text, citations=citations)


def test_text_escapes_markup_and_quotes() -> None:
    assert render.text(HOSTILE) == html.escape(HOSTILE, quote=True)
    assert "<" not in render.text(HOSTILE) and '"' not in render.text(HOSTILE)
    assert render.multiline("a<b>\nc") == "a&lt;b&gt;<br>c"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_question_or_answer_text_renders_as_exactly_that_text(value: str) -> None:
    value = value.replace("\r", "")  # the HTML parser normalises CR, the browser too
    for fragment in (render.question_html(value), render.pending_html(value), render.error_html(value)):
        assert_only_our_markup(fragment)
        assert "".join(parse(fragment.replace("<br>", "\n")).text) == value


def test_answer_links_only_markers_of_real_citations() -> None:
    a = answer(f"90% [1]. Also [7] and {HOSTILE} [1]", [CITATION])
    out = render.answer_html(a, 3, {"news/a.txt": "<i>Imports</i>"})
    assert_only_our_markup(out)
    assert out.count('href="#cite-3-1"') == 4  # two markers + the source list's number and title
    assert "[7]" in out and "#cite-3-7" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out and "<script" not in out
    assert "&lt;i&gt;Imports&lt;/i&gt;" in out
    assert f"characters {START}–{END}" in out.replace(",", "")


def test_answer_shows_the_searched_question_only_for_a_rewritten_follow_up() -> None:
    same = render.answer_html(answer("x [1]", [CITATION], "q"), 0, {})
    assert "rag-searched" not in same
    rewritten = render.answer_html(answer("x [1]", [CITATION], "and them?", "What <about> them (China)?"), 1, {})
    assert "Searched for" in rewritten and "What &lt;about&gt; them (China)?" in rewritten


def test_refused_answer_has_no_source_list() -> None:
    out = render.answer_html(Answer(question="q", standalone_question="q", answer="The sources don't say.", refused=True), 0, {})
    assert "rag-refused" in out and "rag-sources" not in out


def test_source_panel_marks_exactly_the_cited_span_and_escapes_the_rest() -> None:
    out = render.source_html(render.SourceView(CITATION, 2, DOC, DOC_TEXT))
    assert_only_our_markup(out)
    p = parse(out)
    assert [t for t, _ in p.tags].count("mark") == 1
    marked = out.split('data-key="2-1">', 1)[1].split("</mark>", 1)[0]
    assert html.unescape(marked) == CITATION.quote
    assert "&lt;script&gt;x()&lt;/script&gt;" in out and "&lt;i&gt;Imports&lt;/i&gt;" in out
    for shown in ("2024-04-13", "news/a.txt", f"{START:,}–{END:,}", "answer 3"):
        assert shown in out


def test_source_panel_window_is_bounded_and_marked_as_cut() -> None:
    long_text = "x" * 10_000 + CITATION.quote + "y" * 10_000
    c = Citation(id=1, source="a", start=10_000, end=10_000 + len(CITATION.quote), quote=CITATION.quote)
    out = render.source_html(render.SourceView(c, 0, None, long_text), context_chars=100)
    assert out.count("x") < 200 and out.count("…") == 2


@pytest.mark.parametrize("body", [None, "a different text now"])
def test_source_panel_falls_back_to_the_quote_when_the_document_changed(body: str | None) -> None:
    out = render.source_html(render.SourceView(CITATION, 0, None, body))
    assert "showing the quoted text" in out
    assert html.unescape(out.split('data-key="0-1">', 1)[1].split("</mark>")[0]) == CITATION.quote


def test_citation_keys_round_trip_and_reject_junk() -> None:
    assert render.parse_cite_key(render.cite_key(12, 3)) == render.CiteKey(12, 3, nearest=False)
    assert render.parse_cite_key(render.cite_key(12, 3, nearest=True)) == render.CiteKey(12, 3, nearest=True)
    for junk in ("", "1", "a-b", "1-2-3", "<x>", "1-2; drop", "1-rr2", "1-x2", "r1-2"):
        assert render.parse_cite_key(junk) is None
    turns = [{"question": "q", "answer": answer("x [1]", [CITATION]).model_dump(mode="json")}]
    assert render.find_citation(turns, "0-1") == render.Located(0, CITATION, None, nearest=False)
    assert render.find_citation(turns, "0-2") is None
    assert render.find_citation(turns, "1-1") is None
    assert render.find_citation(turns, "0-r1") is None  # an answer, not a refusal: no nearest passages


def test_upload_results_and_documents_are_text() -> None:
    out = render.upload_results_html([render.FileResult("<b>x</b>.md", "refused", HOSTILE)])
    assert_only_our_markup(out)
    assert "&lt;b&gt;x&lt;/b&gt;.md" in out
    assert render.document_rows([DOC]) == [["<i>Imports</i>", "2024-04-13", "news/a.txt", 3, len(DOC_TEXT)]]
    assert "1 document · 3 passages" in render.index_summary_html([DOC])


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("report.md", "report.md"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\evil.HTML", "evil.html"),
        ("/abs/path/notes (final).pdf", "notes _final_.pdf"),
        ("Ünïcødé résumé.txt", "Unicde resume.txt"),
        ("a;rm -rf ~;.md", "a_rm -rf _.md"),
        ("...hidden.txt", "hidden.txt"),
        ("x" * 300 + ".md", "x" * 117 + ".md"),
    ],
)
def test_safe_name_keeps_a_safe_base_name(original: str, expected: str) -> None:
    assert safe_name(original) == expected


@pytest.mark.parametrize("original", ["", "..", "../", ".md", "noext", "evil.exe", "archive.tar.gz", "a/..", "page.php"])
def test_safe_name_refuses_unusable_names(original: str) -> None:
    with pytest.raises(UploadRefused):
        safe_name(original)


def test_save_upload_writes_only_inside_the_corpus_folder(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    upload = tmp_path / "upload.tmp"
    upload.write_text("hello", encoding="utf-8")
    saved = save_upload(upload, "../../outside.md", corpus, max_bytes=100)
    assert saved.path == corpus.resolve() / "outside.md" and not saved.replaced
    assert saved.path.read_text(encoding="utf-8") == "hello"
    assert not (tmp_path / "outside.md").exists()
    assert save_upload(upload, "outside.md", corpus, max_bytes=100).replaced
    assert sorted(os.listdir(corpus)) == ["outside.md"]  # no temporary files left behind


def test_save_upload_refuses_big_empty_and_symlinked_targets(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    big = tmp_path / "big.tmp"
    big.write_bytes(b"x" * 101)
    with pytest.raises(UploadRefused, match="upload limit"):
        save_upload(big, "big.txt", corpus, max_bytes=100)
    empty = tmp_path / "empty.tmp"
    empty.write_bytes(b"")
    with pytest.raises(UploadRefused, match="empty"):
        save_upload(empty, "empty.txt", corpus, max_bytes=100)
    secret = tmp_path / "secret.txt"
    secret.write_text("keep", encoding="utf-8")
    (corpus / "link.txt").symlink_to(secret)
    small = tmp_path / "small.tmp"
    small.write_text("new", encoding="utf-8")
    with pytest.raises(UploadRefused, match="outside the corpus folder|not a regular file"):
        save_upload(small, "link.txt", corpus, max_bytes=100)
    assert secret.read_text(encoding="utf-8") == "keep"



def test_source_list_quotes_each_passage_briefly() -> None:
    long_quote = "word " * 60
    assert render.clip(long_quote, 20) == "word word word word…"
    assert render.clip("short\n text", 20) == "short text"
    out = render.answer_html(answer("x [1]", [CITATION]), 0, {"news/a.txt": "T"})
    assert "“In 2023, 90% &lt;b&gt;of&lt;/b&gt; imports came from China &amp; co.”" in out
    second = Citation(id=2, source="news/a.txt", start=0, end=6, quote="Intro.")
    twice = render.answer_html(answer("x [1] y [2]", [CITATION, second]), 0, {"news/a.txt": "Title"})
    assert twice.count("Title · news/a.txt") == 1 and "same document · characters 0–6" in twice


# -- the short answer ----------------------------------------------------------------------------
# "90%" twice in one sentence: which one the reader meant is only known from its span.
SPAN_TEXT = "Preface.\n\nOf the 90% quoted, 90% came from China <b>&</b> co.\n\nEnd."
SPAN_START = SPAN_TEXT.index("Of the")
SPAN_END = SPAN_TEXT.index("co.") + 3
SPAN_CITATION = Citation(id=2, source="s.txt", start=SPAN_START, end=SPAN_END, quote=SPAN_TEXT[SPAN_START:SPAN_END])
FIRST_90 = SPAN_TEXT.index("90%")
SECOND_90 = SPAN_TEXT.index("90%", FIRST_90 + 1)
OTHER = Citation(id=1, source="s.txt", start=0, end=8, quote="Preface.")


def short_answer(details: dict | None = None, text: str | None = None, citations: list[Citation] | None = None) -> Answer:
    citations = citations or [OTHER, SPAN_CITATION]
    text = text if text is not None else f"90% [2]. Preface. [1] {SPAN_CITATION.quote} [2]"
    return Answer(
        question="q?", standalone_question="q?", answer=text, short_answer="90%", citations=citations, details=details or {}
    )


def marked(fragment: str, cls: str) -> list[str]:
    """The text inside each ``<mark class="cls">`` of a fragment, unescaped, tags dropped."""
    inner = re.findall(rf'<mark class="{cls}"[^>]*>(.*?)</mark>', fragment, flags=re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", m)) for m in inner]


def test_short_answer_span_uses_the_readers_position_when_it_holds() -> None:
    reader = {"short_answer_span": {"citation": 2, "start": SECOND_90, "end": SECOND_90 + 3}}
    assert render.short_answer_span(short_answer(reader)) == render.ShortSpan(2, SECOND_90, SECOND_90 + 3)


@pytest.mark.parametrize(
    "given",
    [
        None,  # no reader: the extractive answerer
        {"citation": 2, "start": SECOND_90, "end": SECOND_90 + 4},  # does not spell the short answer
        {"citation": 1, "start": SECOND_90, "end": SECOND_90 + 3},  # outside the citation it names
        {"citation": 9, "start": SECOND_90, "end": SECOND_90 + 3},  # no such citation
        {"citation": 2, "start": str(SECOND_90), "end": SECOND_90 + 3},  # not offsets
        {"citation": 2, "start": True, "end": SECOND_90 + 3},
        "not a mapping",
    ],
)
def test_short_answer_span_falls_back_to_the_first_occurrence_in_the_first_quote_holding_it(given: object) -> None:
    details = {} if given is None else {"short_answer_span": given}
    # Citation 1 does not hold "90%"; citation 2 holds it twice: its first occurrence is taken.
    assert render.short_answer_span(short_answer(details)) == render.ShortSpan(2, FIRST_90, FIRST_90 + 3)


def test_short_answer_span_is_none_without_a_short_answer_in_a_quote() -> None:
    assert render.short_answer_span(short_answer(citations=[OTHER])) is None
    refused = Answer(question="q", standalone_question="q", answer="The sources don't say.", refused=True)
    assert render.short_answer_span(refused) is None


@pytest.mark.parametrize(("given", "at"), [(None, FIRST_90), ({"citation": 2, "start": SECOND_90, "end": SECOND_90 + 3}, SECOND_90)])
def test_short_answer_leads_in_bold_and_is_marked_inside_its_sentence(given: dict | None, at: int) -> None:
    details = {"short_answer_span": given} if given else {}
    out = render.answer_html(short_answer(details), 4, {})
    assert_only_our_markup(out)
    assert '<div class="rag-short"><strong>90%</strong> <a class="cite" href="#cite-4-2">[2]</a></div>' in out
    body = out.split('<div class="rag-text">', 1)[1].split('<div class="rag-sources">', 1)[0]
    assert not html.unescape(re.sub(r"<[^>]+>", "", body)).startswith("90%")  # the lead is not repeated
    assert marked(body, "rag-span") == ["90%"]
    # The mark sits at the reader's occurrence: count the "90%" before it in the sentence.
    before = html.unescape(re.sub(r"<[^>]+>", "", body.split('<mark class="rag-span">', 1)[0]))
    occurrences_before = before.count("90%")
    assert occurrences_before == SPAN_TEXT[SPAN_START:at].count("90%")


def test_short_answer_of_a_free_text_answer_leads_and_the_text_is_kept() -> None:
    # A generative answer paraphrases: no "short [n]." lead to remove, no quote to mark in the text.
    out = render.answer_html(short_answer(text="China supplied 90% of them [2]."), 0, {})
    assert "<strong>90%</strong>" in out and "China supplied 90% of them" in out
    assert '<mark class="rag-span">' not in out


def test_source_panel_marks_the_short_answer_inside_the_cited_span() -> None:
    span = render.ShortSpan(2, SECOND_90, SECOND_90 + 3)
    out = render.source_html(render.SourceView(SPAN_CITATION, 0, None, SPAN_TEXT, span))
    assert_only_our_markup(out)
    assert marked(out, "rag-span") == ["90%"]
    outer = out.split('data-key="0-2">', 1)[1].rsplit("</mark>", 1)[0]
    assert html.unescape(re.sub(r"<[^>]+>", "", outer)) == SPAN_CITATION.quote
    assert html.unescape(outer.split('<mark class="rag-span">')[0]) == SPAN_TEXT[SPAN_START:SECOND_90]
    # A span of another citation, or one outside this one, marks nothing inside.
    for other in (render.ShortSpan(1, SECOND_90, SECOND_90 + 3), render.ShortSpan(2, 0, 3)):
        assert '<mark class="rag-span">' not in render.source_html(render.SourceView(SPAN_CITATION, 0, None, SPAN_TEXT, other))


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=80).filter(lambda t: "\r" not in t), st.data())
def test_any_span_of_any_quote_is_marked_exactly(quote: str, data: st.DataObject) -> None:
    a = data.draw(st.integers(0, len(quote) - 1))
    b = data.draw(st.integers(a + 1, len(quote)))
    body = "head " + quote + " tail"
    c = Citation(id=1, source="x", start=5, end=5 + len(quote), quote=quote)
    span = render.ShortSpan(1, 5 + a, 5 + b)
    out = render.source_html(render.SourceView(c, 0, None, body, span))
    assert_only_our_markup(out)
    assert marked(out, "rag-span") == [quote[a:b]]
    assert render.short_answer_span(
        Answer(question="q", standalone_question="q", answer=f"{quote} [1]", short_answer=quote[a:b], citations=[c],
               details={"short_answer_span": {"citation": 1, "start": 5 + a, "end": 5 + b}})
    ) == span


# -- refusals ------------------------------------------------------------------------------------
def refusal(**details: object) -> Answer:
    return Answer(question="q", standalone_question="q", answer="The sources don't say.", refused=True, details=details)


def test_refusal_lists_the_nearest_passages_collapsed_each_linking_its_place() -> None:
    nearest = [
        Citation(id=1, source="news/a.txt", start=START, end=END, quote=CITATION.quote),
        Citation(id=2, source="news/a.txt", start=0, end=6, quote="Intro."),
    ]
    out = render.answer_html(refusal(confidence=0.083), 3, {"news/a.txt": "<i>Imports</i>"}, nearest)
    assert_only_our_markup(out)
    assert "rag-sources" not in out and "<strong>" not in out
    assert out.count("<details") == 1 and "<details open" not in out  # collapsed
    assert "The 2 nearest passages searched: none answers it with enough confidence (best 0.08)" in out
    assert out.count('href="#cite-3-r1"') == 2 and out.count('href="#cite-3-r2"') == 2
    assert "&lt;b&gt;of&lt;/b&gt;" in out and "same document · characters 0–6" in out


def test_refusal_with_nothing_found_says_why() -> None:
    out = render.answer_html(refusal(), 0, {}, [])
    assert "<details" not in out and "No passage matched the search" in out


def test_source_panel_of_a_nearest_passage_says_it_was_not_cited() -> None:
    out = render.source_html(render.SourceView(CITATION, 1, DOC, DOC_TEXT, nearest=True))
    assert 'data-key="1-r1"' in out and "nearest passage 1 for question 2, not cited" in out
    assert "Cited as" not in out
    turns = [{"question": "q", "answer": refusal().model_dump(mode="json"), "nearest": [CITATION.model_dump(mode="json")]}]
    assert render.find_citation(turns, "0-r1") == render.Located(0, CITATION, None, nearest=True)
    assert render.find_citation(turns, "0-1") is None and render.find_citation(turns, "0-r2") is None


def test_searching_bubble_is_our_markup_only() -> None:
    assert_only_our_markup(render.SEARCHING_HTML)
    assert "rag-streaming" in render.SEARCHING_HTML
