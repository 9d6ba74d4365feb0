"""The eval harness end to end through the real ``rag`` CLI: the CI gate on the seed gold set,
the gate catching a deliberately weakened answerer, re-scoring, errors, and the SQuAD converter.

``test_seed_eval_passes_against_the_committed_baseline`` is how CI runs the seed eval: it fails
when a gating metric falls below ``evals/baselines/seed/metrics.json`` by more than 0.02.
After improving the answerer on purpose, regenerate the baseline: ``scripts/make_baselines.sh seed``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from rag.cli.common import EXIT_ERROR, EXIT_REGRESSION
from rag.cli.main import app
from rag.evals.gold import load_gold
from rag.evals.run import ANSWERS_FILE, METRICS_FILE, select_items
from rag.records import Answer
from tests.conftest import SQUAD_SLICE

ROOT = Path(__file__).resolve().parent.parent
SEED_GOLD = ROOT / "evals" / "gold" / "seed.jsonl"
SEED_BASELINE_DIR = ROOT / "evals" / "baselines" / "seed"
SEED_BASELINE = SEED_BASELINE_DIR / METRICS_FILE
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def clean_env(**extra: str) -> dict[str, str | None]:
    """The developer's RAG_* settings removed (the baseline uses defaults), plus ``extra``."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("RAG_") and not k.startswith("RAG_TEST_")}
    env.update(extra)
    return env


def rag(*args: str | Path, **env: str) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=clean_env(**env))


def scored_part(metrics_json: dict[str, Any]) -> dict[str, Any]:
    """What a re-score must reproduce exactly (the rest is run bookkeeping)."""
    return {k: metrics_json[k] for k in ("metrics", "counts", "items", "gold_issues")}


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_eval_commands_are_registered_with_the_documented_exit_codes() -> None:
    assert (EXIT_ERROR, EXIT_REGRESSION) == (1, 4)  # rag.cli.common's docstring and the README
    names = {c.name for c in app.registered_commands}
    assert {"eval", "score", "squad"} <= names


# -- the CI gate on the seed gold set ----------------------------------------------------------
@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory, seed_index_dir: Path) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("seed-eval")
    result = rag("eval", SEED_GOLD, "--index", seed_index_dir, "--out", out, "--baseline", SEED_BASELINE)
    return result, out


def test_seed_eval_passes_against_the_committed_baseline(seed_run: tuple[Result, Path]) -> None:
    result, out = seed_run
    assert result.exit_code == 0, f"seed eval regressed against {SEED_BASELINE}:\n{result.stderr}"
    assert "no regression against" in result.stderr
    assert "Gate: passed" in (out / "report.md").read_text(encoding="utf-8")


def test_seed_run_writes_records_report_and_plots(seed_run: tuple[Result, Path]) -> None:
    _, out = seed_run
    lines = (out / ANSWERS_FILE).read_text(encoding="utf-8").splitlines()
    gold = load_gold(SEED_GOLD)
    assert len(lines) == len(gold.items)
    for line, item in zip(lines, gold.items, strict=True):
        record = json.loads(line)
        assert next(iter(record)) == "id" and record["id"] == item.id
        answer = Answer.model_validate({k: v for k, v in record.items() if k != "id"})
        assert answer.question == item.question
    report = (out / "report.md").read_text(encoding="utf-8")
    for name in read_json(out / METRICS_FILE)["metrics"]:
        assert f"| {name} |" in report, name
    assert "| seed-001 |" in report and "never gate" in report
    for plot in ("metrics.png", "latency.png"):
        assert (out / plot).read_bytes()[:8] == PNG_MAGIC


