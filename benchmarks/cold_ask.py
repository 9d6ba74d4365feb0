"""Cold ``rag ask``: seconds from process start to the printed answer, median of ``--runs``.

    .venv/bin/python benchmarks/cold_ask.py [--runs 5] [--out benchmarks/results/cold_ask.json]

On the seed corpus and on the public SQuAD 2.0 slice (11 articles), each indexed once into a
temporary folder with the default settings; the same measurement as benchmarks/run.py's cold
start (``speed.cold_ask``), without the rest of that run. Also reports which heavy modules a
``rag ask`` process imported (none of torch, sentence-transformers, transformers is expected).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import quality  # noqa: E402
from speed import BIN, child_env, cold_ask, load  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEED_QUESTION = "What share of microelectronics came from China?"


def ingest(corpus: Path, index: Path) -> None:
    done = subprocess.run([str(BIN / "rag"), "ingest", str(corpus), "--index", str(index)], env=child_env(), cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"rag ingest {corpus} failed: {done.stderr[-500:]}")


def heavy_imports(index: Path, question: str) -> list[str]:
    code = ("import sys; from rag.cli.main import app\n"
            f"try:\n    app(['ask', {question!r}, '--index', {str(index)!r}])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), cwd=ROOT, capture_output=True, text=True, check=False)
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cold_ask.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-cold-ask-"))
    try:
        squad_corpus, squad_gold = quality.prepare_squad(work)
        squad_question = next(i.question for i in quality.load_items(squad_gold) if not i.unanswerable)
        result = {"load_before": load(), "cores": os.cpu_count()}
        for name, corpus, question in (("seed", ROOT / "corpus", SEED_QUESTION), ("squad_slice", squad_corpus, squad_question)):
            index = work / f"{name}-index"
            ingest(corpus, index)
            cold_ask(index, question, 1, work / "warm-disk.log")  # the first run reads files into the page cache
            row = cold_ask(index, question, args.runs, work / f"{name}.log")
            row["heavy_imports"] = heavy_imports(index, question)
            result[name] = row
            print(name, json.dumps(row), flush=True)
        result["load_after"] = load()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
