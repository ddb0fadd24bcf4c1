"""Hostile rota calendars (tests/hostile/ical.py) through ``oohcore rota import``: each is
refused with exit 1 and its file's line, never a traceback, a hang (60 s) or more than 200 MB,
and nothing is imported; a good calendar beside them still imports. The limits are in
docs/rotas.md ("Limits of an import")."""

from __future__ import annotations

import re
import shutil
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/hostile (pytest imports by path)
from hostile.corpus import BOROUGH, CATALOGUE
from hostile.ical import (
    CASES,
    ROTA,
    SPARSE,
    RotaCase,
    _huge_file,
    calendar,
    cli_in_subprocess,
    event,
)
from hostile.run import Outcome
from oohcore.errors import RulesetError
from oohcore.rota import OnCallOfficer
from oohcore.rota.exchange import read_ical
from oohcore.rota.ical_checks import MAX_SHIFTS

LOCATED = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): ")


def _borough(tmp_path: Path) -> Path:
    folder = tmp_path / "borough"
    shutil.copytree(BOROUGH, folder)
    (folder / "rota.yaml").write_text(ROTA)
    return folder


def _import(tmp_path: Path, file: Path) -> tuple[Outcome, list[str]]:
    folder = _borough(tmp_path)
    store = tmp_path / "rota.sqlite"
    outcome = cli_in_subprocess(
        [
            "rota",
            "import",
            str(folder),
            "duty-officer",
            str(file),
            "--by",
            "tester",
            "--store",
            f"sqlite:///{store}",
            "--catalogue",
            str(CATALOGUE),
        ],
        cwd=tmp_path,
    )
    kinds: list[str] = []
    if store.is_file():
        with sqlite3.connect(store) as db:
            kinds = [k for (k,) in db.execute("SELECT kind FROM rota_changes ORDER BY id")]
    return outcome, kinds


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_hostile_calendar_is_refused_at_its_line(case: RotaCase, tmp_path: Path) -> None:
    file = tmp_path / f"{case.name}{case.suffix}"
    content = case.make()
    if case.name == SPARSE:
        _huge_file(file)
    else:
        file.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    text = content if isinstance(content, str) else content.decode("latin-1")
    outcome, kinds = _import(tmp_path, file)
    assert outcome.peak_mb is not None, outcome.err[-2000:]
    assert outcome.failures(case.expect) == [], (outcome.out + outcome.err)[-3000:]
    assert outcome.code == 1
    if case.line is not None:
        lines = {
            int(m["line"])
            for m in map(LOCATED.match, outcome.err.splitlines())
            if m and m["path"].endswith(file.name)
        }
        assert case.line(text) in lines, outcome.err
    assert "import" not in kinds  # nothing imported (seeding the store from rota.yaml aside)


def test_a_good_calendar_beside_them_still_imports(tmp_path: Path) -> None:
    file = tmp_path / "good.ics"
    file.write_text(calendar(event("RRULE:FREQ=WEEKLY;COUNT=4")))
    outcome, kinds = _import(tmp_path, file)
    assert outcome.code == 0, outcome.err
    assert "4 shifts imported into duty-officer stage 1" in outcome.out
    assert kinds[-1] == "import"


# -- the same limits through the API, on an injected window ------------------------------------

OFFICERS = {"ann": OnCallOfficer("ann", "Ann Lee", email="ann@borough.example")}
START = datetime(2026, 12, 1, tzinfo=UTC)


def _read(text: str, days: int = 366) -> list[tuple[int, str]]:
    with pytest.raises(RulesetError) as err:
        read_ical(
            text, OFFICERS, start=START, end=START + timedelta(days=days), timezone="Europe/London"
        )
    return [(p.line, p.message) for p in err.value.problems]


def test_expansion_stops_at_the_cap_and_names_the_event() -> None:
    text = calendar(
        event(start="20261202T170000", end="20261202T180000"),
        event("RRULE:FREQ=HOURLY", uid="e2", start="20261202T170000", end="20261202T180000"),
    )
    [(line, message)] = _read(text)
    assert line == text.splitlines().index("UID:e2")  # its BEGIN:VEVENT, the line before
    assert f"more than {MAX_SHIFTS:,} shifts" in message


