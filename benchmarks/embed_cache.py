"""An ``Embedder`` that keeps bulk vectors on disk by text, so a second store is filled without re-encoding.

The growth benchmark ingests the same scaled corpus into the embedded store and into a
``chroma run`` server. Encoding is identical for both (the same texts, model and batches) and is
most of the ingest time, so the server run reads the vectors the embedded run wrote (``write``
mode: everything is encoded, exactly as without the cache) instead of
encoding for another ~15 minutes at 100k chunks; ``encode_s`` says how long encoding took, and
the report adds the embedded run's encoding time to the server's measured ingest time.

Vectors are appended to ``vectors.f32`` (float32 rows) and their text digests to ``keys.txt`` as
they are made, and read back row by row, so the cache adds no resident memory to the process
being measured (a memory map would count the pages it touched). Queries are not cached.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np


def _key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class CachedEmbedder:
    """Wraps an embedder; see the module doc. Not thread-safe (ingest encodes one group at a time)."""

    def __init__(self, inner: Any, folder: Path, mode: str = "write") -> None:
        if mode not in ("write", "read"):
            raise ValueError(f"cache mode ({mode!r}) must be 'write' or 'read'")
        self.inner = inner
        self.name = inner.name
        self.variant = getattr(inner, "variant", "fp32")
        self.folder = folder
        # "write" encodes every text it is given (as the uncached embedder would, repeated texts
        # included) and keeps the vectors; "read" encodes only texts it has no vector for.
        self.mode = mode
        folder.mkdir(parents=True, exist_ok=True)
        self._keys_path, self._vectors_path = folder / "keys.txt", folder / "vectors.f32"
        self._rows: dict[str, int] = {}
        if self._keys_path.is_file():
            for i, key in enumerate(self._keys_path.read_text().split()):
                self._rows.setdefault(key, i)
        self._n = sum(1 for _ in self._keys_path.open()) if self._keys_path.is_file() else 0
        self.encode_s = 0.0
        self.encoded = 0
        self.reused = 0

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def embed(self, texts: list[str]) -> np.ndarray:
        keys = [_key(t) for t in texts]
        missing = list(range(len(texts))) if self.mode == "write" else [i for i, k in enumerate(keys) if k not in self._rows]
        out: list[np.ndarray | None] = [None] * len(texts)
        if missing:
            started = time.perf_counter()
            fresh = np.asarray(self.inner.embed([texts[i] for i in missing]), dtype=np.float32)
            self.encode_s += time.perf_counter() - started
            self.encoded += len(missing)
            with self._vectors_path.open("ab") as vf, self._keys_path.open("a") as kf:
                for i, vector in zip(missing, fresh):
                    if keys[i] not in self._rows:
                        vf.write(vector.tobytes())
                        kf.write(keys[i] + "\n")
                        self._rows[keys[i]] = self._n
                        self._n += 1
                    out[i] = vector
        need = [i for i, v in enumerate(out) if v is None]
        if need:
            self.reused += len(need)
            dim = self.dimension
            with self._vectors_path.open("rb") as vf:
                for i in need:
                    vf.seek(self._rows[keys[i]] * dim * 4)
                    out[i] = np.frombuffer(vf.read(dim * 4), dtype=np.float32)
        return np.stack(out) if out else np.zeros((0, self.dimension), dtype=np.float32)  # type: ignore[arg-type]
