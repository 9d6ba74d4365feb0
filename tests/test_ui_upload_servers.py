"""The Documents tab's upload on servers (``RAG_CATALOG_URL`` + ``RAG_CHROMA_URL``): the instance
writes nothing local, the upload is ingested from a temporary folder that is deleted afterwards,
the other documents and the recorded corpus root stay, and the upload is answered with a citation
that verifies against the catalog's text, on this instance and on another.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.config import Settings
from ui.app import ChatApp
from ui.corpus import upload_folder

from .pg_helpers import chroma_url

QUESTION = "How many passengers does the Orvik ferry carry?"


def verified(assistant: Assistant, question: str) -> list[str]:
    """The sources the answer cites, after checking every quote against the stored text."""
    answer = assistant.ask(question)
    for c in answer.citations:
        assert assistant.document_text(c.source)[c.start : c.end] == c.quote
    return [c.source for c in answer.citations]


@pytest.mark.server
@pytest.mark.timeout(300)
def test_an_upload_on_servers_writes_nothing_local_and_is_answered_with_a_verified_citation(
    tmp_path: Path, pg_url: str, embedder: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus, uploads, work, temporary = (tmp_path / name for name in ("corpus", "uploads", "work", "tmp"))
    for folder in (corpus, uploads, work, temporary):
        folder.mkdir()
    (corpus / "a.txt").write_text("The harbour was rebuilt in 1887 by the council.\n", encoding="utf-8")
    note = uploads / "ferry note.md"  # Gradio's own temporary copy of the uploaded file
    note.write_text("date: 2024-06-01\n\nThe Orvik ferry carries 212 passengers.\n", encoding="utf-8")
    monkeypatch.chdir(work)  # the instance's working folder: corpus/ and the index folder would land here
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    settings = Settings(catalog_url=pg_url, chroma_url=chroma_url())
    job = Assistant.open(settings=settings, create=True, embedder=embedder)  # type: ignore[arg-type]
    job.ingest([corpus], root=corpus)  # an ingest job's documents, named from its own root
    root = job.index.catalog.get_meta("corpus_root")
    job.close()

    instance = Assistant.open(settings=settings, create=True, embedder=embedder)  # type: ignore[arg-type]
    html_out, cleared = ChatApp(instance, settings).add_files([str(note)], progress=None)  # type: ignore[arg-type]
    assert 'ferry note.md</td><td class="rag-status">added' in html_out and cleared is None
    assert list(work.iterdir()) == [] and list(temporary.iterdir()) == []  # nothing local; the folder is gone
    assert sorted(d.source for d in instance.documents()) == ["a.txt", "ferry note.md"]  # nothing pruned
    assert instance.index.catalog.get_meta("corpus_root") == root  # later `rag ingest` jobs name files as before
    assert verified(instance, QUESTION) == ["ferry note.md"]
    again, _ = ChatApp(instance, settings).add_files([str(note)], progress=None)  # type: ignore[arg-type]
    assert 'rag-status">unchanged' in again and list(work.iterdir()) == []
    instance.close()

    other = Assistant.open(settings=settings, embedder=embedder)  # type: ignore[arg-type]
    assert verified(other, QUESTION) == ["ferry note.md"]
    other.close()
    assert list(work.iterdir()) == []


def test_uploads_go_into_the_corpus_folder_unless_the_index_is_on_servers(tmp_path: Path) -> None:
    embedded = Settings(index_dir=tmp_path / "index", corpus_dir=tmp_path / "corpus", chroma_url=None)
    with upload_folder(embedded) as folder:
        assert folder == tmp_path / "corpus"
    chroma_only = embedded.with_overrides(chroma_url="http://127.0.0.1:1")  # the catalog still in the folder
    with upload_folder(chroma_only) as folder:
        assert folder == tmp_path / "corpus"
    servers = chroma_only.with_overrides(catalog_url="postgresql://rag:x@127.0.0.1:1/rag")
    with upload_folder(servers) as folder:
        assert folder.is_dir() and not folder.is_relative_to(tmp_path)
        (folder / "x.txt").write_text("x", encoding="utf-8")
    assert not folder.exists()
