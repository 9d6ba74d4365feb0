"""Fine-tune the shipped reader open book: several passages per question, one softmax across them.

The shipped reader was trained one window at a time, so its span and no-answer scores are not
comparable between the passages ``rag ask`` reads together (issue 25; shared normalisation, Clark
& Gardner 2018, is the known fix). This script goes on from the shipped weights::

    .venv/bin/python training/finetune_open.py SQUAD11_TRAIN_JSON_GZ --slice SQUAD2_DEV_JSON --groups 12000
    scripts/ship_reader.sh ~/.cache/rag-cite/reader-open/final.pt "NOTE"

Each training group is one question against ``--passages`` passages cut the way the index cuts a
document (whole sentences up to ``--chunk-chars`` characters, like a chunk): the passage that holds
the answer and the article's passages most like the question (idf-weighted word overlap, as the
lexical half of retrieval ranks them), none holding the answer text. Groups without an answer:
the same passages without the gold one (retrieval missed it: the sources read do not say), a
question with a name or number swapped, and the public slice's unanswerable questions of its
training-use articles (with their own paragraph's passages).

The loss is the original per-window loss (each window's span or its [CLS] "no answer here", and
the has-answer head), plus ``--shared-weight`` times the group's loss in one softmax over all its
windows' positions: the gold span, or for a group without an answer the sum of the windows' [CLS]
positions. The weights start from the shipped int8 model, dequantised (``state_from_onnx``; the
fp32 checkpoint that made it is not kept), and are exported by ``scripts/ship_reader.sh``.
Checkpoints every ``--ckpt-every-s`` to the cache folder; a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_reader import (  # noqa: E402
    DEFAULT_CACHE,
    HELD_OUT_TRAIN_ARTICLES,
    NAME_OR_NUMBER,
    Example,
    Reader,
    _idf,
    _swap,
    _words,
    best_span,
    build_model,
    collate,
    encode,
    load_checkpoint,
    load_squad,
    optimiser,
    prepare_run,
    save_checkpoint,
    split_slice_titles,
)

from rag.answering.span_answerer import confidence  # noqa: E402
from rag.evals.normalize import f1_score  # noqa: E402

logger = logging.getLogger("finetune_open")

OPEN_CACHE = DEFAULT_CACHE.parent / "reader-open"
SHIPPED = Path(__file__).resolve().parents[1] / "rag" / "answering" / "reader_model"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def bf16_native() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX). Elsewhere (AVX2 hosts)
    oneDNN emulates it and bf16 autocast is many times slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# ----------------------------------------------------------------------------- weights


def state_from_onnx(model_dir: Path, model: Reader) -> dict[str, torch.Tensor]:
    """The Reader's parameters read back from the shipped int8 ONNX file, dequantised.

    Named initialisers (biases, layer norms, the embeddings) carry their module path; the
    exporter renamed the linear layers' weights (``onnx::MatMul_N``, stored transposed), and their
    order in the file is the order of the model's linear layers: per encoder layer query, key,
    value, attention output, intermediate, output, then the span head. The caller checks the
    result against ONNX Runtime's outputs (``check_against_onnx``)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_dir / "model.onnx")).graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}

    def dequant(base: str) -> np.ndarray:
        q = arrays[f"{base}_quantized"].astype(np.float32)
        return (q - arrays[f"{base}_zero_point"].astype(np.float32)) * arrays[f"{base}_scale"].astype(np.float32)

    state = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for name in state:
        onnx_name = f"reader.{name}"
        if onnx_name in arrays:
            out[name] = torch.from_numpy(arrays[onnx_name].copy())
        elif f"{onnx_name}_quantized" in arrays:
            out[name] = torch.from_numpy(dequant(onnx_name))
    out["answerable.weight"] = torch.from_numpy(dequant("reader.answerable.weight_Transposed").T.copy())
    matmuls = sorted({n[: -len("_quantized")] for n in arrays if n.startswith("onnx::MatMul_") and n.endswith("_quantized")},
                     key=lambda n: int(n.rsplit("_", 1)[1]))
    linears = [f"encoder.encoder.layer.{i}.{part}.weight" for i in range(model.encoder.config.num_hidden_layers)
               for part in ("attention.self.query", "attention.self.key", "attention.self.value",
                            "attention.output.dense", "intermediate.dense", "output.dense")] + ["span.weight"]
    if len(matmuls) != len(linears):
        raise SystemExit(f"{model_dir}: {len(matmuls)} quantised matrices, the model has {len(linears)} linear layers")
    for name, base in zip(linears, matmuls):
        w = dequant(base).T.copy()
        if tuple(w.shape) != tuple(state[name].shape):
            raise SystemExit(f"{model_dir}: {base} is {w.shape}, {name} is {tuple(state[name].shape)}")
        out[name] = torch.from_numpy(w)
    missing = [n for n in state if n not in out and not n.endswith("position_ids") and ".pooler." not in n]  # the pooler is unused
    if missing:
        raise SystemExit(f"{model_dir}: no weights for {missing[:3]}")
    return out


