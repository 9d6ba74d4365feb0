"""Gold questions for the eval harness, read from JSONL (``docs/gold-format.md``).

One JSON object a line::

    {"id": "seed-001", "question": "What share of microelectronics came from China?",
     "answers": ["90%", "90 percent"],
     "evidence": [{"doc": "000_530c0abb2a07a6c4.txt", "quote": "In 2023, 90% of Russia's ..."}],
     "unanswerable": false, "history": []}

A malformed line is reported with its line number and skipped (``GoldSet.issues``); a missing
or empty file, or one with no valid line at all, is a ``GoldError``. Unknown fields are kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rag.errors import RagError
from rag.evals.normalize import DocSpan, normalize_answer

logger = logging.getLogger(__name__)


class GoldError(RagError):
    """A gold file cannot be used at all (missing, empty, nothing valid in it)."""


class GoldEvidence(BaseModel):
    """A passage that supports the answer: ``quote`` is an exact substring of document ``doc``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    doc: str = Field(min_length=1)
    quote: str = Field(min_length=1)


class GoldTurn(BaseModel):
    """An earlier turn of the conversation a follow-up question belongs to."""

    model_config = ConfigDict(frozen=True, extra="allow")

    question: str = Field(min_length=1)
    answer: str = ""


class GoldSide(BaseModel):
    """One side of a disagreement the answer must show: ``answer`` cited from document ``doc``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    doc: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class GoldItem(BaseModel):
    """One gold question. Invariant: unanswerable items have no answers and no evidence."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answers: list[str] = Field(default_factory=list)
    evidence: list[GoldEvidence] = Field(default_factory=list)
    unanswerable: bool = False
    history: list[GoldTurn] = Field(default_factory=list)
    # Provenance, judged only where the gold names it (None: not judged). ``attribution``: the
    # speaker phrases any one of which the answer's attribution must contain ([]: the claim is
    # not attributed, so none may be shown); ``disagreement``: every side the answer must show
    # ([]: the sources agree); ``as_of``: the date the answer is true as of.
    attribution: list[str] | None = None
    disagreement: list[GoldSide] | None = None
    as_of: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")

    @field_validator("attribution", mode="before")
    @classmethod
    def _one_speaker_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("answers")
    @classmethod
    def _answers_survive_normalisation(cls, answers: list[str]) -> list[str]:
        for answer in answers:
            if not normalize_answer(answer):
                raise ValueError(f"answer {answer!r} is empty after SQuAD normalisation")
        return answers

    @model_validator(mode="after")
    def _consistent(self) -> GoldItem:
        if self.unanswerable and (self.answers or self.evidence):
            raise ValueError(f"item {self.id!r} is unanswerable but has answers or evidence")
        if not self.unanswerable and not self.answers:
            raise ValueError(f"item {self.id!r} is answerable but has no answers")
        if self.unanswerable and (self.attribution or self.disagreement or self.as_of):
            raise ValueError(f"item {self.id!r} is unanswerable but names an attribution, disagreement or date")
        if self.disagreement is not None and len(self.disagreement) == 1:
            raise ValueError(f"item {self.id!r}: a disagreement has at least two sides")
        return self

    def history_dicts(self) -> list[dict[str, str]]:
        """The history as ``{"question", "answer"}`` dicts, the form ``Assistant.ask`` takes."""
        return [{"question": t.question, "answer": t.answer} for t in self.history]


@dataclass(frozen=True)
class GoldIssue:
    """A line of the gold file that was skipped, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class GoldSet:
    """The valid items of a gold file, in file order, and the lines that were skipped."""

    path: Path
    items: list[GoldItem]
    issues: list[GoldIssue] = field(default_factory=list)

    def by_id(self) -> dict[str, GoldItem]:
        return {item.id: item for item in self.items}


def parse_gold_line(line: str) -> GoldItem:
    """One gold item from one JSON line; ``ValueError`` with a short reason when malformed."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from e
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    try:
        return GoldItem.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = first.get("msg", "invalid")
        raise ValueError(f"{where}: {message}" if where else message) from None


def load_gold(path: str | Path) -> GoldSet:
    """Read a gold JSONL file; malformed lines become ``issues``, a useless file a GoldError.

    >>> gold = load_gold("evals/gold/seed.jsonl")  # doctest: +SKIP
    >>> gold.items[0].id
    'seed-001'
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GoldError(f"gold file {path} not found") from None
    except IsADirectoryError:
        raise GoldError(f"gold file {path} is a directory") from None
    except UnicodeDecodeError as e:
        raise GoldError(f"gold file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise GoldError(f"gold file {path}: {e.strerror or e}") from e
    items: list[GoldItem] = []
    issues: list[GoldIssue] = []
    seen: set[str] = set()
    lines = raw.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = parse_gold_line(line)
        except ValueError as e:
            issues.append(GoldIssue(number, str(e)))
            continue
        if item.id in seen:
            issues.append(GoldIssue(number, f"duplicate id {item.id!r}"))
            continue
        seen.add(item.id)
        items.append(item)
    for issue in issues:
        logger.warning("gold file %s %s (skipped)", path, issue)
    if not items:
        if not any(line.strip() for line in lines):
            raise GoldError(f"gold file {path} is empty")
        raise GoldError(f"gold file {path} has no valid items ({len(issues)} malformed lines; first: {issues[0]})")
    return GoldSet(path, items, issues)


def locate_evidence(
    items: list[GoldItem], text_of: Callable[[str], str | None]
) -> tuple[dict[str, list[DocSpan]], list[str]]:
    """Each item's evidence spans (first occurrence of each quote in its document), and problems.

    An evidence quote whose document is unknown, or that is not in the document's text, is left
    out of the item's spans and reported as a problem naming the item and the document.
    """
    spans: dict[str, list[DocSpan]] = {}
    problems: list[str] = []
    for item in items:
        found: list[DocSpan] = []
        for ev in item.evidence:
            text = text_of(ev.doc)
            if text is None:
                problems.append(f"{item.id}: evidence document {ev.doc!r} is not in the corpus")
                continue
            start = text.find(ev.quote)
            if start < 0:
                problems.append(f"{item.id}: evidence quote {ev.quote[:60]!r} is not in {ev.doc!r}")
                continue
            found.append(DocSpan(ev.doc, start, start + len(ev.quote)))
        spans[item.id] = found
    return spans, problems
