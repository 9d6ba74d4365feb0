"""Follow-up questions rewritten into standalone ones, without a language model.

A question that leans on earlier turns ("and what did Russia build with them?") is detected by
its anaphora (pronouns, "what about", a leading "and") or by having almost no content words of
its own. It is rewritten by carrying forward what the earlier turn was about: for a personal
pronoun the person named in the previous answer, otherwise the previous question's content
words that the follow-up does not repeat. The rewrite is shown to the user as the question that
was searched, so it stays readable: ``What did Russia build with them (microelectronics, China)?``
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.records import Turn
from rag.text.answer_kinds import AType, candidates
from rag.text.tokens import stopwords, words

_LEADING = re.compile(r"^\s*(?:and|but|so|also|ok(?:ay)?|then|well|now)\b[\s,]*", re.I)
_ELLIPSIS = re.compile(r"^\s*(?:what|how)\s+about\b|^\s*(?:and\s+)?(?:why|how|when|where|who)\s*\??\s*$", re.I)
_PERSONAL = re.compile(r"\b(he|she|him|her|his|hers)\b", re.I)
_OTHER_PRONOUNS = re.compile(r"\b(it|its|they|them|their|theirs|this|that|these|those|there|the same)\b", re.I)
_WH = frozenset("what which who whom whose when where why how share much many".split())
_GENERIC = frozenset("say said tell told come came go went get got make made do did does done one".split())
_MAX_CARRY = 6


def content_words(text: str) -> list[str]:
    stop = stopwords()
    seen: list[str] = []
    for w in words(text):
        if len(w) < 2 or w in stop or w in _WH or w in _GENERIC or w in seen:
            continue
        seen.append(w)
    return seen


def is_follow_up(question: str) -> bool:
    """Whether the question needs earlier turns to make sense."""
    q = question.strip()
    if _LEADING.match(q) or _ELLIPSIS.match(q):
        return True
    if _PERSONAL.search(q) or _OTHER_PRONOUNS.search(q):
        return True
    return len(content_words(q)) <= 1


_MARKERS = re.compile(r"\s*\[\d+\]")
_SHORT_ANSWER_WORDS = 8


def _short_answer(answer: str) -> str:
    """The answer's leading short answer ("90% [1]. In 2023, ..." -> "90%") when it is short."""
    head = _MARKERS.split(answer.strip(), maxsplit=1)[0].strip().rstrip(".")
    return head if 0 < len(head.split()) <= _SHORT_ANSWER_WORDS else ""


def _person_in(text: str) -> str | None:
    people = [c.text for c in candidates(text) if c.type is AType.PERSON]
    return people[0] if people else None


def _original_case(text: str, word: str) -> str:
    m = re.search(rf"\b{re.escape(word)}\b", text, re.I)
    return m.group(0) if m else word


@dataclass(frozen=True)
class Rewrite:
    """A follow-up made standalone: ``standalone`` is searched and shown; ``focus`` is what the
    answer must be about. They differ when a pronoun was resolved to what the last answer named:
    the last question's other words still help to find the passage, but a sentence matching them
    is the one that answered the last turn, not this one."""

    standalone: str
    focus: str


def rewrite(question: str, history: list[Turn]) -> str:
    """The standalone form of ``question`` given earlier turns (oldest first).

    >>> rewrite("and what did Russia build with them?",
    ...         [Turn(question="What share of microelectronics came from China?", answer="90%")])
    'What did Russia build with them (microelectronics, China)?'
    """
    return rewrite_parts(question, history).standalone


def rewrite_parts(question: str, history: list[Turn]) -> Rewrite:
    """The standalone question and its focus (see ``Rewrite``)."""
    question = " ".join(question.split())
    if not history or not is_follow_up(question):
        return Rewrite(question, question)
    return _carry_forward(question, standalone_history(history)[-1], history[-1])


def _carry_forward(question: str, previous: str, last: Turn) -> Rewrite:
    core = _LEADING.sub("", question).strip() or question
    core = core[0].upper() + core[1:]
    body, mark = (core[:-1], "?") if core.endswith("?") else (core, "?")
    present = set(words(core))
    carry: list[str] = []
    if _PERSONAL.search(core):
        person = _person_in(last.answer) or _person_in(previous)
        if person and not set(words(person)) & present:
            carry.append(person)
    short = _short_answer(last.answer)
    antecedent = [w for w in content_words(short) if w.isalpha() and w not in present]
    if antecedent and not carry and _OTHER_PRONOUNS.search(core):
        # "What does Russia use it for?" after the answer "nitrocellulose from China": the
        # pronoun most likely points at what the last answer named, so that comes first; the
        # last question's words follow ("When did that call take place?" needs "call").
        carry.extend(_original_case(short, w) for w in antecedent[: _MAX_CARRY // 2])
    resolved = len(carry)  # what a pronoun was resolved to
    for w in content_words(previous):
        if w not in present and len(carry) < _MAX_CARRY and _original_case(previous, w) not in carry:
            carry.append(_original_case(previous, w))
    if not carry:
        return Rewrite(core, core)
    standalone = f"{body.rstrip()} ({', '.join(carry)}){mark}"
    focus = f"{body.rstrip()} ({', '.join(carry[:resolved])}){mark}" if resolved else standalone
    return Rewrite(standalone, focus)


def standalone_history(history: list[Turn]) -> list[str]:
    """Each earlier question made standalone using the turns before it."""
    out: list[str] = []
    for i, turn in enumerate(history):
        q = " ".join(turn.question.split())
        out.append(_carry_forward(q, out[-1], history[i - 1]).standalone if i and is_follow_up(q) else q)
    return out
