"""Rota exchange: iCalendar (RFC 5545) and CSV, one calendar per role (issue 8, 2.3.3).

**Import** reads a calendar of shifts for one role and stage: every VEVENT, its RRULE, EXDATE,
RECURRENCE-ID and TZID expanded by ``recurring-ical-events`` over a window, each occurrence a
shift of the officer it names -- matched by an ATTENDEE (or ORGANIZER) e-mail address, else by
the SUMMARY being the officer's name or id (``On call: Ann Lee`` works too). The shifts become
one layer (named ``ical`` or ``csv``) of the stage, replacing that layer of an earlier import;
the officer's other layers stay under it. A bad file is reported with its line numbers and
nothing is imported.

**Export** writes the role's stage as it will be (layers and overrides resolved) over a
period: one VEVENT per shift, in the organisation's time zone with its VTIMEZONE.

**CSV** (documented in docs/rotas.md)::

    officer,start,end
    ann,2026-11-20T17:00,2026-11-21T08:00

``officer`` is an officer's id, e-mail or name; ``start``/``end`` are the organisation's wall
clock (or carry an offset). Export adds ``name``, ``email`` and ``because`` columns.
"""

from __future__ import annotations

import csv
import io
import re
import time as time_module
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from oohcore.cells import cell_text, plain_text
from oohcore.errors import Problem, RulesetError
from oohcore.rota import ical_checks as checks
from oohcore.rota.model import OnCallOfficer
from oohcore.rota.schedule import Layer, RotaData, Shift, in_gap

_MAILTO = re.compile(r"^mailto:", re.IGNORECASE)


def _problem(path: str, line: int, message: str, code: str = "rota-import") -> Problem:
    return Problem(path, line, 1, message, code)


def _matcher(officers: Mapping[str, OnCallOfficer]) -> tuple[dict[str, str], dict[str, str]]:
    by_email = {o.email.lower(): o.id for o in officers.values() if o.email}
    by_name = {o.name.casefold(): o.id for o in officers.values()}
    by_name.update({o.id.casefold(): o.id for o in officers.values()})
    return by_email, by_name


def _match(
    summary: str, emails: list[str], by_email: Mapping[str, str], by_name: Mapping[str, str]
) -> str | None:
    for e in emails:
        got = by_email.get(e.lower())
        if got:
            return got
    text = summary.strip().casefold()
    if text in by_name:
        return by_name[text]
    # "On call: Ann Lee", "Ann Lee (on call)": an officer's full name (two words or more) as
    # whole words of the summary, and only one officer's: "Joanne Leeds" is not Ann Lee, and a
    # summary naming two officers says nothing about which one holds the shift
    inside = {
        oid
        for n, oid in by_name.items()
        if " " in n and re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text)
    }
    return inside.pop() if len(inside) == 1 else None


def _emails(component: Any) -> list[str]:
    out: list[str] = []
    for key in ("ATTENDEE", "ORGANIZER"):
        values = component.get(key)
        if values is None:
            continue
        for v in values if isinstance(values, list) else [values]:
            out.append(_MAILTO.sub("", str(v)))
    return out


def _instant(value: Any, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=tz).astimezone(UTC)
        return value.astimezone(UTC)
    if isinstance(value, date):  # an all-day event: from the local midnight
        return datetime.combine(value, time(0)).replace(tzinfo=tz).astimezone(UTC)
    raise ValueError(f"not a date or time: {value!r}")


