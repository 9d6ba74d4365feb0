"""Provenance metrics: attribution, date and disagreement against gold items that name them.

Pure functions over answer records (plain dicts, as read back from ``answers.jsonl``), gold items
and document texts, like ``rag.evals.metrics``. An item is judged on a measure only when its gold
names it (``attribution``, ``disagreement``, ``as_of`` not null), so gold sets without these
fields (the seed set, SQuAD) get no provenance metrics and their metrics.json is unchanged.

- An attribution is **right** when it verifies (``document_text(source)[start:end] == text``)
  and its text contains one of the gold speaker phrases (SQuAD-normalised, whole words).
  Precision: right / shown, over judged items (one shown where the gold says [] is wrong).
  Recall: right / judged items whose gold names a speaker.
- A gold disagreement is **covered** when every gold side is among the record's sides: its
  answer contains the side's answer, its source is the side's document, and the citation it
  names exists, lies in that document and verifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rag.evals.gold import GoldItem, GoldSide
from rag.evals.metrics import MetricInfo, TextOf, contains_answer

PROVENANCE_METRICS: dict[str, MetricInfo] = {
    "attribution_precision": MetricInfo("attributions shown that verify and name a gold speaker (items whose gold names attribution)"),
    "attribution_recall": MetricInfo("items whose gold names a speaker that show a verified attribution naming it"),
    "as_of_accuracy": MetricInfo("items whose gold names a date: the answer's as_of is that date"),
    "disagreement_coverage": MetricInfo("gold disagreements shown with every side answered, in its document, cited exactly"),
    "disagreement_false_rate": MetricInfo(
        "items whose gold says the sources agree that show a disagreement (lower is better)", higher_is_better=False
    ),
}


@dataclass(frozen=True)
class ProvenanceScore:
    """One record's provenance against its gold item (None: the gold does not judge it)."""

    id: str
    attribution_shown: bool | None
    attribution_right: bool | None
    attribution_expected: bool | None
    as_of_right: bool | None
    disagreement_expected: bool | None
    disagreement_shown: bool
    disagreement_covered: bool | None


def _verifies(text_of: TextOf, source: object, start: object, end: object, quote: object) -> bool:
    if not isinstance(source, str) or type(start) is not int or type(end) is not int or not isinstance(quote, str):
        return False
    text = text_of(source)
    return text is not None and 0 <= start < end <= len(text) and text[start:end] == quote


def attribution_right(record: Mapping[str, Any], speakers: Sequence[str], text_of: TextOf) -> bool:
    """The record's attribution verifies and names one of ``speakers``."""
    a = record.get("attribution")
    if not isinstance(a, Mapping) or not speakers:
        return False
    return _verifies(text_of, a.get("source"), a.get("start"), a.get("end"), a.get("text")) and contains_answer(
        str(a.get("text")), speakers
    )


def side_shown(record: Mapping[str, Any], side: GoldSide, text_of: TextOf) -> bool:
    """A record side answers ``side.answer`` from ``side.doc`` with a citation that verifies."""
    citations = {c.get("id"): c for c in record.get("citations") or [] if isinstance(c, Mapping)}
    for s in record.get("disagreement") or []:
        if not isinstance(s, Mapping) or s.get("source") != side.doc or not contains_answer(str(s.get("answer")), [side.answer]):
            continue
        c = citations.get(s.get("citation"))
        if c is not None and c.get("source") == side.doc and _verifies(text_of, c.get("source"), c.get("start"), c.get("end"), c.get("quote")):
            return True
    return False


def score_provenance(record: Mapping[str, Any], item: GoldItem, text_of: TextOf) -> ProvenanceScore:
    """Score one answer record's attribution, date and disagreement against its gold item."""
    failed = bool(record.get("error"))
    shown = bool(record.get("disagreement")) and not failed
    judged = item.attribution is not None
    return ProvenanceScore(
        id=item.id,
        attribution_shown=(isinstance(record.get("attribution"), Mapping) and not failed) if judged else None,
        attribution_right=(not failed and attribution_right(record, item.attribution or [], text_of)) if judged else None,
        attribution_expected=bool(item.attribution) if judged else None,
        as_of_right=(record.get("as_of") == item.as_of and not failed) if item.as_of is not None else None,
        disagreement_expected=bool(item.disagreement) if item.disagreement is not None else None,
        disagreement_shown=shown,
        disagreement_covered=(
            not failed and all(side_shown(record, side, text_of) for side in item.disagreement)
            if item.disagreement
            else None
        ),
    )


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def aggregate_provenance(scores: Sequence[ProvenanceScore]) -> dict[str, float | None]:
    """Every metric of ``PROVENANCE_METRICS``; {} when no item is judged on any of them."""
    judged = [s for s in scores if s.attribution_shown is not None]
    dated = [s for s in scores if s.as_of_right is not None]
    disputed = [s for s in scores if s.disagreement_expected]
    agreed = [s for s in scores if s.disagreement_expected is False]
    if not (judged or dated or disputed or agreed):
        return {}
    values = {
        "attribution_precision": _ratio(sum(bool(s.attribution_right) for s in judged), sum(bool(s.attribution_shown) for s in judged)),
        "attribution_recall": _ratio(
            sum(bool(s.attribution_right) for s in judged if s.attribution_expected),
            sum(bool(s.attribution_expected) for s in judged),
        ),
        "as_of_accuracy": _ratio(sum(bool(s.as_of_right) for s in dated), len(dated)),
        "disagreement_coverage": _ratio(sum(bool(s.disagreement_covered) for s in disputed), len(disputed)),
        "disagreement_false_rate": _ratio(sum(s.disagreement_shown for s in agreed), len(agreed)),
    }
    assert list(values) == list(PROVENANCE_METRICS)
    return values


def provenance_counts(scores: Sequence[ProvenanceScore]) -> dict[str, int]:
    """How many items each provenance metric was computed over."""
    return {
        "attribution_judged": sum(s.attribution_shown is not None for s in scores),
        "attribution_expected": sum(bool(s.attribution_expected) for s in scores),
        "attribution_shown": sum(bool(s.attribution_shown) for s in scores),
        "dated": sum(s.as_of_right is not None for s in scores),
        "disagreements": sum(bool(s.disagreement_expected) for s in scores),
        "agreements": sum(s.disagreement_expected is False for s in scores),
    }
