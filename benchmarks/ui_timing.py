"""How soon the chat shows an answer, measured in Chromium from the Enter key, for 1 and 16 users.

    .venv/bin/python benchmarks/ui_timing.py [--index DIR] [--sessions 1,16] [--rounds 5] [--json PATH]

The app is served in this process on 127.0.0.1 (a free port) over ``--index``, or over a
temporary index of corpus/. Debian's ``/usr/bin/chromium`` (driven by playwright) opens one
browser context per session, 1400x900. Each round every session starts a new conversation,
types one question of the seed gold set (evals/gold/seed.jsonl, first turns only, a different
one per session and round) and presses Enter; all sessions press Enter within a few
milliseconds of each other. A script in each page times, from that keydown
(``performance.now()``):

- first text: the chat shows the question (with its "searching" bubble);
- whole answer: the final answer bubble is in the chat;
- assistant: the assistant's own time for that answer (``timings_ms["total"]``, as printed in
  the bubble's footer), so that whole answer minus assistant is what the UI adds.

Times are taken when the page's DOM changes (a MutationObserver), before the next paint.
One warm-up question per session is not counted. Prints p50/p95/max per figure and session
count; ``--json`` also writes every measurement. Numbers depend on the machine and its load:
the benchmark asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from rag.assistant import Assistant  # noqa: E402
from rag.config import Settings  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
FIGURES = ("first_text_ms", "whole_answer_ms", "assistant_ms", "ui_added_ms")

# Installed in each page before each question: times the next Enter's answer (see the docstring).
TIMER_JS = r"""
() => {
  const chat = document.querySelector('#rag-chat');
  const box = document.querySelector('#rag-question textarea');
  const count = (sel) => chat.querySelectorAll(sel).length;
  const questions = count('.rag-question');
  const answers = count('.rag-answer:not(.rag-streaming)');
  const t = window.__timing = {start: null, first: null, whole: null, footer: null};
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && t.start === null) t.start = performance.now();
  }, {capture: true, once: true});
  const observer = new MutationObserver(() => {
    if (t.start === null) return;
    const now = performance.now();
    if (t.first === null && count('.rag-question') > questions) t.first = now;
    if (t.whole === null && count('.rag-answer:not(.rag-streaming)') > answers) {
      t.whole = now;
      const metas = chat.querySelectorAll('.rag-answer:not(.rag-streaming) .rag-meta');
      t.footer = metas[metas.length - 1].textContent;
      observer.disconnect();
    }
  });
  observer.observe(chat, {subtree: true, childList: true, characterData: true});
}
"""


def questions(gold: Path) -> list[str]:
    """The first-turn questions of the gold set (a follow-up needs its conversation)."""
    items = [json.loads(line) for line in gold.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [item["question"] for item in items if not item.get("history")]


def footer_ms(footer: str) -> float:
    """The assistant's own time from an answer's footer, e.g. ``"extractive · 28 ms"`` -> 28."""
    m = re.search(r"(\d+) ms$", footer.strip())
    if m is None:
        raise ValueError(f"no time in the answer's footer {footer!r}")
    return float(m.group(1))


def summarise(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """p50, p95 and max of each figure over ``rows``."""
    out = {}
    for name in FIGURES:
        values = sorted(r[name] for r in rows)
        p95 = statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]
        out[name] = {"p50": round(statistics.median(values), 1), "p95": round(p95, 1), "max": round(values[-1], 1)}
    return out


def ask_all(pages: list[Any], texts: list[str], timeout_ms: float) -> list[dict[str, float]]:
    """Start a new conversation on every page, then press Enter on each; wait for every answer."""
    for page in pages:
        page.locator("#rag-new").click()
    for page, text in zip(pages, texts, strict=True):
        page.locator("#rag-chat .rag-question").first.wait_for(state="detached")
        page.locator("#rag-question textarea").fill(text)
        page.evaluate(TIMER_JS)
    for page in pages:
        page.locator("#rag-question textarea").press("Enter")
    rows = []
    for page in pages:
        page.wait_for_function("() => window.__timing.whole !== null", timeout=timeout_ms)
        t = page.evaluate("window.__timing")
        whole, assistant = t["whole"] - t["start"], footer_ms(t["footer"])
        rows.append({
            "first_text_ms": round(t["first"] - t["start"], 1),
            "whole_answer_ms": round(whole, 1),
            "assistant_ms": assistant,
            "ui_added_ms": round(whole - assistant, 1),
        })
    return rows


def measure(url: str, sessions: int, rounds: int, pool: list[str], timeout_ms: float) -> dict[str, Any]:
    """``rounds`` questions on each of ``sessions`` browser sessions at once (one warm-up round first)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = []
            for _ in range(sessions):
                page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
                page.set_default_timeout(timeout_ms)
                page.goto(url)
                page.locator("#rag-question textarea").wait_for()
                pages.append(page)
            ask_all(pages, [pool[i % len(pool)] for i in range(sessions)], timeout_ms)  # warm-up
            rows: list[dict[str, float]] = []
            for r in range(rounds):
                rows += ask_all(pages, [pool[(1 + r * sessions + i) % len(pool)] for i in range(sessions)], timeout_ms)
        finally:
            browser.close()
    return {"sessions": sessions, "answers": len(rows), "summary": summarise(rows), "rows": rows}


def print_result(result: dict[str, Any]) -> None:
    s = result["summary"]
    print(f"{result['sessions']} session(s), {result['answers']} answers (ms, p50 / p95 / max):")
    labels = {
        "first_text_ms": "first text (question shown)",
        "whole_answer_ms": "whole answer",
        "assistant_ms": "assistant's own total",
        "ui_added_ms": "whole answer - assistant",
    }
    for name, label in labels.items():
        print(f"  {label:<30} {s[name]['p50']:>7.0f} / {s[name]['p95']:>7.0f} / {s[name]['max']:>7.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="an existing index folder (default: ingest corpus/ into a temp one)")
    parser.add_argument("--gold", type=Path, default=ROOT / "evals" / "gold" / "seed.jsonl")
    parser.add_argument("--sessions", default="1,16", help="comma-separated session counts (default 1,16)")
    parser.add_argument("--rounds", type=int, default=5, help="timed questions per session (default 5)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one answer")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args()
    counts = [int(n) for n in args.sessions.split(",") if n.strip()]
    if not counts or min(counts) < 1 or args.rounds < 1:
        parser.error(f"--sessions ({args.sessions!r}) and --rounds ({args.rounds}) must be positive")

    from ui.app import build_app, launch

    workdir = Path(tempfile.mkdtemp(prefix="rag-bench-ui-"))
    try:
        index_dir = args.index or workdir / "index"
        settings = Settings(index_dir=index_dir, chroma_url=None, corpus_dir=ROOT / "corpus")
        settings = settings.with_overrides(ui={"host": "127.0.0.1", "port": 0})
        assistant = Assistant.open(settings=settings, create=args.index is None)
        if args.index is None:
            assistant.ingest([ROOT / "corpus"])
        blocks = build_app(assistant, settings)
        url = launch(blocks, settings, block=False)
        try:
            results = []
            for n in counts:
                results.append(measure(url, n, args.rounds, questions(args.gold), args.timeout * 1000))
                print_result(results[-1])
        finally:
            blocks.close()
            assistant.close()
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
