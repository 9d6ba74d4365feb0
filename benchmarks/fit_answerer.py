"""Fit the extractive answerer's sentence model and calibrate its refusal threshold on SQuAD.

    .venv/bin/python benchmarks/fit_answerer.py [--index DIR] [--out benchmarks/results/fit_answerer.json]

1. Writes the public SQuAD 2.0 slice (../shared/data/squad2-dev) as one text file per article
   and ingests them into one index (reused when it exists).
2. For every question, retrieves passages exactly as ``rag ask`` does and computes the answerer's
   sentence features (``ExtractiveAnswerer.score_sentences``). A sentence is a positive when its
   span contains the gold answer span.
3. Fits a logistic regression (scikit-learn) with article-grouped 5-fold cross-validation, so every
   reported number is measured on articles the model did not see, then fits on all articles and
   prints the weights to paste into ``rag/answer.py``.
4. Prints the refusal trade-off: for thresholds on the best sentence's probability, the false-
   refusal rate on answerable questions and the missed-refusal rate on unanswerable ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag import answer as answer_module  # noqa: E402
from rag.answer import FEATURES, ExtractiveAnswerer, sigmoid  # noqa: E402
from rag.assistant import Assistant  # noqa: E402
from rag.config import Settings  # noqa: E402

SQUAD = ROOT.parent / "shared" / "data" / "squad2-dev" / "squad2-dev-public.json"


def write_articles(folder: Path) -> list[dict]:
    """One .txt per article (paragraphs joined by a blank line) and the questions with offsets."""
    data = json.loads(SQUAD.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    questions = []
    for article in data["data"]:
        name = f"{article['title']}.txt"
        offset = 0
        parts = []
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                spans = [(offset + a["answer_start"], offset + a["answer_start"] + len(a["text"])) for a in qa["answers"]]
                questions.append({"source": name, "question": qa["question"], "spans": spans,
                                  "answers": [a["text"] for a in qa["answers"]], "impossible": qa["is_impossible"]})
            parts.append(p["context"])
            offset += len(p["context"]) + 2
        text = "\n\n".join(parts)
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return questions


def collect(assistant: Assistant, questions: list[dict]) -> tuple[list[np.ndarray], list[np.ndarray], list[dict]]:
    """Per question: the feature matrix of its candidate sentences, their labels, and meta."""
    answerer = ExtractiveAnswerer(assistant.index, assistant.settings.answer)
    feats, labels, meta = [], [], []
    started = time.perf_counter()
    vectors = assistant.index.embedder.embed([q["question"] for q in questions])  # one batched encode
    for n, (q, vector) in enumerate(zip(questions, vectors)):
        hits = assistant.retriever.retrieve(q["question"], query_vector=vector)
        scored = answerer.score_sentences(q["question"], hits, vector)
        x = np.stack([s.features for s in scored]) if scored else np.zeros((0, len(FEATURES)), np.float32)
        y = np.array([
            s.source == q["source"] and any(s.start <= a and b <= s.end for a, b in q["spans"]) for s in scored
        ], dtype=bool)
        feats.append(x)
        labels.append(y)
        meta.append({"article": q["source"], "impossible": q["impossible"], "lengths": [len(s.text) for s in scored],
                     "retrieved": any(h.source == q["source"] and any(h.chunk.start <= a and b <= h.chunk.end for a, b in q["spans"]) for h in hits)})
        if n % 500 == 0:
            print(f"  {n}/{len(questions)} questions, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return feats, labels, meta


def evaluate(weights: np.ndarray, bias: float, feats, labels, meta, idx, threshold: float, ratio: float, budget: int, max_sentences: int) -> dict:
    """Answer-in-cited, chars cited and refusal figures for questions ``idx`` under a policy."""
    inside = chars = answered = n_ans = n_imp = refused_imp = 0
    for i in idx:
        x, y, m = feats[i], labels[i], meta[i]
        probs = np.array([sigmoid(float(v @ weights) + bias) for v in x]) if len(x) else np.zeros(0)
        order = np.argsort(-probs)
        refuse = len(order) == 0 or probs[order[0]] < threshold
        if m["impossible"]:
            n_imp += 1
            refused_imp += refuse
            continue
        n_ans += 1
        if refuse:
            continue
        answered += 1
        chosen = [order[0]]
        room = budget - m["lengths"][order[0]]
        for j in order[1:]:
            if len(chosen) >= max_sentences or probs[j] < max(threshold, ratio * probs[order[0]]):
                break
            if m["lengths"][j] <= room:
                chosen.append(j)
                room -= m["lengths"][j]
        inside += bool(y[chosen].any())
        chars += sum(m["lengths"][j] for j in chosen)
    return {
        "answer_in_cited": inside / max(n_ans, 1),
        "answer_in_cited_when_answered": inside / max(answered, 1),
        "chars_per_answer": chars / max(answered, 1),
        "false_refusal": 1 - answered / max(n_ans, 1),
        "refusal_accuracy_unanswerable": refused_imp / max(n_imp, 1),
    }


def fit(feats, labels, meta, idx) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    rows = [i for i in idx if len(feats[i])]
    x = np.concatenate([feats[i] for i in rows])
    y = np.concatenate([labels[i] for i in rows])
    model = LogisticRegression(C=1.0, max_iter=2000, class_weight=None)
    model.fit(x, y)
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-squad-index"))
    parser.add_argument("--articles", type=Path, default=Path("/tmp/rag-squad-articles"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fit_answerer.json")
    args = parser.parse_args()

    questions = write_articles(args.articles)
    settings = Settings(index_dir=args.index, chroma_url=None)
    assistant = Assistant.open(settings=settings, create=True)
    report = assistant.ingest([args.articles])
    print(f"index: {report.total_documents} articles, {report.total_chunks} chunks ({report.seconds:.0f} s)", file=sys.stderr)
    feats, labels, meta = collect(assistant, questions)
    retrieved = np.mean([m["retrieved"] for m in meta if not m["impossible"]])
    print(f"gold answer inside a retrieved passage: {retrieved:.3f}")

    articles = sorted({m["article"] for m in meta})
    folds = [articles[k::5] for k in range(5)]
    s = assistant.settings.answer
    policy = {"ratio": answer_module.RUNNER_UP_RATIO, "budget": s.max_cited_chars, "max_sentences": s.max_sentences}
    cv_probs_best: list[tuple[float, bool]] = []
    cv_rows = []
    for k, held in enumerate(folds):
        test = [i for i, m in enumerate(meta) if m["article"] in held]
        train = [i for i, m in enumerate(meta) if m["article"] not in held]
        w, b = fit(feats, labels, meta, train)
        for i in test:
            p = max((sigmoid(float(v @ w) + b) for v in feats[i]), default=0.0)
            cv_probs_best.append((p, meta[i]["impossible"]))
        cv_rows.append((test, w, b))
    # Refusal trade-off from held-out probabilities.
    table = []
    for t in [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6]:
        ans = [p for p, imp in cv_probs_best if not imp]
        imp = [p for p, imp_ in cv_probs_best if imp_]
        table.append({"threshold": t, "false_refusal": float(np.mean([p < t for p in ans])),
                      "missed_refusal": float(np.mean([p >= t for p in imp]))})
    print("\nrefusal trade-off (held-out articles):\nthreshold  false-refusal(answerable)  missed-refusal(unanswerable)")
    for row in table:
        print(f"  {row['threshold']:.2f}      {row['false_refusal']:.3f}                     {row['missed_refusal']:.3f}")
    # Choose the threshold: the highest one keeping false refusals at or below 10%.
    chosen_t = max((r["threshold"] for r in table if r["false_refusal"] <= 0.10), default=0.0)
    cv = [evaluate(w, b, feats, labels, meta, test, chosen_t, **policy) for test, w, b in cv_rows]
    cv_mean = {k: float(np.mean([c[k] for c in cv])) for k in cv[0]}
    print(f"\nchosen threshold {chosen_t} (false refusals <= 10%); held-out policy figures:")
    for k, v in cv_mean.items():
        print(f"  {k}: {v:.3f}")
    w, b = fit(feats, labels, meta, list(range(len(meta))))
    print("\nweights on all articles:")
    print("  FEATURES =", FEATURES)
    print("  WEIGHTS = np.array([" + ", ".join(f"{x:.3f}" for x in w) + "], dtype=np.float32)")
    print(f"  BIAS = {b:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "questions": len(meta), "retrieved_recall": float(retrieved), "tradeoff": table, "threshold": chosen_t,
        "cv": cv_mean, "weights": [float(x) for x in w], "bias": b, "features": list(FEATURES),
    }, indent=2))


if __name__ == "__main__":
    main()
