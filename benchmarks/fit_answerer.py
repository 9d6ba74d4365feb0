"""Fit the extractive answerer's two logistic models on the public SQuAD slice, and calibrate.

The sentence model (does this sentence answer?) and the answerability model (is the question
answered at all?) of rag/answering/extractive.py.

    .venv/bin/python benchmarks/fit_answerer.py      # ~4 min on 2 cores; caches to /tmp

1. Writes the public SQuAD 2.0 dev slice as one text file per article, ingests them into one index
   (``/tmp/rag-squad-index``; the per-question features are cached in ``/tmp/rag-fit-cache.pkl``,
   so refits after the first run take seconds: delete the cache after changing a feature).
2. For every question, retrieves the top 10 passages exactly as ``rag ask`` does and computes the
   answerer's sentence features (``ExtractiveAnswerer.score_sentences``). A sentence is positive
   when its span contains the gold answer.
3. Sentence model: logistic regression, article-grouped 5-fold cross-validation (every figure
   printed is measured on articles the model did not see), then refit on all articles.
4. Selection policy grid (sentences cited, runner-up ratio) -> answer-in-cited vs characters.
5. Refusal: the trade-off between false refusals of answerable questions and refusals of
   (a) the same questions with their gold paragraph removed from the index, later passages
   moving up ("the article does not say") and (b) SQuAD's adversarial unanswerable questions
   (false premises written to match the text, which lexical and embedding features cannot
   tell apart; reported, not tuned for), for a plain threshold on the lead sentence's
   probability and for the answerability model (article-grouped CV, trained on (a) only).
Both refitted models are written, with their feature names, to
rag/answering/extractive_weights.json (``--weights``), which the answerer loads and checks; the
refusal tables are quoted in rag/answering/extractive.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from rag.answering.extractive import (
    ANSWERABILITY_FEATURES,
    BASE_FEATURES,
    FEATURES,
    ExtractiveAnswerer,
    answerability_features,
    with_relative,
)  # noqa: E402
from rag.answering.weights import WEIGHTS_FILE, LogisticModel, write_weights  # noqa: E402
from rag.assistant import Assistant  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.text.answer_kinds import expected_type, holds, requirement  # noqa: E402

FITTED_BY = "benchmarks/fit_answerer.py (SQuAD 2.0 public slice, article-grouped CV, refit on all articles)"

SQUAD = ROOT / "evals" / "data" / "squad2-dev" / "squad2-dev-public.json"


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
    answerer = ExtractiveAnswerer(assistant.settings.answer)
    rows = []
    started = time.perf_counter()
    from rag.query import Query

    vectors = assistant.index.embedder.embed([q["question"] for q in questions])  # one batched encode
    for n, (q, vector) in enumerate(zip(questions, vectors)):
        hits = assistant.retriever.retrieve(Query(q["question"], q["question"], vector, top_k=top_k))
        scored = answerer.score_sentences(q["question"], hits, vector)
        required = requirement(q["question"])
        p0, p1 = q["paragraph"]
        rows.append({
            "article": q["source"],
            "question": q["question"],
            "wanted": expected_type(q["question"]).value,
            "impossible": q["impossible"],
            # The sentence's own features; the relative ones depend on which candidates are seen
            # (``view``) and are computed there.
            "x": np.stack([s.features[: len(BASE_FEATURES)] for s in scored]) if scored else np.zeros((0, len(BASE_FEATURES)), np.float32),
            "y": np.array([s.source == q["source"] and any(s.start <= a and b <= s.end for a, b in q["spans"]) for s in scored], bool),
            "rank": np.array([s.hit_rank for s in scored], int),
            "in_gold_paragraph": np.array([s.source == q["source"] and p0 <= s.start < p1 for s in scored], bool),
            "length": np.array([len(s.text) for s in scored], int),
            "lacks": np.array([required is not None and not holds(required, s.typed) for s in scored], bool),
        })
        if n % 1000 == 0:
            print(f"  {n}/{len(questions)} questions, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return rows


RANK = BASE_FEATURES.index("rank")


def view(row: dict, passages: int, removed: bool = False) -> dict:
    """The candidate sentences the answerer sees: those of the top ``passages`` passages.

    ``removed`` simulates an index without the gold paragraph (the article does not say): its
    sentences go, the passages below it move up, and the rank feature is recomputed, so the
    simulated "not in the sources" case is not made easier by low ranks that a real index would
    not have. (An earlier version kept the old ranks and overstated refusals by about 30 points.)
    """
    x, rank = row["x"].copy(), row["rank"].copy()
    keep = np.ones(len(rank), bool)
    if removed:
        keep = ~row["in_gold_paragraph"]
        gone = np.unique(rank[~keep])
        rank = rank - np.searchsorted(gone, rank)
        x[:, RANK] = 1.0 / (1.0 + rank)
    keep &= rank < passages
    x = with_relative(x[keep]) if keep.any() else np.zeros((0, len(FEATURES)), np.float32)
    return {**row, "x": x, "rank": rank[keep], **{k: row[k][keep] for k in ("y", "in_gold_paragraph", "length", "lacks")}}


def fit_lr(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=5000)
    model.fit(x, y)
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def sentence_logits(row: dict, w: np.ndarray, b: float) -> np.ndarray:
    return row["x"] @ w + b if len(row["x"]) else np.zeros(0, np.float32)


def select(row: dict, logits: np.ndarray, max_sentences: int, ratio: float, budget: int, confident: float = 1.0) -> list[int]:
    """The answerer's selection policy (rag.answering.extractive.ExtractiveAnswerer._select) on logits."""
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


