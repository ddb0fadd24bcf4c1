"""Contractor attendance (audit item 7, issue 8 item 7): attendance and completion recorded
against a referral by API; a caller who calls back after the attendance target (4 h for
repairs) with no attendance recorded reads ``attendance_overdue`` in the decision, and the
handler is offered the escalation. A copy of tests/fixtures/engine with ``attendance_target: 4h``
on org-a's refer-emergency and a first rule ``attendance_overdue → refer-emergency``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import Engine

FIXTURES = Path(__file__).parent / "fixtures" / "engine"
FRIDAY_EVENING = datetime(2026, 11, 20, 18, 0, tzinfo=ZoneInfo("Europe/London"))
LEAK = {
    "caller_name": "Ann Lee",
    "address": "12a High St.",
    "postcode": "se1 1aa",
    "repair": "leak",
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(FRIDAY_EVENING)


@pytest.fixture
def engine(tmp_path: Path, clock: ManualClock) -> Iterator[Engine]:
    shutil.copytree(FIXTURES, tmp_path / "orgs")
    option = tmp_path / "orgs" / "org-a" / "options" / "repairs.yaml"
    text = option.read_text()
    text = text.replace(
        "  rules:\n", "  rules:\n    - {when: 'attendance_overdue', then: refer-emergency}\n", 1
    )
    text = text.replace(
        "    acknowledge_within: 15m\n",
        "    acknowledge_within: 15m\n    attendance_target: 4h\n",
        1,
    )
    assert "attendance_target: 4h" in text and "attendance_overdue" in text
    option.write_text(text)
    channels = {n: MemoryChannel() for n in ("sms", "email", "pager", "feed", "crm")}
    url = f"sqlite:///{tmp_path / 'att.sqlite'}"
    with Engine.open(tmp_path / "orgs", url, clock=clock, channels=channels) as eng:
        yield eng


def _decide(engine: Engine) -> tuple[str, str]:
    call = engine.offer("0100 000 0002", caller_number="07700900123")
    desk = engine.organisation("org-a")
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, LEAK)
    return call.id, desk.next_step(call.id).action_id


def _first_referral(engine: Engine) -> str:
    call_id, action = _decide(engine)
    assert action == "refer-emergency"
    desk = engine.organisation("org-a")
    desk.complete(call_id)
    desk.close(call_id)
    return call_id


def test_a_call_back_after_the_attendance_target_reads_attendance_overdue(
    engine: Engine, clock: ManualClock
) -> None:
    _first_referral(engine)
    clock.advance(timedelta(hours=4, minutes=5))
    _, action = _decide(engine)
    assert action == "refer-emergency"  # the handler is offered the escalation again


def test_before_the_target_or_once_attended_the_duplicate_is_already_reported(
    engine: Engine, clock: ManualClock
) -> None:
    first = _first_referral(engine)
    clock.advance(timedelta(hours=2))
    second, action = _decide(engine)
    assert action == "already-reported"
    desk = engine.organisation("org-a")
    desk.complete(second)
    desk.close(second)
    clock.advance(timedelta(hours=1))
    desk.attendance(first, what="attended", by="contractor-api")
    clock.advance(timedelta(hours=2))  # 5 hours after the first call, but it was attended
    _, action = _decide(engine)
    assert action == "already-reported"
    attended = [e for e in desk.events(first) if e.kind == "referral.attended"]
    assert [(e.payload["by"], e.payload["late"]) for e in attended] == [("contractor-api", False)]
    desk.attendance(first, what="completed", by="contractor-api")
    assert "referral.completed" in [e.kind for e in desk.events(first)]


def test_the_catalogue_repairs_option_escalates_a_call_back_after_four_hours(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Audit item 7 in the shipped procedure: the catalogue's emergency repair has a 4-hour
    attendance target, so a call back after it (no attendance recorded) goes to the housing
    duty officer even when the caller does not say nobody came (not_attended: no)."""
    borough = Path(__file__).parents[1] / "examples" / "example-borough"
    channels = {n: MemoryChannel() for n in ("sms", "email", "pager", "phone", "feed", "crm")}
    url = f"sqlite:///{tmp_path / 'borough.sqlite'}"
    leak = {
        "caller_name": "Ann Lee",
        "address": "2 High Street",
        "contact_phone": "07700 900123",
        "tenure": "council_tenant",
        "repair": "water_leak",
        "near_electrics": False,
        "details": "water through the kitchen ceiling",
    }
    with Engine.open(borough, url, clock=clock, channels=channels) as engine:
        desk = engine.organisation("example-borough")

        def call(answers: dict[str, object]) -> tuple[str, str]:
            c = engine.offer("020 7946 0100", caller_number="07700900123")
            desk.answer(c.id, handler="amy")
            desk.capture(c.id, answers)
            return c.id, desk.next_step(c.id).action_id

        first, action = call(leak)
        assert action == "refer-emergency"
        desk.complete(first)
        desk.close(first)
        clock.advance(timedelta(hours=2))
        early, action = call({**leak, "not_attended": False})
        assert action == "resolve-duplicate"  # still inside the 4 hours
        desk.complete(early)
        desk.close(early)
        clock.advance(timedelta(hours=2, minutes=10))
        _, action = call({**leak, "not_attended": False})
        assert action == "escalate-not-attended"
