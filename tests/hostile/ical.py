"""Hostile rota calendars for ``oohcore rota import`` (iCalendar and CSV).

Each :class:`RotaCase` makes one file at test time (the large ones are never committed) and
``tests/test_hostile_ical.py`` imports it into a copy of the test borough, in a subprocess with
the corpus's checks (tests/hostile/run.py): exit 1, every line ``path:line:col:``, ``expect``
in the output and the line it names, no traceback, no hang (60 s), at most 200 MB, and nothing
written to the rota.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from hostile.commands import TIMEOUT_S, cli_in_subprocess

__all__ = ["CASES", "TIMEOUT_S", "RotaCase", "cli_in_subprocess"]
ROTA = """officers:
  - {id: ann, name: Ann Lee, email: ann@borough.example}
  - {id: bob, name: Bob Stone, email: bob@borough.example}
"""


def _soon(days: int = 2) -> str:
    """A local date-time a few days from today: inside any import window."""
    return f"{date.today() + timedelta(days=days):%Y%m%d}T170000"


def calendar(*events: str, head: str = "") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        + head
        + "".join(events)
        + "END:VCALENDAR\r\n"
    )


def event(
    *extra: str,
    uid: str = "e1",
    start: str | None = None,
    end: str | None = None,
    summary: str = "Ann Lee",
) -> str:
    begin = start or _soon()
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTART;TZID=Europe/London:{begin}",
        f"DTEND;TZID=Europe/London:{end or begin[:9] + '230000'}",
        f"SUMMARY:{summary}",
        *extra,
        "END:VEVENT",
    ]
    return "".join(line + "\r\n" for line in lines)


def _line(text: str, needle: str) -> int:
    """The 1-based line of ``text`` holding ``needle`` first."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


Make = Callable[[], bytes | str]


@dataclass(frozen=True)
class RotaCase:
    name: str
    make: Make
    expect: str
    line: Callable[[str], int] | None = None  # the line the error must name, from the text
    suffix: str = ".ics"


def _many_events() -> str:
    return calendar(*(event(uid=f"e{i}") for i in range(100_000)))


def _many_exdates() -> str:
    day = date.today()
    dates = ",".join(f"{day + timedelta(days=i):%Y%m%d}T170000Z" for i in range(100_000))
    return calendar(event("RRULE:FREQ=DAILY", f"EXDATE:{dates}"))


def _deep() -> str:
    return calendar("BEGIN:VEVENT\r\n" + "BEGIN:VALARM\r\n" * 100_000)


def _huge_file(path: Path) -> None:
    """A sparse 1 GB file of NULs (no disk used): made by the test, see ``SPARSE``."""
    with path.open("wb") as f:
        f.truncate(1 << 30)


SPARSE = "a-1-gb-file-of-nuls"

CASES: list[RotaCase] = [
    RotaCase(
        "secondly-huge-count",
        lambda: calendar(event("RRULE:FREQ=SECONDLY;COUNT=1000000000")),
        "FREQ=SECONDLY",
        lambda t: _line(t, "RRULE"),
    ),
    RotaCase(
        "secondly-no-end",
        lambda: calendar(event("RRULE:FREQ=SECONDLY")),
        "FREQ=SECONDLY",
        lambda t: _line(t, "RRULE"),
    ),
    RotaCase(
        "minutely-no-end",
        lambda: calendar(event("RRULE:FREQ=MINUTELY")),
        "FREQ=MINUTELY",
        lambda t: _line(t, "RRULE"),
    ),
    RotaCase(
        "impossible-bysetpos-monthly",
        lambda: calendar(event("RRULE:FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6")),
        "BYSETPOS=6 can never be chosen",
        lambda t: _line(t, "RRULE"),
    ),
    RotaCase(
        "impossible-bysetpos-weekly",
        lambda: calendar(event("RRULE:FREQ=WEEKLY;BYDAY=MO;BYSETPOS=5")),
        "BYSETPOS=5 can never be chosen",
        lambda t: _line(t, "RRULE"),
    ),
    RotaCase(
        "bymonthday-never-falls",
        lambda: calendar(event("RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30")),
        "never falls in those months",
        lambda t: _line(t, "RRULE"),
    ),
    RotaCase(
        "hourly-since-1601",
        lambda: calendar(
            event("RRULE:FREQ=HOURLY", start="16010101T000000", end="16010101T010000")
        ),
        "more than ten years",
        lambda t: _line(t, "DTSTART"),
    ),
    RotaCase(
        "too-many-shifts",
        lambda: calendar(event("RRULE:FREQ=HOURLY", end=_soon()[:9] + "180000")),
        "more than 5,000 shifts",
        lambda t: _line(t, "BEGIN:VEVENT"),
    ),
    RotaCase("100000-events", _many_events, "larger than 5,000,000 bytes", lambda t: 1),
    RotaCase(
        "6000-events",
        lambda: calendar(*(event(uid=f"e{i}") for i in range(6_000))),
        "more than 5,000 events",
        lambda t: [i for i, x in enumerate(t.splitlines(), 1) if x == "BEGIN:VEVENT"][5_000],
    ),
    RotaCase(
        "ends-before-it-starts",
        lambda: calendar(event(end=_soon()[:9] + "090000")),
        "before it starts",
        lambda t: _line(t, "DTEND"),
    ),
    RotaCase(
        "unknown-officer-inside-a-name",
        lambda: calendar(event(summary="Joanne Leeds")),  # held 'ann' inside: matched as Ann
        "no officer matches",
        lambda t: _line(t, "BEGIN:VEVENT"),
    ),
    RotaCase(
        "unknown-tzid",
        lambda: calendar(
            event().replace("DTSTART;TZID=Europe/London", "DTSTART;TZID=Mars/Olympus")
        ),
        "unknown time zone TZID='Mars/Olympus'",
        lambda t: _line(t, "Mars/Olympus"),
    ),
    RotaCase(
        "year-9999",
        lambda: calendar(event(start="99991231T170000", end="99991231T230000")),
        "DTSTART 9999-12-31 is more than ten years",
        lambda t: _line(t, "DTSTART"),
    ),
    RotaCase(
        "100000-exdates",
        _many_exdates,
        "more than 10,000 EXDATE",
        lambda t: _line(t, "EXDATE"),
    ),
    RotaCase("deep-nesting", _deep, "nested more than 4 deep", lambda t: 7),
    RotaCase(
        "utf16",
        lambda: calendar(event()).encode("utf-16"),
        "UTF-16",
        lambda t: 1,
    ),
    RotaCase(
        "latin-1",
        lambda: calendar(event(summary="Ann Lee caf\xe9")).encode("latin-1"),
        "not UTF-8",
        lambda t: _line(t, "SUMMARY"),
    ),
    RotaCase(SPARSE, lambda: b"", "larger than 5,000,000 bytes", lambda t: 1),
    RotaCase(
        "csv-utf16",
        lambda: "officer,start,end\nann,2026-11-20T17:00,2026-11-21T08:00\n".encode("utf-16"),
        "UTF-16",
        lambda t: 1,
        suffix=".csv",
    ),
    RotaCase(
        "csv-year-9999-minus-14",
        lambda: "officer,start,end\nann,2026-11-20T17:00,9999-12-31T23:59:59-14:00\n",
        "from 1970 to 2199",
        lambda t: 2,
        suffix=".csv",
    ),
    RotaCase(
        "csv-100000-rows",
        lambda: "officer,start,end\n" + "ann,2026-11-20T17:00,2026-11-21T08:00\n" * 100_000,
        "more than 5,000 shifts",
        lambda t: 5_002,
        suffix=".csv",
    ),
]
