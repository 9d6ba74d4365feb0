"""Worker processes of tests/test_index_stress.py: a writer that ingests on command, a reader that asks.

    python tests/stress_worker.py writer INDEX CORPUS      # reads "ingest" lines, answers "done N"
    python tests/stress_worker.py reader INDEX REGISTRY OUT SECONDS SEED

A reader asks questions until SECONDS pass, checks every answer (citations verify against a text
the test wrote for that file; every hit's chunk lies in its document text, and that text is one
whole version the test wrote: never half of two), and writes its counts and errors to OUT.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from rag.assistant import Assistant
from rag.config import Settings

QUESTIONS = [
    "When was the harbour rebuilt?",
    "Who paid for the bridge?",
    "What burned down in the mill?",
    "How many ships came to the port?",
    "What did the council decide about the market?",
]


class TinyEmbedder:
    """A deterministic 16-dimensional bag-of-words embedder: no model, exact repeats."""

    name = "tiny-test-embedder"

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 16), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, sum(map(ord, word)) % 16] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-6)
        return out


def settings(index_dir: Path, corpus: Path | None = None, exact_search: bool = False) -> Settings:
    """``exact_search``: search the catalog's vectors (what a small index's reader does by
    default); else Chroma, whatever the index's size."""
    return Settings(index_dir=index_dir, corpus_dir=corpus or index_dir, chroma_url=None,
                    answer={"answerer": "extractive"},
                    retrieval={"exact_search_max_vectors": 1 << 30 if exact_search else 0})


class _StoreEvents(logging.Handler):
    """Counts the reader's recoveries from a failed Chroma query (logged by rag.index.folder)."""

    def __init__(self, counts: dict) -> None:
        super().__init__(logging.WARNING)
        self.counts = counts

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for key, marker in (("store_reopened", "reopening the vector store"),
                            ("answered_from_catalog", "answering from the catalog")):
            if marker in message:
                self.counts[key] += 1


def writer(index_dir: Path, corpus: Path) -> None:
    assistant = Assistant.open(settings=settings(index_dir, corpus), create=True, embedder=TinyEmbedder())
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "ingest":
            continue
        report = assistant.ingest([corpus], prune=True)
        print(f"done {len(report.added)} {len(report.updated)} {len(report.removed)}", flush=True)


def reader(index_dir: Path, registry: Path, out: Path, seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    counts = {"queries": 0, "reopens": 0, "citations": 0, "store_reopened": 0, "answered_from_catalog": 0,
              "errors": []}
    logging.getLogger("rag.index.folder").addHandler(_StoreEvents(counts))
    exact_search = seed >= 2  # readers 0 and 1 search Chroma, 2 and 3 the catalog's vectors
    versions: dict[str, list[str]] = {}

    def known(source: str, text: str) -> bool:
        nonlocal versions
        for _ in range(2):
            if text in versions.get(source, []):
                return True
            versions = json.loads(registry.read_text(encoding="utf-8"))
        return False

    assistant = None
    stop = False

    def on_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGUSR1, on_stop)
    deadline = time.monotonic() + seconds
    parent = os.getppid()
    while time.monotonic() < deadline and not stop and os.getppid() == parent:  # the test died: stop too
        try:
            if assistant is None or (seed % 2 == 0 and rng.random() < 0.1):  # half short-lived, like `rag ask`
                if assistant is not None:
                    assistant.index.close()
                assistant = Assistant.open(settings=settings(index_dir, exact_search=exact_search), embedder=TinyEmbedder())
                counts["reopens"] += 1
            question = rng.choice(QUESTIONS)
            with assistant.index.catalog.snapshot():
                hits = assistant.retriever.retrieve(assistant.query(question))
            for hit in hits:
                if hit.document_text[hit.chunk.start : hit.chunk.end] != hit.chunk.text:
                    counts["errors"].append(f"chunk outside its text: {hit.source}")
                if not known(hit.source, hit.document_text):
                    counts["errors"].append(f"half-updated or unknown text of {hit.source}")
            answer = assistant.ask(question)
            for c in answer.citations:
                counts["citations"] += 1
                if not any(t[c.start : c.end] == c.quote for t in versions.get(c.source, [])):
                    versions = json.loads(registry.read_text(encoding="utf-8"))
                    if not any(t[c.start : c.end] == c.quote for t in versions.get(c.source, [])):
                        counts["errors"].append(f"citation does not verify: {c.source} {c.start}-{c.end}")
            counts["queries"] += 1
        except Exception as e:  # noqa: BLE001 - every error is what the test counts
            counts["errors"].append(f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
        time.sleep(rng.uniform(0.0, 0.05))
    out.write_text(json.dumps(counts), encoding="utf-8")


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "writer":
        writer(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        reader(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
