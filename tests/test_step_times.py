"""A call's steps are recorded in time order (6.4b: the pass-on time is a duration, never
negative). An ``at=`` earlier than the call's last recorded step is refused with
``InvalidArgument`` naming ``at``, and nothing changes, on every step of the façade that takes
one. The engine's own clock going backwards (a clock stepped back, two hosts a moment apart)
records the step at the call's last recorded time instead, so that nothing is refused for it
and no duration comes out negative (docs/integration.md, "Time")."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from engine_support import CHANNELS, FIXTURES, FRIDAY_EVENING, HEATING, REPAIRS, refer_heating_call
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock, as_utc
from oohcore.engine import Engine, InvalidArgument, OrganisationDesk
from oohcore.vocabulary import EventKind

IVR, LONE = "0100 000 0001", "0100 000 0004"
WORKER = "07700900777"
KEY = "a-test-key-of-more-than-16-characters"
TABLES = ("calls", "events", "outbox", "timers", "referrals", "personal_data")


class SteppedClock:
    """A clock that may be set back (ManualClock refuses to): an NTP step, or a desk on a host
    whose clock is behind the runner's."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = as_utc(when)


@pytest.fixture
def orgs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "orgs")
    org = tmp_path / "orgs" / "org-a" / "organisation.yaml"
    org.write_text(org.read_text() + "ack_links: {key_env: OOH_TEST_LINK_KEY, valid_for: 1h}\n")
    monkeypatch.setenv("OOH_TEST_LINK_KEY", KEY)
    return tmp_path / "orgs"


def _engine(orgs: Path, tmp_path: Path, clock: Any) -> Engine:
    chans = {name: MemoryChannel() for name in CHANNELS}
    return Engine.open(orgs, f"sqlite:///{tmp_path / 'times.sqlite'}", clock=clock, channels=chans)


@pytest.fixture
def engine(orgs: Path, tmp_path: Path, clock: ManualClock) -> Iterator[Engine]:
    eng = _engine(orgs, tmp_path, clock)
    yield eng
    eng.close()


def _tables(engine: Engine) -> dict[str, Any]:
    with engine.store.read() as conn:
        return {t: conn.execute(text(f"SELECT * FROM {t} ORDER BY 1")).all() for t in TABLES}


def _times(engine: Engine, call_id: str) -> list[datetime]:
    return [e.at for e in engine.organisation("org-a").events(call_id)]


# -- backdated steps ----------------------------------------------------------------------------


def test_an_acknowledgement_timed_before_the_referral_existed_is_refused(
    engine: Engine, clock: ManualClock
) -> None:
    """It used to be accepted and count as passed on in 0 s (6.4b)."""
    call_id, _ = refer_heating_call(engine)
    desk = engine.organisation("org-a")
    clock.advance(timedelta(minutes=1))
    desk.close(call_id)
    before = _tables(engine)
    with pytest.raises(InvalidArgument, match="earlier than the call's last") as refused:
        desk.acknowledge(call_id, by="rita", at=FRIDAY_EVENING - timedelta(hours=1))
    assert refused.value.argument == "at"
    assert _tables(engine) == before
    # the same acknowledgement at the time of the last step, or later, is taken
    desk.acknowledge(call_id, by="rita", at=clock.now())
    clock.advance(timedelta(minutes=30))
    engine.tick()
    ref = desk.referrals(call_id)[-1]
    assert ref.state == "acknowledged" and ref.acknowledged_at == clock.now() - timedelta(
        minutes=30
    )
    assert ref.dispatched_at is not None and ref.call_ended_at is not None
    assert ref.dispatched_at >= ref.started_at
    met = [e for e in desk.events(call_id) if e.kind == EventKind.REFERRAL_DEADLINE_MET]
    assert len(met) == 1 and met[0].payload["pass_on_s"] >= 0


