"""Follow-up detection and rewriting into standalone questions (no LLM)."""

from __future__ import annotations

import pytest

from rag.answering.rewrite import is_follow_up, rewrite, standalone_history
from rag.records import Turn

FIRST = Turn(question="What share of microelectronics came from China?", answer="90% [1].")


@pytest.mark.parametrize(
    ("question", "follow"),
    [
        ("and what did Russia build with them?", True),
        ("What about nitrocellulose?", True),
        ("Why?", True),
        ("What did he tell lawmakers?", True),
        ("Who is the commander of U.S. European Command?", False),
        ("What share of microelectronics came from China?", False),
    ],
)
def test_follow_up_detection(question: str, follow: bool) -> None:
    assert is_follow_up(question) is follow


def test_rewrite_carries_the_previous_subject_forward() -> None:
    got = rewrite("and what did Russia build with them?", [FIRST])
    assert got.startswith("What did Russia build with them")
    assert "microelectronics" in got and "China" in got


def test_personal_pronoun_gets_the_person_from_the_previous_answer() -> None:
    turn = Turn(question="Who is the commander of U.S. European Command?", answer="Gen. Chris Cavoli [1].")
    got = rewrite("What did he tell lawmakers?", [turn])
    assert "Chris Cavoli" in got and got.startswith("What did he tell lawmakers")


def test_standalone_questions_pass_through_and_histories_chain() -> None:
    q = "Who is the commander of U.S. European Command?"
    assert rewrite(q, [FIRST]) == q
    assert rewrite("and why?", []) == "and why?"
    chain = [FIRST, Turn(question="and what did Russia build with them?", answer="missiles [1]"), Turn(question="why?", answer="")]
    standalone = standalone_history(chain)
    assert "microelectronics" in standalone[1]
    assert standalone[2] == "Why (Russia, build, microelectronics, China)?"  # the whole chain carries over


def test_long_histories_stay_fast() -> None:
    import time

    turns = [Turn(question=f"and what about item {i}?", answer="x") for i in range(300)]
    started = time.perf_counter()
    rewrite("and then?", turns)
    assert time.perf_counter() - started < 5  # linear, not exponential, in the number of turns


def test_focus_keeps_what_the_pronoun_resolved_to_and_drops_the_last_questions_words() -> None:
    from rag.answering.rewrite import rewrite_parts

    turn = Turn(question="What made the harbour's exports jump last year?", answer="cheap liquefied gas")
    got = rewrite_parts("Where does the harbour buy it?", [turn])
    assert "liquefied" in got.standalone and "exports" in got.standalone  # searched with both
    assert "liquefied" in got.focus and "exports" not in got.focus  # answered about the gas
    plain = rewrite_parts("and what did Russia build with them?", [FIRST])
    assert plain.focus == plain.standalone  # "90%" names nothing: the last question is the context
