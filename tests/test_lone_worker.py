"""Lone-worker sessions (5.2.3.6, issue 8 item 8): check in with a contact and a buddy, a
reminder before the visit's end, an amber alert to the worker and buddy after the grace, then
the red alert that starts the escalation; extend and check out by SMS reply or API; durable
across a restart (the timers are in the store). Every step audited.

A copy of org-a's lone-worker option with ``reminder: 10m`` and ``amber: 10m`` (visit 60m,
grace 5m; escalation team manager Tess 07700 900005, then duty director Dina 07700 900003)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import Engine, InvalidTransition
from oohcore.vocabulary import EventKind

FIXTURES = Path(__file__).parent / "fixtures" / "engine"
LONDON = ZoneInfo("Europe/London")
FRIDAY_EVENING = datetime(2026, 11, 20, 22, 0, tzinfo=LONDON)
LONE = "0100 000 0004"
WORKER, BUDDY, TESS, DINA = "+447700900777", "07700900888", "07700 900005", "07700 900003"
CHANNELS = ("sms", "email", "pager", "feed", "crm")


@pytest.fixture
def orgs(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "orgs")
    option = tmp_path / "orgs" / "org-a" / "options" / "lone-worker.yaml"
    text = option.read_text()
    text = text.replace("    grace: 5m\n", "    grace: 5m\n    reminder: 10m\n    amber: 10m\n")
    text = text.replace(
        '    - {field: address, ask: "Site address?", type: address, essential: true}\n',
        '    - {field: address, ask: "Site address?", type: address, essential: true}\n'
        '    - {field: buddy_phone, ask: "A buddy\'s number?", type: phone}\n',
    )
    assert "amber: 10m" in text and "buddy_phone" in text
    option.write_text(text)
    return tmp_path / "orgs"


def _open(
    orgs: Path, tmp_path: Path, clock: ManualClock, chans: dict[str, MemoryChannel]
) -> Engine:
    return Engine.open(orgs, f"sqlite:///{tmp_path / 'lw.sqlite'}", clock=clock, channels=chans)


@pytest.fixture
def engine(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> Iterator[Engine]:
    eng = _open(orgs, tmp_path, clock, channels)
    yield eng
    eng.close()


def _check_in(engine: Engine) -> str:
    desk = engine.organisation("org-a")
    call = engine.offer(LONE, caller_number=WORKER)
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, {"caller_name": "Lou", "address": "7 Mill Lane", "buddy_phone": BUDDY})
    assert desk.next_step(call.id).kind == "lone_worker"
    desk.complete(call.id)
    engine.tick()
    return call.id


def _texts(channels: dict[str, MemoryChannel]) -> list[tuple[str, str]]:
    return [(m.recipient, m.body.split(":")[0].split(" ")[0]) for m in channels["sms"].messages]


def _to(channels: dict[str, MemoryChannel], purpose: str) -> list[str]:
    return [m.recipient for m in channels["sms"].messages if m.purpose == purpose]


def _at(engine: Engine, clock: ManualClock, minutes: int) -> None:
    """Tick each minute up to ``minutes`` after check-in."""
    while clock.now() < FRIDAY_EVENING + timedelta(minutes=minutes):
        clock.advance(timedelta(minutes=1))
        engine.tick()


def _kinds(engine: Engine, call_id: str) -> list[str]:
    return [e.kind for e in engine.organisation("org-a").events(call_id)]


def test_reminder_then_amber_then_red_then_the_escalation(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id = _check_in(engine)
    _at(engine, clock, 49)
    assert _to(channels, "lone_worker.alert") == []
    _at(engine, clock, 50)  # 10 minutes before the visit's end
    assert _to(channels, "lone_worker.alert") == [WORKER]
    assert "Reply OK" in channels["sms"].messages[-1].body
    _at(engine, clock, 64)
    assert len(_to(channels, "lone_worker.alert")) == 1
    _at(engine, clock, 65)  # the end plus grace: amber to the worker and the buddy
    assert _to(channels, "lone_worker.alert")[1:] == [WORKER, BUDDY]
    assert channels["sms"].messages[-1].body.startswith("AMBER")
    _at(engine, clock, 74)
    assert len(_to(channels, "lone_worker.alert")) == 3
    _at(engine, clock, 75)  # red: the escalation starts with the team manager
    assert _to(channels, "lone_worker.alert")[3:] == [TESS]
    _at(engine, clock, 91)
    assert _to(channels, "lone_worker.alert")[4:] == [DINA]
    kinds = _kinds(engine, call_id)
    order = [
        EventKind.LONE_WORKER_CHECKED_IN,
        EventKind.LONE_WORKER_REMINDER,
        EventKind.LONE_WORKER_AMBER,
        EventKind.LONE_WORKER_ALERT,
        EventKind.REFERRAL_ESCALATED,
    ]
    assert [k for k in kinds if k in order] == order
    red = [e for e in engine.organisation("org-a").events(call_id) if e.kind == "lone_worker.alert"]
    assert red[0].payload["level"] == "red"


def test_ok_by_sms_checks_out_after_the_amber_alert_and_nothing_more_is_sent(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id = _check_in(engine)
    _at(engine, clock, 66)
    assert engine.receive("org-a", "sms", "+44 7700 900777", "ok") == "ok"
    engine.tick()
    assert engine.organisation("org-a").get(call_id).state == "closed"
    _at(engine, clock, 120)
    assert _to(channels, "lone_worker.alert") == [WORKER, WORKER, BUDDY]
    assert EventKind.LONE_WORKER_CHECKED_OUT in _kinds(engine, call_id)


def test_extend_by_sms_moves_the_reminder_and_expiry_on(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id = _check_in(engine)
    _at(engine, clock, 55)  # the reminder went at 50
    assert engine.receive("org-a", "sms", WORKER, "EXTEND 30") == "extend"
    _at(engine, clock, 94)  # the new end is 90: reminder at 80, amber at 95
    assert _to(channels, "lone_worker.alert") == [WORKER, WORKER]
    _at(engine, clock, 95)
    assert _to(channels, "lone_worker.alert")[2:] == [WORKER, BUDDY]
    extended = [
        e for e in engine.organisation("org-a").events(call_id) if e.kind == "lone_worker.extended"
    ]
    assert [e.payload["minutes"] for e in extended] == [30]


def test_extend_and_check_out_by_api(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id = _check_in(engine)
    desk = engine.organisation("org-a")
    desk.extend(call_id, minutes=60)
    _at(engine, clock, 110)  # the end is now 120: only the reminder (at 110)
    assert _to(channels, "lone_worker.alert") == [WORKER]
    desk.check_out(call_id, staff_id="Lou")
    with pytest.raises(InvalidTransition):
        desk.extend(call_id, minutes=10)
    _at(engine, clock, 200)
    assert _to(channels, "lone_worker.alert") == [WORKER]


def test_the_session_survives_a_restart_between_amber_and_red(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    engine = _open(orgs, tmp_path, clock, channels)
    call_id = _check_in(engine)
    _at(engine, clock, 66)
    engine.close()
    again = {name: MemoryChannel() for name in CHANNELS}
    with _open(orgs, tmp_path, clock, again) as engine:
        _at(engine, clock, 75)
        assert _to(again, "lone_worker.alert") == [TESS]
        assert EventKind.LONE_WORKER_ALERT in _kinds(engine, call_id)


def test_an_ok_from_a_number_with_no_session_is_recorded_not_answered(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    """A stranger's text costs nothing (engine/inbound.py); the session is not checked out,
    so the watch goes on: failing safe."""
    _check_in(engine)
    sent = len(channels["sms"].messages)
    assert engine.receive("org-a", "sms", "07700 123123", "OK") == "unmatched"
    engine.tick()
    assert [m.purpose for m in channels["sms"].messages[sent:]] == []


# -- the watch outlives the call (5.2.3.6): the phone call ends, the worker is still on site ------


def _watch(engine: Engine, call_id: str) -> str:
    return engine.organisation("org-a").referrals(call_id)[-1].state


def test_closing_the_call_leaves_the_watch_running_and_the_worker_checks_out_by_sms(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    """The documented flow, complete() then close(), on a lone-worker call: the call closes
    (the worker has their reference), the watch goes on, and the worker's OK checks out."""
    call_id = _check_in(engine)
    desk = engine.organisation("org-a")
    assert desk.close(call_id).state == "closed"
    assert _watch(engine, call_id) == "watching"
    _at(engine, clock, 50)  # the reminder still reaches the worker
    assert _to(channels, "lone_worker.alert") == [WORKER]
    assert engine.receive("org-a", "sms", WORKER, "OK") == "ok"
    engine.tick()
    assert channels["sms"].messages[-1].body.startswith("Thank you: you are checked out")
    assert _watch(engine, call_id) == "checked_out"
    assert desk.get(call_id).state == "closed"
    _at(engine, clock, 150)  # nothing more: no amber, no red to the managers
    assert _to(channels, "lone_worker.alert") == [WORKER]
    out = [e for e in desk.events(call_id) if e.kind == EventKind.LONE_WORKER_CHECKED_OUT]
    assert len(out) == 1 and out[0].payload["by_manager"] is False