@torch.no_grad()
def check_against_onnx(model: Reader, tokenizer, model_dir: Path) -> float:
    """Largest difference between the torch model's start logits and ONNX Runtime's on a few
    windows (the int8 runtime quantises activations too, so small differences are expected)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    model.eval()
    worst = 0.0
    for q, c in [("Who built the bridge?", "The bridge was built in 1889 by Gustave Eiffel's company."),
                 ("How many people live there?", "About 400,000 people lived in the city in 2010, up from 300,000.")]:
        enc = tokenizer(q, c, return_tensors="np")
        cm = np.array([[1 if s == 1 else 0 for s in enc.sequence_ids(0)]])
        feed = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "token_type_ids": enc["token_type_ids"], "context_mask": cm}
        ref = sess.run(None, {k: v.astype(np.int64) for k, v in feed.items()})[0][0]
        got = model(*(torch.from_numpy(feed[k].astype(np.int64)) for k in
                      ("input_ids", "attention_mask", "token_type_ids", "context_mask")))[0][0].numpy()
        ctx = cm[0] == 1
        worst = max(worst, float(np.abs(ref[ctx] - got[ctx]).max()))
        if int(ref[ctx].argmax()) != int(got[ctx].argmax()):
            raise SystemExit(f"the weights read back from {model_dir} do not reproduce its answers ({q!r})")
    model.train()
    return worst


# ----------------------------------------------------------------------------- groups


def cut_passages(text: str, chunk_chars: int) -> list[tuple[int, int]]:
    """``text`` cut into runs of whole sentences of at most ``chunk_chars`` (a longer sentence
    alone), the way the index cuts documents into chunks."""
    bounds, start = [], 0
    for m in SENTENCE_END.finditer(text):
        bounds.append((start, m.start()))
        start = m.end()
    bounds.append((start, len(text)))
    out: list[tuple[int, int]] = []
    for s, e in bounds:
        if out and e - out[-1][0] <= chunk_chars:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


@dataclass(frozen=True)
class Group:
    """One question and the passages read for it; ``gold`` indexes the one that answers, or -1."""

    question: str
    passages: tuple[Example, ...]
    gold: int
    kind: str  # positive | missed | swapped | adversarial


class Article:
    """An article's passages and their word sets, for ranking distractors like lexical retrieval."""

    def __init__(self, art: dict, chunk_chars: int) -> None:
        self.passages: list[tuple[int, str, int]] = []  # (paragraph, text, start in paragraph)
        for pi, para in enumerate(art["paragraphs"]):
            ctx = para["context"]
            for s, e in cut_passages(ctx, chunk_chars):
                self.passages.append((pi, ctx[s:e], s))
        self.words = [set(_words(t)) for _, t, _ in self.passages]
        self.idf = _idf([t for _, t, _ in self.passages])
        self.pool = sorted({m.group() for _, t, _ in self.passages for m in NAME_OR_NUMBER.finditer(t) if m.start() > 0})

    def ranked(self, question: str, exclude: set[int], answer: str) -> list[int]:
        q = set(_words(question))
        scores = [(sum(self.idf.get(w, 0.0) for w in q & ws), i) for i, ws in enumerate(self.words)
                  if i not in exclude and not (answer and answer.lower() in self.passages[i][1].lower())]
        return [i for s, i in sorted(scores, key=lambda x: (-x[0], x[1])) if s > 0]

    def holding(self, paragraph: int, start: int, text: str) -> int | None:
        for i, (pi, t, s) in enumerate(self.passages):
            if pi == paragraph and s <= start and start + len(text) <= s + len(t):
                return i
        return None


