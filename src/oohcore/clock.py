"""Time is injected (DESIGN.md, principle 3): all logic takes ``now`` from a :class:`Clock`.

Timestamps are timezone-aware UTC everywhere in the library and in storage; local time
(Europe/London by default) is used only for hours of service, rotas and working days.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to: for tests, simulations and the demo."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        when = as_utc(when)
        if when < self._now:
            raise ValueError(f"a ManualClock does not go backwards ({when} < {self._now})")
        self._now = when

    def advance(self, by: timedelta) -> datetime:
        self.set(self._now + by)
        return self._now


def as_utc(when: datetime) -> datetime:
    """``when`` in UTC; a naive datetime is refused, because its meaning is a guess."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{when!r} has no time zone; pass an aware datetime (e.g. UTC)")
    return when.astimezone(UTC)
