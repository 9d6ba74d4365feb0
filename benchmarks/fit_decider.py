"""An experiment, measured and not shipped: a model that decides across the reader's passages.

The span reader scores each window alone. This fits a logistic model over every proposal of a
question at once (the reader's scores, retrieval ranks, the feature model's sentence probability,
agreement between passages, the gap to the best different answer) and measures it as the lead
and the refusal; docs/reader.md has the figures (it did not beat the reader's own confidence).

    .venv/bin/python benchmarks/reader_dev.py collect SQUAD.json --titles trainuse --out build/reader_dev/trainuse
    .venv/bin/python benchmarks/reader_dev.py collect SQUAD.json --titles heldout --out build/reader_dev/heldout
    .venv/bin/python benchmarks/fit_decider.py build/reader_dev/heldout

A proposal is a positive example when its span's SQuAD F1 against a gold answer is at least 0.5;
every proposal of an unanswerable question is negative. The model is an L2-regularised logistic
regression on standardised features (folded back into raw-feature weights). Printed: for the
training runs, article-grouped cross-validation; for ``--test`` runs, the model fitted on the
training runs only; each as the answer policy's F1, answer inside the cited text, unanswerable
questions refused and false refusals at a sweep of thresholds, beside the reader's own confidence.
The threshold named is the largest whose cross-validated false refusals stay within
``--false-refusals``.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rag.answering.span_answerer import choose, kinds_in
from rag.answering.weights import LogisticModel
from rag.evals.metrics import f1_score
from rag.text.answer_kinds import holds
from rag.text.normalize import normalize_answer
from rag.text.tokens import tokenize

FEATURES = (
    "confidence", "margin", "has_logit", "span_score", "passage_rank", "dense", "lexical",
    "sentence_prob", "agree_confidence", "agree_passages", "kind", "question_overlap", "words",
    "proposal_rank", "gap", "max_has", "sentence_overlap",
)


@dataclass(frozen=True)
class Evidence:
    """What the decider reads besides the proposals: retrieval and the feature model's sentences."""

    question: str
    hit_ranks: dict[str, int]  # chunk id -> rank in retrieval
    sentence_probs: dict[tuple[str, int], float]  # (source, sentence start) -> feature-model probability


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def proposal_features(proposals: Sequence, evidence: Evidence, kinds: Sequence[int]) -> np.ndarray:
    """One row of FEATURES per proposal (``rag.answering.span_answerer.Proposal``), in order.

    ``kinds``: per proposal, +1 when it holds the kind of answer asked for, -1 when it does not,
    0 when the question asks for no particular kind.
    """
    if not proposals:
        return np.zeros((0, len(FEATURES)), dtype=np.float32)
    q_tokens = set(tokenize(evidence.question))
    keys = [normalize_answer(p.span.text) for p in proposals]
    places = [(p.hit.source, p.sentence_start) for p in proposals]
    max_has = max(p.span.has_answer for p in proposals)
    order = {id(p): i for i, p in enumerate(sorted(proposals, key=lambda p: -p.confidence))}
    rows = []
    for i, p in enumerate(proposals):
        others = [j for j in range(len(proposals)) if places[j] != places[i]]
        same = [j for j in others if keys[j] == keys[i]]
        different = [proposals[j].confidence for j in range(len(proposals)) if keys[j] != keys[i]]
        answer_tokens = tokenize(p.span.text)
        sentence = p.hit.document_text[p.sentence_start : p.sentence_end] if p.hit.document_text else ""
        sentence_tokens = set(tokenize(sentence))
        rank = evidence.hit_ranks.get(p.hit.chunk.id, len(evidence.hit_ranks))
        rows.append([
            p.confidence,
            p.span.margin,
            _logit(p.span.has_answer),
            p.span.score,
            1.0 / (1 + rank),
            p.hit.dense_score or 0.0,
            1.0 / (1 + p.hit.lexical_rank) if p.hit.lexical_rank is not None else 0.0,
            evidence.sentence_probs.get(places[i], 0.0),
            sum(proposals[j].confidence for j in same),
            float(len({places[j] for j in same})),
            float(kinds[i]),
            sum(t in q_tokens for t in answer_tokens) / len(answer_tokens) if answer_tokens else 0.0,
            math.log1p(len(p.span.text.split())),
            1.0 / (1 + order[id(p)]),
            p.confidence - max(different, default=0.0),
            max_has,
            len(q_tokens & sentence_tokens) / len(q_tokens) if q_tokens and sentence_tokens else 0.0,
        ])
    return np.array(rows, dtype=np.float32)


THRESHOLDS = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def load_run(folder: Path) -> list[dict]:
    """The saved rows of a reader_dev run, each with its article's title."""
    rows = pickle.loads((folder / "proposals.pkl").read_bytes())
    data = json.loads((folder / "squad.json").read_text(encoding="utf-8"))["data"]
    article = {qa["id"]: a["title"] for a in data for p in a["paragraphs"] for qa in p["qas"]}
    for r in rows:
        r["article"] = article.get(r["id"], r["id"])
    return rows


