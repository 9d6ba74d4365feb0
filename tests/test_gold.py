"""Gold files: the parser's error handling, and the committed seed gold set's own invariants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.evals.gold import GoldError, load_gold, locate_evidence, parse_gold_line
from rag.evals.normalize import DocSpan, normalize_answer

ROOT = Path(__file__).resolve().parent.parent
SEED_GOLD = ROOT / "evals" / "gold" / "seed.jsonl"
SEED_DOC = "000_530c0abb2a07a6c4.txt"
SEED_TEXT = (ROOT / "corpus" / SEED_DOC).read_text(encoding="utf-8")

GOOD = {"id": "g1", "question": "What share?", "answers": ["90%"],
        "evidence": [{"doc": "a.txt", "quote": "90% of it"}]}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- the parser --------------------------------------------------------------------------------
def test_defaults_and_unknown_fields_are_kept() -> None:
    item = parse_gold_line(json.dumps({**GOOD, "topic": "trade"}))
    assert item.unanswerable is False and item.history == []
    assert item.model_extra == {"topic": "trade"}


def test_malformed_lines_are_reported_with_their_line_numbers_and_skipped(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "gold.jsonl", [
        json.dumps(GOOD),                                                       # 1 ok
        "{not json",                                                            # 2 bad JSON
        "",                                                                     # 3 blank: ignored
        json.dumps({"id": "g2", "answers": ["x"]}),                             # 4 no question
        json.dumps({"id": "g3", "question": "Q?", "answers": ["x"], "unanswerable": True}),  # 5 inconsistent
        json.dumps({**GOOD, "question": "Again?"}),                             # 6 duplicate id
        json.dumps({"id": "g4", "question": "Q?", "answers": []}),              # 7 answerable, no answers
        json.dumps(["a", "list"]),                                              # 8 not an object
        json.dumps({"id": "g5", "question": "Q?", "answers": ["the"]}),         # 9 empty once normalised
        json.dumps({"id": "g6", "question": "Who?", "unanswerable": True,
                    "history": [{"question": "Before?", "answer": "yes"}]}),    # 10 ok
    ])
    gold = load_gold(path)
    assert [i.id for i in gold.items] == ["g1", "g6"]
    assert [i.line for i in gold.issues] == [2, 4, 5, 6, 7, 8, 9]
    messages = {i.line: i.message for i in gold.issues}
    assert "not valid JSON" in messages[2]
    assert "question" in messages[4]
    assert "unanswerable" in messages[5]
    assert "duplicate id 'g1'" in messages[6]
    assert "no answers" in messages[7]
    assert "JSON object" in messages[8]
    assert "normalisation" in messages[9]
    assert gold.items[1].history_dicts() == [{"question": "Before?", "answer": "yes"}]
    assert str(gold.issues[0]).startswith("line 2: ")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GoldError, match=r"gold file .*nope\.jsonl not found"):
        load_gold(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(GoldError, match="is empty"):
        load_gold(path)


def test_file_with_nothing_valid_is_an_error_naming_the_first_problem(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", ["nope", "{}"])
    with pytest.raises(GoldError, match=r"no valid items \(2 malformed lines; first: line 1: not valid JSON"):
        load_gold(path)


def test_locate_evidence_finds_first_occurrence_and_reports_what_it_cannot_find() -> None:
    texts = {"a.txt": "xx 90% of it, and 90% of it again"}
    item = parse_gold_line(json.dumps({**GOOD, "evidence": [
        {"doc": "a.txt", "quote": "90% of it"},
        {"doc": "a.txt", "quote": "not there"},
        {"doc": "b.txt", "quote": "90% of it"},
    ]}))
    spans, problems = locate_evidence([item], texts.get)
    assert spans == {"g1": [DocSpan("a.txt", 3, 12)]}
    assert len(problems) == 2
    assert "'not there'" in problems[0] and "'b.txt' is not in the corpus" in problems[1]


# -- the committed seed gold set ---------------------------------------------------------------
@pytest.fixture(scope="module")
def seed_gold():  # noqa: ANN201
    return load_gold(SEED_GOLD)


def test_seed_gold_parses_cleanly_and_has_the_required_mix(seed_gold) -> None:  # noqa: ANN001
    items = seed_gold.items
    assert seed_gold.issues == []
    assert len(items) >= 30
    assert sum(i.unanswerable for i in items) >= 5
    assert sum(bool(i.history) for i in items) >= 5
    assert len({i.id for i in items}) == len(items)


def test_seed_gold_starts_with_the_spec_example(seed_gold) -> None:  # noqa: ANN001
    first = seed_gold.items[0]
    assert first.id == "seed-001"
    assert first.question == "What share of microelectronics came from China?"
    assert first.answers[:2] == ["90%", "90 percent"]
    assert first.evidence[0].quote == "In 2023, 90% of Russia's microelectronics imports came from China"


def test_seed_evidence_quotes_are_exact_substrings_of_the_article(seed_gold) -> None:  # noqa: ANN001
    for item in seed_gold.items:
        for ev in item.evidence:
            assert ev.doc == SEED_DOC, item.id
            assert ev.quote in SEED_TEXT, (item.id, ev.quote)
    spans, problems = locate_evidence(seed_gold.items, {SEED_DOC: SEED_TEXT}.get)
    assert problems == []
    assert all(spans[i.id] for i in seed_gold.items if not i.unanswerable)


def test_seed_answers_are_short_and_supported_by_their_evidence(seed_gold) -> None:  # noqa: ANN001
    for item in seed_gold.items:
        if item.unanswerable:
            assert item.answers == [] and item.evidence == [], item.id
            continue
        assert item.evidence, item.id
        evidence = " ".join(normalize_answer(e.quote) for e in item.evidence)
        # At least one accepted answer is a span of the evidence (SQuAD style), and answers
        # stay short spans rather than whole sentences.
        assert any(normalize_answer(a) in evidence for a in item.answers), item.id
        assert min(len(a.split()) for a in item.answers) <= 10, item.id


def test_seed_follow_ups_name_earlier_turns(seed_gold) -> None:  # noqa: ANN001
    follow_ups = [i for i in seed_gold.items if i.history]
    assert any(i.question == "And what did Russia build with them?" for i in follow_ups)
    for item in follow_ups:
        assert all(turn.question and turn.answer for turn in item.history), item.id
