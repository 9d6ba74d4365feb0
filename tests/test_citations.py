"""Citation verification, quote location and the gate that keeps [n] markers honest."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rag.answering.citations import enforce_citations, locate_quote, markers, verify_citation
from rag.records import Citation

TEXT = "In 2023, 90% of Russia's microelectronics imports came from China, officials said."


def cite(i: int, start: int, end: int, text: str = TEXT, source: str = "a.txt") -> Citation:
    return Citation(id=i, source=source, start=start, end=end, quote=text[start:end])


def test_verify_citation_requires_exact_slice() -> None:
    assert verify_citation(TEXT, 9, 12, "90%")
    assert not verify_citation(TEXT, 9, 12, "90 %")
    assert not verify_citation(TEXT, 9, 9, "")
    assert not verify_citation(TEXT, 80, 200, TEXT[80:200])
    assert not verify_citation(None, 0, 3, "In ")


def test_locate_quote_exact_and_normalised() -> None:
    assert locate_quote(TEXT, "90% of Russia's") == (9, 24)
    passage = "He said \u201cninety  percent\u201d of\nimports \u2014 all of them."
    start, end = locate_quote(passage, '"ninety percent" of imports - all')
    # Quote marks around a quote are not part of it; the span maps back to the original text.
    assert passage[start:end] == "ninety  percent\u201d of\nimports \u2014 all"
    assert locate_quote(passage, "NINETY PERCENT") is not None
    assert locate_quote(passage, "eighty percent") is None
    assert locate_quote(passage, "  ") is None


@given(st.text(min_size=1, max_size=200), st.data())
def test_located_spans_always_verify(text: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(text) - 1))
    j = data.draw(st.integers(i + 1, len(text)))
    quote = text[i:j]
    span = locate_quote(text, quote)
    if quote.strip():
        assert span is not None
        assert 0 <= span[0] < span[1] <= len(text)
        assert text[span[0] : span[1]] == quote.strip()  # an exact quote is found exactly


def test_enforce_drops_bad_citations_and_renumbers_markers() -> None:
    good = cite(1, 9, 12)
    bad = Citation(id=2, source="a.txt", start=0, end=3, quote="XYZ")
    third = cite(3, 60, 65)
    answer = "90% [1] came from somewhere [2]. China [3]."
    text, kept = enforce_citations(answer, [good, bad, third], lambda s: TEXT)
    assert [c.id for c in kept] == [1, 2]
    assert kept[1].quote == TEXT[60:65]
    assert text == "90% [1] came from somewhere. China [2]."
    assert set(markers(text)) <= {c.id for c in kept}


def test_enforce_removes_markers_without_any_citation() -> None:
    text, kept = enforce_citations("Claim [4] and [1].", [cite(1, 0, 2)], lambda s: TEXT)
    assert text == "Claim and [1]." and [c.id for c in kept] == [1]


def test_enforce_drops_citations_of_unknown_sources() -> None:
    text, kept = enforce_citations("A [1].", [cite(1, 0, 2, source="gone.txt")], lambda s: None)
    assert kept == [] and text == "A."
