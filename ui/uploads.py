"""Uploaded files into the corpus folder: safe names, size and type limits, nothing outside it.

``save_upload`` is the only function that writes: it keeps the uploaded file's base name,
reduces it to a safe character set, refuses what would land outside the corpus folder, and
writes through a temporary dot-file (ingest skips dot-files) that is renamed into place.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf")
_MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class UploadRefused(ValueError):
    """An uploaded file that is not written; the message says why in a few words."""


def safe_name(original: str) -> str:
    """The base name of ``original`` reduced to ``[A-Za-z0-9._ -]``, or UploadRefused.

    >>> safe_name("../../etc/report 2024 (final).md")
    'report 2024 _final_.md'
    """
    base = re.split(r"[\\/]", original or "")[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = _UNSAFE.sub("_", base)
    base = re.sub(r"\s+", " ", base).strip(" .")  # no leading dots (hidden files, "..")
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem.strip(" ._"):
        raise UploadRefused(f"no usable file name in {original!r}")
    suffix = "." + suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise UploadRefused(f"unsupported file type {suffix}; upload {' '.join(UPLOAD_SUFFIXES)}")
    stem = stem[: _MAX_NAME_CHARS - len(suffix)].rstrip(" .")
    return stem + suffix


@dataclass(frozen=True)
class SavedUpload:
    """An upload written into the corpus folder."""

    name: str  # the safe name, relative to the corpus folder
    path: Path
    replaced: bool


def save_upload(temp_path: str | Path, original_name: str, corpus_dir: Path, max_bytes: int) -> SavedUpload:
    """Copy one uploaded temporary file into ``corpus_dir`` under a safe name; or UploadRefused."""
    name = safe_name(original_name)
    source = Path(temp_path)
    try:
        size = source.stat().st_size
    except OSError as e:
        raise UploadRefused(f"cannot read the uploaded file ({e.strerror or e})") from e
    if size > max_bytes:
        raise UploadRefused(f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB upload limit")
    if size == 0:
        raise UploadRefused("empty file")
    corpus_dir.mkdir(parents=True, exist_ok=True)
    root = corpus_dir.resolve()
    target = root / name
    # Belt and braces: the safe name has no separators, but check what the OS would resolve.
    if target.parent != root or os.path.commonpath([root, target.resolve()]) != str(root):
        raise UploadRefused(f"{name} would be written outside the corpus folder")
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise UploadRefused(f"{name} exists in the corpus folder and is not a regular file")
    replaced = target.exists()
    tmp = root / f".upload-{uuid.uuid4().hex}.part"
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UploadRefused(f"cannot write into the corpus folder ({e.strerror or e})") from e
    return SavedUpload(name=name, path=target, replaced=replaced)