def question_features(v: dict, w: np.ndarray, b: float) -> tuple[np.ndarray, float] | None:
    """The answerability features of one view (as ExtractiveAnswerer.answer computes them), and
    the lead sentence's probability; None when no sentence holds the type asked for."""
    if not len(v["x"]):
        return None
    probs = 1 / (1 + np.exp(-(v["x"] @ w + b)))
    order = np.argsort(-probs)
    typed = [j for j in order if not v["lacks"][j]]
    if not typed:
        return None
    lead = typed[0]
    second = max((probs[j] for j in typed if j != lead), default=0.0)
    return answerability_features(v["question"], v["x"][lead], float(probs[lead]), float(second)), float(probs[lead])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-squad-index"))
    parser.add_argument("--articles", type=Path, default=Path("/tmp/rag-squad-articles"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rag-fit-cache.pkl"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fit_answerer.json")
    parser.add_argument("--weights", type=Path, default=WEIGHTS_FILE, help="where to write the fitted models")
    args = parser.parse_args()
    import pickle

    top_k, passages = 10, 5
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
    out: dict = {"questions": len(rows), "answerable": len(answerable), "passages": passages}
    for k in (5, 8, 10):
        out[f"answer_in_top{k}_passages"] = float(np.mean([bool(r["y"][r["rank"] < k].any()) for r in answerable]))
    print("gold answer inside the top-k retrieved passages:", {k: round(out[f"answer_in_top{k}_passages"], 3) for k in (5, 8, 10)})

    cut = [view(r, passages) for r in rows]
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
    print("\nselection policy (held-out articles, no refusal)")
    for g in grid:
        if g["ratio"] == 0.3 or g["max_sentences"] == 1:
            print(f"  max_sentences={g['max_sentences']} ratio={g['ratio']:.1f} confident={g['confident']:.1f}: "
                  f"answer in cited {g['answer_in_cited']:.3f}, {g['chars']:.0f} chars")
    # 3. Refusal. Three kinds of question, all on held-out articles: answerable ones; the same
    #    questions with their gold paragraph removed from the index ("the article does not
    #    say", see ``view``); SQuAD's adversarial unanswerable ones (false premises written to
    #    match the text word for word; reported, not trained on). Each view gets the lead
    #    sentence (the best one holding the type asked for; none: refused by the type rule).
    kinds: list[tuple[str, dict, int]] = []
    for held, w, b in fold_models:
        for r, q in zip(rows, questions_of(rows)):
            if r["article"] not in held:
                continue
            views = [("adversarial", False)] if r["impossible"] else [("answerable", False), ("answer_removed", True)]
            for kind, removed in views:
                v = {**view(r, passages, removed), "question": q}
                kinds.append((kind, question_features(v, w, b), r["article"]))
    kind = np.array([k for k, _, _ in kinds])
    has = np.array([f is not None for _, f, _ in kinds])
    dim = next(f[0] for _, f, _ in kinds if f is not None).shape[0]
    x_q = np.stack([f[0] if f is not None else np.zeros(dim, np.float32) for _, f, _ in kinds])
    p_lead = np.array([f[1] if f is not None else 0.0 for _, f, _ in kinds])
    art = np.array([a for _, _, a in kinds])
    #    (a) A plain threshold on the lead sentence's probability.
    #    (b) A question-level logistic model (answerable vs answer removed) over the lead
    #        sentence's features, the runner-up's probability and the wh-words
    #        (``answerability_features``), article-grouped CV again: what rag.answering.extractive does. With
    #        the relative sentence features it refuses about 15 points more answer-removed
    #        questions than (a) at equal false refusals. (The probability of the best sentence
    #        of any type is deliberately not a feature: it gained on SQuAD but then vouched for
    #        numbers found in sentences that do not answer.)
    score = np.zeros(len(kind))
    for held in folds:
        train = has & (kind != "adversarial") & ~np.isin(art, list(held))
        w_q, b_q = fit_lr(x_q[train], (kind[train] == "answerable").astype(int))
        test = np.isin(art, list(held))
        score[test] = 1 / (1 + np.exp(-(x_q[test] @ w_q + b_q)))
    score[~has] = 0.0

    def trade_off(values: np.ndarray, t: float) -> dict:
        refused = (values < t) | ~has
        return {"threshold": t, "false_refusal": float(refused[kind == "answerable"].mean()),
                "refused_answer_removed": float(refused[kind == "answer_removed"].mean()),
                "refused_adversarial": float(refused[kind == "adversarial"].mean())}

    plain = [trade_off(p_lead, t) for t in (0.05, 0.08, 0.12, 0.15, 0.18, 0.22, 0.27, 0.35)]
    model = [trade_off(score, t) for t in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)]
    for name, table in (("threshold on the lead sentence's probability", plain), ("answerability model", model)):
        print(f"refusal trade-off, {name} (held-out articles)")
        print("  threshold  false-refusal  refused(answer removed)  refused(SQuAD adversarial)")
        for row in table:
            print(f"  {row['threshold']:.2f}       {row['false_refusal']:.3f}          "
                  f"{row['refused_answer_removed']:.3f}                    {row['refused_adversarial']:.3f}")
    # 4. Both models refit on all articles.
    train = [r for r in cut if not r["impossible"] and len(r["x"])]
    w, b = fit_lr(np.concatenate([r["x"] for r in train]), np.concatenate([r["y"] for r in train]))
    print("WEIGHTS = [" + ", ".join(f"{x:.3f}" for x in w) + f"], BIAS = {b:.3f}")
    train_q = has & (kind != "adversarial")
    w_q, b_q = fit_lr(x_q[train_q], (kind[train_q] == "answerable").astype(int))
    print("ANSWERABILITY_WEIGHTS = [" + ", ".join(f"{x:.3f}" for x in w_q) + f"], ANSWERABILITY_BIAS = {b_q:.3f}")
    write_weights(
        {"sentence": LogisticModel(FEATURES, w, b), "answerability": LogisticModel(ANSWERABILITY_FEATURES, w_q, b_q)},
        args.weights,
        fitted_by=FITTED_BY,
    )
    print(f"wrote {args.weights}", file=sys.stderr)
    out.update({"policy": grid, "refusal_plain_threshold": plain, "refusal_answerability_model": model,
                "weights": w.tolist(), "bias": b, "answerability_weights": w_q.tolist(), "answerability_bias": b_q,
                "features": list(FEATURES)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


def questions_of(rows: list[dict]) -> list[str]:
    """The question texts, in the order ``collect`` saw them (older caches lack them)."""
    if all("question" in r for r in rows):
        return [r["question"] for r in rows]
    data = json.loads(SQUAD.read_text(encoding="utf-8"))
    texts = [qa["question"] for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]]
    assert len(texts) == len(rows), "the cache does not match the SQuAD file: delete it"
    return texts


if __name__ == "__main__":
    main()
