"""A NumPy forward pass for BERT-family sentence-transformers models, for quick queries.

Why: importing sentence-transformers (with torch, transformers and scikit-learn) takes about
5 s on these machines, longer than the whole ``rag ask`` budget, while embedding one question
is a few small matrix products. This module runs the same computation as the
sentence-transformers pipeline ``Transformer -> Pooling(mean) -> Normalize`` for a
``BertModel`` from its ``model.safetensors`` and ``tokenizer.json`` with NumPy, the Rust
``tokenizers`` library and ``safetensors`` (imports in ~0.1 s). tests/test_bert_numpy.py checks
that its vectors match sentence-transformers' (cosine > 0.99999) on varied text.

Used only for models it can serve exactly (see ``NumpyBert.supports``); everything else, and all
bulk encoding at ingest, goes through sentence-transformers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

_ST_MODULES = [
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
]


def _erf(x: np.ndarray) -> np.ndarray:
    """erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), float64 inside."""
    z = np.abs(x).astype(np.float64)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    r = 1.0 - t * np.exp(poly)
    return np.where(x >= 0, r, -r).astype(np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class NumpyBert:
    """Embeds one text at a time with a BERT sentence-transformers model, no torch."""

    def __init__(self, model_dir: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.config = json.loads((model_dir / "config.json").read_text())
        st_config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        self.max_len = int(st_config.get("max_seq_length", 512))
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_len)
        w = load_file(str(model_dir / "model.safetensors"))
        self.w = {k.removeprefix("bert."): v for k, v in w.items()}
        self.heads = int(self.config["num_attention_heads"])
        self.layers = int(self.config["num_hidden_layers"])
        self.eps = float(self.config.get("layer_norm_eps", 1e-12))

    @staticmethod
    def supports(model_dir: Path) -> bool:
        """True for a local BertModel with mean pooling and normalisation, in safetensors."""
        try:
            modules = json.loads((model_dir / "modules.json").read_text())
            config = json.loads((model_dir / "config.json").read_text())
            pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
        except (OSError, ValueError):
            return False
        return (
            [m.get("type") for m in modules] == _ST_MODULES
            and config.get("model_type") == "bert"
            and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and pooling.get("pooling_mode_mean_tokens") is True
            and not any(pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                                                 "pooling_mode_mean_sqrt_len_tokens"))
            and (model_dir / "model.safetensors").is_file()
            and (model_dir / "tokenizer.json").is_file()
        )

    def embed(self, text: str) -> np.ndarray:
        """The normalised sentence embedding of ``text`` (float32)."""
        ids = np.array(self.tokenizer.encode(text).ids, dtype=np.int64)
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: len(ids)]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        for i in range(self.layers):
            x = self._layer(x, f"encoder.layer.{i}.")
        v = x.mean(axis=0)
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)

    def _layer(self, x: np.ndarray, p: str) -> np.ndarray:
        w = self.w
        n, d = x.shape
        h = self.heads
        dh = d // h

        def linear(t: np.ndarray, name: str) -> np.ndarray:
            return t @ w[name + ".weight"].T + w[name + ".bias"]

        q = linear(x, p + "attention.self.query").reshape(n, h, dh).transpose(1, 0, 2)
        k = linear(x, p + "attention.self.key").reshape(n, h, dh).transpose(1, 0, 2)
        v = linear(x, p + "attention.self.value").reshape(n, h, dh).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attn = scores / scores.sum(axis=-1, keepdims=True)
        ctx = (attn @ v).transpose(1, 0, 2).reshape(n, d)
        x = _layer_norm(linear(ctx, p + "attention.output.dense") + x,
                        w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], self.eps)
        inner = _gelu(linear(x, p + "intermediate.dense"))
        return _layer_norm(linear(inner, p + "output.dense") + x,
                           w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
