"""The corpus as the UI meets it: uploads from the Documents tab into the index (each file saved
by ``ui.uploads``, the saved ones ingested together, one result per file, named as the user
uploaded it), and a refusal's nearest passages with their text.

Where uploads are saved: into the corpus folder by default. On servers (``RAG_CATALOG_URL`` and
``RAG_CHROMA_URL``, docs/deploy.md) an instance writes nothing local but caches, so the files go
into a temporary folder, are ingested from it (named by their file name, as under ``corpus/``;
the recorded corpus root is kept, nothing is pruned) and deleted with it: the catalog keeps each
document's text, which citations are checked against.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol

from rag.assistant import Assistant
from rag.config import Settings
from rag.errors import RagError
from rag.records import Answer, Citation
from ui.render import FileResult
from ui.uploads import UploadRefused, save_upload


class Progress(Protocol):
    def __call__(self, progress: tuple[int, int], desc: str | None = None) -> object: ...


def add_uploads(
    assistant: Assistant, settings: Settings, files: Sequence[str], progress: Progress | None, lock: threading.Lock
) -> list[FileResult]:
    """Save each uploaded temporary file into the corpus folder (on servers: a temporary folder,
    see the module docstring) and ingest the saved ones.

    A file refused by ``save_upload`` (type, size, name) is reported on its own line; the others
    are still indexed. ``lock`` keeps two uploads from ingesting at once.
    """
    with upload_folder(settings) as folder:
        results: list[FileResult] = []
        saved: dict[str, str] = {}  # safe name -> the name the user uploaded
        max_bytes = int(settings.ui.max_upload_mb * 1e6)
        for path in files:
            original = Path(path).name
            try:
                upload = save_upload(path, original, folder, max_bytes)
            except UploadRefused as e:
                results.append(FileResult(original, "refused", str(e)))
                continue
            saved[upload.name] = original
        if saved:
            results += _ingest(assistant, folder, on_servers(settings), saved, progress, lock)
        return results


def on_servers(settings: Settings) -> bool:
    """Whether the index lives on servers, where an instance keeps no files of its own."""
    return bool(settings.catalog_url and settings.chroma_url)


@contextmanager
def upload_folder(settings: Settings) -> Iterator[Path]:
    """The corpus folder; on servers a new temporary folder, deleted with what is in it afterwards."""
    if not on_servers(settings):
        yield settings.corpus_dir
        return
    with tempfile.TemporaryDirectory(prefix="rag-upload-") as folder:
        yield Path(folder)


def _ingest(
    assistant: Assistant, folder: Path, temporary: bool, saved: dict[str, str], progress: Progress | None,
    lock: threading.Lock,
) -> list[FileResult]:
    def report_progress(done: int, total: int, source: str) -> None:
        if progress is not None:
            progress((done, total), desc=f"Indexing {source}" if source else "Updating the search index")

    paths = [folder / name for name in saved]
    # A temporary folder names the documents but must not stay the index's recorded corpus root.
    keeping = assistant.index.keeping_corpus_root() if temporary else nullcontext()
    try:
        with lock, keeping:
            report = assistant.ingest(paths, progress=report_progress, root=folder)
    except RagError as e:
        return [FileResult(original, "failed", str(e)) for original in saved.values()]
    chunks = {d.source: d.n_chunks for d in assistant.documents()}
    skipped = {Path(p).name: reason for p, reason in report.skipped}
    results = []
    for name, original in saved.items():
        renamed = f"{'indexed' if temporary else 'saved'} as {name}; " if name != original else ""
        if name in skipped:
            results.append(FileResult(original, "skipped", renamed + skipped[name]))
            continue
        status = next(
            (s for s, names in (("added", report.added), ("updated", report.updated), ("unchanged", report.unchanged))
             if name in names),
            "skipped",
        )
        detail = f"{chunks[name]} passages" if name in chunks else "not indexed"
        results.append(FileResult(original, status, renamed + detail))
    return results


def nearest_passages(assistant: Assistant, answer: Answer) -> list[dict[str, Any]]:
    """The passages a refusal searched, with their text, as Citation dicts numbered from 1.

    They are kept in the turn so that the user can open each in its document, and the source
    panel can tell when a document has changed since (as it does for citations).
    """
    texts: dict[str, str | None] = {}
    passages = []
    for n, p in enumerate(answer.retrieved, 1):
        if p.source not in texts:
            try:
                texts[p.source] = assistant.document_text(p.source)
            except RagError:
                texts[p.source] = None
        body = texts[p.source]
        if body is not None and 0 <= p.start < p.end <= len(body):
            start = sentence_start(body, p.start, p.end)
            passage = Citation(id=n, source=p.source, start=start, end=p.end, quote=body[start : p.end])
            passages.append(passage.model_dump(mode="json") | {"score": p.score})
    return passages


_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s+(?=\S)")


def sentence_start(text: str, start: int, end: int) -> int:
    """``start``, or past the first sentence end when the passage opens mid-sentence (inside a
    line, with a lower-case letter: "in kyiv. One of the most…"), so that a listed passage
    reads from a sentence's start. A line that starts lower-case ("date: 2024-…") is kept.

    >>> text = "aid package. in kyiv. One of the most revolutionary measures."
    >>> text[sentence_start(text, 13, len(text)):]
    'One of the most revolutionary measures.'
    """
    if start == 0 or text[start - 1] == "\n" or not text[start : start + 1].islower():
        return start
    m = _SENTENCE_END.search(text, start, end)
    return m.end() if m and m.end() < end else start