def question_groups(art: dict, chunk_chars: int, k: int, rng: random.Random, *, p_missed: float, p_swap: float,
                    adversarial: bool = False) -> list[Group]:
    a = Article(art, chunk_chars)
    out: list[Group] = []
    for pi, para in enumerate(art["paragraphs"]):
        for qa in para["qas"]:
            q = qa["question"]
            own = [i for i, (p, _, _) in enumerate(a.passages) if p == pi]
            if qa.get("is_impossible"):
                if adversarial:
                    picks = own[:1] + a.ranked(q, set(own[:1]), "")[: k - 1]
                    out.append(Group(q, tuple(Example(q, a.passages[i][1], -1, "", "adversarial") for i in picks), -1, "adversarial"))
                continue
            ans = qa["answers"][0]
            g = a.holding(pi, ans["answer_start"], ans["text"])
            if g is None:
                continue  # the answer crosses a passage boundary
            others = a.ranked(q, {g}, ans["text"])[:k]
            gold_ex = Example(q, a.passages[g][1], ans["answer_start"] - a.passages[g][2], ans["text"], "positive")
            picks = [gold_ex] + [Example(q, a.passages[i][1], -1, "", "distractor") for i in others[: k - 1]]
            order = list(range(len(picks)))
            rng.shuffle(order)
            out.append(Group(q, tuple(picks[i] for i in order), order.index(0), "positive"))
            if rng.random() < p_missed and len(others) >= 2:
                out.append(Group(q, tuple(Example(q, a.passages[i][1], -1, "", "distractor") for i in others[:k]), -1, "missed"))
            if rng.random() < p_swap:
                swapped = _swap(q, a.passages[g][1], a.pool, rng)
                if swapped is not None:
                    ids = [g] + a.ranked(swapped, {g}, "")[: k - 1]
                    out.append(Group(swapped, tuple(Example(swapped, a.passages[i][1], -1, "", "swapped") for i in ids), -1, "swapped"))
    return out


def encode_group(tokenizer, group: Group, max_len: int, rng: random.Random) -> list[dict] | None:
    feats = []
    for j, ex in enumerate(group.passages):
        f = encode(tokenizer, ex, max_len, rng)
        if f is None:
            if j == group.gold:
                return None
            continue
        f["group_gold"] = int(j == group.gold)
        feats.append(f)
    return feats or None


# ----------------------------------------------------------------------------- loss


def shared_loss(start: torch.Tensor, end: torch.Tensor, b: dict[str, torch.Tensor], sizes: list[int]) -> torch.Tensor:
    """One softmax per group over all its windows' allowed positions: the gold span's start and
    end, or (no answer in the group) any window's [CLS]."""
    losses = []
    row = 0
    for n in sizes:
        s, e = start[row:row + n], end[row:row + n]
        gold = torch.nonzero(b["group_gold"][row:row + n]).flatten()
        for logits, key in ((s, "start"), (e, "end")):
            flat = logits.reshape(-1)
            total = torch.logsumexp(flat, 0)
            if gold.numel():
                w = int(gold[0])
                target = logits[w, b[key][row + w]]
            else:
                target = torch.logsumexp(logits[:, 0], 0)
            losses.append(total - target)
        row += n
    return torch.stack(losses).mean()


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: Reader, tokenizer, groups: list[Group], max_len: int) -> dict[str, float]:
    """Question-level: the best span over all the group's windows (by margin), its F1 on groups
    with an answer, and the share of groups without one refused when 10% of those with one are."""
    model.eval()
    bf16 = bf16_native()
    rows = []
    for g in groups:
        best_text, best_margin, best_conf = "", -1e9, 0.0
        for ex in g.passages:
            enc = tokenizer(g.question, ex.context, truncation="only_second", max_length=max_len, return_offsets_mapping=True,
                            return_tensors="pt")
            offsets = enc.pop("offset_mapping")[0]
            cm = torch.tensor([[1 if s == 1 else 0 for s in enc.sequence_ids(0)]])
            with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=bf16):
                st, en, has = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], cm)
            a, b, margin = best_span(st[0].float(), en[0].float(), cm[0])
            conf = confidence(margin, float(torch.sigmoid(has.float())[0]))  # as rag ask weighs the two
            if margin > best_margin:
                best_margin, best_conf = margin, conf
                best_text = ex.context[int(offsets[a][0]):int(offsets[b][1])]
        gold = g.passages[g.gold].answer_text if g.gold >= 0 else ""
        rows.append((g.gold >= 0, best_text, gold, best_margin, best_conf))
    model.train()
    pos = [r for r in rows if r[0]]
    neg = [r for r in rows if not r[0]]
    out = {"f1": round(float(np.mean([f1_score(r[1], [r[2]]) for r in pos])), 4)}
    for name, col in (("margin", 3), ("confidence", 4)):
        thr = float(np.quantile([r[col] for r in pos], 0.10))
        out[f"refused_at10_{name}"] = round(float(np.mean([r[col] < thr for r in neg])), 4)
    return out


