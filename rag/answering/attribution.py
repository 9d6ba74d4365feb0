"""Who a cited claim is attributed to: "X said", "according to X", "X told lawmakers that".

Pure functions over a document's exact text. ``find_attribution(text, start, end, claim)``
looks at the cited sentence ``text[start:end]`` and returns the speaker phrase with its exact
document offsets (``text[s.start:s.end] == s.text``), or None. Nothing is invented: a speaker is
only ever a phrase of the document, found by one of these English reporting patterns:

- trailing: "..., a second official said." / "...," Marsh told the council. / "...," said Tomas Varga.
- leading: "Health officials said 38 cases..." / "Gen. Chris Cavoli, commander of ..., told
  lawmakers that ..." / "Analysts estimated that ..."
- "according to X" anywhere in the sentence.
- the paragraph: a sentence inside a quotation is attributed by the speaker after the closing
  quote mark ("... That is twice our usual rate," she said.).

A pronoun speaker ("she said") is replaced by the nearest named speaker attributed earlier in the
same paragraph or the one before it; with none, there is no attribution. The claim (``claim``:
document offsets of the short answer) must lie outside the speaker phrase: "Who told lawmakers
that ...?" is answered by the speaker, not by something the speaker said.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.text.sentences import split_sentences

# Reporting verbs. Leading "X <verb> ..." needs "that" after all but "said"/"says":
# "Yellen warned China of consequences" reports an act, "Yellen warned that ..." a claim.
_REPORT = (
    r"(?:said|says|say|told|tells|added|adds|stated|states|noted|notes|wrote|writes|reported|reports|announced|"
    r"announces|confirmed|confirms|explained|explains|insisted|insists|claimed|claims|estimated|estimates|argued|"
    r"argues|warned|warns|acknowledged|acknowledges|predicted|predicts|believe|believes|found|finds|concluded|"
    r"concludes|showed|shows|show|projected|projects|forecast|forecasts|calculated|calculates)"
)
# Tokens of a speaker phrase: abbreviations with their period ("U.S.", "Gen.", "Dr."), then words.
_TOKEN = r"(?:(?:[A-Z]\.){2,}|(?:Gen|Dr|Mr|Mrs|Ms|Prof|Sen|Rep|Lt|Col|Capt|Sgt|St|Jr|Sr)\.|[\w'’&-]+)"
_PHRASE = rf"{_TOKEN}(?: {_TOKEN}){{0,9}}"
_AUX = r"(?:(?:has|have|had|also|again|later|previously|repeatedly|now) )*"
_AUX_END = re.compile(r"(?: (?:has|have|had|also|again|later|previously|repeatedly|now))+$")
# After a trailing "X said": adverbials ("on Monday", "in a statement") up to the sentence's end,
# never a second clause ("..., creating the model for Stalinist states and purging ...").
_TAIL = r"(?: (?:(?!\b(?:and|or|but)\b)[^,.;:!?“”\"]){1,60})?(?:[.!?][”\"]?\s*$|, (?:adding|citing|noting|saying|according)\b)"

_TRAILING = re.compile(rf"(?:[,?!][”\"]?|[”\"])\s+(?P<speaker>{_PHRASE}) {_AUX}{_REPORT}\b(?P<tail>{_TAIL})")
_INVERTED = re.compile(rf"(?:[,?!][”\"]?|[”\"])\s+{_REPORT} (?P<speaker>{_PHRASE})(?P<appos>, [^,.;!?]{{2,80}})?[.!?]?[”\"]?\s*$")
_LEADING = re.compile(
    rf"^(?:[^,]{{2,40}}, )?(?P<speaker>{_PHRASE})(?P<appos>, [^,]{{2,80}},)? {_AUX}"
    rf"(?:(?:said|says|say) (?:that )?|(?:told|tells) {_PHRASE} that |{_REPORT} that )"
)
_ACCORDING = re.compile(rf"\b[Aa]ccording to (?P<speaker>{_PHRASE})(?P<appos>, [^,.;!?]{{2,80}})?")

# Words that make a phrase a plausible speaker: people, bodies and documents that state things.
SPEAKER_NOUNS = frozenset(
    "official officials spokesperson spokesman spokeswoman spokespeople analyst analysts economist economists "
    "minister ministry secretary director executive executives chief president chairman chairwoman chair head "
    "researcher researchers scientist scientists expert experts source sources report reports study studies "
    "survey data figures records documents document statement authority authorities agency department office "
    "government council committee board union company firm bank police investigators prosecutors lawyer lawyers "
    "officer officers spokesperson commander general mayor governor senator lawmaker lawmakers diplomat diplomats "
    "envoy ambassador leader leaders administration regulator regulators operator organisers organizers group "
    "people residents witnesses doctor doctors health nurse nurses teacher teachers workers member members "
    "department's official's ministry's".split()
)
PRONOUNS = frozenset({"he", "she", "they"})
LOOK_BACK = 6  # sentences searched for the speaker a pronoun names (a text without blank lines is one paragraph)
# A phrase holding one of these is a clause, not a speaker ("which Russia used ...").
_NOT_IN_SPEAKER = frozenset(
    "which that who whom whose where when while because if as but although since it this these those there "
    "is are was were be been being them him us me we i you our your let let's".split()
)
_DANGLING = frozenset("and or but of the a an to in on at for with by from".split())
_SENTENCE_INITIAL = frozenset("the a an its their his her one some many most two three several other".split())


@dataclass(frozen=True)
class Speaker:
    """A speaker phrase of a document: ``document[start:end] == text``."""

    start: int
    end: int
    text: str


def paragraph_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The ``[start, end)`` of the paragraph (text between blank lines) holding ``text[start:end]``."""
    before = [m.end() for m in re.finditer(r"\n[ \t]*\n", text[:start])]
    after = re.search(r"\n[ \t]*\n", text[end:])
    return (before[-1] if before else 0), (end + after.start() if after else len(text))


