"""Read one file into a ``Document`` with its exact text, title and date.

- ``.txt``/``.md``: the file decoded as strict UTF-8, newlines untouched, so citation offsets
  index the file's own characters; a leading UTF-8 byte-order mark is not text and is dropped
  (offsets index the stored text, which ``rag show`` prints).
- ``.html``/``.htm``: main text extracted by trafilatura (boilerplate removed), title and date
  from the page's metadata (htmldate). Offsets index that extracted text, which the catalog
  keeps and ``rag show`` prints.
- ``.pdf``: the text of every page from pypdf, pages separated by a blank line.

Every failure is an ``IngestError`` whose message names the reason in a few words; the caller
adds the file name.
"""

from __future__ import annotations

import re
from pathlib import Path

from rag.domain import Document
from rag.errors import IngestError

TEXT_SUFFIXES = {".txt": "txt", ".md": "md", ".markdown": "md"}
HTML_SUFFIXES = {".html": "html", ".htm": "html"}
PDF_SUFFIXES = {".pdf": "pdf"}
SUPPORTED_SUFFIXES = frozenset({**TEXT_SUFFIXES, **HTML_SUFFIXES, **PDF_SUFFIXES})

_DATE_LINE = re.compile(r"\A\s*(?:date|published|updated)\s*[:=]?\s*(\d{4}-\d{2}-\d{2})\b", re.I)
# A "date: 2024-04-13" line among the first lines (after a title, say).
_DATE_ANY_LINE = re.compile(r"^[ \t*_]*(?:date|published|updated)[ \t*_]*[:=][ \t*_]*(\d{4}-\d{2}-\d{2})\b", re.I | re.M)
_FRONT_MATTER_DATE = re.compile(r"\A---\s*\n(?:.*\n)*?date:\s*['\"]?(\d{4}-\d{2}-\d{2})", re.I)
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_TITLE_CHARS = 120


def read_document(path: Path, source: str, max_bytes: int | None = None) -> Document:
    """Read ``path`` (stored under the corpus-relative name ``source``) into a Document."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = suffix or "(none)"
        raise IngestError(f"unsupported file type {shown}; supported: .txt .md .html .htm .pdf")
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise IngestError(f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit")
        raw = path.read_bytes()
    except PermissionError as e:
        raise IngestError("permission denied") from e
    except IsADirectoryError as e:
        raise IngestError("is a directory") from e
    except OSError as e:
        raise IngestError(f"cannot read ({e.strerror or e})") from e
    if not raw.strip():
        raise IngestError("empty file")
    if suffix in TEXT_SUFFIXES:
        return _text_document(raw, source, TEXT_SUFFIXES[suffix])
    if suffix in HTML_SUFFIXES:
        return _html_document(raw, source)
    return _pdf_document(raw, source)


def _decode(raw: bytes) -> str:
    if b"\x00" in raw[:8192]:
        raise IngestError("binary file (contains NUL bytes)")
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark would hide a leading "date:" line
    except UnicodeDecodeError as e:
        raise IngestError(f"not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r})") from e


def _text_document(raw: bytes, source: str, kind: str) -> Document:
    text = _decode(raw)
    if not text.strip():
        raise IngestError("no text (white space only)")
    return Document(source=source, text=text, title=guess_title(text, source), date=find_date(text), kind=kind)


def find_date(text: str) -> str | None:
    """A leading ``date YYYY-MM-DD`` line, a front-matter ``date:``, or a ``Date: YYYY-MM-DD``
    line near the top (under a title, say); else None."""
    m = _DATE_LINE.match(text[:300]) or _FRONT_MATTER_DATE.match(text[:2000]) or _DATE_ANY_LINE.search(text[:600])
    return m.group(1) if m else None


def guess_title(text: str, source: str) -> str:
    """A markdown heading, else the first line that reads as a title (two or more words, no
    closing sentence punctuation: "Harbor operations note") or has four or more words, else the
    file stem. A one-word first line ("CNN") is a site name more often than a title.

    >>> guess_title("Harbor operations note\\n\\nThe crane was repaired.", "n.txt")
    'Harbor operations note'
    """
    head = text[:5000]
    m = _MD_HEADING.search(head)
    if m:
        return _shorten(m.group(1))
    for line in head.splitlines():
        line = line.strip()
        if _DATE_LINE.match(line) or line.startswith("---"):
            continue
        words = len(line.split())
        if words >= 4 or (words >= 2 and not line.endswith((".", ",", ";", ":", "!", "?"))):
            return _shorten(line)
    return Path(source).stem


def _shorten(line: str) -> str:
    line = " ".join(line.split())
    if len(line) <= _TITLE_CHARS:
        return line
    cut = line.rfind(" ", 0, _TITLE_CHARS)
    return line[: cut if cut > 0 else _TITLE_CHARS] + "…"


def _html_document(raw: bytes, source: str) -> Document:
    import trafilatura

    html = raw.decode("utf-8-sig", errors="replace")
    if b"\x00" in raw[:8192]:
        raise IngestError("binary file (contains NUL bytes)")
    try:
        extracted = trafilatura.bare_extraction(
            html, include_comments=False, include_tables=True, favor_recall=True, with_metadata=True
        )
    except Exception as e:  # trafilatura raises assorted parser errors on broken markup
        raise IngestError(f"HTML could not be parsed ({type(e).__name__})") from e
    found = None if isinstance(extracted, dict) else extracted  # a dict only with as_dict=True
    text = (found.text if found is not None else "") or ""
    if found is None or not text.strip():
        raise IngestError("no text could be extracted from the HTML")
    title = (found.title or "").strip() or guess_title(text, source)
    date = found.date if found.date and re.match(r"\d{4}-\d{2}-\d{2}$", found.date) else None
    return Document(source=source, text=text, title=_shorten(title), date=date or find_date(text), kind="html")


def _pdf_document(raw: bytes, source: str) -> Document:
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(raw))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        meta = reader.metadata
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as e:
        raise IngestError(f"not a readable PDF ({type(e).__name__})") from e
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise IngestError("no extractable text in the PDF (scanned images?)")
    title, date = _pdf_title_and_date(meta)
    title = title or guess_title(text, source)
    return Document(source=source, text=text, title=_shorten(str(title)), date=date or find_date(text), kind="pdf")


def _pdf_title_and_date(meta: object) -> tuple[str, str | None]:
    """The PDF's title and creation date; a malformed field is ignored, not fatal.

    pypdf parses ``/CreationDate`` lazily and raises on a malformed one (``D:2024-13-45``).
    """
    title: str = ""
    date: str | None = None
    try:
        title = str(getattr(meta, "title", None) or "")
    except Exception:  # noqa: BLE001 - pypdf raises assorted errors on broken metadata
        title = ""
    try:
        created = getattr(meta, "creation_date", None)
        date = created.date().isoformat() if created else None
    except Exception:  # noqa: BLE001
        date = None
    return title, date
