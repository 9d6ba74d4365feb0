"""Pure metric functions, checked on hand-made answer records with known right numbers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.evals.gold import GoldItem, parse_gold_line
from rag.evals.metrics import (
    METRICS,
    aggregate,
    compare_metrics,
    contains_answer,
    exact_match,
    f1_score,
    outcome_changes,
    percentile,
    score_item,
)
from rag.evals.normalize import DocSpan, normalize_answer

DOC = "doc.txt"
TEXT = "Intro line.\nIn 2023, 90% of imports came from China. Tanks were built. The end."
EVIDENCE_QUOTE = "In 2023, 90% of imports came from China."
EV_START = TEXT.index(EVIDENCE_QUOTE)
EVIDENCE = [DocSpan(DOC, EV_START, EV_START + len(EVIDENCE_QUOTE))]
TANKS = "Tanks were built."
TANKS_START = TEXT.index(TANKS)


def text_of(source: str) -> str | None:
    return TEXT if source == DOC else None


def gold(unanswerable: bool = False, answers: tuple[str, ...] = ("90%", "90 percent")) -> GoldItem:
    if unanswerable:
        return parse_gold_line(json.dumps({"id": "u", "question": "How many?", "unanswerable": True}))
    return parse_gold_line(json.dumps({"id": "a", "question": "What share?", "answers": list(answers),
                                       "evidence": [{"doc": DOC, "quote": EVIDENCE_QUOTE}]}))


def cite(quote: str, source: str = DOC, start: int | None = None, cid: int = 1) -> dict[str, Any]:
    begin = TEXT.index(quote) if start is None else start
    return {"id": cid, "source": source, "start": begin, "end": begin + len(quote), "quote": quote}


def record(short: str | None = "90%", answer: str = "90% [1].", refused: bool = False,
           citations: list[dict[str, Any]] | None = None, retrieved: list[tuple[int, int]] | None = None,
           total: float | None = 10.0) -> dict[str, Any]:
    return {
        "id": "a", "question": "q", "standalone_question": "q", "answer": answer, "short_answer": short,
        "refused": refused, "citations": [cite(EVIDENCE_QUOTE)] if citations is None else citations,
        "retrieved": [{"source": DOC, "start": s, "end": e, "score": 1.0} for s, e in (retrieved or [])],
        "timings_ms": {} if total is None else {"total": total},
    }


# -- normalisation, EM, F1, containment ---------------------------------------------------------
def test_normalisation_follows_squad() -> None:
    assert normalize_answer("The  Soviet era!") == "soviet era"
    assert normalize_answer("U.S. sanctions") == "us sanctions"
    assert normalize_answer("an apple and a pear") == "apple and pear"


def test_exact_match_and_f1() -> None:
    assert exact_match("the 90%", ["90%"]) == 1.0
    assert exact_match("90% share", ["90%"]) == 0.0
    assert f1_score("cat sat", ["cat sat on mat"]) == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert f1_score("dog", ["cat sat"]) == 0.0
    assert f1_score("cat sat", ["dog", "cat sat"]) == 1.0  # the best gold counts


def test_squad2_no_answer_convention() -> None:
    assert exact_match("", []) == 1.0 and f1_score("", []) == 1.0
    assert exact_match("something", []) == 0.0 and f1_score("something", []) == 0.0
    assert f1_score("", ["90%"]) == 0.0


def test_containment_is_on_whole_words() -> None:
    assert contains_answer("In 2023, 90% of imports", ["90 percent", "90%"])
    assert not contains_answer("back in 1990", ["90"])
    assert not contains_answer("it was not seen", ["no"])
    assert not contains_answer(None, ["90%"])
    assert not contains_answer("anything", ["the"])  # empty after normalisation never matches


# -- one item ----------------------------------------------------------------------------------
def test_correct_short_answer_with_exact_evidence_citation() -> None:
    s = score_item(record(retrieved=[(0, 11), (EV_START, EV_START + 60)]), gold(), EVIDENCE, text_of)
    assert s.passed and s.correct and not s.refused
    assert (s.em, s.f1) == (1.0, 1.0)
    assert s.evidence_hit and s.answer_in_citation
    assert (s.citations, s.exact_citations, s.citations_on_evidence) == (1, 1, 1)
    assert (s.evidence_spans, s.evidence_covered) == (1, 1)
    assert s.first_relevant_rank == 2 and s.latency_ms == 10.0


def test_accuracy_uses_short_answer_first_and_answer_only_when_it_is_null() -> None:
    wrong_short = record(short="2023", answer="It was 90% [1].")
    assert score_item(wrong_short, gold(), EVIDENCE, text_of).correct is False
    no_short = record(short=None, answer="In 2023, 90% of imports came from China [1].")
    scored = score_item(no_short, gold(), EVIDENCE, text_of)
    assert scored.correct is True and scored.em == 0.0 and 0.0 < scored.f1 < 1.0  # the answer text is the prediction


def test_a_citation_whose_quote_is_not_the_text_is_not_exact() -> None:
    bad = {"id": 1, "source": DOC, "start": 0, "end": 5, "quote": "Hello"}
    unknown = {"id": 2, "source": "other.txt", "start": 0, "end": 5, "quote": "Intro"}
    out_of_range = {"id": 3, "source": DOC, "start": 500, "end": 505, "quote": "Intro"}
    s = score_item(record(citations=[cite(EVIDENCE_QUOTE), bad, unknown, out_of_range]), gold(), EVIDENCE, text_of)
    assert (s.citations, s.exact_citations) == (4, 1)


def test_overlap_needs_a_shared_character_in_the_same_document() -> None:
    touching = {"id": 1, "source": DOC, "start": 0, "end": EV_START, "quote": TEXT[:EV_START]}
    other_doc = {"id": 2, "source": "other.txt", "start": EV_START, "end": EV_START + 4, "quote": "In 2"}
    s = score_item(record(citations=[touching, other_doc], retrieved=[(0, EV_START)]), gold(), EVIDENCE, text_of)
    assert s.evidence_hit is False and s.citations_on_evidence == 0 and s.evidence_covered == 0
    assert s.first_relevant_rank is None
    assert DocSpan(DOC, 0, 5).overlaps(DocSpan(DOC, 4, 9)) and not DocSpan(DOC, 0, 5).overlaps(DocSpan(DOC, 5, 9))


def test_answer_in_citation_needs_the_answer_inside_a_quote() -> None:
    s = score_item(record(citations=[cite(TANKS)]), gold(), EVIDENCE, text_of)
    assert s.answer_in_citation is False and s.citations_on_evidence == 0


def test_refusals() -> None:
    refused = record(short=None, answer="The sources don't say.", refused=True, citations=[])
    on_answerable = score_item(refused, gold(), EVIDENCE, text_of)
    assert on_answerable.refused and not on_answerable.passed and on_answerable.correct is False
    assert on_answerable.evidence_hit is False and on_answerable.em == 0.0
    on_unanswerable = score_item(refused, gold(unanswerable=True), [], text_of)
    assert on_unanswerable.passed and on_unanswerable.em == 1.0 and on_unanswerable.correct is None
    answered = score_item(record(), gold(unanswerable=True), [], text_of)
    assert not answered.passed and answered.em == 0.0 and answered.evidence_hit is None
    # An answer without a short answer is not a refusal: it must not earn the no-answer EM.
    unrefused = score_item(record(short=None), gold(unanswerable=True), [], text_of)
    assert not unrefused.passed and (unrefused.em, unrefused.f1) == (0.0, 0.0)


def test_a_failed_question_scores_as_wrong_and_keeps_its_error() -> None:
    failed = {"id": "a", "question": "q", "answer": "", "short_answer": None, "refused": False,
              "citations": [], "timings_ms": {}, "error": "QueryError: too long"}
    s = score_item(failed, gold(), EVIDENCE, text_of)
    assert not s.passed and s.error == "QueryError: too long" and s.latency_ms is None
    on_unanswerable = score_item({**failed, "refused": True}, gold(unanswerable=True), [], text_of)
    assert not on_unanswerable.passed and on_unanswerable.em == 0.0


# -- aggregation -------------------------------------------------------------------------------
def test_aggregate_on_a_hand_made_run() -> None:
    g, u = gold(), gold(unanswerable=True)
    scores = [
        # right, cites the evidence and a wrong sentence; evidence retrieved first
        score_item(record(citations=[cite(EVIDENCE_QUOTE), cite(TANKS, cid=2)], retrieved=[(EV_START, EV_START + 5)],
                          total=10), g, EVIDENCE, text_of),
        # wrong, cites the wrong sentence; evidence retrieved third
        score_item(record(short="2023", citations=[cite(TANKS)], retrieved=[(0, 5), (TANKS_START, TANKS_START + 5),
                                                                            (EV_START, EV_START + 5)], total=20),
                   g, EVIDENCE, text_of),
        # refused although answerable; evidence never retrieved
        score_item(record(short=None, refused=True, citations=[], total=30), g, EVIDENCE, text_of),
        # unanswerable, rightly refused
        score_item(record(short=None, refused=True, citations=[], total=40), u, [], text_of),
    ]
    m = aggregate(scores, k=2)
    assert list(m) == list(METRICS)
    assert m["pass_rate"] == 0.5
    assert m["answer_accuracy"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["squad_em"] == 0.5  # item 1 and the refused unanswerable one
    assert m["citation_exactness"] == 1.0
    assert m["evidence_hit_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["citation_precision"] == pytest.approx(1 / 3, abs=1e-6)  # 1 of 3 citations on evidence
    assert m["citation_recall"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["answer_in_citation"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["refusal_accuracy"] == 1.0
    assert m["false_refusal_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["retrieval_recall_at_1"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["retrieval_recall_at_k"] == pytest.approx(1 / 3, abs=1e-6)  # rank 3 > k = 2
    assert m["retrieval_mrr"] == pytest.approx((1 + 1 / 3 + 0) / 3, abs=1e-6)
    assert m["latency_p50_ms"] == 25.0 and m["latency_p95_ms"] == pytest.approx(38.5)
    assert aggregate(scores, k=3)["retrieval_recall_at_k"] == pytest.approx(2 / 3, abs=1e-6)


def test_metrics_with_no_qualifying_item_are_none() -> None:
    only_unanswerable = [score_item(record(short=None, refused=True, citations=[], total=None),
                                    gold(unanswerable=True), [], text_of)]
    m = aggregate(only_unanswerable)
    assert m["refusal_accuracy"] == 1.0
    for name in ("answer_accuracy", "citation_exactness", "evidence_hit_rate", "retrieval_mrr", "latency_p50_ms"):
        assert m[name] is None, name


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([7], 95) == 7 and percentile([], 50) is None
    with pytest.raises(ValueError, match="101"):
        percentile([1], 101)


# -- the gate ----------------------------------------------------------------------------------
def test_compare_metrics_gates_by_direction_and_tolerance() -> None:
    base = {"answer_accuracy": 0.80, "squad_f1": 0.50, "false_refusal_rate": 0.10, "latency_p50_ms": 100.0,
            "refusal_accuracy": None}
    now = {"answer_accuracy": 0.78, "squad_f1": 0.47, "false_refusal_rate": 0.13, "latency_p50_ms": 900.0,
           "refusal_accuracy": 0.2}
    deltas = {d.name: d for d in compare_metrics(now, base, tolerance=0.02)}
    assert not deltas["answer_accuracy"].regressed  # exactly the tolerance: allowed
    assert deltas["squad_f1"].regressed and deltas["squad_f1"].delta == pytest.approx(-0.03)
    assert deltas["false_refusal_rate"].regressed  # lower is better: a rise regresses
    assert not deltas["latency_p50_ms"].regressed and not deltas["latency_p50_ms"].gates
    assert deltas["refusal_accuracy"].delta is None and not deltas["refusal_accuracy"].regressed
    improved = compare_metrics({"answer_accuracy": 0.95, "false_refusal_rate": 0.0}, base, 0.0)
    assert not any(d.regressed for d in improved)
    with pytest.raises(ValueError, match="tolerance"):
        compare_metrics(now, base, tolerance=-1)


def test_outcome_changes_lists_newly_failing_and_passing() -> None:
    base = {"a": {"passed": True}, "b": {"passed": False}, "c": {"passed": True}, "gone": {"passed": True}}
    now = {"a": {"passed": False}, "b": {"passed": True}, "c": {"passed": True}, "new": {"passed": False}}
    assert outcome_changes(now, base) == (["a"], ["b"])


# -- properties --------------------------------------------------------------------------------
words = st.text(alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "Zs")), max_size=40)


@given(words, st.lists(words, max_size=3))
def test_f1_and_em_are_bounded_and_em_implies_full_f1(pred: str, golds: list[str]) -> None:
    f1, em = f1_score(pred, golds), exact_match(pred, golds)
    assert 0.0 <= f1 <= 1.0 and em in (0.0, 1.0)
    if em == 1.0:
        assert f1 == 1.0


@given(words)
def test_an_answer_always_matches_itself(text: str) -> None:
    if normalize_answer(text):
        assert exact_match(text, [text]) == 1.0 and contains_answer(f"x {text} y", [text])


@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50), st.integers(0, 50))
def test_overlap_is_symmetric(a: int, b: int, c: int, d: int) -> None:
    one, two = DocSpan(DOC, min(a, b), max(a, b)), DocSpan(DOC, min(c, d), max(c, d))
    assert one.overlaps(two) == two.overlaps(one)
