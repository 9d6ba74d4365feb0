"""Pure HTML rendering for the chat UI: every piece of user or document text goes through ``text``.

Nothing here imports gradio, so these functions are unit-tested without a browser. The only
markup in the output is markup written in this module (answer layout, citation links, the
``<mark>`` around a cited span); text from documents, questions and answers is escaped with
``html.escape`` and never interpreted as HTML.

Citation links are ``<a class="cite" href="#cite-<turn>-<id>">[id]</a>``: the chat's sanitiser
keeps ``class`` and ``href`` (it strips ``data-*``), and the page script in ``ui.assets`` turns a
click on one into a request for the source panel. A refusal's nearest passages link the same way
with an ``r`` before their number (``#cite-<turn>-r<n>``): they were searched but not cited.

The short answer leads the answer in bold, and where it lies in the cited sentence it is marked
again (``<mark class="rag-span">``), both in the answer and in the source panel; see
``short_answer_span``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from rag.domain import DocumentInfo
from rag.records import Answer, Citation, provenance_note

_MARKER = re.compile(r"\[(\d+)\]")
_CITE_KEY = re.compile(r"^(\d+)-(r?)(\d+)$")

_WIDE = ' class="rag-wide"'

# Characters of document text shown on each side of a cited span in the source panel.
CONTEXT_CHARS = 6000


def text(value: object) -> str:
    """``value`` as HTML text: ``<``, ``>``, ``&`` and both quotes escaped; nothing else changed."""
    return html.escape(str(value), quote=True)


def multiline(value: str) -> str:
    """Escaped text whose newlines become ``<br>`` (for chat bubbles, which are HTML)."""
    return "<br>".join(text(line) for line in value.split("\n"))


class CiteKey(NamedTuple):
    """What a citation link names: a citation of answer ``turn``, or (``nearest``) a passage a
    refusal considered."""

    turn: int
    id: int
    nearest: bool = False


def cite_key(turn: int, citation_id: int, nearest: bool = False) -> str:
    """The key a link carries: ``"<turn>-<id>"``, or ``"<turn>-r<n>"`` for a nearest passage.

    >>> cite_key(2, 1), cite_key(2, 1, nearest=True)
    ('2-1', '2-r1')
    """
    return f"{turn}-{'r' if nearest else ''}{citation_id}"


def parse_cite_key(key: str) -> CiteKey | None:
    """The ``CiteKey`` of a key made by ``cite_key``, or None for anything else."""
    m = _CITE_KEY.match(key.strip()) if isinstance(key, str) else None
    return CiteKey(int(m.group(1)), int(m.group(3)), m.group(2) == "r") if m else None


def cite_link(turn: int, citation_id: int, label: str | None = None, nearest: bool = False) -> str:
    """A clickable citation marker; ``label`` (escaped) defaults to ``[id]``."""
    shown = text(label) if label is not None else f"[{citation_id}]"
    return f'<a class="cite" href="#cite-{cite_key(turn, citation_id, nearest)}">{shown}</a>'


def question_html(question: str) -> str:
    """A user's question as a chat bubble's HTML (text only)."""
    return f'<div class="rag-question">{multiline(question)}</div>'


def pending_html(partial: str) -> str:
    """The answer while it streams in: plain text, markers not yet linked."""
    return f'<div class="rag-answer rag-streaming"><div class="rag-text">{multiline(partial)}</div></div>'


SEARCHING_HTML = (
    '<div class="rag-answer rag-streaming rag-searching"><div class="rag-text">'
    '<span class="rag-dots">Searching the documents</span></div></div>'
)


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


class ShortSpan(NamedTuple):
    """Where the short answer lies: in citation ``citation``, document offsets ``[start, end)``."""

    citation: int
    start: int
    end: int


def short_answer_span(answer: Answer) -> ShortSpan | None:
    """Where ``answer.short_answer`` lies inside one of its citations, or None.

    The reader's own position (``details["short_answer_span"]``: citation id and document
    offsets) is used when it names a citation, lies inside it and spells the short answer;
    otherwise the first occurrence of the short answer in the first cited quote holding it.
    """
    short = answer.short_answer
    if answer.refused or not short:
        return None
    citations = _unique(answer.citations)
    given = answer.details.get("short_answer_span")
    if isinstance(given, Mapping):
        c = next((c for c in citations if c.id == given.get("citation")), None)
        start, end = given.get("start"), given.get("end")
        if (
            c is not None
            and type(start) is int
            and type(end) is int
            and c.start <= start < end <= c.end
            and c.quote[start - c.start : end - c.start] == short
        ):
            return ShortSpan(c.id, start, end)
    for c in citations:
        at = c.quote.find(short)
        if at >= 0:
            return ShortSpan(c.id, c.start + at, c.start + at + len(short))
    return None


def _lead_and_body(answer: Answer) -> tuple[int | None, str]:
    """The citation id the answer text gives its short answer, and the text after that lead.

    The extractive answerer writes ``"<short> [n]. <sentence> [n] ..."``; the lead is shown
    apart, in bold, so the text keeps only the sentences. Other texts are kept whole.
    """
    short = answer.short_answer or ""
    m = re.match(rf"\s*{re.escape(short)}\s*\[(\d+)\]\.?\s*", answer.answer) if short else None
    if m is None or m.end() == len(answer.answer):
        return None, answer.answer
    return int(m.group(1)), answer.answer[m.end() :]


def _body_html(body: str, answer: Answer, span: ShortSpan | None, turn: int, ids: set[int]) -> str:
    """The answer text linked, with the short answer marked where its cited sentence is quoted."""
    quote = next((c.quote for c in answer.citations if span and c.id == span.citation), None)
    at = body.find(quote) if quote else -1
    if span is None or at < 0:
        return linked_answer_text(body, turn, ids)
    c = next(c for c in answer.citations if c.id == span.citation)
    a, b = at + span.start - c.start, at + span.end - c.start
    return (
        linked_answer_text(body[:a], turn, ids)
        + f'<mark class="rag-span">{linked_answer_text(body[a:b], turn, ids)}</mark>'
        + linked_answer_text(body[b:], turn, ids)
    )


def answer_html(answer: Answer, turn: int, titles: Mapping[str, str], nearest: Sequence[Citation] = ()) -> str:
    """The final answer bubble: searched question (if rewritten), short answer, linked text,
    source list; for a refusal, the ``nearest`` passages it considered instead of sources."""
    citations = _unique(answer.citations)
    ids = {c.id for c in citations}
    parts = ['<div class="rag-answer rag-refused">' if answer.refused else '<div class="rag-answer">']
    if answer.standalone_question.strip() != answer.question.strip():
        parts.append(
            '<div class="rag-searched"><span class="rag-label">Searched for</span> '
            f'<span class="rag-standalone">{text(answer.standalone_question)}</span></div>'
        )
    span = short_answer_span(answer)
    lead_id, body = _lead_and_body(answer)
    if answer.short_answer and not answer.refused:
        lead_id = span.citation if span else lead_id
        link = f" {cite_link(turn, lead_id)}" if lead_id in ids else ""
        parts.append(f'<div class="rag-short"><strong>{text(answer.short_answer)}</strong>{link}</div>')
        parts.append(provenance_html(answer))
    parts.append(f'<div class="rag-text">{_body_html(body, answer, span, turn, ids)}</div>')
    if citations:
        parts.append('<div class="rag-sources"><div class="rag-label">Sources</div>')
        parts.append(_passage_list(citations, turn, titles, nearest=False))
        parts.append("</div>")
    if answer.refused:
        parts.append(_nearest_html(answer, nearest, turn, titles))
    meta = [answer.answerer]
    if "total" in answer.timings_ms:
        meta.append(f"{answer.timings_ms['total']:.0f} ms")
    parts.append(f'<div class="rag-meta">{text(" · ".join(meta))}</div></div>')
    return "".join(parts)


def provenance_html(answer: Answer) -> str:
    """The muted line under the short answer: who says it and as of when ("according to a second
    official (2024-04-13)", "as of 2024-05-08"); empty when neither is known."""
    note = provenance_note(answer).removeprefix(", ").strip()
    if note.startswith("("):  # a date alone
        note = "as of " + note.strip("()")
    return f'<div class="rag-provenance rag-muted">{text(note)}</div>' if note else ""


def _passage_list(passages: Sequence[Citation], turn: int, titles: Mapping[str, str], nearest: bool) -> str:
    """Numbered, clickable passages: a brief quote, then the document and the offsets."""
    items: list[str] = []
    listed: set[str] = set()
    for c in passages:
        title = clip(titles.get(c.source) or c.source, 60)
        document = "same document" if c.source in listed else f"{title} · {c.source}"
        listed.add(c.source)
        where = f"{document} · characters {c.start:,}–{c.end:,}"
        number = cite_link(turn, c.id, f"{c.id}" if nearest else None, nearest)
        quote = cite_link(turn, c.id, "“" + clip(c.quote, 110) + "”", nearest)
        items.append(f'<li>{number}<span class="rag-source-item">{quote}<span class="rag-where">{text(where)}</span></span></li>')
    return f'<ol class="rag-source-list">{"".join(items)}</ol>'


def _nearest_html(answer: Answer, nearest: Sequence[Citation], turn: int, titles: Mapping[str, str]) -> str:
    """Why a refusal refused: the passages searched, collapsed, each opening its document."""
    if not nearest:
        return (
            '<div class="rag-why">No passage matched the search: the index is empty, or the filters '
            "in Settings leave no document to search.</div>"
        )
    noun = "passage" if len(nearest) == 1 else "passages"
    confidence = answer.details.get("confidence")
    why = f"none answers it with enough confidence (best {confidence:.2f})" if isinstance(confidence, float) else "none answers it"
    return (
        f'<details class="rag-nearest"><summary>The {len(nearest)} nearest {noun} searched: {text(why)}</summary>'
        f"{_passage_list(nearest, turn, titles, nearest=True)}</details>"
    )


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
    """What the source panel shows for one citation, or for a passage a refusal considered."""

    citation: Citation
    turn: int
    document: DocumentInfo | None
    document_text: str | None
    span: ShortSpan | None = None  # the short answer inside the citation, marked again
    nearest: bool = False  # a passage searched for a refusal, not a citation


def source_html(view: SourceView, context_chars: int = CONTEXT_CHARS) -> str:
    """The source panel: document header and its text with the cited span in ``<mark>``."""
    c = view.citation
    doc = view.document
    title = doc.title if doc and doc.title else c.source
    role = (
        ("Found as", f"nearest passage {c.id} for question {view.turn + 1}, not cited")
        if view.nearest
        else ("Cited as", f"[{c.id}] in answer {view.turn + 1}")
    )
    meta = [
        ("Date", doc.date if doc and doc.date else "unknown"),
        role,
        ("Source", c.source),
        ("Characters", f"{c.start:,}–{c.end:,}" + (f" of {len(view.document_text):,}" if view.document_text else "")),
    ]
    head = (
        f'<div class="rag-source-head"><div class="rag-label rag-source-label">{"Passage" if view.nearest else "Source"}</div>'
        f'<div class="rag-source-title">{text(title)}</div><dl class="rag-source-meta">'
        + "".join(
            f"<div{_WIDE if k in ('Source', 'Characters', 'Found as') else ''}><dt>{text(k)}</dt><dd>{text(v)}</dd></div>"
            for k, v in meta
        )
        + "</dl></div>"
    )
    body = view.document_text
    mark = (
        f'<mark class="cite-mark" id="cite-mark" data-key="{cite_key(view.turn, c.id, view.nearest)}">'
        f"{_quote_html(c, view.span)}</mark>"
    )
    if body is None or body[c.start : c.end] != c.quote:
        note = (
            "This document is no longer in the index; showing the quoted text."
            if body is None
            else "This document has changed since the answer; showing the quoted text."
        )
        return (
            f'<div class="rag-source">{head}<div class="rag-source-note">{text(note)}</div>'
            f'<div class="rag-source-text">{mark}</div></div>'
        )
    lo = max(0, c.start - context_chars)
    hi = min(len(body), c.end + context_chars)
    before = ("…" if lo > 0 else "") + text(body[lo : c.start])
    after = text(body[c.end : hi]) + ("…" if hi < len(body) else "")
    return f'<div class="rag-source">{head}<div class="rag-source-text">{before}{mark}{after}</div></div>'


def _quote_html(c: Citation, span: ShortSpan | None) -> str:
    """The quote escaped, with the short answer in ``<mark class="rag-span">`` when it lies there."""
    if span is None or span.citation != c.id or not c.start <= span.start < span.end <= c.end:
        return text(c.quote)
    a, b = span.start - c.start, span.end - c.start
    return f'{text(c.quote[:a])}<mark class="rag-span">{text(c.quote[a:b])}</mark>{text(c.quote[b:])}'


@dataclass(frozen=True)
class Located:
    """A citation link resolved in a conversation: the passage, and the short answer inside it."""

    turn: int
    citation: Citation
    span: ShortSpan | None
    nearest: bool


def find_citation(turns: Sequence[Mapping[str, object]], key: str) -> Located | None:
    """What a link's key names in a conversation's turns (each ``{"answer": Answer-dict}``, and
    for a refusal ``"nearest"``: the passages it considered, as Citation dicts)."""
    parsed = parse_cite_key(key)
    if parsed is None or not 0 <= parsed.turn < len(turns):
        return None
    turn = turns[parsed.turn]
    record = turn.get("answer")
    if not isinstance(record, Mapping):
        return None
    listed = turn.get("nearest") if parsed.nearest else record.get("citations")
    if not isinstance(listed, list):
        return None
    raw = next((r for r in listed if isinstance(r, Mapping) and r.get("id") == parsed.id), None)
    if raw is None:
        return None
    span = None if parsed.nearest else short_answer_span(Answer.model_validate(record))
    return Located(parsed.turn, Citation.model_validate(raw), span, parsed.nearest)


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
