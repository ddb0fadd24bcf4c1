"""Coverage gaps (issue 8 Build 4) and the ``oohcore rota`` commands: gaps are found inside the
hours of service, none outside them; the CLI shows the timeline, records overrides, exchanges
files and exits 1 on a gap or a bad file."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from oohcore.cli import main
from oohcore.rota import Layer, Restriction, RoleSchedule, read_rota
from oohcore.rota.gaps import coverage_gaps, needed_roles
from oohcore.rulesets.loader import load_organisation

ORG_A = Path(__file__).parent / "fixtures" / "engine" / "org-a"
LONDON = ZoneInfo("Europe/London")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)  # type: ignore[misc]


def test_the_roles_a_live_option_needs_are_its_referrals_and_escalations() -> None:
    org = load_organisation(ORG_A)
    roles = needed_roles(org)
    assert set(roles) >= {"repairs-duty", "repairs-manager", "duty-director", "noise-officer"}
    assert "repairs" in roles["repairs-duty"]


def test_a_full_rota_has_no_gaps() -> None:
    org = load_organisation(ORG_A)
    data = read_rota(ORG_A / "rota.yaml", timezone=org.timezone, roles=org.rota_roles)
    assert coverage_gaps(org, data, local(2026, 11, 16), local(2026, 12, 16)) == []


def test_gaps_are_found_inside_the_hours_of_service_and_none_outside_them() -> None:
    """org-a serves weeknights 17:00-08:00 and all weekend. A noise officer rostered only on
    weeknights leaves the weekend uncovered -- and weekday daytime, when nobody is on, is outside
    the hours of service, so it is not a gap."""
    org = load_organisation(ORG_A)
    data = read_rota(ORG_A / "rota.yaml", timezone=org.timezone, roles=org.rota_roles)
    weeknights = Layer(
        "weeknights", ("nick",), restrictions=(Restriction((0, 1, 2, 3, 4), time(17), time(8)),)
    )
    data = data.with_role(RoleSchedule("noise-officer", ((weeknights,),)))
    gaps = coverage_gaps(org, data, local(2026, 11, 16), local(2026, 11, 30))
    assert [(g.role, g.stage, g.start, g.end) for g in gaps] == [
        ("noise-officer", 1, local(2026, 11, 21, 8), local(2026, 11, 23, 0)),
        ("noise-officer", 1, local(2026, 11, 28, 8), local(2026, 11, 30, 0)),
    ]
    assert all("noise" in g.options for g in gaps)
    # Monday noon: nobody is on, but the service is closed, so it is no gap
    noon = local(2026, 11, 23, 12)
    assert data.answer("noise-officer", noon, LONDON).officer is None
    assert not any(g.start <= noon < g.end for g in gaps)


def test_a_second_stage_with_nobody_is_a_gap_of_that_stage() -> None:
    org = load_organisation(ORG_A)
    data = read_rota(ORG_A / "rota.yaml", timezone=org.timezone, roles=org.rota_roles)
    first = Layer("all", ("max",))
    second = Layer("weekend", ("dina",), restrictions=(Restriction((5, 6), time(0), time(0)),))
    data = data.with_role(RoleSchedule("repairs-manager", ((first,), (second,))))
    gaps = coverage_gaps(org, data, local(2026, 11, 20, 12), local(2026, 11, 21, 12))
    assert [(g.role, g.stage, g.start, g.end) for g in gaps] == [
        ("repairs-manager", 2, local(2026, 11, 20, 17), local(2026, 11, 21, 0))
    ]


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def org(tmp_path: Path) -> Path:
    folder = tmp_path / "org-a"
    shutil.copytree(ORG_A, folder)
    return folder


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_shows_overrides_and_reports_changes(
    org: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    code, out, _ = run(
        capsys, "rota", "override", str(org), "repairs-duty", "max", "--from", "2027-01-08T17:00",
        "--to", "2027-01-11T08:00", "--by", "sam", "--reason", "swap",
        "--requested-at", "2027-01-05T09:00", "--store", store,
    )  # fmt: skip
    assert code == 0 and "override #2" in out  # #1 is the seed's Christmas cover
    code, out, _ = run(
        capsys, "rota", "show", str(org), "repairs-duty", "--from", "2027-01-08T12:00",
        "--to", "2027-01-12T00:00", "--store", store,
    )  # fmt: skip
    assert code == 0
    assert "2027-01-08 17:00 GMT -> 2027-01-11 08:00 GMT  (63 h)" in out
    assert "stage 1: Max Manager (max)  [override #2: swap]" in out
    code, out, _ = run(capsys, "rota", "changes", str(org), "--json", "--store", store)
    changes = json.loads(out)
    assert [c["kind"] for c in changes] == ["seed", "override"]
    assert changes[1]["by"] == "sam" and changes[1]["requested_at"] == "2027-01-05T09:00:00+00:00"


def test_the_cli_gaps_exit_1_on_a_gap_with_json(
    org: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    code, out, _ = run(capsys, "rota", "gaps", str(org), "--days", "14", "--store", store)
    assert code == 0 and "no coverage gaps in the next 14 days" in out
    text = (org / "rota.yaml").read_text().replace("  - {role: noise-officer, officer: nick}\n", "")
    (org / "rota.yaml").write_text(text)
    code, out, _ = run(capsys, "rota", "load", str(org), "--by", "sam", "--store", store)
    assert code == 0
    code, out, _ = run(capsys, "rota", "gaps", str(org), "--days", "14", "--json", "--store", store)
    report = json.loads(out)
    assert code == 1 and {g["role"] for g in report["gaps"]} == {"noise-officer"}


def test_the_cli_imports_and_exports_a_calendar_and_refuses_a_bad_file(
    org: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "officer,start,end\nrita,2027-01-08T17:00,2027-01-09T08:00\nzed,2027-01-09T17:00,2027-01-10T08:00\n"
    )
    code, _, err = run(
        capsys,
        "rota",
        "import",
        str(org),
        "repairs-duty",
        str(bad),
        "--by",
        "sam",
        "--store",
        store,
    )
    assert code == 1 and f"{bad}:3:1: no officer 'zed'" in err
    good = tmp_path / "good.csv"
    good.write_text("officer,start,end\nrob,2027-01-08T17:00,2027-01-09T08:00\n")
    code, out, _ = run(
        capsys,
        "rota",
        "import",
        str(org),
        "repairs-duty",
        str(good),
        "--by",
        "sam",
        "--store",
        store,
    )
    assert code == 0 and "1 shifts imported" in out
    code, out, _ = run(
        capsys, "rota", "export", str(org), "repairs-duty", "--from", "2027-01-08T12:00",
        "--to", "2027-01-09T12:00", "--format", "csv", "--store", store,
    )  # fmt: skip
    rows = out.splitlines()
    assert rows[2].startswith("rob,2027-01-08T17:00+00:00,2027-01-09T08:00+00:00,Rob Relief")
    code, out, _ = run(
        capsys, "rota", "export", str(org), "repairs-duty", "--from", "2027-01-08T12:00",
        "--to", "2027-01-09T12:00", "--store", store,
    )  # fmt: skip
    assert code == 0 and "BEGIN:VCALENDAR" in out and "SUMMARY:Rob Relief" in out


def test_a_time_in_the_spring_forward_gap_is_refused_with_the_reason(
    org: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    code, _, err = run(
        capsys, "rota", "override", str(org), "repairs-duty", "max", "--from", "2026-03-29T01:30",
        "--to", "2026-03-29T08:00", "--by", "sam", "--store", store,
    )  # fmt: skip
    assert code == 1 and "does not exist in Europe/London: the clocks go forward" in err
