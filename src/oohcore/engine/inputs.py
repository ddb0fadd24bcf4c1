"""Checking what a host passes to the façade, before anything is read or written.

Every public method of :class:`~oohcore.engine.Engine` and
:class:`~oohcore.engine.OrganisationDesk` checks its arguments here first, so a careless or
hostile host gets one of the documented exceptions (``docs/integration.md``, "What can go
wrong") and never a builtin or database error, and the same input behaves the same on SQLite
and PostgreSQL (a text too long for a PostgreSQL column would otherwise fail only there).

The limits are generous and documented: a caller number may be a SIP URI
(:data:`CALLER_NUMBER_MAX`), a person's name or id (:data:`NAME_MAX`) a long e-mail address.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DataError

from oohcore.engine.errors import (
    AnswerProblem,
    CallNotFound,
    ConcurrentChange,
    InvalidAnswers,
    InvalidArgument,
    UnknownOrganisation,
)
from oohcore.store import Store
from oohcore.store.store import is_conflict

__all__ = [
    "CALLER_NUMBER_MAX",
    "NAME_MAX",
    "REASON_MAX",
    "SEARCH_LIMIT_MAX",
    "access_number",
    "answers",
    "call_id",
    "caller_number",
    "inbound",
    "instant",
    "name",
    "not_before",
    "organisation_id",
    "reference",
    "search_arguments",
    "search_limit",
    "text",
    "transaction",
]

CALLER_NUMBER_MAX = 256  # a SIP URI (sip:+447700900123@trunk.example.net;user=phone) fits
NAME_MAX = 256  # a handler, an officer, a manager, a staff id (an e-mail address fits)
REASON_MAX = 2000  # a free-text reason (a failed transfer)
SEARCH_LIMIT_MAX = 1000
ADDRESS_MAX = 1000  # an address typed in a search


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode text)"
    return None


def text(argument: str, value: object, *, max_length: int, optional: bool = False) -> str | None:
    """``value`` if it is acceptable text of at most ``max_length`` characters."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(argument, f"expected text, not {type(value).__name__}")
    problem = _text_problem(value)
    if problem is not None:
        raise InvalidArgument(argument, problem)
    if len(value) > max_length:
        raise InvalidArgument(
            argument, f"{len(value)} characters is longer than the limit of {max_length}"
        )
    return value


def name(argument: str, value: object, *, optional: bool = False) -> str | None:
    """A person's name or id (a handler, ``by=``, ``staff_id=``, ``manager=``)."""
    return text(argument, value, max_length=NAME_MAX, optional=optional)


def inbound(value: object, *, max_length: int) -> str | None:
    """A channel name or sender of an inbound message (:meth:`OrganisationDesk.receive`), or
    None when it is not usable text: a hostile peer's input is recorded and never raises."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        return None
    return value if _text_problem(value) is None else None


def caller_number(value: object) -> str | None:
    """The caller's number as the telephony gave it (a number or a SIP URI), or None."""
    return text("caller_number", value, max_length=CALLER_NUMBER_MAX, optional=True)


def access_number(value: object) -> str:
    """The number dialled (7.1.2)."""
    checked = text("number", value, max_length=CALLER_NUMBER_MAX)
    assert checked is not None
    return checked


