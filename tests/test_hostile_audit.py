"""A store whose audit event payload is no longer JSON (the second hostile round's file items):
``oohcore audit verify`` reports tampering with the event's row, exit 1, in a measured
subprocess: no traceback, no hang (60 s), at most 200 MB."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parent))  # tests/hostile (pytest imports by path)
from hostile.commands import cli_in_subprocess
from hostile.run import MAX_MEMORY_MB
from oohcore.clock import ManualClock
from oohcore.engine import Engine

FIXTURES = Path(__file__).parent / "fixtures" / "engine"


@pytest.mark.parametrize(
    "payload",
    ["{not json", "", "[1, 2]", "x" * 3_000_000],
    ids=["broken", "empty", "a-list", "3-mb-of-text"],
)
def test_audit_verify_on_a_payload_that_is_not_json(tmp_path: Path, payload: str) -> None:
    url = f"sqlite:///{tmp_path / 'ooh.sqlite'}"
    clock = ManualClock(datetime(2026, 11, 20, 22, 0, tzinfo=ZoneInfo("Europe/London")))
    with Engine.open(FIXTURES, url, clock=clock) as engine:
        call = engine.offer("0100 000 0002")
        engine.organisation(call.organisation_id).answer(call.id, handler="amy")
        with engine.store.transaction() as conn:
            row = conn.execute(
                text("SELECT id, seq FROM events WHERE kind = 'call.answered'")
            ).one()
            conn.execute(
                text("UPDATE events SET payload = :p WHERE id = :id"), {"p": payload, "id": row.id}
            )
    outcome = cli_in_subprocess(["audit", "verify", "--store", url], cwd=tmp_path)
    text_out = outcome.out + outcome.err
    assert outcome.code == 1, text_out[-2000:]
    assert "Traceback" not in text_out
    assert outcome.peak_mb is not None and outcome.peak_mb <= MAX_MEMORY_MB
    assert (
        f"event id {row.id} (seq {row.seq}): the payload of this call.answered event is not "
        "valid JSON" in outcome.err
    ), outcome.err[-2000:]
    assert "tampered with" in outcome.err
    assert max(len(line) for line in text_out.splitlines()) < 2_000  # the payload not printed
