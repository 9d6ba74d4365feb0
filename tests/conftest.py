"""Shared fixtures: one embedding model per test session, and a seed index built once."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Importing rag sets the offline environment (rag/__init__.py) before any model or gradio loads.
from rag.config import Settings
from rag.index.embedding import OnnxEmbedder

from .pg_helpers import fresh_database, server_url

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Drop the developer's RAG_* settings before any test runs.

    Settings() reads RAG_* variables: a RAG_ANSWER__..., RAG_CHROMA_URL or RAG_UI_AUTH in the
    shell must not change what the tests see, here or in the subprocesses they start. RAG_TEST_*
    (set by scripts/test.sh) and RAG_CRASH_REAL_CLI (an opt-in of the crash tests) are the tests'
    own. A hook, not module code: the crash tests' subprocesses import this module and get their
    RAG_FAILPOINT on purpose.
    """
    for name in [n for n in os.environ if n.startswith("RAG_") and not n.startswith(("RAG_TEST_", "RAG_CRASH_"))]:
        del os.environ[name]
CORPUS = ROOT / "corpus"
SEED_SOURCE = "000_530c0abb2a07a6c4.txt"
SQUAD_SLICE = ROOT / "evals" / "data" / "squad2-dev" / "squad2-dev-public.json"  # the public SQuAD 2.0 slice


@pytest.fixture(scope="session")
def embedder() -> OnnxEmbedder:
    """The packaged MiniLM, loaded once for the whole session."""
    return OnnxEmbedder()


def make_settings(index_dir: Path, **overrides: object) -> Settings:
    """Settings for a test index, isolated from the developer's RAG_* environment."""
    return Settings(**{"index_dir": index_dir, "corpus_dir": CORPUS, "chroma_url": None, **overrides})


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory: pytest.TempPathFactory, embedder: OnnxEmbedder) -> Path:
    """An embedded index of corpus/, built once; tests that need to write copy it."""
    from rag.assistant import Assistant

    index_dir = tmp_path_factory.mktemp("seed-index")
    assistant = Assistant.open(settings=make_settings(index_dir), create=True, embedder=embedder)
    report = assistant.ingest([CORPUS])
    assert not report.skipped, report.skipped
    assistant.close()
    return index_dir


@pytest.fixture(scope="session")
def seed_assistant(seed_index_dir: Path, embedder: OnnxEmbedder):  # noqa: ANN201
    """A read-mostly assistant on the seed index (do not ingest through it)."""
    from rag.assistant import Assistant

    return Assistant.open(settings=make_settings(seed_index_dir), embedder=embedder)


@pytest.fixture()
def fresh_index_dir(tmp_path: Path) -> Path:
    d = tmp_path / "index"
    return d


@pytest.fixture()
def seed_copy(tmp_path: Path, seed_index_dir: Path) -> Path:
    """A private, writable copy of the seed index."""
    dest = tmp_path / "seed-copy"
    shutil.copytree(seed_index_dir, dest)
    return dest


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server (tests/pg_helpers.py), dropped after
    the test; the test skips without ``RAG_TEST_PG_URL``."""
    with fresh_database(server_url()) as url:
        yield url
