"""Words, stop words and stems: the one tokenizer that BM25, the answerer and the gate share.

Stop words are NLTK's English list (198 words), vendored with its licence in ``rag/text/data``;
stems come from PyStemmer's English Snowball stemmer.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import Stemmer

_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS_FILE = Path(__file__).parent / "data" / "stopwords-english.txt"


@functools.lru_cache(maxsize=1)
def _stemmer():  # noqa: ANN202 - PyStemmer has no stubs
    return Stemmer.Stemmer("english")


@functools.lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """NLTK's English stop words (198), vendored in ``rag/text/data/stopwords-english.txt``."""
    return frozenset(STOPWORDS_FILE.read_text(encoding="utf-8").split())


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore), stop words kept."""
    return _WORD.findall(text.lower())


def tokenize(text: str) -> list[str]:
    """Stemmed content tokens: stop words dropped, English Snowball stemmer."""
    stop = stopwords()
    kept = [w for w in words(text) if w not in stop]
    return _stemmer().stemWords(kept) if kept else []
