"""Referral texts composed and counted as GOV.UK Notify and the networks count them (spec 5.2.5)."""

from __future__ import annotations

import pytest

from oohcore.channels.sms import (
    GSM7_EXTENDED,
    NOTIFY_MAX_CHARACTERS,
    REFERRAL_FIELDS,
    SmsCompositionError,
    compose_sms,
    measure,
    sanitise,
)

FIELDS = {
    "caller_name": "Ann Lee",
    "address": "12 Heron Way, Example Town EX1 2AB",
    "phone": "07700 900123",
    "details": "No heating, elderly resident, boiler showing fault E119",
    "uprn": 100023336956,
}
REF = "K7M-3QX-F"


# -- counting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "fragments"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4), (918, 6)],
)
def test_gsm7_fragments_are_160_alone_then_153_each(length: int, fragments: int) -> None:
    counted = measure("a" * length)
    assert counted.encoding == "gsm-7"
    assert (counted.units, counted.fragments) == (length, fragments)


def test_gsm7_extended_characters_count_twice() -> None:
    for char in GSM7_EXTENDED:
        assert measure(char).units == 2, char
    # 80 braces are 160 units, one fragment; one more brace is 162 units, two fragments
    assert measure("{" * 80).fragments == 1
    assert measure("{" * 81).fragments == 2
    # a 153-character text with one € is 154 units: two fragments, where without it is one
    assert measure("a" * 152 + "€").units == 154
    assert measure("a" * 159 + "€").fragments == 2
    assert measure("a" * 159 + "e").fragments == 1


def test_welsh_characters_outside_gsm_make_the_whole_text_ucs2() -> None:
    welsh = "Mae'r boeler wedi torri yn y tŷ; ffoniwch Siân ar ôl chwech"
    counted = measure(welsh)
    assert counted.encoding == "ucs-2"
    assert counted.units == len(welsh)
    # é and ö are in GSM-7 and keep a Welsh text without ŵ/ŷ/â… in GSM-7
    assert measure("Caerdydd, Wrecsam, Llanelli, café, Köln").encoding == "gsm-7"
    # 70 UCS-2 units in one fragment, then 67 each: the same length costs more than in GSM-7
    assert measure("ŵ" * 70).fragments == 1
    assert measure("ŵ" * 71).fragments == 2
    assert measure("ŵ" * 134).fragments == 2
    assert measure("ŵ" + "a" * 134).fragments == 3
    assert measure("w" + "a" * 134).fragments == 1


def test_extended_characters_count_once_in_a_ucs2_text() -> None:
    assert measure("ŷ{}").units == 3
    assert measure("y{}").units == 5


def test_accented_letters_are_no_longer_downgraded_and_emoji_count_in_utf16_units() -> None:
    # Notify keeps every character since August 2026: á is not turned into a, and forces UCS-2
    assert sanitise("Ánn Lée") == "Ánn Lée"
    assert measure("Ánn").encoding == "ucs-2"
    # an emoji outside the BMP is two UTF-16 code units
    assert measure("🔥").units == 2
    assert measure("🔥" * 35).fragments == 1
    assert measure("🔥" * 36).fragments == 2


def test_sanitising_keeps_typographic_punctuation_from_forcing_ucs2() -> None:
    pasted = "“Boiler’s broken” – flat 3…\u00a0call\tback\u200b"
    assert sanitise(pasted) == '"Boiler\'s broken" - flat 3... call back'
    counted = measure(pasted)
    assert counted.encoding == "gsm-7"
    assert counted.characters == len(sanitise(pasted))


def test_the_service_name_prefix_counts_in_fragments_but_not_in_the_limit() -> None:
    body = "a" * 150
    assert measure(body).fragments == 1
    with_prefix = measure(body, prefix="Example Borough Council")
    assert with_prefix.units == 150 + len("Example Borough Council: ")
    assert with_prefix.fragments == 2
    assert with_prefix.characters == 150


def test_notify_refuses_more_than_918_characters() -> None:
    assert measure("a" * NOTIFY_MAX_CHARACTERS).within_notify_limit
    assert not measure("a" * (NOTIFY_MAX_CHARACTERS + 1)).within_notify_limit
    # the limit is on characters: 918 Welsh characters are 14 UCS-2 fragments but allowed
    assert measure("ŵ" * 918).within_notify_limit
    assert measure("ŵ" * 918).fragments == 14


# -- composing (5.2.5) -----------------------------------------------------------------------


def test_a_referral_text_lists_the_fields_in_the_order_of_5_2_5_then_the_reference() -> None:
    composed = compose_sms(FIELDS, reference=REF, max_fragments=2)
    assert composed.body.split("\n") == [
        "Ann Lee",
        "12 Heron Way, Example Town EX1 2AB",
        "07700 900123",
        "No heating, elderly resident, boiler showing fault E119",
        f"Ref {REF}",
    ]
    assert REFERRAL_FIELDS == ("caller_name", "address", "phone", "details")
    assert "100023336956" not in composed.body  # the UPRN is not one of the five
    assert composed.shortened == composed.omitted == ()
    assert composed.length.fragments == 1
    assert composed.values["reference"] == REF


