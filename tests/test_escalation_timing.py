"""Stages are timed from when they were due, not from when a late runner got to them (5.3.2,
5.2.3.6): a runner that fires the amber alert late still raises the red alert at the scheduled
amber plus its wait, and a late escalation stage does not push the next one back.

org-a (tests/fixtures/engine): the repairs referral alerts Rita, then Max after 15 minutes,
then Dina after 15 more; a copy of the lone-worker option with ``amber: 10m`` (visit 60m,
grace 5m; red alerts team manager Tess 07700 900005). 20 Nov 2026 is a Friday (GMT)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from engine_support import FIXTURES, FRIDAY_EVENING, refer_heating_call
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import Engine
from oohcore.vocabulary import EventKind

LONE = "0100 000 0004"


@pytest.fixture
def engine(
    tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> Iterator[Engine]:
    shutil.copytree(FIXTURES, tmp_path / "orgs")
    option = tmp_path / "orgs" / "org-a" / "options" / "lone-worker.yaml"
    option.write_text(
        option.read_text().replace("    grace: 5m\n", "    grace: 5m\n    amber: 10m\n")
    )
    url = f"sqlite:///{tmp_path / 'timing.sqlite'}"
    with Engine.open(tmp_path / "orgs", url, clock=clock, channels=channels) as eng:
        yield eng


def _tick_at(engine: Engine, clock: ManualClock, minutes: int) -> None:
    """The runner's next tick, ``minutes`` after the evening's start (nothing in between)."""
    clock.set(FRIDAY_EVENING + timedelta(minutes=minutes))
    engine.tick()


def _alerted(channels: dict[str, MemoryChannel], purpose: str) -> list[str]:
    return [
        "0" + "".join(c for c in m.recipient if c.isdigit())[-10:]
        for m in channels["sms"].messages
        if m.purpose == purpose
    ]


def test_a_late_amber_still_raises_red_at_the_scheduled_amber_plus_its_wait(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    desk = engine.organisation("org-a")
    call = engine.offer(LONE, caller_number="07700900777")
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, {"caller_name": "Lou", "address": "7 Mill Lane"})
    desk.next_step(call.id)
    desk.complete(call.id)
    engine.tick()
    _tick_at(engine, clock, 72)  # amber was due at 65 (60m visit + 5m grace); the runner is late
    assert _alerted(channels, "lone_worker.alert") == ["07700900777"]
    amber = next(e for e in desk.events(call.id) if e.kind == EventKind.LONE_WORKER_AMBER)
    assert amber.payload["red_at"] == (FRIDAY_EVENING + timedelta(minutes=75)).isoformat()
    _tick_at(engine, clock, 75)  # red: the scheduled amber (65) plus 10m, not 72 + 10m
    assert _alerted(channels, "lone_worker.alert") == ["07700900777", "07700900005"]


def test_a_late_stage_does_not_push_the_next_stage_back(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    refer_heating_call(engine)
    _tick_at(engine, clock, 25)  # Max's stage was due at 15; the runner is ten minutes late
    assert _alerted(channels, "referral.alert") == ["07700900001", "07700900002"]
    _tick_at(engine, clock, 30)  # Dina's stage: 15 + 15, not 25 + 15
    assert _alerted(channels, "referral.alert") == ["07700900001", "07700900002", "07700900003"]


def test_a_runner_back_after_hours_alerts_each_overdue_stage_once_not_a_burst_of_re_alerts(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    """Stages overdue while the runner was down are alerted at once, each on its schedule;
    the final holder's re-alerts then wait from now (a backlog is not sent as a burst)."""
    refer_heating_call(engine)
    _tick_at(engine, clock, 180)  # three hours later: Max (due 15), Dina (30), her re-alert (45)
    assert _alerted(channels, "referral.alert") == [
        "07700900001",
        "07700900002",
        "07700900003",
        "07700900003",
    ]
    _tick_at(engine, clock, 194)
    assert len(_alerted(channels, "referral.alert")) == 4
    _tick_at(engine, clock, 195)  # the next re-alert: 15 minutes from the one just sent
    assert _alerted(channels, "referral.alert")[4:] == ["07700900003"]
