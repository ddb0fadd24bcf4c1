"""5.2.5: every referral text the core composes for an on-call officer gives the priority
fields first — name, address, telephone, details, reference — and any escalation wording
(a stage's ``say`` line, the last resort's or the provider's notice) after them, so that the
first SMS fragment carries the case even when the text is long.

org-a (tests/fixtures/engine): the repairs referral's SMS is "{caller_name}, {address}:
{repair}. Ref {reference}"; a copy gives Max's escalation stage a ~130-character ``say``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from engine_support import FIXTURES, HEATING, REPAIRS
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import Engine
from oohcore.rota import OnCallOfficer

SAY = (
    "ESCALATION: the repairs duty officer has not acknowledged this emergency referral within "
    "fifteen minutes; you are the next stage, please act now."
)


class EmptyRota:
    def on_call(self, organisation_id: str, role: str, at: datetime) -> OnCallOfficer | None:
        return None


@pytest.fixture
def orgs(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "orgs")
    option = tmp_path / "orgs" / "org-a" / "options" / "repairs.yaml"
    text = option.read_text()
    stage = "      - {rota_role: repairs-manager, channels: [sms], wait: 15m}\n"
    assert stage in text
    option.write_text(text.replace(stage, stage[:-2] + f', say: "{SAY}"}}\n', 1))
    lone = tmp_path / "orgs" / "org-a" / "options" / "lone-worker.yaml"
    text = lone.read_text()
    stage = "      - {rota_role: team-manager, channels: [sms]}\n"
    assert stage in text
    lone.write_text(text.replace(stage, stage[:-2] + f', say: "{SAY}"}}\n'))
    return tmp_path / "orgs"


def _open(
    orgs: Path,
    tmp_path: Path,
    clock: ManualClock,
    chans: dict[str, MemoryChannel],
    rota: object = None,
) -> Engine:
    url = f"sqlite:///{tmp_path / 'order.sqlite'}"
    return Engine.open(orgs, url, clock=clock, channels=chans, rota=rota)  # type: ignore[arg-type]


def _refer(engine: Engine) -> None:
    call = engine.offer(REPAIRS, caller_number="07700900123")
    desk = engine.organisation("org-a")
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, HEATING)
    desk.next_step(call.id)
    desk.complete(call.id)
    engine.tick()


def _alerts(channels: dict[str, MemoryChannel], purpose: str = "referral.alert") -> list[str]:
    return [m.body for m in channels["sms"].messages if m.purpose == purpose]


def _priority_first(body: str, name: str, address: str) -> None:
    assert body.startswith(name), body
    assert body.index(address) < 60, body
    assert "Ref " in body[:160], body  # the reference within the first fragment


@pytest.fixture
def engine(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> Iterator[Engine]:
    with _open(orgs, tmp_path, clock, channels) as eng:
        yield eng


def test_an_escalation_stage_text_starts_with_the_priority_fields(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    _refer(engine)
    clock.advance(timedelta(minutes=16))
    engine.tick()
    first, escalated = _alerts(channels)
    _priority_first(first, "Ann Lee", "12a High St.")
    _priority_first(escalated, "Ann Lee", "12a High St.")
    assert SAY in escalated  # the stage's line is kept, after the case


def test_the_last_resort_text_starts_with_the_priority_fields(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    with _open(orgs, tmp_path, clock, channels, EmptyRota()) as engine:
        _refer(engine)
        [body] = _alerts(channels)
    _priority_first(body, "Ann Lee", "12a High St.")
    assert "NOBODY ON THE ROTA" in body


def test_a_lone_worker_alert_starts_with_the_priority_fields(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    desk = engine.organisation("org-a")
    call = engine.offer("0100 000 0004", caller_number="07700900777")
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, {"caller_name": "Lou Field", "address": "7 Mill Lane"})
    desk.next_step(call.id)
    desk.complete(call.id)
    clock.advance(timedelta(minutes=66))  # the visit (60m) and grace (5m) are over: red
    engine.tick()
    [body] = [b for b in _alerts(channels, "lone_worker.alert") if SAY in b]
    _priority_first(body, "Lou Field", "7 Mill Lane")
