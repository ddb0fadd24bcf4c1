"""Answer checking (5.3.3, 7.4.1, 7.11): every type's accepted forms and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from oohcore.answers import clean_answer
from oohcore.rulesets.models import Question


def q(type_: str, **extra: Any) -> Question:
    return Question.model_validate({"field": "x", "ask": "?", "type": type_, **extra})


@pytest.mark.parametrize(
    ("question", "given", "stored"),
    [
        (q("number", min=-30, max=45), 3, 3),
        (q("number", min=-30, max=45), "4.5", 4.5),
        (q("yes_no"), True, True),
        (q("yes_no"), " Yes ", True),
        (q("yes_no"), "n", False),
        (q("choice", options={"leak": "Leak", "gas": "Gas"}), "gas", "gas"),
        (q("choices", options={"a": "A", "b": "B"}), ["b", "a", "b"], ["a", "b"]),
        (q("choices", options={"a": "A", "b": "B"}), "a", ["a"]),
        (q("phone"), "07700 900 123", "07700900123"),
        (q("phone"), "+44 (20) 7946-0000", "+442079460000"),
        (q("postcode"), "sw1a1aa", "SW1A 1AA"),
        (q("date"), "2026-11-20", "2026-11-20"),
        (q("time"), "22:15", "22:15"),
        (q("text", max_length=10), "  ten chars ", "ten chars"),
        (q("text", pattern="[0-9]{6}"), "123456", "123456"),
        (q("address"), "12a High St.", "12a High St."),
    ],
)
def test_accepted_answers_are_stored_in_one_form(
    question: Question, given: Any, stored: Any
) -> None:
    assert clean_answer(question, given) == stored


@pytest.mark.parametrize(
    ("question", "given", "message"),
    [
        (q("number", min=-30, max=45), 99, "above the maximum 45"),
        (q("number", min=-30, max=45), -31, "below the minimum -30"),
        (q("number"), "warm", "'warm' is not a number"),
        (q("number"), True, "expected a number"),
        (q("yes_no"), "maybe", "expected yes or no"),
        (q("choice", options={"leak": "Leak"}), "flood", "'flood' is not one of: leak"),
        (q("choices", options={"a": "A"}), ["a", "z"], "z not among: a"),
        (q("phone"), "call me", "is not a telephone number"),
        (q("postcode"), "nonsense", "postcode"),
        (q("date"), "20/11/2026", "is not a date"),
        (q("time"), "25:00", "is not a time"),
        (q("text", max_length=3), "four", "longer than 3 characters"),
        (q("text", pattern="[0-9]{6}"), "12345", "does not have the expected form"),
        (q("text"), 12, "expected text"),
    ],
)
def test_refused_answers_say_why(question: Question, given: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        clean_answer(question, given)
