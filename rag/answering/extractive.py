"""The default, offline answerer: picks the sentences that answer, cites their exact spans.

No generative model. For every sentence of the retrieved passages it computes a few features:
embedding similarity to the question, idf-weighted coverage of the question's content words (in
the sentence, and with its neighbours), whether it holds a candidate of the answer type the
question wants (a percentage, a date, a person...), how close the question's words sit to that
candidate, and the rank of its passage; several again relative to the best sentence's. A logistic
model turns them into the probability that the sentence answers the question; its weights were
fitted on the public SQuAD 2.0 slice with article-grouped cross-validation
(``benchmarks/fit_answerer.py``) and are read from ``extractive_weights.json`` next to this
module. The answer leads with the best sentence that holds an answer of the kind asked for, plus
close runners-up within a citation budget; the short answer is the typed span the question's words gather around. A second,
question-level model decides whether the question is answered at all; under the refusal
threshold, or when no sentence holds an answer of the kind asked for, the answer is an honest
refusal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rag.answering.draft import NO_PASSAGES_TEXT, REFUSAL_TEXT, Draft, ScoredSentence
from rag.answering.weights import load_weights
from rag.config import AnswerSettings
from rag.domain import Hit, SentenceRow, TermStats
from rag.records import Citation
from rag.text.answer_kinds import NAME_TYPES, AType, Candidate, expected_type, holds, requirement, typed_candidates
from rag.text.tokens import tokenize, words

# Two logistic models, fitted by benchmarks/fit_answerer.py and read from extractive_weights.json
# (rag.answering.weights checks their feature names against these). The sentence model's first
# BASE_FEATURES describe a sentence on its own; the "_rel" ones are the same measures minus their
# best value among the question's candidate sentences, so a sentence is also judged against its
# competitors. Held-out figures for every choice below: docs/measurements.md (generated).
BASE_FEATURES = (
    "cos", "lex", "ctx_lex", "type_match", "type_missing", "rank", "len",
    "bigram", "lex_mass", "chunk_cos", "neighbour_cos", "window", "miss_rare",
)
RELATIVE = ("cos", "lex", "ctx_lex", "bigram", "lex_mass", "window", "chunk_cos")
FEATURES = BASE_FEATURES + tuple(f"{f}_rel" for f in RELATIVE)
_RELATIVE_COLUMNS = [BASE_FEATURES.index(f) for f in RELATIVE]
# Answerability: a question-level logistic model over the lead sentence (the best one, or the
# best one holding an answer of the type asked for; see ``answer``): its probability and all its
# features, the best probability among the other sentences that could answer, the wh-words and
# the question's length (``answerability_features``). Fitted to tell answerable SQuAD questions
# from the same questions with their answer paragraph removed from the index (the passages below
# it moving up). Refuse when the answerability is below REFUSAL_THRESHOLD; the trade-off between
# false refusals and refusals of unanswerable questions at each threshold, and the plain
# threshold on the lead sentence's probability that it beats, are in docs/measurements.md.
# RAG_ANSWER__REFUSAL_THRESHOLD moves along the curve.
REFUSAL_THRESHOLD = 0.20
# Cite the best sentence alone when its probability is at least this; otherwise cite it with the
# next best sentences (up to ``max_sentences`` and ``max_cited_chars``) whose probability is at
# least RUNNER_UP_RATIO of the best one's. A lower ratio cites more and finds more answers inside
# the cited text (docs/measurements.md); the default keeps answers short and citations on point.
CONFIDENT_SINGLE = 0.9
RUNNER_UP_RATIO = 0.3
# A short answer needs at least this share of the question's idf mass within WINDOW_CHARS of it.
SHORT_MIN_WINDOW = 0.2


@dataclass(frozen=True)
class Focus:
    """What a follow-up asks about once its pronoun is resolved (``rewrite.Rewrite.focus``)."""

    question: str
    vector: np.ndarray


@dataclass(frozen=True)
class QuestionTerms(TermStats):
    """The index's term statistics for one question's tokens, each idf computed once: every idf
    the sentence features ask for is a question token's, asked for once per sentence and feature."""

    _idf_of: dict[str, float] = field(init=False, repr=False, compare=False)
    _max_idf: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_idf_of", {t: TermStats.idf(self, t) for t in self.df})
        object.__setattr__(self, "_max_idf", TermStats.max_idf(self))

    def idf(self, token: str) -> float:
        value = self._idf_of.get(token)
        return value if value is not None else TermStats.idf(self, token)

    def max_idf(self) -> float:
        return self._max_idf


def idf_coverage(q_tokens: list[str], tokens: set[str], lexical: TermStats) -> float:
    """Share of the question's idf mass whose tokens appear in ``tokens`` (0..1)."""
    if not q_tokens:
        return 0.0
    total = sum(lexical.idf(t) for t in q_tokens)
    return sum(lexical.idf(t) for t in q_tokens if t in tokens) / total if total else 0.0


def with_relative(base: np.ndarray) -> np.ndarray:
    """The BASE_FEATURES rows of one question's candidates with their relative columns added."""
    chosen = base[:, _RELATIVE_COLUMNS]
    return np.concatenate([base, chosen - chosen.max(axis=0, keepdims=True)], axis=1).astype(np.float32)