# ----------------------------------------------------------------------------- training


def build_groups(args: argparse.Namespace) -> tuple[list[Group], list[Group]]:
    rng = random.Random(args.seed)
    articles = load_squad(Path(args.data))
    order = list(range(len(articles)))
    random.Random(13).shuffle(order)  # train_reader.py's seed: the same 16 articles stay held out
    held = [articles[i] for i in order[:HELD_OUT_TRAIN_ARTICLES]]
    used = [articles[i] for i in order[HELD_OUT_TRAIN_ARTICLES:]]
    groups: list[Group] = []
    for art in used:
        groups += question_groups(art, args.chunk_chars, args.passages, rng, p_missed=args.p_missed, p_swap=args.p_swap)
    if args.slice:
        sl = load_squad(Path(args.slice))
        train_titles, _ = split_slice_titles([a["title"] for a in sl])
        for art in sl:
            if art["title"] in train_titles:
                groups += question_groups(art, args.chunk_chars, args.passages, rng, p_missed=args.p_missed,
                                          p_swap=0.0, adversarial=True) * args.slice_repeat
    rng.shuffle(groups)
    dev_rng = random.Random(args.seed + 1)
    dev = [g for art in held for g in question_groups(art, args.chunk_chars, args.passages, dev_rng, p_missed=0.5, p_swap=0.3)]
    dev_rng.shuffle(dev)
    return groups[: args.groups], dev[: args.dev_size]


