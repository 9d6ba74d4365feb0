"""Write MODEL_CARD.md for an exported reader from its files, learning curve and measured tables.

    .venv/bin/python training/model_card.py rag/answering/reader_model \\
        --curve ~/.cache/rag-cite/reader/curve.jsonl \\
        --table "SQuAD 1.1 held-out articles (answerable only)=build/reader_dev/squad11.json" \\
        --table "SQuAD 2.0 slice, held-out articles=build/reader_dev/slice.json" --threshold 0.5

Nothing in the card is typed by hand: the checksum and size come from the file, the training
command and settings from ``reader.json``, the curve and the tables from the files given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.domain import file_sha256 as sha256


def curve_table(rows: list[dict]) -> list[str]:
    evals = [r for r in rows if any(k.endswith("_f1") for k in r)]
    keys = sorted({k for r in evals for k in r if k.endswith("_f1") or "refused" in k})
    lines = ["| step | examples/s | loss | " + " | ".join(keys) + " |", "|---:|---:|---:|" + "---:|" * len(keys)]
    for r in evals:
        lines.append(f"| {r['step']} of {r['of']} | {r['examples_per_s']} | {r['loss']} | " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    return lines


def figures_table(path: Path, threshold: float) -> list[str]:
    data = json.loads(path.read_text())
    lines = [f"{data['answerable']} answerable, {data['unanswerable']} unanswerable questions; settings {data['settings']}.", "",
             "| threshold | F1 (answerable) | EM (answerable) | answer inside cited text | cited chars | unanswerable refused | false refusals |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["table"]:
        mark = " **(default)**" if abs(r["threshold"] - threshold) < 1e-9 else ""
        lines.append(f"| {r['threshold']}{mark} | {r['f1_answerable']} | {r['em_answerable']} | {r['answer_in_cited']} | "
                     f"{r['cited_chars']} | {r['unanswerable_refused'] if r['unanswerable_refused'] is not None else '—'} | {r['false_refusals']} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--curve", type=Path, required=True)
    ap.add_argument("--table", action="append", default=[], help="TITLE=path of a reader_dev.py score --json file")
    ap.add_argument("--threshold", type=float, help="the default refusal threshold; default: reader.json's refusal_threshold")
    ap.add_argument("--note", default="", help="a sentence about this run (e.g. a budget changed on resume)")
    args = ap.parse_args()
    model = args.model_dir / "model.onnx"
    meta = json.loads((args.model_dir / "reader.json").read_text())
    train = meta["train_args"]
    if args.threshold is None:
        if "refusal_threshold" not in meta:
            ap.error(f"{args.model_dir / 'reader.json'} has no refusal_threshold; pass --threshold")
        args.threshold = float(meta["refusal_threshold"])
    rows = [json.loads(line) for line in args.curve.read_text().splitlines() if line.strip()]
    # The data paths as placeholders (docs/reader.md): where a user keeps SQuAD is theirs.
    command = (f".venv/bin/python training/train_reader.py SQUAD11_TRAIN_JSON_GZ "
               f"--slice SQUAD2_DEV_JSON --examples {train['examples']} "
               f"--seed {train['seed']} --max-len {train['max_len']} --batch {train['batch']} --lr {train['lr']}"
               + (f" --epochs {train['epochs']}" if train.get("epochs", 1) > 1 else "")
               + (f" --device {train['device']}" if train.get("device", "cpu") != "cpu" else ""))
    averaged = ",".join("~/.cache/rag-cite/reader/" + name for name in train.get("averaged", ()))
    ship = (f"scripts/ship_reader.sh {averaged}  # these checkpoints' parameters averaged, then: " if averaged
            else "scripts/ship_reader.sh  # ") + "export, measure, calibrate the refusal threshold, write this card"
    lines = [
        "# Reader model card",
        "",
        "An extractive question-answering model: given a question and a passage it scores every token as",
        "the start and the end of the answer, scores \"no answer here\" at [CLS], and gives a has-answer",
        "probability from the same forward pass. `rag/answering/reader.py` runs it on ONNX Runtime.",
        "",
        f"- file: `model.onnx`, int8 (dynamic quantisation), {model.stat().st_size / 1e6:.1f} MB",
        f"- sha256: {sha256(model)}",
        f"- backbone: {meta['backbone']} — 6 layers, 384 hidden, Apache-2.0; word embeddings frozen",
        f"- window: {meta['max_len']} tokens (question + passage), longer passages read in overlapping windows",
        f"- inputs {meta['inputs']}, outputs {meta['outputs']}",
        "",
        "## Data and licence",
        "",
        "Trained on SQuAD 1.1 (Rajpurkar, Zhang, Lopyrev and Liang, 2016, *SQuAD: 100,000+ Questions for",
        "Machine Comprehension of Text*), licensed CC BY-SA 4.0, and on the questions of every other article",
        "(sorted by title) of the public SQuAD 2.0 dev slice (Rajpurkar, Jia and Liang, 2018, CC BY-SA 4.0).",
        "Sixteen SQuAD 1.1 articles and the other half of the slice were held out and are what is reported",
        "below. The weights derive from that data: this model is shared under CC BY-SA 4.0.",
        "",
        "Examples: the question against a window of its own paragraph holding the answer; against the most",
        "similar other paragraph of its article and a window of its paragraph that misses the answer (\"the",
        "document does not say\"); with a name or number swapped for another of the article's; and the",
        "slice's adversarial unanswerable questions (training-use half).",
        "",
        "## How it was made",
        "",
        "```bash",
        command,
        ship,
        "```",
        "",
        f"Settings: {json.dumps({k: train[k] for k in ('examples', 'epochs', 'batch', 'lr', 'max_len', 'p_other', 'p_window', 'p_swap', 'slice_repeat', 'has_weight', 'seed') if k in train})}.",
        f"Default refusal threshold: {args.threshold} (`refusal_threshold` in reader.json), the grid value whose",
        "false refusals on the SQuAD 1.1 held-out articles come closest to 7%.",
        *([args.note] if args.note else []),
        "On the 2-core CPU of this project's machines, bf16 autocast, shared with other work (see the",
        "examples/s column): an Intel Xeon with AVX-512 BF16, VNNI and AMX, 150-166 GFLOPS of 1-core fp32",
        "GEMM (`benchmarks/host.py` on such a host, 2026-12-02); bf16 autocast needs AVX-512 BF16, and on",
        "an AVX2-only host (25 GFLOPS) training and reading run several times slower. Reading speed, with",
        "its host: docs/measurements.md. Learning curve (held-out dev sets, paragraph given; `refused_at10`",
        "= share of negatives refused when 10% of answerable questions are):",
        "",
        *curve_table(rows),
        "",
        "## Measured (open book: retrieval over the whole index, then the reader)",
        "",
    ]
    for spec in args.table:
        title, _, path = spec.partition("=")
        lines += [f"### {title}", "", *figures_table(Path(path), args.threshold), ""]
    lines += [
        "## Limits",
        "",
        "Trained on Wikipedia paragraphs: news, legal or technical prose is further from what it saw.",
        "English only. It picks spans; it cannot combine facts from two passages or compute.",
        "",
    ]
    (args.model_dir / "MODEL_CARD.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
