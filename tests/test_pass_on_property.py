"""Pass-on times (6.4b) over generated evenings: the contract reports count them as the engine
judges them, from the end of the call to the referral's first alert delivered (or its
acknowledgement), never below zero, and "over the limit" never above "passed on".

Each evening comes from a seeded generator (the seed is in the test's id, so a failure replays
exactly): heating calls referred at random minutes, closed soon, late or never, alerts sent by a
runner that is sometimes late or down, channels that sometimes fail, officers who acknowledge
by text or by phone, before or after the deadline. The report is then compared with a plain
recount of the engine's verdict events (``referral.deadline_met`` / ``_missed``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from statistics import mean
from typing import Any

import pytest

from engine_support import FIXTURES, FRIDAY_EVENING, HEATING, REPAIRS
from oohcore.audit import read as audit_read
from oohcore.channels import DeliveryResult
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import Engine
from oohcore.reports import build_report, write_report
from oohcore.vocabulary import EventKind

SEEDS = range(6)
CALLS = 14


@pytest.fixture
def engine(
    tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> Iterator[Engine]:
    eng = Engine.open(
        FIXTURES, f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=clock, channels=channels
    )
    yield eng
    eng.close()


Action = tuple[float, int, Callable[[], Any]]  # (minutes into the evening, order, what happens)


def _evening(
    rng: random.Random, engine: Engine, channels: dict[str, MemoryChannel]
) -> list[Action]:
    """The evening's script: what happens at which minute (the runner ticks included)."""
    desk = engine.organisation("org-a")
    plan: list[Action] = []
    n = 0

    def at(minute: float, what: Callable[[], Any]) -> None:
        nonlocal n
        n += 1
        plan.append((minute, n, what))

    for _ in range(CALLS):
        start = rng.uniform(0, 180)
        holder: dict[str, str] = {}

        def refer(holder: dict[str, str] = holder) -> None:
            call = engine.offer(REPAIRS, caller_number="07700900123")
            desk.answer(call.id, handler="amy")
            desk.capture(call.id, HEATING)
            desk.next_step(call.id)
            desk.complete(call.id)
            holder["id"] = call.id

        at(start, refer)
        # closed at once, a little later, after the alert went, after the limit, or never
        close_after = rng.choice([0.0, 0.5, 3.0, 8.0, 14.0, 45.0, None])
        if close_after is not None:
            at(start + close_after, lambda h=holder: desk.close(h["id"]))
        ack = rng.choice(["none", "text", "phone", "late-phone", "late-text"])
        if ack != "none":
            wait = rng.uniform(0.2, 9.0) if not ack.startswith("late") else rng.uniform(12, 40)
            by_phone = ack.endswith("phone")

            def acknowledge(h: dict[str, str] = holder, by_phone: bool = by_phone) -> None:
                if desk.get(h["id"]).state in ("offered",):
                    return
                referrals = desk.referrals(h["id"])
                if not referrals or referrals[-1].state != "alerting":
                    return
                if by_phone:
                    desk.phoned(h["id"], outcome="answered", by="rita")
                else:
                    desk.acknowledge(h["id"], by="rita")

            at(start + (close_after or 0.0) + wait, acknowledge)
    # the runner: usually every minute, sometimes down for a while, channels sometimes failing
    minute = 0.0
    while minute < 300:
        minute += rng.choice([0.25, 1.0, 1.0, 2.0, 7.0, 13.0])
        at(minute, engine.tick)
        if rng.random() < 0.1:
            failing = rng.choice(["sms", "email"])
            at(minute + 0.01, lambda c=failing: _fail(channels[c]))
            at(minute + rng.uniform(5, 30), lambda c=failing: _heal(channels[c]))
    return plan


def _fail(channel: MemoryChannel) -> None:
    channel.fail = DeliveryResult.permanent("unreachable")


def _heal(channel: MemoryChannel) -> None:
    channel.fail = None


def _run(plan: list[Action], clock: ManualClock, engine: Engine) -> None:
    for minute, _, what in sorted(plan, key=lambda a: (a[0], a[1])):
        target = FRIDAY_EVENING + timedelta(minutes=minute)
        if target > clock.now():
            clock.advance(target - clock.now())
        what()
    clock.advance(timedelta(hours=3))  # every deadline judged
    engine.tick()