def train_only_top(model: Reader, layers: int) -> int:
    """Freeze the embeddings and every encoder layer below the top ``layers`` (the heads always
    train): a fine-tune that recalibrates the heads across passages without moving what the
    lower layers learned. Returns the number of parameters left to train."""
    blocks = model.encoder.encoder.layer
    if layers < len(blocks):
        kept = {id(p) for block in blocks[len(blocks) - max(0, layers):] for p in block.parameters()}
        for p in model.encoder.parameters():  # the embeddings, the lower layers, the unused pooler
            if id(p) not in kept:
                p.requires_grad = False
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)
    out_dir = Path(args.cache)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt, curve = out_dir / "checkpoint.pt", out_dir / "curve.jsonl"
    tokenizer = AutoTokenizer.from_pretrained(args.backbone)
    groups, dev = build_groups(args)
    kinds: dict[str, int] = {}
    for g in groups:
        kinds[g.kind] = kinds.get(g.kind, 0) + 1
    logger.info("groups: %d %s; dev %d", len(groups), kinds, len(dev))

    model = build_model(args.backbone)
    model.load_state_dict(state_from_onnx(Path(args.start), model), strict=False)
    logger.info("start weights from %s; largest start-logit difference against ONNX Runtime %.3f",
                args.start, check_against_onnx(model, tokenizer, Path(args.start)))
    trained = train_only_top(model, args.train_layers)
    logger.info("training the heads and the top %d encoder layer(s): %d parameters", args.train_layers, trained)
    steps = math.ceil(len(groups) / args.batch)
    params, opt, sched = optimiser(model, args.lr, steps)
    step = 0
    if ckpt.exists() and not args.restart:
        step = load_checkpoint(ckpt, model, opt, sched)
        logger.info("resumed at step %d of %d", step, steps)
    elif args.eval_every:
        row = {"step": 0, "of": steps, **evaluate(model, tokenizer, dev, args.max_len)}
        logger.info("%s", row)
        with curve.open("a") as f:
            f.write(json.dumps(row) + "\n")
    model.train()
    bce, ce = nn.BCEWithLogitsLoss(), nn.CrossEntropyLoss()
    bf16 = bf16_native() and not args.fp32
    logger.info("%s", "bf16 autocast" if bf16 else "fp32 (this CPU has no native bf16)" if not args.fp32 else "fp32")
    t0, last_ckpt, seen, sums = time.time(), time.time(), 0, [0.0, 0.0]
    while step < steps:
        batch_rng = random.Random(args.seed * 1_000_003 + step)
        feats, sizes = [], []
        for g in groups[step * args.batch:(step + 1) * args.batch]:
            f = encode_group(tokenizer, g, args.max_len, batch_rng)
            if f:
                feats += f
                sizes.append(len(f))
        if not feats:
            step += 1
            continue
        b = collate(feats)
        b["group_gold"] = torch.tensor([f["group_gold"] for f in feats])
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=bf16):
            start, end, has = model(b["input_ids"], b["attention_mask"], b["token_type_ids"], b["context_mask"])
        window = (ce(start, b["start"]) + ce(end, b["end"])) / 2 + args.has_weight * bce(has, b["has_answer"].float())
        shared = shared_loss(start, end, b, sizes)
        loss = window + args.shared_weight * shared
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seen += len(sizes)
        sums[0] += window.item()
        sums[1] += shared.item()
        if step % args.log_every == 0 or step == steps:
            row = {"step": step, "of": steps, "window_loss": round(sums[0] / args.log_every, 4),
                   "shared_loss": round(sums[1] / args.log_every, 4), "lr": sched.get_last_lr()[0],
                   "groups_per_s": round(seen / (time.time() - t0), 2), "elapsed_s": round(time.time() - t0)}
            sums = [0.0, 0.0]
            if args.eval_every and (step % args.eval_every == 0 or step == steps):
                row.update(evaluate(model, tokenizer, dev, args.max_len))
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="SQuAD 1.1 train JSON (.json or .json.gz)")
    ap.add_argument("--slice", help="SQuAD 2.0 public slice: its training-use half's questions join the groups")
    ap.add_argument("--start", default=str(SHIPPED), help="reader model folder whose int8 weights are the starting point")
    ap.add_argument("--backbone", default=None, help="the tokenizer and architecture; default: the packaged all-MiniLM-L6-v2")
    ap.add_argument("--cache", default=str(OPEN_CACHE), help="checkpoints and learning curve (outside the checkout)")
    ap.add_argument("--groups", type=int, default=12_000, help="question groups trained on")
    ap.add_argument("--passages", type=int, default=4, help="passages per group (the gold one and the most similar others)")
    ap.add_argument("--chunk-chars", type=int, default=500, help="passage length, as the index's chunk_chars")
    ap.add_argument("--batch", type=int, default=8, help="groups per step")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--max-len", type=int, default=160)
    ap.add_argument("--p-missed", type=float, default=0.3, help="share of questions also trained without their gold passage")
    ap.add_argument("--p-swap", type=float, default=0.1)
    ap.add_argument("--slice-repeat", type=int, default=2)
    ap.add_argument("--has-weight", type=float, default=0.5)
    ap.add_argument("--shared-weight", type=float, default=1.0)
    ap.add_argument("--dev-size", type=int, default=300)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--ckpt-every-s", type=float, default=300)
    ap.add_argument("--train-layers", type=int, default=6, help="encoder layers trained, from the top (0: the heads only)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast even where the CPU has native bf16")
    train(prepare_run(ap.parse_args(argv)))


if __name__ == "__main__":
    main()
