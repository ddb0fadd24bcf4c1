"""The page text: within the limit, 5.2.5's priority order, the reference always kept, ASCII."""

from __future__ import annotations

import pytest

from oohcore_pager import page_text
from oohcore_pager.testing import pager_message

FIELDS = {
    "caller_name": "Zoë O’Brien",
    "address": "Flat 3, 12 Heron Way, Example Town EX1 2AB",
    "phone": "07700 900123",
    "details": "No heating – elderly resident, boiler showing fault E119",
    "reference": "K7Q2M4",
}


def test_a_body_that_fits_and_carries_the_reference_is_sent_as_written() -> None:
    message = pager_message(body="Burst pipe at 12 Heron Way. Ref K7Q2M4")
    assert page_text(message, 240) == "Burst pipe at 12 Heron Way. Ref K7Q2M4"


def test_a_long_body_gives_way_to_the_fields_in_priority_order() -> None:
    message = pager_message(body="x" * 300, fields=FIELDS)
    text = page_text(message, 240)
    assert text == (
        "Zoe O'Brien / Flat 3, 12 Heron Way, Example Town EX1 2AB / 07700 900123 / "
        "No heating - elderly resident, boiler showing fault E119 / Ref K7Q2M4"
    )


@pytest.mark.parametrize("limit", [32, 40, 60, 80, 100, 120])
def test_within_any_limit_the_reference_stays_and_details_go_first(limit: int) -> None:
    text = page_text(pager_message(body="x" * 300, fields=FIELDS), limit)
    assert len(text) <= limit
    assert text.endswith("Ref K7Q2M4")
    assert text.isascii()
    if limit >= 80:
        assert text.startswith("Zoe O'Brien / Flat 3, 12 Heron Way, Example Town EX1 2AB")
        assert "07700 900123" in text or limit < 90


def test_shortening_marks_the_cut() -> None:
    text = page_text(pager_message(body="x" * 300, fields=FIELDS), 100)
    assert ".." in text and "fault E119" not in text


def test_a_body_without_fields_is_shortened_with_the_reference_appended() -> None:
    message = pager_message(body="Lone worker overdue at the depot. " * 10, fields={})
    text = page_text(message, 60)
    assert len(text) <= 60 and text.endswith("Ref K7Q2M4")


def test_control_characters_cannot_make_a_line_of_their_own() -> None:
    message = pager_message(body="Ann\r\nSEND\x00 / Ref K7Q2M4")
    text = page_text(message, 240)
    assert "\r" not in text and "\n" not in text and "\x00" not in text
    assert text == "Ann / SEND / Ref K7Q2M4"
    assert page_text(message, 240, multiline=True) == "Ann\nSEND / Ref K7Q2M4"