def test_just_under_the_cap_is_imported() -> None:
    # in UTC: an hourly series in Europe/London meets the spring-forward gap's missing hour
    text = calendar(
        event("RRULE:FREQ=HOURLY;COUNT=4999", start="20261202T170000", end="20261202T180000")
    ).replace(";TZID=Europe/London:20261202T170000", ":20261202T170000Z")
    text = text.replace(";TZID=Europe/London:20261202T180000", ":20261202T180000Z")
    layer = read_ical(
        text, OFFICERS, start=START, end=START + timedelta(days=366), timezone="Europe/London"
    )
    assert len(layer.shifts) == 4999


@pytest.mark.parametrize(
    ("rule", "expect"),
    [
        ("FREQ=WEEKLY;BYDAY=MO,TU;BYHOUR=8,20;BYSETPOS=-5", "BYSETPOS=-5 can never be chosen"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=0", "BYSETPOS=0 can never be chosen"),
        ("FREQ=DAILY;BYSETPOS=1", "BYSETPOS with FREQ=DAILY is not read"),
        ("FREQ=WEEKLY;BYSETPOS=1", "BYSETPOS needs another BY part"),
        ("FREQ=YEARLY;BYYEARDAY=366;BYMONTH=1", "BYYEARDAY with FREQ=YEARLY is not read"),
        ("FREQ=MONTHLY;BYDAY=6MO", "no period has that many"),
        ("FREQ=WEEKLY;BYDAY=2MO", "only for FREQ=MONTHLY or YEARLY"),
        ("FREQ=FORTNIGHTLY", "FORTNIGHTLY"),
        ("FREQ=MONTHLY;BYMONTHDAY=1;BYDAY=5MO", "BYMONTHDAY with BYDAY"),
        (
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29,30,31;BYSETPOS=2",
            "BYSETPOS=2 can never be chosen",
        ),
    ],
)
def test_a_rule_that_can_never_fall_or_is_not_a_rota_is_refused_at_its_line(
    rule: str, expect: str
) -> None:
    text = calendar(event(f"RRULE:{rule}", start="20261202T170000"))
    found = _read(text)
    assert found and all(line == text.splitlines().index(f"RRULE:{rule}") + 1 for line, _ in found)
    assert expect in found[0][1], found


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=WEEKLY;BYDAY=MO,TU;BYHOUR=8,20;BYSETPOS=-4",
        "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=5",
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
        "FREQ=HOURLY;INTERVAL=12",
        "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
    ],
)
def test_rules_a_rota_is_written_with_still_expand(rule: str) -> None:
    text = calendar(event(f"RRULE:{rule}", start="20261202T170000", end="20261202T180000"))
    layer = read_ical(
        text, OFFICERS, start=START, end=START + timedelta(days=366), timezone="Europe/London"
    )
    assert layer.shifts and all(s.officer == "ann" for s in layer.shifts)


def test_a_summary_naming_an_officer_inside_another_word_or_two_officers_matches_nobody() -> None:
    officers = {**OFFICERS, "bob": OnCallOfficer("bob", "Bob Stone")}
    for summary, expected in (
        ("On call: Ann Lee", "ann"),
        ("Ann Lee (on call)", "ann"),
        ("ann", "ann"),
        ("Joanne Leeds", None),
        ("Ann Leeson", None),
        ("Ann Lee and Bob Stone", None),
    ):
        text = calendar(event(start="20261202T170000", summary=summary))
        window = {"start": START, "end": START + timedelta(days=30), "timezone": "Europe/London"}
        if expected is None:
            with pytest.raises(RulesetError, match="no officer matches"):
                read_ical(text, officers, **window)  # type: ignore[arg-type]
        else:
            layer = read_ical(text, officers, **window)  # type: ignore[arg-type]
            assert [s.officer for s in layer.shifts] == [expected], summary


def test_expansion_stops_past_its_budget_naming_the_next_event() -> None:
    """A guard on work, with an injected timer: each reading is 8 s later, so the third
    series starts past the 20 s budget and is named; nothing is imported."""
    readings = iter(range(0, 1000, 8))
    text = calendar(
        *(
            event("RRULE:FREQ=WEEKLY;COUNT=2", uid=f"e{i}", start="20261202T170000")
            for i in range(5)
        )
    )
    with pytest.raises(RulesetError) as err:
        read_ical(
            text,
            OFFICERS,
            start=START,
            end=START + timedelta(days=30),
            timezone="Europe/London",
            timer=lambda: float(next(readings)),
        )
    [problem] = err.value.problems
    assert problem.line == text.splitlines().index("UID:e2")  # its BEGIN:VEVENT
    assert "took more than 20 s" in problem.message
