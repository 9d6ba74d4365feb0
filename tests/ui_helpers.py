"""Shared pieces of the UI tests: a running app on 127.0.0.1 over a private index and corpus.

The app runs in the test process (``launch(..., block=False)``) so it shares the session's
embedding model; its index is a copy of the seed index and its corpus folder a copy of
``corpus/``, so uploads never touch the repository.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.assistant import Answerer, Assistant
from rag.config import Settings
from rag.index.embedding import Embedder
from tests.conftest import CORPUS, make_settings

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "ui"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
QUESTION = "What share of microelectronics came from China?"
FOLLOW_UP = "and what did Russia build with them?"


@dataclass
class RunningApp:
    """An app being served, with the assistant and folders behind it."""

    url: str
    assistant: Assistant
    settings: Settings
    corpus_dir: Path
    blocks: object


def running_app(
    tmp: Path,
    seed_index_dir: Path,
    embedder: Embedder,
    answerer: Callable[[Assistant], Answerer] | None = None,
    **ui: object,
) -> Iterator[RunningApp]:
    """Serve the UI on a free 127.0.0.1 port until the generator is closed (a fixture body).

    ``answerer``, given the assistant, makes the answerer to serve instead of its own.
    """
    from ui.app import build_app, launch

    index_dir, corpus_dir = tmp / "index", tmp / "corpus"
    shutil.copytree(seed_index_dir, index_dir)
    shutil.copytree(CORPUS, corpus_dir)
    settings = make_settings(index_dir).with_overrides(corpus_dir=corpus_dir, ui={"host": "127.0.0.1", "port": 0, **ui})
    assistant = Assistant.open(settings=settings, create=True, embedder=embedder)  # it takes uploads
    if answerer is not None:
        assistant = Assistant(assistant.index, answerer=answerer(assistant))
    blocks = build_app(assistant, settings)
    url = launch(blocks, settings, block=False)
    try:
        yield RunningApp(url, assistant, settings, corpus_dir, blocks)
    finally:
        blocks.close()
        assistant.close()