def read_ical(
    content: str | bytes,
    officers: Mapping[str, OnCallOfficer],
    *,
    start: datetime,
    end: datetime,
    timezone: str,
    path: str = "<calendar>",
    name: str = "ical",
    timer: Callable[[], float] = time_module.monotonic,
) -> Layer:
    """The shifts of a calendar between ``start`` and ``end`` as one layer; raises
    :class:`RulesetError` with line numbers when the file or any event is wrong.

    The file is checked before anything is expanded (:mod:`oohcore.rota.ical_checks`):
    recurrences are expanded only inside the window, at most ``MAX_SHIFTS`` shifts, for at
    most ``EXPANSION_BUDGET_S`` seconds of ``timer`` (a guard on work, not a business time: a
    rule the checks cannot prove impossible makes the expander search on to the year 9999)."""
    if not timedelta(0) < end - start <= checks.MAX_WINDOW:
        raise RulesetError(
            [
                _problem(
                    path,
                    1,
                    f"the import window must be longer than nothing and at most "
                    f"{checks.MAX_WINDOW.days} days",
                )
            ]
        )
    text = checks.decode(content, path)
    tz = ZoneInfo(timezone)
    lines = checks.scan(text, path)
    try:
        cal = icalendar.Calendar.from_ical(text)
    except (ValueError, RecursionError) as exc:
        raise RulesetError(
            [_problem(path, 1, f"not a readable iCalendar file: {str(exc)[:200]}")]
        ) from None
    uid_line: dict[str, int] = {}
    problems: list[Problem] = []
    for i, ev in enumerate(cal.walk("VEVENT")):
        where = lines[i] if i < len(lines) else checks.EventLines(1)
        uid_line.setdefault(str(ev.get("UID", "")), where.begin)
        problems += checks.check_event(ev, where, path, start=start, end=end)
    if problems:
        raise RulesetError(problems)
    by_email, by_name = _matcher(officers)
    shifts: list[Shift] = []
    for occ, line in _occurrences(cal, start, end, uid_line, path, timer):
        summary = str(occ.get("SUMMARY", ""))
        oid = _match(summary, _emails(occ), by_email, by_name)
        if oid is None:
            problems.append(
                _problem(
                    path,
                    line,
                    f"event {(summary or str(occ.get('UID', '')))[:80]!r}: no officer matches its "
                    "attendee e-mail or its summary; add the officer first (match by e-mail or "
                    "name)",
                    "unknown-officer",
                )
            )
            continue
        s = _instant(occ["DTSTART"].dt, tz)
        if occ.get("DTEND") is not None:
            e = _instant(occ["DTEND"].dt, tz)
        elif occ.get("DURATION") is not None:
            e = s + occ["DURATION"].dt
        else:
            e = s + timedelta(days=1)
        if e <= s:
            problems.append(_problem(path, line, f"event {summary[:80]!r} ends before it starts"))
            continue
        shifts.append(Shift(s, e, oid))
    if problems:
        raise RulesetError(problems)
    shifts.sort(key=lambda sh: (sh.start, sh.end))
    return Layer(name, shifts=tuple(shifts))


def _occurrences(
    cal: Any,
    start: datetime,
    end: datetime,
    uid_line: Mapping[str, int],
    path: str,
    timer: Callable[[], float],
) -> Iterator[tuple[Any, int]]:
    """Each occurrence in [start, end) with its event's line, series by series, stopping with
    a located error past ``MAX_SHIFTS`` (the expander is lazy: nothing past the cap is made)
    or past the expansion budget."""
    count = 0
    began = timer()
    try:
        query = recurring_ical_events.of(cal)
    except Exception as exc:  # the library raises several kinds for a bad calendar
        raise RulesetError(
            [_problem(path, 1, f"cannot expand the calendar: {str(exc)[:200]}")]
        ) from None
    for series in query.series:
        line = uid_line.get(str(getattr(series, "uid", "")), 1)
        if timer() - began > checks.EXPANSION_BUDGET_S:
            raise RulesetError(
                [
                    _problem(
                        path,
                        line,
                        f"expanding the recurrences took more than {checks.EXPANSION_BUDGET_S:g} "
                        "s before this event: simplify the RRULEs (a rule that can never fall "
                        "again is searched to the year 9999), or split the calendar",
                        "too-slow",
                    )
                ]
            )
        try:
            for occurrence in series.between(start, end):
                count += 1
                if count > checks.MAX_SHIFTS:
                    raise RulesetError(
                        [
                            _problem(
                                path,
                                line,
                                f"more than {checks.MAX_SHIFTS:,} shifts in the import window: "
                                "import a shorter period (--days), or check the RRULE",
                                "too-many",
                            )
                        ]
                    )
                yield occurrence.as_component(False), line
        except RulesetError:
            raise
        except Exception as exc:  # a bad RRULE or date: ValueError, OverflowError, the library's
            raise RulesetError(
                [_problem(path, line, f"cannot expand this event's recurrence: {str(exc)[:200]}")]
            ) from None


def write_ical(
    data: RotaData,
    role: str,
    start: datetime,
    end: datetime,
    *,
    timezone: str,
    stage: int = 1,
    organisation: str = "",
) -> bytes:
    """The role's stage over [start, end) as an iCalendar file (one VEVENT per shift)."""
    tz = ZoneInfo(timezone)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//oohcore//rota//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"{organisation} {role} stage {stage}".strip())
    cal.add("x-wr-timezone", timezone)
    for seg in data.timeline(role, start, end, tz):
        st = seg.answer.stage(stage)
        if st is None or not st.officers:
            continue
        officer = st.officers[0]
        ev = icalendar.Event()
        ev.add("uid", f"{organisation}-{role}-{stage}-{seg.start:%Y%m%dT%H%M%SZ}@oohcore")
        ev.add("dtstamp", seg.start)
        ev.add("dtstart", seg.start.astimezone(tz))
        ev.add("dtend", seg.end.astimezone(tz))
        ev.add("summary", officer.name)
        ev.add("description", st.because)
        if officer.email:
            ev.add("attendee", f"mailto:{officer.email}")
        cal.add_component(ev)
    cal.add_missing_timezones()
    return bytes(cal.to_ical())


