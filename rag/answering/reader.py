"""The span reader: an extractive QA model run on ONNX Runtime (no torch on the query path).

``SpanReader.read(question, passages)`` tokenises the question against each passage (a passage
longer than the model's window is read in overlapping windows), runs one forward pass per window
(so a passage's spans never depend on the passages read with it), and returns, per passage, its
best few answer spans with character offsets into that passage, the span score minus the
passage's no-answer score, and the has-answer probability.

The model is MiniLM-L6 (the shipped all-MiniLM-L6-v2 weights) fine-tuned on SQuAD 1.1 with
"the passage does not say" negatives (``training/train_reader.py``); its int8 ONNX export, the
tokenizer and a model card live in ``rag/answering/reader_model/``. ``reader.json`` names the inputs and
outputs; loading checks them, and the card's SHA-256 against the file.
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import RagError, read_json_object
from rag.inference import pass_pool, single_core_session

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).parent / "reader_model"
INPUTS = ("input_ids", "attention_mask", "token_type_ids", "context_mask")
OUTPUTS = ("start_logits", "end_logits", "has_answer_logit")
FORMAT = 1


class ReaderError(RagError):
    """The reader model is missing, corrupt, or does not match what this code expects."""


@dataclass(frozen=True)
class Span:
    """One answer span proposed by the reader; offsets index the passage it was read from."""

    passage: int  # index into the passages given to ``read``
    start: int
    end: int
    text: str
    score: float  # start + end logit
    margin: float  # score minus the no-answer score of the window it came from
    has_answer: float  # the window's has-answer probability


def card_sha256(card: Path) -> str | None:
    """The ``sha256:`` value written in a model card, or None."""
    m = re.search(r"sha256[^0-9a-f]*([0-9a-f]{64})", card.read_text(encoding="utf-8"))
    return m.group(1) if m else None


class SpanReader:
    """Loads the ONNX model and tokenizer once (lazily) and reads passages; thread-safe."""

    def __init__(self, model_dir: str | Path | None = None, threads: int = 0, max_answer_tokens: int = 30) -> None:
        self.model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        self.threads = threads
        self.max_answer_tokens = max_answer_tokens
        self._lock = threading.Lock()
        self._session: Any = None  # onnxruntime.InferenceSession, loaded on first use
        self._pool: ThreadPoolExecutor | None = None
        self._tokenizer: Any = None  # tokenizers.Tokenizer
        self._plain: Any = None
        self._preloading: threading.Thread | None = None
        self._meta_cache: dict[str, Any] | None = None
        self.max_len = 0

    def calibrated_threshold(self) -> float | None:
        """The refusal threshold calibrated for this model (``refusal_threshold`` in its
        ``reader.json``), or None; read without loading the model. A folder that cannot be read
        gives None here and its one-line error on first use."""
        try:
            value = self._meta().get("refusal_threshold")
        except ReaderError:
            return None
        return float(value) if isinstance(value, (int, float)) and 0.0 <= value <= 1.0 else None

    def _meta(self) -> dict[str, Any]:
        """The model folder's ``reader.json``, read once."""
        if self._meta_cache is None:
            self._meta_cache = read_json_object(self.model_dir / "reader.json", "reader model file", ReaderError)
        return self._meta_cache

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            from tokenizers import Tokenizer

            meta_path = self.model_dir / "reader.json"
            model_path = self.model_dir / "model.onnx"
            for p in (meta_path, model_path, self.model_dir / "tokenizer.json"):
                if not p.is_file():
                    raise ReaderError(f"reader model folder {self.model_dir}: {p.name} is missing")
            meta = self._meta()
            if meta.get("format") != FORMAT or tuple(meta.get("inputs", ())) != INPUTS or tuple(meta.get("outputs", ())) != OUTPUTS:
                raise ReaderError(
                    f"reader model {meta_path}: format {meta.get('format')!r}, inputs {meta.get('inputs')}, "
                    f"outputs {meta.get('outputs')}; this code expects format {FORMAT}, {list(INPUTS)}, {list(OUTPUTS)}"
                )
            try:
                session = single_core_session(model_path)  # one core per window; ``threads`` windows at once
            except Exception as e:  # onnxruntime raises its own exception types
                raise ReaderError(f"reader model {model_path} cannot be loaded: {e}") from e
            names = tuple(i.name for i in session.get_inputs())
            if set(names) != set(INPUTS):
                raise ReaderError(f"reader model {model_path} takes inputs {list(names)}, expected {list(INPUTS)}")
            tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
            self.max_len = int(meta["max_len"])
            tokenizer.enable_truncation(self.max_len, stride=self.max_len // 3, strategy="only_second")
            tokenizer.no_padding()
            self._pool = pass_pool(self.threads, "reader")
            self._tokenizer, self._session = tokenizer, session

    def preload(self) -> None:
        """Load the model in a background thread, if not loaded yet: the first question's query
        embedding and retrieval then run while the session is made (``read`` waits for it)."""
        with self._lock:
            if self._session is not None or self._preloading is not None:
                return
            self._preloading = threading.Thread(target=self._preload, name="reader-load", daemon=True)
            self._preloading.start()

    def _preload(self) -> None:
        try:
            self._load()
        except ReaderError:
            pass  # ``read`` loads again and raises the one-line error where it can be reported

    def read(self, question: str, passages: list[str], top_n: int = 5) -> list[list[Span]]:
        """The best ``top_n`` spans of each passage, best first (by margin)."""
        if not passages:
            return [[] for _ in passages]
        self._load()
        assert self._tokenizer is not None and self._session is not None
        question = self._clip(question)
        windows = []  # (passage index, encoding)
        for i, passage in enumerate(passages):
            enc = self._tokenizer.encode(question, passage)
            for w in [enc, *enc.overflowing]:
                windows.append((i, w))
        results = self._run_each(windows)
        out: list[list[Span]] = [[] for _ in passages]
        for (i, w), (start, end, has) in zip(windows, results):
            out[i].extend(self._spans(i, passages[i], w, start, end, has, top_n))
        for spans in out:
            spans.sort(key=lambda s: -s.margin)
            # Overlapping windows propose the same span twice: keep the better.
            seen: set[tuple[int, int]] = set()
            kept: list[Span] = []
            for s in spans:
                if (s.start, s.end) not in seen:
                    seen.add((s.start, s.end))
                    kept.append(s)
            spans[:] = kept[:top_n]
        return out

    def _run_each(self, windows: list[tuple[int, Any]]) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """One forward pass per window, unpadded, side by side on the pool: the int8 model scales
        its activations per pass, so batched, a passage's scores would depend on the passages
        read with it (and on padding); alone, the same window always scores the same."""
        def run(window: tuple[int, Any]) -> tuple[np.ndarray, np.ndarray, float]:
            w = window[1]
            feed = {"input_ids": np.array([w.ids], dtype=np.int64),
                    "attention_mask": np.array([w.attention_mask], dtype=np.int64),
                    "token_type_ids": np.array([w.type_ids], dtype=np.int64),
                    "context_mask": np.array([[1 if s == 1 else 0 for s in w.sequence_ids]], dtype=np.int64)}
            start, end, has = self._session.run(list(OUTPUTS), feed)
            return start[0], end[0], float(np.ravel(has)[0])

        if self._pool is None or len(windows) < 2:
            return [run(w) for w in windows]
        return list(self._pool.map(run, windows))

    def _clip(self, question: str) -> str:
        """The question cut to half the window, so that every window still holds some passage."""
        limit = self.max_len // 2
        if len(question) <= limit:
            return question  # a word piece holds at least one character: it cannot exceed the limit
        if self._plain is None:  # made on first need: most questions are short
            from tokenizers import Tokenizer

            plain = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
            plain.no_truncation()
            self._plain = plain
        enc = self._plain.encode(question, add_special_tokens=False)
        if len(enc.ids) <= limit:
            return question
        return question[: enc.offsets[limit - 1][1]]

    def _spans(self, i: int, passage: str, w, start: np.ndarray, end: np.ndarray, has_logit: float, top_n: int) -> list[Span]:
        ctx = np.array([j for j, s in enumerate(w.sequence_ids) if s == 1], dtype=np.int64)
        if ctx.size == 0:
            return []
        null = float(start[0] + end[0])
        has_p = 1.0 / (1.0 + np.exp(-has_logit))
        s, e = start[ctx], end[ctx]
        scores = span_scores(s, e, self.max_answer_tokens)  # [start, length - 1]
        spans = []
        for a, d in best_pairs(scores, top_n):
            b = a + d
            score = float(scores[a, d])
            c0, c1 = w.offsets[int(ctx[a])][0], w.offsets[int(ctx[b])][1]
            # Whole words only: a word-piece span ("micro" of "microelectronics") grows to its word.
            while 0 < c0 < len(passage) and passage[c0 - 1].isalnum() and passage[c0].isalnum():
                c0 -= 1
            while 0 < c1 < len(passage) and passage[c1].isalnum() and passage[c1 - 1].isalnum():
                c1 += 1
            text = passage[c0:c1]
            if not text.strip():
                continue
            spans.append(Span(i, c0, c1, text, score, score - null, float(has_p)))
        return spans


def span_scores(start: np.ndarray, end: np.ndarray, max_tokens: int) -> np.ndarray:
    """Every span's score (start logit + end logit) as ``[start token, length - 1]``: at most
    ``max_tokens`` long, -inf where the span would run past the passage.

    Only the spans that can be answers: the square start-by-end matrix holds about 17,000 pairs
    for a 130-token passage, of which under 4,000 are spans, and sorting it took 0.9 ms of each
    window's 17 ms pass.

    >>> span_scores(np.array([1.0, 2.0]), np.array([10.0, 20.0]), 3).tolist()
    [[11.0, 21.0, -inf], [22.0, -inf, -inf]]
    """
    n = start.size
    padded = np.concatenate([end, np.full(max_tokens - 1, -np.inf, dtype=end.dtype)])
    ends = np.lib.stride_tricks.sliding_window_view(padded, max_tokens)[:n]
    return start[:, None] + ends  # in the logits' own precision, as the square matrix added them


def best_pairs(scores: np.ndarray, n: int) -> list[tuple[int, int]]:
    """The ``n`` best finite entries of ``scores`` as (row, column), best first; ties (rare in
    float logits) go to the span that ends later, then to the one that starts later.

    >>> best_pairs(np.array([[1.0, 5.0], [5.0, -np.inf]]), 3)
    [(1, 0), (0, 1), (0, 0)]
    """
    flat = scores.ravel()
    n = min(n, int(np.isfinite(flat).sum()))
    if n <= 0:
        return []
    top = np.argpartition(flat, flat.size - n)[flat.size - n:] if n < flat.size else np.arange(flat.size)
    rows, cols = np.divmod(top, scores.shape[1])
    ends = rows + cols
    order = np.lexsort((-rows, -ends, -flat[top]))  # the last key sorts first
    return [(int(rows[k]), int(cols[k])) for k in order]
