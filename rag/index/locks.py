"""The index folder's writer lock: ``write.lock`` (``filelock``), one writing process at a time.

(A catalog in PostgreSQL has its own: ``rag.index.catalog_pg.PgWriterLock``, an advisory lock.)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from rag.errors import StoreError, disk_hint

logger = logging.getLogger(__name__)

LOCK_FILE = "write.lock"


class WriterLock:
    """``write.lock`` in the index folder: one writing process at a time, re-entrant per thread.

    ``wait``: a second writer logs that it waits and blocks until the first is done; ``fail``:
    it raises a one-line StoreError at once.
    """

    def __init__(self, index_dir: Path, mode: str = "wait") -> None:
        if mode not in ("wait", "fail"):
            raise ValueError(f"write_lock ({mode!r}) must be 'wait' or 'fail'")
        self.path = index_dir / LOCK_FILE
        self.mode = mode
        self._lock = FileLock(str(self.path), thread_local=False)
        self._threads = threading.RLock()

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._threads:
            try:  # filelock retries an open that fails (full disk, read-only folder) forever
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644))
            except OSError as e:
                raise StoreError(
                    f"cannot lock index folder {self.path.parent}: {e.strerror or e}{disk_hint(self.path.parent)}"
                ) from e
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                if self.mode == "fail":
                    raise StoreError(
                        f"another process is writing index {self.path.parent} ({LOCK_FILE} is held); "
                        "try again when it is done, or set RAG_WRITE_LOCK=wait to wait for it"
                    ) from None
                logger.warning("waiting for another process writing index %s to finish", self.path.parent)
                self._lock.acquire()
            except OSError as e:
                raise StoreError(f"cannot lock index folder {self.path.parent}: {e.strerror or e}") from e
            try:
                yield
            finally:
                self._lock.release()
