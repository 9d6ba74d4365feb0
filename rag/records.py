"""I/O records shared by every interface: the answer record of ``docs/answer-json.md``.

These are frozen pydantic models because they cross process boundaries (JSON on the CLI, the
UI's API, ``answers.jsonl`` of the eval harness). Field names are fixed by the spec; extra
fields are allowed and ignored when reading.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Citation(BaseModel):
    """One cited span: ``document_text(source)[start:end] == quote`` always holds when returned."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: int = Field(ge=1)
    source: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    quote: str

    @model_validator(mode="after")
    def _span_matches_quote(self) -> Citation:
        if self.end < self.start:
            raise ValueError(f"citation end ({self.end}) is before start ({self.start})")
        if self.end - self.start != len(self.quote):
            raise ValueError(
                f"citation span {self.start}:{self.end} has length {self.end - self.start} "
                f"but its quote has {len(self.quote)} characters"
            )
        return self


class Attribution(BaseModel):
    """Who a cited claim is attributed to ("a second official" in "..., a second official said"):
    ``document_text(source)[start:end] == text`` always holds when returned, like a citation."""

    model_config = ConfigDict(frozen=True, extra="allow")

    citation: int = Field(ge=1)  # the id of the citation whose claim this attributes
    source: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str = Field(min_length=1)

    @model_validator(mode="after")
    def _span_matches_text(self) -> Attribution:
        if self.end - self.start != len(self.text):
            raise ValueError(
                f"attribution span {self.start}:{self.end} has length {self.end - self.start} "
                f"but its text has {len(self.text)} characters"
            )
        return self


class Side(BaseModel):
    """One side of a disagreement: an answer of the same kind found in another document."""

    model_config = ConfigDict(frozen=True, extra="allow")

    answer: str  # copied from the quote of citation ``citation``
    citation: int = Field(ge=1)
    source: str
    as_of: str | None = None  # the source document's date, YYYY-MM-DD
    attribution: Attribution | None = None


class Turn(BaseModel):
    """One earlier turn of a conversation, oldest first in a history list."""

    model_config = ConfigDict(frozen=True, extra="allow")

    question: str
    answer: str = ""


class RetrievedPassage(BaseModel):
    """A passage the answer was drawn from (an extra field of the record, used by evals)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    source: str
    start: int
    end: int
    score: float


class Answer(BaseModel):
    """The answer record every interface returns (Python API, CLI ``--json``, evals, UI API)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    question: str
    standalone_question: str
    answer: str
    short_answer: str | None = None
    refused: bool = False
    citations: list[Citation] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    # Extras (allowed by the spec): what was retrieved, and which answerer produced the text.
    retrieved: list[RetrievedPassage] = Field(default_factory=list)
    answerer: str = "extractive"
    details: dict[str, Any] = Field(default_factory=dict)
    # Provenance (rag.answering.provenance): who the cited claim is attributed to, the date of
    # the document it is cited from, and, when documents give different answers of the same
    # kind, every side (the answer's own first), each cited. None / empty when there is none.
    attribution: Attribution | None = None
    as_of: str | None = None
    disagreement: list[Side] = Field(default_factory=list)


# A question about the present ("now", "currently") is answered as of the source's date.
_NOW = re.compile(r"\b(?:now|currently|current|today|presently|at present|still|latest|so far|to date)\b", re.I)
_LOWER_FIRST = frozenset("the a an its their his her one some several many most other".split())


def speaker_phrase(text: str) -> str:
    """A speaker as it reads after "according to": "The union ..." -> "the union ..."."""
    first, _, rest = text.partition(" ")
    return f"{first.lower()} {rest}".rstrip() if first.lower() in _LOWER_FIRST else text


def provenance_note(answer: Answer) -> str:
    """Who says the answer and as of when, to follow the short answer: ", according to a second
    official (2024-04-13)"; ", as of 2024-04-13" for a question about now; "" when neither is known."""
    if answer.refused:
        return ""
    who = f", according to {speaker_phrase(answer.attribution.text)}" if answer.attribution else ""
    if not answer.as_of:
        return who
    asks_now = _NOW.search(answer.standalone_question) or _NOW.search(answer.question)
    return f"{who}, as of {answer.as_of}" if asks_now else f"{who} ({answer.as_of})"


def provenance_line(answer: Answer) -> str | None:
    """The short answer, its citation, who says it and as of when:
    "90% [1], according to a second official (2024-04-13)"; None without a short answer or a note."""
    note = provenance_note(answer)
    if not note or not answer.short_answer:
        return None
    cited = answer.attribution.citation if answer.attribution else _citation_of(answer)
    marker = f" [{cited}]" if cited is not None else ""
    return f"{answer.short_answer}{marker}{note}"


def _citation_of(answer: Answer) -> int | None:
    span = answer.details.get("short_answer_span")
    if isinstance(span, dict) and isinstance(span.get("citation"), int):
        return span["citation"]
    return next((c.id for c in answer.citations if answer.short_answer and answer.short_answer in c.quote), None)
