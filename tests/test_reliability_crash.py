"""Crash-safe ingest: SIGKILL ``rag ingest`` at every named failpoint, rerun, compare with a clean ingest.

Each case starts from an empty index (the add path) or from a clean index of corpus version 1
(the update and prune paths: one file changed, one added, one removed), runs
``rag ingest CORPUS --index DIR [--prune]`` in a subprocess with ``RAG_FAILPOINT`` set and
checks that it died by SIGKILL at that point. It then reruns the ingest without the failpoint
(``Index.open`` repairs, ingest carries on) and checks that the folder holds exactly what a
clean ingest of the same corpus holds: the same documents and hashes, chunk ids and sentence
ids; Chroma ids equal to the catalog's sentence ids (no orphan vectors) and their vectors and
versions; the BM25 (FTS5) rows equal to the tokens of the catalog's chunks; nothing pending.

Speed: the subprocess runs the real ``rag.cli`` app from this module's ``__main__`` (the
embedder runs on ONNX Runtime, so a crash run imports no torch). ``test_the_plain_cli_dies_and
_recovers_too`` runs the unmodified ``python -m rag.cli`` once; ``RAG_CRASH_REAL_CLI=1`` makes
every case use it. The default run covers a representative subset of the points; the full
matrix is marked ``slow`` (``scripts/test.sh -m slow -k crash``, about 3-4 minutes here).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rag.assistant import Assistant
from rag.config import Settings
from rag.index.folder import Index
from rag.index.lexical import stored_tokens

from .conftest import CORPUS, ROOT, SEED_SOURCE, make_settings

pytestmark = pytest.mark.timeout(600)

V1: dict[str, str] = {
    "harbour.txt": (
        "The harbour was rebuilt in 1887 by the city council. It cost 40,000 pounds. "
        "The new quay was 300 metres long. Ships from Norway unloaded timber there every week. "
        "A storm damaged the breakwater in 1903.\n"
    ),
    "notes/mill.md": "# The mill\n\nThe old mill burned down in 1901. It was never rebuilt. The miller moved to Leeds.\n",
    "old/gone.txt": "The tram line opened in 1899 and closed in 1956. Its depot became a bus garage.\n",
}
V2: dict[str, str] = {
    # Changed, with fewer sentences: the update path must delete the stale sentence vectors.
    "harbour.txt": "The harbour closed to cargo ships in 1990. It is now a marina.\n",
    "notes/mill.md": V1["notes/mill.md"],
    # Added; "old/gone.txt" is removed and pruned.
    "new/bridge.txt": "The swing bridge was opened by the mayor in 1912. It turns on a central pier.\n",
}


def write_corpus(root: Path, files: dict[str, str]) -> Path:
    """The seed article plus ``files``, and nothing else, under ``root``."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copyfile(CORPUS / SEED_SOURCE, root / SEED_SOURCE)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@dataclass(frozen=True)
class IndexState:
    """What must be equal between a recovered index and a clean one."""

    documents: tuple[tuple[str, str, int], ...]  # (source, sha256, n_chunks)
    chunk_ids: tuple[str, ...]
    sentence_ids: tuple[str, ...]
    lexical: tuple[tuple[str, str], ...] = ()


def chroma_reader(index_dir: Path) -> Settings:
    """A reader's settings that search Chroma whatever the index's size, so its state can be read."""
    return make_settings(index_dir, retrieval={"exact_search_max_vectors": 0})


def index_state(index: Index) -> IndexState:
    """The index's content, after checking that its three stores agree with each other."""
    catalog_sentences = sorted(index.catalog.sentence_ids())
    chunk_ids = sorted(index.catalog.chunk_ids())
    assert index.catalog.pending() == [], "documents left pending"
    assert sorted(index.store.all_ids()) == catalog_sentences, "Chroma ids differ from the catalog's sentences"
    assert index.orphan_ids() == []
    lexical = index.catalog.lexical_rows()
    assert sorted(lexical) == chunk_ids, "BM25 rows differ from the catalog's chunks"
    for doc in index.documents():
        text = index.catalog.text(doc.id)
        assert text is not None
        for cid, (chunk, _) in index.catalog.chunks(index.catalog.chunk_ids(doc.id)).items():
            assert text[chunk.start : chunk.end] == chunk.text
            assert lexical[cid] == " ".join(stored_tokens(chunk.text)), cid
    assert_vectors_match_catalog(index)
    versions = index.catalog.versions(d.id for d in index.documents())
    return IndexState(
        tuple((d.source, d.sha256, d.n_chunks, versions[d.id]) for d in index.documents()),
        tuple(chunk_ids),
        tuple(catalog_sentences),
        tuple(sorted(lexical.items())),
    )


