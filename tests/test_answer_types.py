"""Answer-type cues: question types and typed candidate spans with exact offsets."""

from __future__ import annotations

import pytest

from rag.text.answer_kinds import (
    AType,
    Candidate,
    candidates,
    compatible,
    expected_type,
    holds,
    required_type,
    requirement,
    typed_candidates,
)


@pytest.mark.parametrize(
    ("question", "wanted"),
    [
        ("What share of microelectronics came from China?", AType.PERCENT),
        ("What percentage of voters turned out?", AType.PERCENT),
        ("How much did the bridge cost?", AType.MONEY),
        ("How many engines were shipped?", AType.NUMBER),
        ("How long did the siege last?", AType.DURATION),
        ("When did the war start?", AType.DATE),
        ("In what year was the treaty signed?", AType.DATE),
        ("Who commands U.S. European Command?", AType.PERSON),
        ("Which president raised concerns?", AType.PERSON),
        ("Where did Blinken travel?", AType.PLACE),
        ("Which country supplies the engines?", AType.PLACE),
        ("Which agency issued the order?", AType.ORG),
        ("Which European shipping firms moved the cargo?", AType.ORG),
        ("What two Dutch banks financed the deal?", AType.ORG),
        ("What is the name of the senior Treasury official who signed it?", AType.PERSON),
        ("Which coastal city hosted the summit?", AType.PLACE),
        ("What did the company announce?", AType.OTHER),
        ("What did Russia build?", AType.OTHER),
        ("Why is success hard to measure?", AType.OTHER),
    ],
)
def test_expected_type(question: str, wanted: AType) -> None:
    assert expected_type(question) is wanted


def spans(text: str, kind: AType) -> list[str]:
    found = [c for c in candidates(text) if c.type is kind]
    for c in found:
        assert text[c.start : c.end] == c.text
    return [c.text for c in found]


def test_typed_spans_have_exact_offsets() -> None:
    text = (
        "In 2023, 90% of Russia's microelectronics imports came from China. Gen. Chris Cavoli spoke on "
        "March 5, 2024 about $1.2 billion in aid and 40,000 shells over three years in Kyiv."
    )
    assert "90%" in spans(text, AType.PERCENT)
    assert "2023" in spans(text, AType.DATE) and "March 5, 2024" in spans(text, AType.DATE)
    assert "$1.2 billion" in spans(text, AType.MONEY)
    assert any(s.startswith("40,000 shells") for s in spans(text, AType.NUMBER))
    assert "over three years" in spans(text, AType.DURATION)
    assert "Chris Cavoli" in spans(text, AType.PERSON)  # the title is not part of the name
    assert "China" in spans(text, AType.PLACE) and "Kyiv" in spans(text, AType.PLACE)


def test_candidates_the_question_already_names_are_not_answers() -> None:
    text = "President Joe Biden raised concerns in a call with Chinese President Xi Jinping."
    found = [c.text for c in typed_candidates(text, 0, len(text), AType.PERSON, {"who", "raised", "concerns", "with", "xi"})]
    assert "Joe Biden" in found
    assert not any("Xi" in f for f in found)
    nums = typed_candidates("It had 40 ships.", 0, 16, AType.NUMBER, {"how", "many", "40", "ships"})
    assert nums == []


def test_compatibility_of_types() -> None:
    assert compatible(AType.NUMBER, AType.PERCENT)
    assert compatible(AType.PERSON, AType.NAME)
    assert not compatible(AType.DATE, AType.NUMBER)
    assert not compatible(AType.PERCENT, AType.NUMBER)


@pytest.mark.parametrize(
    ("question", "required"),
    [
        ("How many tankers left port?", AType.NUMBER),
        ("Which shipping firms moved the cargo?", AType.ORG),
        ("Which deputy minister signed the order?", AType.PERSON),  # names the kind: checked
        ("What is the name of the second engineer?", AType.PERSON),
        ("In which river port was it built?", AType.PLACE),
        ("Who is responsible for the delay?", None),  # "who" alone: a person, a country, a firm...
        ("Where did the talks stall?", None),
        ("Why did the talks stall?", None),
    ],
)
def test_required_type(question: str, required: AType | None) -> None:
    assert required_type(question) is required


def test_a_sentence_must_hold_an_answer_of_the_kind_asked_for() -> None:
    place = Candidate(0, 6, "Norway", AType.PLACE)
    person = Candidate(0, 10, "Ada Bakken", AType.PERSON)
    share = Candidate(0, 3, "90%", AType.PERCENT)
    homes = Candidate(0, 12, "12,000 homes", AType.NUMBER)
    official = requirement("Which deputy minister signed the order?")
    assert official is not None and not holds(official, [place]) and holds(official, [place, person])
    firm = requirement("Which firm built it?")
    assert firm is not None and holds(firm, [Candidate(0, 7, "Statoil", AType.NAME)])
    count = requirement("How many drones were built?")
    assert count is not None and not holds(count, [share]) and holds(count, [homes])
    amount = requirement("How much of the budget went to roads?")
    assert amount is not None and holds(amount, [share])  # "how much of" may be a share
    cost = requirement("What was the dollar value of the deal?")
    assert cost is not None and not holds(cost, [homes])
    assert requirement("Why did the talks stall?") is None


def test_a_capitalised_modifier_after_a_sentence_initial_the_is_not_a_name() -> None:
    text = "The Obama administration later fined several European lenders."
    assert not any("Obama" in c.text for c in candidates(text))
    assert "Netherlands" in [c.text for c in candidates("The Netherlands objected at once.")]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Chinese companies built it.", []),
        ("Chinese and Russian companies have worked jointly.", []),
        ("Sino-Russian ties grew.", []),
        ("He met French and German envoys.", []),
        ("The Normans and French fought.", ["Normans and French"]),
        ("Chinese and Russian officials met the Prime Minister.", ["Prime Minister"]),
    ],
)
def test_nationalities_used_as_adjectives_are_not_names(text: str, names: list[str]) -> None:
    assert [c.text for c in candidates(text) if c.type in (AType.NAME, AType.ORG, AType.PERSON, AType.PLACE)] == names
