"""The package's error hierarchy: every user-facing failure is a RagError with a one-line message."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


class RagError(Exception):
    """Base class; the CLI prints ``str(error)`` on one line and exits non-zero."""


class ConfigError(RagError):
    """A setting or argument has a bad value."""


class IngestError(RagError):
    """A document could not be read, extracted or stored."""


class StoreError(RagError):
    """The index (catalog, vectors or lexical index) cannot be opened, read or written."""


class QueryError(RagError):
    """A question cannot be asked as given (empty, too long, bad filter)."""


def disk_hint(folder: Path) -> str:
    """Why a write may have failed, when the folder shows it: read-only, or a nearly full disk.

    SQLite and Chroma word these faults obliquely ("disk I/O error" while SQLite opens on a
    full disk, "Failed to apply logs to the metadata segment" from Chroma, "attempt to write a
    readonly database"), so the one-line errors name the likely cause.
    """
    try:
        if not os.access(folder, os.W_OK):
            return " (the index folder is read-only)"
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return f" (only {free // 1024} KB free on its disk)" if free < 1_000_000 else ""


def read_json_object(path: Path, what: str, error: type[RagError] = RagError) -> dict[str, Any]:
    """A JSON object from ``path``; a missing or malformed file is an ``error`` naming it as ``what``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} {path} not found") from None
    except (OSError, ValueError) as e:
        raise error(f"{what} {path} cannot be read ({e})") from e
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a JSON object")
    return data
