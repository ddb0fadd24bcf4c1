"""``oohcore impact`` (oohcore.procedure.impact): stored calls replayed under a new version.

Calls are run through the engine on the example borough (a SQLite store); the rulesets are then
changed — a contact of an action (the caller would be given another number) and, in a changed
catalogue, a widened rule — and the replay lists exactly the calls whose action or contacts
would have been different, with counts per rule, each checked against the new option's own
compiled decision. Calls before ``--since`` and options whose version is unchanged are left out.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from oohcore.cli import main
from oohcore.clock import ManualClock
from oohcore.engine import Engine
from oohcore.procedure.impact import impact_between
from oohcore.rulesets.loader import default_catalogue, load_organisation
from pg_support import postgres_database

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "example-borough"
REPAIRS_LINE = "020 7946 0100"
START = datetime(2026, 12, 15, 19, 0, tzinfo=UTC)  # a Tuesday evening


def _answers(i: int, **extra: Any) -> dict[str, Any]:
    names = ["Ada", "Brian", "Chloe", "Dev", "Erin", "Femi", "Gus", "Hana"]
    streets = ["Mill", "Oak", "Quay", "Rose", "Ship", "Tide", "Vale", "Wren"]
    return {
        "caller_name": f"{names[i]} {streets[i]}son",
        "address": f"{i + 1} High Street, Eastbrook",  # in the gazetteer: inside the area
        "contact_phone": f"07700 90010{i}",
        "tenure": "council_tenant",
        "vulnerable": False,
        "details": "reported",
        **extra,
    }


CALLS = [
    _answers(0, repair="no_heating", outside_temp=10),  # default: forward
    _answers(1, repair="no_heating", outside_temp=8),  # default: forward
    _answers(2, repair="gas_smell"),  # rule 1
    _answers(3, repair="other", tenure="housing_association"),  # rule 4: signpost-landlord
    _answers(4, repair="flooding", near_electrics=False),  # rule 6: refer
]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (as in test_store.py): skipped without a server, unless CI
    sets OOHCORE_REQUIRE_POSTGRES=1."""
    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The calls in a store: SQLite (answers read with json_extract) and PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'calls.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
    old = load_organisation(EXAMPLE)
    with Engine.open([old], url, clock=ManualClock(START)) as engine:
        desk = engine.organisation("example-borough")
        for i, answers in enumerate(CALLS):
            at = START + timedelta(hours=i)
            call = engine.offer(REPAIRS_LINE, caller_number=answers["contact_phone"], at=at)
            desk.answer(call.id, handler="amy", at=at)
            desk.capture(call.id, answers, at=at)
            desk.next_step(call.id, at=at)
    return url


def _changed_catalogue(tmp_path: Path) -> Path:
    target = tmp_path / "catalogue"
    shutil.copytree(default_catalogue(), target)
    path = target / "options" / "housing-repairs.yaml"
    text = path.read_text()
    old = '"electrical_fault", "insecure"]'
    assert old in text
    path.write_text(text.replace(old, '"electrical_fault", "insecure", "no_heating"]'))
    return target


def test_a_widened_rule_lists_the_calls_it_moves(store: str, tmp_path: Path) -> None:
    from oohcore.clock import SystemClock
    from oohcore.store import Store

    old = load_organisation(EXAMPLE)
    new = load_organisation(EXAMPLE, catalogue=_changed_catalogue(tmp_path))
    db = Store.open(store, clock=SystemClock(), migrate=False)
    try:
        with db.read() as conn:
            report = impact_between(conn, old, new, START - timedelta(days=1))
            later = impact_between(conn, old, new, START + timedelta(hours=1, minutes=30))
    finally:
        db.close()
    assert report.options == ["housing-repairs"]  # the only option whose version changed
    assert report.calls == len(CALLS)
    moved = [(d.old_action, d.new_action, d.old_rule, d.new_rule) for d in report.differences]
    assert moved == [("forward-daytime", "refer-emergency", None, 5)] * 2
    assert dict(report.per_rule) == {("housing-repairs", "the default", "rule 6"): 2}
    option = new.service_options["housing-repairs"]
    for d, answers in zip(report.differences, CALLS[:2], strict=True):
        values = {**option.settings, **answers, "variant": "standard", "duplicate": False}
        assert option.decide(values).action_id == d.new_action
    # --since leaves the earlier calls out
    assert later.calls == 3 and later.differences == []
    assert "2 call(s) would have been handled differently" in report.text()


def test_a_changed_contact_is_listed_from_the_command_line(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = tmp_path / "example-borough"
    shutil.copytree(EXAMPLE, new)
    path = new / "options" / "housing-repairs.yaml"
    text = path.read_text()
    assert "contact: example-homes-repairs" in text
    path.write_text(text.replace("contact: example-homes-repairs", "contact: daytime-repairs"))
    args = ["impact", str(new), "--against", str(EXAMPLE), "--store", store]
    assert main([*args, "--since", "2026-12-01"]) == 0
    out = capsys.readouterr().out
    assert "1 call(s) would have been handled differently" in out
    assert (
        "signpost-landlord -> signpost-landlord; contacts ['example-homes-repairs'] -> ['daytime-repairs']"
        in out
    )
    assert "housing-repairs: 1 call(s) from rule 4 now go by rule 4" in out
    assert main([*args, "--since", "2027-01-01"]) == 0
    assert "0 call(s) would have been handled differently" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*args, "--since", "last tuesday"])
    assert date(2026, 12, 1)  # the dates above are the organisation's local dates


def test_a_store_that_is_not_there_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = tmp_path / "example-borough"
    shutil.copytree(EXAMPLE, new)
    path = new / "options" / "housing-repairs.yaml"
    path.write_text(path.read_text().replace("example-homes-repairs", "daytime-repairs"))
    args = ["impact", str(new), "--against", str(EXAMPLE), "--since", "2026-12-01"]
    assert main([*args, "--store", f"sqlite:///{tmp_path / 'none.sqlite'}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("oohcore: no store at sqlite:///") and err.count("\n") == 1
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    assert main([*args, "--store", f"sqlite:///{empty}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("oohcore: cannot read the calls of") and "Traceback" not in err
