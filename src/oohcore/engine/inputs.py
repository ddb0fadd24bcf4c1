"""What a host passes to the façade, checked before anything is read or written (issue 7: 6, 11).

A host's mistake — a naive or string ``at=``, ``None`` where a call id or answers belong, a
handler's name of a megabyte, a lone surrogate from a badly decoded form — must come back as one
of the documented exceptions (docs/integration.md), with nothing changed, and must behave the
same on SQLite and PostgreSQL (whose columns have lengths). Each check here raises
:class:`InvalidArgument`; the façade calls them on entry.

A caller's number is the one value that is *never* refused: the call is recorded whatever the
telephone network sent (a SIP URI can be long), so it is cut to :data:`CALLER_NUMBER_MAX`
characters rather than losing the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from oohcore.engine.errors import InvalidArgument

__all__ = [
    "CALLER_NUMBER_MAX",
    "NAME_MAX",
    "TEXT_MAX",
    "answers",
    "caller_number",
    "moment",
    "name",
    "text",
]

CALLER_NUMBER_MAX = 255
"""Characters of a caller's number (or SIP URI) kept with the call; the rest is cut off."""
NAME_MAX = 200
"""Characters of a person's name or id given by the host (handler, acknowledger, manager)."""
TEXT_MAX = 2000
"""Characters of a short free text given by the host (a reason, a key)."""


def _problem(argument: str, what: str) -> InvalidArgument:
    return InvalidArgument(f"{argument}: {what}")


def _no_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def moment(at: object, argument: str = "at") -> datetime | None:
    """``at=`` as given: None (now, from the engine's clock) or an aware datetime."""
    if at is None:
        return None
    if not isinstance(at, datetime):
        raise _problem(
            argument, f"expected a timezone-aware datetime, not {type(at).__name__} {at!r:.40}"
        )
    if at.tzinfo is None or at.utcoffset() is None:
        raise _problem(
            argument,
            f"{at.isoformat()} has no time zone, so its moment is a guess; pass an aware "
            "datetime (e.g. datetime.now(UTC))",
        )
    return at


def text(value: object, argument: str, *, limit: int = TEXT_MAX, empty: bool = False) -> str:
    """A string the host gives: no lone surrogates, at most ``limit`` characters."""
    if not isinstance(value, str):
        raise _problem(argument, f"expected a string, not {type(value).__name__}")
    if not _no_surrogates(value):
        raise _problem(argument, "holds a lone surrogate (text decoded wrongly?); send UTF-8")
    if len(value) > limit:
        raise _problem(argument, f"is {len(value):,} characters; at most {limit:,} are kept")
    if not empty and not value.strip():
        raise _problem(argument, "is empty")
    return value


def name(value: object, argument: str) -> str:
    """A person's name or staff id (handler, acknowledger, manager)."""
    return text(value, argument, limit=NAME_MAX).strip()


def caller_number(value: object) -> str | None:
    """The caller's number as the network sent it, cut to :data:`CALLER_NUMBER_MAX`; never
    refused for its length or its characters (the call must be recorded)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _problem("caller_number", f"expected a string or None, not {type(value).__name__}")
    kept = value.encode("utf-8", "replace").decode("utf-8").strip()
    return kept[:CALLER_NUMBER_MAX] or None


def answers(value: object) -> Mapping[str, Any]:
    """``capture``'s answers: a mapping of question ids (strings) to values."""
    if not isinstance(value, Mapping):
        raise _problem(
            "answers", f"expected a mapping of question id to answer, not {type(value).__name__}"
        )
    for key in value:
        if not isinstance(key, str):
            raise _problem("answers", f"question ids are strings, not {type(key).__name__}")
    return value