def assert_vectors_match_catalog(index: Index) -> None:
    """Each Chroma entry holds its catalog sentence's vector, span and chunks, not another version's.

    Ids alone cannot tell: an update re-uses a document's sentence ids, so a crash between the
    Chroma upsert and the catalog commit leaves new vectors under old ids until repaired.
    """
    collection = getattr(index.store, "_collection", None)
    if collection is None:  # not a ChromaStore
        return
    got = collection.get(include=["embeddings", "metadatas"])
    stored = {e.id: e for d in index.documents() for e in index.catalog.vector_entries(d.id)}
    for vid, vector, meta in zip(got["ids"], got["embeddings"], got["metadatas"]):
        want = stored[vid]
        assert (meta["start"], meta["end"], meta["doc_id"]) == (want.start, want.end, want.doc_id), vid
        assert meta.get("version") == want.version, vid
        assert meta["chunks"] == ",".join(map(str, want.chunks)), vid
        v = np.asarray(vector, dtype=np.float32)
        assert float(v @ want.vector) / (np.linalg.norm(v) * np.linalg.norm(want.vector)) > 0.999, vid


def catalog_rows(index_dir: Path) -> dict[str, object]:
    """Everything the catalog stores, read with plain sqlite3 (read-only), to compare before/after."""
    import sqlite3

    con = sqlite3.connect(f"file:{index_dir / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        return {
            "documents": con.execute("SELECT id, source, sha256, text, n_chunks FROM documents ORDER BY id").fetchall(),
            "chunks": con.execute('SELECT id, doc_id, start, "end", text FROM chunks ORDER BY id').fetchall(),
            "sentences": con.execute('SELECT doc_id, idx, start, "end", vector FROM sentences ORDER BY doc_id, idx').fetchall(),
            "pending": con.execute("SELECT doc_id FROM pending ORDER BY doc_id").fetchall(),
            "meta": con.execute("SELECT key, value FROM meta ORDER BY key").fetchall(),
        }
    finally:
        con.close()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: no RAG_* settings of the developer's, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False", PYTHONPATH=str(ROOT))
    if os.environ.get("RAG_CRASH_REAL_CLI"):
        env["RAG_CRASH_REAL_CLI"] = "1"
    env.update(extra)
    return env


def rag_command(*args: str, plain: bool = False) -> list[str]:
    """``rag ARGS`` as a subprocess command; see the module docstring for the NumPy encode."""
    if plain or os.environ.get("RAG_CRASH_REAL_CLI"):
        return [sys.executable, "-m", "rag.cli", *args]
    return [sys.executable, "-m", "tests.test_reliability_crash", *args]


def run_rag(*args: str, failpoint: str | None = None, plain: bool = False, timeout: float = 180,
            **env: str) -> subprocess.CompletedProcess[str]:
    extra = {"RAG_FAILPOINT": failpoint} if failpoint else {}
    return subprocess.run(
        rag_command(*args, plain=plain), capture_output=True, text=True, cwd=ROOT, timeout=timeout,
        env=clean_env(**extra, **env),
    )


def assert_killed(done: subprocess.CompletedProcess[str], point: str) -> None:
    assert done.returncode == -signal.SIGKILL, (
        f"expected SIGKILL at {point}, got exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr[-2000:]}"
    )


def ingest_in_process(
    index_dir: Path, corpus: Path, embedder: object, prune: bool = False, chroma_url: str | None = None
) -> Index:
    """Open (repairing) and ingest like ``rag ingest`` does, with the session's model."""
    settings = make_settings(index_dir).with_overrides(chroma_url=chroma_url)
    assistant = Assistant.open(settings=settings, create=True, embedder=embedder)  # type: ignore[arg-type]
    assistant.ingest([corpus], prune=prune, root=corpus)
    return assistant.index


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, embedder: object) -> dict[str, IndexState]:
    """Clean ingests of both corpus versions, each into a fresh folder."""
    out: dict[str, IndexState] = {}
    for name, files in (("v1", V1), ("v2", V2)):
        tmp = tmp_path_factory.mktemp(f"clean-{name}")
        out[name] = index_state(ingest_in_process(tmp / "idx", write_corpus(tmp / "corpus", files), embedder))
    assert out["v1"] != out["v2"]
    return out


@pytest.fixture(scope="module")
def v1_index(tmp_path_factory: pytest.TempPathFactory, embedder: object) -> Path:
    """A clean index of corpus version 1; cases copy it before crashing an update into it."""
    tmp = tmp_path_factory.mktemp("v1-base")
    index = ingest_in_process(tmp / "idx", write_corpus(tmp / "corpus", V1), embedder)
    index.catalog.close()
    return tmp / "idx"


# (start, failpoint): "empty" ingests V1 into a new folder; "v1" ingests V2 --prune into a
# copy of a clean V1 index, so the update (replace + stale delete) and prune paths run.
QUICK: list[tuple[str, str]] = [
    ("empty", "ingest.marked_pending"),
    ("v1", "ingest.chroma_upserted"),
    ("v1", "catalog.put_document.before_commit"),
    ("v1", "ingest.catalog_committed"),
    ("v1", "ingest.prune_chroma_deleted"),
    ("v1", "ingest.chroma_written"),
]
FULL: list[tuple[str, str]] = [
    ("empty", "ingest.discovered"),
    ("empty", "ingest.embedded"),
    ("empty", "ingest.chroma_upserted"),
    ("empty", "catalog.put_document.before_commit"),
    ("empty", "ingest.catalog_committed"),
    ("empty", "ingest.chroma_written"),
    ("v1", "ingest.embedded"),
    ("v1", "ingest.marked_pending"),
    ("v1", "catalog.delete_document.before_commit"),
]
CASES = [pytest.param(s, p, id=f"{s}-{p}") for s, p in QUICK] + [
    pytest.param(s, p, id=f"{s}-{p}", marks=pytest.mark.slow) for s, p in FULL
]


