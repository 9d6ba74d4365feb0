"""What an eval run leaves for people: metrics.json, report.md and two PNG plots.

``compare_run`` sets a scored run against a baseline ``metrics.json`` (metric deltas, questions
that newly fail or newly pass); ``write_outputs`` writes everything into the run folder.
Plots use matplotlib's Agg backend (no display needed), imported only when plotting.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.evals.metrics import METRICS, MetricDelta, compare_metrics, outcome_changes, percentile
from rag.evals.run import METRICS_FILE, ScoredRun

logger = logging.getLogger(__name__)

REPORT_FILE = "report.md"
METRICS_PLOT = "metrics.png"
LATENCY_PLOT = "latency.png"
QUOTE_CHARS = 160
ANSWER_CHARS = 200


@dataclass
class Comparison:
    """A run against its baseline: per-metric deltas and per-question changes."""

    baseline_path: str
    tolerance: float
    deltas: list[MetricDelta]
    newly_failing: list[str] = field(default_factory=list)
    newly_passing: list[str] = field(default_factory=list)
    baseline_items: int = 0

    @property
    def regressions(self) -> list[MetricDelta]:
        return [d for d in self.deltas if d.regressed]


def compare_run(scored: ScoredRun, baseline: dict[str, Any], tolerance: float, baseline_path: str) -> Comparison:
    """Compare a scored run with a baseline ``metrics.json`` already loaded."""
    failing, passing = outcome_changes(scored.outcomes(), baseline.get("items") or {})
    return Comparison(
        baseline_path=baseline_path,
        tolerance=tolerance,
        deltas=compare_metrics(scored.metrics, baseline["metrics"], tolerance),
        newly_failing=failing,
        newly_passing=passing,
        baseline_items=len(baseline.get("items") or {}),
    )


# -- text --------------------------------------------------------------------------------------
def fmt_value(value: float | None, name: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}" if name.endswith("_ms") else f"{value:.3f}"


def fmt_delta(value: float | None, name: str) -> str:
    if value is None:
        return ""
    return f"{value:+.0f}" if name.endswith("_ms") else f"{value:+.3f}"


def _cell(text: str | None, limit: int | None = None) -> str:
    """Text safe inside a markdown table cell."""
    text = " ".join((text or "").split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|")


def regression_lines(comparison: Comparison) -> list[str]:
    """One readable line per regressed metric, for the terminal and the report."""
    return [
        f"{d.name}: {fmt_value(d.current, d.name)} vs baseline {fmt_value(d.baseline, d.name)} "
        f"({fmt_delta(d.delta, d.name)}; tolerance {comparison.tolerance:g})"
        for d in comparison.regressions
    ]


def summary_table(scored: ScoredRun, comparison: Comparison | None) -> list[str]:
    """The summary table: metric, value (and baseline, delta, gate) and its one-line meaning."""
    if comparison is None:
        lines = ["| metric | value | meaning |", "|---|---:|---|"]
        for name, info in METRICS.items():
            lines.append(f"| {name} | {fmt_value(scored.metrics.get(name), name)} | {_cell(info.description)} |")
        return lines
    lines = ["| metric | value | baseline | delta | gate | meaning |", "|---|---:|---:|---:|---|---|"]
    for d in comparison.deltas:
        gate = "REGRESSED" if d.regressed else ("ok" if d.gates else "not gated")
        lines.append(
            f"| {d.name} | {fmt_value(d.current, d.name)} | {fmt_value(d.baseline, d.name)} | {fmt_delta(d.delta, d.name)} "
            f"| {gate} | {_cell(METRICS[d.name].description)} |"
        )
    return lines


def question_rows(scored: ScoredRun, comparison: Comparison | None) -> list[str]:
    """One table row per question: pass/fail, the question, expected and given answers, quotes."""
    failing = set(comparison.newly_failing) if comparison else set()
    passing = set(comparison.newly_passing) if comparison else set()
    gold = scored.gold.by_id()
    lines = ["| id | result | question | expected | short answer | answer | cited quotes |", "|---|---|---|---|---|---|---|"]
    for s in scored.scores:
        item, record = gold[s.id], scored.records[s.id]
        result = "pass" if s.passed else "**FAIL**"
        if s.id in failing:
            result += " (newly failing)"
        elif s.id in passing:
            result += " (newly passing)"
        question = ("↪ " if item.history else "") + item.question
        expected = "(refuse)" if item.unanswerable else " / ".join(item.answers)
        short = "(refused)" if s.refused else (record.get("short_answer") or "—")
        if s.error:
            short = f"(error: {s.error})"
        quotes = "<br>".join(
            f"[{c.get('id')}] “{_cell(str(c.get('quote', '')), QUOTE_CHARS)}”" for c in record.get("citations") or []
        )
        lines.append(
            f"| {s.id} | {result} | {_cell(question)} | {_cell(expected)} | {_cell(short)} "
            f"| {_cell(record.get('answer'), ANSWER_CHARS)} | {quotes} |"
        )
    return lines


def render_report(scored: ScoredRun, comparison: Comparison | None) -> str:
    """The whole report.md: run facts, summary, gate and diff, problems, per-question table."""
    run, c = scored.run, scored.counts
    source = f"corpus `{run['corpus']}`" if run.get("corpus") else f"index `{run.get('index')}`"
    retrieval = (run.get("settings") or {}).get("retrieval") or {}
    out = [
        "# Eval report",
        "",
        f"Gold `{run.get('gold')}` against {source} (paths relative to this folder); answerer "
        f"`{run.get('answerer')}`; top_k {retrieval.get('top_k')}"
        + ("; **keep_only_last on (deliberately weakened)**" if retrieval.get("keep_only_last") else "")
        + f"; started {run.get('started')}, {run.get('seconds')} s.",
        "",
        *([f"Made by: `{run['command']}`" + (f" at code version `{run['code_version']}`" if run.get("code_version") else ""),
           ""] if run.get("command") else []),
        f"{c['items']} questions ({c['answerable']} answerable, {c['unanswerable']} unanswerable, "
        f"{c['with_evidence']} with evidence), {c['citations']} citations, {c['errors']} errors; k = {run.get('k')}.",
        "",
        "## Summary",
        "",
        *summary_table(scored, comparison),
        "",
        "Latency metrics are reported but never gate: timings on shared machines are too noisy.",
        "",
    ]
    if scored.provenance:
        out += provenance_section(scored)
    if comparison is not None:
        out += _comparison_section(scored, comparison)
    if scored.problems or scored.gold.issues:
        out += ["## Problems", ""]
        out += [f"- gold {_cell(str(i))} (skipped)" for i in scored.gold.issues]
        out += [f"- {_cell(p)}" for p in scored.problems]
        out.append("")
    out += ["## Questions", "", "↪ marks a follow-up asked with its history.", "", *question_rows(scored, comparison), ""]
    return "\n".join(out)


def provenance_section(scored: ScoredRun) -> list[str]:
    """Attribution, date and disagreement metrics, and the questions that missed them."""
    from rag.evals.provenance import PROVENANCE_METRICS

    p = scored.provenance
    out = ["## Provenance", "", "| metric | value | meaning |", "|---|---:|---|"]
    for name, info in PROVENANCE_METRICS.items():
        out.append(f"| {name} | {fmt_value(p['metrics'].get(name), name)} | {_cell(info.description)} |")
    out += ["", "Counts: " + ", ".join(f"{k} {v}" for k, v in p["counts"].items()) + ".", ""]
    gold = scored.gold.by_id()
    missed = []
    for i, s in p["items"].items():
        record = scored.records[i]
        shown = (record.get("attribution") or {}).get("text")
        if s["attribution_shown"] is not None and (s["attribution_right"] != s["attribution_expected"] or (shown and not s["attribution_right"])):
            expected = " / ".join(gold[i].attribution or []) or "(none)"
            missed.append(f"- {i}: attribution {_cell(shown or '(none)')!s}, expected {_cell(expected)}")
        if s["disagreement_covered"] is False or (s["disagreement_expected"] is False and s["disagreement_shown"]):
            sides = "; ".join(f"{x.get('answer')} ({x.get('source')})" for x in record.get("disagreement") or []) or "(none)"
            missed.append(f"- {i}: disagreement shown {_cell(sides)}")
    out += ["### Missed", "", *(missed or ["- none"]), ""]
    return out


def _comparison_section(scored: ScoredRun, comparison: Comparison) -> list[str]:
    out = [f"## Against the baseline `{comparison.baseline_path}` (tolerance {comparison.tolerance:g})", ""]
    if comparison.regressions:
        out += ["**Gate: FAILED.** Regressed metrics:", ""]
        out += [f"- {line}" for line in regression_lines(comparison)]
    else:
        out.append("**Gate: passed** (no gating metric fell below the baseline by more than the tolerance).")
    if comparison.baseline_items and comparison.baseline_items != len(scored.scores):
        out += ["", f"The baseline scored {comparison.baseline_items} questions and this run {len(scored.scores)}: "
                "metrics are over different question sets."]
    gold = scored.gold.by_id()
    for title, ids in (("Newly failing", comparison.newly_failing), ("Newly passing", comparison.newly_passing)):
        out += ["", f"### {title} ({len(ids)})", ""]
        out += [f"- {i}: {_cell(gold[i].question)}" for i in ids] or ["- none"]
    out.append("")
    return out


# -- plots -------------------------------------------------------------------------------------
def plot_metrics(path: Path, metrics: dict[str, float | None], baseline: dict[str, float | None] | None) -> None:
    """Horizontal bars of every 0..1 metric, beside the baseline's when there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in METRICS if not n.endswith("_ms")][::-1]
    now = [metrics.get(n) or 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(names) + 1.2))
    height = 0.4 if baseline else 0.7
    ys = list(range(len(names)))
    ax.barh([y + (height / 2 if baseline else 0) for y in ys], now, height, label="this run", color="#3b6ea8")
    if baseline:
        then = [baseline.get(n) or 0.0 for n in names]
        ax.barh([y - height / 2 for y in ys], then, height, label="baseline", color="#b0b0b0")
    ax.set_yticks(ys, names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("score (false_refusal_rate: lower is better)")
    ax.legend(loc="lower right")
    ax.set_title("Eval metrics" + (" against the baseline" if baseline else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(path: Path, latencies: list[float], baseline: dict[str, float | None] | None) -> None:
    """Histogram of per-question total latency with p50/p95 (and the baseline's, dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    if latencies:
        ax.hist(latencies, bins=min(40, max(5, len(latencies) // 3)), color="#3b6ea8")
    for q, key in ((50, "latency_p50_ms"), (95, "latency_p95_ms")):
        value = percentile(latencies, q)
        if value is not None:
            ax.axvline(value, color="#c0392b", linestyle="-" if q == 50 else ":", label=f"p{q} {value:.0f} ms")
        if baseline and baseline.get(key) is not None:
            ax.axvline(float(baseline[key] or 0), color="#555555", linestyle="--" if q == 50 else "-.",
                       label=f"baseline p{q} {baseline[key]:.0f} ms")
    ax.set_xlabel("total time per question (ms)")
    ax.set_ylabel("questions")
    ax.set_title("Latency (not gated)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(out_dir: Path, scored: ScoredRun, comparison: Comparison | None, baseline: dict[str, Any] | None) -> None:
    """Write metrics.json, report.md, metrics.png and latency.png into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / METRICS_FILE).write_text(json.dumps(scored.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / REPORT_FILE).write_text(render_report(scored, comparison), encoding="utf-8")
    base_metrics = baseline["metrics"] if baseline else None
    plot_metrics(out_dir / METRICS_PLOT, scored.metrics, base_metrics)
    plot_latency(out_dir / LATENCY_PLOT, [s.latency_ms for s in scored.scores if s.latency_ms is not None], base_metrics)
    logger.info("wrote %s, %s and plots to %s", METRICS_FILE, REPORT_FILE, out_dir)
