"""Telephone numbers, read one way: the E.164 form of a number as a UK caller, network or
officer writes it (``phonenumbers``, Google's libphonenumber).

``07700 900123``, ``+44 7700 900123``, ``447700900123``, ``0044 7700 900123`` and
``sip:+447700900123@trunk.example.net;user=phone`` are all ``+447700900123``. The one function,
:func:`e164`, serves every place a number is stored or compared: access numbers (7.1.2), the
caller's number on a call and on a call detail record (the CDR's link to its call, 11.6.1), the
sender of a text reply matched to the on-call officers alerted (5.3.2) and a lone worker's phone
(5.2.3.6). Numbers outside the ranges Ofcom allocates (the drama range ``07700 900xxx``, a
test access number) are still read: what matters is that two spellings of one number agree.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

__all__ = ["MAX_NUMBER_LENGTH", "REGION", "e164", "same_number"]

REGION = "GB"
"""How a number without its country code is read: a UK number (the service is the UK's)."""

MAX_NUMBER_LENGTH = 64
"""Longer text is no telephone number (E.164 has at most 15 digits); it is not parsed."""

_URI = re.compile(r"^(?:tel:|sips?:)(?P<user>[^@;]*)", re.IGNORECASE)


def e164(text: object) -> str | None:
    """``text`` as an E.164 number (``+447700900123``), or None when it is not a telephone
    number (empty, ``anonymous``, a SIP URI without a number, too long)."""
    if not isinstance(text, str):
        return None
    value = text.strip()
    if m := _URI.match(value):
        value = m["user"]
    if not value or len(value) > MAX_NUMBER_LENGTH or not any(c.isdigit() for c in value):
        return None
    return _parsed(value)


@lru_cache(maxsize=1 << 15)
def _parsed(value: str) -> str | None:
    """Parsing is slow next to the rest of a row's work, and a file of call records names the
    same access numbers and callers again and again: kept for the next time (bounded)."""
    try:
        number = phonenumbers.parse(value, REGION)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def same_number(a: object, b: object) -> bool:
    """Whether ``a`` and ``b`` are spellings of one telephone number."""
    first = e164(a)
    return first is not None and first == e164(b)
