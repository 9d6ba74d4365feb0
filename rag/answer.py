"""The default, offline answerer: picks the sentences that answer, cites their exact spans.

No generative model. For every sentence of the retrieved passages it computes a few features:
embedding similarity to the question, idf-weighted coverage of the question's content words (in
the sentence, and with its neighbours), whether it holds a candidate of the answer type the
question wants (a percentage, a date, a person...), how close the question's words sit to that
candidate, and the rank of its passage; several again relative to the best sentence's. A logistic
model turns them into the probability that the sentence answers the question; its weights were
fitted on the public SQuAD 2.0 slice with article-grouped cross-validation
(``benchmarks/fit_answerer.py``) and are plain constants below. The answer leads with the best
sentence that holds an answer of the kind asked for, plus close runners-up within a citation
budget; the short answer is the typed span the question's words gather around. A second,
question-level model decides whether the question is answered at all; under the refusal
threshold, or when no sentence holds an answer of the kind asked for, the answer is an honest
refusal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.answer_types import (
    AType,
    Candidate,
    candidates,
    compatible,
    expected_type,
    holds,
    requirement,
)
from rag.catalog import SentenceRow
from rag.config import AnswerSettings
from rag.domain import Hit
from rag.index import Index
from rag.lexical import LexicalIndex, stopwords, tokenize, words
from rag.records import Citation

REFUSAL_TEXT = "The sources don't say: no passage in the index answers this question."
NO_PASSAGES_TEXT = "The sources don't say: nothing in the index matches this question."

# Logistic weights over FEATURES (plus a bias), fitted by benchmarks/fit_answerer.py. The first
# BASE_FEATURES describe a sentence on its own; the "_rel" ones are the same measures minus their
# best value among the question's candidate sentences, so a sentence is also judged against its
# competitors (held-out SQuAD: answer sentence ranked first 0.701 -> 0.729, answer inside the
# cited text 0.794 -> 0.824 at the same length).
BASE_FEATURES = (
    "cos", "lex", "ctx_lex", "type_match", "type_missing", "rank", "len",
    "bigram", "lex_mass", "chunk_cos", "neighbour_cos", "window", "miss_rare",
)
RELATIVE = ("cos", "lex", "ctx_lex", "bigram", "lex_mass", "window", "chunk_cos")
FEATURES = BASE_FEATURES + tuple(f"{f}_rel" for f in RELATIVE)
_RELATIVE_COLUMNS = [BASE_FEATURES.index(f) for f in RELATIVE]
WEIGHTS = np.array(
    [0.241, 0.383, 1.368, 0.832, -0.202, 1.588, 0.489, 0.572, 1.556, 1.512, -1.896, -0.527, 0.088,
     2.511, 1.288, 2.919, 0.999, 0.488, 2.415, 3.781],
    dtype=np.float32,
)
BIAS = -3.805
ANSWERABILITY_WEIGHTS = np.array(
    [0.743, -0.033, 4.410, 1.613, -1.565, -0.144, 0.659, -0.776, -0.439, 0.170, 2.092, -2.345, 0.215, 0.359,
     -0.158, -4.378, -2.359, 0.913, -1.042, -2.263, 0.507, 5.425, 0.182, 0.260, -0.207, -0.089, -0.218, -0.265,
     0.413, -1.841],
    dtype=np.float32,
)
ANSWERABILITY_BIAS = -0.735
# Answerability: a question-level logistic model over the lead sentence (the best one, or the
# best one holding an answer of the type asked for; see ``answer``): its probability and all its
# features, the best probability among the other sentences that could answer, the wh-words and
# the question's length (``answerability_features``). Fitted by benchmarks/fit_answerer.py to
# tell answerable SQuAD questions from the same questions with their answer paragraph removed
# from the index (the passages below it moving up).
# Refuse when the answerability is below REFUSAL_THRESHOLD. Held-out SQuAD articles, refusals of
# answerable questions / of the same questions with the answer removed / of SQuAD's adversarial
# unanswerable ones (false premises that match the text word for word):
# 0.10 -> 1.3% / 27% / 3%; 0.20 -> 5.0% / 48% / 9%; 0.30 -> 9.3% / 64% / 16%.
# A plain threshold on the lead sentence's probability does worse at every point (4.9% / 33% /
# 9% at 0.18; 6.4% / 41% / 12% at 0.22). Removing a paragraph from SQuAD leaves its article's
# other paragraphs, on the same subject, in the index: a hard case, harder than a news article
# that simply does not say. RAG_ANSWER__REFUSAL_THRESHOLD moves along the curve.
REFUSAL_THRESHOLD = 0.20
# Cite the best sentence alone when its probability is at least this; otherwise cite it with the
# next best sentences (up to ``max_sentences`` and ``max_cited_chars``) whose probability is at
# least RUNNER_UP_RATIO of the best one's. Held-out SQuAD articles (benchmarks/fit_answerer.py),
# answer inside the cited text / characters cited per answer: one sentence 0.729 / 175; ratio
# 0.3 (default): 0.824 / 260; 0.2: 0.836 / 288; 0.1: 0.849 / 338; 0: 0.867 / 472. The default
# keeps answers short and their citations on point: on the seed set citation precision is 0.87
# at 0.3, 0.83 at 0.2 and 0.74 at 0.1, with every answer already inside its citations.
CONFIDENT_SINGLE = 0.9
RUNNER_UP_RATIO = 0.3
# A short answer needs at least this share of the question's idf mass within WINDOW_CHARS of it.
SHORT_MIN_WINDOW = 0.2


@dataclass
class ScoredSentence:
    doc_id: str
    source: str
    idx: int
    start: int
    end: int
    text: str
    hit_rank: int
    features: np.ndarray
    prob: float = 0.0
    typed: list[Candidate] = field(default_factory=list)
    support: float = 0.0  # the probability the refusal threshold applies to (prob, or more for a focus)


@dataclass(frozen=True)
class Focus:
    """What a follow-up asks about once its pronoun is resolved (``rag.rewrite.Rewrite.focus``)."""

    question: str
    vector: np.ndarray


@dataclass(frozen=True)
class Draft:
    """An answer before the citation gate: text with ``[n]`` markers, and its citations."""

    answer: str
    short_answer: str | None
    citations: list[Citation]
    refused: bool
    confidence: float
    sentences: tuple[ScoredSentence, ...] = ()
    answerer: str = "extractive"  # which answerer produced the text that is returned
    details: dict[str, Any] = field(default_factory=dict)  # answerer-specific facts for the record


def idf_coverage(q_tokens: list[str], tokens: set[str], lexical: LexicalIndex) -> float:
    """Share of the question's idf mass whose tokens appear in ``tokens`` (0..1)."""
    if not q_tokens:
        return 0.0
    total = sum(lexical.idf(t) for t in q_tokens)
    return sum(lexical.idf(t) for t in q_tokens if t in tokens) / total if total else 0.0


