"""Pure HTML rendering for the chat UI: every piece of user or document text goes through ``text``.

Nothing here imports gradio, so these functions are unit-tested without a browser. The only
markup in the output is markup written in this module (answer layout, citation links, the
``<mark>`` around a cited span); text from documents, questions and answers is escaped with
``html.escape`` and never interpreted as HTML.

Citation links are ``<a class="cite" href="#cite-<turn>-<id>">[id]</a>``: the chat's sanitiser
keeps ``class`` and ``href`` (it strips ``data-*``), and the page script in ``ui.assets`` turns a
click on one into a request for the source panel.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rag.domain import DocumentInfo
from rag.records import Answer, Citation

_MARKER = re.compile(r"\[(\d+)\]")
_CITE_KEY = re.compile(r"^(\d+)-(\d+)$")

_WIDE = ' class="rag-wide"'

# Characters of document text shown on each side of a cited span in the source panel.
CONTEXT_CHARS = 6000


def text(value: object) -> str:
    """``value`` as HTML text: ``<``, ``>``, ``&`` and both quotes escaped; nothing else changed."""
    return html.escape(str(value), quote=True)


def multiline(value: str) -> str:
    """Escaped text whose newlines become ``<br>`` (for chat bubbles, which are HTML)."""
    return "<br>".join(text(line) for line in value.split("\n"))


def cite_key(turn: int, citation_id: int) -> str:
    """The key a citation link carries: ``"<turn>-<id>"`` (turn counts from 0 per conversation)."""
    return f"{turn}-{citation_id}"


def parse_cite_key(key: str) -> tuple[int, int] | None:
    """``(turn, id)`` from a key made by ``cite_key``, or None for anything else."""
    m = _CITE_KEY.match(key.strip()) if isinstance(key, str) else None
    return (int(m.group(1)), int(m.group(2))) if m else None


def cite_link(turn: int, citation_id: int, label: str | None = None) -> str:
    """A clickable citation marker; ``label`` (escaped) defaults to ``[id]``."""
    shown = text(label) if label is not None else f"[{citation_id}]"
    return f'<a class="cite" href="#cite-{cite_key(turn, citation_id)}">{shown}</a>'


def question_html(question: str) -> str:
    """A user's question as a chat bubble's HTML (text only)."""
    return f'<div class="rag-question">{multiline(question)}</div>'


def pending_html(partial: str) -> str:
    """The answer while it streams in: plain text, markers not yet linked."""
    return f'<div class="rag-answer rag-streaming"><div class="rag-text">{multiline(partial)}</div></div>'


def linked_answer_text(answer: str, turn: int, known_ids: set[int]) -> str:
    """``answer`` escaped, with each ``[n]`` whose id is a citation turned into a link."""
    out: list[str] = []
    pos = 0
    for m in _MARKER.finditer(answer):
        out.append(multiline(answer[pos : m.start()]))
        n = int(m.group(1))
        out.append(cite_link(turn, n) if n in known_ids else text(m.group(0)))
        pos = m.end()
    out.append(multiline(answer[pos:]))
    return "".join(out)


def clip(value: str, limit: int) -> str:
    """``value`` on one line, cut at a word boundary to at most ``limit`` characters plus "…"."""
    flat = " ".join(value.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0] if " " in flat[:limit] else flat[:limit]
    return cut.rstrip(",;:") + "…"


def _unique(citations: Iterable[Citation]) -> list[Citation]:
    seen: dict[int, Citation] = {}
    for c in citations:
        seen.setdefault(c.id, c)
    return [seen[k] for k in sorted(seen)]


def answer_html(answer: Answer, turn: int, titles: Mapping[str, str]) -> str:
    """The final answer bubble: searched question (if rewritten), linked text, source list."""
    citations = _unique(answer.citations)
    parts = ['<div class="rag-answer rag-refused">' if answer.refused else '<div class="rag-answer">']
    if answer.standalone_question.strip() != answer.question.strip():
        parts.append(
            '<div class="rag-searched"><span class="rag-label">Searched for</span> '
            f'<span class="rag-standalone">{text(answer.standalone_question)}</span></div>'
        )
    parts.append(f'<div class="rag-text">{linked_answer_text(answer.answer, turn, {c.id for c in citations})}</div>')
    if citations:
        parts.append('<div class="rag-sources"><div class="rag-label">Sources</div><ol class="rag-source-list">')
        listed: set[str] = set()
        for c in citations:
            title = clip(titles.get(c.source) or c.source, 60)
            document = "same document" if c.source in listed else f"{title} · {c.source}"
            listed.add(c.source)
            where = f"{document} · characters {c.start:,}–{c.end:,}"
            parts.append(
                f'<li>{cite_link(turn, c.id)}<span class="rag-source-item">'
                f"{cite_link(turn, c.id, '“' + clip(c.quote, 110) + '”')}"
                f'<span class="rag-where">{text(where)}</span></span></li>'
            )
        parts.append("</ol></div>")
    meta = [answer.answerer]
    if "total" in answer.timings_ms:
        meta.append(f"{answer.timings_ms['total']:.0f} ms")
    parts.append(f'<div class="rag-meta">{text(" · ".join(meta))}</div></div>')
    return "".join(parts)


def error_html(message: str) -> str:
    """A one-line error shown in place of an answer."""
    return f'<div class="rag-answer rag-error"><div class="rag-text">{text(message)}</div></div>'


EMPTY_SOURCE_HTML = (
    '<div class="rag-source rag-source-empty"><div class="rag-source-hint">'
    "Click a citation such as <span class=\"rag-fake-cite\">[1]</span> in an answer to see the "
    "passage highlighted in its document.</div></div>"
)


@dataclass(frozen=True)
class SourceView:
    """What the source panel shows for one citation."""

    citation: Citation
    turn: int
    document: DocumentInfo | None
    document_text: str | None


def source_html(view: SourceView, context_chars: int = CONTEXT_CHARS) -> str:
    """The source panel: document header and its text with the cited span in ``<mark>``."""
    c = view.citation
    doc = view.document
    title = doc.title if doc and doc.title else c.source
    meta = [
        ("Date", doc.date if doc and doc.date else "unknown"),
        ("Cited as", f"[{c.id}] in answer {view.turn + 1}"),
        ("Source", c.source),
        ("Characters", f"{c.start:,}–{c.end:,}" + (f" of {len(view.document_text):,}" if view.document_text else "")),
    ]
    head = (
        '<div class="rag-source-head"><div class="rag-label rag-source-label">Source</div>'
        f'<div class="rag-source-title">{text(title)}</div><dl class="rag-source-meta">'
        + "".join(f"<div{_WIDE if k in ('Source', 'Characters') else ''}><dt>{text(k)}</dt><dd>{text(v)}</dd></div>" for k, v in meta)
        + "</dl></div>"
    )
    body = view.document_text
    mark = f'<mark class="cite-mark" id="cite-mark" data-key="{cite_key(view.turn, c.id)}">'
    if body is None or body[c.start : c.end] != c.quote:
        note = (
            "This document is no longer in the index; showing the quoted text."
            if body is None
            else "This document has changed since the answer; showing the quoted text."
        )
        return (
            f'<div class="rag-source">{head}<div class="rag-source-note">{text(note)}</div>'
            f'<div class="rag-source-text">{mark}{text(c.quote)}</mark></div></div>'
        )
    lo = max(0, c.start - context_chars)
    hi = min(len(body), c.end + context_chars)
    before = ("…" if lo > 0 else "") + text(body[lo : c.start])
    after = text(body[c.end : hi]) + ("…" if hi < len(body) else "")
    return (
        f'<div class="rag-source">{head}<div class="rag-source-text">'
        f"{before}{mark}{text(c.quote)}</mark>{after}</div></div>"
    )


def find_citation(turns: Sequence[Mapping[str, object]], key: str) -> tuple[int, Citation] | None:
    """The citation a key names in a conversation's turns (each ``{"answer": Answer-dict}``)."""
    parsed = parse_cite_key(key)
    if parsed is None:
        return None
    turn, cid = parsed
    if not 0 <= turn < len(turns):
        return None
    record = turns[turn].get("answer")
    citations = record.get("citations", []) if isinstance(record, Mapping) else []
    for raw in citations:
        if isinstance(raw, Mapping) and raw.get("id") == cid:
            return turn, Citation.model_validate(raw)
    return None


