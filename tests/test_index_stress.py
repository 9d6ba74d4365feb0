"""Cross-process stress: 2 writer and 4 reader processes on one index, writers SIGKILLed at random.

Each round the test changes the corpus (rewrites, deletes and restores files), tells both
writer processes to ``ingest --prune`` it at once (the writer lock serialises them) and, in
some rounds, SIGKILLs one of them after a random delay, mid-write or not, and starts a new
one. Four reader processes (tests/stress_worker.py; two long-lived like ``rag serve``, two
reopening often like ``rag ask``; one of each searching Chroma, the other two the catalog's
vectors) ask questions all along and check every answer. At the end
one more ingest runs, and the index must equal a clean ingest of the final files: documents,
versions, chunk and sentence ids, vectors and the lexical index. Readers must report no error,
no half-updated document and no citation that fails to verify.

    .venv/bin/python -m pytest tests/test_index_stress.py -m slow -s      # prints the counts
    RAG_TEST_STRESS_ROUNDS=50 ...                                                # fewer rounds
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.index.folder import Index

from .conftest import ROOT, make_settings
from .stress_worker import TinyEmbedder
from .test_reliability_crash import chroma_reader, index_state

WORKER = ROOT / "tests" / "stress_worker.py"
NAMES = [f"town{i}.txt" for i in range(6)]
TOPICS = ["harbour was rebuilt", "bridge was paid for by the guild", "mill burned down", "port saw ships come in",
          "council decided about the market"]


def version_text(name: str, round_no: int, rng: random.Random) -> str:
    sentences = [f"{name} record {round_no}."]
    for _ in range(rng.randint(3, 12)):
        topic = rng.choice(TOPICS)
        sentences.append(f"In {rng.randint(1700, 2024)} the {topic} in {name.split('.')[0]}, round {round_no}.")
    return " ".join(sentences) + "\n"


class Writer:
    def __init__(self, index_dir: Path, corpus: Path) -> None:
        self.log = index_dir.parent / f"writer-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "writer", str(index_dir), str(corpus)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def start_ingest(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("ingest\n")
        self.proc.stdin.flush()

    def finish(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line.startswith("done"), f"writer ended without finishing: {line!r}\n{self.log.read_text()[-3000:]}"
        return line

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


@pytest.mark.slow
def test_two_writers_four_readers_and_random_kills(tmp_path: Path) -> None:
    rounds = int(os.environ.get("RAG_TEST_STRESS_ROUNDS", "200"))
    rng = random.Random(14)
    corpus, index_dir, registry = tmp_path / "corpus", tmp_path / "idx", tmp_path / "versions.json"
    corpus.mkdir()
    versions: dict[str, list[str]] = {}

    def write(name: str, text: str) -> None:
        versions.setdefault(name, []).append(text)
        tmp = registry.with_suffix(".tmp")
        tmp.write_text(json.dumps(versions), encoding="utf-8")
        tmp.replace(registry)  # readers learn a text, whole, before it exists
        (corpus / name).write_text(text, encoding="utf-8")

    for name in NAMES:
        write(name, version_text(name, 0, rng))
    first = Assistant.open(settings=make_settings(index_dir, corpus_dir=corpus), create=True, embedder=TinyEmbedder())
    first.ingest([corpus])
    first.index.close()

    started = time.monotonic()
    reader_seconds = 36000.0  # stopped by the test once the rounds are done
    outs = [tmp_path / f"reader{i}.json" for i in range(4)]
    readers = [
        subprocess.Popen([sys.executable, str(WORKER), "reader", str(index_dir), str(registry), str(out),
                          str(reader_seconds), str(i)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                         stderr=subprocess.DEVNULL)
        for i, out in enumerate(outs)
    ]
    writers = [Writer(index_dir, corpus), Writer(index_dir, corpus)]
    kills = 0
    try:
        for round_no in range(1, rounds + 1):
            if os.environ.get("RAG_TEST_STRESS_VERBOSE"):
                print(f"round {round_no} at {time.monotonic() - started:.1f} s", flush=True)
            for name in rng.sample(NAMES, rng.randint(1, 3)):
                if (corpus / name).exists() and rng.random() < 0.15:
                    (corpus / name).unlink()
                else:
                    write(name, version_text(name, round_no, rng))
            for w in writers:
                w.start_ingest()
            if rng.random() < 0.3:
                victim = rng.randrange(2)
                time.sleep(rng.uniform(0.0, 0.4))
                writers[victim].kill()
                kills += 1
                writers[1 - victim].finish()
                writers[victim] = Writer(index_dir, corpus)
            else:
                for w in writers:
                    w.finish()
        for w in writers:
            w.close()
        for r in readers:
            r.send_signal(signal.SIGUSR1)
    finally:
        for w in writers:
            if w.proc.poll() is None:
                w.kill()
    for r in readers:
        r.wait(timeout=120)
    duration = time.monotonic() - started

    final = Assistant.open(settings=make_settings(index_dir, corpus_dir=corpus), create=True, embedder=TinyEmbedder())
    final.ingest([corpus], prune=True)
    final.index.close()
    clean = Assistant.open(settings=make_settings(tmp_path / "clean", corpus_dir=corpus), create=True, embedder=TinyEmbedder())
    clean.ingest([corpus])
    got = index_state(Index.open(chroma_reader(index_dir), embedder=TinyEmbedder()))  # Chroma itself
    want = index_state(clean.index)
    counts = [json.loads(out.read_text()) for out in outs]
    errors = [e for c in counts for e in c["errors"]]
    summary = {"rounds": rounds, "kills": kills, "reader_queries": sum(c["queries"] for c in counts),
               "citations_checked": sum(c["citations"] for c in counts), "reader_reopens": sum(c["reopens"] for c in counts),
               "chroma_reopened_after_error": sum(c["store_reopened"] for c in counts),
               "answered_from_catalog_after_error": sum(c["answered_from_catalog"] for c in counts),
               "errors": len(errors), "seconds": round(duration, 1)}
    print("\nstress:", json.dumps(summary))
    assert errors == [], errors[:5]
    assert got == want
    assert summary["reader_queries"] > rounds
