"""Open-book reader measurements: read once, then score answer policies from the saved proposals.

    .venv/bin/python benchmarks/reader_dev.py collect SQUAD.json --titles heldout --out build/reader_dev/slice_heldout
    .venv/bin/python benchmarks/reader_dev.py score build/reader_dev/slice_heldout

``collect`` indexes the chosen articles (one index per run folder, reused), retrieves for every
question exactly as ``Assistant.ask`` does, runs the reader's ``propose`` on the top passages and
saves every proposal with the gold answers. ``score`` replays the answer policy of
``ReaderAnswerer`` (kind check, confidence threshold, citations) over those proposals for a sweep
of thresholds and prints, per threshold: short-answer F1 on answerable questions (a refusal
scores 0), the share with a gold answer inside the cited text, characters cited, unanswerable
questions refused and answerable ones refused.

``--titles``: ``heldout`` / ``trainuse`` (the halves of the public SQuAD 2.0 slice, see
training/train_reader.py), ``squad11-heldout`` (the SQuAD 1.1 training articles the reader never
saw), or a comma-separated list of titles.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))

from rag.answering.passages import document_slice  # noqa: E402
from rag.answering.span_answerer import Choice, ReaderAnswerer, choose, confidence, first_indices, kinds_in  # noqa: E402
from rag.assistant import Assistant  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.domain import EMPTY_STATS  # noqa: E402
from rag.evals.gold import load_gold  # noqa: E402
from rag.evals.metrics import f1_score  # noqa: E402
from rag.evals.squad import convert_squad  # noqa: E402
from rag.text.answer_kinds import holds, requirement  # noqa: E402
from rag.text.normalize import normalize_answer  # noqa: E402


def choose_articles(data: list[dict], titles: str, seed: int = 13) -> list[dict]:
    from train_reader import HELD_OUT_TRAIN_ARTICLES, split_slice_titles

    if titles in ("heldout", "trainuse"):
        train, held = split_slice_titles([a["title"] for a in data])
        keep = held if titles == "heldout" else train
        return [a for a in data if a["title"] in keep]
    if titles == "squad11-heldout":
        order = list(range(len(data)))
        random.Random(seed).shuffle(order)
        return [data[i] for i in order[:HELD_OUT_TRAIN_ARTICLES]]
    wanted = set(titles.split(","))
    return [a for a in data if a["title"] in wanted]


def collect(args: argparse.Namespace) -> None:
    from train_reader import load_squad

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = choose_articles(load_squad(Path(args.squad)), args.titles)
    for art in data:  # SQuAD 1.1 has no is_impossible; the converter reads SQuAD 2.0's fields
        for p in art["paragraphs"]:
            for qa in p["qas"]:
                qa.setdefault("is_impossible", False)
    src = out / "squad.json"
    src.write_text(json.dumps({"version": "v2.0", "data": data}))
    if not (out / "gold.jsonl").exists():
        convert_squad(src, out, force=True)
    answer = {"answerer": "reader", "reader_model": args.model or ""} | dict(kv.split("=", 1) for kv in args.set)
    settings = Settings().with_overrides(index_dir=Path(args.index) if args.index else out / "index", answer=answer)
    assistant = Assistant.open(settings=settings, create=True)
    if not assistant.documents():
        assistant.ingest([out / "corpus"])
    answerer = ReaderAnswerer(settings.answer)
    gold = load_gold(out / "gold.jsonl").items
    if args.limit:
        random.Random(1).shuffle(gold)
        gold = gold[: args.limit]
    rows, times = [], []
    t0 = time.perf_counter()
    for n, item in enumerate(gold):
        q = item.question
        t = time.perf_counter()
        query = assistant.query(q)
        hits = assistant.retriever.retrieve(query)
        scored = answerer.sentences.score_sentences(q, hits, query.vector) if hits else []
        props = answerer.propose(q, hits, scored)
        times.append((time.perf_counter() - t) * 1000)
        # A hit's term statistics read the catalog lazily (unpicklable, and not needed to replay).
        props = [replace(p, hit=replace(p.hit, terms=EMPTY_STATS)) for p in props]
        rows.append({"id": item.id, "question": q, "answers": item.answers, "unanswerable": item.unanswerable,
                     "required": requirement(q), "proposals": props,
                     "ranks": {h.chunk.id: i for i, h in enumerate(hits)},
                     "hits": [(h.chunk.id, h.score, h.dense_score, h.lexical_rank) for h in hits],
                     "sentences": [(s.source, s.start, s.end, s.prob) for s in scored],
                     # retrieval's recall: a gold answer inside one of the passages read
                     "retrieved_answer": any(normalize_answer(a) in normalize_answer(h.chunk.text)
                                             for h in hits[: settings.answer.reader_passages] for a in item.answers)})
        if n % 200 == 0:
            print(f"{n}/{len(gold)} {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    with (out / "proposals.pkl").open("wb") as f:
        pickle.dump(rows, f)
    print(f"{len(rows)} questions; retrieve+read p50 {statistics.median(times):.0f} ms", file=sys.stderr)


PASSAGES = 5


NARROW = True
WHOLE = True


FIRST, STOP = 5, 1.0  # the cascade replayed: read FIRST passages, the rest only under STOP


def replay(row: dict, threshold: float, a: float, b: float, kind: bool, ratio: float, max_chars: int) -> Choice:
    """The answer policy over a row's saved proposals, as ``ReaderAnswerer`` would decide with
    these settings. Passages are read alone, so reading fewer of them is replayed exactly by
    leaving out the proposals of the passages not read."""
    props = [replace(p, confidence=confidence(p.span.margin, p.span.has_answer, a, b))
             for p in row["proposals"] if row["ranks"][p.hit.chunk.id] < PASSAGES]
    props.sort(key=lambda p: -p.confidence)
    required = row["required"] if kind else None
    if "hits" in row:  # chunk ids are doc:index
        ids = [h[0] for h in row["hits"][:PASSAGES]]
        first_ids = {ids[i] for i in first_indices([c.rsplit(":", 1)[0] for c in ids], FIRST)}
    else:
        first_ids = {c for c, rank in row["ranks"].items() if rank < FIRST}
    early = [p for p in props if p.hit.chunk.id in first_ids]
    lead = next((p for p in early if required is None or holds(required, kinds_in(p))), None)
    row["windows"] = min(FIRST, PASSAGES)
    if lead is not None and lead.confidence >= max(STOP, threshold):
        props = early
    else:
        row["windows"] = PASSAGES
    return choose(props, required, threshold, ratio, max_chars, 4, narrow=NARROW, whole=WHOLE)


def score(args: argparse.Namespace) -> None:
    global PASSAGES, NARROW, WHOLE, FIRST, STOP
    PASSAGES, NARROW, WHOLE = args.passages, not args.no_narrow, not args.no_whole
    FIRST, STOP = args.first, args.stop
    with (Path(args.run) / "proposals.pkl").open("rb") as f:
        rows = pickle.load(f)
    pos = [r for r in rows if not r["unanswerable"]]
    neg = [r for r in rows if r["unanswerable"]]
    print(f"{len(pos)} answerable, {len(neg)} unanswerable; a={args.a} b={args.b} kind={not args.no_kind} "
          f"runner-up ratio={args.ratio} max chars={args.max_chars} passages={args.passages}")
    recall = [r["retrieved_answer"] for r in pos if "retrieved_answer" in r]
    if recall:
        print(f"answerable questions with a gold answer in the passages read (retrieval's recall): {statistics.mean(recall):.3f}")
    print("threshold  F1(ans)  EM(ans)  in_cited  chars  refused_unans  false_refusals  passages_read")
    table = []
    for thr in [float(x) for x in args.thresholds.split(",")]:
        f1s, ems, inside, chars, fr = [], [], [], [], 0
        for r in pos:
            c = replay(r, thr, args.a, args.b, not args.no_kind, args.ratio, args.max_chars)
            fr += c.refused
            short = "" if c.refused else c.short[2]
            cited = " ".join(document_slice(h, s, e) for s, e, h in c.cited)
            f1s.append(0.0 if c.refused else f1_score(short, r["answers"]))
            ems.append(0.0 if c.refused else float(normalize_answer(short) in {normalize_answer(x) for x in r["answers"]}))
            inside.append(not c.refused and any(normalize_answer(x) in normalize_answer(cited) for x in r["answers"]))
            if not c.refused:
                chars.append(sum(e - s for s, e, _ in c.cited))
        refused_neg = sum(replay(r, thr, args.a, args.b, not args.no_kind, args.ratio, args.max_chars).refused for r in neg)
        windows = statistics.mean(r["windows"] for r in rows)
        table.append({"threshold": thr, "f1_answerable": round(statistics.mean(f1s), 4), "em_answerable": round(statistics.mean(ems), 4),
                      "answer_in_cited": round(statistics.mean(inside), 4), "cited_chars": round(statistics.mean(chars) if chars else 0.0, 1),
                      "unanswerable_refused": round(refused_neg / max(len(neg), 1), 4) if neg else None,
                      "false_refusals": round(fr / len(pos), 4), "passages_read": round(windows, 2)})
        print(f"{thr:9.2f}  {statistics.mean(f1s):.3f}    {statistics.mean(ems):.3f}    {statistics.mean(inside):.3f}"
              f"     {statistics.mean(chars) if chars else 0:5.0f}  {refused_neg / max(len(neg), 1):.3f}          {fr / len(pos):.3f}"
              f"           {windows:.2f}")
    if args.json:
        settings = {"passages": args.passages, "margin_scale": args.a, "has_scale": args.b, "kind_check": not args.no_kind,
                    "runner_up_ratio": args.ratio, "max_chars": args.max_chars, "first": args.first, "stop": args.stop,
                    "whole": not args.no_whole, "narrow": not args.no_narrow}
        Path(args.json).write_text(json.dumps({"run": str(args.run), "answerable": len(pos), "unanswerable": len(neg),
                                               "settings": settings, "table": table}, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("squad")
    c.add_argument("--titles", default="heldout")
    c.add_argument("--out", required=True)
    c.add_argument("--model", default="")
    c.add_argument("--limit", type=int, default=0)
    c.add_argument("--index", default="", help="an index of the same articles to reuse (read only)")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an answer setting, e.g. reader_read=chunks")
    s = sub.add_parser("score")
    s.add_argument("run")
    s.add_argument("--thresholds", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    s.add_argument("--a", type=float, default=0.5)
    s.add_argument("--b", type=float, default=0.5)
    s.add_argument("--no-kind", action="store_true")
    s.add_argument("--ratio", type=float, default=0.5, help="runner-up ratio (>= 1: same answer only)")
    s.add_argument("--max-chars", type=int, default=300)
    s.add_argument("--json", help="also write the table here")
    s.add_argument("--no-narrow", action="store_true", help="keep the reader's whole span as the short answer")
    s.add_argument("--no-whole", action="store_true", help="no qualifiers grown back onto a value (rag.text.qualifiers)")
    s.add_argument("--first", type=int, default=5, help="the cascade: passages read first (collect with reader_stop_confidence=1.0)")
    s.add_argument("--stop", type=float, default=1.0, help="the cascade: read on while no answer of the kind asked for reaches this")
    s.add_argument("--passages", type=int, default=5, help="replay reading only the top N passages (N <= what was collected)")
    args = ap.parse_args()
    collect(args) if args.cmd == "collect" else score(args)


if __name__ == "__main__":
    main()
