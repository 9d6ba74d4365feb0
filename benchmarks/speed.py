"""Process-level measurements: workers in fresh processes, cold starts, and the serving process.

- ``run_worker``: one ``benchmarks/worker.py`` measurement in a fresh process (its peak RSS is
  its own), with the machine's load average before and after.
- ``cold_ask``: ``rag ask QUESTION --index DIR`` as a fresh process, start to exit (the answer is
  printed just before exit), several runs; the median is the figure.
- ``cold_serve``: ``rag serve --index DIR --port P`` from process start to the first HTTP 200 of
  its page; on the last run, the ``/ask`` API answers questions and the server's resident memory
  is read while it serves (and its peak, ``ru_maxrss``, when it exits).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag import OFFLINE_ENVIRONMENT

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "benchmarks" / "worker.py"
BIN = Path(sys.executable).parent


class BenchmarkError(RuntimeError):
    """A measured process failed; the message carries the tail of its log."""


def load() -> float:
    """The 1-minute load average (the machine is shared: every timing is reported with it)."""
    return round(os.getloadavg()[0], 2)


@dataclass(frozen=True)
class Calm:
    """Before a measurement, wait up to ``max_wait_s`` for the 1-minute load to fall under ``max_load``."""

    max_load: float
    max_wait_s: float = 300.0


WAITED: list[float] = []  # seconds each settle() waited in this run (reported in the results)


def settle(calm: Calm | None) -> float:
    """Wait as ``calm`` says; on a shared machine this keeps one run's timings comparable.

    The seconds waited are returned; the load at the start of each measurement is reported anyway.
    """
    if calm is None:
        return 0.0
    started = time.monotonic()
    while load() >= calm.max_load and time.monotonic() - started < calm.max_wait_s:
        time.sleep(5)
    waited = round(time.monotonic() - started, 1)
    WAITED.append(waited)
    return waited


def child_env() -> dict[str, str]:
    """The environment for measured processes: offline, no telemetry, no RAG_* overrides, byte code cached."""
    # Not PYTHONDONTWRITEBYTECODE either (some shells here set it): every cold start would then
    # compile the whole package again, which no installed copy does (reader_compare.py drops it too).
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(OFFLINE_ENVIRONMENT, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_worker(args: list[str], out: Path, log: Path, timeout: float = 7200, calm: Calm | None = None) -> dict[str, Any]:
    """Run ``worker.py ARGS --out OUT`` in a fresh process; its JSON result plus load averages.

    ``calm``: first wait for the load average to fall under this (see ``settle``).
    """
    waited = settle(calm)
    before = load()
    env = {**child_env(), "BENCH_SPAWN_TIME": repr(time.time())}
    with log.open("w") as log_file:
        proc = subprocess.run([sys.executable, str(WORKER), *args, "--out", str(out)], env=env, cwd=ROOT,
                              stdout=log_file, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise BenchmarkError(f"worker {' '.join(args[:3])} failed (exit {proc.returncode}):\n{_tail(log)}")
    result = json.loads(out.read_text())
    result["load_before"], result["load_after"], result["waited_for_calm_s"] = before, load(), waited
    return result


def cold_ask(index_dir: Path, question: str, runs: int, log: Path, calm: Calm | None = None) -> dict[str, Any]:
    """Seconds from process start to exit of ``rag ask`` (median of ``runs``)."""
    times, loads = [], []
    settle(calm)
    for _ in range(runs):
        loads.append(load())
        started = time.perf_counter()
        with log.open("w") as log_file:
            proc = subprocess.run([str(BIN / "rag"), "ask", question, "--index", str(index_dir)], env=child_env(),
                                  cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, timeout=300, check=False)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise BenchmarkError(f"rag ask failed (exit {proc.returncode}):\n{_tail(log)}")
    return {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times],
            "load": loads, "answer": _tail(log, 3)}


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchmarkError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchmarkError(f"{url} did not answer 200 within {timeout:.0f} s")


def _tree_rss_mb(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / 2**20
    except psutil.Error:
        return float("nan")


def _stop(proc: subprocess.Popen) -> float | None:
    """Interrupt the server like Ctrl+C; its peak RSS in MiB from ``wait4``."""
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pid, _status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = 0
            return round(usage.ru_maxrss / 1024, 1)
        time.sleep(0.1)
    proc.kill()
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = -9
    return round(usage.ru_maxrss / 1024, 1)


def cold_serve(index_dir: Path, runs: int, questions: list[str], log: Path, calm: Calm | None = None) -> dict[str, Any]:
    """Seconds from ``rag serve`` start to the first HTTP 200; serving RSS after ``questions``."""
    times, loads = [], []
    serving: dict[str, Any] = {}
    settle(calm)
    for run in range(runs):
        port = free_port()
        loads.append(load())
        started = time.perf_counter()
        log_file = log.open("w")
        proc = subprocess.Popen(
            [str(BIN / "rag"), "serve", "--index", str(index_dir), "--port", str(port), "--host", "127.0.0.1"],
            env=child_env(), cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
        )
        try:
            _wait_http(f"http://127.0.0.1:{port}/", proc, 180)
            times.append(time.perf_counter() - started)
            if run == runs - 1 and questions:
                serving = _serve_questions(f"http://127.0.0.1:{port}/", proc.pid, questions)
        except BenchmarkError as e:
            raise BenchmarkError(f"{e}\n{_tail(log)}") from None
        finally:
            peak = _stop(proc)
            log_file.close()
        if run == runs - 1:
            serving["peak_rss_mb"] = peak
    return {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times],
            "load": loads, **serving}


def _serve_questions(url: str, pid: int, questions: list[str]) -> dict[str, Any]:
    """Ask through the UI's ``/ask`` API; the server's RSS once ready and after the questions."""
    from gradio_client import Client

    rss_ready = _tree_rss_mb(pid)
    client = Client(url, verbose=False)
    latencies = []
    for q in questions:
        started = time.perf_counter()
        client.predict(q, api_name="/ask")
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {"rss_ready_mb": round(rss_ready, 1), "rss_after_questions_mb": round(_tree_rss_mb(pid), 1),
            "api_questions": len(questions), "api_p50_ms": round(statistics.median(latencies), 1)}
