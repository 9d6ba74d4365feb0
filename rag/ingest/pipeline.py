"""Incremental ingest: files -> documents -> chunks -> vectors in Chroma + rows in the catalog.

Names: a document is named by its path relative to the index's corpus root, whatever path is
given. The root is set at the index's first ingest and recorded in the catalog (relative to the
index folder, and absolute): ``root`` if given, else ``Settings.corpus_dir`` (default
``corpus/``) when the paths lie inside it, else the folder given (a file's folder; the common
folder of several paths). Later ingests use the recorded root unless ``root`` is given again
(``rag ingest --root DIR``, e.g. for a moved corpus; it is then recorded). A path outside the
root is skipped with that reason (never a second name for the same file); a path that contains
the root ingests the root. Index folders (the index's own, or any holding a catalog) are never
walked into.

Unchanged files (same content hash and pipeline) are skipped; a changed file has its chunks
replaced; ``prune`` removes documents under the paths given whose files are gone. Every
per-file failure is a skip with its reason and never disturbs what is already stored. The whole
run holds the index's writer lock (``rag.index.folder``). The order of writes makes a crash at
any point repairable (see ``rag.index.catalog``): mark pending -> write Chroma -> commit catalog
(chunks and their BM25 terms together; clears pending).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.domain import Chunk, Document, VectorEntry, sentence_id
from rag.errors import IngestError
from rag.index.catalog import CATALOG_FILE, sentence_chunks
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
    source: str  # path relative to the corpus root, "/"-separated


def corpus_root(paths: list[Path], default: Path, recorded: Path | None, given: Path | None = None) -> Path:
    """The corpus root documents are named from (see the module docstring)."""
    if given is not None:
        return Path(os.path.abspath(given))
    if recorded is not None:
        return recorded
    default = Path(os.path.abspath(default))
    if all(_inside(Path(p), default) is not None for p in paths):
        return default
    folders = [os.path.abspath(p if Path(p).is_dir() else Path(p).parent) for p in paths]
    return Path(os.path.commonpath(folders))


def recorded_root(index: Index) -> Path | None:
    """The corpus root recorded in the index: relative to the index folder (so an index copied
    or moved with its corpus keeps it), else the absolute path; IngestError when both are gone."""
    raw = index.catalog.get_meta("corpus_root")
    if raw is None:
        return None
    saved = json.loads(raw)
    for candidate in (index.dir / saved["relative"], Path(saved["absolute"])):
        if candidate.is_dir():
            return Path(os.path.abspath(candidate))
    raise IngestError(
        f"this index's corpus root {saved['absolute']} is gone; pass --root DIR (RAG_CORPUS_DIR names a new index's)"
    )


def record_root(index: Index, root: Path) -> None:
    value = json.dumps({"relative": os.path.relpath(root, os.path.abspath(index.dir)), "absolute": str(root)})
    if index.catalog.get_meta("corpus_root") != value:
        index.catalog.set_meta("corpus_root", value)


def _real(path: Path) -> str:
    return os.path.realpath(path)


def _inside(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` ("." for the root itself), or None if it lies outside."""
    for p, r in ((os.path.abspath(path), os.path.abspath(root)), (_real(path), _real(root))):
        rel = os.path.relpath(p, r)
        if rel != ".." and not rel.startswith(".." + os.sep):
            return Path(rel).as_posix()
    return None


def discover(
    paths: list[Path], root: Path, index_dir: Path | None = None
) -> tuple[list[SourceFile], list[tuple[str, str]], list[str]]:
    """Files to ingest under ``paths``, the ones skipped (with reasons) while walking, and the
    scopes that ``prune`` may remove from (source names, or prefixes ending in "/"; "" for all).

    Symlinked directories are not followed (no loops); symlinked files are read once by their
    real path.
    """
    found: dict[str, SourceFile] = {}
    skipped: list[tuple[str, str]] = []
    scopes: list[str] = []
    seen_real: set[str] = set()
    skip_dirs = {_real(index_dir)} if index_dir is not None else set()

    def add(path: Path, source: str | None) -> None:
        """Take ``path`` (named ``source`` relative to the root, None if outside) or say why not."""
        if source is None:
            skipped.append((str(path), f"outside the corpus root {root}"))
            return
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
            rel = _inside(path, root)
            if rel is None and _inside(root, path) is not None:
                path, rel = root, "."  # a folder above the root: only the root is the corpus
            if rel is None:
                skipped.append((str(path), f"outside the corpus root {root}"))
                continue
            scopes.append("" if rel == "." else rel + "/")
            for file in _walk(path, skipped, skip_dirs):
                add(file, _inside(file, root))
        elif path.is_file():
            rel = _inside(path, root)
            add(path, rel)
            if rel is not None:
                scopes.append(rel)
        elif path.is_symlink():
            skipped.append((str(path), "broken symbolic link"))
        else:
            raise IngestError(f"{path}: no such file or directory")
    return sorted(found.values(), key=lambda f: f.source), skipped, scopes