def features_of(row: dict) -> np.ndarray:
    props = row["proposals"]
    evidence = Evidence(row["question"], dict(row["ranks"]), {(s, a): p for s, a, _, p in row.get("sentences", [])})
    req = row["required"]
    kinds = [0 if req is None else (1 if holds(req, kinds_in(p)) else -1) for p in props]
    return proposal_features(props, evidence, kinds)


def labels_of(row: dict) -> np.ndarray:
    if row["unanswerable"]:
        return np.zeros(len(row["proposals"]))
    return np.array([float(f1_score(p.span.text, row["answers"]) >= 0.5) for p in row["proposals"]])


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 50) -> LogisticModel:
    """Logistic regression by Newton's method on standardised columns; raw-feature weights back."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = np.c_[(x - mu) / sd, np.ones(len(x))]
    w = np.zeros(z.shape[1])
    reg = np.eye(len(w)) * l2
    reg[-1, -1] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w)))
        grad = z.T @ (p - y) + reg @ w
        hess = (z * (p * (1 - p))[:, None]).T @ z + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    weights = w[:-1] / sd
    return LogisticModel(FEATURES, weights.astype(np.float32), float(w[-1] - (mu / sd) @ w[:-1]))


def stack(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    xs = [features_of(r) for r in rows if r["proposals"]]
    ys = [labels_of(r) for r in rows if r["proposals"]]
    return np.concatenate(xs), np.concatenate(ys)


def decide(row: dict, model: LogisticModel | None) -> list:
    """The row's proposals with the decider's probability as their confidence (None: the reader's)."""
    props = row["proposals"]
    if model is None or not props:
        return sorted(props, key=lambda p: -p.confidence)
    probs = 1 / (1 + np.exp(-(features_of(row) @ model.weights + model.bias)))
    return sorted((replace(p, confidence=float(q)) for p, q in zip(props, probs)), key=lambda p: -p.confidence)


def table(rows: list[dict], decided: list[list]) -> list[dict]:
    out = []
    pos = [i for i, r in enumerate(rows) if not r["unanswerable"]]
    neg = [i for i, r in enumerate(rows) if r["unanswerable"]]
    for thr in THRESHOLDS:
        f1s, inside, refused = [], [], {}
        for i, (r, props) in enumerate(zip(rows, decided)):
            c = choose(props, r["required"], thr, 0.5, 300, 4)
            refused[i] = c.refused
            if r["unanswerable"]:
                continue
            f1s.append(0.0 if c.refused else f1_score(c.short[2], r["answers"]))
            cited = " ".join(h.document_text[s:e] if h.document_text else "" for s, e, h in c.cited)
            inside.append(not c.refused and any(normalize_answer(a) in normalize_answer(cited) for a in r["answers"]))
        out.append({"threshold": thr, "f1": round(statistics.mean(f1s), 4), "answer_in_cited": round(statistics.mean(inside), 4),
                    "unanswerable_refused": round(sum(refused[i] for i in neg) / max(len(neg), 1), 4),
                    "false_refusals": round(sum(refused[i] for i in pos) / max(len(pos), 1), 4)})
    return out


def show(name: str, rows: list[dict]) -> None:
    print(name)
    print("threshold  F1     in_cited  unans_refused  false_refusals")
    for t in rows:
        print(f"{t['threshold']:9.2f}  {t['f1']:.3f}  {t['answer_in_cited']:.3f}     {t['unanswerable_refused']:.3f}          {t['false_refusals']:.3f}")


def cross_validated(rows: list[dict], l2: float) -> list[list]:
    """Each article's rows decided by a model fitted on the other articles."""
    articles = sorted({r["article"] for r in rows})
    decided: list[list] = [[] for _ in rows]
    for a in articles:
        train = [r for r in rows if r["article"] != a]
        model = fit(*stack(train), l2=l2)
        for i, r in enumerate(rows):
            if r["article"] == a:
                decided[i] = decide(r, model)
    return decided


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("train", nargs="+", type=Path, help="reader_dev run folders to fit on")
    ap.add_argument("--test", nargs="*", type=Path, default=[], help="run folders to measure the fitted model on")
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--false-refusals", type=float, default=0.08, help="the calibration rule's target on the training folds")
    ap.add_argument("--json", type=Path, help="also write the tables here")
    args = ap.parse_args()
    rows = [r for folder in args.train for r in load_run(folder)]
    show("reader confidence, training runs", table(rows, [decide(r, None) for r in rows]))
    cv = table(rows, cross_validated(rows, args.l2))
    show("decider, training runs, article-grouped cross-validation", cv)
    ok = [t["threshold"] for t in cv if t["false_refusals"] <= args.false_refusals]
    threshold = max(ok) if ok else 0.0
    model = fit(*stack(rows), l2=args.l2)
    print("weights:", {f: round(float(w), 3) for f, w in zip(FEATURES, model.weights)}, "bias", round(model.bias, 3))
    print(f"calibrated refusal threshold: {threshold} (largest with cross-validated false refusals <= {args.false_refusals})")
    report = {"train": [str(f) for f in args.train], "cv": cv, "threshold": threshold, "test": {}}
    for folder in args.test:
        test = load_run(folder)
        show(f"reader confidence, {folder}", table(test, [decide(r, None) for r in test]))
        report["test"][str(folder)] = table(test, [decide(r, model) for r in test])
        show(f"decider fitted on the training runs, {folder}", report["test"][str(folder)])
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
