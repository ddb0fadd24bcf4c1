"""Rota exchange (issue 8 Build 3): iCalendar as Google Calendar and Outlook write it (their
VTIMEZONE blocks, RRULE, EXDATE, RECURRENCE-ID, TZID), the round trip, the CSV, and bad files
reported by line with nothing imported (2.3.3)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from oohcore.clock import ManualClock
from oohcore.errors import RulesetError
from oohcore.rota import Layer, OnCallOfficer, RoleSchedule, RotaData, RotaStore
from oohcore.rota.exchange import read_csv, read_ical, write_csv, write_ical
from oohcore.store import Store

HERE = Path(__file__).parent / "fixtures" / "rota"
LONDON = ZoneInfo("Europe/London")
TZ = "Europe/London"
OFFICERS = {
    i: OnCallOfficer(i, n, email=f"{i}@a.example")
    for i, n in (
        ("ann", "Ann Lee"),
        ("bob", "Bob Stone"),
        ("cat", "Cat Jones"),
        ("dan", "Dan Okoro"),
    )
}
OCTOBER = datetime(2026, 10, 1, tzinfo=LONDON)
DECEMBER = datetime(2026, 12, 1, tzinfo=LONDON)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)  # type: ignore[misc]


def shifts(layer: Layer) -> list[tuple[str, str, str]]:
    return [
        (
            s.officer,
            f"{s.start.astimezone(LONDON):%d %H:%M}",
            f"{s.end.astimezone(LONDON):%d %H:%M}",
        )
        for s in layer.shifts
    ]


def test_a_google_calendar_file_with_rrule_exdate_recurrence_id_and_its_vtimezone() -> None:
    layer = read_ical(
        (HERE / "google.ics").read_bytes(), OFFICERS, start=OCTOBER, end=DECEMBER, timezone=TZ
    )
    got = shifts(layer)
    # weeknights Mon-Fri 17:00-08:00 from 19 Oct until 30 Oct, by ATTENDEE e-mail
    assert got[0] == ("ann", "19 17:00", "20 08:00")
    # RECURRENCE-ID: Tuesday's occurrence moved to 18:00 and given to bob
    assert got[1] == ("bob", "20 18:00", "21 08:00")
    # EXDATE: no Thursday 22nd
    assert ("ann", "22 17:00", "23 08:00") not in got
    # a weekend across the clock change, matched by the summary "On call: Cat Jones": 49 hours
    cat = next(s for s in layer.shifts if s.officer == "cat")
    assert cat.end - cat.start == timedelta(hours=49)
    # after the change the weeknights still start at 17:00 on the wall clock (OnCall #3261)
    assert ("ann", "26 17:00", "27 08:00") in got
    assert got[-1] == ("ann", "30 17:00", "31 08:00")
    assert len(got) == 10


def test_an_outlook_file_with_a_windows_time_zone_name() -> None:
    layer = read_ical(
        (HERE / "outlook.ics").read_bytes(), OFFICERS, start=OCTOBER, end=DECEMBER, timezone=TZ
    )
    # ORGANIZER e-mail; COUNT=3 less the EXDATE of the 31st; TZID "GMT Standard Time"
    assert shifts(layer) == [("dan", "24 08:00", "26 08:00"), ("dan", "07 08:00", "09 08:00")]
    assert layer.shifts[0].start == datetime(2026, 10, 24, 7, 0, tzinfo=UTC)  # BST
    assert layer.shifts[1].start == datetime(2026, 11, 7, 8, 0, tzinfo=UTC)  # GMT


def test_an_ical_round_trip_gives_the_same_timeline() -> None:
    rotation = Layer("nights", ("ann", "bob", "cat"), timedelta(days=1), datetime(2026, 10, 1, 17))
    data = RotaData(OFFICERS, (RoleSchedule("duty", ((rotation,),)),))
    start, end = local(2026, 10, 20), local(2026, 11, 3)
    exported = write_ical(data, "duty", start, end, timezone=TZ, organisation="org")
    assert b"BEGIN:VTIMEZONE" in exported and b"TZID:Europe/London" in exported
    assert b"ATTENDEE:mailto:ann@a.example" in exported
    back = read_ical(exported, OFFICERS, start=start, end=end, timezone=TZ)
    again = RotaData(OFFICERS, (RoleSchedule("duty", ((back,),)),))
    ids = lambda d: [  # noqa: E731
        (s.start, s.end, s.answer.officer.id if s.answer.officer else None)
        for s in d.timeline("duty", start, end, LONDON)
    ]
    assert ids(again) == ids(data)
    assert len(ids(data)) == 15  # 00:00-17:00 on the 20th, then 14 nightly turns
    # the shift across the autumn change lasts 25 hours both ways
    long = [
        s
        for s in again.timeline("duty", start, end, LONDON)
        if s.end - s.start == timedelta(hours=25)
    ]
    assert len(long) == 1 and long[0].start == local(2026, 10, 24, 17)


def test_a_csv_round_trip_and_its_documented_columns() -> None:
    data = RotaData(
        OFFICERS,
        (
            RoleSchedule(
                "duty",
                ((Layer("n", ("ann", "bob"), timedelta(days=7), datetime(2026, 10, 19, 17)),),),
            ),
        ),
    )
    start, end = local(2026, 10, 19, 17), local(2026, 11, 2, 17)
    text = write_csv(data, "duty", start, end, timezone=TZ)
    assert text.splitlines()[0] == "officer,start,end,name,email,because"
    assert text.splitlines()[1].startswith(
        "ann,2026-10-19T17:00+01:00,2026-10-26T17:00+00:00,Ann Lee"
    )
    layer = read_csv(text, OFFICERS, timezone=TZ)
    assert shifts(layer) == [("ann", "19 17:00", "26 17:00"), ("bob", "26 17:00", "02 17:00")]


def test_a_bad_csv_is_reported_by_line_and_nothing_is_imported() -> None:
    text = (
        "officer,start,end\n"
        "ann,2026-11-20T17:00,2026-11-21T08:00\n"
        "zed,2026-11-21T17:00,2026-11-22T08:00\n"
        "Bob Stone,2026-03-29T01:30,2026-03-29T08:00\n"
        "cat@a.example,2026-11-22T17:00,2026-11-22T08:00\n"
    )
    with pytest.raises(RulesetError) as err:
        read_csv(text, OFFICERS, timezone=TZ, path="shifts.csv")
    lines = [(p.line, p.message) for p in err.value.problems]
    assert [n for n, _ in lines] == [3, 4, 5]
    assert "no officer 'zed'" in lines[0][1]
    assert "does not exist in Europe/London" in lines[1][1]
    assert "'end' must be after 'start'" in lines[2][1]


BAD_ICS = """BEGIN:VCALENDAR
VERSION:2.0
BEGIN:VEVENT
UID:one
DTSTART;TZID=Europe/London:20261120T170000
DTEND;TZID=Europe/London:20261121T080000
SUMMARY:Ann Lee
END:VEVENT
BEGIN:VEVENT
UID:two
DTSTART;TZID=Europe/London:20261121T170000
DTEND;TZID=Europe/London:20261122T080000
SUMMARY:Somebody Else
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'x.sqlite'}", clock=ManualClock(local(2026, 11, 1)))
    yield s
    s.close()


