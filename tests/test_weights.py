"""The answerer's fitted weights are data: the shipped file matches the code, a mismatch fails loudly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.answering.extractive import ANSWERABILITY_FEATURES, ANSWERABILITY_MODEL, FEATURES, SENTENCE_MODEL
from rag.answering.weights import WEIGHTS_FILE, LogisticModel, load_weights, write_weights
from rag.errors import ConfigError

EXPECTED = {"sentence": FEATURES, "answerability": ANSWERABILITY_FEATURES}


def test_the_shipped_file_names_the_features_the_code_computes() -> None:
    data = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    assert data["format"] == 1
    assert tuple(data["models"]["sentence"]["features"]) == FEATURES == SENTENCE_MODEL.features
    assert tuple(data["models"]["answerability"]["features"]) == ANSWERABILITY_FEATURES == ANSWERABILITY_MODEL.features
    assert SENTENCE_MODEL.weights.shape == (len(FEATURES),) and SENTENCE_MODEL.bias == pytest.approx(-3.805)


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    models = {name: LogisticModel(tuple(f), np.arange(len(f), dtype=np.float32) / 7, 0.5) for name, f in EXPECTED.items()}
    write_weights(models, path, fitted_by="test")
    loaded = load_weights(EXPECTED, path)
    for name, model in models.items():
        assert loaded[name].features == model.features
        np.testing.assert_allclose(loaded[name].weights, np.round(model.weights, 3), atol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["models"]["sentence"]["features"].reverse(), r"features differ from the code \(position 0"),
        (lambda d: d["models"]["sentence"]["features"].pop(), "file has 19 features, code 20"),
        (lambda d: d["models"].pop("answerability"), "hold models"),
        (lambda d: d.update(format=2), "format 2"),
    ],
)
def test_a_file_that_does_not_match_the_code_is_refused(tmp_path: Path, change, message: str) -> None:  # noqa: ANN001
    data = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_weights(EXPECTED, path)
