"""Quality figures for any system's answer records, computed with ``rag.evals.metrics``.

For every answerable gold item (the baselines cannot refuse, so unanswerable items are scored
only for this project's refusals):

- ``answer_in_cited``: a gold answer (SQuAD-normalised, whole words) occurs in the text shown to
  the reader as support: this project's citation quotes, a baseline's retrieved passages
  (``rag.evals.metrics`` ``answer_in_citation``; a refusal shows nothing);
- ``answer_in_retrieved``: the same over the retrieved passages (this project: the top 5 chunks
  handed to the answerer; for the baselines the same as ``answer_in_cited``);
- ``evidence_hit_rate``: some cited span overlaps a gold evidence span (offsets in the file text);
- ``cited_chars``: characters of cited text per answered question, i.e. what a reader must read
  to check the answer (lower is more precise); ``chars_per_found_answer`` divides all the cited
  characters by the number of answers found in them, so refusing cannot make it look better.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from rag.evals.gold import GoldItem, load_gold, locate_evidence
from rag.evals.metrics import aggregate, contains_answer, percentile, record_retrieved, score_item
from rag.evals.run import corpus_texts

SQUAD_JSON = ROOT / "evals" / "data" / "squad2-dev" / "squad2-dev-public.json"
SEED_GOLD = ROOT / "evals" / "gold" / "seed.jsonl"
SEED_CORPUS = ROOT / "corpus"


def prepare_squad(work: Path) -> tuple[Path, Path]:
    """The SQuAD slice as ``rag squad`` writes it: ``work/squad/corpus`` and ``gold.jsonl``."""
    from rag.evals.squad import convert_squad

    out = work / "squad"
    if not (out / "gold.jsonl").is_file() or not any((out / "corpus").glob("*.txt")):
        convert_squad(SQUAD_JSON, out, force=True)
    return out / "corpus", out / "gold.jsonl"


def sample(items: list[GoldItem], every: int) -> list[GoldItem]:
    """Every ``every``-th item in file order, starting with the first (deterministic)."""
    if every < 1:
        raise ValueError(f"sample step ({every}) must be at least 1")
    return items[::every]


def write_questions(items: list[GoldItem], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps({"id": item.id, "question": item.question, "history": item.history_dicts()}) + "\n")


def _chars(record: dict[str, Any]) -> int:
    return sum(len(str(c.get("quote", ""))) for c in record.get("citations") or [])


def score(records: list[dict[str, Any]], items: list[GoldItem], corpus: Path) -> dict[str, Any]:
    """The quality figures of one system's records (see the module doc)."""
    text_of = corpus_texts(corpus)
    by_id = {r["id"]: r for r in records}
    asked = [i for i in items if i.id in by_id]
    spans, problems = locate_evidence(asked, text_of)
    scores = [score_item(by_id[i.id], i, spans[i.id], text_of) for i in asked]
    metrics = aggregate(scores)
    answerable = [i for i in asked if not i.unanswerable]
    answered = [by_id[i.id] for i in answerable if not by_id[i.id].get("refused")]

    def in_retrieved(item: GoldItem) -> bool:
        record = by_id[item.id]
        texts = [(text_of(p.source) or "")[p.start : p.end] for p in record_retrieved(record)]
        return any(contains_answer(t, item.answers) for t in texts)

    found = sum(bool(s.answer_in_citation) for s in scores if s.answerable)
    cited = [_chars(r) for r in answered]
    all_cited = sum(_chars(by_id[i.id]) for i in answerable)
    retrieved_chars = [sum(p.end - p.start for p in record_retrieved(r)) for r in answered]
    unanswerable = [i for i in asked if i.unanswerable]
    return {
        "questions": len(asked),
        "answerable": len(answerable),
        "answer_in_cited": metrics["answer_in_citation"],
        "answer_in_retrieved": round(sum(map(in_retrieved, answerable)) / len(answerable), 6) if answerable else None,
        "evidence_hit_rate": metrics["evidence_hit_rate"],
        "citation_exactness": metrics["citation_exactness"],
        "cited_chars_mean": round(sum(cited) / len(cited), 1) if cited else None,
        "cited_chars_p50": percentile(cited, 50),
        "chars_per_found_answer": round(all_cited / found, 1) if found else None,
        "retrieved_chars_mean": round(sum(retrieved_chars) / len(retrieved_chars), 1) if retrieved_chars else None,
        "answered_share": round(len(answered) / len(answerable), 6) if answerable else None,
        "refusal_accuracy": (round(sum(bool(by_id[i.id].get("refused")) for i in unanswerable) / len(unanswerable), 6)
                             if unanswerable else None),
        "problems": problems[:10],
    }


def load_items(gold: Path) -> list[GoldItem]:
    return load_gold(gold).items
