"""The Markdown tables and PNG plots of a benchmark run, from its results JSON alone.

    .venv/bin/python benchmarks/tables.py benchmarks/results/latest.json   # rewrite the .md and .png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SYSTEM_LABELS = {"rag-cite": "this project (rag-cite), reader", "rag-cite-features": "this project, feature answerer",
                 "naive-llamaindex": "naive LlamaIndex", "bm25": "BM25 only (bm25s)"}


SPEED_NOTE = (
    "Chunks are each system's own unit: LlamaIndex nodes (its default 1,024-token `SentenceSplitter`; MiniLM reads "
    "only the first 256 tokens of each), this project's and BM25's ~500-character sentence-aware chunks (this project "
    "embeds their sentences). Ingest seconds exclude imports and model loading; *ingest vs raw encode* is "
    "benchmarks/ingest.py: raw embedder encode seconds of the same chunk texts / this project's ingest "
    "seconds (> 1 is faster than the compute bound). Warm latency is the wall time of each in-process call after "
    "the first; *process start → first answer* opens the stored index in a fresh process and answers one question."
)


def _f(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and digits == 0:
        return f"{value:,.0f}{suffix}"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}{suffix}"
    return str(value)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def quality_table(dataset: dict[str, Any]) -> list[str]:
    lines = [
        _row(["system", "gold answer in cited text", "evidence hit rate", "chars cited / answer (mean)",
              "chars read / answer found", "gold answer in retrieved", "answerable answered", "unanswerable refused"]),
        _row(["---"] + ["---:"] * 7),
    ]
    for name, s in dataset["systems"].items():
        q = s["quality"]
        lines.append(_row([SYSTEM_LABELS.get(name, name), _pct(q["answer_in_cited"]), _pct(q["evidence_hit_rate"]),
                           _f(q["cited_chars_mean"]), _f(q["chars_per_found_answer"]),
                           _pct(q["answer_in_retrieved"]), _pct(q["answered_share"]),
                           _pct(q["refusal_accuracy"]) if name.startswith("rag-cite") else "never"]))
    return lines


def speed_table(dataset: dict[str, Any]) -> list[str]:
    lines = [
        _row(["system", "chunks", "ingest s", "chunks/s", "ingest vs raw encode", "warm p50 ms", "warm p95 ms",
              "process start → first answer s", "peak RSS ingest MB", "peak RSS query MB", "load (ingest; query)"]),
        _row(["---"] + ["---:"] * 10),
    ]
    for name, s in dataset["systems"].items():
        i, q = s["ingest"], s["query"]
        raw = i.get("vs_raw_encode") or {}
        ratio = f"{raw['ratio_ingest_to_raw_chunk_encode']:.2f}×" if raw else "–"
        ingest_s = raw.get("ingest_s", i["ingest_s"])
        lines.append(_row([
            SYSTEM_LABELS.get(name, name), _f(i["chunks"]), _f(ingest_s, 1), _f(i["chunks"] / ingest_s if ingest_s else None),
            ratio, _f(q["p50_ms"], 1), _f(q["p95_ms"], 1), _f(q["first_answer_s"], 2), _f(i["peak_rss_mb"]),
            _f(q["peak_rss_mb"]), f"{i['load_before']:.1f}; {q['load_before']:.1f}",
        ]))
    return lines


def cold_table(cold: dict[str, Any]) -> list[str]:
    lines = [_row(["measure", "median", "runs", "load at start"]), _row(["---", "---:", "---:", "---:"])]
    labels = {"rag_ask_seed": "`rag ask` start → answer, seed index", "rag_ask_squad": "`rag ask` start → answer, SQuAD index",
              "rag_serve": "`rag serve` start → UI page HTTP 200, SQuAD index"}
    for key, label in labels.items():
        c = cold.get(key)
        if c:
            lines.append(_row([label, f"{c['median_s']:.2f} s", ", ".join(f"{t:.2f}" for t in c["runs_s"]),
                               ", ".join(f"{x:.1f}" for x in c["load"])]))
    serve = cold.get("rag_serve") or {}
    if serve.get("rss_after_questions_mb") is not None:
        lines.append(_row([f"`rag serve` RSS: ready / after {serve['api_questions']} `/ask` API questions / peak",
                           f"{serve['rss_ready_mb']:.0f} / {serve['rss_after_questions_mb']:.0f} / {_f(serve.get('peak_rss_mb'))} MB",
                           f"API p50 {serve['api_p50_ms']:.0f} ms", ""]))
    return lines


BACKEND_LABELS = {"embedded": "embedded Chroma", "server": "`chroma run` server",
                  "servers": "PostgreSQL catalog + `chroma run`"}


def growth_table(growth: dict[str, Any]) -> list[str]:
    lines = [
        _row(["store", "chunks", "step: new chunks", "step ingest s", "of which encoding s", "step chunks/s",
              "ingest s from empty", "warm p50 ms", "warm p95 ms", "peak RSS MB", "server RSS MB", "load"]),
        _row(["---"] + ["---:"] * 11),
    ]
    for st in growth["steps"]:
        lines.append(_row([
            BACKEND_LABELS.get(st["backend"], st["backend"]), _f(st["chunks"]),
            _f(st["step_chunks"]), _f(st["step_ingest_s"], 1),
            ("reused" if st.get("vectors_reused") else _f(st.get("encode_s"), 1)),
            _f(st["step_chunks_per_s"]), _f(st["ingest_s_cumulative"], 1),
            _f(st["p50_ms"], 1), _f(st["p95_ms"], 1), _f(st["peak_rss_mb"]), _f(st["server_rss_mb"]),
            f"{st['load_before']:.1f}",
        ]))
    return lines


def targets_table(targets: list[dict[str, Any]]) -> list[str]:
    lines = [_row(["target", "measured", "status"]), _row(["---", "---", "---"])]
    for t in targets:
        status = {True: "met", False: "**missed**", None: "not measured"}[t["met"]]
        lines.append(_row([t["target"], t["measured"], status]))
    return lines


def profile_lines(profiles: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, p in profiles.items():
        stages = sorted(p.get("stages_s", {}).items(), key=lambda kv: -kv[1])
        total = p.get("total_s") or 0
        share = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in stages[:7]) if total else ""
        lines.append(f"- **{name}** (pyinstrument, {total:.1f} s profiled; `{p['file']}`): {share}.")
        top = ", ".join(f"`{k.split(' (')[0]}` {v:.2f} s" for k, v in p.get("self_time_top", [])[:5])
        lines.append(f"  Most time of their own: {top}.")
    return lines


ANALYSIS = Path(__file__).parent / "results" / "analysis.md"


def analysis(r: dict[str, Any], path: Path = ANALYSIS) -> list[str]:
    """The hand-written reading of a run (results/analysis.md), only if it names this run.

    Its first line is ``run: <started>``; a later run does not match it, so stale notes never show.
    """
    try:
        first, _, rest = path.read_text(encoding="utf-8").partition("\n")
    except OSError:
        return []
    if first.strip() != f"run: {r.get('started')}":
        return []
    return [rest.strip(), ""]


def markdown(r: dict[str, Any], stem: str = "latest") -> str:
    m = r["machine"]
    out = [
        "# Benchmark: rag-cite vs naive LlamaIndex vs BM25",
        "",
        f"Command: `{r['command']}` — {r['started']}, {r['seconds'] / 60:.1f} min in all.",
        f"Machine: {m['cpu']} ({m['cores']} cores), {m['memory_gb']:.0f} GB RAM, Python {m['python']}; "
        f"load average {r['load']['start']:.2f} at the start, {r['load']['end']:.2f} at the end "
        "(the cores are shared: every timing below is listed with the load when it was taken"
        + (f"; each measurement first waited up to {r['calm']['max_wait_s']:.0f} s for it to fall under "
           f"{r['calm']['max_load']}, {r.get('waited_for_calm_s', 0) / 60:.1f} min of waiting in all" if r.get("calm") else "")
        + ").",
        f"Same model for all ({m['model']}), same Chroma ({m['versions'].get('chromadb')}), same machine, one run"
        + (f", at commit {m['commit']}" if m.get("commit") else "")
        + (f" with uncommitted changes in {len(m['uncommitted_changes_in'])} files of rag/ and ui/"
           if m.get("uncommitted_changes_in") else "") + ".",
        "",
    ]
    for d in r["datasets"].values():
        out += [f"## {d['title']}", "", d["description"], "", "Quality:", ""]
        out += quality_table(d) + ["", "Speed and memory:", ""] + speed_table(d) + ["", SPEED_NOTE, ""]
    if r.get("cold_start"):
        out += ["## Cold start and serving memory", ""] + cold_table(r["cold_start"]) + [""]
    if r.get("growth"):
        g = r["growth"]
        sizes = ", ".join(f"{s['chunks']:,} chunks in {s['files']:,} files" for s in g["manifest"]["sizes"])
        out += ["## Growth", "",
                f"Scaled SQuAD corpus (benchmarks/scale_corpus.py, seed {g['manifest']['seed']}): {sizes}. "
                f"Each step ingests the new files into the same index, then answers {g['steps'][0]['queries']} SQuAD "
                f"questions warm. Growth took {g['seconds'] / 60:.1f} min."
                + ("" if g.get("reencode", True) else
                   " The server run reuses the embedded run's vectors (benchmarks/embed_cache.py): its ingest "
                   "seconds are its measured seconds plus the embedded run's encoding seconds for the same texts "
                   "(`--server-reencode` measures it directly)."), ""]
        out += growth_table(g) + ["", f"![growth]({stem}-growth.png)", ""]
    out += ["## Targets", ""] + targets_table(r["targets"]) + [""]
    if r.get("profiles"):
        out += ["## Profiles (what bounds the time)", ""] + profile_lines(r["profiles"]) + [""]
    out += analysis(r)
    out += [f"![quality]({stem}-quality.png)", ""]
    return "\n".join(out)


def plots(r: dict[str, Any], folder: Path, stem: str = "latest") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    from matplotlib.ticker import FuncFormatter, NullFormatter

    datasets = list(r["datasets"].values())
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        xs = [s["quality"]["cited_chars_mean"] for s in d["systems"].values() if s["quality"]["cited_chars_mean"]]
        for name, s in d["systems"].items():
            q = s["quality"]
            if q["cited_chars_mean"] is None:
                continue
            ax.scatter(q["cited_chars_mean"], 100 * (q["answer_in_cited"] or 0), s=80)
            ax.annotate(SYSTEM_LABELS.get(name, name), (q["cited_chars_mean"], 100 * (q["answer_in_cited"] or 0)),
                        textcoords="offset points", xytext=(6, 6), fontsize=8)
        ax.set_xscale("log")
        if xs:
            ax.set_xlim(min(xs) / 1.6, max(xs) * 6)  # room for the labels right of the points
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("characters cited per answer (log; lower is more precise)")
        ax.set_ylabel("gold answer inside cited text (%)")
        ax.set_ylim(0, 105)
        ax.set_title(d["title"], fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = folder / f"{stem}-quality.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    if r.get("growth"):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for backend, label in BACKEND_LABELS.items():
            steps = [s for s in r["growth"]["steps"] if s["backend"] == backend]
            if not steps:
                continue
            xs = [s["chunks"] for s in steps]
            label = label.replace("`", "")
            a1.plot(xs, [s["p50_ms"] for s in steps], "o-", label=f"{label} p50")
            a1.plot(xs, [s["p95_ms"] for s in steps], "o--", label=f"{label} p95")
            a2.plot(xs, [s["ingest_s_cumulative"] for s in steps], "o-", label=label)
        for ax, ylabel in ((a1, "warm query latency (ms)"), (a2, "ingest seconds from empty")):
            ax.set_xscale("log")
            ax.set_xlabel("chunks in the index (log)")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        a2.set_yscale("log")
        fig.tight_layout()
        path = folder / f"{stem}-growth.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write(r: dict[str, Any], folder: Path, stem: str = "latest") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(r, indent=1) + "\n", encoding="utf-8")
    (folder / f"{stem}.md").write_text(markdown(r, stem) + "\n", encoding="utf-8")
    plots(r, folder, stem)


if __name__ == "__main__":
    results = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "latest.json")
    data = json.loads(results.read_text())
    (results.parent / f"{results.stem}.md").write_text(markdown(data, results.stem) + "\n", encoding="utf-8")
    plots(data, results.parent, results.stem)