def _recount(engine: Engine) -> dict[str, Any]:
    """The pass-on figures straight from the engine's verdict events."""
    met: list[float] = []
    late: list[float] = []
    never = 0
    with engine.store.read() as conn:
        rows = audit_read.events_for_organisation(conn, "org-a")
    for e in rows:
        if e.kind == EventKind.REFERRAL_DEADLINE_MET:
            met.append(float(e.payload["pass_on_s"]))
        elif e.kind == EventKind.REFERRAL_DEADLINE_MISSED:
            if e.payload.get("pass_on_s") is None:
                never += 1
            else:
                late.append(float(e.payload["pass_on_s"]))
    passed = met + late
    return {
        "passed_on": len(passed),
        "late": len(late),
        "not_passed_on": never,
        "avg_seconds": mean(passed) if passed else None,
        "max_seconds": max(passed) if passed else None,
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_the_pass_on_report_equals_a_recount_of_the_verdicts(
    seed: int,
    engine: Engine,
    clock: ManualClock,
    channels: dict[str, MemoryChannel],
    tmp_path: Path,
) -> None:
    rng = random.Random(seed)
    _run(_evening(rng, engine, channels), clock, engine)
    expected = _recount(engine)
    assert expected["passed_on"] + expected["not_passed_on"] == CALLS  # every call judged once

    org = engine.organisations["org-a"]
    report = build_report(engine.store, org, "monthly", "2026-11")
    [row] = report.table("pass_on").rows
    assert row["passed_on"] == expected["passed_on"]
    assert row["late"] == expected["late"] <= row["passed_on"]
    assert row["not_passed_on"] == expected["not_passed_on"]
    for key in ("avg_seconds", "max_seconds"):
        if expected[key] is None:
            assert row[key] is None
        else:
            assert row[key] == pytest.approx(expected[key], abs=0.01)
            assert row[key] >= 0
    assert row["passes"] is (expected["late"] == 0 and expected["not_passed_on"] == 0)
    listed = report.table("late_pass_ons").rows
    assert len(listed) == expected["late"] + expected["not_passed_on"]
    assert all(r["seconds"] is None or r["seconds"] > r["limit_seconds"] for r in listed)

    # no negative duration in any format
    html = write_report(report, tmp_path / "r.html").read_text(encoding="utf-8")
    csv_text = write_report(report, tmp_path / "r.csv").read_text(encoding="utf-8")
    for text in (html, csv_text):
        assert not re.search(r"-\d+:\d\d:\d\d", text)


def test_a_referral_sent_before_the_call_ended_was_passed_on_in_no_time(
    engine: Engine, clock: ManualClock
) -> None:
    """The alert goes while the caller is still on the line; the call ends two hours later (a
    long call): the pass-on took 0 s, not minus two hours."""
    desk = engine.organisation("org-a")
    call = engine.offer(REPAIRS, caller_number="07700900123")
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, HEATING)
    desk.next_step(call.id)
    desk.complete(call.id)
    engine.tick()  # the alert is delivered
    clock.advance(timedelta(minutes=9))
    desk.close(call.id)
    clock.advance(timedelta(minutes=11))
    engine.tick()
    report = build_report(engine.store, engine.organisations["org-a"], "monthly", "2026-11")
    [row] = report.table("pass_on").rows
    assert (row["passed_on"], row["late"], row["not_passed_on"]) == (1, 0, 0)
    assert row["avg_seconds"] == row["max_seconds"] == 0


def test_an_officer_who_answers_the_phone_after_the_verdict_leaves_it_as_judged(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    """No alert could be delivered by the deadline: "not passed on" is the verdict every report
    counts, and a later phone answer (recorded as the acknowledgement) does not rewrite it."""
    for channel in channels.values():
        channel.fail = DeliveryResult.permanent("unreachable")
    desk = engine.organisation("org-a")
    call = engine.offer(REPAIRS, caller_number="07700900123")
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, HEATING)
    desk.next_step(call.id)
    desk.complete(call.id)
    desk.close(call.id)
    engine.tick()
    clock.advance(timedelta(minutes=11))
    engine.tick()
    desk.phoned(call.id, outcome="answered", by="rita")
    [referral] = desk.referrals(call.id)
    assert referral.acknowledged_at is not None and referral.dispatched_at is None
    report = build_report(engine.store, engine.organisations["org-a"], "monthly", "2026-11")
    [row] = report.table("pass_on").rows
    assert (row["passed_on"], row["late"], row["not_passed_on"]) == (0, 0, 1)