def test_a_bad_calendar_names_its_lines_and_nothing_is_half_imported(store: Store) -> None:
    rs = RotaStore(store, "org", timezone=TZ, roles=["duty"])
    rs.replace(RotaData(OFFICERS), by="admin")
    with pytest.raises(RulesetError) as err:
        read_ical(BAD_ICS, OFFICERS, start=OCTOBER, end=DECEMBER, timezone=TZ, path="duty.ics")
    assert str(err.value.problems[0]).startswith("duty.ics:9:1: event 'Somebody Else'")
    with pytest.raises(RulesetError) as err:
        read_ical(
            "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nnonsense\n",
            OFFICERS,
            start=OCTOBER,
            end=DECEMBER,
            timezone=TZ,
            path="x.ics",
        )
    assert [p.line for p in err.value.problems] == [4, 4]
    assert rs.data().roles == () and len(rs.changes()) == 1


def test_an_imported_calendar_becomes_a_layer_over_the_rotation(store: Store) -> None:
    rs = RotaStore(store, "org", timezone=TZ, roles=["duty"])
    base = Layer("standing", ("bob",))
    rs.replace(RotaData(OFFICERS, (RoleSchedule("duty", ((base,),)),)), by="admin")
    layer = read_ical(
        (HERE / "outlook.ics").read_bytes(), OFFICERS, start=OCTOBER, end=DECEMBER, timezone=TZ
    )
    rs.import_layer("duty", layer, by="admin")
    rs.import_layer("duty", layer, by="admin")  # a second import replaces the first
    sched = rs.data().schedule("duty")
    assert sched is not None and [la.name for la in sched.stages[0]] == ["standing", "ical"]
    assert rs.who_is_on_call("duty", local(2026, 10, 25, 12)).officer == OFFICERS["dan"]
    assert rs.who_is_on_call("duty", local(2026, 10, 27, 12)).officer == OFFICERS["bob"]
    assert rs.changes()[-1].summary == "ical layer of duty stage 1: 2 shifts"
