"""The ``rag`` command line: ingest, ask, show, stats, serve, eval, squad.

Every ``RagError`` becomes one line on stderr and a non-zero exit, never a traceback:
exit 0 success, 1 an error, 2 a usage mistake, 3 ingest finished but skipped some files,
4 an eval run regressed against its baseline (codes in ``rag.cli.common``).

Each command imports what it needs in its body: ``rag --help`` should not pay for Chroma and
the index, nor ``rag ask`` for Gradio (2.8 s cold). No import here dodges a cycle: the CLI is
the top layer (``lint-imports``).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rag.cli.common import EXIT_SKIPPED, IndexOpt, fail, settings_from_env
from rag.cli.eval import register as register_eval_commands
from rag.config import Settings
from rag.errors import RagError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Ask questions of your documents and get answers that cite exact, verified passages.",
)



def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("chromadb", "httpx", "sentence_transformers", "bm25s", "urllib3", "trafilatura", "htmldate"):
        logging.getLogger(noisy).setLevel(logging.ERROR if not verbose else logging.INFO)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress details")] = False) -> None:
    _setup_logging(verbose)


@app.command()
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="files or folders [default: corpus/]")] = None,
    index: IndexOpt = None,
    prune: Annotated[bool, typer.Option(help="remove documents under PATHS whose files are gone")] = False,
    rebuild: Annotated[bool, typer.Option(help="delete the index first and ingest from scratch")] = False,
    root: Annotated[Path | None, typer.Option(help="corpus root that names documents (fixed at an index's first ingest) [default: RAG_CORPUS_DIR or corpus/]")] = None,
) -> None:
    """Index files (.txt .md .html .pdf), named by their path relative to the corpus root;
    unchanged files are skipped by content hash."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from rag.assistant import Assistant

    console = Console(stderr=True)
    try:
        settings = settings_from_env(index)
        targets = paths or [settings.corpus_dir]
        if rebuild:
            _delete_index(settings)
        assistant = Assistant.open(settings=settings, create=True)
        with Progress(
            TextColumn("[bold]ingest"), BarColumn(), TextColumn("{task.completed}/{task.total} {task.description}"),
            TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal,
        ) as bar:
            task = bar.add_task("", total=None)

            def progress(done: int, total: int, source: str) -> None:
                bar.update(task, completed=done, total=total, description=source[-50:])

            report = assistant.ingest(targets, prune=prune, progress=progress, root=root)
    except RagError as e:
        raise fail(str(e)) from None
    for path, reason in report.skipped:
        typer.echo(f"skipped {path}: {reason}", err=True)
    typer.echo(
        f"added {len(report.added)}, updated {len(report.updated)}, unchanged {len(report.unchanged)}, "
        f"removed {len(report.removed)}, skipped {len(report.skipped)}; "
        f"{report.chunks_written} chunks written, {report.total_chunks} chunks in {report.total_documents} "
        f"documents; {report.seconds:.1f} s"
    )
    if report.skipped:
        raise typer.Exit(EXIT_SKIPPED)


