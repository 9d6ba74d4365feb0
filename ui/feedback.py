"""What the page tells a user about their input, in a line each: the status under the question
box, the character counter, the hint under the date fields, and the note that only English is
supported. Text is escaped; nothing here touches the index.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

from ui.render import text

DATE_EXAMPLE = "2024-04-13"
# A non-English guess must be this sure before the note is shown: short English questions with
# unusual names ("When did Talvik open?") are sometimes guessed as German at about 0.94.
LANGUAGE_CONFIDENCE = 0.99
_MIN_LANGUAGE_WORDS = 3


def status_html(message: str = "", kind: str = "info") -> str:
    """The one-line status under the question box ("" hides it); ``kind`` is info or error."""
    if not message:
        return '<div class="rag-status"></div>'
    role = ' role="alert"' if kind == "error" else ' role="status"'
    return f'<div class="rag-status rag-status-{text(kind)}"{role}>{text(message)}</div>'


def counter_html(limit: int) -> str:
    """The character counter's starting HTML; the page script keeps it up to date as one types
    (``data-limit`` is what it compares with)."""
    return (
        f'<div class="rag-counter" data-limit="{limit}" aria-live="polite">'
        f'<span class="rag-count">0</span> / {limit:,} characters</div>'
    )


def too_long(question: str, limit: int) -> str | None:
    """The status for a question over ``limit`` characters, or None."""
    if len(question) <= limit:
        return None
    return (f"Your question is {len(question):,} characters long; the limit is {limit:,}. "
            "Shorten it and send it again: nothing was cut or sent.")


def _date_problem(label: str, value: str) -> str | None:
    try:
        if len(value) == 10:
            dt.date.fromisoformat(value)
            return None
    except ValueError:
        pass
    return f"{label}: “{value}” is not a date. Write it as YYYY-MM-DD, e.g. {DATE_EXAMPLE}."


def date_problem(date_from: str | None, date_to: str | None) -> str | None:
    """What is wrong with the settings' date fields, in the fields' own words, or None."""
    start, end = (date_from or "").strip(), (date_to or "").strip()
    for label, value in (("Published from", start), ("Published until", end)):
        if value and (problem := _date_problem(label, value)):
            return problem
    if start and end and start > end:
        return f"“Published from” ({start}) is after “Published until” ({end})."
    return None


def date_hint_html(problem: str | None) -> str:
    if not problem:
        return '<div class="rag-date-hint"></div>'
    return f'<div class="rag-date-hint" role="alert">{text(problem)}</div>'


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from langid.langid import LanguageIdentifier, model  # ~1 s to load the model: once, on first use

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def language_note(question: str) -> str | None:
    """"Only English is supported" when ``question`` is confidently another language, else None.

    >>> language_note("Wie viel Prozent der Mikroelektronik kam aus China?")
    'Only English is supported: questions in other languages are usually refused. Ask in English.'
    """
    if len(question.split()) < _MIN_LANGUAGE_WORDS:
        return None
    language, confidence = _identifier().classify(question)
    if language == "en" or confidence < LANGUAGE_CONFIDENCE:
        return None
    return "Only English is supported: questions in other languages are usually refused. Ask in English."