def test_a_text_that_does_not_fit_is_shortened_from_the_details_and_the_reference_kept() -> None:
    details = (
        "Boiler showing fault E119 since yesterday evening, house very cold, elderly resident "
        "with a heart condition lives alone, neighbour reports no answer at the door"
    )
    fields = {**FIELDS, "details": details}
    assert measure(compose_sms(fields, reference=REF, max_fragments=2).body).fragments == 2
    composed = compose_sms(fields, reference=REF, max_fragments=1)
    lines = composed.body.split("\n")
    assert lines[:3] == ["Ann Lee", "12 Heron Way, Example Town EX1 2AB", "07700 900123"]
    assert lines[3].endswith("...") and details.startswith(lines[3][:-3])
    assert lines[-1] == f"Ref {REF}"
    assert composed.shortened == ("details",) and composed.omitted == ()
    assert composed.length.fragments == 1 and composed.length.units <= 160
    # as long as it can be: one more word would not fit
    assert composed.length.units > 160 - len(" condition")


def test_after_the_details_the_phone_is_left_out_whole_never_cut_then_the_address_is_cut() -> None:
    address = "Flat 14 Kingfisher House " * 6  # 150 characters: the name, it and the ref are 173
    fields = {**FIELDS, "address": address}
    composed = compose_sms(fields, reference=REF, max_fragments=1)
    assert composed.omitted == ("details", "phone")
    assert composed.shortened == ("address",)
    assert "07700" not in composed.body  # no part of a number is ever sent
    assert composed.body.startswith("Ann Lee\nFlat 14 Kingfisher House")
    assert composed.body.endswith(f"...\nRef {REF}")
    assert composed.length.fragments == 1


def test_shortening_goes_up_the_priorities_to_the_name_and_never_cuts_the_reference() -> None:
    fields = {
        "caller_name": "Maximilian Alexander Fitzgerald-Montgomery-Smythe",
        "address": "The Old Rectory, Long Lane, Little Snoring, Example Shire EX9 9ZZ",
        "phone": "07700 900123",
        "details": "Tree down across the road",
    }
    reference = "HAV-K7M-3QX-F"
    # the template's fixed text leaves 40 units: the reference line needs 17 of them
    template = "((body))" + "x" * 120
    composed = compose_sms(fields, reference=reference, max_fragments=1, template=template)
    assert composed.omitted == ("details", "phone", "address")
    assert composed.shortened == ("caller_name",)
    assert composed.body.startswith("Maximilian")
    assert composed.body.endswith(f"...\nRef {reference}")
    assert composed.values["reference"] == reference
    assert composed.length.units <= 160
    # one more character of fixed text than the reference line leaves room for: an error
    with pytest.raises(SmsCompositionError):
        compose_sms(fields, reference=reference, max_fragments=1, template="((body))" + "x" * 144)


def test_a_welsh_field_uses_the_ucs2_budget_and_cutting_it_can_restore_gsm7() -> None:
    fields = {
        "caller_name": "Siân Llŷr",
        "address": "Tŷ Gwyn, Heol y Bont, Caerdydd CF10 1AA",
        "phone": "07700 900123",
        "details": "Dim gwres, mae'r boeler wedi torri ac mae'r tŷ yn oer iawn",
    }
    two = compose_sms(fields, reference=REF, max_fragments=2)
    assert two.length.encoding == "ucs-2"
    assert two.length.units <= 134 and two.length.fragments <= 2
    assert two.body.endswith(f"Ref {REF}")
    one = compose_sms(fields, reference=REF, max_fragments=1)
    assert one.length.units <= 70 and one.body.endswith(f"Ref {REF}")
    assert one.values["caller_name"].startswith("Siân")


def test_a_multi_fragment_budget_is_used_as_notify_counts_it() -> None:
    details = "word " * 200  # far too long for any budget
    composed = compose_sms({**FIELDS, "details": details}, reference=REF, max_fragments=3)
    assert composed.length.encoding == "gsm-7"
    assert composed.length.fragments == 3
    assert 306 < composed.length.units <= 459
    assert composed.shortened == ("details",)


def test_the_918_character_limit_binds_before_a_large_ucs2_budget() -> None:
    composed = compose_sms({"details": "ŵ" * 2000}, reference=REF, max_fragments=20, separator=" ")
    assert composed.length.characters <= NOTIFY_MAX_CHARACTERS
    assert composed.length.fragments <= 14


def test_a_reference_that_cannot_fit_is_an_error_not_a_cut() -> None:
    with pytest.raises(SmsCompositionError, match="reference alone does not fit"):
        compose_sms(FIELDS, reference="R" * 200, max_fragments=1)
    with pytest.raises(SmsCompositionError, match=r"no \(\(body\)\) placeholder"):
        compose_sms(FIELDS, reference=REF, template="Hello")
    with pytest.raises(SmsCompositionError, match="at least 1"):
        compose_sms(FIELDS, reference=REF, max_fragments=0)


def test_empty_and_missing_fields_are_skipped_and_whitespace_is_tidied() -> None:
    composed = compose_sms(
        {
            "caller_name": "  Ann\n Lee ",
            "address": "",
            "phone": None,
            "details": "Leak\tunder sink",
        },
        reference=None,
    )
    assert composed.body == "Ann Lee\nLeak under sink"
    assert "reference" not in composed.values
