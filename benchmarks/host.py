"""The host a timing was measured on: CPU model, the SIMD flags that matter, single-core GEMM GFLOPS.

    .venv/bin/python benchmarks/host.py          # one line
    .venv/bin/python benchmarks/host.py --json

Hosts of the same kind differ 2-4x in speed (an AVX2-only EPYC at 2 GHz next to a Xeon with
AVX-512 VNNI and AMX): every latency in the docs says which host it came from, and a speed claim
is a ratio measured in one run. ``describe()`` is what the benchmarks print beside their numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

# The flags that decide how fast the ONNX models run here: int8 pays only with VNNI.
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def cpu_model() -> tuple[str, set[str]]:
    """The CPU's model name and flags, from /proc/cpuinfo (platform's name elsewhere)."""
    info = Path("/proc/cpuinfo")
    model, flags = platform.processor() or platform.machine(), set()
    if info.is_file():
        for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
            if flags and model:
                break
    return model, flags


def gemm_gflops(n: int = 512, seconds: float = 0.5) -> float:
    """Single-thread fp32 GEMM throughput of numpy's BLAS (best of repeated n x n products)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    best = float("inf")
    with threadpool_limits(limits=1):
        a @ b  # warm up
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def host() -> dict[str, object]:
    """The host as a record: model, cores, the relevant flags present, GEMM GFLOPS on one core."""
    import os

    model, flags = cpu_model()
    return {"cpu": model, "cores": os.cpu_count(), "flags": [f for f in FLAGS if f in flags],
            "gemm_gflops_1core": round(gemm_gflops(), 1)}


def describe(record: dict[str, object] | None = None) -> str:
    """One line: 'Intel(R) Xeon(R) Processor, 2 cores, avx2 avx512f ..., 1-core fp32 GEMM 95 GFLOPS'."""
    h = record or host()
    return f"{h['cpu']}, {h['cores']} cores, {' '.join(h['flags']) or 'no AVX2'}, 1-core fp32 GEMM {h['gemm_gflops_1core']} GFLOPS"  # type: ignore[index]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    record = host()
    print(json.dumps(record) if args.json else describe(record))


if __name__ == "__main__":
    main()
