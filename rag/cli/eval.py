"""``rag eval``, ``rag score`` and ``rag squad``: the regression eval harness on the command line.

``rag.cli.main`` calls ``register(app)`` to add these commands. Exit codes (``rag.cli.common``):
0 success, 1 an error (one ``error: ...`` line on stderr), 4 a metric regressed against the
baseline by more than the tolerance. The eval modules are imported inside each command, as in
``rag.cli.main``, so that other commands do not pay for them (matplotlib, the index).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rag.cli.common import EXIT_REGRESSION, fail, settings_from_env
from rag.errors import RagError
from rag.evals.metrics import DEFAULT_K, DEFAULT_TOLERANCE, METRICS

GoldArg = Annotated[Path, typer.Argument(help="gold questions, JSONL (docs/gold-format.md)")]
BaselineOpt = Annotated[
    Path | None, typer.Option("--baseline", "-b", help="a metrics.json to compare against; a regression exits 4")
]
ToleranceOpt = Annotated[
    float, typer.Option(min=0.0, help="how far (absolute) a quality metric may fall below the baseline")
]


def _command_line() -> str | None:
    """The command as typed, ``rag`` first, for run.json and the report (None when embedded)."""
    import shlex
    import sys

    if Path(sys.argv[0]).name not in ("rag", "main.py", "__main__.py"):
        return None  # called in-process (tests, CliRunner): sys.argv is not this command
    return shlex.join(["rag", *sys.argv[1:]])


def _code_version() -> str | None:
    """The git commit of the working tree (``+dirty`` when it has changes); None outside git."""
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def _progress_bar() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal,
    )


def _print_summary(scored: Any, comparison: Any, out_dir: Path | None) -> None:
    """The metrics (and deltas) on stdout; the gate verdict and changed questions on stderr."""
    from rag.evals.report import fmt_delta, fmt_value, regression_lines

    deltas = {d.name: d for d in comparison.deltas} if comparison else {}
    for name in METRICS:
        line = f"{name:24} {fmt_value(scored.metrics.get(name), name):>8}"
        if name in deltas:
            d = deltas[name]
            line += f"  baseline {fmt_value(d.baseline, name):>8}  {fmt_delta(d.delta, name):>7}"
            line += "  REGRESSED" if d.regressed else ("" if d.gates else "  (not gated)")
        typer.echo(line)
    if scored.provenance:
        for name, value in scored.provenance["metrics"].items():
            typer.echo(f"{name:24} {fmt_value(value, name):>8}")
    for problem in scored.problems[:10]:
        typer.echo(f"warning: {problem}", err=True)
    if len(scored.problems) > 10:
        typer.echo(f"warning: ... and {len(scored.problems) - 10} more problems (see the report)", err=True)
    if out_dir is not None:
        typer.echo(f"report: {out_dir / 'report.md'}", err=True)
    if comparison is None:
        return
    gold = scored.gold.by_id()
    for label, ids in (("newly failing", comparison.newly_failing), ("newly passing", comparison.newly_passing)):
        for i in ids[:20]:
            typer.echo(f"{label}: {i}: {gold[i].question}", err=True)
        if len(ids) > 20:
            typer.echo(f"{label}: ... and {len(ids) - 20} more (see the report)", err=True)
    if comparison.regressions:
        typer.echo(f"regression against {comparison.baseline_path}:", err=True)
        for line in regression_lines(comparison):
            typer.echo(f"  {line}", err=True)
    else:
        typer.echo(f"no regression against {comparison.baseline_path} (tolerance {comparison.tolerance:g})", err=True)


def _finish(scored: Any, out_dir: Path | None, baseline_path: Path | None, tolerance: float) -> None:
    """Compare with the baseline, write the outputs, print the summary, exit 4 on a regression."""
    from rag.evals.report import compare_run, write_outputs
    from rag.evals.run import load_baseline

    baseline = load_baseline(baseline_path) if baseline_path is not None else None
    comparison = compare_run(scored, baseline, tolerance, str(baseline_path)) if baseline is not None else None
    if out_dir is not None:
        write_outputs(out_dir, scored, comparison, baseline)
    _print_summary(scored, comparison, out_dir)
    if comparison is not None and comparison.regressions:
        raise typer.Exit(EXIT_REGRESSION)


def eval_command(
    gold: GoldArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for answers.jsonl, metrics.json, report.md, plots")],
    index: Annotated[Path | None, typer.Option("--index", "-i", help="an existing index folder")] = None,
    corpus: Annotated[Path | None, typer.Option("--corpus", "-c", help="ingest this folder into a temporary index first")] = None,
    baseline: BaselineOpt = None,
    tolerance: ToleranceOpt = DEFAULT_TOLERANCE,
    limit: Annotated[int | None, typer.Option(min=1, help="ask only the first N questions")] = None,
    sample: Annotated[int | None, typer.Option(min=1, help="ask a random sample of N questions (see --seed)")] = None,
    seed: Annotated[int, typer.Option(help="random seed for --sample")] = 0,
    k: Annotated[int, typer.Option("-k", min=1, help="k of retrieval recall@k")] = DEFAULT_K,
) -> None:
    """Run every gold question (with its history) through the assistant and score the answers."""
    from rag.evals.gold import load_gold
    from rag.evals.run import run_eval

    try:
        settings = settings_from_env()
        on_servers = index is None and corpus is None and settings.catalog_url is not None  # the servers' index
        if (index is None) == (corpus is None) and not on_servers:
            raise RagError("give exactly one of --index DIR or --corpus DIR")
        if baseline is not None and not baseline.is_file():
            raise RagError(f"baseline {baseline} not found")
        gold_set = load_gold(gold)
        for issue in gold_set.issues:
            typer.echo(f"warning: gold {gold} {issue} (skipped)", err=True)
        with _progress_bar() as bar:
            task = bar.add_task("", total=None)

            def progress(done: int, total: int, item_id: str) -> None:
                bar.update(task, completed=done, total=total, description=item_id)

            scored = run_eval(gold_set, settings, out, index=index, corpus=corpus, limit=limit, sample=sample,
                              seed=seed, k=k, progress=progress, command=_command_line(),
                              code_version=_code_version())
        _finish(scored, out, baseline, tolerance)
    except RagError as e:
        raise fail(str(e)) from None
    except OSError as e:  # the output folder filled up or became unwritable mid-run
        raise fail(f"cannot write {e.filename or out}: {e.strerror or e}") from None


def score_command(
    run_dir: Annotated[Path, typer.Argument(help="a folder written by `rag eval` (answers.jsonl, run.json)")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write metrics.json, report.md, plots here")] = None,
    gold: Annotated[Path | None, typer.Option(help="gold file [default: the one run.json records]")] = None,
    corpus: Annotated[Path | None, typer.Option("--corpus", "-c", help="read document texts from this corpus folder")] = None,
    index: Annotated[Path | None, typer.Option("--index", "-i", help="read document texts from this index")] = None,
    baseline: BaselineOpt = None,
    tolerance: ToleranceOpt = DEFAULT_TOLERANCE,
) -> None:
    """Re-score a saved run from its answers.jsonl, the gold file and the document texts alone."""
    from rag.evals.run import rescore_run

    try:
        if corpus is not None and index is not None:
            raise RagError("give at most one of --index DIR or --corpus DIR")
        scored = rescore_run(run_dir, gold_path=gold, corpus=corpus, index=index)
        _finish(scored, out, baseline, tolerance)
    except RagError as e:
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(f"cannot write {e.filename or out}: {e.strerror or e}") from None


def squad_command(
    squad_json: Annotated[Path, typer.Argument(help="a SQuAD 2.0 JSON file")],
    out: Annotated[Path, typer.Option("--out", "-o", help="writes OUT/corpus/*.txt and OUT/gold.jsonl")],
    articles: Annotated[int | None, typer.Option(min=1, help="convert only the first N articles")] = None,
    force: Annotated[bool, typer.Option(help="replace an existing OUT/corpus folder")] = False,
) -> None:
    """Turn SQuAD 2.0 JSON into a corpus folder (one .txt per article) and a gold file."""
    from rag.evals.squad import convert_squad

    try:
        report = convert_squad(squad_json, out, articles=articles, force=force)
    except (RagError, OSError) as e:
        raise fail(str(e)) from None
    for reason in report.skipped:
        typer.echo(f"skipped {reason}", err=True)
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.evidence_kinds.items()))
    typer.echo(
        f"{report.articles} articles -> {report.corpus_dir}; {report.questions} questions "
        f"({report.unanswerable} unanswerable) -> {report.gold_path}; evidence: {kinds or 'none'}"
    )


def register(app: typer.Typer) -> None:
    """Add ``eval``, ``score`` and ``squad`` to the ``rag`` command line."""
    app.command("eval")(eval_command)
    app.command("score")(score_command)
    app.command("squad")(squad_command)
