"""``oohcore audit verify`` (Appendix 2: all transactions are auditable; issue "The call engine")."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from oohcore.cli import main
from oohcore.clock import ManualClock
from oohcore.engine import Engine

FIXTURES = Path(__file__).parent / "fixtures" / "engine"


def _store_with_calls(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ooh.sqlite'}"
    clock = ManualClock(datetime(2026, 11, 20, 22, 0, tzinfo=ZoneInfo("Europe/London")))
    with Engine.open(FIXTURES, url, clock=clock) as engine:
        for number in ("0100 000 0002", "0200 000 0001"):
            call = engine.offer(number)
            desk = engine.organisation(call.organisation_id)
            desk.answer(call.id, handler="amy")
    return url


def test_an_intact_store_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = _store_with_calls(tmp_path)
    assert main(["audit", "verify", "--store", url]) == 0
    assert "intact" in capsys.readouterr().out
    assert main(["audit", "verify", "--store", url, "--organisation", "org-b"]) == 0


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE events SET payload = replace(payload, 'amy', 'eve') WHERE kind = 'call.answered' AND organisation_id = 'org-a'",
        "DELETE FROM events WHERE id = (SELECT min(id) FROM events WHERE organisation_id = 'org-a')",
    ],
    ids=["edited", "deleted"],
)
def test_an_edited_or_deleted_event_is_detected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tamper: str
) -> None:
    url = _store_with_calls(tmp_path)
    with Engine.open(FIXTURES, url) as engine, engine.store.transaction() as conn:
        conn.execute(text(tamper))
    assert main(["audit", "verify", "--store", url]) == 1
    err = capsys.readouterr().err
    assert "org-a" in err
    assert main(["audit", "verify", "--store", url, "--organisation", "org-b"]) == 0


def test_a_missing_store_is_an_error_not_an_empty_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"sqlite:///{tmp_path / 'nothing-here.sqlite'}"
    assert main(["audit", "verify", "--store", missing]) == 1
    assert "no store" in capsys.readouterr().err
    assert not (tmp_path / "nothing-here.sqlite").exists()


def test_the_package_exports_its_small_public_surface() -> None:
    import oohcore
    from oohcore.engine import Engine as EngineFromModule
    from oohcore.errors import RulesetError

    assert oohcore.Engine is EngineFromModule
    assert oohcore.RulesetError is RulesetError
    assert set(oohcore.__all__) >= {"Engine", "load_organisation", "validate", "RulesetError"}
    with pytest.raises(AttributeError):
        _ = oohcore.not_a_thing  # type: ignore[attr-defined]


def test_validate_reports_paths_relative_to_where_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    org = tmp_path / "borough"
    shutil.copytree(FIXTURES / "org-b", org)
    option = org / "options" / "repairs.yaml"
    option.write_text(option.read_text().replace("rota_role: duty\n", "rota_role: dutty\n", 1))
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "borough"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("borough/options/repairs.yaml:")
    assert "unknown rota role 'dutty'" in out
