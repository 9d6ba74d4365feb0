"""The NumPy query encoder must give the same vectors as sentence-transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.index.bert_numpy import NumpyBert
from rag.index.embedding import SentenceTransformerEmbedder, default_model_path

TEXTS = [
    "What share of microelectronics came from China?",
    "x",
    "Ünïcödé, 漢字 and 🙂 in one question?",
    "word " * 400,  # longer than the 256-token limit: truncated the same way
    "",
    "U.S. officials: 90% of imports, $1.2bn, 2023-04-13.",
]


def test_supported_model_matches_sentence_transformers(embedder: SentenceTransformerEmbedder) -> None:
    path = Path(default_model_path())
    assert NumpyBert.supports(path)
    fast = NumpyBert(path)
    reference = embedder.embed(TEXTS)
    for text, ref in zip(TEXTS, reference):
        got = fast.embed(text)
        assert got.dtype == np.float32 and got.shape == ref.shape
        assert float(got @ ref) > 0.99999, text[:30]
        assert float(np.abs(got - ref).max()) < 1e-4


def test_embed_query_uses_the_same_space_as_bulk_embedding(embedder: SentenceTransformerEmbedder) -> None:
    q = "Who is the commander of U.S. European Command?"
    assert float(embedder.embed_query(q) @ embedder.embed([q])[0]) > 0.99999


def test_unsupported_models_are_declined(tmp_path: Path) -> None:
    assert not NumpyBert.supports(tmp_path)
    (tmp_path / "modules.json").write_text('[{"type": "sentence_transformers.models.Transformer"}]')
    (tmp_path / "config.json").write_text('{"model_type": "bert", "hidden_act": "gelu"}')
    assert not NumpyBert.supports(tmp_path)


@pytest.mark.parametrize("value", [-3.0, -0.5, 0.0, 0.7, 2.5])
def test_erf_approximation(value: float) -> None:
    import math

    from rag.index.bert_numpy import _erf

    assert abs(float(_erf(np.array([value], dtype=np.float32))[0]) - math.erf(value)) < 2e-7