Step = Callable[[Engine, OrganisationDesk, dict[str, str], datetime], object]
STEPS: dict[str, tuple[str, Step]] = {
    # each step on a call where its state allows it, so that only its time refuses it
    "choose": ("ivr", lambda e, d, c, at: d.choose(c["ivr"], "1", at=at)),
    "answer": ("offered", lambda e, d, c, at: d.answer(c["offered"], handler="amy", at=at)),
    "abandon": ("ivr", lambda e, d, c, at: d.abandon(c["ivr"], at=at)),
    "capture": ("answered", lambda e, d, c, at: d.capture(c["answered"], HEATING, at=at)),
    "next_step": ("decided", lambda e, d, c, at: d.next_step(c["decided"], at=at)),
    "complete": ("decided", lambda e, d, c, at: d.complete(c["decided"], at=at)),
    "close": ("referred", lambda e, d, c, at: d.close(c["referred"], at=at)),
    "acknowledge": ("referred", lambda e, d, c, at: d.acknowledge(c["referred"], by="r", at=at)),
    "decline": ("referred", lambda e, d, c, at: d.decline(c["referred"], by="rita", at=at)),
    "phoned": (
        "referred",
        lambda e, d, c, at: d.phoned(c["referred"], outcome="answered", by="amy", at=at),
    ),
    "attendance": ("referred", lambda e, d, c, at: d.attendance(c["referred"], by="r", at=at)),
    "follow_link": (
        "referred",
        lambda e, d, c, at: e.follow_link(d.ack_link(c["referred"], officer="rita"), at=at),
    ),
    "check_out": ("lone", lambda e, d, c, at: d.check_out(c["lone"], staff_id="Lou", at=at)),
    "extend": ("lone", lambda e, d, c, at: d.extend(c["lone"], minutes=30, at=at)),
}


def _calls(engine: Engine, clock: ManualClock) -> dict[str, str]:
    """A call in each state the steps need, the last step of each at 22:10."""
    desk = engine.organisation("org-a")
    clock.set(FRIDAY_EVENING + timedelta(minutes=10))
    ivr = engine.offer(IVR).id
    offered = engine.offer(REPAIRS, caller_number="07700900126").id
    answered = engine.offer(REPAIRS, caller_number="07700900124").id
    desk.answer(answered, handler="amy")
    decided = engine.offer(REPAIRS, caller_number="07700900125").id
    desk.answer(decided, handler="amy")
    desk.capture(decided, HEATING)
    desk.next_step(decided)
    referred, _ = refer_heating_call(engine)
    lone = engine.offer(LONE, caller_number=WORKER).id
    desk.answer(lone, handler="amy")
    desk.capture(lone, {"caller_name": "Lou", "address": "7 Mill Lane"})
    desk.next_step(lone)
    desk.complete(lone)
    engine.tick()
    return {
        "ivr": ivr,
        "offered": offered,
        "answered": answered,
        "decided": decided,
        "referred": referred,
        "lone": lone,
    }


@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_step_refuses_an_at_before_the_calls_last_step(
    engine: Engine, clock: ManualClock, step: str
) -> None:
    calls = _calls(engine, clock)
    which, run = STEPS[step]
    last = _times(engine, calls[which])[-1]
    desk = engine.organisation("org-a")
    before = _tables(engine)
    with pytest.raises(InvalidArgument) as refused:
        run(engine, desk, calls, last - timedelta(seconds=1))
    assert refused.value.argument == "at"
    assert _tables(engine) == before
    run(engine, desk, calls, last)  # at the same instant it is taken


# -- the clock going backwards ------------------------------------------------------------------


