"""Fit the extractive answerer's two logistic models on the public SQuAD slice, and calibrate.

    .venv/bin/python benchmarks/fit_answerer.py      # ~4 min on 2 cores; caches to /tmp

1. Writes ../shared/data/squad2-dev as one text file per article, ingests them into one index.
2. For every question, retrieves the top 10 passages exactly as ``rag ask`` does and computes the
   answerer's sentence features (``ExtractiveAnswerer.score_sentences``). A sentence is positive
   when its span contains the gold answer.
3. Sentence model: logistic regression, article-grouped 5-fold cross-validation (every figure
   printed is measured on articles the model did not see), then refit on all articles.
4. Selection policy grid (sentences cited, runner-up ratio) -> answer-in-cited vs characters.
5. Refusal: the trade-off of a threshold on the best sentence's probability between false
   refusals of answerable questions and refusals of (a) the same questions with their gold
   paragraph removed from the candidates (realistic "the article does not say" cases) and
   (b) SQuAD's adversarial unanswerable questions (false premises written to match the text,
   which lexical and embedding features cannot tell apart; reported, not tuned for).
   A question-level logistic model on more features did no better held-out, so the plain
   threshold stays.
The printed WEIGHTS/BIAS are what rag/answer.py carries.
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

from rag.answer import FEATURES, ExtractiveAnswerer  # noqa: E402
from rag.answer_types import CHECKED_TYPES, expected_type  # noqa: E402
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
                                  "answers": [a["text"] for a in qa["answers"]], "impossible": qa["is_impossible"],
                                  "paragraph": (offset, offset + len(p["context"]))})
            parts.append(p["context"])
            offset += len(p["context"]) + 2
        text = "\n\n".join(parts)
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return questions


def collect(assistant: Assistant, questions: list[dict], top_k: int) -> list[dict]:
    """Per question: its candidate sentences (features, label, passage rank, gold-paragraph flag)."""
    answerer = ExtractiveAnswerer(assistant.index, assistant.settings.answer)
    rows = []
    started = time.perf_counter()
    vectors = assistant.index.embedder.embed([q["question"] for q in questions])  # one batched encode
    for n, (q, vector) in enumerate(zip(questions, vectors)):
        hits = assistant.retriever.retrieve(q["question"], top_k=top_k, query_vector=vector)
        scored = answerer.score_sentences(q["question"], hits, vector)
        p0, p1 = q["paragraph"]
        rows.append({
            "article": q["source"],
            "wanted": expected_type(q["question"]).value,
            "impossible": q["impossible"],
            "x": np.stack([s.features for s in scored]) if scored else np.zeros((0, len(FEATURES)), np.float32),
            "y": np.array([s.source == q["source"] and any(s.start <= a and b <= s.end for a, b in q["spans"]) for s in scored], bool),
            "rank": np.array([s.hit_rank for s in scored], int),
            "in_gold_paragraph": np.array([s.source == q["source"] and p0 <= s.start < p1 for s in scored], bool),
            "length": np.array([len(s.text) for s in scored], int),
        })
        if n % 1000 == 0:
            print(f"  {n}/{len(questions)} questions, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return rows


def restrict(row: dict, keep: np.ndarray) -> dict:
    return {**row, **{k: row[k][keep] for k in ("x", "y", "rank", "in_gold_paragraph", "length")}}


def fit_lr(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=5000)
    model.fit(x, y)
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def sentence_logits(row: dict, w: np.ndarray, b: float) -> np.ndarray:
    return row["x"] @ w + b if len(row["x"]) else np.zeros(0, np.float32)


def select(row: dict, logits: np.ndarray, max_sentences: int, ratio: float, budget: int, confident: float = 1.0) -> list[int]:
    """The answerer's selection policy (rag.answer.ExtractiveAnswerer._select) on logits."""
    if not len(logits):
        return []
    probs = 1 / (1 + np.exp(-logits))
    order = list(np.argsort(-probs))
    if probs[order[0]] >= confident:  # a sure best sentence: cite it alone
        max_sentences = 1
    chosen = [order[0]]
    room = budget - row["length"][order[0]]
    for j in order[1:]:
        if len(chosen) >= max_sentences or probs[j] < ratio * probs[order[0]]:
            break
        if row["length"][j] <= room:
            chosen.append(j)
            room -= row["length"][j]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-squad-index"))
    parser.add_argument("--articles", type=Path, default=Path("/tmp/rag-squad-articles"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rag-fit-cache.pkl"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fit_answerer.json")
    args = parser.parse_args()
    import pickle

    top_k = 10
    if args.cache.exists():
        rows = pickle.loads(args.cache.read_bytes())
    else:
        questions = write_articles(args.articles)
        assistant = Assistant.open(settings=Settings(index_dir=args.index, chroma_url=None), create=True)
        report = assistant.ingest([args.articles])
        print(f"index: {report.total_documents} articles, {report.total_chunks} chunks", file=sys.stderr)
        rows = collect(assistant, questions, top_k)
        args.cache.write_bytes(pickle.dumps(rows))
    answerable = [r for r in rows if not r["impossible"]]
    articles = sorted({r["article"] for r in rows})
    folds = [set(articles[k::5]) for k in range(5)]
    out: dict = {"questions": len(rows), "answerable": len(answerable)}
    for k in (5, 8, 10):
        out[f"answer_in_top{k}_passages"] = float(np.mean([bool(r["y"][r["rank"] < k].any()) for r in answerable]))
    print("gold answer inside the top-k retrieved passages:", {k: round(out[f"answer_in_top{k}_passages"], 3) for k in (5, 8, 10)})

    results = {}
    for passages in (5, 8):
        cut = [restrict(r, r["rank"] < passages) for r in rows]
        # 1. Sentence model, article-grouped 5-fold CV.
        held_logits: dict[int, np.ndarray] = {}
        fold_models = []
        for held in folds:
            train = [r for r in cut if r["article"] not in held and not r["impossible"] and len(r["x"])]
            w, b = fit_lr(np.concatenate([r["x"] for r in train]), np.concatenate([r["y"] for r in train]))
            fold_models.append((held, w, b))
            for i, r in enumerate(cut):
                if r["article"] in held:
                    held_logits[i] = sentence_logits(r, w, b)
        # 2. Selection policies on held-out logits (answerable questions, no refusal).
        grid = []
        for max_sentences in (1, 2, 3, 4):
            for ratio in (0.0, 0.3, 0.6):
                for confident in (1.0, 0.9, 0.8, 0.7, 0.6):
                    inside, chars = [], []
                    for i, r in enumerate(cut):
                        if r["impossible"]:
                            continue
                        chosen = select(r, held_logits[i], max_sentences, ratio, 600, confident)
                        inside.append(bool(r["y"][chosen].any()) if chosen else False)
                        chars.append(int(r["length"][chosen].sum()) if chosen else 0)
                    grid.append({"max_sentences": max_sentences, "ratio": ratio, "confident": confident,
                                 "answer_in_cited": float(np.mean(inside)), "chars": float(np.mean(chars))})
        print(f"\npassages={passages}: selection policy (held-out articles, no refusal)")
        for g in grid:
            print(f"  max_sentences={g['max_sentences']} ratio={g['ratio']:.1f} confident={g['confident']:.1f}: "
                  f"answer in cited {g['answer_in_cited']:.3f}, {g['chars']:.0f} chars")
        # 3. Refusal: a threshold on the best sentence's held-out probability, for answerable
        #    questions, the same questions with their gold paragraph removed ("the article does
        #    not say"), and SQuAD's adversarial unanswerable ones.
        #    With the rule on, a question asking for a number, amount, date or organisation is
        #    also refused when its best sentence holds none (rag.answer_types.CHECKED_TYPES).
        missing = FEATURES.index("type_missing")
        checked = {t.value for t in CHECKED_TYPES}

        def best_of(r: dict, logits: np.ndarray, keep: np.ndarray) -> tuple[float, bool]:
            if not keep.any():
                return 0.0, True
            j = int(np.argmax(np.where(keep, logits, -np.inf)))
            return float(1 / (1 + np.exp(-logits[j]))), bool(r["wanted"] in checked and r["x"][j, missing] > 0)

        best: dict[str, list[tuple[float, bool]]] = {"answerable": [], "answer_removed": [], "adversarial": []}
        for i, r in enumerate(cut):
            logits = held_logits[i]
            everything = np.ones(len(logits), bool)
            if r["impossible"]:
                best["adversarial"].append(best_of(r, logits, everything))
                continue
            best["answerable"].append(best_of(r, logits, everything))
            best["answer_removed"].append(best_of(r, logits, ~r["in_gold_paragraph"]))
        table = []
        for rule in (False, True):
            for t in (0.05, 0.08, 0.12, 0.15, 0.18, 0.22, 0.27, 0.35):
                def refused(kind: str) -> float:
                    return float(np.mean([p < t or (rule and lacks) for p, lacks in best[kind]]))
                table.append({"threshold": t, "type_rule": rule, "false_refusal": refused("answerable"),
                              "refused_answer_removed": refused("answer_removed"), "refused_adversarial": refused("adversarial")})
        print(f"passages={passages}: refusal trade-off, threshold on the best sentence's probability (held-out)")
        print("  rule  threshold  false-refusal  refused(answer removed)  refused(SQuAD unanswerable)")
        for row in table:
            print(f"  {'on ' if row['type_rule'] else 'off'}   {row['threshold']:.2f}       {row['false_refusal']:.3f}          "
                  f"{row['refused_answer_removed']:.3f}                    {row['refused_adversarial']:.3f}")
        # 4. The sentence model refit on all articles.
        train = [r for r in cut if not r["impossible"] and len(r["x"])]
        w, b = fit_lr(np.concatenate([r["x"] for r in train]), np.concatenate([r["y"] for r in train]))
        results[passages] = {"policy": grid, "refusal": table, "weights": w.tolist(), "bias": b}
        print(f"passages={passages}: WEIGHTS = [" + ", ".join(f"{x:.3f}" for x in w) + f"], BIAS = {b:.3f}")
    out["by_passages"] = results
    out["features"] = list(FEATURES)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