def test_rescoring_a_saved_run_reproduces_its_metrics(seed_run: tuple[Result, Path], tmp_path: Path) -> None:
    _, out = seed_run
    result = rag("score", out, "--out", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert scored_part(read_json(tmp_path / METRICS_FILE)) == scored_part(read_json(out / METRICS_FILE))


def test_rescoring_the_committed_baseline_reproduces_it(tmp_path: Path) -> None:
    """The committed run folder is self-contained: its answers.jsonl re-scores to its metrics."""
    result = rag("score", SEED_BASELINE_DIR, "--out", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert scored_part(read_json(tmp_path / METRICS_FILE)) == scored_part(read_json(SEED_BASELINE))


def test_a_weakened_answerer_fails_the_gate_with_a_readable_diff(seed_index_dir: Path, tmp_path: Path) -> None:
    result = rag("eval", SEED_GOLD, "--index", seed_index_dir, "--out", tmp_path, "--baseline", SEED_BASELINE,
                 RAG_RETRIEVAL__KEEP_ONLY_LAST="true")
    assert result.exit_code == EXIT_REGRESSION, result.output
    assert f"regression against {SEED_BASELINE}" in result.stderr
    assert "answer_accuracy:" in result.stderr and "vs baseline" in result.stderr
    assert "newly failing: seed-001: What share of microelectronics came from China?" in result.stderr
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "**Gate: FAILED.**" in report and "keep_only_last on" in report
    assert "### Newly failing" in report and "- seed-001: What share of microelectronics" in report
    assert "| REGRESSED |" in report


# -- errors and gold problems ------------------------------------------------------------------
def test_a_missing_gold_file_is_one_error_line(tmp_path: Path) -> None:
    result = rag("eval", tmp_path / "none.jsonl", "--corpus", ROOT / "corpus", "--out", tmp_path / "out")
    assert result.exit_code == EXIT_ERROR
    assert result.stderr.strip().splitlines() == [f"error: gold file {tmp_path / 'none.jsonl'} not found"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give exactly one of --index DIR or --corpus DIR"),
        (["--index", "x", "--corpus", "y"], "give exactly one of --index DIR or --corpus DIR"),
        (["--corpus", "corpus", "--baseline", "missing.json"], "baseline missing.json not found"),
        (["--index", "no-such-index"], "no index at no-such-index"),
    ],
)
def test_run_that_cannot_be_made_exits_1(tmp_path: Path, extra: list[str], message: str) -> None:
    result = rag("eval", SEED_GOLD, "--out", tmp_path, *extra)
    assert result.exit_code == EXIT_ERROR, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr


def test_rescoring_a_folder_without_a_run_is_an_error(tmp_path: Path) -> None:
    result = rag("score", tmp_path)
    assert result.exit_code == EXIT_ERROR
    assert result.stderr.strip() == f"error: run file {tmp_path / 'run.json'} not found"


def test_malformed_gold_lines_are_reported_and_the_run_goes_on(seed_index_dir: Path, tmp_path: Path) -> None:
    first = SEED_GOLD.read_text(encoding="utf-8").splitlines()[0]
    gold = tmp_path / "gold.jsonl"
    gold.write_text(first + "\n{broken\n", encoding="utf-8")
    result = rag("eval", gold, "--index", seed_index_dir, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"warning: gold {gold} line 2: not valid JSON" in result.stderr
    assert "line 2: not valid JSON" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert read_json(tmp_path / "out" / METRICS_FILE)["counts"]["items"] == 1


def test_select_items_limits_and_samples_reproducibly() -> None:
    items = load_gold(SEED_GOLD).items
    assert [i.id for i in select_items(items, limit=3)] == ["seed-001", "seed-002", "seed-003"]
    sample = select_items(items, sample=10, seed=7)
    assert len(sample) == 10 and sample == select_items(items, sample=10, seed=7)
    assert [i.id for i in sample] == sorted(i.id for i in sample)  # file order kept
    assert select_items(items, sample=10, seed=8) != sample


# -- the SQuAD adapter -------------------------------------------------------------------------
TINY_SQUAD = {"version": "v2.0", "data": [
    {"title": "Tiny Article", "paragraphs": [
        {"context": "Mr. Smith founded the town in 1066. It grew fast.", "qas": [
            {"id": "q1", "question": "When was the town founded?", "is_impossible": False,
             "answers": [{"text": "1066", "answer_start": 30}, {"text": "in 1066", "answer_start": 27}]},
            {"id": "q2", "question": "Who burned it?", "is_impossible": True, "answers": [],
             "plausible_answers": [{"text": "Smith", "answer_start": 4}]}]},
        {"context": "It grew fast. Trade came from the sea.", "qas": [
            {"id": "q3", "question": "Where did trade come from?", "is_impossible": False,
             "answers": [{"text": "the sea", "answer_start": 30}]},
            {"id": "q4", "question": "What grew fast?", "is_impossible": False,
             "answers": [{"text": "It grew fast", "answer_start": 0}]}]}]},
    {"title": "Second/One", "paragraphs": [{"context": "Only text.", "qas": []}]},
]}


def test_squad_converter_keeps_offsets_exact(tmp_path: Path) -> None:
    source = tmp_path / "squad.json"
    source.write_text(json.dumps(TINY_SQUAD), encoding="utf-8")
    result = rag("squad", source, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "2 articles" in result.stdout and "4 questions (1 unanswerable)" in result.stdout
    corpus = tmp_path / "out" / "corpus"
    assert sorted(p.name for p in corpus.iterdir()) == ["01_Tiny_Article.txt", "02_Second_One.txt"]
    text = (corpus / "01_Tiny_Article.txt").read_text(encoding="utf-8")
    assert text == "Mr. Smith founded the town in 1066. It grew fast.\n\nIt grew fast. Trade came from the sea."
    items = {i.id: i for i in load_gold(tmp_path / "out" / "gold.jsonl").items}
    assert items["q1"].answers == ["1066", "in 1066"]
    assert [e.quote for e in items["q1"].evidence] == ["Mr. Smith founded the town in 1066."]  # no split at "Mr."
    assert items["q2"].unanswerable and items["q2"].answers == [] and items["q2"].evidence == []
    assert [e.quote for e in items["q3"].evidence] == ["Trade came from the sea."]
    # "It grew fast." occurs first in paragraph 1, so the second paragraph's copy falls back to
    # the whole paragraph, which the harness then locates at the right place.
    assert [e.model_extra["kind"] for e in items["q4"].evidence] == ["paragraph"]
    assert text.find(items["q4"].evidence[0].quote) == text.index("\n\n") + 2
    again = rag("squad", source, "--out", tmp_path / "out")
    assert again.exit_code == EXIT_ERROR and "pass --force" in again.stderr


@pytest.mark.parametrize(("content", "expected"), [
    (None, "not found"),
    ('{"data": [', "cannot be read (Expecting value"),
    ('[1, 2]', "must hold a JSON object"),
    ('{"version": "v2.0"}', "has no 'data' list of articles"),
])
def test_squad_converter_names_a_bad_file_in_one_line(tmp_path: Path, content: str | None, expected: str) -> None:
    source = tmp_path / "squad.json"
    if content is not None:
        source.write_text(content, encoding="utf-8")
    result = rag("squad", source, "--out", tmp_path / "out")
    assert result.exit_code == EXIT_ERROR
    assert result.stderr.count("\n") == 1 and f"SQuAD file {source} {expected}" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_squad_converter_on_the_public_slice(tmp_path: Path) -> None:
    result = rag("squad", SQUAD_SLICE, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    gold = load_gold(tmp_path / "gold.jsonl")
    assert gold.issues == [] and len(gold.items) == 3896
    texts = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "corpus").iterdir()}
    assert len(texts) == 11
    raw = json.loads(SQUAD_SLICE.read_text(encoding="utf-8"))
    expected_starts = {}
    for article in raw["data"]:
        offset = 0
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                expected_starts[qa["id"]] = [offset + a["answer_start"] for a in qa["answers"]]
            offset += len(para["context"]) + 2
    for item in gold.items:
        assert item.unanswerable == (not expected_starts[item.id])
        for ev in item.evidence:
            start = texts[ev.doc].find(ev.quote)
            assert start >= 0
            # the evidence located by first occurrence holds one annotator's answer
            assert any(start <= s < start + len(ev.quote) for s in expected_starts[item.id]), item.id


@pytest.mark.slow
def test_squad_sample_eval_runs_end_to_end(tmp_path: Path) -> None:
    assert rag("squad", SQUAD_SLICE, "--out", tmp_path / "squad").exit_code == 0
    result = rag("eval", tmp_path / "squad" / "gold.jsonl", "--corpus", tmp_path / "squad" / "corpus",
                 "--out", tmp_path / "run", "--sample", "40")
    assert result.exit_code == 0, result.output
    data = read_json(tmp_path / "run" / METRICS_FILE)
    assert data["counts"]["items"] == 40 and data["metrics"]["citation_exactness"] == 1.0
    rescored = rag("score", tmp_path / "run", "--out", tmp_path / "again")
    assert rescored.exit_code == 0, rescored.stderr
    assert scored_part(read_json(tmp_path / "again" / METRICS_FILE)) == scored_part(data)