def read_csv(
    text: str,
    officers: Mapping[str, OnCallOfficer],
    *,
    timezone: str,
    path: str = "<csv>",
    name: str = "csv",
) -> Layer:
    """The shifts of a CSV (``officer,start,end``) as one layer; :class:`RulesetError` with row
    line numbers when anything is wrong, and nothing is imported."""
    tz = ZoneInfo(timezone)
    by_email, by_name = _matcher(officers)
    problems: list[Problem] = []
    shifts: list[Shift] = []
    reader = csv.DictReader(io.StringIO(checks.decode(text, path).lstrip("\ufeff")))
    try:
        missing = {"officer", "start", "end"} - set(reader.fieldnames or ())
        if missing:
            raise RulesetError(
                [_problem(path, 1, f"the header lacks {', '.join(sorted(missing))}")]
            )
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:  # a field over the csv module's size limit, a NUL …
        raise RulesetError(
            [_problem(path, reader.line_num or 1, f"not a readable CSV row: {exc}")]
        ) from None
    if len(rows) > checks.MAX_SHIFTS:
        raise RulesetError(
            [
                _problem(
                    path,
                    rows[checks.MAX_SHIFTS][0],
                    f"more than {checks.MAX_SHIFTS:,} shifts in one import: import a shorter "
                    "period",
                    "too-many",
                )
            ]
        )
    plausible = (date(1970, 1, 1), date(2200, 1, 1))
    for line, row in rows:
        who = plain_text((row.get("officer") or "").strip())  # as write_csv neutralised it
        oid = by_email.get(who.lower()) or by_name.get(who.casefold())
        if oid is None:
            problems.append(
                _problem(
                    path,
                    line,
                    f"no officer {who!r} (give an id, e-mail or name)",
                    "unknown-officer",
                )
            )
            continue
        times: list[datetime] = []
        for col in ("start", "end"):
            raw = (row.get(col) or "").strip()
            try:
                value = datetime.fromisoformat(raw)
                if not plausible[0] <= value.date() < plausible[1]:
                    raise ValueError(raw)  # 9999-12-31T23:59-14:00 is past the last UTC instant
            except ValueError:
                problems.append(
                    _problem(
                        path,
                        line,
                        f"{col} {raw!r} is not a date and time from 1970 to 2199 "
                        "(e.g. 2026-11-20T17:00)",
                    )
                )
                continue
            if value.tzinfo is None and in_gap(value, tz):
                problems.append(
                    _problem(
                        path,
                        line,
                        f"{col} {raw} does not exist in {timezone}: the clocks go forward over it",
                    )
                )
                continue
            times.append(value.replace(tzinfo=tz) if value.tzinfo is None else value)
        if len(times) != 2:
            continue
        s, e = (t.astimezone(UTC) for t in times)
        if e <= s:
            problems.append(_problem(path, line, "'end' must be after 'start'"))
            continue
        shifts.append(Shift(s, e, oid))
    if problems:
        raise RulesetError(problems)
    shifts.sort(key=lambda sh: (sh.start, sh.end))
    return Layer(name, shifts=tuple(shifts))


def write_csv(
    data: RotaData, role: str, start: datetime, end: datetime, *, timezone: str, stage: int = 1
) -> str:
    """The role's stage over [start, end) as CSV (wall-clock times with their offsets)."""
    tz = ZoneInfo(timezone)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["officer", "start", "end", "name", "email", "because"])
    for seg in data.timeline(role, start, end, tz):
        st = seg.answer.stage(stage)
        if st is None or not st.officers:
            continue
        o = st.officers[0]
        w.writerow(
            [
                cell_text(o.id),  # every text cell neutralised against formula injection
                seg.start.astimezone(tz).isoformat(timespec="minutes"),
                seg.end.astimezone(tz).isoformat(timespec="minutes"),
                cell_text(o.name),
                cell_text(o.email or ""),
                cell_text(st.because),
            ]
        )
    return out.getvalue()