def _delete_index(settings: Settings) -> None:
    import shutil

    from rag.index.folder import Index
    from rag.index.vectors import ChromaStore

    if settings.catalog_url:  # the servers' index: its tables and its collection
        index = Index.open(settings, create=True)
        with index.lock.hold():
            index.store.drop()  # type: ignore[attr-defined]
            index.catalog.drop()  # type: ignore[attr-defined]
        index.catalog.close()
        return
    if (settings.index_dir / "catalog.sqlite3").exists():
        index = Index.open(settings, create=True)
        assert index.lock is not None
        with index.lock.hold():  # not while another process writes it
            if isinstance(index.store, ChromaStore):  # the catalog's own vectors go with the folder
                index.store.drop()
            shutil.rmtree(settings.index_dir)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="the question, in plain words")],
    index: IndexOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the answer record as JSON")] = False,
    history: Annotated[Path | None, typer.Option(help="JSON list of earlier turns, oldest first")] = None,
    top_k: Annotated[int | None, typer.Option(help="passages to consider")] = None,
    source: Annotated[list[str] | None, typer.Option(help="only these sources (a trailing * matches a prefix)")] = None,
    date_from: Annotated[str | None, typer.Option(help="only documents dated on or after YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, typer.Option(help="only documents dated on or before YYYY-MM-DD")] = None,
) -> None:
    """Answer a question with numbered citations (quote, source, offsets)."""
    from rag.assistant import Assistant
    from rag.retrieval.hybrid import Filters

    try:
        turns = _read_history(history) if history else []
        filters = Filters(tuple(source or ()), date_from, date_to)
        assistant = Assistant.open(settings=settings_from_env(index))
        answer = assistant.ask(question, history=turns, filters=filters, top_k=top_k)
    except RagError as e:
        raise fail(str(e)) from None
    if as_json:
        typer.echo(answer.model_dump_json(indent=2))
        return
    _print_answer(answer)


def _read_history(path: Path) -> list[dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RagError(f"history file {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise RagError(f"history file {path} is not valid JSON ({e})") from e
    if not isinstance(data, list) or not all(isinstance(t, dict) and isinstance(t.get("question"), str) for t in data):
        raise RagError(f'history file {path} must be a JSON list of {{"question": ..., "answer": ...}} objects')
    return data


def _print_answer(answer: Any) -> None:
    """The answer, then each citation: source and offsets, then the quote. Styled with click's
    ``style`` (typer's own), which ``echo`` strips when the output is not a terminal: importing
    rich for these few styles cost 30 ms of a cold ``rag ask`` (of about 0.9 s)."""
    def dim(text: str) -> str:
        return typer.style(text, dim=True)

    if answer.standalone_question != answer.question:
        typer.echo(dim(f"searched: {answer.standalone_question}"))
    typer.echo(_with_provenance(answer))
    for c in answer.citations:
        typer.echo(f"\n{typer.style(f'[{c.id}]', bold=True)} {c.source} {dim(f'chars {c.start}-{c.end}')}")
        typer.echo(f"    “{c.quote}”")
    typer.echo(f"\n{dim(format(answer.timings_ms.get('total', 0), '.0f') + ' ms')}")


def _with_provenance(answer: Any) -> str:
    """The answer text, its lead "90% [1]." told with who says it and when:
    "90% [1], according to a second official (2024-04-13)." (the line alone when there is no lead)."""
    import re

    from rag.records import provenance_line

    line = provenance_line(answer)
    if line is None:
        return answer.answer
    lead = re.match(rf"{re.escape(answer.short_answer)} \[\d+\]\.? ?", answer.answer)
    return f"{line}. {answer.answer[lead.end():]}" if lead else f"{answer.answer}\n{line}"


@app.command()
def show(
    source: Annotated[str, typer.Argument(help="a document's source name, as in citations")],
    index: IndexOpt = None,
    start: Annotated[int | None, typer.Option(help="print only from this offset")] = None,
    end: Annotated[int | None, typer.Option(help="print only up to this offset")] = None,
) -> None:
    """Print the exact stored text of a document (the text citation offsets index into)."""
    from rag.index.folder import Index

    try:
        text = Index.open(settings_from_env(index)).document_text(source)
    except RagError as e:
        raise fail(str(e)) from None
    if (start is not None and not 0 <= start <= len(text)) or (end is not None and not 0 <= (end or 0) <= len(text)):
        raise fail(f"offsets must lie within 0..{len(text)} for {source}")
    sys.stdout.write(text[start:end])
    if not text.endswith("\n") or end is not None:
        sys.stdout.write("\n")


@app.command()
def stats(index: IndexOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the documents in an index (title, date, chunks, characters)."""
    from rich.console import Console
    from rich.table import Table

    from rag.index.folder import Index

    try:
        idx = Index.open(settings_from_env(index))
        docs = idx.documents()
        n_docs, n_chunks = idx.catalog.counts()
    except RagError as e:
        raise fail(str(e)) from None
    if as_json:
        typer.echo(json.dumps([d.__dict__ for d in docs], indent=2))
        return
    table = Table(title=f"{idx.label}: {n_docs} documents, {n_chunks} chunks")
    for col in ("source", "title", "date", "kind", "chunks", "chars"):
        table.add_column(col, overflow="fold")
    for d in docs:
        table.add_row(d.source, d.title, d.date or "", d.kind, str(d.n_chunks), str(d.n_chars))
    Console().print(table)


@app.command()
def serve(
    index: IndexOpt = None,
    host: Annotated[str | None, typer.Option(help="address to bind [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port [default: 7860]")] = None,
    ingest_first: Annotated[bool, typer.Option("--ingest/--no-ingest", help="ingest the corpus folder first")] = False,
) -> None:
    """Open the chat UI in the browser (Gradio), bound to 127.0.0.1 unless told otherwise."""
    try:
        ui: dict[str, Any] = {}
        if host is not None:
            ui["host"] = host
        if port is not None:
            ui["port"] = port
        settings = settings_from_env(index, ui=ui or None)
        from ui.app import serve as run_ui

        run_ui(settings, ingest_first=ingest_first)
    except RagError as e:
        raise fail(str(e)) from None


@app.command()
def migrate(
    index: IndexOpt = None,
) -> None:
    """Copy an index folder to the servers named by RAG_CATALOG_URL and RAG_CHROMA_URL (stored
    rows as they are: nothing is re-read or re-embedded); the servers' index must be empty."""
    from rag.index.folder import Index
    from rag.index.migrate import copy_index

    try:
        settings = settings_from_env(index)
        if not settings.catalog_url:
            raise RagError("rag migrate copies an index folder to the servers: set RAG_CATALOG_URL and RAG_CHROMA_URL")
        # Read from the folder's catalog alone (its vectors are there too): no Chroma is opened.
        folder = settings.with_overrides(catalog_url=None, chroma_url=None, retrieval={"exact_search_max_vectors": 1 << 62})
        source = Index.open(folder, readonly=True)
        target = Index.open(settings.with_overrides(embedding={"variant": source.catalog.get_meta("embedding_variant")}),
                            create=True, embedder=source.embedder)
        copied = copy_index(source, target)
        n_docs, n_chunks = target.catalog.counts()
    except RagError as e:
        raise fail(str(e)) from None
    typer.echo(f"copied {copied} documents from {source.label} to {target.label}: {n_docs} documents, {n_chunks} chunks")


# ``rag eval``, ``rag score`` and ``rag squad`` live in rag.cli.eval.
register_eval_commands(app)


if __name__ == "__main__":  # pragma: no cover
    app()
