"""The package's error hierarchy: every user-facing failure is a RagError with a one-line message."""

from __future__ import annotations


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
