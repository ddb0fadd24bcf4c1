"""Message templates (oohcore.rulesets.templates): named placeholders only.

Templates fill referral messages (SMS, email) and what the call handler says (5.2.3.3, 5.2.5,
5.2.6). They can only copy a captured value into text — no attribute access, indexing or
formatting — and are checked when the ruleset loads, with the offset of each mistake.
"""

from __future__ import annotations

from datetime import date

import pytest

from oohcore.rulesets.templates import TemplateError, compile_template

NAMES = frozenset({"reference", "address", "caller_name", "repair", "vulnerable", "hazards"})


def test_render_fills_placeholders() -> None:
    t = compile_template("Ref {reference}: {repair} at {address}.", NAMES)
    assert t.placeholders == frozenset({"reference", "repair", "address"})
    out = t.render({"reference": "AB12-C", "repair": "leak", "address": "1 High St"})
    assert out == "Ref AB12-C: leak at 1 High St."


def test_text_without_placeholders_and_empty_text() -> None:
    assert compile_template("Call 999 now.", NAMES).render({}) == "Call 999 now."
    empty = compile_template("", NAMES)
    assert empty.placeholders == frozenset()
    assert empty.render({"reference": "x"}) == ""


def test_placeholders_next_to_each_other_and_repeated() -> None:
    t = compile_template("{caller_name}{reference}/{caller_name}", NAMES)
    assert t.render({"caller_name": "Ann", "reference": "R1"}) == "AnnR1/Ann"


def test_double_braces_write_literal_braces() -> None:
    t = compile_template("{{reference}} is {reference}; }} and {{", NAMES)
    assert t.placeholders == frozenset({"reference"})
    assert t.render({"reference": "R1"}) == "{reference} is R1; } and {"
    # three braces: a literal brace around a placeholder, as in Python's str.format
    assert compile_template("{{{reference}}}", NAMES).render({"reference": "R1"}) == "{R1}"


@pytest.mark.parametrize("unanswered", [{}, {"address": None}, {"address": ""}])
def test_unanswered_value_reads_not_given(unanswered: dict[str, object]) -> None:
    t = compile_template("At {address}.", NAMES)
    assert t.render(unanswered) == "At not given."
    assert t.render(unanswered, missing="unknown") == "At unknown."


def test_values_are_written_for_people() -> None:
    t = compile_template("{vulnerable}|{hazards}|{repair}|{reference}", NAMES)
    out = t.render(
        {
            "vulnerable": True,
            "hazards": ["gas", "water"],
            "repair": 0,
            "reference": date(2026, 1, 5),
        }
    )
    assert out == "yes|gas, water|0|2026-01-05"
    assert t.render({"vulnerable": False, "hazards": []}).startswith("no|")


def test_values_are_copied_not_interpreted() -> None:
    t = compile_template("{caller_name}", NAMES)
    assert t.render({"caller_name": "{reference}"}) == "{reference}"
    assert t.render({"caller_name": "{0.__class__}"}) == "{0.__class__}"


@pytest.mark.parametrize(
    ("text", "offset", "phrase"),
    [
        ("Ref {refrence} now", 4, "unknown placeholder {refrence}; did you mean {reference}?"),
        ("{postcode}", 0, "unknown placeholder {postcode}"),
        ("Ref {reference.upper}", 4, "{reference.upper} is not allowed"),
        ("Ref {reference.__class__}", 4, "no dots, indexes or formatting"),
        ("Ref {hazards[0]}", 4, "{hazards[0]} is not allowed"),
        ("Ref {reference:>10}", 4, "{reference:>10} is not allowed"),
        ("Ref {reference!r}", 4, "{reference!r} is not allowed"),
        ("Ref { reference }", 4, "{ reference } is not allowed"),
        ("Ref {}", 4, "{} is not allowed"),
        ("Ref {0}", 4, "{0} is not allowed"),
        ("Ref {Reference}", 4, "{Reference} is not allowed"),
        ("Ref {reference", 4, "this '{' is never closed"),
        ("Ref reference}", 13, "a '}' with no '{' before it"),
        ("{reference} and {{ok}} then }", 28, "a '}' with no '{' before it"),
    ],
)
def test_rejected_templates_give_the_offset(text: str, offset: int, phrase: str) -> None:
    with pytest.raises(TemplateError) as info:
        compile_template(text, NAMES)
    assert phrase in info.value.message
    assert info.value.offset == offset
    assert str(info.value) == info.value.message


# ---------------------------------------------------------------------------------------------
# Optional parts {#name}…{/name}: the UPRN where known (7.11)
# ---------------------------------------------------------------------------------------------

UPRN_NAMES = NAMES | {"uprn"}


def test_an_optional_part_is_written_only_when_its_name_is_known() -> None:
    t = compile_template("{address}{#uprn} (UPRN {uprn}){/uprn}. Ref {reference}", UPRN_NAMES)
    assert t.placeholders == frozenset({"address", "uprn", "reference"})
    known = t.render({"address": "1 High St", "uprn": 100023336956, "reference": "R1"})
    assert known == "1 High St (UPRN 100023336956). Ref R1"
    for unknown in (None, "", []):
        out = t.render({"address": "1 High St", "uprn": unknown, "reference": "R1"})
        assert out == "1 High St. Ref R1"
        assert "None" not in out and "UPRN" not in out
    # outside an optional part, an unknown value still reads "not given"
    assert t.render({"uprn": 1}) == "not given (UPRN 1). Ref not given"


def test_false_and_zero_are_known_answers() -> None:
    t = compile_template("{#vulnerable}Vulnerable: {vulnerable}{/vulnerable}", UPRN_NAMES)
    assert t.render({"vulnerable": False}) == "Vulnerable: no"
    assert t.render({"vulnerable": 0}) == "Vulnerable: 0"
    assert t.render({}) == ""


def test_an_optional_part_may_hold_other_placeholders_and_several_lines() -> None:
    t = compile_template(
        "Name: {caller_name}\n{#uprn}UPRN: {uprn} ({address})\n{/uprn}End", UPRN_NAMES
    )
    assert (
        t.render({"caller_name": "Ann", "uprn": 7, "address": "A"}) == "Name: Ann\nUPRN: 7 (A)\nEnd"
    )
    assert t.render({"caller_name": "Ann", "address": "A"}) == "Name: Ann\nEnd"


@pytest.mark.parametrize(
    ("text", "offset", "phrase"),
    [
        ("a {#uprn}b", 2, "never closed; end it with {/uprn}"),
        ("a {/uprn}", 2, "closes no {#uprn}"),
        ("{#uprn}{#address}x{/address}{/uprn}", 7, "do not nest"),
        ("{#uprn}x{/address}", 8, "the open part is {#uprn}"),
        ("{#upn}x{/upn}", 1, "did you mean {uprn}"),
        ("{#}x", 0, "optional part is written {#name}...{/name}"),
        ("{?uprn}", 0, "is not allowed"),
    ],
)
def test_mistakes_in_optional_parts_are_located(text: str, offset: int, phrase: str) -> None:
    with pytest.raises(TemplateError) as info:
        compile_template(text, UPRN_NAMES)
    assert phrase in info.value.message
    assert info.value.offset == offset
