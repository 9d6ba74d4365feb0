"""The eval runner: ask every gold question through ``Assistant.ask``, save, score, re-score.

A run folder holds:

- ``run.json``: what was run (gold file, corpus or index folder, settings, sample), written
  first so a re-score can find the gold file and the document texts again;
- ``answers.jsonl``: one answer record a line, with the gold ``id`` first;
- ``metrics.json``: the metrics, counts and per-item outcomes (``score_run`` over the two above).

``rescore_run(folder)`` reads ``answers.jsonl`` back and recomputes ``metrics.json`` from it,
the gold file and the document texts alone; it gives the same metrics as the run.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.assistant import Assistant
from rag.config import Settings
from rag.domain import content_hash
from rag.errors import RagError, read_json_object
from rag.evals.gold import GoldItem, GoldSet, load_gold, locate_evidence
from rag.evals.metrics import (
    DEFAULT_K,
    ItemScore,
    TextOf,
    aggregate,
    counts,
    record_citations,
    record_retrieved,
    score_item,
)
from rag.evals.provenance import aggregate_provenance, provenance_counts, score_provenance
from rag.index.catalog import Catalog
from rag.index.vectors import ChromaStore
from rag.ingest.pipeline import ProgressFn
from rag.ingest.readers import read_document

logger = logging.getLogger(__name__)

ANSWERS_FILE = "answers.jsonl"
METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
# The settings sections that change answers; the others (UI, LLM credentials) stay out of run.json.
RECORDED_SECTIONS = ("embedding", "chunking", "retrieval", "answer")



@dataclass
class ScoredRun:
    """A run's records scored against its gold set; ``to_json`` is the content of metrics.json."""

    gold: GoldSet
    records: dict[str, dict[str, Any]]
    scores: list[ItemScore]
    metrics: dict[str, float | None]
    counts: dict[str, int]
    run: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    # Attribution, date and disagreement metrics (rag.evals.provenance): {} unless the gold names them.
    provenance: dict[str, Any] = field(default_factory=dict)

    def outcomes(self) -> dict[str, dict[str, Any]]:
        return {s.id: s.outcome() for s in self.scores}

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "counts": self.counts,
            "items": self.outcomes(),
            "problems": self.problems,
            "gold_issues": [str(i) for i in self.gold.issues],
            "run": self.run,
            **({"provenance": self.provenance} if self.provenance else {}),
        }


# -- document texts ----------------------------------------------------------------------------
def assistant_texts(assistant: Assistant) -> TextOf:
    """Document texts as the index stores them (None for an unknown source)."""

    def get(source: str) -> str | None:
        try:
            return assistant.document_text(source)
        except RagError:
            return None

    return functools.cache(get)


def corpus_texts(corpus: Path) -> TextOf:
    """Document texts read from a corpus folder the way ingest reads them."""
    root = corpus.resolve()

    def get(source: str) -> str | None:
        path = (root / source).resolve()
        if root not in path.parents or not path.is_file():
            return None
        try:
            return read_document(path, source).text
        except RagError:
            return None

    return functools.cache(get)


def index_texts(index_dir: Path) -> TextOf:
    """Document texts from an index folder's catalog (no model is loaded)."""
    catalog = Catalog(index_dir, create=False, readonly=True)
    return functools.cache(catalog.text_by_source)


# -- selecting and asking ----------------------------------------------------------------------
def select_items(items: Sequence[GoldItem], limit: int | None = None, sample: int | None = None, seed: int = 0) -> list[GoldItem]:
    """The first ``limit`` items, or a reproducible random ``sample`` of them (file order kept)."""
    if limit is not None and limit < 1:
        raise RagError(f"--limit ({limit}) must be at least 1")
    if sample is not None and sample < 1:
        raise RagError(f"--sample ({sample}) must be at least 1")
    chosen = list(items)
    if sample is not None and sample < len(chosen):
        keep = set(random.Random(seed).sample(range(len(chosen)), sample))
        chosen = [item for i, item in enumerate(chosen) if i in keep]
    return chosen[:limit] if limit is not None else chosen


