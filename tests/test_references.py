"""Call reference numbers (spec 5.2.2: offered at the end of each call; 13.5.1l: quoted back)."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from oohcore.errors import OohcoreError
from oohcore.references import (
    ALPHABET,
    MAX_NUMBER,
    InvalidReference,
    Reference,
    format_reference,
    parse_reference,
)

SHAPE = re.compile(r"^(?:[0-9A-HJKMNP-TV-Z]{1,4}-)?[0-9A-HJKMNP-TV-Z]{3}-[0-9A-HJKMNP-TV-Z]{3}-.$")


def _sample(count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(MAX_NUMBER + 1) for _ in range(count)]


def test_round_trip_over_a_range_and_a_random_sample() -> None:
    numbers = [*range(0, 20_000), *_sample(20_000, seed=522), MAX_NUMBER]
    seen: set[str] = set()
    for n in numbers:
        text = format_reference(n)
        assert SHAPE.match(text), text
        assert parse_reference(text) == Reference(number=n)
        seen.add(text)
    assert len(seen) == len(set(numbers))  # 5.2.2: unique


def test_round_trip_with_an_organisation_prefix() -> None:
    for n in _sample(2_000, seed=7):
        text = format_reference(n, prefix="hav")
        assert text.startswith("HAV-")
        assert SHAPE.match(text), text
        assert parse_reference(text) == Reference(number=n, prefix="HAV")
        assert parse_reference(text, prefix="HAV").number == n


def test_consecutive_numbers_do_not_give_consecutive_looking_references() -> None:
    refs = [format_reference(n).replace("-", "") for n in range(1000, 1100)]
    # Neighbouring references share few characters in place (random would share ~6/32 each).
    shared = [
        sum(a == b for a, b in zip(r1[:6], r2[:6], strict=True))
        for r1, r2 in itertools.pairwise(refs)
    ]
    assert max(shared) <= 3
    assert sum(shared) / len(shared) < 1.0
    assert len({r[:3] for r in refs}) > 50  # the leading group is not a slowly-counting prefix


def test_reading_is_tolerant_of_case_spacing_hyphens_and_look_alikes() -> None:
    n = 424_242
    text = format_reference(n)
    compact = text.replace("-", "")
    assert parse_reference(compact.lower()).number == n
    assert parse_reference(" ".join(compact)).number == n
    assert parse_reference(f"  {text.lower()}  ").number == n
    # O for 0 and I/L for 1: find a reference that contains a 0 and one that contains a 1.
    with_zero = next(format_reference(m) for m in range(10_000) if "0" in format_reference(m))
    with_one = next(format_reference(m) for m in range(10_000) if "1" in format_reference(m))
    assert parse_reference(with_zero.replace("0", "O")) == parse_reference(with_zero)
    assert parse_reference(with_one.replace("1", "l")) == parse_reference(with_one)
    assert parse_reference(with_one.replace("1", "I")) == parse_reference(with_one)


def _check_every_error_is_caught(text: str) -> int:
    compact = text.replace("-", "")
    tried = 0
    for i, original in enumerate(compact):
        for ch in ALPHABET:
            if ch == original:
                continue
            mistyped = compact[:i] + ch + compact[i + 1 :]
            with pytest.raises(InvalidReference):
                parse_reference(mistyped)
            tried += 1
    for i in range(len(compact) - 1):
        if compact[i] == compact[i + 1]:
            continue
        swapped = compact[:i] + compact[i + 1] + compact[i] + compact[i + 2 :]
        with pytest.raises(InvalidReference):
            parse_reference(swapped)
        tried += 1
    return tried


@pytest.mark.parametrize("prefix", ["", "EN", "HAV", "BARN"])
def test_every_single_substitution_and_adjacent_transposition_is_caught(prefix: str) -> None:
    tried = 0
    for n in _sample(40, seed=13):
        tried += _check_every_error_is_caught(format_reference(n, prefix=prefix))
    assert tried > 40 * 7 * 31


def test_check_failure_says_what_to_do() -> None:
    good = format_reference(99).replace("-", "")
    bad = good[:2] + ("X" if good[2] != "X" else "Y") + good[3:]
    with pytest.raises(InvalidReference, match="check character") as info:
        parse_reference(bad)
    assert isinstance(info.value, OohcoreError)
    assert "read it back" in str(info.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "7 characters"),
        ("K7M-3QX", "7 characters"),
        ("ABCDE-K7M-3QX-F", "7 characters"),
        ("K7M-3QU-F", "U is never used"),
        ("K7M-3Q?-F", "'?' is not used"),
        ("12-K7M-3QX-F", "starts with a letter"),
    ],
)
def test_malformed_references_are_refused_clearly(text: str, needle: str) -> None:
    with pytest.raises(InvalidReference, match=re.escape(needle)):
        parse_reference(text)


def test_prefix_is_checked_and_can_be_supplied_by_the_desk() -> None:
    text = format_reference(5_000, prefix="EN")
    # A caller who reads only the last seven characters: the desk knows the line rung (13.5.1l).
    assert parse_reference(text[3:], prefix="en") == Reference(number=5_000, prefix="EN")
    with pytest.raises(InvalidReference, match="organisation EN, not HAV"):
        parse_reference(text, prefix="HAV")
    # A mistyped prefix is caught like any other character.
    with pytest.raises(InvalidReference):
        parse_reference("EM" + text[2:])


@pytest.mark.parametrize("prefix", ["EN", "HAV", "BAR", "K", "WF", "KC"])
def test_a_reference_read_without_its_prefix_always_fails_the_check(prefix: str) -> None:
    for n in _sample(300, seed=3):
        with pytest.raises(InvalidReference, match="check character"):
            parse_reference(format_reference(n, prefix=prefix).split("-", 1)[1])


@pytest.mark.parametrize(
    ("prefix", "needle"),
    [
        ("EAL", "'L'"),
        ("HAVER", "at most 4"),
        ("1AB", "start with a letter"),
        ("OU", "'O', 'U'"),
        ("TH", "choose another code"),
    ],
)
def test_bad_prefixes_are_refused_when_formatting(prefix: str, needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        format_reference(1, prefix=prefix)


def test_out_of_range_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="out of range"):
        format_reference(-1)
    with pytest.raises(ValueError, match="out of range"):
        format_reference(MAX_NUMBER + 1)
    with pytest.raises(TypeError):
        format_reference(True)


def test_reference_renders_its_canonical_text() -> None:
    ref = parse_reference(format_reference(77, prefix="en").lower())
    assert str(ref) == ref.text == format_reference(77, prefix="EN")
