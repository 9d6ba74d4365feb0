"""The citation gate for generated answers: what a language model wrote -> verified claims.

Pure functions over the model's raw text and the numbered passages it was shown. ``gate`` keeps
a sentence only when

- one of its quotes is found in a passage: exactly, or after white-space / quote-mark / case
  normalisation, or (a repair) in another passage than the one it named, or trimmed to its
  longest verbatim run; a sentence without quotes that copies a passage verbatim is cited to the
  copied words (a repair). Every match is mapped back to exact document offsets;
- the passage sentence holding the quote shares a content word with the question (text that has
  nothing to do with the question, such as an injected instruction, never gets through);
- every number or quantity in the sentence appears in its cited quotes;
- most of what the sentence adds to the question is in its cited quotes.

A "cannot answer" sentinel with nothing verified becomes a refusal. ``rag.answering.llm.generative`` calls the
model and decides between this verdict and the extractive fallback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from rag.answering.citations import locate_quote
from rag.answering.draft import REFUSAL_TEXT
from rag.answering.llm import prompts
from rag.domain import Hit
from rag.records import Citation
from rag.text.answer_kinds import AType, expected_type, typed_candidates
from rag.text.tokens import tokenize, words

logger = logging.getLogger(__name__)

MIN_QUOTE_WORDS = 3  # a shorter "quote" proves nothing
IMPLICIT_MIN_WORDS = 5  # an unquoted sentence must copy at least this many words of a passage
PARTIAL_MIN_SHARE = 0.6  # a misquote is trimmed to its verbatim run if that keeps this share
SUPPORT_MIN = 0.5  # share of a sentence's new content words that its quotes must contain
IMPLICIT_SUPPORT_MIN = 0.8  # the same for an unquoted sentence cited to the words it copied
MIN_KEPT_SHARE = 1 / 3  # below this share of verified sentences, the extractive answer wins
# Words about the passages rather than about the world: not claims that need support.
_META = frozenset(
    tokenize(
        "passage passages source sources according answer question text document quote quoted "
        "sentence contains mentions states says"
    )
)

_QUOTE = re.compile(r'"([^"\n]+)"|“([^”\n]+)”|«([^»\n]+)»|„([^“”\n]+)[“”]')
_NUMS = r"(\d{1,2}(?:\s*(?:,|and)\s*\d{1,2})*)"
# "[1]", "[1, 2]", "[2: ...]", "(passage 1)" and a bare "passage 1" all name passages.
_MARK = re.compile(rf"[\[(]\s*(?:passages?\s*)?{_NUMS}\s*(?::[^\])]*)?[\])]|\bpassages?\s+{_NUMS}\b", re.I)
# "Answer:", "The answer to this question is:", "Answer with quotes:" (echoed prompt) lead nothing.
_LABEL = re.compile(
    r"^\W*(?:(?:the\s+)?(?:final\s+|short\s+)?answer(?:\s+to\s+(?:this|the)\s+question)?\s*(?:is)?\s*:"
    r"|answer\s+with[^:]*:)\s*",
    re.I,
)
_TAG = re.compile(r"</?\s*passage[^>]*>", re.I)
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr gen lt col sgt capt cmdr adm maj sen rep gov pres prof st jr sr no vs etc inc ltd co corp "
    "dept est approx jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
_TOKEN = re.compile(r"[\w$€£]+(?:['’.,]\w+)*%?")
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20", "thirty": "30",
    "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
    "trillion": "1000000000000", "dozen": "12", "half": "0.5", "quarter": "0.25", "twice": "2",
    "double": "2", "triple": "3", "thrice": "3",
}  # "one" is left out: it is far more often a pronoun than a count


# -- records of the gate ------------------------------------------------------------------------
@dataclass(frozen=True)
class Passage:
    """A numbered passage of the prompt: a chunk's exact text and where it lies in its document."""

    source: str
    offset: int  # chunk.start: passage index i is document index offset + i
    text: str
    sentences: tuple[tuple[int, int], ...] = ()  # sentence spans relative to ``text``

    @classmethod
    def from_hit(cls, hit: Hit) -> Passage:
        c = hit.chunk
        return cls(hit.source, c.start, c.text, tuple((s - c.start, e - c.start) for s, e in c.sentences))


@dataclass(frozen=True)
class QuoteMatch:
    """A verified quote: ``passages[passage].text[start:end]``, and the repair that found it."""

    passage: int
    start: int
    end: int
    repair: str | None = None  # None | normalised | renumbered | trimmed | unquoted


@dataclass(frozen=True)
class Claim:
    """One sentence of the model's answer: its words without quotes or markers, and those."""

    text: str
    quotes: tuple[str, ...]
    markers: tuple[int, ...]


@dataclass(frozen=True)
class Verdict:
    """What the gate lets through. ``outcome``: kept | repaired | refused | fallback."""

    outcome: str
    answer: str = ""
    citations: tuple[Citation, ...] = ()
    short_answer: str | None = None
    claims: int = 0
    kept: int = 0
    dropped: tuple[str, ...] = ()  # one reason per dropped sentence
    repairs: tuple[str, ...] = ()
    reason: str = ""


# -- parsing the model's text -------------------------------------------------------------------
def split_claims(raw: str) -> list[str]:
    """Sentences of ``raw``, never split inside a double-quoted span; markers stay attached.

    >>> split_claims('Gen. Ray said so [1] "It did." Then more. [2]')
    ['Gen. Ray said so [1] "It did."', 'Then more. [2]']
    """
    closing = {'"': '"', "“": "”", "«": "»", "„": "“"}
    out: list[str] = []
    buf: list[str] = []
    inside: str | None = None
    for i, ch in enumerate(raw):
        buf.append(ch)
        at_break = i + 1 == len(raw) or raw[i + 1].isspace()
        if inside is not None:
            if ch == inside or ch == "\n" or (inside == "“" and ch == '"'):
                inside = None
                if ch != "\n" and at_break and i and raw[i - 1] in ".!?":  # "... planes." ends it
                    out.append("".join(buf))
                    buf = []
            continue
        if ch in closing:
            inside = closing[ch]
        elif ch == "\n" or (ch in ".!?" and at_break and _ends_sentence(raw, i)):
            out.append("".join(buf))
            buf = []
    out.append("".join(buf))
    merged: list[str] = []
    for s in (s.strip() for s in out):
        if not s:
            continue
        if merged and not re.search(r"\w", _QUOTE.sub("", _MARK.sub("", s))):  # '[1] "..."' after the stop
            merged[-1] = f"{merged[-1]} {s}"
        else:
            merged.append(s)
    return merged


def _ends_sentence(text: str, i: int) -> bool:
    """A full stop ends a sentence unless it closes an abbreviation ("Gen.", "U.S.", "J.")."""
    if text[i] != ".":
        return True
    word = re.search(r"(\S*)$", text[:i]).group(1).lstrip("([\"'“")  # type: ignore[union-attr]
    if "." in word or (len(word) == 1 and word.isupper()):
        return False
    return word.lower() not in _ABBREVIATIONS


def parse_claim(sentence: str) -> Claim | None:
    """The claim of one sentence; None for an empty one or a label such as "Here it is:"."""
    sentence = _TAG.sub(" ", sentence)
    quotes = tuple(next(g for g in m.groups() if g is not None).strip() for m in _QUOTE.finditer(sentence))
    rest = _QUOTE.sub(" ", sentence)
    markers = tuple(int(n) for m in _MARK.finditer(rest) for n in re.findall(r"\d+", m.group(1) or m.group(2)))
    text = _MARK.sub(" ", rest)
    text = re.sub(r"[\[(]\s*[:,;]?\s*[\])]", " ", text)
    text = re.sub(r"\s+([,.;:!?%])", r"\1", " ".join(text.split()))
    text = re.sub(r"^(?:according to|as (?:stated|said|shown) in|in|from)\s*,\s*", "", text, flags=re.I)
    is_label = text.endswith(":")
    text = _LABEL.sub("", text).strip(" -*:,;")
    if is_label and quotes:  # 'The sentence that answers it is: "..."': the quote is the claim
        text = ""
    elif not quotes and (is_label or not re.search(r"\w", text)):
        return None
    return Claim(text, quotes, markers)


def is_refusal(text: str) -> bool:
    """Whether a sentence is the "cannot answer" sentinel (or a close variant of it)."""
    folded = " ".join(text.lower().replace("’", "'").split())
    return any(p in folded for p in prompts.REFUSAL_PHRASES)


def numbers(text: str) -> set[str]:
    """Numbers and number words of ``text``, normalised: ``"1,000 and ninety"`` -> {1000, 90}."""
    found = {d.replace(",", "") for d in _DIGITS.findall(text)}
    return found | {_NUMBER_WORDS[w] for w in words(text) if w in _NUMBER_WORDS}


# -- locating quotes ----------------------------------------------------------------------------
def _tokens(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0).lower().replace("’", "'")) for m in _TOKEN.finditer(text)]


def verbatim_run(text: str, passage: str) -> tuple[int, int, int]:
    """``(start, end, n_words)`` in ``passage`` of the longest word run it shares with ``text``."""
    a, b = _tokens(text), _tokens(passage)
    m = SequenceMatcher(None, [t[2] for t in a], [t[2] for t in b], autojunk=False).find_longest_match(
        0, len(a), 0, len(b)
    )
    if m.size == 0:
        return 0, 0, 0
    return b[m.b][0], b[m.b + m.size - 1][1], m.size


def _order(markers: Sequence[int], n: int) -> list[int]:
    named = [m - 1 for m in dict.fromkeys(markers) if 0 < m <= n]
    return named + [i for i in range(n) if i not in named]


def locate(quote: str, passages: Sequence[Passage], markers: Sequence[int] = ()) -> QuoteMatch | None:
    """Where a model's quote lies, preferring the passages it named; None when it is not there."""
    n_words = len(_tokens(quote))
    if n_words < MIN_QUOTE_WORDS:
        return None
    order = _order(markers, len(passages))
    named = {m - 1 for m in markers if 0 < m <= len(passages)}
    for i in order:
        found = locate_quote(passages[i].text, quote)
        if found is not None:
            exact = passages[i].text[found[0] : found[1]] == quote.strip()
            repair = None if exact and i in named else ("normalised" if not exact else "renumbered")
            return QuoteMatch(i, found[0], found[1], repair)
    best = _best_run(quote, passages, order)
    if best is not None and best[3] >= max(MIN_QUOTE_WORDS, PARTIAL_MIN_SHARE * n_words):
        return QuoteMatch(best[0], best[1], best[2], "trimmed")
    return None


def _best_run(text: str, passages: Sequence[Passage], order: list[int]) -> tuple[int, int, int, int] | None:
    best: tuple[int, int, int, int] | None = None
    for i in order:
        start, end, size = verbatim_run(text, passages[i].text)
        if size and (best is None or size > best[3]):
            best = (i, start, end, size)
    return best


def _support(claim: Claim, q_tokens: set[str], passages: Sequence[Passage]) -> tuple[list[QuoteMatch], str]:
    """The verified spans backing ``claim``, or ``([], reason)`` when it must be dropped."""
    spans = [s for q in claim.quotes if (s := locate(q, passages, claim.markers)) is not None]
    threshold = SUPPORT_MIN
    if not spans:
        best = _best_run(claim.text, passages, _order(claim.markers, len(passages)))
        if best is None or best[3] < IMPLICIT_MIN_WORDS:
            return [], "no verified quote"
        spans, threshold = [QuoteMatch(best[0], best[1], best[2], "unquoted")], IMPLICIT_SUPPORT_MIN
    spans = [s for s in spans if _relevant(s, passages[s.passage], q_tokens)]
    if not spans:
        return [], "quote unrelated to the question"
    quoted = " ".join(passages[s.passage].text[s.start : s.end] for s in spans)
    if not numbers(claim.text) <= numbers(quoted):
        return [], "number not in a cited quote"
    novel = [t for t in dict.fromkeys(tokenize(claim.text)) if t not in q_tokens and t not in _META]
    in_quote = set(tokenize(quoted))
    if novel and sum(t in in_quote for t in novel) < threshold * len(novel):
        return [], "claim goes beyond its quotes"
    return spans, ""


def _relevant(span: QuoteMatch, passage: Passage, q_tokens: set[str]) -> bool:
    """Whether the passage sentences holding the quote share a content word with the question."""
    if not q_tokens:
        return True
    around = [(s, e) for s, e in passage.sentences if s < span.end and span.start < e] or [(span.start, span.end)]
    text = passage.text[min(s for s, _ in around) : max(e for _, e in around)]
    return bool(q_tokens & set(tokenize(text)))


# -- the gate -----------------------------------------------------------------------------------
def gate(raw: str, question: str, passages: Sequence[Passage]) -> Verdict:
    """Judge a model's answer against the passages it was given (see the module docstring)."""
    q_tokens = set(tokenize(question))
    kept: list[tuple[Claim, list[QuoteMatch]]] = []
    dropped: list[str] = []
    seen: list[str] = []
    repeats = 0
    refusal = False
    for sentence in split_claims(raw):
        claim = parse_claim(sentence)
        if claim is None:
            continue
        if is_refusal(claim.text) and not claim.quotes:
            refusal = True
            continue
        key = " ".join(words(claim.text or " ".join(claim.quotes)))
        if key and any(f" {key} " in f" {k} " or f" {k} " in f" {key} " for k in seen):  # small models loop
            repeats += 1
            continue
        spans, reason = _support(claim, q_tokens, passages)
        if spans:
            kept.append((claim, spans))
            seen.append(key)
        else:
            logger.debug("gate dropped %r: %s", sentence[:200], reason)
            dropped.append(reason)
    n_claims = len(kept) + len(dropped)
    common: dict[str, Any] = {"claims": n_claims, "kept": len(kept), "dropped": tuple(dropped)}
    if not kept:
        if refusal:
            return Verdict("refused", REFUSAL_TEXT, reason="the model said the sources do not answer", **common)
        why = "no sentence has a verified quote" if n_claims else "the model wrote no answer sentence"
        return Verdict("fallback", reason=why, **common)
    if len(kept) < MIN_KEPT_SHARE * n_claims:
        return Verdict("fallback", reason=f"only {len(kept)} of {n_claims} sentences verified", **common)
    answer, citations = render(kept, passages)
    repairs = tuple(s.repair for _, spans in kept for s in spans if s.repair) + ("repeated",) * repeats
    outcome = "kept" if not dropped and not repairs and not refusal else "repaired"
    short = short_answer(question, citations, answer)
    return Verdict(outcome, answer, tuple(citations), short, repairs=repairs, **common)


def render(kept: list[tuple[Claim, list[QuoteMatch]]], passages: Sequence[Passage]) -> tuple[str, list[Citation]]:
    """The answer text with ``[n]`` markers and its citations, numbered in order of use."""
    ids: dict[tuple[str, int, int], int] = {}
    citations: list[Citation] = []
    parts: list[str] = []
    for claim, spans in kept:
        used: list[int] = []
        for s in spans:
            p = passages[s.passage]
            key = (p.source, p.offset + s.start, p.offset + s.end)
            if key not in ids:
                ids[key] = len(ids) + 1
                quote = p.text[s.start : s.end]
                citations.append(Citation(id=ids[key], source=p.source, start=key[1], end=key[2], quote=quote))
            if ids[key] not in used:
                used.append(ids[key])
        first = spans[0]
        body = claim.text if len(tokenize(claim.text)) >= 2 else passages[first.passage].text[first.start : first.end]
        parts.append(f"{body.rstrip(' .;:,')} {''.join(f'[{n}]' for n in used)}.")
    return " ".join(parts), citations


def short_answer(question: str, citations: Sequence[Citation], answer: str) -> str | None:
    """A span of the wanted type copied from a cited quote, preferring one the answer states."""
    wanted = expected_type(question)
    if wanted is AType.OTHER:
        return None
    q_words = set(words(question))
    found = [c.text for cit in citations for c in typed_candidates(cit.quote, 0, len(cit.quote), wanted, q_words)]
    stated = [f for f in found if f.lower() in answer.lower()]
    picked = stated or found
    return picked[0] if picked else None


_WH = frozenset("what which who whom whose when where why how".split())


def clean_condensed(output: str, question: str, context: str = "") -> str | None:
    """The model's standalone question, or None when it is not one that can be trusted.

    Trusted means: one line of 3-60 words that is still a question (ends with "?" or keeps the
    follow-up's wh-word), keeps most of the follow-up's content words, and brings in no content
    word that is not in ``context`` (the conversation so far): references are resolved, nothing
    is invented.
    """
    line = next((ln.strip() for ln in output.splitlines() if ln.strip()), "")
    line = re.sub(r"^\W*(?:rewritten|standalone)?\s*question\s*:\s*", "", line, flags=re.I).strip(" *\"'`“”")
    said = words(line)
    if not 3 <= len(said) <= 60 or re.search(r"[<\[\]{}]", line) or is_refusal(line):
        return None
    if " ".join(said) == " ".join(words(question)):
        return None  # unchanged: the rule-based rewrite at least carries the context forward
    if not line.endswith("?") and not (_WH & set(words(question))) <= set(said):
        return None  # a statement, not a question
    own, new = set(tokenize(question)), set(tokenize(line))
    if own and len(own & new) < 0.75 * len(own):
        return None
    if context and new - own - set(tokenize(context)):
        return None  # words from nowhere in the conversation
    return line if line.endswith("?") else f"{line.rstrip('.')}?"
