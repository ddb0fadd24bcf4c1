"""The checks an iCalendar rota file passes before anything in it is expanded (2.3.3).

A rota calendar is Regularly Variable Data a council sends in; a wrong one must be refused
where it is wrong, with nothing imported, and a hostile one must not take the CLI or a host's
process with it. So, before the file is parsed or any recurrence expanded:

* the file is UTF-8 (a UTF-16 export is named as such), at most :data:`MAX_BYTES` bytes,
  :data:`MAX_EVENTS` events, :data:`MAX_DATES` EXDATE/RDATE values, nested at most
  :data:`MAX_DEPTH` components deep;
* every ``TZID`` is defined by the file's VTIMEZONE, an IANA name or a Windows name;
* each event starts and ends within ten years of the import window, ends after it starts,
  and its RRULE is one a rota is written with: hourly or slower (a shift repeating every
  minute or second is a mistake, and expanding it is unbounded work), no BYYEARDAY or
  BYWEEKNO, and a BYSETPOS, BYMONTHDAY or BYDAY that can actually fall (an impossible one
  makes the expander search to the year 9999).

Expansion itself then stops at :data:`MAX_SHIFTS` shifts in the window (``exchange.read_ical``).
Every problem names the file's line. The limits are documented in docs/rotas.md.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from oohcore.errors import Problem, RulesetError

MAX_BYTES = 5_000_000
MAX_EVENTS = 5_000
MAX_SHIFTS = 5_000
MAX_DATES = 10_000
MAX_DEPTH = 4  # VCALENDAR > VEVENT > VALARM; VCALENDAR > VTIMEZONE > STANDARD
MAX_WINDOW = timedelta(days=1096)  # three years of --days
EXPANSION_BUDGET_S = 20.0  # of expansion in all; one series that can never fall again costs ~1 s
PLAUSIBLE = timedelta(days=3653)  # an event more than ten years from the window is a typo
HOURLY_SINCE = timedelta(days=366)  # an hourly series is expanded from its start

FREQUENCIES = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_COMMON = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYHOUR", "BYMINUTE", "BYSECOND", "BYMONTH"}
)
_PARTS = {
    "HOURLY": _COMMON | {"BYDAY"},
    "DAILY": _COMMON | {"BYDAY"},
    "WEEKLY": _COMMON | {"BYDAY", "BYSETPOS"},
    "MONTHLY": _COMMON | {"BYDAY", "BYMONTHDAY", "BYSETPOS"},
    "YEARLY": _COMMON | {"BYDAY", "BYMONTHDAY", "BYSETPOS"},
}
_MONTH_DAYS = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}


def problem(path: str, line: int, message: str, code: str = "rota-import") -> Problem:
    return Problem(path, line, 1, message, code)


def decode(content: str | bytes, path: str) -> str:
    """The file's text: UTF-8 (a BOM allowed); anything else refused at its line."""
    if isinstance(content, str):
        text = content
    else:
        if len(content) > MAX_BYTES:
            raise RulesetError(
                [problem(path, 1, f"the file is larger than {MAX_BYTES:,} bytes", "too-large")]
            )
        if content[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise RulesetError(
                [problem(path, 1, "the file is UTF-16: save (export) it as UTF-8", "encoding")]
            )
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = content.count(b"\n", 0, exc.start) + 1
            raise RulesetError(
                [
                    problem(
                        path, line, "the file is not UTF-8: save (export) it as UTF-8", "encoding"
                    )
                ]
            ) from None
    if len(text) > MAX_BYTES:
        raise RulesetError(
            [problem(path, 1, f"the file is larger than {MAX_BYTES:,} bytes", "too-large")]
        )
    return text


@dataclass
class EventLines:
    """Where one VEVENT is: its BEGIN line and the first line of each of its properties."""

    begin: int
    props: dict[str, int] = field(default_factory=dict)

    def at(self, name: str) -> int:
        return self.props.get(name, self.begin)


def _tzid(params: str) -> str | None:
    for part in params.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().upper() == "TZID":
            return value.strip().strip('"')
    return None


@cache
def _known_zones() -> frozenset[str]:
    from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

    return frozenset(zoneinfo.available_timezones()) | frozenset(WINDOWS_TO_OLSON)


def scan(text: str, path: str) -> list[EventLines]:
    """The file's structure checked line by line (RFC 5545 3.1 unfolding), before parsing:
    the events' lines, or :class:`RulesetError` with every problem found."""
    problems: list[Problem] = []
    unfolded: list[tuple[int, str]] = []
    for i, raw in enumerate(text.splitlines(), 1):
        if raw[:1] in (" ", "\t") and unfolded:
            unfolded[-1] = (unfolded[-1][0], unfolded[-1][1] + raw[1:])
        elif raw.strip():
            unfolded.append((i, raw))
    stack: list[str] = []
    events: list[EventLines] = []
    defined: set[str] = set()
    used: dict[str, int] = {}
    dates = 0
    for i, line in unfolded:
        if ":" not in line:
            problems.append(problem(path, i, f"not an iCalendar content line: {line[:40]!r}"))
            continue
        head, _, value = line.partition(":")
        name = head.split(";", 1)[0].strip().upper()
        if name == "BEGIN":
            stack.append(value.strip().upper())
            if len(stack) > MAX_DEPTH:
                problems.append(
                    problem(path, i, f"components nested more than {MAX_DEPTH} deep", "too-deep")
                )
                raise RulesetError(problems)
            if stack[-1] == "VEVENT":
                events.append(EventLines(i))
                if len(events) > MAX_EVENTS:
                    problems.append(
                        problem(
                            path,
                            i,
                            f"more than {MAX_EVENTS:,} events in one file: import a shorter "
                            "period, or one calendar per role",
                            "too-many",
                        )
                    )
                    raise RulesetError(problems)
            continue
        if name == "END":
            if not stack:
                problems.append(problem(path, i, "END without its BEGIN"))
            else:
                stack.pop()
            continue
        if stack and stack[-1] == "VEVENT":
            events[-1].props.setdefault(name, i)
        if name == "TZID" and "VTIMEZONE" in stack:
            defined.add(value.strip())
        zone = _tzid(head)
        if zone is not None:
            used.setdefault(zone, i)
        if name in ("EXDATE", "RDATE"):
            dates += value.count(",") + 1
            if dates > MAX_DATES:
                problems.append(
                    problem(
                        path,
                        i,
                        f"more than {MAX_DATES:,} EXDATE and RDATE dates in one file",
                        "too-many",
                    )
                )
                raise RulesetError(problems)
    if stack:
        problems.append(
            problem(
                path,
                len(text.splitlines()),
                "the file ends inside a component (a BEGIN without its END)",
            )
        )
    for zone, i in used.items():
        if zone not in defined and zone not in _known_zones():
            problems.append(
                problem(
                    path,
                    i,
                    f"unknown time zone TZID={zone[:60]!r}: no VTIMEZONE in the file defines it "
                    "and it is not an IANA name (e.g. Europe/London)",
                    "bad-timezone",
                )
            )
    if problems:
        raise RulesetError(problems)
    return events


def _day(value: Any) -> date | None:
    dt = getattr(value, "dt", None)
    if isinstance(dt, datetime):
        return dt.date()
    return dt if isinstance(dt, date) else None


def check_event(
    ev: Any, where: EventLines, path: str, *, start: datetime, end: datetime
) -> list[Problem]:
    """The problems of one VEVENT that expanding it would hide or turn into unbounded work."""
    found: list[Problem] = []
    for prop, message in getattr(ev, "errors", ()):
        found.append(problem(path, where.at(str(prop).upper()), f"{prop}: {message}"))
    if found:
        return found
    first = _day(ev.get("DTSTART"))
    if first is None:
        return [problem(path, where.at("DTSTART"), "an event without a DTSTART date or time")]
    low = (start - PLAUSIBLE).date()
    high = (end + PLAUSIBLE).date()
    for name in ("DTSTART", "DTEND", "RECURRENCE-ID"):
        day = _day(ev.get(name))
        if day is not None and not low <= day <= high:
            found.append(
                problem(
                    path,
                    where.at(name),
                    f"{name} {day.isoformat()} is more than ten years from the import window "
                    f"({start:%Y-%m-%d} to {end:%Y-%m-%d}): check the year",
                    "implausible-date",
                )
            )
    ends, starts = getattr(ev.get("DTEND"), "dt", None), getattr(ev.get("DTSTART"), "dt", None)
    if ends is not None and starts is not None and _comparable(starts, ends) and ends <= starts:
        found.append(
            problem(
                path,
                where.at("DTEND"),
                f"the event ends (DTEND {ends}) before it starts (DTSTART {starts})",
                "ends-early",
            )
        )
    duration = getattr(ev.get("DURATION"), "dt", None)
    if isinstance(duration, timedelta) and duration <= timedelta(0):
        found.append(
            problem(
                path, where.at("DURATION"), "the event's DURATION is not positive", "ends-early"
            )
        )
    rules = ev.get("RRULE")
    for rule in rules if isinstance(rules, list) else [rules] if rules is not None else []:
        found += _check_rule(rule, ev, where.at("RRULE"), path, start)
    return found


def _comparable(a: Any, b: Any) -> bool:
    """Both dates, or both date-times with (or both without) a time zone."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        return (a.tzinfo is None) == (b.tzinfo is None)
    return type(a) is date and type(b) is date


def _ints(rule: Any, key: str) -> list[int]:
    return [int(v) for v in rule.get(key, ())]


def _check_rule(rule: Any, ev: Any, line: int, path: str, start: datetime) -> list[Problem]:
    def bad(message: str) -> list[Problem]:
        return [problem(path, line, f"RRULE: {message}", "bad-rrule")]

    freq = str((rule.get("FREQ") or [""])[0]).upper()
    if freq in ("SECONDLY", "MINUTELY"):
        return bad(
            f"FREQ={freq}: a rota shift repeats hourly at most; write the shifts' own pattern "
            "(e.g. FREQ=WEEKLY;BYDAY=MO,TU)"
        )
    if freq not in FREQUENCIES:
        return bad(f"FREQ {freq!r} is not one of {', '.join(FREQUENCIES)}")
    extra = sorted(set(map(str, rule)) - _PARTS[freq])
    if extra:
        return bad(
            f"{', '.join(extra)} with FREQ={freq} is not read for rota shifts; write the "
            "shifts with BYDAY, BYMONTHDAY, BYMONTH, BYHOUR (and BYSETPOS)"
        )
    dtstart = ev.get("DTSTART").dt
    if freq == "HOURLY" and isinstance(dtstart, datetime):
        since = start - HOURLY_SINCE
        first = dtstart if dtstart.tzinfo is not None else dtstart.replace(tzinfo=UTC)
        if first < since:
            return bad(
                f"an hourly series must start after {since:%Y-%m-%d} (it is expanded from "
                "its DTSTART); start a new series nearer the import window"
            )
    months = _ints(rule, "BYMONTH") or list(range(1, 13))
    days_in = [_MONTH_DAYS.get(m, 31) for m in months if 1 <= m <= 12]
    monthdays = _ints(rule, "BYMONTHDAY")
    if monthdays and days_in and not any(1 <= abs(d) <= max(days_in) for d in monthdays):
        return bad(f"BYMONTHDAY={','.join(map(str, monthdays))} never falls in those months")
    byday = [str(d) for d in rule.get("BYDAY", ())]
    if monthdays and byday:
        return bad(
            "BYMONTHDAY with BYDAY (a weekday that is also a given day of the month) is not "
            "read for rota shifts: write one or the other"
        )
    ordinals = [int(d[:-2]) for d in byday if d[:-2] not in ("", "+", "-")]
    most = 53 if freq == "YEARLY" and "BYMONTH" not in rule else 5
    if ordinals and freq in ("HOURLY", "DAILY", "WEEKLY"):
        return bad(f"BYDAY with a number ({byday[0]}) is only for FREQ=MONTHLY or YEARLY")
    if any(not 1 <= abs(n) <= most for n in ordinals):
        return bad(f"BYDAY={','.join(byday)}: no period has that many of a weekday")
    setpos = _ints(rule, "BYSETPOS")
    if setpos:
        if not set(map(str, rule)) - {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYSETPOS"}:
            return bad("BYSETPOS needs another BY part to choose from (RFC 5545 3.3.10)")
        bound = _candidates(freq, rule, byday, monthdays)
        wrong = [p for p in setpos if p == 0 or abs(p) > bound]
        if wrong:
            return bad(
                f"BYSETPOS={','.join(map(str, wrong))} can never be chosen: each period has at "
                f"most {bound} candidate(s)"
            )
    return []


def _candidates(freq: str, rule: Any, byday: Sequence[str], monthdays: Sequence[int]) -> int:
    """An upper bound on the instants one period of ``rule`` offers BYSETPOS."""
    times = 1
    for key in ("BYHOUR", "BYMINUTE", "BYSECOND"):
        times *= max(1, len(rule.get(key, ())))
    months = len(rule.get("BYMONTH", ())) or (12 if freq == "YEARLY" else 1)
    plain = sum(1 for d in byday if len(d) == 2)
    numbered = len(byday) - plain
    if freq == "WEEKLY":
        days = len(byday) or 1
    elif monthdays:
        # the most of those days one month has (31 in February is never a candidate)
        in_month = max(
            sum(1 for d in monthdays if 1 <= abs(d) <= _MONTH_DAYS.get(m, 31))
            for m in ([int(v) for v in rule.get("BYMONTH", ())] or range(1, 13))
        )
        days = in_month * (months if freq == "YEARLY" else 1)
    elif byday and freq == "MONTHLY":
        days = 5 * plain + numbered
    elif byday:
        days = (5 * plain + numbered) * months if "BYMONTH" in rule else 53 * plain + numbered
    else:
        days = months if freq == "YEARLY" and "BYMONTH" in rule else 1
    return days * times
