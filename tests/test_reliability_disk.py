"""Disk trouble: a read-only or full index folder gives a clear error (a read-only one still
answers questions) and keeps the index whole.

Real faults where the machine allows them: as root (CI) the index lives on a small tmpfs that
the test mounts, remounts read-only, or fills with a preallocated file until only a few KB are
free; permission bits would not stop root, a read-only mount does. Without root the read-only
case uses ``chmod`` (which does stop a normal user) and the full-disk walk is skipped. Every run
that touches the mount is a ``rag`` subprocess, so this process holds no file open there.

One test needs no privileges at all: SQLite's own ``max_page_count`` makes the catalog "full"
(SQLITE_FULL, the code a full disk gives) in the middle of an in-process ingest.

After each failure the stored documents are compared with what was there before (catalog rows
read with plain ``sqlite3``; Chroma ids from Chroma's own SQLite file, read-only, so that no
client writes while checking).
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.errors import StoreError

from .conftest import CORPUS, make_settings
from .test_reliability_crash import catalog_rows, index_state, ingest_in_process, run_rag

pytestmark = pytest.mark.timeout(420)

QUESTION = "What share of microelectronics came from China?"
WORDS = "harbour mill bridge river council stone steel toll ferry lamp keeper barley granary tower clock".split()


def write_filler_corpus(root: Path, files: int = 8, sentences: int = 12) -> Path:
    """Plain-text files of made-up sentences (deterministic), a few hundred KB of vectors in all."""
    rng = random.Random(8)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        text = " ".join(" ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "." for _ in range(sentences))
        (root / f"filler {i:02d}.txt").write_text(text + "\n", encoding="utf-8")
    return root


def chroma_ids(index_dir: Path) -> list[str]:
    """The ids in the index's embedded Chroma, read from its SQLite file without a client."""
    con = sqlite3.connect(f"file:{index_dir / 'chroma' / 'chroma.sqlite3'}?mode=ro", uri=True)
    try:
        return sorted(r[0] for r in con.execute("SELECT embedding_id FROM embeddings"))
    finally:
        con.close()


def folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def can_mount() -> bool:
    return os.geteuid() == 0 and subprocess.run(["which", "mount"], capture_output=True).returncode == 0