def test_a_closed_call_is_checked_out_by_the_api_by_the_worker_or_a_manager(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    desk = engine.organisation("org-a")
    first = _check_in(engine)
    desk.close(first)
    clock.advance(timedelta(minutes=20))
    view = desk.check_out(first, staff_id="Lou")
    assert view.state == "closed" and _watch(engine, first) == "checked_out"
    with pytest.raises(InvalidTransition):  # the watch has ended: once only
        desk.check_out(first, staff_id="Lou")
    second = _check_in(engine)
    desk.close(second)
    desk.extend(second, minutes=30)  # extend works on a closed call's watch too
    desk.check_out(second, manager="Tess")
    assert _watch(engine, second) == "checked_out"
    _at(engine, clock, 200)
    assert _to(channels, "lone_worker.alert") == []


def test_a_closed_call_whose_worker_never_checks_out_still_alerts_the_managers(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id = _check_in(engine)
    engine.organisation("org-a").close(call_id)
    _at(engine, clock, 75)
    assert _to(channels, "lone_worker.alert") == [WORKER, WORKER, BUDDY, TESS]
    assert _watch(engine, call_id) == "alerting"


def test_ok_after_the_red_alert_checks_out_and_stops_the_escalation(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    """The worker is safe after the managers were alerted: their OK still checks them out
    (the watch ends at check-out), and the escalation goes no further."""
    call_id = _check_in(engine)
    engine.organisation("org-a").close(call_id)
    _at(engine, clock, 76)
    assert _to(channels, "lone_worker.alert")[-1] == TESS
    assert engine.receive("org-a", "sms", WORKER, "EXTEND 30") == "not_open"
    assert engine.receive("org-a", "sms", WORKER, "ok") == "ok"
    _at(engine, clock, 150)
    assert DINA not in _to(channels, "lone_worker.alert")
    assert _watch(engine, call_id) == "checked_out"


def test_a_manager_acknowledging_the_alert_does_not_end_the_watch_check_out_does(
    engine: Engine, clock: ManualClock
) -> None:
    call_id = _check_in(engine)
    desk = engine.organisation("org-a")
    _at(engine, clock, 76)
    desk.acknowledge(call_id, by="Tess")
    assert _watch(engine, call_id) == "acknowledged"
    assert desk.get(call_id).state == "lone_worker"
    assert engine.receive("org-a", "sms", WORKER, "OK") == "ok"
    assert _watch(engine, call_id) == "checked_out"
    assert desk.get(call_id).state == "closed"
    ref = desk.referrals(call_id)[-1]
    assert ref.acknowledged_by == "Tess"  # the acknowledgement stays on record
