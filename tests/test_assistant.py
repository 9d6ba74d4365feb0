"""The Python API end to end on a real embedded Chroma index of corpus/."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rag.answering.citations import markers
from rag.assistant import Assistant, clean_question
from rag.errors import QueryError
from rag.records import Answer

from .conftest import ROOT, SEED_SOURCE, make_settings

SEED_Q = "What share of microelectronics came from China?"


def assert_record_is_honest(assistant: Assistant, answer: Answer) -> None:
    """The spec's invariants: exact quotes, markers backed by citations, refusals plain."""
    ids = {c.id for c in answer.citations}
    for c in answer.citations:
        assert assistant.document_text(c.source)[c.start : c.end] == c.quote
    assert set(markers(answer.answer)) <= ids
    if answer.refused:
        assert answer.short_answer is None
    elif answer.short_answer is not None:
        assert any(answer.short_answer in c.quote for c in answer.citations)


def test_seed_question_is_answered_with_the_exact_span(seed_assistant: Assistant) -> None:
    answer = seed_assistant.ask(SEED_Q)
    assert_record_is_honest(seed_assistant, answer)
    assert not answer.refused and answer.short_answer == "90%"
    first = answer.citations[0]
    assert first.source == SEED_SOURCE and "90% of Russia's microelectronics imports came from China" in first.quote
    assert answer.answer.startswith("90% [1]")
    assert set(answer.timings_ms) >= {"retrieve", "answer", "total"}
    json.loads(answer.model_dump_json())  # the record serialises as the spec's JSON


def test_unanswerable_question_is_refused_plainly(seed_assistant: Assistant) -> None:
    answer = seed_assistant.ask("What is the population of Brazil?")
    assert answer.refused and answer.citations == [] and "don't say" in answer.answer


def test_follow_up_is_rewritten_and_answered(seed_assistant: Assistant) -> None:
    history = [{"question": SEED_Q, "answer": "90% [1]"}]
    answer = seed_assistant.ask("and what did Russia build with them?", history=history)
    assert_record_is_honest(seed_assistant, answer)
    assert answer.standalone_question != answer.question
    assert "microelectronics" in answer.standalone_question
    assert any("missiles, tanks and planes" in c.quote for c in answer.citations)


def test_stream_yields_growing_text_then_the_final_record(seed_assistant: Assistant) -> None:
    items = list(seed_assistant.stream(SEED_Q))
    texts = [i for i in items if isinstance(i, str)]
    final = items[-1]
    assert isinstance(final, Answer) and len(texts) >= 2
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    assert texts[-1] == final.answer


@pytest.mark.parametrize("bad", ["", "   ", "\x00\x01\x02", "\u200b\u200e"])
def test_empty_questions_are_refused_with_a_clear_error(seed_assistant: Assistant, bad: str) -> None:
    with pytest.raises(QueryError, match="question is empty"):
        seed_assistant.ask(bad)


def test_overlong_question_and_bad_history() -> None:
    with pytest.raises(QueryError, match="100,000 characters long; the limit is 2,000"):
        clean_question("x" * 100_000, 2000)
    assert clean_question("what\tis\x07 this?\n", 100) == "what is this?"


def test_history_must_hold_questions(seed_assistant: Assistant) -> None:
    with pytest.raises(QueryError, match="history turn 1"):
        seed_assistant.ask(SEED_Q, history=[{"answer": "no question"}])


def test_two_assistants_on_two_indexes_side_by_side(tmp_path: Path, seed_index_dir: Path, embedder) -> None:  # noqa: ANN001
    other_corpus = tmp_path / "other"
    other_corpus.mkdir()
    (other_corpus / "mill.txt").write_text("The old mill burned down in 1901. Nobody rebuilt it.\n", encoding="utf-8")
    other = Assistant.open(settings=make_settings(tmp_path / "idx"), create=True, embedder=embedder)
    other.ingest([other_corpus])
    seed = Assistant.open(settings=make_settings(seed_index_dir), embedder=embedder)
    a1 = seed.ask(SEED_Q)
    a2 = other.ask("When did the mill burn down?")
    assert a1.citations[0].source == SEED_SOURCE and a1.short_answer == "90%"
    assert a2.citations[0].source == "mill.txt" and a2.short_answer == "1901"
    # The seed assistant neither sees the other index's document nor answers from it.
    assert "mill.txt" not in {d.source for d in seed.documents()}
    assert seed.ask("When did the mill burn down?").refused


def test_one_assistant_serves_concurrent_threads_with_sequential_answers(seed_assistant: Assistant) -> None:
    questions = [
        SEED_Q,
        "Who is the commander of U.S. European Command?",
        "What is the population of Brazil?",
        "When did Biden raise concerns with Xi?",
    ] * 4
    expected = {q: seed_assistant.ask(q) for q in set(questions)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(seed_assistant.ask, questions))
    for q, answer in zip(questions, got):
        assert answer.answer == expected[q].answer and answer.citations == expected[q].citations


def test_cli_ask_json_matches_the_spec(seed_index_dir: Path, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"question": SEED_Q, "answer": "90%"}]))
    cmd = [sys.executable, "-m", "rag.cli", "ask", "and what did Russia build with them?", "--index", str(seed_index_dir),
           "--json", "--history", str(history)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    for key in ("question", "standalone_question", "answer", "short_answer", "refused", "citations", "timings_ms"):
        assert key in record
    assert record["citations"] and set(record["citations"][0]) >= {"id", "source", "start", "end", "quote"}
    plain = subprocess.run([sys.executable, "-m", "rag.cli", "ask", SEED_Q, "--index", str(seed_index_dir)],
                           capture_output=True, text=True, cwd=ROOT)
    assert plain.returncode == 0 and "90%" in plain.stdout and f"[1] {SEED_SOURCE} chars" in plain.stdout
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    failed = subprocess.run([*cmd[:-1], str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert failed.returncode == 1 and "is not valid JSON" in failed.stderr and "Traceback" not in failed.stderr
