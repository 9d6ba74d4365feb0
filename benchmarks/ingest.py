"""Ingest throughput against the compute bound, measured in one run.

    .venv/bin/python benchmarks/ingest.py [--corpus DIR ...] [--repeat N]

For each corpus (default: corpus/ and the SQuAD slice written as one text file per article):
1. ``rag ingest`` into a fresh temporary index (embedded Chroma), timed end to end: reading,
   sentence splitting, chunking, embedding, Chroma and catalog writes, BM25 build.
2. Raw ``SentenceTransformer.encode`` on the same chunk texts (read back from the catalog) with
   the same model and batch size: the compute bound of a pipeline that embeds chunks.
3. For reference, raw encode of the sentence texts, which is what this pipeline embeds (sentence
   vectors max-pooled to chunks; see rag/index/vectors.py).
Prints chunks/s for each and the ratio ingest / raw chunk encode (target >= 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from rag.assistant import Assistant  # noqa: E402
from rag.config import Settings  # noqa: E402


def squad_corpus(folder: Path) -> Path:
    from fit_answerer import write_articles

    write_articles(folder)
    return folder


def measure(corpus: Path, repeat: int) -> dict[str, float]:
    best_ingest = float("inf")
    chunk_texts: list[str] = []
    sentence_texts: list[str] = []
    assistant = None
    for _ in range(repeat):
        workdir = Path(tempfile.mkdtemp(prefix="rag-bench-ingest-"))
        try:
            settings = Settings(index_dir=workdir / "index", chroma_url=None)
            assistant = Assistant.open(settings=settings, create=True)
            assistant.index.embedder.embed(["warm up the model"])  # load outside the timing
            started = time.perf_counter()
            report = assistant.ingest([corpus])
            best_ingest = min(best_ingest, time.perf_counter() - started)
            _, chunk_texts = assistant.index.catalog.all_chunk_texts()
            sentence_texts = []
            for doc in assistant.documents():
                text = assistant.document_text(doc.source)
                sentence_texts += [text[s.start : s.end] for s in assistant.index.catalog.sentences(doc.id, 0, 1 << 30)]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    assert assistant is not None
    embedder = assistant.index.embedder  # the same loaded ONNX Runtime session

    def raw(texts: list[str]) -> float:
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            embedder.embed(texts)
            best = min(best, time.perf_counter() - started)
        return best

    raw_chunks = raw(chunk_texts)
    raw_sentences = raw(sentence_texts)
    n = len(chunk_texts)
    return {
        "documents": report.total_documents,
        "chunks": n,
        "sentences": len(sentence_texts),
        "ingest_s": round(best_ingest, 2),
        "ingest_chunks_per_s": round(n / best_ingest, 1),
        "raw_chunk_encode_s": round(raw_chunks, 2),
        "raw_chunk_encode_chunks_per_s": round(n / raw_chunks, 1),
        "raw_sentence_encode_s": round(raw_sentences, 2),
        "ratio_ingest_to_raw_chunk_encode": round(raw_chunks / best_ingest, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, action="append", help="corpus folder (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs for each timing")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ingest.json")
    args = parser.parse_args()
    corpora = args.corpus or [ROOT / "corpus", squad_corpus(Path(tempfile.gettempdir()) / "rag-squad-articles")]
    results = {}
    for corpus in corpora:
        r = measure(corpus, args.repeat)
        results[str(corpus)] = r
        print(f"{corpus}: {r['documents']} documents, {r['chunks']} chunks, {r['sentences']} sentences")
        print(f"  ingest            {r['ingest_s']:7.2f} s  {r['ingest_chunks_per_s']:8.1f} chunks/s")
        print(f"  raw chunk encode  {r['raw_chunk_encode_s']:7.2f} s  {r['raw_chunk_encode_chunks_per_s']:8.1f} chunks/s")
        print(f"  raw sentence enc. {r['raw_sentence_encode_s']:7.2f} s")
        print(f"  ratio ingest / raw chunk encode: {r['ratio_ingest_to_raw_chunk_encode']:.2f} (target >= 0.9)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": f"{os.cpu_count()} cores", "results": results}, indent=2))


if __name__ == "__main__":
    main()
