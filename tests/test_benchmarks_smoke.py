"""Fast checks of the benchmark's pure parts: the scaled-corpus generator and the report tables.

The benchmark itself (benchmarks/run.py) is never run by the test suite: it takes minutes and its
timings depend on the machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rag.ingest.chunking import chunk_document

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

# Plain imports, not importorskip: a broken import in benchmark code must fail the tests.
import docs_tables  # noqa: E402
import host  # noqa: E402
import scale_corpus  # noqa: E402
import tables  # noqa: E402

SQUAD = scale_corpus.SQUAD
needs_squad = pytest.mark.skipif(not SQUAD.is_file(), reason=f"{SQUAD} is not present")


@pytest.fixture(scope="module")
def articles() -> list:
    return scale_corpus.load_articles()


@needs_squad
def test_generated_corpus_is_deterministic_and_has_no_identical_chunks(tmp_path: Path) -> None:
    manifest = scale_corpus.write_corpus(tmp_path / "a", [150, 300])
    again = scale_corpus.write_corpus(tmp_path / "b", [150, 300])
    files_a = sorted(p.name for p in (tmp_path / "a").glob("g*.txt"))
    assert files_a == sorted(p.name for p in (tmp_path / "b").glob("g*.txt"))
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert manifest["sizes"] == again["sizes"]
    chunks = [c.text for name in files_a for c in chunk_document(name, (tmp_path / "a" / name).read_text(encoding="utf-8"))]
    assert len(chunks) == manifest["sizes"][-1]["chunks"] >= 300
    assert len(set(chunks)) == len(chunks)


@needs_squad
def test_smaller_sizes_are_prefixes_of_larger_ones(tmp_path: Path) -> None:
    manifest = scale_corpus.write_corpus(tmp_path, [100, 250])
    small, large = (scale_corpus.files_for(tmp_path, manifest, t) for t in (100, 250))
    assert large[: len(small)] == small and len(large) > len(small)
    assert manifest["sizes"][0]["chunks"] >= 100


@needs_squad
def test_documents_are_perturbed_remixes_of_their_article(articles: list) -> None:
    doc = scale_corpus.make_document(articles, seed=0, n=3)
    assert doc == scale_corpus.make_document(articles, seed=0, n=3)
    assert doc != scale_corpus.make_document(articles, seed=0, n=3, attempt=1)
    paragraphs = doc.split("\n\n")
    source = articles[3 % len(articles)].paragraphs
    assert 1 <= len(paragraphs) <= 10
    assert all(p not in source for p in paragraphs if len(p) > 400)  # long paragraphs get changed
    # ...but stay close to an original paragraph (same length in tokens, most words kept)
    words = set(paragraphs[0].split())
    assert max(len(words & set(s.split())) / len(words) for s in source) > 0.6


def test_report_renders_tables_from_a_results_dict(tmp_path: Path) -> None:
    quality = {"answer_in_cited": 0.8, "evidence_hit_rate": 0.7, "cited_chars_mean": 250.0, "chars_per_found_answer": 300.0,
               "answer_in_retrieved": 0.9, "answered_share": 1.0, "refusal_accuracy": 0.5}
    ingest = {"chunks": 10, "ingest_s": 2.0, "peak_rss_mb": 500.0, "load_before": 1.0}
    query = {"p50_ms": 40.0, "p95_ms": 60.0, "first_answer_s": 3.0, "peak_rss_mb": 300.0, "load_before": 1.0}
    results = {
        "command": "benchmarks/run.py", "started": "2026-01-01T00:00:00+00:00", "seconds": 60.0,
        "machine": {"cpu": "test", "cores": 2, "memory_gb": 8.0, "python": "3.11", "model": "m", "versions": {}},
        "load": {"start": 0.5, "end": 0.6},
        "datasets": {"seed": {"title": "Seed", "description": "d",
                              "systems": {"rag-cite": {"ingest": ingest, "query": query, "quality": quality}}}},
        "targets": [{"target": "t", "measured": "m", "met": True}],
    }
    tables.write(results, tmp_path, "test")
    text = (tmp_path / "test.md").read_text()
    assert "| this project (rag-cite), reader | 80.0% | 70.0% | 250 | 300 | 90.0% | 100.0% | 50.0% |" in text
    assert json.loads((tmp_path / "test.json").read_text())["targets"][0]["met"] is True
    assert (tmp_path / "test-quality.png").stat().st_size > 1000


def test_embedding_cache_writes_everything_and_reads_back_without_encoding(tmp_path: Path) -> None:
    import numpy as np

    embed_cache = pytest.importorskip("embed_cache")

    class Counting:
        name, dimension = "counting", 3

        def __init__(self) -> None:
            self.encoded: list[str] = []

        def embed(self, texts: list[str]) -> np.ndarray:
            self.encoded += texts
            return np.array([[len(t), 1.0, 0.5] for t in texts], dtype=np.float32)

    writer = Counting()
    written = embed_cache.CachedEmbedder(writer, tmp_path, "write").embed(["a", "bb", "a"])
    assert writer.encoded == ["a", "bb", "a"]  # write mode encodes repeats too, like the real embedder
    reader = Counting()
    cached = embed_cache.CachedEmbedder(reader, tmp_path, "read")
    read = cached.embed(["bb", "a", "ccc"])
    assert reader.encoded == ["ccc"] and cached.reused == 2
    assert read.tolist() == [written[1].tolist(), written[0].tolist(), [3.0, 1.0, 0.5]]


def test_docs_measurements_is_what_the_committed_results_generate() -> None:
    # docs/measurements.md is never edited by hand: rerun benchmarks/docs_tables.py after new results.
    assert (ROOT / "docs" / "measurements.md").read_text(encoding="utf-8") == docs_tables.render()



def test_every_timing_can_name_its_host() -> None:
    record = host.host()
    assert record["cpu"] and record["cores"] and float(record["gemm_gflops_1core"]) > 0  # type: ignore[arg-type]
    line = host.describe(record)
    assert str(record["cpu"]) in line and "GFLOPS" in line
