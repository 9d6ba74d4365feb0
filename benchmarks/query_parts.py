"""Time the parts of one warm query on an existing index, each on its own (medians in ms).

    .venv/bin/python benchmarks/query_parts.py --index benchmarks/results/tmp/growth-embedded/index \\
        --questions benchmarks/results/tmp/growth-questions.jsonl [--n 100]

What ``Assistant.ask`` spends per question, outside the pipeline so that each part is measured
alone: the question embedding (ONNX Runtime), Chroma's ``count()`` (which ``ChromaStore.query``
calls before every query) and the HNSW query itself, and the BM25 search in the catalog's FTS5
table (``Catalog.lexical_search``) and the term statistics read with it. The growth benchmark's
100k-chunk index is the interesting one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from rag.config import Settings
from rag.index.folder import Index
from rag.text.tokens import tokenize


def median_ms(fn: Callable[[str], object], questions: list[str]) -> float:
    times = []
    for q in questions:
        started = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--questions", type=Path, required=True, help="JSONL with a 'question' field")
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in args.questions.read_text().splitlines() if line.strip()]
    questions = questions[: args.n]
    index = Index.open(Settings(index_dir=args.index))  # a reader
    catalog = index.catalog
    vector = index.embed_query(questions[0])
    store = index.store
    results: dict[str, float | int] = {"sentence_vectors": store.count(), "chunks": catalog.counts()[1],
                                       "load_before": round(os.getloadavg()[0], 2)}
    results["embed_query_ms"] = median_ms(index.embed_query, questions)
    results["chroma_count_ms"] = median_ms(lambda q: store.count(), questions)
    results["chroma_query_ms"] = median_ms(lambda q: store._collection.query(  # the call ChromaStore.query makes
        query_embeddings=[vector], n_results=90, include=["distances", "metadatas"]), questions)
    results["bm25_fts5_search_ms"] = median_ms(lambda q: catalog.lexical_search(tokenize(q), 30), questions)
    results["bm25_term_stats_ms"] = median_ms(lambda q: catalog.term_stats(tokenize(q)), questions)
    results["load_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
