"""Named failpoints for crash tests: ``failpoint("name")`` kills the process when asked to.

Set ``RAG_FAILPOINT=name`` (tests only) and the process SIGKILLs itself the moment it reaches
that point, exactly like a power cut or an OOM kill there. Unset, a failpoint costs one dict
lookup. The reliability tests (tests/test_reliability_crash.py) kill ingest at every point and
check that a rerun leaves the index equal to a clean ingest.
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str) -> None:
    """Die here (SIGKILL) if ``RAG_FAILPOINT`` names this point."""
    if os.environ.get("RAG_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
