"""The UI timing benchmark's pure parts (benchmarks/ui_timing.py; the benchmark itself is not run)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

# A plain import: a benchmark that no longer imports is a failure here, not a silent skip.
import ui_timing  # noqa: E402


def test_footer_time_is_read_from_the_answer_footer() -> None:
    assert ui_timing.footer_ms("extractive · 28 ms") == 28.0
    assert ui_timing.footer_ms(" openai-fallback · 1204 ms\n") == 1204.0
    with pytest.raises(ValueError, match="no time"):
        ui_timing.footer_ms("extractive")


def test_summary_gives_median_p95_and_max_of_each_figure() -> None:
    rows = [dict.fromkeys(ui_timing.FIGURES, float(v)) for v in range(1, 101)]
    summary = ui_timing.summarise(rows)
    assert summary["whole_answer_ms"] == {"p50": 50.5, "p95": 95.0, "max": 100.0}
    assert ui_timing.summarise(rows[:1])["first_text_ms"] == {"p50": 1.0, "p95": 1.0, "max": 1.0}


def test_questions_are_first_turns_of_the_gold_set() -> None:
    questions = ui_timing.questions(ROOT / "evals" / "gold" / "seed.jsonl")
    assert "What share of microelectronics came from China?" in questions
    assert "What position does she hold?" not in questions  # a follow-up needs its conversation
