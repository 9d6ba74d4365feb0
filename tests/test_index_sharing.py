"""One index, many processes: the cases of issue 14, each of which failed before it.

Names are relative to the corpus root whatever path is given; ``--prune`` keeps to the paths
given; the index folder is never ingested; a second writer waits or fails with one line; a reader
never writes; bad files and bad query inputs are one-line skips and errors; a ``name*`` filter
applies inside the stores, before their top candidates are taken.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.errors import QueryError, StoreError
from rag.index.folder import Index
from rag.index.locks import WriterLock
from rag.index.vectors import chroma_where
from rag.ingest.readers import read_document
from rag.retrieval.hybrid import Filters

from .conftest import ROOT, make_settings
from .stress_worker import TinyEmbedder  # the one tiny embedder of the index tests

RAG = [sys.executable, "-m", "rag.cli"]




def rag(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([*RAG, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=300)


def two_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text("The harbour was rebuilt in 1887 by the council.\n", encoding="utf-8")
    (folder / "b.txt").write_text("The old mill burned down in 1901 and was never rebuilt.\n", encoding="utf-8")
    return folder


def sources(index_dir: Path) -> list[str]:
    from rag.index.catalog import Catalog

    return [d.source for d in Catalog(index_dir, create=False, readonly=True).documents()]


def open_tiny(index_dir: Path, corpus_dir: Path | None = None, **kw: object) -> Assistant:
    settings = make_settings(index_dir, **({"corpus_dir": corpus_dir} if corpus_dir else {}))
    return Assistant.open(settings=settings, embedder=TinyEmbedder(), answerer=None, **kw)  # type: ignore[arg-type]


# -- Why 1 and 2: names do not depend on the path given; prune keeps to it -----------------------
def test_prune_with_one_file_keeps_the_other_documents(tmp_path: Path) -> None:
    c = two_files(tmp_path / "c")
    a = open_tiny(tmp_path / "idx", create=True)
    a.ingest([c])
    report = a.ingest([c / "a.txt"], prune=True)
    assert report.removed == [] and sorted(d.source for d in a.documents()) == ["a.txt", "b.txt"]
    (c / "b.txt").unlink()
    assert a.ingest([c / "a.txt"], prune=True).removed == []  # b.txt is not under the path given
    assert a.ingest([c], prune=True).removed == ["b.txt"]


def test_the_same_file_keeps_its_name_whatever_path_is_given(tmp_path: Path) -> None:
    c = two_files(tmp_path / "c")
    a = open_tiny(tmp_path / "idx", create=True)
    a.ingest([c])
    again = a.ingest([tmp_path])  # the parent: holds the root and the index folder
    assert again.added == [] and sorted(again.unchanged) == ["a.txt", "b.txt"] and again.skipped == []
    assert sorted(d.source for d in a.documents()) == ["a.txt", "b.txt"]
    assert a.ingest([c / "b.txt"]).unchanged == ["b.txt"]
    outside = two_files(tmp_path / "elsewhere")
    report = a.ingest([outside])
    assert report.added == [] and report.skipped == [(str(outside), f"outside the corpus root {c}")]


def test_names_are_relative_to_the_corpus_root_setting(tmp_path: Path) -> None:
    corpus = two_files(tmp_path / "corpus" / "news")
    a = open_tiny(tmp_path / "idx", corpus_dir=tmp_path / "corpus", create=True)
    assert sorted(a.ingest([corpus / "a.txt", corpus]).added) == ["news/a.txt", "news/b.txt"]
    assert sorted(a.ingest([tmp_path / "corpus"]).unchanged) == ["news/a.txt", "news/b.txt"]


def test_cli_ingest_of_a_parent_neither_duplicates_nor_walks_into_the_index(tmp_path: Path) -> None:
    two_files(tmp_path / "c")
    assert rag("ingest", "c", "--index", "idx", cwd=tmp_path, env={"RAG_EMBEDDING__MODEL": ""}).returncode == 0
    done = rag("ingest", ".", "--index", "idx", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "added 0, updated 0, unchanged 2, removed 0, skipped 0" in done.stdout
    assert sources(tmp_path / "idx") == ["a.txt", "b.txt"]
    pruned = rag("ingest", "c/a.txt", "--prune", "--index", "idx", cwd=tmp_path)
    assert "removed 0" in pruned.stdout and sources(tmp_path / "idx") == ["a.txt", "b.txt"]


# -- Why 3: one writer; readers never write -----------------------------------------------------
def test_a_second_writer_fails_with_one_line_or_waits(tmp_path: Path) -> None:
    c = two_files(tmp_path / "c")
    assert rag("ingest", "c", "--index", "idx", cwd=tmp_path).returncode == 0
    held = WriterLock(tmp_path / "idx")
    fails = Index.open(make_settings(tmp_path / "idx", write_lock="fail"), create=True)
    with held.hold():
        with pytest.raises(StoreError, match="another process is writing index") as e:
            Assistant(fails).ingest([c])
        assert "\n" not in str(e.value)
        with pytest.raises(StoreError, match="another process is writing index"):
            Index.open(make_settings(tmp_path / "idx", write_lock="fail"), create=True, embedder=fails.embedder)
    script = (
        "import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
        "print('held', flush=True); time.sleep(2); l.release()"
    )
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "idx" / "write.lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    (c / "a.txt").write_text("The harbour was rebuilt in 1890.\n", encoding="utf-8")
    done = rag("ingest", "c", "--index", "idx", cwd=tmp_path)  # RAG_WRITE_LOCK=wait is the default
    holder.wait()
    assert done.returncode == 0 and "waiting for another process writing index" in done.stderr, done.stderr
    assert "updated 1" in done.stdout


def test_a_reader_never_repairs_or_writes(tmp_path: Path) -> None:
    c = two_files(tmp_path / "c")
    a = open_tiny(tmp_path / "idx", create=True)
    a.ingest([c])
    doc = a.documents()[0]
    a.index.catalog.mark_pending([doc.id])  # as if a writer had been killed mid-write
    a.close()
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "idx").rglob("*") if p.is_file() and "chroma" not in p.parts}
    reader = open_tiny(tmp_path / "idx")
    assert reader.index.readonly and reader.index.catalog.pending() == [doc.id]
    assert reader.ask("When was the harbour rebuilt?").retrieved
    with pytest.raises(StoreError, match="read-only"):
        reader.ingest([c])
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "idx").rglob("*") if p.is_file() and "chroma" not in p.parts}
    # SQLite's own -wal/-shm bookkeeping aside (a WAL reader may create an empty -wal), nothing changed.
    assert not (tmp_path / "idx" / "catalog.sqlite3-wal").exists() or not (tmp_path / "idx" / "catalog.sqlite3-wal").stat().st_size
    bookkeeping = ("catalog.sqlite3-shm", "catalog.sqlite3-wal")
    assert {p: t for p, t in after.items() if p.name not in bookkeeping} == {
        p: t for p, t in before.items() if p.name not in bookkeeping
    }


def test_the_lexical_index_changes_with_the_commit(tmp_path: Path) -> None:
    c = two_files(tmp_path / "c")
    a = open_tiny(tmp_path / "idx", create=True)
    a.ingest([c])
    assert not (tmp_path / "idx" / "bm25").exists()
    catalog = a.index.catalog
    assert [cid for cid, _ in catalog.lexical_search(["mill"], 5)] == catalog.chunk_ids(a.document("b.txt").id)
    (c / "b.txt").write_text("The bakery opened in 1920.\n", encoding="utf-8")
    a.ingest([c])
    assert catalog.lexical_search(["mill"], 5) == [] and catalog.lexical_search(["bakeri"], 5)
    assert catalog.term_stats(["bakeri"]).df.get("bakeri") == 1


# -- Why 4: holes ------------------------------------------------------------------------------
def pdf_with_text(text: str, info: str) -> bytes:
    """A minimal one-page PDF showing ``text`` in Helvetica, with an ``/Info`` dictionary."""
    stream = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        info.encode(),
    ]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def test_a_pdf_with_a_malformed_creation_date_is_read_without_its_date(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "broken-date.pdf").write_bytes(
        pdf_with_text("The harbour was rebuilt in 1887.", "<< /Title (Broken dates) /CreationDate (D:2024-13-45nonsense) >>")
    )
    (corpus / "fine.txt").write_text("The mill burned down in 1901.\n", encoding="utf-8")
    report = open_tiny(tmp_path / "idx", create=True).ingest([corpus])  # used to stop with a traceback
    assert sorted(report.added) == ["broken-date.pdf", "fine.txt"] and report.skipped == []
    doc = read_document(corpus / "broken-date.pdf", "broken-date.pdf")
    assert doc.title == "Broken dates" and doc.date is None and "rebuilt in 1887" in doc.text


def test_an_unexpected_reader_error_is_a_skip_with_its_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.ingest import pipeline

    corpus = two_files(tmp_path / "c")

    def flaky(path: Path, source: str, max_bytes: int | None = None):
        if source == "b.txt":
            raise ValueError("day is out of range for month")
        return read_document(path, source, max_bytes)

    monkeypatch.setattr(pipeline, "read_document", flaky)
    report = open_tiny(tmp_path / "idx", create=True).ingest([corpus])
    assert report.added == ["a.txt"]
    assert report.skipped == [(str(corpus / "b.txt"), "could not be read (ValueError: day is out of range for month)")]


@pytest.mark.parametrize("bad", ["2024-W15-1", "2024-04-31", "20240413", "2024-4-13", "２０２４-04-13"])
def test_a_bad_date_filter_is_a_one_line_query_error(bad: str) -> None:
    with pytest.raises(QueryError, match="must be a date like 2024-04-13"):
        Filters(date_from=bad)


def test_cli_bad_date_is_one_line(tmp_path: Path) -> None:
    two_files(tmp_path / "c")
    assert rag("ingest", "c", "--index", "idx", cwd=tmp_path).returncode == 0
    done = rag("ask", "When was the harbour rebuilt?", "--date-from", "2024-W15-1", "--index", "idx", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "2024-W15-1" in done.stderr


def test_a_byte_order_mark_does_not_hide_the_date_and_offsets_index_the_stored_text(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    text = "date: 2024-04-13\nThe harbour was rebuilt in 1887.\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    doc = read_document(path, "bom.txt")
    assert doc.date == "2024-04-13" and doc.text == text
    a = open_tiny(tmp_path / "idx", corpus_dir=tmp_path, create=True)
    a.ingest([path])
    answer = a.ask("When was the harbour rebuilt?")
    for c in answer.citations:
        assert a.document_text(c.source)[c.start : c.end] == c.quote


def test_a_prefix_filter_applies_before_the_top_candidates(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "wanted").mkdir(parents=True)
    (corpus / "other").mkdir()
    line = "The harbour was rebuilt in 1887 by the council."
    for i in range(120):  # more dense candidates than the retriever takes (3 x 30 sentences)
        (corpus / "other" / f"{i:03d}.txt").write_text(f"{line} Copy {i}.\n", encoding="utf-8")
    (corpus / "wanted" / "far.txt").write_text("A quiet meadow lies east of the town.\n", encoding="utf-8")
    a = open_tiny(tmp_path / "idx", corpus_dir=corpus, create=True)
    a.ingest([corpus])
    hits = a.retriever.retrieve(a.query(line, filters=Filters(sources=("wanted/*",))))
    assert [h.source for h in hits] == ["wanted/far.txt"]
    assert chroma_where(Filters(sources=("wanted/*",)), {"x"}) == {"doc_id": {"$in": ["x"]}}


def test_a_reader_whose_chroma_query_fails_reopens_then_answers_from_the_catalog(seed_copy: Path, embedder) -> None:
    """A reader's embedded Chroma client can be left inconsistent by another process's write
    ("Error finding id"): the question is still answered, from the catalog's own vectors."""
    from rag.index.catalog_vectors import CatalogVectors

    index = Index.open(make_settings(seed_copy), embedder=embedder)
    vector = index.embed_query("What share of microelectronics came from China?")
    want = [(h.id, round(h.similarity, 5)) for h in CatalogVectors(index.catalog).query(vector, 10)]
    reopened = []

    class Broken:
        def query(self, *args, **kwargs):
            raise StoreError("query failed on the embedded Chroma store: InternalError: Error finding id")

        def close(self) -> None:
            pass

    def reopen() -> Broken:
        reopened.append(1)
        return Broken()

    index.store, index._reopen_store = Broken(), reopen
    got = [(h.id, round(h.similarity, 5)) for h in index.query_vectors(vector, 10)]
    assert reopened == [1] and got == want and got
