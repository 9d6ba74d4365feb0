"""ONNX Runtime on the CPU for the shipped MiniLM models (the embedder and the reader).

One core per pass, passes side by side: MiniLM's passes are too small to split well across
cores (two passes at once on one core each run 1.1-1.3x faster than one pass on two), so each
session runs single-threaded and the caller maps its passes over a pool of ``threads`` workers.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def single_core_session(model: Path) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``model`` on the CPU, one thread per pass.

    Raises whatever ONNX Runtime raises for a missing or broken file; callers name the file.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])


def pass_pool(threads: int, name: str) -> ThreadPoolExecutor | None:
    """A pool of ``threads`` workers (0: one per core) to run passes side by side, or None
    where that is one worker (run the passes in the caller's thread)."""
    n = threads or os.cpu_count() or 1
    return ThreadPoolExecutor(n, thread_name_prefix=name) if n > 1 else None