def test_a_clock_going_backwards_never_records_a_step_before_the_last_one(
    orgs: Path, tmp_path: Path
) -> None:
    clock = SteppedClock(FRIDAY_EVENING)
    start = clock.now()
    with _engine(orgs, tmp_path, clock) as engine:
        desk = engine.organisation("org-a")
        call = engine.offer(REPAIRS, caller_number="07700900123")
        clock.set(start + timedelta(minutes=2))
        desk.answer(call.id, handler="amy")
        clock.set(start - timedelta(minutes=30))  # stepped back
        desk.capture(call.id, HEATING)
        desk.next_step(call.id)
        desk.complete(call.id)
        with pytest.raises(InvalidArgument):  # an explicit time still may not go back
            desk.close(call.id, at=start)
        desk.close(call.id)
        row = desk.get(call.id)
        times = _times(engine, call.id)
        assert times == sorted(times) and min(times) == start
        assert times[-1] == as_utc(start + timedelta(minutes=2))  # held at the last step
        assert row.received_at <= times[-1]
        # the store's due times are the store's: the alert leaves once the clock reaches the
        # time its step was recorded at, and the deadline judges the pass-on, never negative
        engine.tick()
        assert not [m for m in desk.messages(call.id) if m.sent_at is not None]
        clock.set(start + timedelta(minutes=3))
        engine.tick()
        clock.set(start + timedelta(minutes=40))
        engine.tick()
        ref = desk.referrals(call.id)[-1]
        assert ref.started_at >= start + timedelta(minutes=2)
        assert ref.call_ended_at is not None and ref.call_ended_at >= ref.started_at
        assert ref.dispatched_at is not None and ref.dispatched_at >= ref.started_at
        met = [e for e in desk.events(call.id) if e.kind == EventKind.REFERRAL_DEADLINE_MET]
        assert len(met) == 1 and met[0].payload["pass_on_s"] >= 0
        times = _times(engine, call.id)
        assert times == sorted(times)


def test_a_timer_firing_on_a_clock_behind_the_call_is_recorded_after_its_last_step(
    orgs: Path, tmp_path: Path
) -> None:
    """The escalation wait (15 minutes) is due at 22:15; the host recorded the contractor's
    attendance at 22:20 by its own clock; the runner's clock reads 22:16."""
    clock = SteppedClock(FRIDAY_EVENING)
    with _engine(orgs, tmp_path, clock) as engine:
        call_id, _ = refer_heating_call(engine)
        desk = engine.organisation("org-a")
        desk.attendance(call_id, by="rita", at=FRIDAY_EVENING + timedelta(minutes=20))
        clock.set(FRIDAY_EVENING + timedelta(minutes=16))
        engine.tick()
        events = desk.events(call_id)
        escalated = [e for e in events if e.kind == EventKind.REFERRAL_ESCALATED]
        assert escalated and escalated[-1].at == as_utc(FRIDAY_EVENING + timedelta(minutes=20))
        times = [e.at for e in events]
        assert times == sorted(times)


def test_a_lone_workers_ok_is_taken_when_the_clock_has_gone_back(
    orgs: Path, tmp_path: Path
) -> None:
    """receive never raises: the check-out is recorded at the call's last step's time."""
    clock = SteppedClock(FRIDAY_EVENING)
    with _engine(orgs, tmp_path, clock) as engine:
        desk = engine.organisation("org-a")
        call = engine.offer(LONE, caller_number=WORKER)
        desk.answer(call.id, handler="amy")
        desk.capture(call.id, {"caller_name": "Lou", "address": "7 Mill Lane"})
        desk.next_step(call.id)
        desk.complete(call.id, at=FRIDAY_EVENING + timedelta(minutes=5))
        clock.set(FRIDAY_EVENING - timedelta(hours=1))
        assert engine.receive("org-a", "sms", WORKER, "OK") == "ok"
        ref = desk.referrals(call.id)[-1]
        assert ref.state == "checked_out"
        assert ref.finished_at == as_utc(FRIDAY_EVENING + timedelta(minutes=5))


def test_a_reply_with_an_earlier_at_is_taken_at_the_calls_last_step(
    engine: Engine, clock: ManualClock
) -> None:
    """receive never raises: an officer's ACK the host timed before the call's last step is
    recorded at that step's time, never before the referral."""
    call_id, reference = refer_heating_call(engine)
    desk = engine.organisation("org-a")
    clock.advance(timedelta(minutes=1))
    desk.close(call_id)
    early = FRIDAY_EVENING - timedelta(hours=1)
    assert engine.receive("org-a", "sms", "07700 900001", f"ACK {reference}", at=early) == "ack"
    ref = desk.referrals(call_id)[-1]
    assert ref.acknowledged_at == clock.now()
    times = _times(engine, call_id)
    assert times == sorted(times)