def _walk(root: Path, skipped: list[tuple[str, str]], skip_dirs: set[str]) -> Iterator[Path]:
    def on_error(e: OSError) -> None:
        skipped.append((str(e.filename), f"cannot list folder ({e.strerror})"))

    for folder, dirs, files in os.walk(root, onerror=on_error, followlinks=False):
        if _real(Path(folder)) in skip_dirs or CATALOG_FILE in files:  # an index folder, never a corpus
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def _in_scope(source: str, scopes: list[str]) -> bool:
    return any(source == s or (s.endswith("/") or s == "") and source.startswith(s) for s in scopes)


@dataclass
class _Prepared:
    doc: Document
    chunks: list[Chunk]
    sentences: list[tuple[int, int]]
    updated: bool
    version: str


def ingest(
    index: Index,
    paths: list[Path],
    prune: bool = False,
    progress: ProgressFn | None = None,
    root: Path | None = None,
) -> IngestReport:
    """Bring the index in step with the files under ``paths``; see the module docstring."""
    started = time.perf_counter()
    report = IngestReport()
    with index.writing():
        recorded = recorded_root(index) if root is None else None
        corpus = corpus_root(paths, index.settings.corpus_dir, recorded, root)
        record_root(index, corpus)
        files, report.skipped, scopes = discover(paths, corpus, index.dir)
        failpoint("ingest.discovered")
        fingerprint = _reset_if_pipeline_changed(index)
        known = {d.source: d for d in index.catalog.documents()}
        group: list[_Prepared] = []
        max_bytes = int(index.settings.max_file_mb * 1e6)
        for n, file in enumerate(files, 1):
            if progress:
                progress(n - 1, len(files), file.source)
            prepared = _read(index, file, max_bytes, known, fingerprint, report)
            if prepared is None:
                continue
            group.append(prepared)
            if sum(len(p.sentences) for p in group) >= _GROUP_SENTENCES:
                _write_group(index, group, report)
                group = []
        if group:
            _write_group(index, group, report)
        if prune:
            seen = {f.source for f in files}
            for source, info in known.items():
                if source not in seen and _in_scope(source, scopes):
                    _remove(index, info.id)
                    report.removed.append(source)
        if progress:
            progress(len(files), len(files), "")
    report.total_documents, report.total_chunks = index.catalog.counts()
    report.seconds = time.perf_counter() - started
    return report


def _read(
    index: Index, file: SourceFile, max_bytes: int, known: dict, fingerprint: str, report: IngestReport
) -> _Prepared | None:
    """The file read, chunked and versioned; None when unchanged or skipped (with its reason)."""
    try:
        doc = read_document(file.path, file.source, max_bytes)
        old = known.get(doc.source)
        if old is not None and old.sha256 == doc.sha256:
            report.unchanged.append(doc.source)
            return None
        return _prepare(index, doc, updated=old is not None, fingerprint=fingerprint)
    except IngestError as e:
        report.skipped.append((str(file.path), str(e)))
    except Exception as e:  # noqa: BLE001 - a reader's bug on one odd file must not stop the run
        logger.debug("reading %s failed", file.path, exc_info=True)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        report.skipped.append((str(file.path), f"could not be read ({type(e).__name__}: {first})"))
    return None


def _reset_if_pipeline_changed(index: Index) -> str:
    """If chunking or the model changed, stored chunks are stale: forget their hashes."""
    fingerprint = pipeline_fingerprint(index.settings, index.embedder)
    stored = index.catalog.get_meta("pipeline")
    if stored is not None and stored != fingerprint and index.catalog.counts()[0]:
        logger.warning("chunking or embedding settings changed; every document will be re-ingested")
        index.catalog.invalidate_hashes()
    if stored != fingerprint:
        index.catalog.set_meta("pipeline", fingerprint)
    if index.catalog.get_meta("embedding_model") != index.embedder.name:
        index.catalog.set_meta("embedding_model", index.embedder.name)
    variant = getattr(index.embedder, "variant", "fp32")
    if index.catalog.get_meta("embedding_variant") != variant:
        index.catalog.set_meta("embedding_variant", variant)
    return fingerprint


def document_version(doc: Document, fingerprint: str) -> str:
    """A document version's name: its text and the pipeline that chunked and embedded it."""
    return hashlib.sha256(f"{doc.sha256}\n{fingerprint}".encode()).hexdigest()[:16]


def _prepare(index: Index, doc: Document, updated: bool, fingerprint: str) -> _Prepared:
    c = index.settings.chunking
    sentences = split_sentences(doc.text, c.max_sentence_chars)
    chunks = chunk_document(doc.id, doc.text, c.chunk_chars, c.overlap_sentences, c.max_sentence_chars)
    return _Prepared(doc, chunks, sentences, updated, document_version(doc, fingerprint))


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
            members = sentence_chunks(len(p.sentences), [(position[c.sentences[0]], len(c.sentences)) for c in p.chunks])
            entries = [
                VectorEntry(
                    sentence_id(p.doc.id, i), sent_vectors[i], p.doc.id, p.doc.source, s, e, p.doc.date, members[i],
                    p.version,
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
            index.catalog.put_document(p.doc, p.chunks, p.sentences, sent_vectors, p.version)
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