@dataclass(frozen=True)
class FileResult:
    """What happened to one uploaded file."""

    name: str
    status: str  # "added", "updated", "unchanged", "refused", "skipped", "failed"
    detail: str = ""


def upload_results_html(results: Sequence[FileResult]) -> str:
    """A per-file result table for an upload."""
    if not results:
        return '<div class="rag-upload-results rag-muted">No files chosen.</div>'
    rows = "".join(
        f'<tr class="rag-status-{text(r.status)}"><td class="rag-file">{text(r.name)}</td>'
        f'<td class="rag-status">{text(r.status)}</td><td>{text(r.detail)}</td></tr>'
        for r in results
    )
    return (
        '<table class="rag-upload-results"><thead><tr><th>File</th><th>Result</th><th>Details</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )


def index_summary_html(documents: Sequence[DocumentInfo]) -> str:
    """A one-line summary of the index for the page header."""
    chunks = sum(d.n_chunks for d in documents)
    noun = "document" if len(documents) == 1 else "documents"
    return f'<div class="rag-summary">{len(documents):,} {noun} · {chunks:,} passages indexed</div>'


def document_rows(documents: Sequence[DocumentInfo]) -> list[list[object]]:
    """Rows for the corpus table (plain values; the table renders them as text)."""
    return [[d.title, d.date or "", d.source, d.n_chunks, d.n_chars] for d in documents]


DOCUMENT_HEADERS = ["Title", "Date", "Source", "Chunks", "Characters"]