_NAME_TYPES = frozenset({AType.PERSON, AType.PLACE, AType.ORG, AType.NAME})
_TITLE_WORDS = frozenset(
    "president gen general secretary senator sen rep mr mrs ms dr prof professor king queen "
    "emperor prince princess pope saint st sir lord lady chancellor minister prime governor mayor".split()
)


def typed_candidates(text: str, start: int, end: int, wanted: AType, question_words: set[str]) -> list[Candidate]:
    """Candidates in ``text[start:end]`` compatible with ``wanted`` that the question doesn't name.

    A name that shares a word with the question ("Xi Jinping" for "Who called Xi?") is what
    the question is about, not its answer; a number must add something the question lacks.
    """
    stop = stopwords()
    out = []
    for c in candidates(text, start, end):
        if not compatible(wanted, c.type):
            continue
        cand_words = set(words(c.text))
        if c.type in _NAME_TYPES:
            if (cand_words - stop - _TITLE_WORDS) & question_words:
                continue
        elif cand_words <= question_words:
            continue
        out.append(c)
    return out


def with_relative(base: np.ndarray) -> np.ndarray:
    """The BASE_FEATURES rows of one question's candidates with their relative columns added."""
    chosen = base[:, _RELATIVE_COLUMNS]
    return np.concatenate([base, chosen - chosen.max(axis=0, keepdims=True)], axis=1).astype(np.float32)