@contextmanager
def open_assistant(settings: Settings, index: Path | None = None, corpus: Path | None = None) -> Iterator[Assistant]:
    """An assistant on ``index``, or on a temporary index of ``corpus`` deleted afterwards, or,
    given neither, on the servers' index (``settings.catalog_url``)."""
    on_servers = index is None and corpus is None and settings.catalog_url is not None
    if (index is None) == (corpus is None) and not on_servers:
        raise RagError("give exactly one of --index DIR or --corpus DIR")
    if index is not None or on_servers:
        assistant = Assistant.open(index, settings=settings)
        try:
            yield assistant
        finally:
            assistant.close()
        return
    assert corpus is not None
    if not corpus.is_dir():
        raise RagError(f"corpus folder {corpus} not found")
    tmp = Path(tempfile.mkdtemp(prefix="rag-eval-index-"))
    built: Assistant | None = None
    try:
        # A temporary index of its own: never the servers' shared catalog (RAG_CATALOG_URL),
        # whose collection the clean-up below would drop.
        built = Assistant.open(tmp, settings=settings.with_overrides(catalog_url=None), create=True)
        report = built.ingest([corpus])
        for path, reason in report.skipped:
            logger.warning("ingest skipped %s: %s", path, reason)
        if not report.total_documents:
            raise RagError(f"corpus folder {corpus} holds no document that could be indexed")
        logger.info("indexed %d documents (%d chunks) in %.1f s", report.total_documents, report.total_chunks, report.seconds)
        yield built
    finally:
        if built is not None:
            try:
                if isinstance(built.index.store, ChromaStore):  # the catalog's own vectors go with tmp
                    built.index.store.drop()
            except RagError as e:  # a leftover temporary collection is not worth failing the run
                logger.warning("could not delete the temporary collection: %s", e)
            built.close()
        shutil.rmtree(tmp, ignore_errors=True)


def ask_item(assistant: Assistant, item: GoldItem) -> dict[str, Any]:
    """The answer record for one gold item, with its ``id`` first; a failure becomes ``error``."""
    try:
        answer = assistant.ask(item.question, history=item.history_dicts())
    except Exception as e:  # noqa: BLE001 - one failing question must not sink the whole run
        logger.error("question %s failed: %s: %s", item.id, type(e).__name__, e)
        return {"id": item.id, "question": item.question, "answer": "", "short_answer": None, "refused": False,
                "citations": [], "timings_ms": {}, "error": f"{type(e).__name__}: {e}"}
    return {"id": item.id, **answer.model_dump(mode="json")}


def ask_all(
    assistant: Assistant, items: Sequence[GoldItem], answers_path: Path, progress: ProgressFn | None = None
) -> list[dict[str, Any]]:
    """Ask every item in order, appending each record to ``answers_path`` as soon as it exists."""
    records: list[dict[str, Any]] = []
    with answers_path.open("w", encoding="utf-8") as f:
        for n, item in enumerate(items, start=1):
            record = ask_item(assistant, item)
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            records.append(record)
            if progress is not None:
                progress(n, len(items), item.id)
    failed = [r for r in records if r.get("error")]
    if records and len(failed) == len(records):
        raise RagError(f"every question failed; the first with: {failed[0]['error']}")
    return records


# -- reading a run back ------------------------------------------------------------------------
def read_answers(path: Path) -> list[dict[str, Any]]:
    """The records of an ``answers.jsonl``; a bad line is a RagError naming its number."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RagError(f"answers file {path} not found") from None
    except OSError as e:
        raise RagError(f"answers file {path}: {e.strerror or e}") from e
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise RagError(f"{path} line {number}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise RagError(f"{path} line {number}: expected an answer record with a string 'id'")
        records.append(record)
    if not records:
        raise RagError(f"answers file {path} is empty")
    return records


# -- scoring -----------------------------------------------------------------------------------
def sources_used(records: Sequence[dict[str, Any]], gold: Sequence[GoldItem]) -> list[str]:
    """Every document a record cites or retrieves, or a gold item names as evidence."""
    used = {ev.doc for item in gold for ev in item.evidence}
    for record in records:
        used.update(span.source for span, _ in record_citations(record))
        used.update(span.source for span in record_retrieved(record))
    return sorted(used)


def fingerprints(sources: Sequence[str], text_of: TextOf) -> dict[str, str | None]:
    """SHA-256 of each document's text (None when it is unknown)."""
    out: dict[str, str | None] = {}
    for source in sources:
        text = text_of(source)
        out[source] = content_hash(text) if text is not None else None
    return out


