"""Incremental ingest: files -> documents -> chunks -> vectors in Chroma + rows in the catalog.

Unchanged files (same content hash and pipeline) are skipped; a changed file has its chunks
replaced; ``prune`` removes documents whose files were not found. Bad files are skipped with a
reason and never disturb what is already stored. The order of writes makes a crash at any point
repairable (see ``rag.index.catalog``): mark pending -> write Chroma -> commit catalog (clears pending)
-> rebuild BM25.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.domain import Chunk, Document, VectorEntry, sentence_id
from rag.errors import IngestError, StoreError
from rag.index.catalog import sentence_chunks
from rag.index.faults import failpoint
from rag.index.folder import Index, pipeline_fingerprint
from rag.ingest.chunking import chunk_document
from rag.ingest.readers import SUPPORTED_SUFFIXES, read_document
from rag.text.sentences import split_sentences

logger = logging.getLogger(__name__)

# Documents are embedded in groups so that many small files share large encode batches.
_GROUP_SENTENCES = 512

ProgressFn = Callable[[int, int, str], None]


@dataclass
class IngestReport:
    """What an ingest run did; ``skipped`` lists (file, reason) for every file left out."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks_written: int = 0
    total_chunks: int = 0
    total_documents: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass(frozen=True)
class SourceFile:
    path: Path
    source: str  # corpus-relative name, "/"-separated


def discover(paths: list[Path], corpus_root: Path | None = None) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """Files to ingest under ``paths`` and the ones skipped (with reasons) while walking.

    A directory is its own corpus root; a single file is named relative to ``corpus_root`` when
    it lies inside it, else by its file name. Symlinked directories are not followed (no loops);
    symlinked files are read once by their real path.
    """
    found: dict[str, SourceFile] = {}
    skipped: list[tuple[str, str]] = []
    seen_real: set[str] = set()

    def add(path: Path, source: str) -> None:
        try:
            source.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes in the name: it cannot be stored or cited
            shown = os.fsencode(path).decode("utf-8", "backslashreplace")
            skipped.append((shown, "file name is not valid UTF-8"))
            return
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            skipped.append((str(path), f"unsupported file type {path.suffix or '(none)'}"))
            return
        try:
            real = os.path.realpath(path)
        except OSError as e:
            skipped.append((str(path), f"cannot resolve path ({e})"))
            return
        if not os.path.exists(real):
            skipped.append((str(path), "broken symbolic link"))
            return
        if not os.path.isfile(real):  # a FIFO would block the read forever, /dev/zero never end
            skipped.append((str(path), "not a regular file"))
            return
        if real in seen_real:
            return
        seen_real.add(real)
        found.setdefault(source, SourceFile(path, source))

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in _walk(path, skipped):
                add(file, file.relative_to(path).as_posix())
        elif path.is_file():
            add(path, _relative_name(path, corpus_root))
        elif path.is_symlink():
            skipped.append((str(path), "broken symbolic link"))
        else:
            raise IngestError(f"{path}: no such file or directory")
    return sorted(found.values(), key=lambda f: f.source), skipped


def _relative_name(path: Path, corpus_root: Path | None) -> str:
    if corpus_root is not None:
        try:
            return path.resolve().relative_to(corpus_root.resolve()).as_posix()
        except ValueError:
            pass
    return path.name


