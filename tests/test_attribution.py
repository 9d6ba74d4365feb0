"""Attribution, dates and disagreement: the pure functions, then the layer on real answers.

The documents here are written for the tests; every speaker found must be a phrase of the
document at the offsets returned (``text[start:end] == text``), and a sentence that attributes
nothing gets nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.answering.attribution import find_attribution, is_speaker, paragraph_bounds
from rag.answering.disagreement import other_sides, value_key
from rag.answering.provenance import annotate, disagreement_text, lead_citation
from rag.records import Answer, Attribution, Citation, Side, provenance_line, provenance_note

ROOT = Path(__file__).resolve().parent.parent
SEED = (ROOT / "corpus" / "000_530c0abb2a07a6c4.txt").read_text(encoding="utf-8")


def speaker_of(doc: str, sentence: str, claim: str | None = None) -> str | None:
    start = doc.index(sentence)
    at = doc.index(claim, start) if claim else None
    found = find_attribution(doc, start, start + len(sentence), (at, at + len(claim)) if claim else None)
    if found is None:
        return None
    assert doc[found.start : found.end] == found.text  # exact offsets, always
    return found.text


@pytest.mark.parametrize(
    ("sentence", "speaker"),
    [
        ("Exports rose 12% in March, a ministry spokesperson said.", "a ministry spokesperson"),
        ("Exports rose 12% in March , officials said on Tuesday.", "officials"),
        ("Exports rose 12% in March, the agency reported, citing customs data.", "the agency"),
        ("Exports rose 12% in March, according to the customs office.", "the customs office"),
        ("According to Reuters, exports rose 12% in March.", "Reuters"),
        ("Health officials said exports rose 12% in March.", "Health officials"),
        ("Dr. Ana Ruiz, the bank's chief economist, told reporters that exports rose 12%.",
         "Dr. Ana Ruiz, the bank's chief economist"),
        ("Just this week, Gen. Ivo Berg told lawmakers that exports rose 12%.", "Gen. Ivo Berg"),
        ("Analysts at Ferro Bank estimated that exports rose 12% in March.", "Analysts at Ferro Bank"),
        ('"Exports rose 12% in March," said Lena Holm, a trade adviser.', "Lena Holm, a trade adviser"),
        ('"Exports rose 12% in March," said Lena Holm, who advises the minister.', "Lena Holm"),
        ("U.S. officials have said exports rose 12% in March.", "U.S. officials"),
        ("Exports rose 12%, the brand director said on a grand day.", "the brand director"),
    ],
)
def test_a_reporting_pattern_gives_its_speaker(sentence: str, speaker: str) -> None:
    assert speaker_of(sentence, sentence, "12%") == speaker


@pytest.mark.parametrize(
    "sentence",
    [
        "Exports rose 12% in March.",
        "Exports rose 12% in March, the highest rise in a decade.",
        "The minister warned the banks of 12% losses.",  # an act, not a claim
        "Exports rose 12% in March, which the ministry said was expected.",
        "The company reported revenue 12% higher.",  # no "that": the report is the news itself
        "It said exports rose 12%.",  # a pronoun with nothing named before it
        "Let's say that exports rose 12%.",  # a figure of speech
        "Exports rose 12%, creating the model for Nordic states and ending the slump.",  # "states" is a noun
        "Whenever he met traders, Ole Berg informed them of the 12% tariff and told them to leave.",  # an act
    ],
)
def test_a_sentence_that_attributes_nothing_gets_nothing(sentence: str) -> None:
    assert speaker_of(sentence, sentence, "12%") is None


def test_the_speaker_answering_the_question_is_not_its_own_attribution() -> None:
    doc = "Gen. Ivo Berg, commander of the fleet, told lawmakers that exports rose 12%."
    assert speaker_of(doc, doc, "12%") == "Gen. Ivo Berg, commander of the fleet"
    assert speaker_of(doc, doc, "Gen. Ivo Berg") is None  # "Who told lawmakers ...?"
    trailing = "Exports rose 12%, Maria Ek said."
    assert speaker_of(trailing, trailing, "Maria Ek") is None
    # What the reporter adds after the speaker is the reporter's, not the speaker's.
    described = '"I should have come," said Priya Nandakumar, who brought her two sons.'
    assert speaker_of(described, described, "two") is None
    assert speaker_of(described, described, "should have come") == "Priya Nandakumar"


def test_a_following_she_said_names_the_speaker_named_before_it() -> None:
    doc = (
        "Title line\n\nDr. Amara Osei told reporters that clinics would open on Saturday. "
        '"We vaccinated 2,400 children this week. That is twice the usual rate," she said.\n\n'
        "Next paragraph. Prices rose 3%, she said."
    )
    assert speaker_of(doc, "We vaccinated 2,400 children this week.", "2,400") == "Dr. Amara Osei"
    # A new paragraph's "she said" looks one paragraph back.
    assert speaker_of(doc, "Prices rose 3%, she said.", "3%") == "Dr. Amara Osei"


def test_a_pronoun_without_a_named_speaker_is_not_shown() -> None:
    doc = "First paragraph without names.\n\nSecond.\n\nPrices rose 3%, she said."
    assert speaker_of(doc, "Prices rose 3%, she said.", "3%") is None


def test_a_pronoun_does_not_reach_a_speaker_far_back() -> None:
    doc = "Dr. Amara Osei said clinics would open. " + "The weather was mild. " * 8 + "Prices rose 3%, she said."
    assert speaker_of(doc, "Prices rose 3%, she said.", "3%") is None


def test_a_closed_quotation_does_not_borrow_the_next_speaker() -> None:
    doc = '"Exports rose 12%." Prices fell 2%, the bank said.'
    assert speaker_of(doc, '"Exports rose 12%."', "12%") is None


def test_the_seed_article_attributes_its_figures_to_the_officials_who_gave_them() -> None:
    ninety = "In 2023, 90% of Russia's microelectronics imports came from China"
    sentence = SEED[SEED.index("Evidence of the deepening") : SEED.index("a second official said.") + 23]
    assert speaker_of(SEED, sentence, ninety.split()[2]) == "a second official"
    cavoli = SEED[SEED.index("Just this week") : SEED.index("before the invasion.") + 20]
    assert speaker_of(SEED, cavoli, "Russia has successfully rebuilt") == "Gen. Chris Cavoli, commander of U.S. European Command"
    unattributed = "China's support offsets significant setbacks"
    start = SEED.index(unattributed)
    assert find_attribution(SEED, start, SEED.index(".", start) + 1) is None


def test_speakers_and_paragraphs() -> None:
    assert is_speaker("a second official") and is_speaker("Reuters") and is_speaker("she")
    assert not is_speaker("which Russia used") and not is_speaker("The", sentence_initial=True)
    doc = "one\n\ntwo three\n\nfour"
    assert paragraph_bounds(doc, 6, 9) == (5, 14)


# -- disagreement ------------------------------------------------------------------------------
def test_values_compare_without_hedges_separators_or_signs() -> None:
    assert value_key("about 75%") == value_key("75 percent")
    assert value_key("$420 million") == value_key("420 million")
    assert value_key("2,400") == value_key("2400")
    assert value_key("9%") != value_key("14%")
    assert value_key("730") == value_key("730 workers")  # the counted noun is no other value
    assert value_key("420 million") != value_key("420")
    assert value_key("a dozen") != value_key("a hundred")


PORT_A = "date: 2024-03-05\n\nContainer traffic through the port rose 14% in 2023, according to the port authority."
PORT_B = "date: 2024-03-20\n\nAnalysts estimated that container traffic through the port rose 9% in 2023."
OTHER = "date: 2024-03-21\n\nThe city's population rose 9% in 2023."
TEXTS = {"a.txt": PORT_A, "b.txt": PORT_B, "c.txt": OTHER}
DATES = {"a.txt": "2024-03-05", "b.txt": "2024-03-20", "c.txt": "2024-03-21"}


def proposal(source: str, value: str, confidence: float = 0.9) -> dict[str, object]:
    start = TEXTS[source].index(value)
    return {"text": value, "source": source, "start": start, "end": start + len(value), "confidence": confidence}


def sentence_of(source: str, start: int, end: int) -> tuple[int, int]:
    text = TEXTS[source]
    a = text.rfind("\n", 0, start) + 1
    return a, text.index(".", end) + 1


QUESTION = "By how much did container traffic through the port rise in 2023?"


def sides(proposals: list[dict[str, object]], question: str = QUESTION, threshold: float = 0.3) -> list[str]:
    lead = sentence_of("a.txt", PORT_A.index("14%"), PORT_A.index("14%") + 3)
    found = other_sides(question, "14%", "a.txt", PORT_A[lead[0] : lead[1]], proposals, threshold, TEXTS.get, sentence_of)
    return [f"{s.source}:{s.text}" for s in found]


def test_a_confident_different_value_in_another_document_is_the_other_side() -> None:
    assert sides([proposal("a.txt", "14%"), proposal("b.txt", "9%")]) == ["b.txt:9%"]


@pytest.mark.parametrize(
    ("proposals", "question", "threshold"),
    [
        ([proposal("b.txt", "9%", confidence=0.2)], QUESTION, 0.3),  # not confident enough to be an answer
        ([proposal("a.txt", "2023")], "In what year did traffic through the port rise 14%?", 0.3),  # same document
        ([proposal("c.txt", "9%")], QUESTION, 0.3),  # a passage about something else
        ([proposal("b.txt", "9%")], "Who runs the port?", 0.3),  # not a value question
        ([proposal("b.txt", "2023")], "When did container traffic through the port rise 14%?", 0.3),  # dates have grains
    ],
)
def test_no_disagreement_is_invented(proposals: list[dict[str, object]], question: str, threshold: float) -> None:
    assert sides(proposals, question, threshold) == []


def test_a_proposal_whose_document_changed_is_ignored() -> None:
    stale = {**proposal("b.txt", "9%"), "start": 0, "end": 2}
    assert sides([stale]) == []


# -- the layer on an answer record ---------------------------------------------------------------
def cite(cid: int, source: str, sentence: str) -> Citation:
    start = TEXTS[source].index(sentence)
    return Citation(id=cid, source=source, start=start, end=start + len(sentence), quote=sentence)


def record(**extra: object) -> Answer:
    quote = "Container traffic through the port rose 14% in 2023, according to the port authority."
    c = cite(1, "a.txt", quote)
    at = c.start + quote.index("14%")
    fields: dict[str, object] = {
        "question": QUESTION, "standalone_question": QUESTION, "answer": f"14% [1]. {quote} [1]",
        "short_answer": "14%", "citations": [c], "answerer": "reader",
        "details": {"short_answer_span": {"citation": 1, "start": at, "end": at + 3},
                    "proposals": [proposal("a.txt", "14%", 0.99), proposal("b.txt", "9%", 0.95)]},
    }
    return Answer.model_validate({**fields, **extra})


def test_the_layer_adds_a_verified_attribution_the_date_and_both_sides() -> None:
    out = annotate(record(), [], TEXTS.get, DATES.get, threshold=0.3)
    assert out.attribution is not None and out.attribution.text == "the port authority"
    a = out.attribution
    assert PORT_A[a.start : a.end] == a.text and a.citation == 1 and a.source == "a.txt"
    assert out.as_of == "2024-03-05"
    assert [(s.answer, s.source, s.as_of) for s in out.disagreement] == [("14%", "a.txt", "2024-03-05"), ("9%", "b.txt", "2024-03-20")]
    other = out.citations[out.disagreement[1].citation - 1]
    assert PORT_B[other.start : other.end] == other.quote and "9%" in other.quote
    assert out.answer.endswith("Sources differ: 14% [1] (the port authority, 2024-03-05); 9% [2] (Analysts, 2024-03-20).")
    assert out.disagreement[1].attribution is not None and out.disagreement[1].attribution.text == "Analysts"


def test_without_a_threshold_there_is_no_disagreement_and_the_answer_text_is_unchanged() -> None:
    before = record()
    out = annotate(before, [], TEXTS.get, DATES.get, threshold=None)
    assert out.disagreement == [] and out.answer == before.answer and out.citations == before.citations
    assert out.attribution is not None


def test_an_attribution_that_does_not_verify_is_dropped() -> None:
    """The document changed under the answer: its citation no longer verifies, so no attribution."""
    changed = {**TEXTS, "a.txt": PORT_A.replace("port authority", "port office")}
    out = annotate(record(), [], changed.get, DATES.get, threshold=None)
    assert out.attribution is None and out.as_of == "2024-03-05"


def test_a_refusal_gets_no_provenance() -> None:
    refused = Answer(question="q", standalone_question="q", answer="The sources don't say.", refused=True)
    assert annotate(refused, [], TEXTS.get, DATES.get, 0.3) == refused
    assert provenance_line(refused) is None


def test_the_lead_citation_comes_from_the_readers_span() -> None:
    c, claim = lead_citation(record())
    assert c.id == 1 and claim is not None and PORT_A[claim[0] : claim[1]] == "14%"


# -- the record and its lines --------------------------------------------------------------------
def test_attribution_offsets_must_match_its_text() -> None:
    with pytest.raises(ValidationError, match="attribution span"):
        Attribution(citation=1, source="a.txt", start=0, end=3, text="four")


def test_old_records_read_without_the_new_fields() -> None:
    old = Answer.model_validate({"question": "q", "standalone_question": "q", "answer": "a"})
    assert old.attribution is None and old.as_of is None and old.disagreement == []


def test_the_line_says_who_and_when_and_as_of_for_a_question_about_now() -> None:
    attribution = Attribution(citation=1, source="s", start=0, end=17, text="a second official")
    base = {"question": "What share came from China?", "standalone_question": "What share came from China?",
            "answer": "90% [1]. ...", "short_answer": "90%", "citations": [Citation(id=1, source="s", start=0, end=3, quote="90%")]}
    answer = Answer.model_validate({**base, "attribution": attribution, "as_of": "2024-04-13"})
    assert provenance_line(answer) == "90% [1], according to a second official (2024-04-13)"
    now = answer.model_copy(update={"question": "What share comes from China now?", "standalone_question": "What share comes from China now?"})
    assert provenance_note(now) == ", according to a second official, as of 2024-04-13"
    undated = Answer.model_validate({**base, "attribution": attribution.model_copy(update={"text": "The ministry", "end": 12})})
    assert provenance_line(undated) == "90% [1], according to the ministry"
    assert provenance_line(Answer.model_validate(base)) is None  # nothing known: nothing shown


def test_sides_read_as_one_sentence() -> None:
    sides_ = [Side(answer="14%", citation=1, source="a.txt", as_of="2024-03-05"), Side(answer="9%", citation=2, source="b.txt")]
    assert disagreement_text(sides_) == "Sources differ: 14% [1] (a.txt, 2024-03-05); 9% [2] (b.txt)."


# -- the command line on the seed article ---------------------------------------------------------
def test_the_cli_says_who_gave_the_seed_figure_and_when(seed_index_dir: Path) -> None:
    from typer.testing import CliRunner

    from rag.cli.main import app

    result = CliRunner().invoke(app, ["ask", "What share of microelectronics came from China?", "--index", str(seed_index_dir)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("90% [1], according to a second official (2024-04-13). Evidence of")
    as_json = CliRunner().invoke(app, ["ask", "What share of microelectronics came from China?", "--index", str(seed_index_dir), "--json"])
    record = json.loads(as_json.output)
    a = record["attribution"]
    assert SEED[a["start"] : a["end"]] == a["text"] == "a second official" and record["as_of"] == "2024-04-13"
