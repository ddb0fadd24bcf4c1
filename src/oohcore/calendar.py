"""Hours of service, UK bank holidays and working days, in local (Europe/London) time.

Timestamps are aware UTC everywhere in oohcore (:mod:`oohcore.clock`); this module is where
they meet local wall-clock time. Every public function takes an *aware* datetime in any zone
and refuses a naive one with :class:`ValueError`.

The contract ruleset authors rely on
------------------------------------

**Weekly windows.** A :class:`~oohcore.rulesets.models.Window` listed for day D with
``from: S`` and ``to: E`` covers local wall-clock time

* ``[D S, D E)`` when E is after S (``"09:00"``–``"17:00"``);
* ``[D S, (D+1) E)`` when E is at or before S: the window runs past midnight
  (``"17:00"``–``"08:00"`` on fri covers Friday 17:00 to Saturday 08:00; ``"00:00"``–``"00:00"``
  is the whole of D);
* ``"24:00"`` as ``to`` always means the end of D (``"00:00"``–``"24:00"`` is the whole of D).

The start is included and the end is not, so back-to-back windows leave no gap and do not
overlap. The typical hours of 2.1.5 (5pm–8am Monday to Friday, all weekend) are therefore::

    weekly:
      - {days: [mon, tue, wed, thu, fri, sat, sun], from: "17:00", to: "08:00"}
      - {days: [sat, sun], from: "00:00", to: "24:00"}

**Local time.** An instant is converted to the organisation's time zone with :mod:`zoneinfo`
and its local date and wall-clock time are compared with the windows. Both UK clock changes are
therefore handled by construction: a window ending ``"08:00"`` ends at 08:00 local time whether
that is 07:00 UTC (BST) or 08:00 UTC (GMT); a Sunday ``"00:00"``–``"08:00"`` window lasts
7 real hours on the day the clocks go forward and 9 on the day they go back; a local time that
does not exist (01:00–02:00 on the last Sunday of March) never occurs, so a window boundary
inside that gap takes effect at the moment the clocks jump. On the night the clocks go back,
local 01:00–02:00 happens twice and a window covering those wall-clock times covers both.

**Special days** (2.1.5, 2.1.6). They add whole local dates, midnight to midnight, to the weekly
windows; they never remove any, so an overnight window from the day before a special day still
runs into it as usual, and one starting on it still runs on into the next day.

* ``bank_holidays: all_day`` — every bank holiday of the organisation's nation
  (:func:`is_bank_holiday`) is in service all day. ``as_weekly`` — only the weekly windows apply.
* ``christmas_period: all_day`` — every date of :func:`christmas_period` (the working days
  strictly between Christmas Day and New Year's Day, 2.1.6) is in service all day; ``as_weekly``
  — only the weekly windows apply.
* ``extra_days`` — further whole local dates in service (e.g. Christmas Eve).

**Bank holidays** are those the ``holidays`` package lists for ``GB`` and the nation's
subdivision (``ENG``, ``WLS``, ``SCT``, ``NIR``). That includes the day itself when Christmas
Day, Boxing Day or New Year's Day falls at a weekend *and* its substitute weekday, as well as
one-off bank holidays the package knows of.

**Working days** (5.7.5, 5.7.6, 11.9.1) are Monday to Friday except bank holidays of the nation.

Performance: :meth:`ServiceCalendar.is_open` is on the hot path of every call. The weekly
windows are compiled once per calendar into per-weekday minute spans, and bank holidays and
special dates are computed once per (nation, year) and kept in sets.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from oohcore.clock import as_utc
from oohcore.rulesets.models import WEEKDAYS, Hours, SpecialDays, UkNation, Variant

__all__ = [
    "DEFAULT_TIMEZONE",
    "NEXT_CHANGE_HORIZON",
    "ServiceCalendar",
    "active_variant",
    "add_working_days",
    "christmas_period",
    "is_bank_holiday",
    "is_working_day",
    "local_fields",
]

DEFAULT_TIMEZONE = "Europe/London"
NEXT_CHANGE_HORIZON = timedelta(days=14)
"""How far ahead :meth:`ServiceCalendar.next_change` looks."""

_MINUTES_PER_DAY = 24 * 60
_WEEKDAY_INDEX = {weekday: index for index, weekday in enumerate(WEEKDAYS)}
_WEEKDAY_NAMES = tuple(weekday.value for weekday in WEEKDAYS)

# Minute-of-day spans [start, end) per weekday, Monday first.
_Spans = tuple[tuple[int, int], ...]


# ---------------------------------------------------------------------------------------------
# Time zones, bank holidays, working days
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"{name!r} is not a known time zone; use an IANA name such as 'Europe/London'"
        ) from exc


@functools.lru_cache(maxsize=512)
def _bank_holidays(nation: UkNation, year: int) -> frozenset[date]:
    calendar = holidays.country_holidays("GB", subdiv=str(nation), years=year)
    return frozenset(day for day in calendar if day.year == year)


def is_bank_holiday(day: date, nation: UkNation = UkNation.ENG) -> bool:
    """Whether ``day`` is a bank holiday in ``nation`` (see the module docstring)."""
    return day in _bank_holidays(nation, day.year)


def is_working_day(day: date, nation: UkNation = UkNation.ENG) -> bool:
    """Monday to Friday and not a bank holiday of ``nation`` (the spec's Working Day)."""
    return day.weekday() < 5 and day not in _bank_holidays(nation, day.year)


@functools.lru_cache(maxsize=512)
def _christmas_period(year: int, nation: UkNation) -> tuple[date, ...]:
    between = (date(year, 12, day) for day in range(26, 32))
    return tuple(day for day in between if is_working_day(day, nation))


def christmas_period(year: int, nation: UkNation = UkNation.ENG) -> list[date]:
    """The working days strictly between Christmas Day ``year`` and New Year's Day (2.1.6).

    Usually three; for 2026 they are Tue 29, Wed 30 and Thu 31 December (Boxing Day is a
    Saturday, so Monday 28th is its substitute bank holiday).
    """
    return list(_christmas_period(year, nation))


def add_working_days(
    start: datetime,
    days: int,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    nation: UkNation = UkNation.ENG,
) -> datetime:
    """The instant ``days`` working days after ``start``, e.g. a complaint report's due time
    (5.7.5: five Working Days of receipt; 5.7.6: one).

    Counting starts from ``start``'s local date: the result is the ``days``-th working day after
    it (whether or not that date is itself a working day), at the same local wall-clock time as
    ``start``, returned in UTC. So a complaint received on Thursday at 22:00 is due at 22:00 on
    the Thursday after; one received on Saturday at 10:00 is due at 10:00 on Friday.
    ``days == 0`` returns ``start`` (in UTC). Negative ``days`` is refused.
    """
    if days < 0:
        raise ValueError(f"days must be zero or more, not {days}")
    local = as_utc(start).astimezone(_zone(timezone))
    day = local.date()
    remaining = days
    while remaining:
        day += timedelta(days=1)
        if is_working_day(day, nation):
            remaining -= 1
    return local.replace(year=day.year, month=day.month, day=day.day).astimezone(UTC)


def local_fields(
    when: datetime,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    nation: UkNation = UkNation.ENG,
) -> dict[str, object]:
    """The built-in time fields rulesets' conditions can read, all in local time.

    ``hour`` (0–23) and ``minute`` (0–59) of the local wall clock, ``weekday``
    (``"mon"`` … ``"sun"``) and ``weekend`` (Saturday or Sunday) of the local date, and
    ``bank_holiday`` (the local date is a bank holiday of ``nation``).
    """
    local = as_utc(when).astimezone(_zone(timezone))
    day = local.date()
    weekday = day.weekday()
    return {
        "hour": local.hour,
        "minute": local.minute,
        "weekday": _WEEKDAY_NAMES[weekday],
        "weekend": weekday >= 5,
        "bank_holiday": day in _bank_holidays(nation, day.year),
    }


# ---------------------------------------------------------------------------------------------
# Hours of service (2.1.5, 2.1.6, 5.4.2, 5.4.3)
# ---------------------------------------------------------------------------------------------


def _merge(spans: Iterable[tuple[int, int]]) -> _Spans:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(span for span in spans if span[0] < span[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _weekly_spans(hours: Hours) -> tuple[_Spans, ...]:
    """The weekly windows as minute-of-day spans per weekday, overnight windows split at
    midnight (module docstring: ``"24:00"`` as ``to`` is the end of the day)."""
    per_day: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for window in hours.weekly:
        start, end = window.start.minutes, window.end.minutes
        for weekday in window.days:
            index = _WEEKDAY_INDEX[weekday]
            if end == _MINUTES_PER_DAY or end > start:
                per_day[index].append((start, end))
            else:
                per_day[index].append((start, _MINUTES_PER_DAY))
                per_day[(index + 1) % 7].append((0, end))
    return tuple(_merge(spans) for spans in per_day)


def _offset_changes(zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The instants in ``(start, end]`` at which ``zone``'s UTC offset changes (clock changes).

    Steps an hour at a time and then bisects to the second: tz transitions fall on whole seconds.
    """
    changes: list[datetime] = []
    low = int(start.timestamp())
    last = int(end.timestamp()) + 1
    offset = datetime.fromtimestamp(low, zone).utcoffset()
    while low < last:
        high = min(low + 3600, last)
        high_offset = datetime.fromtimestamp(high, zone).utcoffset()
        if high_offset != offset:
            lo, hi = low, high
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if datetime.fromtimestamp(mid, zone).utcoffset() == offset:
                    lo = mid
                else:
                    hi = mid
            changes.append(datetime.fromtimestamp(hi, UTC))
            offset = high_offset
        low = high
    return [change for change in changes if start < change <= end]


class ServiceCalendar:
    """When a service (or a whole organisation) is in operation, from its :class:`Hours`.

    Build one per set of hours (e.g. when a ruleset is compiled) and reuse it: construction
    compiles the windows; :meth:`is_open` then only does set and range look-ups. See the module
    docstring for the exact semantics.
    """

    __slots__ = (
        "_christmas_all_day",
        "_extra_days",
        "_holidays_all_day",
        "_hours",
        "_nation",
        "_special",
        "_timezone",
        "_weekly",
        "_zone",
    )

    def __init__(
        self,
        hours: Hours,
        *,
        timezone: str = DEFAULT_TIMEZONE,
        nation: UkNation = UkNation.ENG,
    ) -> None:
        self._hours = hours
        self._timezone = timezone
        self._zone = _zone(timezone)
        self._nation = UkNation(nation)
        self._weekly = _weekly_spans(hours)
        self._holidays_all_day = hours.bank_holidays == SpecialDays.all_day
        self._christmas_all_day = hours.christmas_period == SpecialDays.all_day
        self._extra_days = frozenset(hours.extra_days)
        self._special: dict[int, frozenset[date]] = {}

    @property
    def hours(self) -> Hours:
        return self._hours

    @property
    def timezone(self) -> str:
        return self._timezone

    @property
    def nation(self) -> UkNation:
        return self._nation

    def __repr__(self) -> str:
        return f"ServiceCalendar(timezone={self._timezone!r}, nation={self._nation.value!r})"

    def _all_day_dates(self, year: int) -> frozenset[date]:
        """The local dates of ``year`` that are in service from midnight to midnight."""
        found = self._special.get(year)
        if found is None:
            dates = {day for day in self._extra_days if day.year == year}
            if self._holidays_all_day:
                dates |= _bank_holidays(self._nation, year)
            if self._christmas_all_day:
                dates.update(_christmas_period(year, self._nation))
            found = self._special[year] = frozenset(dates)
        return found

    def _open_at(self, local: datetime) -> bool:
        day = local.date()
        if day in self._all_day_dates(day.year):
            return True
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self._weekly[day.weekday()])

    def is_open(self, when: datetime) -> bool:
        """Whether the service is in operation at the instant ``when`` (aware, any zone)."""
        return self._open_at(as_utc(when).astimezone(self._zone))

    def next_change(self, when: datetime) -> datetime | None:
        """The first instant after ``when`` at which :meth:`is_open` changes, in UTC.

        Looks at most :data:`NEXT_CHANGE_HORIZON` (14 days) ahead and returns ``None`` when the
        state does not change within it (e.g. hours that cover the whole week). The returned
        instant is the first one with the new state: ``is_open(next_change(t)) != is_open(t)``.
        """
        start = as_utc(when)
        end = start + NEXT_CHANGE_HORIZON
        state = self._open_at(start.astimezone(self._zone))
        for candidate in self._candidates(start, end):
            if self._open_at(candidate.astimezone(self._zone)) != state:
                return candidate
        return None

    def _candidates(self, start: datetime, end: datetime) -> list[datetime]:
        """Every instant in ``(start, end]`` at which the state *may* change, sorted.

        Between two clock changes local time runs continuously, so the state can change only
        where the local wall clock reaches a window boundary or midnight; each such wall time is
        converted with both folds (an ambiguous time is reached twice, a non-existent one
        never, and its spurious conversions are harmless because each candidate is checked).
        The clock changes themselves are candidates too, since the wall clock jumps there.
        """
        zone = self._zone
        found = set(_offset_changes(zone, start, end))
        day = start.astimezone(zone).date() - timedelta(days=1)
        last = end.astimezone(zone).date() + timedelta(days=1)
        while day <= last:
            minutes = {0}
            for span in self._weekly[day.weekday()]:
                minutes.update(span)
            for minute in minutes:
                if minute >= _MINUTES_PER_DAY:
                    continue  # the next day's midnight
                wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
                for fold in (0, 1):
                    instant = wall.replace(fold=fold).astimezone(UTC)
                    if start < instant <= end:
                        found.add(instant)
            day += timedelta(days=1)
        return sorted(found)


_CALENDARS: dict[tuple[int, str, str], tuple[Hours, ServiceCalendar]] = {}
_CALENDARS_MAX = 1024


def _calendar_for(hours: Hours, timezone: str, nation: UkNation) -> ServiceCalendar:
    """A cached calendar for ``hours`` (models hold lists, so they are not hashable: keyed by
    identity, keeping ``hours`` alive so that its id cannot be reused while cached)."""
    key = (id(hours), timezone, str(nation))
    hit = _CALENDARS.get(key)
    if hit is not None and hit[0] is hours:
        return hit[1]
    calendar = ServiceCalendar(hours, timezone=timezone, nation=nation)
    if len(_CALENDARS) >= _CALENDARS_MAX:
        _CALENDARS.clear()
    _CALENDARS[key] = (hours, calendar)
    return calendar


def active_variant(
    variants: Sequence[Variant],
    when: datetime,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    nation: UkNation = UkNation.ENG,
) -> Variant | None:
    """The first of ``variants`` whose hours cover ``when``, or ``None`` (5.4.3: e.g. no
    emergency noise service after 3 a.m.).

    A variant's hours follow the same rules as any other :class:`Hours`, special days included:
    because ``bank_holidays`` and ``christmas_period`` default to ``all_day``, a variant meant
    only for its weekly windows must say ``as_weekly`` for both, or it applies all day on bank
    holidays and in the Christmas period.
    """
    instant = as_utc(when)  # refuses a naive datetime even when there are no variants
    for variant in variants:
        if _calendar_for(variant.hours, timezone, nation).is_open(instant):
            return variant
    return None
