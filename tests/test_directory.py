"""The living directory of contacts in the store (oohcore.directory; spec 2.3.3, 2.1.11).

Numbers change at run time without a new sign-off of the option, and every change is recorded
with who made it, when, and when it was requested, with an audit event in the same
transaction (DESIGN principles 10 and 11). Seeding from the files never overwrites what the
store holds. Tests run on a real SQLite file with an injected clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from oohcore import directory
from oohcore.audit.chain import canonical_json, events
from oohcore.audit.read import events_for_organisation
from oohcore.audit.verify import verify
from oohcore.cli import main
from oohcore.clock import ManualClock
from oohcore.rulesets.loader import load_organisation
from oohcore.rulesets.models import DirectoryEntry
from oohcore.store import Store
from oohcore.vocabulary import EventKind

ROOT = Path(__file__).parents[1]
BOROUGH = ROOT / "examples/example-borough"
T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night the clocks go forward
ORG = "example-borough"

FILES = {
    "samaritans": DirectoryEntry(name="Samaritans", number="116 123", opening_times="24 hours"),
    "daytime-repairs": DirectoryEntry(name="Daytime repairs", email="repairs@example.org"),
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'directory.sqlite'}", clock=clock)
    yield s
    s.close()


def seeded(store: Store, org: str = ORG) -> directory.SeedReport:
    with store.transaction() as conn:
        return directory.seed(conn, org, FILES, at=T0)


def count_events(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def test_seeding_adds_the_file_entries_once_with_an_audit_event_each(store: Store) -> None:
    report = seeded(store)
    assert report == directory.SeedReport(added=("daytime-repairs", "samaritans"))
    with store.read() as conn:
        samaritans = directory.get(conn, ORG, "samaritans")
        assert [c.id for c in directory.entries(conn, ORG)] == ["daytime-repairs", "samaritans"]
        changes = directory.history(conn, ORG)
    assert samaritans is not None
    assert (samaritans.number, samaritans.revision, samaritans.changed_by) == (
        "116 123",
        1,
        "directory.yaml",
    )
    assert [(c.contact_id, c.revision, c.fields) for c in changes] == [
        ("daytime-repairs", 1, directory.FIELDS),
        ("samaritans", 1, directory.FIELDS),
    ]
    assert count_events(store) == 2
    assert seeded(store) == directory.SeedReport()  # twice: nothing more
    assert count_events(store) == 2


def test_a_change_records_who_when_and_when_requested(store: Store, clock: ManualClock) -> None:
    seeded(store)
    asked = T0 - timedelta(minutes=40)
    clock.advance(timedelta(minutes=5))
    with store.transaction() as conn:
        after = directory.change(
            conn,
            ORG,
            "samaritans",
            by="Ann Officer",
            at=clock.now(),
            requested_at=asked,
            number="116 124",
        )
    assert (after.number, after.revision, after.changed_by) == ("116 124", 2, "Ann Officer")
    assert (after.changed_at, after.requested_at) == (clock.now(), asked)
    assert after.opening_times == "24 hours"  # fields not given are left as they are
    with store.read() as conn:
        (last,) = directory.history(conn, ORG, "samaritans")[1:]
        event = events_for_organisation(conn, ORG)[-1]
        assert verify(conn, ORG).ok
    assert (last.fields, last.changed_by, last.requested_at) == (("number",), "Ann Officer", asked)
    assert last.values["number"] == "116 124"
    # the audit event proves the change; the values are kept beside it, by digest (principle 11)
    assert event.id == last.event_id and event.kind == EventKind.DIRECTORY_CHANGED
    payload = event.payload
    assert payload["by"] == "Ann Officer" and payload["fields"] == ["number"]
    assert datetime.fromisoformat(payload["requested_at"].replace("Z", "+00:00")) == asked
    digest = hashlib.sha256(canonical_json(dict(last.values)).encode()).hexdigest()
    assert payload["values_sha256"] == digest
    assert "116 124" not in event.payload_json


def test_once_the_store_holds_an_entry_the_store_wins(store: Store) -> None:
    seeded(store)
    with store.transaction() as conn:
        directory.change(conn, ORG, "samaritans", by="Ann", at=T0, number="116 124")
    files = {**FILES, "nhs-111": DirectoryEntry(name="NHS 111", number="111")}
    del files["daytime-repairs"]
    with store.transaction() as conn:
        report = directory.seed(conn, ORG, files, at=T0)
        samaritans = directory.get(conn, ORG, "samaritans")
    assert report == directory.SeedReport(
        added=("nhs-111",), differs=("samaritans",), only_in_store=("daytime-repairs",)
    )
    assert samaritans is not None and samaritans.number == "116 124"


def test_clearing_a_field_and_a_change_that_changes_nothing(store: Store) -> None:
    seeded(store)
    with store.transaction() as conn:
        cleared = directory.change(conn, ORG, "samaritans", by="Ann", at=T0, opening_times=None)
        same = directory.change(conn, ORG, "samaritans", by="Bob", at=T0, number="116 123")
    assert cleared.opening_times is None and cleared.revision == 2
    assert same == cleared  # nothing recorded for Bob
    with store.read() as conn:
        assert [c.changed_by for c in directory.history(conn, ORG, "samaritans")] == [
            "directory.yaml",
            "Ann",
        ]


@pytest.mark.parametrize(
    ("contact", "kwargs", "phrase"),
    [
        ("samaritan", {"number": "116 124"}, "did you mean 'samaritans'?"),
        ("samaritans", {"number": "call me"}, "is not a telephone number"),
        ("samaritans", {"email": "nobody"}, "is not an email address"),
        ("samaritans", {"name": "  "}, "needs a name"),
        ("samaritans", {"number": "116 124", "by": " "}, "say who made the change"),
        (
            "samaritans",
            {"number": "116 124", "requested_at": T0 + timedelta(hours=1)},
            "a change is requested before it is made",
        ),
        ("samaritans", {"number": "116 124", "at": datetime(2026, 3, 29)}, "has no time zone"),
    ],
)
def test_a_refused_change_writes_nothing(
    store: Store, contact: str, kwargs: dict[str, object], phrase: str
) -> None:
    seeded(store)
    before = count_events(store)
    args: dict[str, object] = {"by": "Ann", "at": T0, **kwargs}
    with pytest.raises(directory.DirectoryError, match=phrase), store.transaction() as conn:
        directory.change(conn, ORG, contact, **args)  # type: ignore[arg-type]
    assert count_events(store) == before
    with store.read() as conn:
        samaritans = directory.get(conn, ORG, "samaritans")
        assert samaritans is not None and samaritans.revision == 1
        assert len(directory.history(conn, ORG)) == 2


def test_each_organisation_sees_only_its_own_directory(store: Store) -> None:
    seeded(store, "org-a")
    with store.transaction() as conn:
        directory.seed(conn, "org-b", {"samaritans": FILES["samaritans"]}, at=T0)
        directory.change(conn, "org-b", "samaritans", by="B", at=T0, number="116 999")
    with store.read() as conn:
        a = directory.get(conn, "org-a", "samaritans")
        assert a is not None and a.number == "116 123"
        assert directory.get(conn, "org-b", "daytime-repairs") is None
        assert [c.changed_by for c in directory.history(conn, "org-a")] == ["directory.yaml"] * 2
        with pytest.raises(directory.UnknownContact):
            directory.change(conn, "org-b", "daytime-repairs", by="B", at=T0, number="111")
        with pytest.raises(directory.DirectoryError, match="organisation id"):
            directory.entries(conn, "")


def test_the_example_boroughs_files_seed_the_store_and_fill_the_contact_placeholders(
    store: Store,
) -> None:
    org = load_organisation(BOROUGH)
    with store.transaction() as conn:
        report = directory.seed(conn, org.id, org.directory, at=T0)
        repairs = directory.get(conn, org.id, "daytime-repairs")
    assert set(report.added) == set(org.directory)
    assert "samaritans" in report.added  # the catalogue's national numbers come too
    option = org.service_options["housing-repairs"]
    (contact_id,) = option.contacts["forward-daytime"]
    assert contact_id == "daytime-repairs" and repairs is not None
    values = directory.placeholders(repairs)
    assert values["contact_email"] == "repairs@example-borough.example"
    say = org.service_options["environmental-health"].template("actions", "signpost-water", "say")
    assert say is not None
    water = directory.placeholders(org.directory["water-company"])
    assert "0800 316 9800" in say.render(water)


# ---------------------------------------------------------------------------------------------
# The command line: oohcore directory show / set
# ---------------------------------------------------------------------------------------------


def test_cli_directory_set_then_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    code = main(
        [
            "directory",
            "set",
            str(BOROUGH),
            "daytime-repairs",
            "--number",
            "020 7946 0119",
            "--by",
            "Ann Officer",
            "--requested-at",
            "2026-12-01T17:05+00:00",
            "--store",
            url,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "020 7946 0119" in out and "changed" in out
    assert main(["directory", "show", str(BOROUGH), "--store", url]) == 0
    shown = capsys.readouterr().out
    line = next(
        i for i, text in enumerate(shown.splitlines()) if text.startswith("daytime-repairs:")
    )
    assert "020 7946 0119" in shown.splitlines()[line]
    assert "revision 2, by Ann Officer" in shown.splitlines()[line + 1]
    store = Store.open(url, clock=ManualClock(T0))
    try:
        with store.read() as conn:
            (change,) = directory.history(conn, ORG, "daytime-repairs")[1:]
    finally:
        store.close()
    assert change.requested_at == datetime(2026, 12, 1, 17, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["daytime-repair", "--number", "020 7946 0119"], "did you mean 'daytime-repairs'?"),
        (["daytime-repairs", "--number", "020-x"], "is not a telephone number"),
        (["daytime-repairs", "--number", "1 1", "--requested-at", "yesterday"], "not a date"),
    ],
)
def test_cli_directory_set_mistakes_exit_1_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], phrase: str
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    code = main(["directory", "set", str(BOROUGH), *args, "--by", "Ann", "--store", url])
    err = capsys.readouterr().err
    assert code == 1 and phrase in err and "Traceback" not in err
