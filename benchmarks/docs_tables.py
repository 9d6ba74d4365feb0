"""docs/measurements.md, generated from the committed results: never copy these numbers by hand.

    .venv/bin/python benchmarks/docs_tables.py          # rewrite docs/measurements.md
    .venv/bin/python benchmarks/docs_tables.py --check  # exit 1 if it is out of date (the tests run this)

Sources: evals/baselines/{seed,squad}/metrics.json and run.json (``rag eval``),
benchmarks/results/fit_answerer.json (``benchmarks/fit_answerer.py``) and
benchmarks/results/latest.json (``benchmarks/run.py``, whose own tables are in latest.md),
benchmarks/results/embed_variants.json, cold_ask.json and growth-embedded.json; for the servers
(docs/deploy.md) growth-servers.json (``benchmarks/growth.py --backends embedded,servers``) and
cluster_load.json (``benchmarks/cluster_load.py --out``), each said to be not measured yet while
it is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from rag.evals.metrics import METRICS  # noqa: E402

OUT = ROOT / "docs" / "measurements.md"
BASELINES = ROOT / "evals" / "baselines"
RESULTS = ROOT / "benchmarks" / "results"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def eval_section() -> list[str]:
    runs = {name: _load(BASELINES / name / "metrics.json") for name in ("seed", "squad")}
    sizes = {name: r["counts"]["items"] for name, r in runs.items()}
    lines = [
        "## Eval baselines (`rag eval`, default settings: the reader)",
        "",
        f"From `evals/baselines/*/metrics.json`: the seed gold set ({sizes['seed']} questions on the seed "
        f"article) and the public SQuAD 2.0 slice ({sizes['squad']:,} questions, 11 articles in one index). "
        "The SQuAD figures are partly in-sample: the reader was trained on the questions of every other slice "
        "article and the feature model fitted on the slice ([reader.md](reader.md) has the held-out half). Latency depends on the machine's load and never gates.",
        "",
        "| metric | seed | SQuAD slice | meaning |",
        "|---|---:|---:|---|",
    ]
    for name, info in METRICS.items():
        digits = 0 if name.startswith("latency") else 3
        seed, squad = (runs[r]["metrics"].get(name) for r in ("seed", "squad"))
        lines.append(f"| {name} | {_num(seed, digits)} | {_num(squad, digits)} | {info.description} |")
    return lines + [""]


def fit_section() -> list[str]:
    fit = _load(RESULTS / "fit_answerer.json")
    lines = [
        "## The answerer's fit, held-out SQuAD articles (`benchmarks/fit_answerer.py`)",
        "",
        f"From `benchmarks/results/fit_answerer.json`: {fit['questions']:,} questions ({fit['answerable']:,} "
        "answerable), article-grouped cross-validation, so every figure is measured on articles the models did "
        "not see. Gold answer inside the top-k retrieved passages: "
        + ", ".join(f"top {k} {fit[f'answer_in_top{k}_passages']:.3f}" for k in (5, 8, 10))
        + ".",
        "",
        "Selection policy (up to 4 sentences, one alone when its probability is at least 0.9): a runner-up is "
        "cited when its probability is at least *ratio* times the best one's.",
        "",
        "| runner-up ratio | gold answer inside the cited text | characters cited per answer |",
        "|---:|---:|---:|",
    ]
    for p in fit["policy"]:
        if p["max_sentences"] == 4 and p["confident"] == 0.9:
            lines.append(f"| {p['ratio']:.1f} | {p['answer_in_cited']:.3f} | {p['chars']:.0f} |")
    lines += [
        "",
        "Refusal trade-off. *Answer removed*: the same answerable questions with their gold paragraph taken out "
        "of the index (the article's other paragraphs stay). *Adversarial*: SQuAD's unanswerable questions, "
        "written to match the text with a false premise. The default threshold is "
        "`rag.answering.extractive.REFUSAL_THRESHOLD` (`RAG_ANSWER__REFUSAL_THRESHOLD`).",
        "",
        "| model | threshold | answerable refused | answer removed refused | adversarial refused |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, key in (("answerability model (shipped)", "refusal_answerability_model"),
                       ("threshold on the lead sentence", "refusal_plain_threshold")):
        for row in fit[key]:
            lines.append(f"| {label} | {row['threshold']:.2f} | {_pct(row['false_refusal'])} | "
                         f"{_pct(row['refused_answer_removed'])} | {_pct(row['refused_adversarial'])} |")
    return lines + [""]


SYSTEM_LABELS = {"rag-cite": "rag-cite (reader, the default)", "rag-cite-features": "rag-cite (extractive features)"}


def comparison_run() -> tuple[str, dict[str, Any]]:
    """The newest run of ``benchmarks/run.py`` that compared the systems: the full one
    (``latest.json``) or a later quick one (``quick.json``, every 20th SQuAD question)."""
    runs = [(stem, _load(RESULTS / f"{stem}.json")) for stem in ("latest", "quick") if (RESULTS / f"{stem}.json").exists()]
    return max(runs, key=lambda run: run[1]["started"])


def benchmark_section() -> list[str]:
    stem, r = comparison_run()
    m = r["machine"]
    squad = r["datasets"]["squad"].get("description", "")
    lines = [
        "## Against naive LlamaIndex and BM25 (`benchmarks/run.py`)",
        "",
        f"Run {r['started']} (`{r.get('command', 'benchmarks/run.py')}`) on {m['cpu']} ({m['cores']} cores), load "
        f"average {r['load']['start']:.2f} at the start; SQuAD: {squad} Full tables in "
        f"[benchmarks/results/{stem}.md](../benchmarks/results/{stem}.md).",
        "",
        "| dataset | system | gold answer in cited text | evidence hit rate | chars cited per answer | unanswerable refused |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for dataset, d in r["datasets"].items():
        # Runs before the reader had one rag-cite system (the extractive answerer): plain names.
        labels = SYSTEM_LABELS if "rag-cite-features" in d["systems"] else {}
        for name, s in d["systems"].items():
            q = s["quality"]
            refuses = name.startswith("rag-cite") and q.get("refusal_accuracy") is not None
            refused = _pct(q["refusal_accuracy"]) if refuses else "never"
            lines.append(f"| {dataset} | {labels.get(name, name)} | {q['answer_in_cited']:.3f} | "
                         f"{q['evidence_hit_rate']:.3f} | {q['cited_chars_mean']:,.0f} | {refused} |")
    return lines + [""]


def embedding_section() -> list[str]:
    """The embedding runtimes side by side, cold ``rag ask`` and the 100k-chunk growth ingest."""
    path = RESULTS / "embed_variants.json"
    if not path.exists():
        return []
    r = _load(path)
    lines = [
        "## Embedding runtimes (`benchmarks/embed_variants.py`)",
        "",
        f"One run, the same {r['sentences']:,} sentences of the SQuAD slice (mean {r['mean_chars']:.0f} characters), "
        f"{r['cores']} cores, load average {r['load_before']:.2f} at the start; throughput is the best of rounds that "
        "alternate the runtimes. Recall@5 and MRR: each runtime's own index of the slice, hybrid retrieval "
        "(top 5), every answerable question (– where the run had `--skip-retrieval`; the default variant's "
        "are the SQuAD baseline's above).",
        "",
        "| runtime | sentences/s | × torch | question p50 / p95 ms | slice ingest s | recall@5 | MRR |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in r["runtimes"].items():
        q = row["question_ms"]
        lines.append(f"| {name} | {row['sentences_per_s']:,.0f} | {row['speedup_vs_torch']:.2f} | {q['p50']:.1f} / "
                     f"{q['p95']:.1f} | {_num(row.get('ingest_s'), 1)} | {_num(row.get('recall_at_5'), 4)} | "
                     f"{_num(row.get('mrr'), 4)} |")
    cold = RESULTS / "cold_ask.json"
    if cold.exists():
        c = _load(cold)
        runs = ", ".join(f"{name} {c[name]['median_s']:.2f} s (runs {', '.join(f'{t:.2f}' for t in c[name]['runs_s'])})"
                         for name in ("seed", "squad_slice") if name in c)
        lines += ["", f"Cold `rag ask` (`benchmarks/cold_ask.py`, process start to printed answer, median): {runs}; "
                      f"load average {c['load_before']:.2f} at the start."]
    growth = RESULTS / "growth-embedded.json"
    if growth.exists():
        steps = _load(growth)["steps"]
        parts = [f"{s['chunks']:,} chunks {s['ingest_s_cumulative']:,.0f} s (warm p50 {s['p50_ms']:.0f} ms)" for s in steps]
        lines += ["", "Growth ingest, embedded Chroma (`benchmarks/growth.py --backends embedded`), cumulative from "
                      f"empty: {'; '.join(parts)}."]
    return lines + [""]


def _host(record: dict[str, Any]) -> str:
    return (f"{record['cpu']}, {record['cores']} cores, {' '.join(record['flags'])}, "
            f"1-core fp32 GEMM {record['gemm_gflops_1core']} GFLOPS")


def reader_speed_section() -> list[str]:
    """This code against the version before it, in one run (``benchmarks/reader_compare.py``)."""
    path = RESULTS / "reader_compare.json"
    if not path.exists():
        return []
    r = _load(path)
    return [
        "## Answer speed against the code before (`benchmarks/reader_compare.py`)",
        "",
        f"One run on {_host(r['host'])} (`benchmarks/host.py`). The SQuAD slice's 11 articles in one index per "
        f"version; {r['questions']} questions of its held-out half, each asked of both versions in turn "
        "(alternating which goes first) in two warm processes; cold: new `rag ask` processes for one question, "
        f"alternating, median. Before: the code at {r['before_source']}. Timings on another host differ (an "
        "AVX2-only host without VNNI reads 4-6x slower); compare the ratios.",
        "",
        *_speed_table(r),
        "",
        "The eval baselines' latencies above and the comparison run at the end were measured on this host too, "
        "on 2026-12-02. The embedding runtimes, the older cold `rag ask` and the embedded-only growth run below were measured "
        "before hosts were recorded (no GEMM figure): compare them only with each other.",
        "",
    ] + [line for other in sorted(RESULTS.glob("reader_compare-*.json")) for line in _other_host_speed(_load(other))]


def _other_host_speed(r: dict[str, Any]) -> list[str]:
    """The same comparison run again on another host (``reader_compare.py --out reader_compare-HOST.json``)."""
    return [
        f"The same comparison on {_host(r['host'])}, {r.get('date', 'undated')}, {r['questions']} questions, "
        f"before: {r['before_source']}:",
        "",
        *_speed_table(r),
        "",
    ]


def _speed_table(r: dict[str, Any]) -> list[str]:
    """A reader_compare.py result as a table: before, this code, and their ratio."""
    b, a, ratio = r["before"], r["after"], r["ratio_after_over_before"]
    return [
        "| | warm ask p50 ms | warm ask p95 ms | cold `rag ask` s | refused |",
        "|---|---:|---:|---:|---:|",
        f"| before | {b['p50_ms']:.1f} | {b['p95_ms']:.1f} | {b['cold_s']:.2f} | {b['refused']} |",
        f"| this code | {a['p50_ms']:.1f} | {a['p95_ms']:.1f} | {a['cold_s']:.2f} | {a['refused']} |",
        f"| ratio | {ratio['warm_p50']:.2f} | {ratio['warm_p95']:.2f} | {ratio['cold']:.2f} | |",
    ]


GROWTH_COMMAND = ".venv/bin/python benchmarks/growth.py --backends embedded,servers --out benchmarks/results/growth-servers.json"
LOAD_COMMANDS = (
    "`bash scripts/cluster.sh 2` (instances on 127.0.0.1:7860 and :7861), then "
    "`.venv/bin/python benchmarks/cluster_load.py --urls http://127.0.0.1:7860 --out benchmarks/results/cluster_load.json` "
    "and the same with `--urls http://127.0.0.1:7860 http://127.0.0.1:7861`"
)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.2f}" if a and b is not None else "–"


def servers_growth_lines() -> list[str]:
    """Growth on PostgreSQL + a Chroma server beside the embedded index, size by size."""
    path = RESULTS / "growth-servers.json"
    if not path.exists():
        return [f"Growth on the servers: not measured yet (`{GROWTH_COMMAND}`, about 1k, 10k and 100k chunks)."]
    r = _load(path)
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    for step in r["steps"]:
        by_size.setdefault(step["target"], {})[step["backend"]] = step
    host_line = _host(r["host"]) if "host" in r else "a host not recorded"
    lines = [
        f"Growth (`{r.get('command', 'benchmarks/growth.py')}`, {r.get('started', 'date not recorded')[:10]}) on {host_line}: "
        "one index per backend grown from empty through each size, a fresh process a step, then the same SQuAD "
        "questions asked warm. *servers*: the PostgreSQL catalog and a `chroma run` server, started by the "
        "benchmark on the same host; it reuses the embedded run's vectors and adds that run's encoding time, so "
        "the comparison is of the stores. Servers' memory: chroma's RSS plus PostgreSQL's PSS after the step.",
        "",
        "| chunks | ingest s from empty, embedded | servers | servers / embedded | warm p50 ms, embedded | servers | servers / embedded | "
        "warm p95 ms, embedded | servers | servers' memory MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, steps in sorted(by_size.items()):
        e, s = steps.get("embedded", {}), steps.get("servers", {})
        chunks = (s or e)["chunks"]
        ingest = (e.get("ingest_s_cumulative"), s.get("ingest_s_cumulative"))
        p50, p95 = (e.get("p50_ms"), s.get("p50_ms")), (e.get("p95_ms"), s.get("p95_ms"))
        lines.append(f"| {chunks:,} | {_num(ingest[0], 1)} | {_num(ingest[1], 1)} | {_ratio(*ingest)} | "
                     f"{_num(p50[0], 1)} | {_num(p50[1], 1)} | {_ratio(*p50)} | {_num(p95[0], 1)} | "
                     f"{_num(p95[1], 1)} | {_num(s.get('server_rss_mb'), 0)} |")
    return lines


def cluster_load_lines() -> list[str]:
    """Throughput and latency of one and two app instances sharing one index."""
    path = RESULTS / "cluster_load.json"
    if not path.exists():
        return [f"Load on the instances: not measured yet ({LOAD_COMMANDS})."]
    r = _load(path)
    runs = [run for _, run in sorted(r["runs"].items(), key=lambda kv: int(kv[0]))]
    dates = sorted({run["started"][:10] for run in runs})
    lines = [
        f"Load ({LOAD_COMMANDS}; {', '.join(dates)}) on {_host(r['host'])}: the seed gold set's questions through "
        "`/ask`, each asked alone, every answer compared with the first to the same question. The instances, "
        "PostgreSQL and Chroma all ran on this one host, so a second instance shares its cores.",
        "",
        "| instances | clients | questions | questions/s | p50 ms | p95 ms | errors | questions answered differently |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(f"| {run['instances']} | {run['clients']} | {run['questions']} | {run['throughput_qps']:.2f} | "
                     f"{_num(run['p50_ms'], 0)} | {_num(run['p95_ms'], 0)} | {run['errors']} | "
                     f"{run['disagreeing_questions']} |")
    return lines


def servers_section() -> list[str]:
    """The index on servers (docs/deploy.md): growth against the embedded index, and load."""
    return [
        "## Many machines, one index (docs/deploy.md)",
        "",
        *servers_growth_lines(),
        "",
        *cluster_load_lines(),
        "",
    ]


def render() -> str:
    head = [
        "# Measurements",
        "",
        "Generated by `benchmarks/docs_tables.py` from the committed results; do not edit by hand "
        "(`tests/test_benchmarks_smoke.py` fails when this file is out of date). What the numbers mean and "
        "how the system is built: [how-it-works.md](how-it-works.md).",
        "",
    ]
    sections = (eval_section() + reader_speed_section() + fit_section() + embedding_section() + benchmark_section()
                + servers_section())
    return "\n".join(head + sections).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/measurements.md is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run .venv/bin/python benchmarks/docs_tables.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
