"""Inbound replies from a channel (issue 8 items 6 and 8): what an officer's or lone worker's
text message says.

:func:`parse` reads one message, whatever its case and spacing:

==========================================  ===========================================
``ACK K7M-3QX-F``, ``YES K7M3QXF``, the      acknowledge the referral with that reference
reference alone
``NO K7M-3QX-F``, ``DECLINE …``,            decline it ("can't attend"): the next stage
``CANT ATTEND …``, ``CAN'T …``              is alerted at once
``OK``                                      a lone worker checks out (5.2.3.6)
``EXTEND 30``                               a lone worker extends the visit by 30 minutes
anything else                               ``unknown``: recorded and answered politely
==========================================  ===========================================

Nothing here raises: a message that is not understood is an answer too (never an error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oohcore.references import InvalidReference, parse_reference

__all__ = ["MAX_REPLY", "Reply", "parse"]

MAX_REPLY = 480  # longer texts are not read (three SMS segments)
MAX_EXTEND_MINUTES = 240

_ACK = re.compile(r"^(?:ack|yes|y|accept|accepted|ok)?\s*(?P<ref>[a-z0-9][a-z0-9 -]{5,30})$")
_DECLINE = re.compile(
    r"^(?:no|decline|declined|cant|can't|can’t|cannot)(?:\s+attend)?\s+(?P<ref>[a-z0-9][a-z0-9 -]{5,30})$"
)
_EXTEND = re.compile(r"^extend\s+(?P<minutes>\d{1,3})(?:\s*(?:m|min|mins|minutes))?$")


@dataclass(frozen=True, slots=True)
class Reply:
    intent: str  # "ack", "decline", "ok", "extend" or "unknown"
    reference: str | None = None  # the reference quoted, as oohcore writes it
    minutes: int | None = None  # for "extend"


def _reference(text: str) -> str | None:
    try:
        return parse_reference(text).text
    except InvalidReference:
        return None


def parse(text: object) -> Reply:
    """What ``text`` asks (see the module's table)."""
    if not isinstance(text, str) or len(text) > MAX_REPLY:
        return Reply("unknown")
    words = " ".join(text.strip().lower().split()).rstrip(".!")
    if words == "ok":
        return Reply("ok")
    if m := _EXTEND.match(words):
        minutes = int(m["minutes"])
        if 0 < minutes <= MAX_EXTEND_MINUTES:
            return Reply("extend", minutes=minutes)
        return Reply("unknown")
    if m := _DECLINE.match(words):
        ref = _reference(m["ref"])
        return Reply("decline", ref) if ref else Reply("unknown")
    if m := _ACK.match(words):
        ref = _reference(m["ref"])
        return Reply("ack", ref) if ref else Reply("unknown")
    return Reply("unknown")
