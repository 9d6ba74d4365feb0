"""Whole answers: the words that qualify a value stay with it.

A reader's span, or the value cut out of it, often drops what qualifies a number or a date:
"over 400" becomes "400", "the late 1960s" "1960s", "1759-60" "1759", "between 1621 and 1629"
"1621 and 1629". ``with_qualifiers`` grows a value's span, inside its sentence, to take back a
comparison word before it ("over", "fewer than", "nearly", "below") or a date's modifier ("the
late") and the rest of a range after it ("-60", "to 100,000"). Pure, English, exact offsets.
"""

from __future__ import annotations

import re

# Words that change what the value says ("over 400" is not "400"). Approximations ("about",
# "roughly", "an estimated") are left off: on the public slice's held-out half, SQuAD's annotators
# mostly left them out of the answer too, and growing them lost F1 (docs/reader.md).
_QUALIFIER = (
    r"(?:more|less|fewer|greater|higher|lower|larger|smaller|older|younger) than|"
    r"over|under|below|above|nearly|almost|up to|at least|at most|as (?:many|much|few|little|late|early) as|"
    r"just over|just under|well over|well under|no more than|no less than|no fewer than|in excess of|upwards of|"
    r"between|from"
)
_MODIFIER = r"(?:the )?(?:late|early|mid|middle|first half of the|second half of the)"
# Immediately before the value, in the same sentence: one qualifier, e.g. "nearly " or "the late ".
_BEFORE = re.compile(rf"(?:\b(?:{_QUALIFIER})\s|\b{_MODIFIER}[\s-])$", re.IGNORECASE)
# A value: it starts with a digit, a currency sign or a number word.
_VALUE_START = re.compile(
    r"[$€£¥\d]|(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"sixty|seventy|eighty|ninety|hundred|a hundred|a thousand|thousands|hundreds|dozens|several|half|a third|a quarter|"
    r"first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|"
    r"fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth)\b",
    re.IGNORECASE,
)
# The rest of a range after a value: "-60", "–1629", " to 100,000", " and 1629" (after "between").
_RANGE_AFTER = re.compile(r"(?:\s?[-–]\s?|\s(?:to|and)\s)(?:[$€£¥]?(?:\d[\d,.]*\d|\d)(?:\s?%)?)")


def with_qualifiers(text: str, start: int, end: int, lo: int, hi: int) -> tuple[int, int]:
    """``[start, end)`` of ``text`` grown to the qualifier before a value and the rest of its range,
    never beyond ``[lo, hi)`` (the sentence).

    >>> s = "From 75,000 to 100,000 people left, over 400 of them in the late 1680s."
    >>> [s[a:b] for a, b in (with_qualifiers(s, s.index("75"), s.index("75") + 6, 0, len(s)),
    ...                       with_qualifiers(s, s.index("400"), s.index("400") + 3, 0, len(s)),
    ...                       with_qualifiers(s, s.index("1680s"), s.index("1680s") + 5, 0, len(s)))]
    ['From 75,000 to 100,000', 'over 400', 'the late 1680s']
    """
    if not _VALUE_START.match(text, start):
        return start, end
    before = _BEFORE.search(text, max(lo, start - 40), start)
    opens_range = before is not None and before.group().lower().startswith(("between", "from"))
    after = _RANGE_AFTER.match(text, end, hi)
    if after and not (after.group().strip()[:1] in "-–" or after.group().lstrip().startswith("to") or opens_range):
        after = None
    if opens_range and after is None:
        before = None  # "between" and "from" qualify a range, not one value ("between two poles")
    return (before.start() if before else start), (after.end() if after else end)
