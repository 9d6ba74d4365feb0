"""Answer-type cues: what kind of answer a question wants, and candidate spans of that kind.

Pure, rule-based and language-specific (English). ``expected_type(question)`` maps wh-words and
their head nouns to a coarse type; ``candidates(text, start, end)`` finds typed spans inside a
sentence with exact offsets. The answerer uses both to prefer sentences that contain an answer of
the wanted kind and to cut the short answer out of a cited sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from rag.text.tokens import stopwords, words


class AType(str, Enum):
    PERCENT = "percent"
    MONEY = "money"
    NUMBER = "number"  # counts and quantities, with their unit when there is one
    DATE = "date"
    DURATION = "duration"
    PERSON = "person"
    PLACE = "place"
    ORG = "org"
    NAME = "name"  # some proper name whose kind we cannot tell
    OTHER = "other"


@dataclass(frozen=True)
class Candidate:
    """A typed span of a document: ``text == document[start:end]``."""

    start: int
    end: int
    text: str
    type: AType


_Q = re.compile  # questions are matched lower-cased

# Words that may stand between "which"/"what" and the noun naming the kind of answer:
# "which Chinese companies", "what third-country banks", "name of the second official".
_MODS = r"(?:(?!(?:is|was|were|are|did|does|do|has|have|had|can|could|will|would|should|may|might|must|of)\b)[\w-]+ ){0,3}?"
_PERSON_NOUNS = (
    r"(?:person|people|man|men|woman|women|official|officials|president|leader|leaders|king|queen|emperor|general|"
    r"commander|secretary|scientist|author|writer|player|minister|senator|ruler|explorer|artist|composer|"
    r"spokesman|spokeswoman|spokesperson|ceo|chief|director|judge|lawmaker|lawmakers|diplomat|envoy|ambassador|"
    r"founder|inventor|politician|candidate|governor|mayor|chairman|chair|economist|engineer|physicist|"
    r"mathematician|philosopher|theologian|poet|architect|pope|bishop|priest|admiral|officer|soldier)"
)
_PLACE_NOUNS = (
    r"(?:country|countries|city|cities|state|states|place|region|continent|town|village|island|river|province|"
    r"county|area|location|nation|nations|capital|territory|sea|ocean|mountain|port|border)"
)
_ORG_NOUNS = (
    r"(?:company|companies|organi[sz]ations?|agency|agencies|bank|banks|party|parties|government|institution|"
    r"institutions|university|universities|college|school|newspaper|network|army|group|team|command|"
    r"department|ministry|court|council|committee|body|outlet|firm|firms|manufacturer|manufacturers|supplier|"
    r"suppliers|corporation|corporations|lender|lenders|union|alliance|club)"
)
# A question that names the kind of answer it wants ("which official", "what city") needs a
# sentence holding a name of that kind; "who" alone is answered in too many shapes. Only kinds
# whose instances are named: "which officials" is often answered "U.S. officials", "which
# region" with "the east".
_NAMED_PERSON_NOUNS = (
    r"(?:person|man|woman|official|president|leader|king|queen|emperor|general|commander|secretary|scientist|"
    r"author|writer|player|minister|senator|ruler|explorer|artist|composer|spokesman|spokeswoman|spokesperson|"
    r"ceo|director|judge|lawmaker|diplomat|envoy|ambassador|founder|inventor|politician|candidate|governor|mayor|"
    r"chairman|economist|engineer|physicist|mathematician|philosopher|theologian|poet|architect|pope|bishop|admiral)"
)
_NAMED_PLACE_NOUNS = (
    r"(?:country|countries|city|cities|state|states|capital|nation|nations|continent|island|river|province|"
    r"county|town|village|sea|ocean|mountain)"
)
_EXPLICIT_KIND = _Q(
    rf"\b(what|which) {_MODS}({_NAMED_PERSON_NOUNS}|{_NAMED_PLACE_NOUNS})\b"
    rf"|\bname of (the|a|an|this|that) {_MODS}({_NAMED_PERSON_NOUNS}|{_NAMED_PLACE_NOUNS})\b"
)

_QUESTION_RULES: list[tuple[re.Pattern[str], AType]] = [
    (_Q(r"\b(what|which)\s+(share|percent(age)?|proportion|fraction|portion|rate)\b|\bwhat %|\bpercent"), AType.PERCENT),
    (_Q(r"\bhow much\b.*\b(cost|pay|paid|spend|spent|worth|price|money|fund|budget|raise|earn)|\bhow much (money|cash|funding)\b|\b(what|which) (price|amount of money|sum)\b"
        r"|\b(dollar|euro|monetary|cash|market) (value|amount|figure|cost)\b|\bwhat (is|was|were|will be) the (cost|price|budget|bill|fee|fine|salary)\b"), AType.MONEY),
    (_Q(r"\bhow long\b(?!.*\b(ago|since)\b)|\bfor how long\b|\bwhat (duration|period of time)\b"), AType.DURATION),
    (_Q(r"\bhow (many|much|far|tall|high|old|large|big|heavy|wide|deep|fast|often)\b|\bwhat (number|amount|quantity|size|population|length|height|speed|distance|temperature)\b|\bwhich number\b"), AType.NUMBER),
    (_Q(r"^\s*when\b|\bwhen (did|was|were|is|will|do|does|had)\b|\b(what|which|in what|in which) (year|date|month|day|decade|century|time|era|period)\b|\bhow long ago\b|\bsince when\b"), AType.DATE),
    (_Q(rf"^\s*(who|whom|whose)\b|\b(who|whom|whose) (is|was|were|did|has|had|said|told|led|raised|warned|announced|contributed)\b|\b(what|which) {_MODS}{_PERSON_NOUNS}\b|\bname of (the|a|an|this|that) {_MODS}{_PERSON_NOUNS}\b"), AType.PERSON),
    (_Q(rf"^\s*where\b|\bwhere (did|was|were|is|are|do|does|had)\b|\b(what|which|in what|in which) {_MODS}{_PLACE_NOUNS}\b|\bname of (the|a|an|this|that) {_MODS}{_PLACE_NOUNS}\b"), AType.PLACE),
    (_Q(rf"\b(what|which) {_MODS}{_ORG_NOUNS}\b|\bname of (the|a|an|this|that) {_MODS}{_ORG_NOUNS}\b"), AType.ORG),
    (_Q(r"\b(what|which) (is|was) the name\b|\bwhat (is|was|were) .* called\b|\bwhat name\b"), AType.NAME),
]


# Types whose absence from the best sentence means the question is not answered: numbers and
# dates are found reliably (digits, number words, month names); an organisation asked for by
# kind ("which company...?") must at least be named. People and places are checked only when
# the question names the kind it wants ("which official", "what city"): "who" and "where"
# alone are answered in too many shapes for absence to mean much.
CHECKED_TYPES = frozenset({AType.PERCENT, AType.MONEY, AType.NUMBER, AType.DATE, AType.DURATION, AType.ORG})


def expected_type(question: str) -> AType:
    """The coarse type of answer a question asks for (OTHER when no cue matches)."""
    q = " ".join(question.lower().split())
    for pattern, atype in _QUESTION_RULES:
        if pattern.search(q):
            return atype
    return AType.OTHER


def required_type(question: str) -> AType | None:
    """The type a sentence must hold a candidate of to answer ``question`` (None: no such check).

    Numbers, amounts, dates and organisations always; people and places when the question names
    the kind of answer it wants ("which official", "the name of the city").
    """
    wanted = expected_type(question)
    if wanted in CHECKED_TYPES:
        return wanted
    if wanted in (AType.PERSON, AType.PLACE) and _EXPLICIT_KIND.search(" ".join(question.lower().split())):
        return wanted
    return None


_COUNT = _Q(r"\bhow many\b|\bwhat number of\b")


def requirement(question: str) -> frozenset[AType] | None:
    """The candidate types of which a sentence must hold one to answer ``question`` (None: no check).

    Stricter than ``compatible``: "how many drones?" is not answered by "90%", "how much did it
    cost?" not by "12,000 homes", "which official?" not by "Russia".
    """
    required = required_type(question)
    if required is None:
        return None
    if required is AType.NUMBER and _COUNT.search(question.lower()):
        return frozenset({AType.NUMBER})
    if required is AType.MONEY and re.search(r"\bhow much of\b", question.lower()):
        return frozenset({AType.MONEY, AType.PERCENT, AType.NUMBER})  # "how much of the budget?": a share will do
    strict = {
        AType.PERSON: {AType.PERSON, AType.NAME},
        AType.PLACE: {AType.PLACE, AType.NAME},
        AType.ORG: {AType.ORG, AType.NAME},
        AType.NUMBER: {AType.NUMBER, AType.PERCENT, AType.MONEY, AType.DURATION},
    }
    return frozenset(strict.get(required, {required}))


def holds(needed: frozenset[AType], found: list[Candidate]) -> bool:
    """Whether the typed candidates ``found`` include one of a type in ``needed``."""
    return any(c.type in needed for c in found)


_MONTHS = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan\.|Feb\.|Mar\.|Apr\.|Aug\.|Sept?\.|Oct\.|Nov\.|Dec\.)"
_NUMWORD = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|dozens?|hundreds|thousands|millions|billions|half|a third|a quarter|twice)"
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_SCALE = r"(?:\s?(?:million|billion|trillion|thousand|hundred|bn|m|k)\b)?"

_PATTERNS: list[tuple[re.Pattern[str], AType]] = [
    (re.compile(rf"\b{_NUM}\s?(?:%|percent\b|per cent\b|percentage points?\b)|\b{_NUMWORD}[- ]percent\b", re.I), AType.PERCENT),
    (re.compile(rf"(?:US)?[$€£¥]\s?{_NUM}{_SCALE}|\b{_NUM}{_SCALE}\s(?:dollars|euros|pounds|yuan|rubles|roubles|yen|francs|marks)\b", re.I), AType.MONEY),
    (re.compile(rf"\b(?:{_MONTHS}\s\d{{1,2}}(?:st|nd|rd|th)?,?\s\d{{3,4}}|\d{{1,2}}(?:st|nd|rd|th)?\s{_MONTHS}\s\d{{3,4}}|{_MONTHS}\s\d{{3,4}}|{_MONTHS}\s\d{{1,2}}(?:st|nd|rd|th)?)\b"), AType.DATE),
    (re.compile(rf"\b{_MONTHS}(?=[\s,.;]|$)|\b\d{{1,2}}(?::\d\d)?\s?(?:am|pm|a\.m\.|p\.m\.)", re.I), AType.DATE),
    (re.compile(r"\b(?:the\s)?(?:1\d|20)\d0s\b|\b(?:\d{1,2}(?:st|nd|rd|th)|(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|twenty-first))[- ]centur(?:y|ies)\b|\b\d{1,2}(?:st|nd|rd|th) and \d{1,2}(?:st|nd|rd|th) centuries\b", re.I), AType.DATE),
    (re.compile(r"\b(?:in|since|by|until|from|during|of|before|after|around|circa|c\.)\s(?:AD\s|BC\s)?(\d{3,4})(?:\s?(?:BC|AD|BCE|CE))?\b"), AType.DATE),
    (re.compile(r"\b(?:1[0-9]|20)\d\d\b"), AType.DATE),
    (re.compile(rf"\b(?:more than |over |nearly |almost |about |around |some |at least )?(?:{_NUM}|{_NUMWORD}|a few|several|many)\s(?:years?|months?|weeks?|days?|decades?|centuries|hours?)\sago\b", re.I), AType.DATE),
    (re.compile(r"\b(?:the\s)?[A-Z][\w-]+(?:\s[A-Z][\w-]+)?\s(?:era|age|period|dynasty|years)\b"), AType.DATE),
    (re.compile(r"\b(?:earlier|later|last|next|this)\s(?:this\s)?(?:week|month|year|decade|century)\b|\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b"), AType.DATE),
    (re.compile(rf"\b(?:more than |over |nearly |almost |about |around |some |at least |up to )?(?:{_NUM}|{_NUMWORD}){_SCALE}(?:\s(?:years?|months?|weeks?|days?|hours?|minutes?|seconds?|decades?|centuries))\b", re.I), AType.DURATION),
    (re.compile(rf"\b(?:more than |over |nearly |almost |about |around |some |at least |up to |roughly )?(?:{_NUM}{_SCALE}|{_NUMWORD}(?:\s(?:times|million|billion|thousand|hundred))?)(?:\s(?:[a-z]+-)?[a-z]+)?", re.I), AType.NUMBER),
]

_TITLES = r"(?:President|Gen\.|General|Secretary|Senator|Sen\.|Rep\.|Mr\.|Mrs\.|Ms\.|Dr\.|Prof\.|Professor|King|Queen|Emperor|Prince|Princess|Pope|Saint|St\.|Sir|Lord|Lady|Chancellor|Minister|Prime Minister|Governor|Mayor|Judge|Justice|Admiral|Colonel|Col\.|Captain|Capt\.|Lt\.|Sgt\.)"
_LEADING_TITLE = re.compile(
    rf"^(?:(?:U\.S\.|US|Treasury|Defense|Foreign|State|Deputy|Vice|Former|former|Chinese|Russian|American|British|French)\s)*"
    rf"(?:{_TITLES}|Secretary of State|Secretary of Defense|Secretary of the Treasury|Secretary-General)\s(?=[A-Z])"
)
_CAP_SEQ = re.compile(
    r"(?:(?<=\s)|(?<=^)|(?<=[\"'(“‘]))"
    r"(?:[A-Z][\w'’.-]*|[A-Z]\.)(?:\s(?:of|de|da|del|der|van|von|la|le|du|the|and|for|al|bin|ibn)\s[A-Z][\w'’.-]*|\s(?:[A-Z][\w'’.-]*|[A-Z]\.|\d+))*"
)
_ORG_WORDS = frozenset(
    "inc inc. corp corp. corporation company co. ltd ltd. llc university college institute school bank party "
    "army navy command congress parliament senate council committee department ministry agency administration "
    "association society union league federation foundation church court commission office bureau group "
    "times post news network press reuters cnn bbc nato un eu partners holdings group capital industries "
    "systems technologies motors airlines energy pharmaceuticals labs media shipping logistics consulting "
    "ventures enterprises associates brothers trust fund".split()
)
# "the engineering firm Oskarsson Partners": a name right after one of these is an organisation.
_ORG_BEFORE = re.compile(
    r"\b(?:firm|company|companies|group|bank|agency|manufacturer|maker|supplier|lender|carrier|airline|"
    r"start-?up|conglomerate|insurer|retailer|publisher|broadcaster|contractor|developer|operator)\s$"
)
_PLACES = frozenset(
    "africa america americas antarctica asia australia europe oceania arctic atlantic pacific mediterranean "
    "afghanistan albania algeria argentina armenia austria azerbaijan bangladesh belarus belgium bolivia brazil "
    "bulgaria cambodia canada chile china colombia croatia cuba cyprus czechia denmark egypt england estonia "
    "ethiopia finland france georgia germany ghana greece hungary india indonesia iran iraq ireland israel italy "
    "japan jordan kazakhstan kenya korea kosovo kuwait latvia lebanon libya lithuania malaysia mexico moldova "
    "mongolia morocco myanmar nepal netherlands nigeria norway pakistan palestine peru philippines poland "
    "portugal qatar romania russia rwanda scotland serbia singapore slovakia slovenia somalia spain sudan sweden "
    "switzerland syria taiwan thailand tunisia turkey uganda ukraine uzbekistan venezuela vietnam wales yemen "
    "zimbabwe britain prussia persia byzantium normandy gaul rome constantinople london paris berlin moscow "
    "beijing washington kyiv kiev tokyo new york boston california texas florida virginia massachusetts "
    "ohio quebec montreal edinburgh glasgow".split()
)
_DEMONYMS = (
    "Chinese Japanese Vietnamese Taiwanese Portuguese Lebanese Sudanese Burmese Russian Ukrainian Belarusian "
    "Indian Iranian Syrian Italian Canadian Australian Brazilian Egyptian Nigerian Norwegian Hungarian Romanian "
    "Bulgarian Serbian Croatian Georgian Armenian Estonian Latvian Lithuanian Austrian Belgian Colombian "
    "Argentine Argentinian Peruvian Venezuelan Ethiopian Algerian Tunisian Libyan Indonesian Malaysian "
    "Palestinian Jordanian Persian Prussian Bavarian Byzantine Roman Norman Mongol Mongolian European Korean "
    "Mexican Cuban Chilean Kenyan Moroccan German British English Scottish Irish Welsh Polish Swedish Danish "
    "Finnish Turkish Spanish Kurdish Czech Slovak Dutch French Greek Swiss Soviet American African Asian Arab "
    "Israeli Iraqi Saudi Pakistani Afghan Thai Western Eastern Northern Southern Sino Anglo Franco "
    "Christian Muslim Islamic Jewish Catholic Protestant"
).split()
_DEMONYM = re.compile(rf"^(?:[A-Z][a-z]+-)*(?:{'|'.join(_DEMONYMS)})$")
_NOT_NAMES = frozenset(
    "the a an in on at of for to and but or so as by with from this that these those it its he she they we i "
    "his her their our my after before during while when if however although since because there here".split()
)


def candidates(text: str, start: int = 0, end: int | None = None) -> list[Candidate]:
    """Typed candidate spans of ``text[start:end]`` with absolute offsets, left to right."""
    end = len(text) if end is None else end
    out: list[Candidate] = []
    taken: list[tuple[int, int]] = []

    def overlaps(a: int, b: int) -> bool:
        return any(a < y and x < b for x, y in taken)

    for pattern, atype in _PATTERNS:
        for m in pattern.finditer(text, start, end):
            a, b = (m.start(1), m.end(1)) if m.re.groups and m.lastindex and atype is AType.DATE else m.span()
            a, b = _trim(text, a, b)
            if atype is AType.NUMBER:
                a, b = _number_span(text, a, b)
            if a < b and not overlaps(a, b):
                out.append(Candidate(a, b, text[a:b], atype))
                taken.append((a, b))
    for m in _CAP_SEQ.finditer(text, start, end):
        for a, b in _split_at_sentence_ends(text, *m.span()):
            a, b = _trim(text, a, b)
            name = text[a:b]
            if a >= b or overlaps(a, b) or name.lower() in _NOT_NAMES:
                continue
            # A capitalised function word is no part of a name ("And Russia", "The Biden
            # administration"): drop it, and judge the rest as the sentence's first word.
            initial = a == start
            first, _, rest = name.partition(" ")
            if rest and first.lower() in _NOT_NAMES:
                a, name = a + len(first) + 1, rest
            # A capitalised word that merely starts the sentence is not a name.
            if initial and " " not in name and name.lower() not in _PLACES:
                continue
            # Nor are nationalities used as an adjective ("Chinese companies", "Sino-Russian ties",
            # "Chinese and Russian companies").
            if all(_DEMONYM.match(part) for part in re.split(r",? and |, ", name)) and re.match(r"\s[a-z]", text[b : b + 2]):
                continue
            kind = _name_type(text, a, name)
            taken.append((a, b))
            titled = _LEADING_TITLE.match(name)
            if titled and titled.end() < len(name):
                # "Secretary of State Antony Blinken": the person is the name after the title.
                a += titled.end()
                name, kind = text[a:b], AType.PERSON
            out.append(Candidate(a, b, name, kind))
    return sorted(out, key=lambda c: c.start)


_SENTENCE_END = re.compile(r"(?<=[a-z]{3})\.\s")  # "China. Gen." ends a sentence; "Gen. Chris" does not


def _split_at_sentence_ends(text: str, a: int, b: int) -> list[tuple[int, int]]:
    pieces = []
    for m in _SENTENCE_END.finditer(text, a, b):
        pieces.append((a, m.start() + 1))
        a = m.end()
    pieces.append((a, b))
    return pieces


_WEAK_NUMBERS = frozenset({"one", "half", "twice", "a third", "a quarter"})


def _number_span(text: str, a: int, b: int) -> tuple[int, int]:
    """Drop a trailing function word taken as a unit ("one of" -> "one"); empty if too weak."""
    words = text[a:b].split(" ")
    if len(words) > 1 and words[-1].lower() in stopwords():
        b = a + len(" ".join(words[:-1]))
    if text[a:b].lower() in _WEAK_NUMBERS or words[0].lower() in ("twice", "once"):
        return a, a  # "twice outside the town hall" counts nothing
    return a, b


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a] in " ,;:'\"“”‘’()":
        a += 1
    while b > a and text[b - 1] in " ,;:'\"“”‘’().":
        if text[b - 1] == "." and re.search(r"(?:\b[A-Z]|\bSt|\bJr|\bSr|\bInc|\bCo|\bLtd)\.$", text[a:b]):
            break
        b -= 1
    if text[a:b].endswith("'s") or text[a:b].endswith("’s"):
        b -= 2
    return a, b


def _name_type(text: str, a: int, name: str) -> AType:
    words = [w.lower().strip(".,") for w in name.split()]
    if any(w in _ORG_WORDS for w in words):
        return AType.ORG
    if all(w in _PLACES or w in {"new", "united", "states", "kingdom", "south", "north", "east", "west", "of", "the"} for w in words):
        return AType.PLACE
    before = text[max(0, a - 20) : a]
    if _ORG_BEFORE.search(before):
        return AType.ORG
    if re.search(rf"{_TITLES}\s$", before) or re.match(rf"{_TITLES}\s", name):
        return AType.PERSON
    if re.search(r"\b(?:in|at|from|to|near|across|into|throughout)\s$", before) and len(words) <= 3:
        return AType.PLACE
    if 2 <= len(words) <= 4 and all(w[:1].isalpha() for w in words):
        return AType.PERSON if not any(w in {"of", "the", "and"} for w in words) else AType.NAME
    return AType.NAME


def compatible(wanted: AType, found: AType) -> bool:
    """Whether a candidate of type ``found`` can answer a question wanting ``wanted``."""
    if wanted is found:
        return True
    related = {
        AType.NUMBER: {AType.PERCENT, AType.MONEY, AType.DURATION},
        AType.DURATION: {AType.NUMBER},
        AType.DATE: set(),
        AType.MONEY: {AType.NUMBER},
        AType.PERCENT: set(),
        # "Who" in news often means a country or an organisation ("who is responsible?").
        AType.PERSON: {AType.NAME, AType.ORG, AType.PLACE},
        AType.PLACE: {AType.NAME},
        AType.ORG: {AType.NAME},
        AType.NAME: {AType.PERSON, AType.PLACE, AType.ORG},
    }
    return found in related.get(wanted, set())


NAME_TYPES = frozenset({AType.PERSON, AType.PLACE, AType.ORG, AType.NAME})
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
        if c.type in NAME_TYPES:
            if (cand_words - stop - _TITLE_WORDS) & question_words:
                continue
        elif cand_words <= question_words:
            continue
        out.append(c)
    return out
