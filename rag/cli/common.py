"""What every ``rag`` command shares: exit codes, the one-line error, settings from the environment.

Exit codes: 0 success, 1 an error, 2 a usage mistake (typer), 3 ingest finished but skipped some
files, 4 an eval run regressed against its baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rag.config import Settings
from rag.errors import RagError

EXIT_ERROR = 1
EXIT_SKIPPED = 3
EXIT_REGRESSION = 4

IndexOpt = Annotated[Path | None, typer.Option("--index", "-i", help="index folder [default: RAG_INDEX_DIR or .rag-index]")]


def settings_from_env(index: Path | None = None, **sections: Any) -> Settings:
    """``Settings()`` from ``RAG_*`` variables with command-line overrides; RagError names a bad one."""
    try:
        settings = Settings()
        overrides: dict[str, Any] = {k: v for k, v in sections.items() if v is not None}
        if index is not None:
            overrides["index_dir"] = index
        return settings.with_overrides(**overrides) if overrides else settings
    except ValueError as e:  # pydantic ValidationError is a ValueError
        raise RagError(f"bad setting: {_first_error(e)}") from e


def _first_error(e: Exception) -> str:
    errors = getattr(e, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(e).splitlines()[0]


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned ``typer.Exit``."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
