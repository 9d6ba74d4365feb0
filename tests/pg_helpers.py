"""Helpers for the tests on a real PostgreSQL server (and a Chroma server).

``scripts/test.sh`` starts a throwaway cluster and exports ``RAG_TEST_PG_URL`` (a superuser URL
on the ``postgres`` database) beside ``RAG_TEST_CHROMA_URL``; without them these tests skip with
that reason. Each test gets a database of its own (``fresh_database``), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_SKIP = "needs RAG_TEST_PG_URL, a PostgreSQL server (scripts/test.sh starts one)"
CHROMA_SKIP = "needs RAG_TEST_CHROMA_URL, a `chroma run` server (scripts/test.sh starts one)"


def server_url() -> str:
    url = os.environ.get("RAG_TEST_PG_URL")
    if not url:
        pytest.skip(PG_SKIP)
    return url


def chroma_url() -> str:
    url = os.environ.get("RAG_TEST_CHROMA_URL")
    if not url:
        pytest.skip(CHROMA_SKIP)
    return url


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def admin(url: str, *statements: str) -> None:
    """Run statements as the server's superuser, outside a transaction (CREATE DATABASE...)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new, empty database on the server; its URL. Dropped (with its connections) afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin(url, f"CREATE DATABASE {name}")
    try:
        yield with_database(url, name)
    finally:
        admin(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
