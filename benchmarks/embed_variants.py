"""Embedding runtimes side by side, in one run on the same texts: torch, ONNX fp32, ONNX int8.

    .venv/bin/python benchmarks/embed_variants.py [--out benchmarks/results/embed_variants.json]

- **throughput**: sentences per second encoding every sentence of the public SQuAD 2.0 slice
  (what ingest embeds), best of ``--repeat`` rounds that alternate the runtimes: ``SentenceTransformer.encode`` with the
  batch size ingest used before (64; torch's own threads), and this project's ``OnnxEmbedder``
  in fp32 and int8 at its default batch (8, longest first).
- **question embedding**: warm p50/p95 ms per question over the slice's questions, one at a time.
- **retrieval**: for each runtime, an index of the slice built with its vectors, then hybrid
  retrieval (the product's, top 5) for every answerable question: recall@5 (a retrieved chunk
  overlaps the gold evidence) and MRR, the same definitions as ``rag eval``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

import numpy as np  # noqa: E402

from rag.config import Settings  # noqa: E402
from rag.evals.gold import load_gold, locate_evidence  # noqa: E402
from rag.evals.normalize import DocSpan  # noqa: E402
from rag.evals.run import corpus_texts  # noqa: E402
from rag.index.embedding import OnnxEmbedder, default_model_path  # noqa: E402
from rag.text.sentences import split_sentences  # noqa: E402

SQUAD_JSON = ROOT / "evals" / "data" / "squad2-dev" / "squad2-dev-public.json"


class TorchEmbedder:
    """Today's path before ONNX: sentence-transformers on torch, batch 64, as ingest used it."""

    name = "all-MiniLM-L6-v2"
    variant = "fp32"

    def __init__(self, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(default_model_path(), device="cpu")
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                            show_progress_bar=False), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    @property
    def dimension(self) -> int:
        return 384


def slice_texts(corpus: Path) -> list[str]:
    out = []
    for path in sorted(corpus.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        out += [text[s:e] for s, e in split_sentences(text, Settings().chunking.max_sentence_chars)]
    return out


def throughput(embedder: Any, texts: list[str]) -> float:
    started = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - started)


def question_ms(embedder: Any, questions: list[str]) -> dict[str, float]:
    times = []
    for q in questions:
        started = time.perf_counter()
        embedder.embed_query(q)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50": round(statistics.median(times), 2), "p95": round(times[int(0.95 * (len(times) - 1))], 2)}


def retrieval(embedder: Any, corpus: Path, gold_path: Path, work: Path) -> dict[str, float]:
    from rag.assistant import Assistant

    settings = Settings(index_dir=work / "index", chroma_url=None)
    assistant = Assistant.open(settings=settings, create=True, embedder=embedder)
    started = time.perf_counter()
    assistant.ingest([corpus])
    ingest_s = time.perf_counter() - started
    gold = load_gold(gold_path)
    items = [i for i in gold.items if not i.unanswerable]
    evidence, _ = locate_evidence(items, corpus_texts(corpus))
    ranks = []
    for item in items:
        spans = evidence.get(item.id) or []
        if not spans:
            continue
        hits = assistant.retriever.retrieve(assistant.query(item.question))
        ranks.append(next((r for r, h in enumerate(hits, 1)
                           if any(DocSpan(h.source, h.chunk.start, h.chunk.end).overlaps(e) for e in spans)), None))
    assistant.close()
    return {"questions": len(ranks), "ingest_s": round(ingest_s, 2),
            "recall_at_5": round(float(np.mean([r is not None for r in ranks])), 4),
            "mrr": round(float(np.mean([1.0 / r if r else 0.0 for r in ranks])), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "embed_variants.json")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--questions", type=int, default=300, help="questions timed one at a time")
    ap.add_argument("--skip-retrieval", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-embed-variants-"))
    try:
        from rag.evals.squad import convert_squad

        convert_squad(SQUAD_JSON, work / "squad")
        corpus, gold_path = work / "squad" / "corpus", work / "squad" / "gold.jsonl"
        texts = slice_texts(corpus)
        questions = [i.question for i in load_gold(gold_path).items][: args.questions]
        runtimes = {"torch (sentence-transformers, batch 64)": TorchEmbedder,
                    "onnx fp32": lambda: OnnxEmbedder(variant="fp32"),
                    "onnx int8": lambda: OnnxEmbedder(variant="int8")}
        result: dict[str, Any] = {"sentences": len(texts), "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
                                  "load_before": round(os.getloadavg()[0], 2), "cores": os.cpu_count(), "runtimes": {}}
        embedders = {name: make() for name, make in runtimes.items()}
        for embedder in embedders.values():
            embedder.embed(texts[:16])  # load and warm outside the timing
        # Rounds alternate the runtimes, so a change in background load touches all of them.
        best = dict.fromkeys(embedders, 0.0)
        for _ in range(args.repeat):
            for name, embedder in embedders.items():
                best[name] = max(best[name], throughput(embedder, texts))
        for n, (name, embedder) in enumerate(embedders.items()):
            row: dict[str, Any] = {"sentences_per_s": round(best[name], 1), "question_ms": question_ms(embedder, questions)}
            if not args.skip_retrieval:
                row.update(retrieval(embedder, corpus, gold_path, work / f"index-{n}"))
            result["runtimes"][name] = row
            print(name, json.dumps(row), flush=True)
        base = result["runtimes"]["torch (sentence-transformers, batch 64)"]["sentences_per_s"]
        for row in result["runtimes"].values():
            row["speedup_vs_torch"] = round(row["sentences_per_s"] / base, 2)
        result["load_after"] = round(os.getloadavg()[0], 2)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
