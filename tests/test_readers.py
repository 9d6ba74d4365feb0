"""Reading files into Documents: exact text, titles, dates, and clear reasons for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import IngestError
from rag.ingest.readers import find_date, guess_title, read_document

from .conftest import CORPUS, SEED_SOURCE


def write_pdf(path: Path, lines: list[str]) -> None:
    """A real text PDF made by matplotlib's PDF backend (pypdf extracts its text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8.5, 11))
    for i, line in enumerate(lines):
        fig.text(0.08, 0.92 - 0.04 * i, line, fontsize=11)
    fig.savefig(path)
    plt.close(fig)


def test_seed_article_text_is_the_file_decoded_byte_exact() -> None:
    path = CORPUS / SEED_SOURCE
    doc = read_document(path, SEED_SOURCE)
    assert doc.text == path.read_bytes().decode("utf-8")
    assert doc.date == "2024-04-13"
    assert doc.title.startswith("China is helping Russia")
    assert doc.kind == "txt" and len(doc.sha256) == 64 and doc.id


def test_crlf_is_kept_exactly_and_a_byte_order_mark_dropped(tmp_path: Path) -> None:
    raw = "\ufeffTitle line with four words\r\n\r\nBody.\r\n".encode()
    (tmp_path / "a.md").write_bytes(raw)
    doc = read_document(tmp_path / "a.md", "a.md")
    assert doc.text.encode("utf-8") == raw[3:]  # the mark is not text; offsets index what is stored


def test_markdown_heading_and_front_matter_date(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text("---\ndate: 2023-02-01\n---\n# Harbour notes\n\nText here.\n", encoding="utf-8")
    doc = read_document(tmp_path / "n.md", "n.md")
    assert doc.title == "Harbour notes" and doc.date == "2023-02-01"


def test_html_main_text_title_and_meta_date(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Harbour rebuilt</title>"
        '<meta property="article:published_time" content="2022-06-05"></head>'
        "<body><nav>Home | About | Contact</nav><article><h1>Harbour rebuilt</h1>"
        "<p>The harbour was rebuilt in 1887 by the city council after a long debate among merchants.</p>"
        "<p>It cost 40,000 pounds, paid by a levy on imported goods over twenty years.</p></article>"
        "<footer>Copyright</footer></body></html>"
    )
    (tmp_path / "h.html").write_text(html, encoding="utf-8")
    doc = read_document(tmp_path / "h.html", "h.html")
    assert "rebuilt in 1887" in doc.text and "40,000 pounds" in doc.text
    assert "Home | About" not in doc.text
    assert doc.title == "Harbour rebuilt" and doc.date == "2022-06-05" and doc.kind == "html"


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    write_pdf(tmp_path / "p.pdf", ["The harbour was rebuilt in 1887 by the city council.", "It cost 40,000 pounds."])
    doc = read_document(tmp_path / "p.pdf", "p.pdf")
    assert "rebuilt in 1887" in doc.text and doc.kind == "pdf"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"  \n\t\n", "empty file"),
        ("binary.txt", b"abc\x00\x01\x02def", "binary file"),
        ("latin1.txt", "caf\u00e9 ol\u00e9".encode("latin-1"), "not valid UTF-8"),
        ("data.csv", b"a,b\n1,2\n", "unsupported file type .csv"),
        ("noext", b"hello", r"unsupported file type \(none\)"),
        ("scan.pdf", b"%PDF-1.4 this is not really a pdf", "not a readable PDF"),
        ("nav.html", b"<html><body><script>var x=1;</script></body></html>", "no text could be extracted"),
    ],
)
def test_bad_files_raise_a_one_line_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(IngestError, match=reason) as info:
        read_document(tmp_path / name, name)
    assert "\n" not in str(info.value)


def test_unreadable_and_oversized_files(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("word " * 1000, encoding="utf-8")
    with pytest.raises(IngestError, match="over the"):
        read_document(big, "big.txt", max_bytes=100)


def test_unreadable_file_is_reported_as_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root in CI, where chmod 0 does not stop a read: simulate the OS refusing.
    locked = tmp_path / "locked.txt"
    locked.write_text("secret words here", encoding="utf-8")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(IngestError, match="permission denied"):
        read_document(locked, "locked.txt")


def test_date_and_title_helpers() -> None:
    assert find_date(" date 2024-04-13 \n\nText") == "2024-04-13"
    assert find_date("Published: 2020-01-02\nText") == "2020-01-02"
    assert find_date("No date in this text at all") is None
    assert find_date("# Harbour notes\n\nDate: 2021-03-04\n\nText") == "2021-03-04"
    assert find_date("Text that mentions date: 2021-03-04 in a sentence.") is None
    assert guess_title("CNN\n\nA long first real line of text", "x.txt") == "A long first real line of text"
    assert guess_title("short", "dir/file-name.txt") == "file-name"
    # A short first line without closing punctuation is the title, not the first body sentence.
    note = "Harbor operations note\n\nThe north crane was repaired in March and is back in service."
    assert guess_title(note, "note.txt") == "Harbor operations note"
    assert guess_title("Repaired.\n\nThe north crane was repaired in March.", "n.txt") == "The north crane was repaired in March."