WINDOW_CHARS = 60


def window_coverage(q_tokens: list[str], text: str, start: int, end: int, c: Candidate, lexical: TermStats) -> float:
    """Question idf coverage of the words around a candidate answer, inside its sentence.

    The classic sliding-window cue: a question is a statement about the answer with the answer
    replaced by a wh-word, so its words gather around the right candidate.
    """
    window = tokenize(text[max(start, c.start - WINDOW_CHARS) : c.start] + " " + text[c.end : min(end, c.end + WINDOW_CHARS)])
    return idf_coverage(q_tokens, set(window), lexical)


def missing_rarest(q_tokens: list[str], context: set[str], lexical: TermStats) -> float:
    """The rarest question word missing from the sentence and its neighbours, as a share of the
    rarest question word's idf: 1.0 when the most specific thing asked about is not there."""
    if not q_tokens:
        return 0.0
    idfs = [lexical.idf(t) for t in q_tokens]
    missing = [i for t, i in zip(q_tokens, idfs) if t not in context]
    return max(missing, default=0.0) / max(idfs) if max(idfs) > 0 else 0.0


_WH_WORDS = ("what", "which", "who", "when", "where", "why", "how")
# The columns of ``answerability_features``, in order.
ANSWERABILITY_FEATURES = (
    ("logit_lead", "logit_second")
    + tuple(f"lead_{f}" for f in FEATURES)
    + tuple(f"wh_{w}" for w in _WH_WORDS)
    + ("question_words",)
)
MODELS = load_weights({"sentence": FEATURES, "answerability": ANSWERABILITY_FEATURES})
SENTENCE_MODEL, ANSWERABILITY_MODEL = MODELS["sentence"], MODELS["answerability"]


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

    def __init__(self, settings: AnswerSettings) -> None:
        self.settings = settings
        self.threshold = settings.refusal_threshold if settings.refusal_threshold is not None else REFUSAL_THRESHOLD

    def score_sentences(self, question: str, hits: list[Hit], query_vector: np.ndarray) -> list[ScoredSentence]:
        """Every distinct sentence of the hits, with features and probability, best first."""
        q_tokens = list(dict.fromkeys(tokenize(question)))
        # Every idf a feature asks for is a question token's: look each up once, not once per
        # sentence and feature (49,000 lookups in the index's statistics for 150 questions).
        index_terms = hits[0].terms if hits else TermStats({}, 0)
        lexical = QuestionTerms({t: index_terms.df.get(t, 0) for t in q_tokens}, index_terms.n)
        stems: dict[tuple[str, int], list[str]] = {}  # a sentence is tokenized once, not again as a neighbour

        def stems_of(hit: Hit, row: SentenceRow) -> list[str]:
            key = (hit.chunk.doc_id, row.idx)
            if key not in stems:
                stems[key] = tokenize(hit.document_text[row.start : row.end])
            return stems[key]

        q_words = set(words(question))
        wanted = expected_type(question)
        seen: set[tuple[str, int]] = set()
        seen_text: set[str] = set()
        out: list[ScoredSentence] = []
        for rank, hit in enumerate(hits):
            if not hit.sentences:  # a chunk deleted by a concurrent ingest
                continue
            doc_id, first, last, text = hit.chunk.doc_id, hit.first, hit.last, hit.document_text
            by_idx = {r.idx: r for r in hit.sentences}
            for idx in range(first, last + 1):
                row = by_idx.get(idx)
                if row is None or (doc_id, idx) in seen:
                    continue
                seen.add((doc_id, idx))
                sentence = text[row.start : row.end]
                if sentence in seen_text:  # the same sentence in a duplicate document
                    continue
                seen_text.add(sentence)
                out.append(self._features(text, row, by_idx, hit, rank, q_tokens, q_words, wanted, query_vector, lexical,
                                          stems_of))
        if out:
            x = with_relative(np.stack([s.features for s in out]))
            for s, row in zip(out, x):
                s.features = row
                s.prob = s.support = sigmoid(float(row @ SENTENCE_MODEL.weights) + SENTENCE_MODEL.bias)
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
        lexical: TermStats,
        stems_of: Callable[[Hit, SentenceRow], list[str]],
    ) -> ScoredSentence:
        sentence = text[row.start : row.end]
        stems = stems_of(hit, row)
        tokens = set(stems)
        context = set(tokens)
        neighbour_cos = 0.0
        for j in (row.idx - 1, row.idx + 1):
            if j in by_idx:
                context.update(stems_of(hit, by_idx[j]))
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
        short, short_id = self._short_answer(question, chosen, hits[0].terms)
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
        return sigmoid(float(x @ ANSWERABILITY_MODEL.weights) + ANSWERABILITY_MODEL.bias)

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

    def _short_answer(self, question: str, chosen: list[ScoredSentence], lexical: TermStats) -> tuple[str | None, int]:
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
        pick: tuple[float, str, int] | None = None
        for n, sentence in enumerate(chosen, 1):
            anchors = [a for a, _, stem in _token_positions(sentence.text) if stem in q_stems]
            for c in sentence.typed:
                if c.type in NAME_TYPES and wanted is not AType.NAME and c.type is not wanted:
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
