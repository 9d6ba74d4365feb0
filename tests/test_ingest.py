"""Incremental ingest on a real embedded Chroma: skip unchanged, replace changed, prune, bad files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.domain import sentence_id
from rag.errors import StoreError
from rag.index.folder import Index
from rag.index.lexical import stored_tokens

from .conftest import CORPUS, ROOT, SEED_SOURCE, make_settings

GOOD = {
    "harbour.txt": "The harbour was rebuilt in 1887 by the city council. It cost 40,000 pounds.\n",
    "notes/mill.md": "# The mill\n\nThe old mill burned down in 1901. It was never rebuilt.\n",
}
BAD = {
    "empty.txt": b"",
    "binary.txt": b"\x00\x01\x02\x03binary",
    "latin1.txt": "caf\u00e9".encode("latin-1"),
    "table.csv": b"a,b\n1,2\n",
    "broken.pdf": b"%PDF-1.4 nonsense",
    "blank.html": b"<html><body></body></html>",
}


def write_corpus(root: Path, good: dict[str, str] = GOOD, bad: dict[str, bytes] | None = None) -> Path:
    for name, text in good.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    for name, raw in (bad or {}).items():
        (root / name).write_bytes(raw)
    return root


def in_step(index: Index) -> None:
    """Catalog, Chroma and BM25 agree: same sentence ids, same chunk ids, no orphans."""
    catalog_sentences = set(index.catalog.sentence_ids())
    chroma_ids = set(index.store.all_ids())
    assert chroma_ids == catalog_sentences
    assert index.orphan_ids() == []
    lexical = index.catalog.lexical_rows()
    assert sorted(lexical) == sorted(index.catalog.chunk_ids())
    for cid, (chunk, _) in index.catalog.chunks(list(lexical)).items():
        assert lexical[cid] == " ".join(stored_tokens(chunk.text))
    for doc in index.documents():
        text = index.catalog.text(doc.id)
        assert text is not None
        for _cid, (chunk, source) in index.catalog.chunks(index.catalog.chunk_ids(doc.id)).items():
            assert text[chunk.start : chunk.end] == chunk.text and source == doc.source


def test_second_ingest_reports_no_changes_and_keeps_chunk_ids(tmp_path: Path, embedder) -> None:  # noqa: ANN001
    a = Assistant.open(settings=make_settings(tmp_path / "idx"), create=True, embedder=embedder)
    first = a.ingest([CORPUS])
    ids = a.index.catalog.chunk_ids()
    second = a.ingest([CORPUS])
    assert first.added == [SEED_SOURCE] and first.total_chunks == len(ids) > 5
    assert second.added == second.updated == second.removed == [] and second.unchanged == [SEED_SOURCE]
    assert second.chunks_written == 0 and second.total_chunks == first.total_chunks
    assert a.index.catalog.chunk_ids() == ids
    in_step(a.index)


def test_changed_file_replaces_its_chunks_and_prune_removes_deleted(tmp_path: Path, embedder) -> None:  # noqa: ANN001
    corpus = write_corpus(tmp_path / "corpus")
    a = Assistant.open(settings=make_settings(tmp_path / "idx"), create=True, embedder=embedder)
    assert sorted(a.ingest([corpus]).added) == ["harbour.txt", "notes/mill.md"]
    (corpus / "harbour.txt").write_text("The harbour closed in 1990. " * 30, encoding="utf-8")
    report = a.ingest([corpus])
    assert report.updated == ["harbour.txt"] and report.unchanged == ["notes/mill.md"]
    assert "closed in 1990" in a.document_text("harbour.txt")
    in_step(a.index)
    answer = a.ask("When did the harbour close?")
    assert not answer.refused and "1990" in answer.answer
    (corpus / "notes/mill.md").unlink()
    kept = a.ingest([corpus])  # without --prune nothing is removed
    assert kept.removed == [] and len(a.documents()) == 2
    pruned = a.ingest([corpus], prune=True)
    assert pruned.removed == ["notes/mill.md"] and [d.source for d in a.documents()] == ["harbour.txt"]
    in_step(a.index)


def test_bad_files_are_skipped_with_reasons_and_good_ones_ingested(tmp_path: Path, embedder) -> None:  # noqa: ANN001
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS / SEED_SOURCE, corpus / SEED_SOURCE)
    a = Assistant.open(settings=make_settings(tmp_path / "idx"), create=True, embedder=embedder)
    a.ingest([corpus / SEED_SOURCE], root=corpus)
    write_corpus(corpus, bad=BAD)
    before = a.index.catalog.counts()
    report = a.ingest([corpus])
    skipped = {Path(p).name: reason for p, reason in report.skipped}
    assert set(skipped) == set(BAD)
    assert skipped["empty.txt"] == "empty file"
    assert skipped["binary.txt"].startswith("binary file")
    assert skipped["latin1.txt"].startswith("not valid UTF-8")
    assert skipped["table.csv"].startswith("unsupported file type .csv")
    assert sorted(report.added) == ["harbour.txt", "notes/mill.md"] and report.unchanged == [SEED_SOURCE]
    # What was stored before is still there, next to the new documents.
    docs, chunks = a.index.catalog.counts()
    assert docs == before[0] + 2 and chunks > before[1]
    assert SEED_SOURCE in [d.source for d in a.documents()]
    in_step(a.index)


def test_cli_exit_status_and_one_line_errors(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", bad={"empty.txt": b""})
    rag = [sys.executable, "-m", "rag.cli"]
    env_index = str(tmp_path / "idx")
    done = subprocess.run([*rag, "ingest", str(corpus), "--index", env_index], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 3, done.stderr
    assert f"skipped {corpus / 'empty.txt'}: empty file" in done.stderr
    assert "added 2" in done.stdout
    missing = subprocess.run([*rag, "ask", "anything", "--index", str(tmp_path / "nope")], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "no index at" in missing.stderr
    assert "Traceback" not in missing.stderr
    no_path = subprocess.run([*rag, "ingest", str(tmp_path / "ghost"), "--index", env_index], capture_output=True, text=True, cwd=ROOT)
    assert no_path.returncode == 1 and "no such file or directory" in no_path.stderr and "Traceback" not in no_path.stderr


def test_unwritable_index_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create index folder"):
        Index.open(make_settings(blocker / "idx"), create=True)


def test_interrupted_chroma_write_is_repaired_by_the_next_writer_not_by_readers(
    tmp_path: Path, seed_index_dir: Path, embedder  # noqa: ANN001
) -> None:
    shutil.copytree(seed_index_dir, tmp_path / "idx")
    settings = make_settings(tmp_path / "idx")
    index = Index.open(settings, create=True, embedder=embedder)
    doc = index.documents()[0]
    # Simulate a crash after Chroma lost some vectors and gained a stray one, mid-ingest.
    index.catalog.mark_pending([doc.id])
    victims = sorted(index.store.ids_for_document(doc.id))[:3]
    index.store.delete(victims)
    stray = index.catalog.vector_entries(doc.id)[0]
    index.store.upsert([type(stray)(**{**stray.__dict__, "id": sentence_id(doc.id, 99999)})])
    index.close()
    reader = Index.open(settings, embedder=embedder)  # a reader never repairs (nor writes)
    assert reader.readonly and reader.catalog.pending() == [doc.id]
    with pytest.raises(StoreError, match="read-only"):
        reader.catalog.clear_pending([doc.id])
    reader.close()
    writer = Index.open(settings, create=True, embedder=embedder)
    with writer.writing():
        pass
    assert writer.catalog.pending() == []
    in_step(writer)


def test_a_schema_1_index_is_upgraded_by_its_next_writer(tmp_path: Path, seed_index_dir: Path, embedder) -> None:  # noqa: ANN001
    import sqlite3

    shutil.copytree(seed_index_dir, tmp_path / "idx")
    conn = sqlite3.connect(tmp_path / "idx" / "catalog.sqlite3")
    for table in ("chunk_occurrences", "chunk_vocab", "chunk_terms"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("ALTER TABLE documents DROP COLUMN version")
    conn.execute("ALTER TABLE chunks DROP COLUMN n_tokens")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    settings = make_settings(tmp_path / "idx")
    with pytest.raises(StoreError, match="run `rag ingest"):
        Index.open(settings, embedder=embedder)  # a reader does not upgrade
    writer = Index.open(settings, create=True, embedder=embedder)
    with writer.writing():
        pass
    in_step(writer)
    assert writer.catalog.lexical_search(["microelectron"], 3)
    assert Assistant.open(settings=settings, embedder=embedder).ask("What share of microelectronics came from China?").short_answer == "90%"
