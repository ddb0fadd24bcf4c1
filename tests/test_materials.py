"""Call-handling materials handed out and their versions (oohcore.procedure.materials;
audit items 15-16, spec 5.3.1, 2.3.1).

A real SQLite store (migrated to head, so migration 0013 runs) and an injected clock.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from oohcore.cli import main
from oohcore.clock import ManualClock
from oohcore.procedure.materials import (
    MaterialKind,
    MaterialsError,
    handed_out,
    record_handed_out,
    versions_report,
)
from oohcore.rulesets.compiler import Organisation
from oohcore.rulesets.loader import load_organisation
from oohcore.store import Store

RULESETS = Path(__file__).parent / "rulesets"
CATALOGUE = RULESETS / "catalogue"
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
OLD = "sha256:" + "0" * 64


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'materials.sqlite'}", clock=ManualClock(T0))
    yield s
    s.close()


@pytest.fixture
def org() -> Organisation:
    return load_organisation(RULESETS / "borough", catalogue=CATALOGUE)


def hand_out(store: Store, org: Organisation, option: str, version: str, at: datetime) -> None:
    with store.transaction() as conn:
        record_handed_out(
            conn,
            org,
            option,
            kind=MaterialKind.flowchart,
            version=version,
            generated_on=at.date(),
            handed_to="night desk",
            by="T. Lead",
            at=at,
        )


def test_printed_material_older_than_the_live_version_is_warned_of(
    store: Store, org: Organisation
) -> None:
    live = org.service_options["helpline"].version
    hand_out(store, org, "helpline", OLD, T0)
    hand_out(store, org, "repairs", org.service_options["repairs"].version, T0)
    with store.read() as conn:
        records = handed_out(conn, org.id)
    assert [(r.option_id, r.version) for r in records] == [
        ("helpline", OLD),
        ("repairs", org.service_options["repairs"].version),
    ]
    report = versions_report(org, records)
    (warning,) = report.warnings()
    assert warning.startswith("helpline: the flowchart handed to night desk on 2026-11-01")
    assert "version 000000000000" in warning and live[7:19] in warning
    assert len(report.pending) == 2 and report.live == []


def test_handing_out_the_live_version_clears_the_warning(store: Store, org: Organisation) -> None:
    hand_out(store, org, "helpline", OLD, T0)
    hand_out(
        store, org, "helpline", org.service_options["helpline"].version, T0 + timedelta(days=1)
    )
    with store.read() as conn:
        assert versions_report(org, handed_out(conn, org.id)).warnings() == []


def test_records_are_kept_per_organisation(store: Store, org: Organisation) -> None:
    hand_out(store, org, "helpline", OLD, T0)
    with store.read() as conn:
        assert handed_out(conn, "someone-else") == []


@pytest.mark.parametrize(
    ("option", "kind", "version", "who", "message"),
    [
        ("nope", "manual", OLD, "x", "has no service option 'nope'"),
        ("helpline", "poster", OLD, "x", "kind 'poster' is not one of manual, flowchart, script"),
        ("helpline", "manual", "abc", "x", "is not a version hash"),
        ("helpline", "manual", OLD, " ", "'handed_to' is blank"),
    ],
)
def test_bad_records_are_refused_with_a_reason(
    store: Store, org: Organisation, option: str, kind: str, version: str, who: str, message: str
) -> None:
    with store.transaction() as conn, pytest.raises(MaterialsError, match=message):
        record_handed_out(
            conn,
            org,
            option,
            kind=kind,
            version=version,
            generated_on=date(2026, 11, 1),
            handed_to=who,
            by="T. Lead",
            at=T0,
        )


def test_cli_versions_lists_live_and_pending_and_warns_of_old_print(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "borough"
    shutil.copytree(RULESETS / "borough", folder)
    org = load_organisation(folder, catalogue=CATALOGUE)
    helpline = folder / "options/helpline.yaml"
    version = org.service_options["helpline"].version
    helpline.write_text(
        helpline.read_text() + f"sign_off: {{by: A. Officer, on: 2026-11-20, version: {version}}}\n"
    )
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    store = Store.open(url, clock=ManualClock(T0))
    try:
        hand_out(store, load_organisation(folder, catalogue=CATALOGUE), "helpline", OLD, T0)
    finally:
        store.close()
    assert main(["versions", str(folder), "--catalogue", str(CATALOGUE), "--store", url]) == 0
    captured = capsys.readouterr()
    assert f"  helpline: {version} (signed off)" in captured.out.splitlines()
    assert "live (signed off): 1; pending sign-off: 1" in captured.err
    assert "warning: helpline: the flowchart handed to night desk" in captured.err
