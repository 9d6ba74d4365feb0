"""The chat UI's muted line under the short answer: who says it and as of when."""

from __future__ import annotations

from rag.records import Answer, Attribution, Citation
from ui.render import answer_html, provenance_html

QUOTE = "In 2023, 90% of imports came from China, a <second> official said."


def answer(**extra: object) -> Answer:
    base = {
        "question": "What share of imports came from China?",
        "standalone_question": "What share of imports came from China?",
        "answer": f"90% [1]. {QUOTE} [1]",
        "short_answer": "90%",
        "citations": [Citation(id=1, source="a.txt", start=0, end=len(QUOTE), quote=QUOTE)],
    }
    return Answer.model_validate({**base, **extra})


AT = QUOTE.index("a <second> official")
SPEAKER = Attribution(citation=1, source="a.txt", start=AT, end=AT + 19, text="a <second> official")


def test_the_line_names_the_speaker_and_the_date_under_the_short_answer() -> None:
    page = answer_html(answer(attribution=SPEAKER, as_of="2024-04-13"), 0, {})
    line = '<div class="rag-provenance rag-muted">according to a &lt;second&gt; official (2024-04-13)</div>'
    assert line in page  # escaped: document text is never markup
    assert page.index('class="rag-short"') < page.index(line) < page.index('class="rag-text"')


def test_a_date_alone_reads_as_of_and_nothing_known_shows_nothing() -> None:
    assert provenance_html(answer(as_of="2024-05-08")) == '<div class="rag-provenance rag-muted">as of 2024-05-08</div>'
    assert provenance_html(answer()) == ""
    assert "rag-provenance" not in answer_html(answer(), 0, {})


def test_the_seed_answer_shows_who_gave_the_figure_and_when(seed_assistant) -> None:  # noqa: ANN001
    record = seed_assistant.ask("What share of microelectronics came from China?")
    page = answer_html(record, 0, {})
    assert '<div class="rag-provenance rag-muted">according to a second official (2024-04-13)</div>' in page