def crash_then_recover(tmp: Path, start: str, point: str, v1_index: Path, embedder: object) -> Index:
    index_dir = tmp / "idx"
    if start == "v1":
        shutil.copytree(v1_index, index_dir)
    corpus = write_corpus(tmp / "corpus", V2 if start == "v1" else V1)
    args = ["ingest", str(corpus), "--index", str(index_dir)] + (["--prune"] if start == "v1" else [])
    assert_killed(run_rag(*args, failpoint=point), point)
    return ingest_in_process(index_dir, corpus, embedder, prune=start == "v1")


@pytest.mark.parametrize(("start", "point"), CASES)
def test_killed_ingest_reruns_to_a_clean_index(
    tmp_path: Path, start: str, point: str, v1_index: Path, clean: dict[str, IndexState], embedder: object
) -> None:
    recovered = crash_then_recover(tmp_path, start, point, v1_index, embedder)
    assert index_state(recovered) == clean["v2" if start == "v1" else "v1"]


def test_killed_update_then_reverted_file_is_repaired(
    tmp_path: Path, v1_index: Path, clean: dict[str, IndexState], embedder: object
) -> None:
    """Killed after Chroma took the new version; the user then restores the old file.

    The rerun finds nothing changed on disk, so only the repair can put the old vectors back
    (``assert_vectors_match_catalog`` checks vectors and spans, not just ids).
    """
    index_dir = tmp_path / "idx"
    shutil.copytree(v1_index, index_dir)
    corpus = write_corpus(tmp_path / "corpus", V2)
    args = ["ingest", str(corpus), "--index", str(index_dir), "--prune"]
    assert_killed(run_rag(*args, failpoint="ingest.chroma_upserted"), "ingest.chroma_upserted")
    write_corpus(corpus, V1)
    recovered = ingest_in_process(index_dir, corpus, embedder)
    assert index_state(recovered) == clean["v1"]


def test_killed_repair_is_repaired_again(
    tmp_path: Path, v1_index: Path, clean: dict[str, IndexState], embedder: object
) -> None:
    """A crash leaves documents pending; the next open dies inside ``Index.repair``; a third run mends."""
    index_dir = tmp_path / "idx"
    shutil.copytree(v1_index, index_dir)
    corpus = write_corpus(tmp_path / "corpus", V2)
    args = ["ingest", str(corpus), "--index", str(index_dir), "--prune"]
    assert_killed(run_rag(*args, failpoint="ingest.chroma_written"), "ingest.chroma_written")
    assert_killed(run_rag(*args, failpoint="index.repair.resynced"), "index.repair.resynced")
    recovered = ingest_in_process(index_dir, corpus, embedder, prune=True)
    assert index_state(recovered) == clean["v2"]


def test_the_plain_cli_dies_and_recovers_too(tmp_path: Path, clean: dict[str, IndexState], embedder: object) -> None:
    """The unmodified ``python -m rag.cli`` (sentence-transformers encode) at a point after Chroma writes."""
    corpus = write_corpus(tmp_path / "corpus", V1)
    index_dir = tmp_path / "idx"
    args = ["ingest", str(corpus), "--index", str(index_dir)]
    assert_killed(run_rag(*args, failpoint="ingest.chroma_written", plain=True), "ingest.chroma_written")
    # A failpoint name that no code reaches changes nothing: the switch fires only where named.
    rerun = run_rag(*args, failpoint="no.such.point", plain=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "added 4" in rerun.stdout
    index = Index.open(chroma_reader(index_dir), embedder=embedder)  # type: ignore[arg-type]
    assert index_state(index) == clean["v1"]


def test_rebuild_replaces_an_index_in_one_process(tmp_path: Path, clean: dict[str, IndexState], embedder: object) -> None:
    """``--rebuild`` drops and deletes the index, then makes it again at the same path.

    It used to fail every time with "attempt to write a readonly database": Chroma kept the
    deleted folder's system open in the process until ``ChromaStore.drop`` closed its client.
    """
    corpus = write_corpus(tmp_path / "corpus", V2)
    index_dir = tmp_path / "idx"
    assert run_rag("ingest", str(corpus), "--index", str(index_dir)).returncode == 0
    write_corpus(corpus, V1)
    done = run_rag("ingest", str(corpus), "--index", str(index_dir), "--rebuild")
    assert done.returncode == 0, done.stderr
    assert "added 4," in done.stdout
    index = Index.open(chroma_reader(index_dir), embedder=embedder)  # type: ignore[arg-type]
    assert index_state(index) == clean["v1"]


# -- the subprocess entry point -------------------------------------------------------------
if __name__ == "__main__":
    from rag.cli.main import app

    app(prog_name="rag")
