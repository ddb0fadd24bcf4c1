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


# -- the store given is unusable: one line, exit 1, never a traceback -------------------------


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("oohcore: ")
    return lines[0]


def test_an_unknown_organisation_is_not_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _store_with_calls(tmp_path)
    capsys.readouterr()
    for command in ("verify", "head"):
        assert main(["audit", command, "--store", url, "--organisation", "org-z"]) == 1
        line = _one_line_error(capsys)
        assert "organisation 'org-z' has no audit events" in line
        assert "it holds: org-a, org-b" in line


def test_an_empty_database_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "empty.sqlite").close()
    assert main(["audit", "verify", "--store", f"sqlite:///{tmp_path / 'empty.sqlite'}"]) == 1
    assert "holds no oohcore store (it has no audit tables)" in _one_line_error(capsys)


def test_a_store_without_events_is_not_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new store, or one whose events and chain heads were all deleted, looks the same."""
    from oohcore.store import Store

    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    Store.open(url, clock=ManualClock(datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")))).close()
    for command in ("verify", "head"):
        assert main(["audit", command, "--store", url]) == 1
        assert "holds no audit events" in _one_line_error(capsys)


def test_an_unreachable_postgresql_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg://ooh:s3cret-pw@127.0.0.1:{port}/oohcore"
    assert main(["audit", "verify", "--store", url]) == 1
    line = _one_line_error(capsys)
    assert f"cannot read postgresql+psycopg://ooh:***@127.0.0.1:{port}/oohcore" in line
    assert "s3cret-pw" not in line


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "is not a database URL"),
        ("postgresql://ooh:s3cret-pw@127.0.0.1:notaport/x", "is not a database URL"),
        ("nosuchdb://localhost/x", "is not a database this installation can reach"),
        ("postgresql+nodriver://ooh:s3cret-pw@127.0.0.1/x", "can reach"),
    ],
)
def test_a_malformed_store_url_is_one_line(
    capsys: pytest.CaptureFixture[str], url: str, expected: str
) -> None:
    assert main(["audit", "verify", "--store", url]) == 1
    line = _one_line_error(capsys)
    assert expected in line
    assert "s3cret-pw" not in line


# -- heads: print them, pin them ---------------------------------------------------------------


def _heads(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    capsys.readouterr()
    assert main(["audit", "head", "--store", url, *extra]) == 0
    return capsys.readouterr().out


def test_head_prints_a_pin_per_organisation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from oohcore.audit.read import chain_heads
    from oohcore.store import Store

    url = _store_with_calls(tmp_path)
    lines = _heads(url, capsys).splitlines()
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")))
    with Store.open(url, clock=clock) as s, s.read() as conn:
        heads = chain_heads(conn)
    assert [line.split()[0] for line in lines] == [str(h.pin) for h in heads]
    assert lines[0].startswith("org-a:") and lines[1].startswith("org-b:")
    assert lines[0].split()[1] == heads[0].at.isoformat()  # type: ignore[union-attr]
    doc = json.loads(_heads(url, capsys, "--json", "--organisation", "org-b"))
    (only,) = doc["heads"]
    assert only["organisation"] == "org-b"
    assert only["pin"] == f"org-b:{only['seq']}:{only['hash']}" == str(heads[1].pin)
    assert only["seq"] == heads[1].seq and only["at"] == heads[1].at.isoformat()  # type: ignore[union-attr]


def test_verify_fails_when_a_pinned_head_is_no_longer_on_the_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import select, update

    from oohcore.audit.chain import audit_heads, event_hash, events

    url = _store_with_calls(tmp_path)
    pins = [line.split()[0] for line in _heads(url, capsys).splitlines()]
    args = ["audit", "verify", "--store", url]
    for pin in pins:
        args += ["--expect-head", pin]
    assert main(args) == 0
    assert "2 pinned head(s): intact" in capsys.readouterr().out
    # Rebuild org-a's chain consistently (edit an event, recompute every hash and the head):
    # the chain alone verifies, the pin does not.
    with Engine.open(FIXTURES, url) as engine, engine.store.transaction() as conn:
        prev = "0" * 64
        rows = conn.execute(
            select(events).where(events.c.organisation_id == "org-a").order_by(events.c.seq)
        ).all()
        for row in rows:
            payload = row.payload.replace("amy", "eve")
            digest = event_hash(
                organisation_id=row.organisation_id,
                seq=row.seq,
                call_id=row.call_id,
                kind=row.kind,
                at=row.at,
                payload_json=payload,
                prev_hash=prev,
            )
            conn.execute(
                update(events)
                .where(events.c.id == row.id)
                .values(payload=payload, prev_hash=prev, hash=digest)
            )
            prev = digest
        conn.execute(
            update(audit_heads)
            .where(audit_heads.c.organisation_id == "org-a")
            .values(last_hash=prev)
        )
    assert main(["audit", "verify", "--store", url]) == 0
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"the pinned event {pins[0]} is no longer on the chain" in err
    assert pins[1] not in err
    assert main(["audit", "verify", "--store", url, "--expect-head", pins[1]]) == 0


def test_a_malformed_pin_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _store_with_calls(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["audit", "verify", "--store", url, "--expect-head", "org-a:3"])
    assert info.value.code == 2
    assert "is not ORG:SEQ:HASH" in capsys.readouterr().err


def test_a_pin_of_another_organisation_than_the_one_verified_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _store_with_calls(tmp_path)
    pin = _heads(url, capsys, "--organisation", "org-b").split()[0]
    assert (
        main(["audit", "verify", "--store", url, "--organisation", "org-a", "--expect-head", pin])
        == 1
    )
    assert "--expect-head names org-b but --organisation is 'org-a'" in _one_line_error(capsys)


# -- personal data: a purge verifies, an edit does not ----------------------------------------


def test_verify_after_a_purge_passes_and_after_an_edit_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from oohcore.audit.chain import append_event
    from oohcore.retention import purge_personal_data
    from oohcore.store import Store

    url = f"sqlite:///{tmp_path / 'ooh.sqlite'}"
    at = datetime(2026, 11, 20, 22, 0, tzinfo=ZoneInfo("Europe/London"))
    with Store.open(url, clock=ManualClock(at)) as store:
        with store.transaction() as conn:
            for call in ("C1", "C2"):
                append_event(
                    conn,
                    organisation_id="org-a",
                    call_id=call,
                    kind="call.captured",
                    payload={},
                    personal={"caller_name": "Aisha Khan", "address": "10 Acacia Road"},
                    at=at,
                )
            purge_personal_data(
                conn, organisation_id="org-a", call_id="C1", at=at, by="dpo", reason="erasure 17"
            )
        assert main(["audit", "verify", "--store", url]) == 0
        assert "2 personal record(s) (1 purged)" in capsys.readouterr().out
        with store.transaction() as conn:
            conn.execute(
                text(
                    "UPDATE personal_data SET data = replace(data, 'Acacia', 'Laurel') "
                    "WHERE call_id = 'C2'"
                )
            )
    assert main(["audit", "verify", "--store", url]) == 1
    err = capsys.readouterr().err
    assert "organisation 'org-a', event id 2 (seq 2): its personal-data record was altered" in err
    assert "restore this event's personal_data row from a backup" in err


@pytest.mark.parametrize(
    "payload",
    ["{not json", "", "[1, 2", "[1, 2]", "\x00"],
    ids=["broken", "empty", "cut-short", "a-list", "nul"],
)
def test_a_payload_that_is_no_longer_json_is_tampering_reported_with_its_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: str
) -> None:
    """An event whose payload no longer parses was edited in the database (Appendix 2): verify
    says so with the event's row, exit 1, and no traceback (the other chain still verifies)."""
    url = _store_with_calls(tmp_path)
    with Engine.open(FIXTURES, url) as engine, engine.store.transaction() as conn:
        row = conn.execute(
            text(
                "SELECT id, seq FROM events WHERE kind = 'call.answered' "
                "AND organisation_id = 'org-a'"
            )
        ).one()
        conn.execute(
            text("UPDATE events SET payload = :p WHERE id = :id"), {"p": payload, "id": row.id}
        )
    assert main(["audit", "verify", "--store", url]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"event id {row.id} (seq {row.seq})" in err, err
    assert "not valid JSON" in err and "tamper" in err, err
    assert main(["audit", "verify", "--store", url, "--organisation", "org-b"]) == 0
