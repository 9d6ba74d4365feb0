"""The extractive answerer: sentence features, the lead sentence, refusals and short answers.

The end-to-end cases run on a small two-article corpus written here (not the seed article), in a
real embedded index; the pure parts are tested on hand-made inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from rag.answering.extractive import (
    _RELATIVE_COLUMNS,
    BASE_FEATURES,
    FEATURES,
    ExtractiveAnswerer,
    ScoredSentence,
    missing_rarest,
    window_coverage,
    with_relative,
)
from rag.assistant import Assistant
from rag.config import AnswerSettings
from rag.domain import Chunk, Hit, TermStats
from rag.records import Answer
from rag.text.answer_kinds import AType, Candidate

from .conftest import make_settings

HARBOUR = """Lindvik harbour sets a record

The Port of Lindvik handled 4.2 million containers in 2023, a record for the harbour. Most of the growth came from liquefied gas shipments arriving from Norway. The harbour authority burns the gas in its own power plant, which heats 12,000 homes in the town. Mayor Helga Brandt said the new quay would open in March 2025.

The quay was designed by the engineering firm Oskarsson Partners. Critics argue that the expansion harms the salmon of the fjord, and fishermen have protested twice outside the town hall.
"""
ORCHARD = """Apple growers in Vestby

Vestby's orchards produced 3,100 tonnes of apples last autumn. The cooperative sells most of the harvest to a cider maker in Bergen. Growers blame a late frost for smaller pears this year.
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory, embedder) -> Assistant:  # noqa: ANN001
    root = tmp_path_factory.mktemp("toy")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "harbour.txt").write_text(HARBOUR, encoding="utf-8")
    (corpus / "orchard.txt").write_text(ORCHARD, encoding="utf-8")
    assistant = Assistant.open(settings=make_settings(root / "index", answer={"answerer": "extractive"}), create=True, embedder=embedder)
    assistant.ingest([corpus])
    yield assistant
    assistant.close()


def exact(assistant: Assistant, answer: Answer) -> None:
    for c in answer.citations:
        assert assistant.document_text(c.source)[c.start : c.end] == c.quote


@pytest.mark.parametrize(
    ("question", "short", "cited"),
    [
        ("How many homes does the harbour's power plant heat?", "12,000 homes", "power plant"),
        ("When will the new quay open?", "March 2025", "new quay"),
        ("Which firm designed the quay?", "Oskarsson Partners", "designed by"),
        ("Where does the cider maker that buys the harvest sit?", "Bergen", "cider maker"),
    ],
)
def test_typed_questions_get_the_short_answer_and_its_sentence(toy: Assistant, question: str, short: str, cited: str) -> None:
    answer = toy.ask(question)
    assert not answer.refused
    assert answer.short_answer == short
    assert cited in answer.citations[0].quote and short in answer.citations[0].quote
    exact(toy, answer)


@pytest.mark.parametrize(
    "question",
    [
        "How many salmon died because of the expansion?",  # a count the text does not give
        "How much did the new quay cost?",  # an amount: "12,000 homes" is not one
        "What was the dollar value of the apple harvest?",
    ],
)
def test_questions_whose_answer_kind_is_missing_are_refused(toy: Assistant, question: str) -> None:
    answer = toy.ask(question)
    assert answer.refused and answer.citations == [] and answer.short_answer is None


def test_an_untyped_question_is_answered_from_its_sentence_without_a_short_answer(toy: Assistant) -> None:
    answer = toy.ask("What do critics say about the expansion?")
    assert not answer.refused and answer.short_answer is None
    assert "salmon" in answer.citations[0].quote
    exact(toy, answer)


def test_a_follow_up_cites_what_it_asks_about(toy: Assistant) -> None:
    history = [{"question": "What made Lindvik harbour set a record?", "answer": "liquefied gas shipments"}]
    answer = toy.ask("What does the harbour authority do with it?", history=history)
    assert "liquefied" in answer.standalone_question
    assert any("power plant" in c.quote for c in answer.citations)
    exact(toy, answer)