class Tmpfs:
    """A tmpfs of ``size_kb`` mounted at ``path`` by this test (root only)."""

    def __init__(self, path: Path, size_kb: int) -> None:
        self.path = path
        path.mkdir(parents=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True, capture_output=True)

    def free_kb(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize // 1024

    def fill(self, leave_kb: int) -> None:
        """Preallocate a file so that about ``leave_kb`` KB stay free."""
        self.unfill()
        size = (self.free_kb() - leave_kb) * 1024
        if size > 0:
            fd = os.open(self.path / "filler.bin", os.O_CREAT | os.O_WRONLY, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)

    def unfill(self) -> None:
        (self.path / "filler.bin").unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture()
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    if not can_mount():
        pytest.skip("needs root to mount a tmpfs (permission bits do not stop root)")
    fs = Tmpfs(tmp_path / "fs", 4096)
    try:
        yield fs
    finally:
        fs.unmount()


def assert_one_line_error(done: subprocess.CompletedProcess[str], *any_of: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and done.stderr.rstrip("\n").endswith(errors[0]), done.stderr
    assert "Traceback" not in done.stderr
    assert any(text in errors[0] for text in any_of), errors[0]


# -- read-only -------------------------------------------------------------------------------
def test_read_only_index_folder_refuses_ingest_answers_questions_and_stays_unchanged(tmp_path: Path) -> None:
    fs: Tmpfs | None = None
    if can_mount():
        fs = Tmpfs(tmp_path / "fs", 8192)
        index_dir = fs.path / "idx"
    elif os.geteuid() != 0:
        index_dir = tmp_path / "idx"
    else:
        pytest.skip("root without mount: nothing makes a folder read-only to root")
    try:
        assert run_rag("ingest", str(CORPUS), "--index", str(index_dir)).returncode == 0
        before = folder_digest(index_dir)
        if fs is not None:
            fs.remount("ro")
        else:
            for p in [index_dir, *index_dir.rglob("*")]:
                p.chmod(p.stat().st_mode & ~0o222)
        corpus = tmp_path / "more"
        (corpus).mkdir()
        (corpus / "note.txt").write_text("The pier was extended in 1930.\n", encoding="utf-8")
        ingested = run_rag("ingest", str(corpus), "--index", str(index_dir))
        assert_one_line_error(ingested, f"index folder {index_dir} is not writable")
        asked = run_rag("ask", QUESTION, "--index", str(index_dir), plain=True)
        # A reader needs no write access: it reads the catalog (immutable) and its vectors.
        assert asked.returncode == 0 and "90%" in asked.stdout, asked.stderr
        if fs is not None:
            fs.remount("rw")
        else:
            for p in [index_dir, *index_dir.rglob("*")]:
                p.chmod(p.stat().st_mode | 0o200)
        assert folder_digest(index_dir) == before
        again = run_rag("ask", QUESTION, "--index", str(index_dir), plain=True)
        assert again.returncode == 0 and "90%" in again.stdout, again.stderr
    finally:
        if fs is not None:
            fs.unmount()


# -- full disk -------------------------------------------------------------------------------
FULL_MARKERS = ("disk is full", "disk I/O error", "KB free", "No space left")


def test_full_disk_is_a_clear_error_and_stored_documents_stay_whole(
    tmpfs: Tmpfs, tmp_path: Path, embedder: object
) -> None:
    """Fill the disk to a few levels; each failing ingest keeps every stored document whole.

    With no room at all, nothing is written. With a little, Chroma or the catalog fails and
    the failed write is undone at once, or, when even the undo cannot write, left pending for
    the next open to repair. With more, some documents are committed (each whole) before the
    disk fills. Once space is back, a rerun ends equal to a clean ingest. The levels run in
    this process (the session's model embeds fast); the CLI's message is checked once.
    """
    index_dir = tmpfs.path / "idx"
    settings = make_settings(index_dir)
    ingest_in_process(index_dir, CORPUS, embedder).close()
    corpus = write_filler_corpus(tmp_path / "filler")
    shutil_copy_seed(corpus)
    tmpfs.fill(0)
    done = run_rag("ingest", str(corpus), "--index", str(index_dir), "--root", str(corpus))
    tmpfs.unfill()
    assert_one_line_error(done, *FULL_MARKERS)
    outcomes = []
    for leave_kb in (0, 24, 64, 160):
        before = catalog_rows(index_dir)
        tmpfs.fill(leave_kb)
        assistant = None
        try:
            assistant = Assistant.open(settings=settings, create=True, embedder=embedder)  # type: ignore[arg-type]
            assistant.ingest([corpus], root=corpus)
            outcome = "fitted"
        except StoreError as e:
            assert "\n" not in str(e) and any(m in str(e) for m in FULL_MARKERS), str(e)
            outcome = str(e)
        finally:
            tmpfs.unfill()
            if assistant is not None:
                assistant.close()
                assistant.index.close()  # its Chroma client too: one that hit a full disk is not reused
        after = catalog_rows(index_dir)
        old_docs = {row[0]: row for row in before["documents"]}
        new_docs = {row[0]: row for row in after["documents"]}
        assert all(new_docs.get(d) == row for d, row in old_docs.items()), "a stored document changed or was lost"
        assert_documents_whole(after)
        extra = set(chroma_ids(index_dir)) - {f"{d}:s{i:05d}" for d, i, *_ in after["sentences"]}
        pending = {d for (d,) in after["pending"]}
        assert all(x.split(":")[0] in pending for x in extra), "orphan vectors of a document not pending"
        outcomes.append(f"free {leave_kb} KB: …{outcome[-110:]}; documents {len(old_docs)} -> {len(new_docs)}, "
                        f"pending {len(pending)}, orphan vectors {len(extra)}")
    recovered = ingest_in_process(index_dir, corpus, embedder)
    clean = ingest_in_process(tmp_path / "clean", corpus, embedder)
    assert index_state(recovered) == index_state(clean)
    recovered.catalog.close()
    print("\n" + "\n".join(outcomes))


def shutil_copy_seed(corpus: Path) -> None:
    import shutil

    for p in CORPUS.iterdir():
        shutil.copyfile(p, corpus / p.name)


def assert_documents_whole(rows: dict[str, object]) -> None:
    """Every catalog document has all its chunks and sentences, and its chunks quote its text."""
    texts = {d: text for d, _, _, text, _ in rows["documents"]}  # type: ignore[union-attr]
    n_chunks = {d: n for d, _, _, _, n in rows["documents"]}  # type: ignore[union-attr]
    seen: dict[str, int] = {}
    for _, doc_id, start, end, text in rows["chunks"]:  # type: ignore[union-attr]
        assert doc_id in texts and texts[doc_id][start:end] == text
        seen[doc_id] = seen.get(doc_id, 0) + 1
    assert seen == n_chunks
    assert {d for d, *_ in rows["sentences"]} == set(texts)  # type: ignore[union-attr]


def test_a_full_catalog_mid_ingest_is_undone_at_once(tmp_path: Path, embedder: object) -> None:
    """No privileges needed: SQLite's max_page_count makes the catalog full (SQLITE_FULL)."""
    index_dir = tmp_path / "idx"
    assistant = Assistant.open(settings=make_settings(index_dir), create=True, embedder=embedder)  # type: ignore[arg-type]
    assistant.ingest([CORPUS])
    before_rows, before_ids = catalog_rows(index_dir), sorted(assistant.index.store.all_ids())
    corpus = write_filler_corpus(tmp_path / "filler", files=3)
    conn = assistant.index.catalog._conn()  # this thread's connection, the one ingest writes with
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # a handful of pages left
    with pytest.raises(StoreError, match="database or disk is full") as caught:
        assistant.ingest([corpus], root=corpus)
    assert "\n" not in str(caught.value)
    conn.execute("PRAGMA max_page_count = 1073741823")
    def without_root(rows: dict[str, object]) -> dict[str, object]:  # the run records its --root first
        return {**rows, "meta": [m for m in rows["meta"] if m[0] != "corpus_root"]}  # type: ignore[union-attr]

    assert without_root(catalog_rows(index_dir)) == without_root(before_rows)  # nothing committed, nothing pending
    assert sorted(assistant.index.store.all_ids()) == before_ids  # the vectors written were undone
    assert assistant.ask(QUESTION).short_answer == "90%"
    report = assistant.ingest([corpus], root=corpus)  # with room again, it goes through
    assert len(report.added) == 3
    index_state(assistant.index)