def is_speaker(phrase: str, sentence_initial: bool = False) -> bool:
    """Whether ``phrase`` can name who states something: a pronoun, a speaker noun, or a name."""
    tokens = phrase.split()
    lower = [t.lower().strip("'’") for t in tokens]
    if not tokens or any(t in _NOT_IN_SPEAKER for t in lower) or lower[-1] in _DANGLING:
        return False
    if len(tokens) == 1 and lower[0] in PRONOUNS:
        return True
    if any(t in SPEAKER_NOUNS for t in lower):
        return True
    named = tokens[1:] if sentence_initial else tokens
    if sentence_initial and len(tokens) == 1:
        named = tokens if lower[0] not in _SENTENCE_INITIAL else []
    return any(t[:1].isupper() for t in named)


def _speaker(text: str, offset: int, m: re.Match[str], with_appos: bool) -> Speaker:
    a, b = m.span("speaker")
    appos = m.groupdict().get("appos")
    if with_appos and appos and not re.match(r", (?:who|which|that|whose|where)\b", appos):
        b = m.end("appos")
    b = a + len(_AUX_END.sub("", m.string[a:b].rstrip(", ")))
    return Speaker(offset + a, offset + b, text[offset + a : offset + b])


def _outside(speaker: Speaker, verb_end: int, claim: tuple[int, int] | None, side: str = "either") -> bool:
    """The claim lies outside the attribution phrase (speaker through its verb), on ``side`` of
    it: "before" for "..., X said", "after" for "X said ...", either for "according to X"."""
    if claim is None:
        return True
    lo, hi = min(speaker.start, verb_end), max(speaker.end, verb_end)
    before, after = claim[1] <= lo, claim[0] >= hi
    return before if side == "before" else after if side == "after" else before or after


def sentence_attribution(text: str, start: int, end: int, claim: tuple[int, int] | None = None) -> Speaker | None:
    """The speaker the sentence ``text[start:end]`` attributes its claim to, or None."""
    sentence = text[start:end]
    for m in _ACCORDING.finditer(sentence):
        s = _speaker(text, start, m, with_appos=False)
        if is_speaker(s.text) and _outside(s, start + m.end("speaker"), claim):
            return s
    for m in _TRAILING.finditer(sentence):
        s = _speaker(text, start, m, with_appos=False)
        if is_speaker(s.text) and _outside(s, start + m.start("tail"), claim, "before"):
            return s
    inverted = _INVERTED.search(sentence)
    if inverted is not None:
        s = _speaker(text, start, inverted, with_appos=True)
        if is_speaker(s.text) and _outside(s, start + inverted.start(), claim, "before"):
            return s
    leading = _LEADING.match(sentence)
    if leading is not None:
        s = _speaker(text, start, leading, with_appos=True)
        initial = leading.start("speaker") == 0
        if is_speaker(s.text.split(",")[0], sentence_initial=initial) and _outside(s, start + leading.end(), claim, "after"):
            return s
    return None


def _open_quote(paragraph: str) -> bool:
    """Whether a quotation opened in ``paragraph`` is still open at its end."""
    curly = paragraph.count("“") - paragraph.count("”")
    return curly > 0 or (curly == 0 and paragraph.count('"') % 2 == 1)


def _named(text: str, sentences: list[tuple[int, int]]) -> Speaker | None:
    """The nearest named (not pronoun) speaker attributed in ``sentences``, last first."""
    for a, b in reversed(sentences):
        s = sentence_attribution(text, a, b)
        if s is not None and s.text.lower() not in PRONOUNS:
            return s
    return None


def _sentences_in(text: str, a: int, b: int, stored: Sequence[tuple[int, int]] | None) -> list[tuple[int, int]]:
    """The sentences of ``text[a:b]`` (a paragraph), absolute offsets: the document's stored
    sentence spans where given (what ingest split; no sentence splitter to load while answering),
    else split here."""
    if stored is not None:
        return [(max(s, a), min(e, b)) for s, e in stored if s < b and a < e]
    return [(a + s, a + e) for s, e in split_sentences(text[a:b])]


def find_attribution(
    text: str, start: int, end: int, claim: tuple[int, int] | None = None, sentences: Sequence[tuple[int, int]] | None = None
) -> Speaker | None:
    """Who the claim cited at ``text[start:end]`` is attributed to, or None (see module docstring).
    ``sentences``: the document's sentence spans, in order, if known.

    >>> doc = "In 2023, 90% of the imports came from China, a second official said."
    >>> find_attribution(doc, 0, len(doc), (9, 12))
    Speaker(start=45, end=62, text='a second official')
    """
    p0, p1 = paragraph_bounds(text, start, end)
    spans = _sentences_in(text, p0, p1, sentences)
    found = sentence_attribution(text, start, end, claim)
    if found is None and _open_quote(text[p0:end]):
        # Inside a quotation: the speaker follows its closing mark, a sentence or two on.
        for a, b in [s for s in spans if s[0] >= end][:3]:
            found = sentence_attribution(text, a, b)
            if found is not None or not _open_quote(text[p0:b]):
                break
    if found is None or found.text.lower() not in PRONOUNS:
        return found
    earlier = [s for s in spans if s[1] <= found.start]
    if p0 > 0:  # the paragraph before, for "she said" opening a new paragraph
        last = len(text[:p0].rstrip()) - 1
        q0, q1 = paragraph_bounds(text, last, last)
        earlier = _sentences_in(text, q0, q1, sentences) + earlier
    return _named(text, earlier[-LOOK_BACK:])