WINDOW_CHARS = 60


def window_coverage(q_tokens: list[str], text: str, start: int, end: int, c: Candidate, lexical: LexicalIndex) -> float:
    """Question idf coverage of the words around a candidate answer, inside its sentence.

    The classic sliding-window cue: a question is a statement about the answer with the answer
    replaced by a wh-word, so its words gather around the right candidate.
    """
    window = tokenize(text[max(start, c.start - WINDOW_CHARS) : c.start] + " " + text[c.end : min(end, c.end + WINDOW_CHARS)])
    return idf_coverage(q_tokens, set(window), lexical)


def missing_rarest(q_tokens: list[str], context: set[str], lexical: LexicalIndex) -> float:
    """The rarest question word missing from the sentence and its neighbours, as a share of the
    rarest question word's idf: 1.0 when the most specific thing asked about is not there."""
    if not q_tokens:
        return 0.0
    idfs = [lexical.idf(t) for t in q_tokens]
    missing = [i for t, i in zip(q_tokens, idfs) if t not in context]
    return max(missing, default=0.0) / max(idfs) if max(idfs) > 0 else 0.0


_WH_WORDS = ("what", "which", "who", "when", "where", "why", "how")


def logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def answerability_features(question: str, lead: np.ndarray, p_lead: float, p_second: float) -> np.ndarray:
    """Question-level features for the answerability model.

    ``lead`` is the sentence features of the sentence the answer would lead with (the best one
    holding the type asked for), ``p_second`` the best probability of the other sentences that
    could answer (hold that type): a lone clear winner is more credible than one of several
    near-equal sentences. Sentences that cannot answer are left out: a close match that names no
    number must not vouch for a number found elsewhere. The wh-words and the question's length
    let the model learn that "why" and "how" questions are matched by their words less closely
    than "when" ones.
    """
    q = question.lower()
    wh = [1.0 if re.search(rf"\b{w}\b", q) else 0.0 for w in _WH_WORDS]
    head = [logit(p_lead), logit(p_second)]
    return np.concatenate([head, lead, wh, [min(len(q.split()), 40) / 20.0]]).astype(np.float32)


