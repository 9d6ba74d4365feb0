"""Eval metrics: pure functions over answer records, gold items and document texts.

Everything here is computed from what ``answers.jsonl`` and the gold file hold (plus the
document texts that citation offsets index into), so re-scoring a saved run gives the same
numbers as the run that wrote it. Records are plain dicts as read back from JSON.

Normalisation and EM/F1 follow the official SQuAD 2.0 evaluation script (Rajpurkar et al.
2018): lower case, punctuation and the articles a/an/the removed, white space collapsed; an
unanswerable question's gold answer is the empty string and a refusal predicts it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rag.evals.gold import GoldItem
from rag.evals.normalize import DocSpan, exact_match, f1_score, normalize_answer  # the scores are re-exported here

DEFAULT_K = 5
DEFAULT_TOLERANCE = 0.02

TextOf = Callable[[str], str | None]


@dataclass(frozen=True)
class MetricInfo:
    """How to read a metric: one line of meaning, which way is better, whether it gates CI."""

    description: str
    higher_is_better: bool = True
    gates: bool = True


# The order here is the order of the report's summary table.
METRICS: dict[str, MetricInfo] = {
    "pass_rate": MetricInfo("share of questions passed: answerable ones answered correctly, unanswerable ones refused"),
    "answer_accuracy": MetricInfo(
        "answerable: a gold answer (SQuAD-normalised) occurs as whole words in short_answer, or in answer when short_answer is null"
    ),
    "squad_em": MetricInfo("official SQuAD 2.0 exact match of short_answer (else answer; a refusal predicts '') over all items"),
    "squad_f1": MetricInfo("official SQuAD 2.0 token F1 of short_answer (else answer; a refusal predicts '') over all items"),
    "citation_exactness": MetricInfo("share of all citations whose document_text(source)[start:end] == quote"),
    "evidence_hit_rate": MetricInfo("answerable items with evidence: some citation overlaps a gold evidence span"),
    "citation_precision": MetricInfo("citations on answerable items with evidence that overlap some gold evidence span"),
    "citation_recall": MetricInfo("gold evidence quotes (answerable items) overlapped by at least one citation"),
    "answer_in_citation": MetricInfo("answerable: a gold answer occurs (normalised, whole words) inside a cited quote"),
    "refusal_accuracy": MetricInfo("unanswerable items that were refused"),
    "false_refusal_rate": MetricInfo("answerable items that were refused (lower is better)", higher_is_better=False),
    "retrieval_recall_at_1": MetricInfo("answerable items with evidence: the first retrieved passage overlaps gold evidence"),
    "retrieval_recall_at_k": MetricInfo("answerable items with evidence: one of the first k retrieved passages overlaps gold evidence"),
    "retrieval_mrr": MetricInfo("mean of 1/rank of the first retrieved passage overlapping gold evidence (0 if none)"),
    "latency_p50_ms": MetricInfo("median of timings_ms.total per question (reported, never gates: too noisy)", False, False),
    "latency_p95_ms": MetricInfo("95th percentile of timings_ms.total (reported, never gates: too noisy)", False, False),
}


def contains_answer(text: str | None, golds: Sequence[str]) -> bool:
    """True when some normalised gold answer occurs in the normalised text as whole words.

    Whole words, so "90" is not found in "1990" and "no" not in "not".
    """
    if not text:
        return False
    haystack = f" {normalize_answer(text)} "
    return any((g := normalize_answer(gold)) and f" {g} " in haystack for gold in golds)


# -- one item ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemScore:
    """What one answer record earned against its gold item (None: the measure does not apply)."""

    id: str
    answerable: bool
    passed: bool
    refused: bool
    correct: bool | None
    em: float
    f1: float
    evidence_hit: bool | None
    answer_in_citation: bool | None
    citations: int
    exact_citations: int
    citations_on_evidence: int | None
    evidence_spans: int
    evidence_covered: int
    first_relevant_rank: int | None
    latency_ms: float | None
    error: str | None = None

    def outcome(self) -> dict[str, Any]:
        """The per-item part of metrics.json (what a later run is compared against)."""
        keep = ("passed", "refused", "correct", "em", "f1", "evidence_hit", "first_relevant_rank")
        return {k: v for k, v in asdict(self).items() if k in keep}


def record_citations(record: Mapping[str, Any]) -> list[tuple[DocSpan, str]]:
    """The record's citations as (span, quote) pairs; malformed entries are skipped."""
    out: list[tuple[DocSpan, str]] = []
    for c in record.get("citations") or []:
        try:
            out.append((DocSpan(str(c["source"]), int(c["start"]), int(c["end"])), str(c["quote"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def record_retrieved(record: Mapping[str, Any]) -> list[DocSpan]:
    """The retrieved passages of a record, best first."""
    out: list[DocSpan] = []
    for p in record.get("retrieved") or []:
        try:
            out.append(DocSpan(str(p["source"]), int(p["start"]), int(p["end"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def citation_is_exact(span: DocSpan, quote: str, text_of: TextOf) -> bool:
    """The citation invariant: ``document_text(source)[start:end] == quote``."""
    text = text_of(span.source)
    return text is not None and 0 <= span.start <= span.end <= len(text) and text[span.start : span.end] == quote


def score_item(record: Mapping[str, Any], item: GoldItem, evidence: Sequence[DocSpan], text_of: TextOf) -> ItemScore:
    """Score one answer record against its gold item and the item's located evidence spans."""
    failed = bool(record.get("error"))  # the question raised: wrong whatever the gold says
    refused = bool(record.get("refused", False)) and not failed
    short = record.get("short_answer")
    answer = record.get("answer") or ""
    cited = record_citations(record)
    # What the system said, for EM/F1: a refusal predicts "" (SQuAD 2.0's no-answer); an answer
    # without a short answer is still an answer, so it predicts its text rather than "".
    prediction = "" if refused else str(short or answer)
    answerable = not item.unanswerable
    correct: bool | None = None
    in_citation: bool | None = None
    if answerable:
        correct = not refused and contains_answer(str(short) if short else answer, item.answers)
        in_citation = not refused and any(contains_answer(q, item.answers) for _, q in cited)
    with_evidence = answerable and bool(evidence)
    on_evidence = [any(s.overlaps(e) for e in evidence) for s, _ in cited]
    covered = sum(any(s.overlaps(e) for s, _ in cited) for e in evidence) if answerable else 0
    rank = next(
        (i for i, p in enumerate(record_retrieved(record), start=1) if any(p.overlaps(e) for e in evidence)), None
    )
    total = (record.get("timings_ms") or {}).get("total")
    return ItemScore(
        id=item.id,
        answerable=answerable,
        passed=bool(correct) if answerable else refused,
        refused=refused,
        correct=correct,
        em=0.0 if failed else exact_match(prediction, item.answers),
        f1=0.0 if failed else f1_score(prediction, item.answers),
        evidence_hit=any(on_evidence) if with_evidence else None,
        answer_in_citation=in_citation,
        citations=len(cited),
        exact_citations=sum(citation_is_exact(s, q, text_of) for s, q in cited),
        citations_on_evidence=sum(on_evidence) if with_evidence else None,
        evidence_spans=len(evidence) if answerable else 0,
        evidence_covered=covered,
        first_relevant_rank=rank if with_evidence else None,
        latency_ms=float(total) if isinstance(total, int | float) else None,
        error=str(record["error"]) if failed else None,
    )


# -- aggregation -------------------------------------------------------------------------------
def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q ({q}) must lie within 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def aggregate(scores: Sequence[ItemScore], k: int = DEFAULT_K) -> dict[str, float | None]:
    """Every metric of ``METRICS`` over the item scores (None where no item qualifies)."""
    if k < 1:
        raise ValueError(f"k ({k}) must be at least 1")
    answerable = [s for s in scores if s.answerable]
    unanswerable = [s for s in scores if not s.answerable]
    with_evidence = [s for s in answerable if s.evidence_hit is not None]
    ranks = [s.first_relevant_rank for s in with_evidence]
    latencies = [s.latency_ms for s in scores if s.latency_ms is not None]
    values: dict[str, float | None] = {
        "pass_rate": _mean([float(s.passed) for s in scores]),
        "answer_accuracy": _mean([float(bool(s.correct)) for s in answerable]),
        "squad_em": _mean([s.em for s in scores]),
        "squad_f1": _mean([s.f1 for s in scores]),
        "citation_exactness": _ratio(sum(s.exact_citations for s in scores), sum(s.citations for s in scores)),
        "evidence_hit_rate": _mean([float(bool(s.evidence_hit)) for s in with_evidence]),
        "citation_precision": _ratio(
            sum(s.citations_on_evidence or 0 for s in with_evidence), sum(s.citations for s in with_evidence)
        ),
        "citation_recall": _ratio(sum(s.evidence_covered for s in answerable), sum(s.evidence_spans for s in answerable)),
        "answer_in_citation": _mean([float(bool(s.answer_in_citation)) for s in answerable]),
        "refusal_accuracy": _mean([float(s.refused) for s in unanswerable]),
        "false_refusal_rate": _mean([float(s.refused) for s in answerable]),
        "retrieval_recall_at_1": _mean([float(r is not None and r <= 1) for r in ranks]),
        "retrieval_recall_at_k": _mean([float(r is not None and r <= k) for r in ranks]),
        "retrieval_mrr": _mean([1.0 / r if r else 0.0 for r in ranks]),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
    }
    assert list(values) == list(METRICS), "aggregate and METRICS must list the same metrics"
    return {name: (round(v, 6) if v is not None else None) for name, v in values.items()}


def counts(scores: Sequence[ItemScore]) -> dict[str, int]:
    """How many items, of which kind, and how many citations the metrics were computed over."""
    return {
        "items": len(scores),
        "answerable": sum(s.answerable for s in scores),
        "unanswerable": sum(not s.answerable for s in scores),
        "with_evidence": sum(s.evidence_hit is not None for s in scores),
        "citations": sum(s.citations for s in scores),
        "errors": sum(s.error is not None for s in scores),
    }


# -- comparison against a baseline -------------------------------------------------------------
@dataclass(frozen=True)
class MetricDelta:
    """One metric now and in the baseline; ``regressed`` only for gating metrics."""

    name: str
    current: float | None
    baseline: float | None
    delta: float | None
    regressed: bool
    gates: bool


def compare_metrics(
    current: Mapping[str, float | None], baseline: Mapping[str, float | None], tolerance: float = DEFAULT_TOLERANCE
) -> list[MetricDelta]:
    """Each known metric against the baseline: a gating metric regresses when it is worse by
    more than ``tolerance`` (absolute), in its own direction. Latency never gates."""
    if tolerance < 0:
        raise ValueError(f"tolerance ({tolerance}) must not be negative")
    out: list[MetricDelta] = []
    for name, info in METRICS.items():
        now, then = current.get(name), baseline.get(name)
        delta = None if now is None or then is None else round(now - then, 6)
        worse = None if delta is None else (-delta if info.higher_is_better else delta)
        # A small epsilon keeps a delta of exactly the tolerance from failing on float noise.
        regressed = info.gates and worse is not None and worse > tolerance + 1e-9
        out.append(MetricDelta(name, now, then, delta, regressed, info.gates))
    return out


def outcome_changes(
    current: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]]
) -> tuple[list[str], list[str]]:
    """Ids of items that newly fail and that newly pass (items present in both runs only)."""
    newly_failing = [i for i, o in current.items() if i in baseline and baseline[i].get("passed") and not o.get("passed")]
    newly_passing = [i for i, o in current.items() if i in baseline and not baseline[i].get("passed") and o.get("passed")]
    return newly_failing, newly_passing
