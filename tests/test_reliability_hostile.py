"""Hostile input: a corpus folder built to break ingest, and questions built to break asking.

The corpus holds a symlink loop, a self-referencing and a dangling symlink, a 200 MB (sparse)
file, a FIFO and a link to /dev/zero (either would hang a naive reader), a name that is not
UTF-8, names with spaces, quotes, newlines and shell metacharacters, a 30-deep folder and the
same text under two names. Every bad file is skipped with a reason, every good one is
ingested under its exact name, the big one is never read, nothing runs through a shell and
what was stored before is untouched. Questions that are empty, control characters only,
100,000 characters long, in German, Chinese or Arabic, an SQL fragment or emoji get a
``QueryError`` with a clear message or an honest answer.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.errors import QueryError
from rag.records import Answer

from .conftest import CORPUS, SEED_SOURCE, make_settings
from .test_reliability_crash import catalog_rows, index_state, run_rag

pytestmark = pytest.mark.timeout(300)

DEEP = "/".join(f"d{i:02d}" for i in range(30)) + "/deep.txt"
CANARY = "CANARY_SHELL_RAN"
GOOD: dict[str, str] = {
    "a b.txt": "The lighthouse at Ness Point was painted red in 1911. Its lamp burned paraffin.\n",
    "it's \"quoted\".md": "# Quoted\n\nThe ferry to Skye left at dawn every Tuesday. It carried sheep and mail.\n",
    "$(rm -rf ~);x.txt": "The keeper of the lighthouse was Agnes Thorne. She kept the log for forty years.\n",
    f"$(touch {CANARY}) `touch {CANARY}`.txt": "The granary stored barley from the eastern farms.\n",
    "-rf --prune.txt": "A lifeboat station opened at the harbour mouth in 1868.\n",
    "new\nline.txt": "The clock tower chimes every quarter hour since 1902.\n",
    "café ünïcode 文件.txt": "The bakery on Mill Lane sold rye bread and honey cakes.\n",
    DEEP: "The deepest mine shaft in the valley reached 412 metres.\n",
    "dup one.txt": "The smelting works employed 730 workers at its peak in 1926.\n",
    "dup two.txt": "The smelting works employed 730 workers at its peak in 1926.\n",
}
BIG = "big.txt"
BIG_BYTES = 200_000_000


def build_hostile_corpus(root: Path) -> dict[str, str]:
    """Write the corpus under ``root``; return {shown file name: expected skip reason prefix}."""
    root.mkdir(parents=True)
    shutil.copyfile(CORPUS / SEED_SOURCE, root / SEED_SOURCE)
    for name, text in GOOD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    with open(root / BIG, "wb") as f:  # sparse: 200 MB long, no blocks written
        f.truncate(BIG_BYTES)
    os.symlink("..", root / "loop")  # a directory loop: loop/loop/loop/...
    os.symlink("self.txt", root / "self.txt")  # a link to itself
    os.symlink("nowhere.txt", root / "dangling.txt")
    os.symlink("/dev/zero", root / "zero.txt")  # reads never end
    os.mkfifo(root / "fifo.txt")  # a read blocks until someone writes
    bad = os.fsencode(root) + b"/bad\xff name.txt"  # not UTF-8
    with open(bad, "wb") as f:
        f.write(b"The tannery closed in 1931.\n")
    return {
        BIG: "file is 200.0 MB, over the 50.0 MB limit",
        "self.txt": "broken symbolic link",
        "dangling.txt": "broken symbolic link",
        "zero.txt": "not a regular file",
        "fifo.txt": "not a regular file",
        "bad\\xff name.txt": "file name is not valid UTF-8",
    }


@pytest.fixture()
def seeded(tmp_path: Path, embedder: object) -> Assistant:
    """An index that already holds the seed article (what must not be lost)."""
    assistant = Assistant.open(settings=make_settings(tmp_path / "idx"), create=True, embedder=embedder)  # type: ignore[arg-type]
    assistant.ingest([CORPUS])
    return assistant


def test_hostile_corpus_is_ingested_with_reasons_and_nothing_lost(
    tmp_path: Path, seeded: Assistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected_skips = build_hostile_corpus(tmp_path / "corpus")
    seed_id = seeded.documents()[0].id
    before = {k: [r for r in v if seed_id in map(str, r)] for k, v in catalog_rows(seeded.index.dir).items() if k != "meta"}
    read: list[str] = []
    real_read_bytes = Path.read_bytes

    def tracking_read_bytes(self: Path) -> bytes:
        read.append(self.name)
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", tracking_read_bytes)
    report = seeded.ingest([tmp_path / "corpus"], root=tmp_path / "corpus")
    skipped = {os.path.basename(path): reason for path, reason in report.skipped}
    assert set(skipped) == set(expected_skips), skipped
    for name, reason in expected_skips.items():
        assert skipped[name].startswith(reason), (name, skipped[name])
    assert BIG not in read and "fifo.txt" not in read and "zero.txt" not in read
    assert sorted(report.added) == sorted(GOOD) and report.unchanged == [SEED_SOURCE]
    sources = [d.source for d in seeded.documents()]
    assert not any(s.startswith("loop/") for s in sources)  # the loop was not followed
    assert DEEP in sources
    for name, text in GOOD.items():
        assert seeded.document_text(name) == text
    after = {k: [r for r in v if seed_id in map(str, r)] for k, v in catalog_rows(seeded.index.dir).items() if k != "meta"}
    assert after == before  # the seed document's rows are untouched
    index_state(seeded.index)
    assert not list(tmp_path.rglob(CANARY)) and not (Path.cwd() / CANARY).exists()


def test_weird_names_are_cited_exactly(tmp_path: Path, seeded: Assistant) -> None:
    build_hostile_corpus(tmp_path / "corpus")
    seeded.ingest([tmp_path / "corpus"], root=tmp_path / "corpus")
    for question, source, needle in [
        ("Who was the keeper of the lighthouse?", "$(rm -rf ~);x.txt", "Agnes Thorne"),
        ("When did the ferry to Skye leave?", "it's \"quoted\".md", "dawn"),
        ("How deep was the deepest mine shaft?", DEEP, "412"),
        ("What did the bakery on Mill Lane sell?", "café ünïcode 文件.txt", "rye"),
    ]:
        answer = seeded.ask(question)
        assert not answer.refused, question
        assert answer.citations[0].source == source and needle in answer.citations[0].quote
        assert_honest(seeded, answer)
    dup = seeded.ask("How many workers did the smelting works employ?")
    assert "730" in (dup.short_answer or "") and {c.source for c in dup.citations} <= {"dup one.txt", "dup two.txt"}
    quotes = [c.quote for c in dup.citations]
    assert len(quotes) == len(set(quotes))  # the duplicate sentence is cited once


def test_cli_reports_each_skipped_file_on_one_line(tmp_path: Path) -> None:
    expected_skips = build_hostile_corpus(tmp_path / "corpus")
    done = run_rag("ingest", str(tmp_path / "corpus"), "--index", str(tmp_path / "idx"))
    assert done.returncode == 3, done.stderr  # finished, some files skipped
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == len(expected_skips), lines
    for name, reason in expected_skips.items():
        assert any(line.startswith(f"skipped {tmp_path / 'corpus'}/{name}: {reason}") for line in lines), (name, lines)
    assert f"added {len(GOOD) + 1}," in done.stdout
    assert not list(tmp_path.rglob(CANARY))


# -- questions --------------------------------------------------------------------------------
def assert_honest(assistant: Assistant, answer: Answer) -> None:
    for c in answer.citations:
        assert assistant.document_text(c.source)[c.start : c.end] == c.quote
    if answer.refused:
        assert answer.short_answer is None and not answer.citations


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("", "question is empty"),
        ("  \n\t  ", "question is empty"),
        ("\x00\x01\x07\x1b\x7f\u200b\u2028", "question is empty"),
        ("x" * 100_000, "100,000 characters long"),
        ("why " * 25_000, "100,000 characters long"),
    ],
    ids=["empty", "white-space", "control-chars", "100k-chars", "100k-words"],
)
def test_bad_questions_get_a_clear_error(seed_copy: Path, embedder: object, question: str, message: str) -> None:
    assistant = Assistant.open(settings=make_settings(seed_copy), embedder=embedder)  # type: ignore[arg-type]
    with pytest.raises(QueryError, match=message) as caught:
        assistant.ask(question)
    assert "\n" not in str(caught.value)


ODD_QUESTIONS = {
    "german": "Wie viel Prozent der Mikroelektronik kamen aus China?",
    "chinese": "俄罗斯的微电子产品有多少来自中国？",
    "arabic": "ما هي نسبة الإلكترونيات الدقيقة التي جاءت من الصين؟",
    "sql": "'; DROP TABLE documents; -- \" OR 1=1",
    "emoji": "🤔🤔🤔 🇨🇳➡️🇷🇺?",
    "lone-surrogate": "\ud800 what share of microelectronics came from China?",
    "longest-allowed": ("microelectronics China imports " * 100)[:2000],
    "one-huge-token": "a" * 1999,
}


def test_odd_questions_get_honest_answers_and_change_nothing(seed_copy: Path, embedder: object) -> None:
    before = catalog_rows(seed_copy)
    assistant = Assistant.open(settings=make_settings(seed_copy), embedder=embedder)  # type: ignore[arg-type]
    for name, question in ODD_QUESTIONS.items():
        answer = assistant.ask(question)
        assert_honest(assistant, answer)
        assert answer.answer, name
    noisy = assistant.ask("What share\x00 of micro\u200belectronics\x1b[31m came from China?\x07")
    assert noisy.short_answer == "90%"  # control characters are dropped, the question still works
    assert catalog_rows(seed_copy) == before


def test_cli_bad_questions_are_one_line_errors(seed_copy: Path) -> None:
    for question in ("", "\x01\x02", "y" * 100_000):
        done = run_rag("ask", question, "--index", str(seed_copy), plain=True)
        assert done.returncode == 1 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr
