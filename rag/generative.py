"""Generative answers through llama-index LLM connectors, behind a citation gate.

The model writes; ``gate`` decides what the user sees. The prompt (``rag.prompts``) numbers the
retrieved passages, fences them as data and asks for sentences that carry an exact supporting
quote. ``gate`` then keeps a sentence only when

- one of its quotes is found in a passage: exactly, or after white-space / quote-mark / case
  normalisation, or (a repair) in another passage than the one it named, or trimmed to its
  longest verbatim run; a sentence without quotes that copies a passage verbatim is cited to the
  copied words (a repair). Every match is mapped back to exact document offsets;
- the passage sentence holding the quote shares a content word with the question (text that has
  nothing to do with the question, such as an injected instruction, never gets through);
- every number or quantity in the sentence appears in its cited quotes;
- most of what the sentence adds to the question is in its cited quotes.

A "cannot answer" sentinel with nothing verified becomes a refusal. When nothing, or too little
of the model's answer survives, the extractive answer is returned instead. The record says which
happened: ``details["generation"]`` is ``kept``, ``repaired``, ``fallback`` or ``refused``.
Streaming shows only gated text, a verified sentence at a time (``GenerativeAnswerer.stream``).

Failure policy: a configuration mistake (no model name, missing GGUF file, connector package
not installed) raises ``ConfigError`` when the answerer is built; a server or connection error
while answering is logged and the user gets the extractive answer, with
``details["reason"]`` naming the LLM error.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag import prompts
from rag.answer import NO_PASSAGES_TEXT, REFUSAL_TEXT, Draft, typed_candidates
from rag.answer_types import AType, expected_type
from rag.citations import locate_quote
from rag.config import LLMSettings, Settings
from rag.domain import Hit
from rag.errors import ConfigError
from rag.index import Index
from rag.lexical import tokenize, words
from rag.records import Citation, Turn
from rag.rewrite import is_follow_up, rewrite

logger = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
MIN_QUOTE_WORDS = 3  # a shorter "quote" proves nothing
IMPLICIT_MIN_WORDS = 5  # an unquoted sentence must copy at least this many words of a passage
PARTIAL_MIN_SHARE = 0.6  # a misquote is trimmed to its verbatim run if that keeps this share
SUPPORT_MIN = 0.5  # share of a sentence's new content words that its quotes must contain
IMPLICIT_SUPPORT_MIN = 0.8  # the same for an unquoted sentence cited to the words it copied
MIN_KEPT_SHARE = 1 / 3  # below this share of verified sentences, the extractive answer wins
GGUF_CONTEXT = 4096
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
class Span:
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
def split_sentences(raw: str) -> list[str]:
    """Sentences of ``raw``, never split inside a double-quoted span; markers stay attached.

    >>> split_sentences('Gen. Ray said so [1] "It did." Then more. [2]')
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


def locate(quote: str, passages: Sequence[Passage], markers: Sequence[int] = ()) -> Span | None:
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
            return Span(i, found[0], found[1], repair)
    best = _best_run(quote, passages, order)
    if best is not None and best[3] >= max(MIN_QUOTE_WORDS, PARTIAL_MIN_SHARE * n_words):
        return Span(best[0], best[1], best[2], "trimmed")
    return None


def _best_run(text: str, passages: Sequence[Passage], order: list[int]) -> tuple[int, int, int, int] | None:
    best: tuple[int, int, int, int] | None = None
    for i in order:
        start, end, size = verbatim_run(text, passages[i].text)
        if size and (best is None or size > best[3]):
            best = (i, start, end, size)
    return best


def _support(claim: Claim, q_tokens: set[str], passages: Sequence[Passage]) -> tuple[list[Span], str]:
    """The verified spans backing ``claim``, or ``([], reason)`` when it must be dropped."""
    spans = [s for q in claim.quotes if (s := locate(q, passages, claim.markers)) is not None]
    threshold = SUPPORT_MIN
    if not spans:
        best = _best_run(claim.text, passages, _order(claim.markers, len(passages)))
        if best is None or best[3] < IMPLICIT_MIN_WORDS:
            return [], "no verified quote"
        spans, threshold = [Span(best[0], best[1], best[2], "unquoted")], IMPLICIT_SUPPORT_MIN
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


def _relevant(span: Span, passage: Passage, q_tokens: set[str]) -> bool:
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
    kept: list[tuple[Claim, list[Span]]] = []
    dropped: list[str] = []
    seen: list[str] = []
    repeats = 0
    refusal = False
    for sentence in split_sentences(raw):
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
    common = {"claims": n_claims, "kept": len(kept), "dropped": tuple(dropped)}
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


def render(kept: list[tuple[Claim, list[Span]]], passages: Sequence[Passage]) -> tuple[str, list[Citation]]:
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
    return (stated or found or [None])[0]


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


# -- the answerer -------------------------------------------------------------------------------
class ChatLLM(Protocol):
    """The part of a llama-index ``LLM`` this module uses (tests may pass a fake)."""

    def chat(self, messages: Sequence[Any], **kwargs: Any) -> Any: ...

    def stream_chat(self, messages: Sequence[Any], **kwargs: Any) -> Iterator[Any]: ...


class Fallback(Protocol):
    name: str

    def answer(self, question: str, hits: list[Hit], query_vector: np.ndarray) -> Draft: ...


class GenerativeAnswerer:
    """An LLM answer behind the citation gate, with the extractive answer as the fallback."""

    def __init__(
        self,
        llm: ChatLLM,
        name: str,
        fallback: Fallback,
        settings: LLMSettings | None = None,
        closer: Callable[[], None] | None = None,
    ) -> None:
        self.llm = llm
        self.name = name
        self.fallback = fallback
        self.settings = settings or LLMSettings()
        self._closer = closer

    @classmethod
    def from_settings(cls, index: Index, settings: Settings, fallback: Fallback) -> GenerativeAnswerer:
        """The answerer ``settings.answer.answerer`` names; ConfigError for a bad configuration."""
        kind, llm_settings = settings.answer.answerer, settings.llm
        if kind == "openai":
            url = llm_settings.base_url or OPENAI_URL
            key = os.environ.get(llm_settings.api_key_env)
            if url == OPENAI_URL and not key:
                raise ConfigError(
                    f"the openai answerer needs an API key in ${llm_settings.api_key_env} (RAG_LLM__API_KEY_ENV)"
                )
            llm = _openai_like(url, llm_settings.model, key or "none", llm_settings)
            return cls(llm, f"openai:{llm_settings.model}", fallback, llm_settings)
        if kind == "ollama":
            return cls(_ollama(llm_settings), f"ollama:{llm_settings.model}", fallback, llm_settings)
        if kind == "gguf":
            server = LocalGGUFServer(_gguf_path(llm_settings))
            llm = _openai_like(f"{server.url}/v1", server.alias, "none", llm_settings)
            return cls(llm, f"gguf:{server.alias}", fallback, llm_settings, closer=server.close)
        raise ConfigError(f"answerer {kind!r} is not a generative one (openai, ollama or gguf)")

    def close(self) -> None:
        """Stop the in-process GGUF server, if this answerer started one."""
        if self._closer is not None:
            self._closer()
            self._closer = None

    def messages(self, question: str, hits: list[Hit]) -> list[Any]:
        from llama_index.core.llms import ChatMessage

        body = "\n\n".join(prompts.fence_passage(n, h.source, h.chunk.text) for n, h in enumerate(hits, 1))
        user = prompts.ANSWER_USER.format(passages=body, question=question)
        return [ChatMessage(role="system", content=prompts.ANSWER_SYSTEM), ChatMessage(role="user", content=user)]

    def answer(self, question: str, hits: list[Hit], query_vector: np.ndarray) -> Draft:
        """The gated LLM answer, or the extractive one when the LLM fails or too little verifies."""
        *_, draft = self._generate(question, hits, query_vector, streaming=False)
        assert isinstance(draft, Draft)
        return draft

    def stream(self, question: str, hits: list[Hit], query_vector: np.ndarray) -> Iterator[str | Draft]:
        """Yield the answer text so far, then the ``Draft`` (authoritative).

        Only gated text is ever shown: each time the model finishes a sentence, the sentences
        written so far pass the gate and the verified ones are yielded (the text grows by whole
        sentences). At the end the draft's text is yielded too when it extends what was shown
        (e.g. the extractive fallback when nothing was shown); otherwise the final record
        replaces the streamed text. Raw model text (and whatever a passage injected into it)
        never reaches the user.
        """
        yield from self._generate(question, hits, query_vector, streaming=True)

    def _generate(
        self, question: str, hits: list[Hit], query_vector: np.ndarray, streaming: bool
    ) -> Iterator[str | Draft]:
        if not hits:
            details = {"generation": "refused", "llm": self.name, "reason": "no passages retrieved"}
            yield Draft(NO_PASSAGES_TEXT, None, [], True, 0.0, answerer=self.name, details=details)
            return
        started = time.perf_counter()
        text, shown = "", ""
        try:
            if streaming:
                passages = [Passage.from_hit(h) for h in hits]
                done = 0
                for chunk in self.llm.stream_chat(self.messages(question, hits)):
                    text += getattr(chunk, "delta", None) or ""
                    sentences = split_sentences(text)[:-1]  # the last one may be unfinished
                    if len(sentences) > done:
                        done = len(sentences)
                        verified = gate("\n".join(sentences), question, passages).answer
                        if verified and verified != shown and verified.startswith(shown):
                            shown = verified
                            yield shown
            else:
                text = self.llm.chat(self.messages(question, hits)).message.content or ""
        except Exception as e:  # noqa: BLE001 - connectors raise many types; the user still gets an answer
            first_line = str(e).splitlines()[0] if str(e) else ""
            reason = f"LLM error: {type(e).__name__}" + (f": {first_line}" if first_line else "")
            logger.warning("%s failed (%s); answering extractively", self.name, reason)
            draft = self._fallback(question, hits, query_vector, reason, started, Verdict("fallback"))
        else:
            draft = self._judge(text, question, hits, query_vector, started)
        if streaming and draft.answer != shown and draft.answer.startswith(shown):
            yield draft.answer
        yield draft

    def _judge(self, text: str, question: str, hits: list[Hit], query_vector: np.ndarray, started: float) -> Draft:
        logger.debug("%s wrote %r", self.name, text[:2000])
        verdict = gate(text, question, [Passage.from_hit(h) for h in hits])
        if verdict.outcome == "fallback":
            logger.info("%s answer replaced by the extractive one: %s", self.name, verdict.reason)
            return self._fallback(question, hits, query_vector, verdict.reason, started, verdict)
        details = self._details(verdict, started)
        if verdict.outcome == "refused":
            return Draft(REFUSAL_TEXT, None, [], True, 0.0, answerer=self.name, details=details)
        confidence = verdict.kept / verdict.claims if verdict.claims else 0.0
        citations = list(verdict.citations)
        short = verdict.short_answer
        return Draft(verdict.answer, short, citations, False, confidence, answerer=self.name, details=details)

    def _details(self, verdict: Verdict, started: float) -> dict[str, Any]:
        details: dict[str, Any] = {
            "generation": verdict.outcome,
            "llm": self.name,
            "llm_ms": round((time.perf_counter() - started) * 1000, 1),
            "sentences": verdict.claims,
            "dropped_sentences": len(verdict.dropped),
            "dropped_reasons": list(verdict.dropped),
            "repairs": list(verdict.repairs),
        }
        if verdict.reason:
            details["reason"] = verdict.reason
        return details

    def _fallback(
        self, question: str, hits: list[Hit], query_vector: np.ndarray, reason: str, started: float, verdict: Verdict
    ) -> Draft:
        draft = self.fallback.answer(question, hits, query_vector)
        details = {**draft.details, **self._details(replace(verdict, reason=reason), started)}
        return replace(draft, answerer=f"{self.fallback.name}-fallback", details=details)

    def condense(self, question: str, history: list[Turn]) -> str:
        """The follow-up rewritten as a standalone question by the LLM; the rule-based rewrite
        (``rag.rewrite.rewrite``) when the LLM fails or returns something unusable."""
        if not history or not self.settings.condense_followups or not is_follow_up(question):
            return rewrite(question, history)
        from llama_index.core.llms import ChatMessage

        lines = []
        for turn in history[-3:]:
            answer = re.sub(r"\s?\[\d+\]", "", turn.answer)[:300]
            lines.append(f"User: {turn.question}\nAssistant: {answer}")
        user = prompts.CONDENSE_USER.format(history="\n".join(lines), question=question)
        messages = [ChatMessage(role="system", content=prompts.CONDENSE_SYSTEM), ChatMessage(role="user", content=user)]
        try:
            output = self.llm.chat(messages).message.content or ""
        except Exception as e:  # noqa: BLE001 - as in stream(): fall back, never fail the question
            logger.warning("%s could not condense (%s: %s); rewriting by rule", self.name, type(e).__name__, e)
            return rewrite(question, history)
        condensed = clean_condensed(output, question, "\n".join(lines))
        if condensed is None:
            logger.info("%s condensed %r into unusable %r; rewriting by rule", self.name, question, output[:99])
            return rewrite(question, history)
        return condensed


# -- connectors ---------------------------------------------------------------------------------
def _openai_like(url: str, model: str, key: str, s: LLMSettings) -> Any:
    try:
        from llama_index.llms.openai_like import OpenAILike
    except ImportError as e:
        raise ConfigError(
            "the openai and gguf answerers need llama-index-llms-openai-like: pip install 'rag-cite[llm]'"
        ) from e
    return OpenAILike(
        api_base=url, model=model, api_key=key, is_chat_model=True, timeout=s.timeout_s,
        max_tokens=s.max_tokens, temperature=s.temperature, max_retries=1,
    )


def _ollama(s: LLMSettings) -> Any:
    if s.model in ("", "default"):
        raise ConfigError("the ollama answerer needs a model name: set RAG_LLM__MODEL, e.g. RAG_LLM__MODEL=llama3.2")
    try:
        from llama_index.llms.ollama import Ollama
    except ImportError as e:
        raise ConfigError("the ollama answerer needs llama-index-llms-ollama: pip install 'rag-cite[llm]'") from e
    return Ollama(
        model=s.model, base_url=s.ollama_url, temperature=s.temperature, request_timeout=s.timeout_s,
        additional_kwargs={"num_predict": s.max_tokens},
    )


def _gguf_path(s: LLMSettings) -> Path:
    if s.gguf_path is None:
        raise ConfigError("the gguf answerer needs a model file: set RAG_LLM__GGUF_PATH=/path/to/model.gguf")
    path = Path(s.gguf_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"RAG_LLM__GGUF_PATH ({path}) is not a file")
    return path


class LocalGGUFServer:
    """llama.cpp's OpenAI-compatible HTTP server (xllamacpp) on 127.0.0.1, inside this process.

    llama-index talks to it through ``OpenAILike`` like to any other server, so the gguf answerer
    needs no source build of llama-cpp-python.
    """

    def __init__(self, path: Path, n_ctx: int = GGUF_CONTEXT, threads: int | None = None) -> None:
        try:
            import xllamacpp
        except ImportError as e:
            raise ConfigError("the gguf answerer needs xllamacpp: pip install xllamacpp") from e
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the OS picks a free port
        params.n_ctx = n_ctx
        params.n_parallel = 1
        params.verbosity = 0
        # Half the cores and no busy-polling: on a shared machine spinning threads slow it 3-4x.
        n = threads or max(1, min(4, (os.cpu_count() or 2) // 2))
        for cpu in (params.cpuparams, params.cpuparams_batch):
            cpu.n_threads = n
            cpu.poll = 0
        self.alias = path.stem
        try:
            self._server: Any = xllamacpp.Server(params)
        except Exception as e:  # noqa: BLE001 - the extension raises plain RuntimeErrors
            raise ConfigError(f"could not serve {path}: {e}") from e
        self.url: str = self._server.listening_address
        logger.info("serving %s at %s", path.name, self.url)

    def close(self) -> None:
        """Stop the server (its destructor joins llama.cpp's threads)."""
        self._server = None
