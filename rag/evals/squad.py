"""SQuAD 2.0 JSON -> a corpus folder (one .txt per article) and a gold JSONL file.

Each article's paragraph contexts are joined with a blank line (``"\\n\\n"``), so an answer's
offset in the article is its paragraph's offset plus ``answer_start``, exactly.

Evidence, per distinct annotator answer position (duplicates dropped), is the first of these
whose *first occurrence* in the article is the answer's own place (the harness locates evidence
by first occurrence):

1. the sentence holding the whole answer (``kind: "sentence"``), from a plain rule-based
   splitter kept independent of the system's own chunker;
2. the answer text itself, when the answer crosses a sentence boundary (``kind: "answer"``);
3. the answer's paragraph, when the sentence or answer text also occurs earlier (``kind: "paragraph"``).

Unanswerable questions (``is_impossible``) become ``unanswerable: true`` with no answers or
evidence. Answers are the distinct annotator answer texts, in order.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import RagError, read_json_object
from rag.evals.normalize import normalize_answer

logger = logging.getLogger(__name__)

PARAGRAPH_SEPARATOR = "\n\n"
GOLD_FILE = "gold.jsonl"
CORPUS_DIR = "corpus"

# A boundary: end punctuation, optional closing quotes/brackets, white space, then something
# that can start a sentence. Abbreviations and initials before the period are excluded below.
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr gen col lt sgt capt gov sen rep rev prof inc ltd co corp vs etc mt no fig ca "
    "jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k e.g i.e a.d b.c".split()
)


class SquadError(RagError):
    """A SQuAD file cannot be read or converted."""


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` spans that cover ``text`` and split it at sentence boundaries.

    >>> sentence_spans("Mr. Smith came. He left.")
    [(0, 16), (16, 24)]
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        word = text[:m.start()].rsplit(None, 1)[-1] if text[:m.start()].strip() else ""
        word = word.lstrip("\"'“‘([").lower()
        if word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", word) or re.fullmatch(r"(?:[a-z]\.)+[a-z]", word):
            continue  # "Mr. Smith", "J. R. R. Tolkien", "U.S. Army": not a sentence end
        spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(text)))
    return spans


def evidence_for(article: str, paragraph: tuple[int, int], start: int, end: int) -> tuple[str, str] | None:
    """The evidence (kind, quote) for the answer at ``article[start:end]``; see the module doc."""
    p_start, p_end = paragraph
    candidates: list[tuple[str, int, int]] = []
    for s, e in sentence_spans(article[p_start:p_end]):
        piece = article[p_start + s : p_start + e]
        s_start = p_start + s + len(piece) - len(piece.lstrip())
        s_end = p_start + s + len(piece.rstrip())
        if s_start <= start and end <= s_end:
            candidates.append(("sentence", s_start, s_end))
            break
    else:
        candidates.append(("answer", start, end))
    candidates.append(("paragraph", p_start, p_end))
    for kind, s, e in candidates:
        if article.find(article[s:e]) == s:
            return kind, article[s:e]
    return None


@dataclass
class ConversionReport:
    """What ``convert_squad`` wrote."""

    corpus_dir: Path
    gold_path: Path
    articles: int = 0
    questions: int = 0
    unanswerable: int = 0
    evidence_kinds: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)


def _file_name(index: int, title: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", title).strip("._") or "article"
    return f"{index:02d}_{safe}.txt"


def _load(path: Path) -> list[dict[str, Any]]:
    articles = read_json_object(path, "SQuAD file", SquadError).get("data")
    if not isinstance(articles, list) or not articles:
        raise SquadError(f"SQuAD file {path} has no 'data' list of articles")
    return articles


def _gold_item(qa: dict[str, Any], article: str, source: str, paragraph: tuple[int, int]) -> dict[str, Any]:
    """The gold record of one SQuAD question whose paragraph spans ``paragraph`` of the article."""
    item: dict[str, Any] = {"id": str(qa["id"]), "question": str(qa["question"]).strip(), "answers": [],
                            "evidence": [], "unanswerable": bool(qa.get("is_impossible")), "history": []}
    if item["unanswerable"]:
        return item
    seen_quotes: set[str] = set()
    for ans in qa.get("answers") or []:
        text = str(ans["text"])
        start = paragraph[0] + int(ans["answer_start"])
        if article[start : start + len(text)] != text:
            raise SquadError(f"question {qa['id']}: answer {text!r} is not at answer_start {ans['answer_start']}")
        if text not in item["answers"] and normalize_answer(text):
            item["answers"].append(text)
        found = evidence_for(article, paragraph, start, start + len(text))
        if found is not None and found[1] not in seen_quotes:
            seen_quotes.add(found[1])
            item["evidence"].append({"doc": source, "quote": found[1], "kind": found[0]})
    return item


def convert_squad(squad_json: Path, out_dir: Path, articles: int | None = None, force: bool = False) -> ConversionReport:
    """Write ``out_dir/corpus/NN_Title.txt`` per article and ``out_dir/gold.jsonl``.

    ``articles`` keeps only the first N articles; ``force`` replaces an existing corpus folder.
    """
    data = _load(squad_json)[:articles] if articles else _load(squad_json)
    corpus_dir, gold_path = out_dir / CORPUS_DIR, out_dir / GOLD_FILE
    if corpus_dir.exists() and any(corpus_dir.iterdir()):
        if not force:
            raise SquadError(f"{corpus_dir} is not empty; pass --force to replace it")
        shutil.rmtree(corpus_dir)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    report = ConversionReport(corpus_dir, gold_path)
    with gold_path.open("w", encoding="utf-8") as gold:
        for i, entry in enumerate(data, start=1):
            source = _file_name(i, str(entry.get("title") or f"article {i}"))
            contexts = [str(p["context"]) for p in entry.get("paragraphs") or []]
            article = PARAGRAPH_SEPARATOR.join(contexts)
            (corpus_dir / source).write_text(article, encoding="utf-8", newline="")
            report.articles += 1
            offset = 0
            for para, context in zip(entry.get("paragraphs") or [], contexts, strict=True):
                span = (offset, offset + len(context))
                for qa in para.get("qas") or []:
                    item = _gold_item(qa, article, source, span)
                    if not item["unanswerable"] and not item["answers"]:
                        report.skipped.append(f"{item['id']}: answerable but no usable answer text")
                        continue
                    report.evidence_kinds.update(e["kind"] for e in item["evidence"])
                    report.questions += 1
                    report.unanswerable += item["unanswerable"]
                    gold.write(json.dumps(item, ensure_ascii=False) + "\n")
                offset = span[1] + len(PARAGRAPH_SEPARATOR)
    logger.info("converted %d articles, %d questions into %s", report.articles, report.questions, out_dir)
    return report