def score_run(
    gold: GoldSet, records: Sequence[dict[str, Any]], text_of: TextOf, run: dict[str, Any], k: int = DEFAULT_K
) -> ScoredRun:
    """Score records against the gold items they answer; items without a record are left out."""
    by_id = {r["id"]: r for r in records}
    problems = [f"record {rid!r} has no gold item" for rid in by_id if rid not in gold.by_id()]
    asked = [item for item in gold.items if item.id in by_id]
    if not asked:
        raise RagError(f"no answer record matches an item of gold file {gold.path}")
    if len(asked) < len(gold.items):
        problems.append(f"{len(gold.items) - len(asked)} gold items were not asked in this run")
    spans, evidence_problems = locate_evidence(asked, text_of)
    problems.extend(evidence_problems)
    problems.extend(f"{r['id']}: {r['error']}" for r in records if r.get("error"))
    recorded = run.get("documents") or {}
    for source, digest in fingerprints(sorted(recorded), text_of).items():
        if digest != recorded[source]:
            problems.append(f"the text of {source!r} differs from the run's (changed or missing since)")
    scores = [score_item(by_id[item.id], item, spans[item.id], text_of) for item in asked]
    provenance = [score_provenance(by_id[item.id], item, text_of) for item in asked]
    measured = aggregate_provenance(provenance)
    extra = {"metrics": measured, "counts": provenance_counts(provenance), "items": {p.id: asdict(p) for p in provenance}}
    return ScoredRun(gold, {i.id: by_id[i.id] for i in asked}, scores, aggregate(scores, k), counts(scores), run, problems,
                     extra if measured else {})


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` when possible (keeps committed runs portable)."""
    try:
        return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return str(path.resolve())


def run_eval(
    gold: GoldSet,
    settings: Settings,
    out_dir: Path,
    index: Path | None = None,
    corpus: Path | None = None,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    k: int = DEFAULT_K,
    progress: ProgressFn | None = None,
    command: str | None = None,
    code_version: str | None = None,
) -> ScoredRun:
    """Ask the selected gold items through ``Assistant.ask``, write the run folder, score it.

    ``command`` (the command line that started the run) and ``code_version`` (e.g. the git
    commit) are recorded in run.json and the report.
    """
    items = select_items(gold.items, limit, sample, seed)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RagError(f"cannot create output folder {out_dir}: {e.strerror or e}") from e
    run: dict[str, Any] = {
        "gold": _relative(gold.path, out_dir),
        "corpus": _relative(corpus, out_dir) if corpus is not None else None,
        "index": _relative(index, out_dir) if index is not None else None,
        "paths_relative_to": "this run folder",
        "command": command,
        "code_version": code_version,
        "k": k,
        "limit": limit,
        "sample": sample,
        "seed": seed,
        "items_asked": len(items),
        "settings": settings.model_dump(mode="json", include=set(RECORDED_SECTIONS)),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out_dir / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    started = time.perf_counter()
    with open_assistant(settings, index=index, corpus=corpus) as assistant:
        text_of = assistant_texts(assistant)
        records = ask_all(assistant, items, out_dir / ANSWERS_FILE, progress)
        run["seconds"] = round(time.perf_counter() - started, 1)
        run["answerer"] = next((r.get("answerer") for r in records if r.get("answerer")), None)
        run["documents"] = fingerprints(sources_used(records, items), text_of)
        (out_dir / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
        return score_run(gold, records, text_of, run, k)


def rescore_run(
    run_dir: Path, gold_path: Path | None = None, corpus: Path | None = None, index: Path | None = None
) -> ScoredRun:
    """Recompute a run's metrics from its ``answers.jsonl``, the gold file and the texts alone.

    The gold file and the corpus (or index) default to the ones ``run.json`` recorded, resolved
    relative to the run folder.
    """
    run = read_json_object(run_dir / RUN_FILE, "run file")
    records = read_answers(run_dir / ANSWERS_FILE)

    def recorded(key: str) -> Path | None:
        value = run.get(key)
        return (run_dir / value) if isinstance(value, str) else None

    gold_path = gold_path or recorded("gold")
    if gold_path is None:
        raise RagError(f"{run_dir / RUN_FILE} records no gold file; pass --gold FILE")
    gold = load_gold(gold_path)
    if corpus is None and index is None:
        corpus, index = recorded("corpus"), recorded("index")
    if corpus is not None:
        if not corpus.is_dir():
            raise RagError(f"corpus folder {corpus} not found; pass --corpus DIR")
        text_of = corpus_texts(corpus)
    elif index is not None:
        text_of = index_texts(index)
    else:
        raise RagError(f"{run_dir / RUN_FILE} records no corpus or index; pass --corpus DIR or --index DIR")
    return score_run(gold, records, text_of, run, int(run.get("k") or DEFAULT_K))


def load_baseline(path: Path) -> dict[str, Any]:
    """A baseline ``metrics.json``: its ``metrics`` and per-item ``items`` (RagError if unusable)."""
    data = read_json_object(path, "baseline")
    if not isinstance(data.get("metrics"), dict):
        raise RagError(f"baseline {path} has no 'metrics' object; is it a metrics.json of `rag eval`?")
    data.setdefault("items", {})
    return data
