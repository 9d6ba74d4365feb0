"""I/O records shared by every interface: the answer record of ``docs/answer-json.md``.

These are frozen pydantic models because they cross process boundaries (JSON on the CLI, the
UI's API, ``answers.jsonl`` of the eval harness). Field names are fixed by the spec; extra
fields are allowed and ignored when reading.
"""

from __future__ import annotations

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