def bigram_overlap(q_tokens: list[str], stems: list[str]) -> float:
    """Share of the question's consecutive content-word pairs that occur in order in the sentence."""
    pairs = set(zip(q_tokens, q_tokens[1:]))
    if not pairs:
        return 0.0
    return len(pairs & set(zip(stems, stems[1:]))) / len(pairs)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class ExtractiveAnswerer:
    """Answers from retrieved hits by selecting and citing sentences (see module docstring)."""

    name = "extractive"

    def __init__(self, index: Index, settings: AnswerSettings) -> None:
        self.index = index
        self.settings = settings
        self.threshold = settings.refusal_threshold if settings.refusal_threshold is not None else REFUSAL_THRESHOLD

    def score_sentences(self, question: str, hits: list[Hit], query_vector: np.ndarray) -> list[ScoredSentence]:
        """Every distinct sentence of the hits, with features and probability, best first."""
        lexical = self.index.lexical()
        q_tokens = list(dict.fromkeys(tokenize(question)))
        q_words = set(words(question))
        wanted = expected_type(question)
        seen: set[tuple[str, int]] = set()
        seen_text: set[str] = set()
        out: list[ScoredSentence] = []
        texts: dict[str, str] = {}
        for rank, hit in enumerate(hits):
            span = self.index.catalog.sentence_index_range(hit.chunk.id)
            if span is None:
                continue
            doc_id, first, last = span
            rows = self.index.catalog.sentences(doc_id, max(first - 1, 0), last + 1)
            text = texts.get(doc_id)
            if text is None:
                text = texts[doc_id] = self.index.catalog.text(doc_id) or ""
            by_idx = {r.idx: r for r in rows}
            for idx in range(first, last + 1):
                row = by_idx.get(idx)
                if row is None or (doc_id, idx) in seen:
                    continue
                seen.add((doc_id, idx))
                sentence = text[row.start : row.end]
                if sentence in seen_text:  # the same sentence in a duplicate document
                    continue
                seen_text.add(sentence)
                out.append(self._features(text, row, by_idx, hit, rank, q_tokens, q_words, wanted, query_vector, lexical))
        if out:
            x = with_relative(np.stack([s.features for s in out]))
            for s, row in zip(out, x):
                s.features = row
                s.prob = s.support = sigmoid(float(row @ WEIGHTS) + BIAS)
        out.sort(key=lambda s: -s.prob)
        return out

    def _features(
        self,
        text: str,
        row: SentenceRow,
        by_idx: dict[int, SentenceRow],
        hit: Hit,
        rank: int,
        q_tokens: list[str],
        q_words: set[str],
        wanted: AType,
        query_vector: np.ndarray,
        lexical: LexicalIndex,
    ) -> ScoredSentence:
        sentence = text[row.start : row.end]
        stems = tokenize(sentence)
        tokens = set(stems)
        context = set(tokens)
        neighbour_cos = 0.0
        for j in (row.idx - 1, row.idx + 1):
            if j in by_idx:
                context.update(tokenize(text[by_idx[j].start : by_idx[j].end]))
                neighbour_cos = max(neighbour_cos, float(query_vector @ by_idx[j].vector))
        typed: list[Candidate] = []
        if wanted is not AType.OTHER:
            typed = typed_candidates(text, row.start, row.end, wanted, q_words)
        feats = np.array(
            [
                float(query_vector @ row.vector),
                idf_coverage(q_tokens, tokens, lexical),
                idf_coverage(q_tokens, context, lexical),
                1.0 if typed else 0.0,
                1.0 if wanted is not AType.OTHER and not typed else 0.0,
                1.0 / (1.0 + rank),
                min(len(sentence), 400) / 400.0,
                bigram_overlap(q_tokens, stems),
                # Matched idf mass in units of the index's largest idf, so that the feature means
                # the same in a one-article index as in a large one (raw idf grows with size).
                min(sum(lexical.idf(t) for t in q_tokens if t in tokens) / lexical.max_idf(), 4.0) / 2.0,
                hit.dense_score or 0.0,
                neighbour_cos,
                max((window_coverage(q_tokens, text, row.start, row.end, c, lexical) for c in typed), default=0.0),
                missing_rarest(q_tokens, context, lexical),
            ],
            dtype=np.float32,
        )
        return ScoredSentence(hit.chunk.doc_id, hit.source, row.idx, row.start, row.end, sentence, rank, feats, typed=typed)

    def answer(self, question: str, hits: list[Hit], query_vector: np.ndarray, focus: Focus | None = None) -> Draft:
        """The draft answer to ``question`` from ``hits``.

        With a ``focus`` (a follow-up whose pronoun was resolved) sentences are ranked for the
        focus, and a sentence is as credible as the better of its two probabilities: "what
        position does she hold?" is answered by the one sentence naming her, which matches the
        searched question's words far better than the two-word focus.
        """
        if not hits:
            return Draft(NO_PASSAGES_TEXT, None, [], True, 0.0)
        if focus is None:
            scored = self.score_sentences(question, hits, query_vector)
        else:
            broad = {(s.doc_id, s.idx): s.prob for s in self.score_sentences(question, hits, query_vector)}
            question, scored = focus.question, self.score_sentences(focus.question, hits, focus.vector)
            for s in scored:
                s.support = max(s.prob, broad.get((s.doc_id, s.idx), 0.0))
        required = requirement(question)
        if scored and required is not None and not holds(required, scored[0].typed):
            # The question asks for a number, a date, a named kind of thing...: a sentence that
            # holds none cannot answer it, however close its words are. The best sentence that
            # holds one leads instead, if it clears the threshold on its own.
            lead = next((s for s in scored if holds(required, s.typed)), None)
            scored = [lead] + [s for s in scored if s is not lead] if lead is not None else []
        confidence = self.answerability(question, scored) if scored else 0.0
        if not scored or confidence < self.threshold:
            return Draft(REFUSAL_TEXT, None, [], True, confidence, tuple(scored[:3]), details={"confidence": round(confidence, 3)})
        chosen = self._select(scored)
        citations = [
            Citation(id=i, source=s.source, start=s.start, end=s.end, quote=s.text) for i, s in enumerate(chosen, 1)
        ]
        short, short_id = self._short_answer(question, chosen)
        parts = [f"{s.text} [{i}]" for i, s in enumerate(chosen, 1)]
        text = " ".join(parts)
        if short is not None:
            text = f"{short} [{short_id}]. {text}"
        return Draft(text, short, citations, False, confidence, tuple(chosen), details={"confidence": round(confidence, 3)})

    @staticmethod
    def answerability(question: str, scored: list[ScoredSentence]) -> float:
        """The probability that ``scored[0]`` (the lead sentence) answers ``question``."""
        lead = scored[0]
        required = requirement(question)
        p_second = max((s.support for s in scored[1:] if required is None or holds(required, s.typed)), default=0.0)
        x = answerability_features(question, lead.features, lead.support, p_second)
        return sigmoid(float(x @ ANSWERABILITY_WEIGHTS) + ANSWERABILITY_BIAS)

    def _select(self, scored: list[ScoredSentence]) -> list[ScoredSentence]:
        best = scored[0]
        chosen = [best]
        if best.prob >= CONFIDENT_SINGLE:
            return chosen
        budget = self.settings.max_cited_chars - len(best.text)
        for s in scored[1:]:
            if len(chosen) >= self.settings.max_sentences or s.prob < RUNNER_UP_RATIO * best.prob:
                break
            if len(s.text) <= budget:
                chosen.append(s)
                budget -= len(s.text)
        return chosen

    def _short_answer(self, question: str, chosen: list[ScoredSentence]) -> tuple[str | None, int]:
        """The typed span of a cited sentence that the question's words gather around, or None.

        Candidates are scored by the question's idf coverage of the words around them (the
        window cue), preferring the best sentence and the exact type asked for. A name is given
        only when its kind is the one asked for (a person for "who"), and only when the question's
        words are near it (coverage >= SHORT_MIN_WINDOW): a wrong short answer is worse than
        none, since the cited sentences already answer in full. On SQuAD (answerable questions,
        all 11 articles) this gives short answers as exact as before (EM 0.142 vs 0.145) with
        fewer wrong ones (answer accuracy 0.694 vs 0.677).
        """
        wanted = expected_type(question)
        q_tokens = list(dict.fromkeys(tokenize(question)))
        q_stems = set(q_tokens)
        lexical = self.index.lexical()
        pick: tuple[float, str, int] | None = None
        for n, sentence in enumerate(chosen, 1):
            anchors = [a for a, _, stem in _token_positions(sentence.text) if stem in q_stems]
            for c in sentence.typed:
                if c.type in _NAME_TYPES and wanted is not AType.NAME and c.type is not wanted:
                    continue
                local = Candidate(c.start - sentence.start, c.end - sentence.start, c.text, c.type)
                window = window_coverage(q_tokens, sentence.text, 0, len(sentence.text), local, lexical)
                if window < SHORT_MIN_WINDOW:
                    continue
                distance = min((abs(local.start - a) for a in anchors), default=len(sentence.text))
                score = window + (0.3 if n == 1 else 0.0) - (0.3 if c.type is not wanted else 0.0) - distance / 1000
                if pick is None or score > pick[0]:
                    pick = (score, c.text, n)
        return (pick[1], pick[2]) if pick else (None, 0)


def _token_positions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, stem) of each content token in ``text``."""
    out = []
    for m in re.finditer(r"\w+", text):
        stem = tokenize(m.group(0))
        if stem:
            out.append((m.start(), m.end(), stem[0]))
    return out
