"""Reporting periods on an organisation's wall clock (11.5-11.8), across clock changes.

A period is a range of local dates ``[first, after)``: a day (11.5), a Monday-to-Sunday week
(11.6, 11.9.1), a calendar month (11.7) or a year (11.8). CDRs carry their local date, so a
period selects them directly; the other records (referrals, messages, events) are selected by
:meth:`Period.utc_bounds`, the instants at which the first local day starts and the day after
the last starts, which is where a 23- or 25-hour day of a clock change is counted correctly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from oohcore.errors import OohcoreError

__all__ = ["Period", "PeriodError", "PeriodKind"]


class PeriodError(OohcoreError, ValueError):
    """A period written in a form oohcore does not read."""


class PeriodKind(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


_FORMS = "2026-10-03 (a day), 2026-W41 (an ISO week), 2026-10 (a month) or 2026 (a year)"


@dataclass(frozen=True, slots=True)
class Period:
    kind: PeriodKind
    first: date  # the first local day
    after: date  # the local day after the last

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2026-10-03``, ``2026-W41``, ``2026-10`` or ``2026``."""
        value = text.strip()
        try:
            if m := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", value):
                return cls.day(date(int(m[1]), int(m[2]), int(m[3])))
            if m := re.fullmatch(r"(\d{4})-W(\d{2})", value, re.IGNORECASE):
                return cls.week(date.fromisocalendar(int(m[1]), int(m[2]), 1))
            if m := re.fullmatch(r"(\d{4})-(\d{2})", value):
                return cls.month(int(m[1]), int(m[2]))
            if m := re.fullmatch(r"(\d{4})", value):
                return cls.year(int(m[1]))
        except ValueError as exc:
            raise PeriodError(f"period {text!r}: {exc}; write {_FORMS}") from None
        raise PeriodError(f"period {text!r} is not understood; write {_FORMS}")

    @classmethod
    def day(cls, day: date) -> Period:
        return cls(PeriodKind.DAY, day, day + timedelta(days=1))

    @classmethod
    def week(cls, any_day: date) -> Period:
        """The Monday-to-Sunday week holding ``any_day`` (11.9.1)."""
        monday = any_day - timedelta(days=any_day.weekday())
        return cls(PeriodKind.WEEK, monday, monday + timedelta(days=7))

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        first = date(year, month, 1)
        after = date(year + (month == 12), month % 12 + 1, 1)
        return cls(PeriodKind.MONTH, first, after)

    @classmethod
    def year(cls, year: int) -> Period:
        return cls(PeriodKind.YEAR, date(year, 1, 1), date(year + 1, 1, 1))

    @property
    def last(self) -> date:
        return self.after - timedelta(days=1)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.after - self.first).days)]

    def utc_bounds(self, timezone: str) -> tuple[datetime, datetime]:
        """The UTC instants at which the period starts and ends on the ``timezone`` clock."""
        zone = ZoneInfo(timezone)

        def midnight(day: date) -> datetime:
            return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)

        return midnight(self.first), midnight(self.after)

    def hours(self, timezone: str) -> float:
        """How many hours the period lasts on the clock (a month with a change: ± 1)."""
        start, end = self.utc_bounds(timezone)
        return (end - start).total_seconds() / 3600

    @property
    def label(self) -> str:
        if self.kind is PeriodKind.DAY:
            return self.first.isoformat()
        if self.kind is PeriodKind.WEEK:
            year, week, _ = self.first.isocalendar()
            return f"{year}-W{week:02d}"
        if self.kind is PeriodKind.MONTH:
            return f"{self.first:%Y-%m}"
        return f"{self.first:%Y}"

    def __str__(self) -> str:
        return f"{self.label} ({self.first.isoformat()} to {self.last.isoformat()})"