# -- pure parts --------------------------------------------------------------------------------
class _Idf:
    """A stand-in for LexicalIndex.idf: rarer words weigh more."""

    weights = {"quay": 3.0, "design": 2.0, "firm": 1.0, "salmon": 4.0, "die": 2.0}

    def idf(self, token: str) -> float:
        return self.weights.get(token, 1.0)


def test_relative_features_are_zero_for_the_best_and_negative_for_the_rest() -> None:
    base = np.array([[0.2] * len(BASE_FEATURES), [0.5] * len(BASE_FEATURES)], dtype=np.float32)
    x = with_relative(base)
    assert x.shape == (2, len(FEATURES))
    rel = x[:, len(BASE_FEATURES) :]
    assert np.allclose(rel[1], 0.0) and np.allclose(rel[0], -0.3)
    assert np.allclose(x[:, : len(BASE_FEATURES)], base) and len(_RELATIVE_COLUMNS) == rel.shape[1]


def test_window_coverage_counts_question_words_near_the_candidate() -> None:
    text = "The quay was designed by the engineering firm Oskarsson Partners. " + "Unrelated words follow here. " * 5 + "Bergen"
    near = Candidate(text.index("Oskarsson"), text.index(" Partners") + 9, "Oskarsson Partners", AType.ORG)
    far = Candidate(text.index("Bergen"), len(text), "Bergen", AType.PLACE)
    q = ["firm", "design", "quay"]
    assert window_coverage(q, text, 0, len(text), near, _Idf()) == pytest.approx(1.0)
    assert window_coverage(q, text, 0, len(text), far, _Idf()) == 0.0


def test_missing_rarest_is_one_when_the_most_specific_word_is_absent() -> None:
    assert missing_rarest(["salmon", "die"], {"die"}, _Idf()) == 1.0
    assert missing_rarest(["salmon", "die"], {"salmon"}, _Idf()) == pytest.approx(0.5)
    assert missing_rarest(["salmon", "die"], {"salmon", "die"}, _Idf()) == 0.0


def _sentence(text: str, prob: float, typed: list[Candidate]) -> ScoredSentence:
    return ScoredSentence("d", "d.txt", 0, 0, len(text), text, 0, np.zeros(len(FEATURES), np.float32), prob, typed, prob)


def test_the_answer_leads_with_the_best_sentence_holding_the_kind_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    close = _sentence("The plant heats homes in the town.", 0.8, [])
    counted = _sentence("It heats 12,000 homes.", 0.4, [Candidate(9, 21, "12,000 homes", AType.NUMBER)])
    answerer = ExtractiveAnswerer(AnswerSettings())  # pure: no index, only what the hits carry
    hit = Hit(Chunk("d", 0, 0, 22, "It heats 12,000 homes."), "d.txt", 1.0, terms=TermStats({"home": 1}, 2))
    monkeypatch.setattr(answerer, "score_sentences", lambda *a: [close, counted])
    monkeypatch.setattr(ExtractiveAnswerer, "answerability", staticmethod(lambda q, scored: 0.9))
    draft = answerer.answer("How many homes does the plant heat?", [hit], np.zeros(3))
    assert not draft.refused and draft.sentences[0] is counted
    monkeypatch.setattr(answerer, "score_sentences", lambda *a: [close])
    assert answerer.answer("How many homes does the plant heat?", [object()], np.zeros(3)).refused  # type: ignore[list-item]
    monkeypatch.setattr(ExtractiveAnswerer, "answerability", staticmethod(lambda q, scored: 0.05))
    monkeypatch.setattr(answerer, "score_sentences", lambda *a: [counted])
    assert answerer.answer("How many homes does the plant heat?", [object()], np.zeros(3)).refused  # type: ignore[list-item]