def instant(argument: str, value: object) -> datetime | None:
    """``at=`` (or ``now=``, ``since=`` …): None (the engine's clock) or an aware datetime."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidArgument(
            argument, f"expected an aware datetime, not {type(value).__name__} {value!r:.40}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(argument, "a datetime without a time zone; pass an aware one (UTC)")
    return value


def not_before(now: datetime, last: datetime | None, *, given: bool) -> datetime:
    """When a step of a call is recorded: ``now``, never before the call's ``last`` recorded
    step, so that every duration the reports read (the pass-on time of 6.4b above all) is the
    right way round.

    An ``at=`` the host gave (``given``) that is earlier is refused: an acknowledgement timed
    before its referral existed would count as passed on at once. The engine's own clock
    reading earlier (a clock stepped back, two hosts' clocks a moment apart) records the step
    at ``last`` instead: a lone worker's check-out or an acknowledgement is not refused because
    a server's clock moved."""
    if last is None or now >= last:
        return now
    if given:
        raise InvalidArgument(
            "at",
            f"{now.isoformat()} is earlier than the call's last recorded step "
            f"({last.isoformat()}); a step cannot be recorded before it: pass a later at=, "
            "or none for the engine's clock",
        )
    return last


def call_id(value: object) -> str:
    """A call id: anything that is not one is simply not found (7.10)."""
    if not isinstance(value, str) or _text_problem(value) is not None or len(value) > 64:
        raise CallNotFound(f"no call {value!r:.80}: a call id is the text the engine returned")
    return value


def reference(value: object) -> str:
    """A reference a caller quotes (5.2.2)."""
    if not isinstance(value, str) or _text_problem(value) is not None or len(value) > 64:
        raise CallNotFound(f"{value!r:.80} is not a call reference")
    return value


def organisation_id(value: object) -> str:
    if not isinstance(value, str):
        raise UnknownOrganisation(f"no organisation {value!r:.80} is loaded")
    return value


def search_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument("limit", f"expected a whole number, not {type(value).__name__}")
    if not 1 <= value <= SEARCH_LIMIT_MAX:
        raise InvalidArgument("limit", f"{value} is not between 1 and {SEARCH_LIMIT_MAX}")
    return value


def _value_problem(value: object, depth: int = 0) -> str | None:
    if depth > 4:
        return "is nested too deeply"
    if value is None or isinstance(value, (bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "is not a finite number"
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            problem = _value_problem(item, depth + 1)
            if problem is not None:
                return problem
        return None
    return f"is a {type(value).__name__}, not text, a number, yes/no or a list"


def answers(value: object) -> Mapping[str, Any]:
    """A capture's answers: a mapping of field names to plain values (5.3.3)."""
    if not isinstance(value, Mapping):
        raise InvalidArgument(
            "answers", f"expected a mapping of field names to answers, not {type(value).__name__}"
        )
    problems: list[AnswerProblem] = []
    for field, answer in value.items():
        if not isinstance(field, str) or _text_problem(field) is not None:
            problems.append(AnswerProblem(repr(field)[:80], "a field name is text"))
            continue
        problem = _value_problem(answer)
        if problem is not None:
            problems.append(AnswerProblem(field, f"the answer {problem}"))
    if problems:
        raise InvalidAnswers(problems)
    return value


@contextmanager
def transaction(store: Store) -> Iterator[Connection]:
    """``store.transaction()``, with a concurrent transaction's conflict on PostgreSQL raised
    as :class:`ConcurrentChange` (retry the step) and a value the database refuses as
    :class:`InvalidArgument`; either way nothing was written. A fault of the machine (the
    database unreachable, restarting, out of disk space) is already a
    :class:`~oohcore.store.StoreError` saying whether a retry is safe: the store translates
    those, in its transaction helper, for every caller."""
    try:
        with store.transaction() as conn:
            yield conn
    except DataError as exc:
        raise InvalidArgument("value", f"the store refused a value ({exc.orig})") from exc
    except Exception as exc:
        if is_conflict(exc):
            raise ConcurrentChange(
                "another desk or runner changed the same records meanwhile; nothing was "
                "written: read the call again and retry"
            ) from exc
        raise


def search_arguments(
    caller_name: object,
    address: object,
    uprn: object,
    service_option: object,
    since: object,
    until: object,
    limit: object,
) -> None:
    """The arguments of :meth:`OrganisationDesk.search` (5.2.7, 7.4.2)."""
    text("caller_name", caller_name, max_length=NAME_MAX, optional=True)
    text("address", address, max_length=ADDRESS_MAX, optional=True)
    text("service_option", service_option, max_length=64, optional=True)
    if isinstance(uprn, bool) or not (uprn is None or isinstance(uprn, (int, str))):
        raise InvalidArgument("uprn", f"expected a UPRN (digits), not {type(uprn).__name__}")
    if isinstance(uprn, str):
        text("uprn", uprn, max_length=20)
    instant("since", since)
    instant("until", until)
    search_limit(limit)
