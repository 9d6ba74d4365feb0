"""Fitted logistic models as data: a versioned JSON file with its feature names, checked on load.

``benchmarks/fit_answerer.py`` writes ``extractive_weights.json`` (``write_weights``); the
extractive answerer reads it (``load_weights``) and names the features it computes. A file whose
version, model names or feature names and order differ from what the code computes is refused
with a ``ConfigError`` naming the first difference: weights applied to the wrong columns would
answer quietly and badly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import ConfigError

FORMAT_VERSION = 1
WEIGHTS_FILE = Path(__file__).with_name("extractive_weights.json")


@dataclass(frozen=True)
class LogisticModel:
    """``sigmoid(x @ weights + bias)`` over ``features`` (in that order)."""

    features: tuple[str, ...]
    weights: np.ndarray
    bias: float

    def __post_init__(self) -> None:
        if len(self.features) != len(self.weights):
            raise ConfigError(f"{len(self.weights)} weights given for {len(self.features)} features")

    def probability(self, x: np.ndarray) -> float:
        return 1.0 / (1.0 + math.exp(-(float(x @ self.weights) + self.bias)))


def load_weights(expected: Mapping[str, Sequence[str]], path: Path = WEIGHTS_FILE) -> dict[str, LogisticModel]:
    """The models in ``path``, checked against ``expected`` (model name -> feature names in order)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the answerer weights {path}: {e}") from e
    if data.get("format") != FORMAT_VERSION:
        raise ConfigError(f"answerer weights {path} have format {data.get('format')!r}, not {FORMAT_VERSION}")
    models = data.get("models", {})
    if sorted(models) != sorted(expected):
        raise ConfigError(f"answerer weights {path} hold models {sorted(models)}, the code needs {sorted(expected)}")
    out = {}
    for name, features in expected.items():
        stored = tuple(models[name]["features"])
        if stored != tuple(features):
            diff = next(
                (f"position {i}: file {a!r}, code {b!r}" for i, (a, b) in enumerate(zip(stored, features)) if a != b),
                f"file has {len(stored)} features, code {len(features)}",
            )
            raise ConfigError(f"answerer weights {path}, model {name!r}: features differ from the code ({diff})")
        weights = np.array(models[name]["weights"], dtype=np.float32)
        out[name] = LogisticModel(stored, weights, float(models[name]["bias"]))
    return out


def write_weights(models: Mapping[str, LogisticModel], path: Path = WEIGHTS_FILE, fitted_by: str = "", decimals: int = 3) -> None:
    """Write ``models`` as the versioned file ``load_weights`` reads (weights rounded to ``decimals``)."""
    data = {
        "format": FORMAT_VERSION,
        "fitted_by": fitted_by,
        "models": {
            name: {
                "features": list(m.features),
                "weights": [round(float(w), decimals) for w in m.weights],
                "bias": round(float(m.bias), decimals),
            }
            for name, m in models.items()
        },
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