def _walk(root: Path, skipped: list[tuple[str, str]]) -> Iterator[Path]:
    def on_error(e: OSError) -> None:
        skipped.append((str(e.filename), f"cannot list folder ({e.strerror})"))

    for folder, dirs, files in os.walk(root, onerror=on_error, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


@dataclass
class _Prepared:
    doc: Document
    chunks: list[Chunk]
    sentences: list[tuple[int, int]]
    updated: bool


def ingest(
    index: Index,
    paths: list[Path],
    prune: bool = False,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Bring the index in step with the files under ``paths``; see the module docstring."""
    if not index.writable:
        raise StoreError(f"index folder {index.dir} is not writable")
    started = time.perf_counter()
    report = IngestReport()
    files, report.skipped = discover(paths, index.settings.corpus_dir)
    failpoint("ingest.discovered")
    with index.write_lock:
        _reset_if_pipeline_changed(index)
        known = {d.source: d for d in index.catalog.documents()}
        group: list[_Prepared] = []
        max_bytes = int(index.settings.max_file_mb * 1e6)
        for n, file in enumerate(files, 1):
            if progress:
                progress(n - 1, len(files), file.source)
            try:
                doc = read_document(file.path, file.source, max_bytes)
            except IngestError as e:
                report.skipped.append((str(file.path), str(e)))
                continue
            old = known.get(doc.source)
            if old is not None and old.sha256 == doc.sha256:
                report.unchanged.append(doc.source)
                continue
            group.append(_prepare(index, doc, updated=old is not None))
            if sum(len(p.sentences) for p in group) >= _GROUP_SENTENCES:
                _write_group(index, group, report)
                group = []
        if group:
            _write_group(index, group, report)
        if prune:
            seen = {f.source for f in files}
            for source, info in known.items():
                if source not in seen:
                    _remove(index, info.id)
                    report.removed.append(source)
        if progress:
            progress(len(files), len(files), "")
        failpoint("ingest.before_lexical")
        index.lexical()  # rebuild BM25 now, not on the first query
    report.total_documents, report.total_chunks = index.catalog.counts()
    report.seconds = time.perf_counter() - started
    return report


def _reset_if_pipeline_changed(index: Index) -> None:
    """If chunking or the model changed, stored chunks are stale: forget their hashes."""
    fingerprint = pipeline_fingerprint(index.settings, index.embedder)
    stored = index.catalog.get_meta("pipeline")
    if stored is not None and stored != fingerprint and index.catalog.counts()[0]:
        logger.warning("chunking or embedding settings changed; every document will be re-ingested")
        index.catalog.invalidate_hashes()
    index.catalog.set_meta("pipeline", fingerprint)
    index.catalog.set_meta("embedding_model", index.embedder.name)
    index.catalog.set_meta("embedding_variant", getattr(index.embedder, "variant", "fp32"))


def _prepare(index: Index, doc: Document, updated: bool) -> _Prepared:
    c = index.settings.chunking
    sentences = split_sentences(doc.text, c.max_sentence_chars)
    chunks = chunk_document(doc.id, doc.text, c.chunk_chars, c.overlap_sentences, c.max_sentence_chars)
    return _Prepared(doc, chunks, sentences, updated)


def _write_group(index: Index, group: list[_Prepared], report: IngestReport) -> None:
    texts = [p.doc.text[s:e] for p in group for s, e in p.sentences]
    vectors = np.asarray(index.embedder.embed(texts), dtype=np.float32).reshape(len(texts), -1)
    failpoint("ingest.embedded")
    index.catalog.mark_pending([p.doc.id for p in group])
    failpoint("ingest.marked_pending")
    offset = 0
    committed = 0
    try:
        for p in group:
            sent_vectors = vectors[offset : offset + len(p.sentences)]
            offset += len(p.sentences)
            position = {span: i for i, span in enumerate(p.sentences)}
            members = sentence_chunks(p.sentences, [(position[c.sentences[0]], len(c.sentences)) for c in p.chunks])
            entries = [
                VectorEntry(
                    sentence_id(p.doc.id, i), sent_vectors[i], p.doc.id, p.doc.source, s, e, p.doc.date, members[i]
                )
                for i, (s, e) in enumerate(p.sentences)
            ]
            # Vectors first (ids are deterministic, so an upsert after a crash is idempotent), then
            # the catalog commit that makes the new version visible and clears the pending mark.
            stale = set(index.store.ids_for_document(p.doc.id)) - {e.id for e in entries}
            if entries:
                index.store.upsert(entries)
            failpoint("ingest.chroma_upserted")
            if stale:
                index.store.delete(sorted(stale))
            failpoint("ingest.chroma_written")
            index.catalog.put_document(p.doc, p.chunks, p.sentences, sent_vectors)
            committed += 1
            failpoint("ingest.catalog_committed")
            report.chunks_written += len(p.chunks)
            (report.updated if p.updated else report.added).append(p.doc.source)
    except BaseException:
        _undo(index, [p.doc.id for p in group[committed:]])
        raise


def _remove(index: Index, doc_id: str) -> None:
    index.catalog.mark_pending([doc_id])
    try:
        index.store.delete(index.store.ids_for_document(doc_id))
        failpoint("ingest.prune_chroma_deleted")
        index.catalog.delete_document(doc_id)
    except BaseException:
        _undo(index, [doc_id])
        raise


def _undo(index: Index, doc_ids: list[str]) -> None:
    """After a failed write (full disk, lost server, Ctrl+C): put Chroma back in step now.

    Best effort: if the store still fails, the documents stay pending and the next open
    repairs them (see ``Index.repair``), as after a crash.
    """
    try:
        for doc_id in doc_ids:
            index.resync_document(doc_id)
        index.catalog.clear_pending(doc_ids)
    except Exception as e:  # noqa: BLE001 - the original error is the one to report
        logger.warning("could not undo an interrupted write yet (%s); the next open repairs it", e)
