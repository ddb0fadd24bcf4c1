"""Referrals as records of their own, with frozen escalations, and the spec defects found in
review (issue: the engine as decide-then-commit). Fixture organisations: tests/fixtures/engine.
Times are Europe/London; 20 Nov 2026 is a Friday (GMT)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from engine_support import CHANNELS, FIXTURES, HEATING
from oohcore.calls import calls
from oohcore.channels import DeliveryResult, OutboundMessage
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.durable import timers
from oohcore.engine import CallNotFound, Engine, InvalidTransition, WrongStaffMember
from oohcore.vocabulary import EventKind, TimerKind

REPAIRS, IVR, LONE, ORG_B = "0100 000 0002", "0100 000 0001", "0100 000 0004", "0200 000 0001"


@pytest.fixture
def orgs(tmp_path: Path) -> Path:
    """A copy of the fixture organisations that a test may edit."""
    shutil.copytree(FIXTURES, tmp_path / "orgs")
    return tmp_path / "orgs"


def _open(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> Engine:
    return Engine.open(orgs, f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=clock, channels=channels)


@pytest.fixture
def engine(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> Iterator[Engine]:
    eng = _open(orgs, tmp_path, clock, channels)
    yield eng
    eng.close()


def _call(engine: Engine, answers: dict[str, Any], number: str = REPAIRS) -> str:
    call = engine.offer(number, caller_number="07700900123")
    desk = engine.organisation(call.organisation_id)
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, answers)
    return call.id


def _sent_to(channels: dict[str, MemoryChannel]) -> list[tuple[str, str]]:
    """(channel, recipient) of every officer alert delivered, in order of sending per channel."""
    return [
        (name, m.recipient)
        for name, ch in channels.items()
        for m in ch.messages
        if m.purpose == "referral.alert"
    ]


def _kinds(engine: Engine, call_id: str) -> list[str]:
    return [e.kind for e in engine.organisation("org-a").events(call_id)]


# -- frozen referrals (DESIGN principle 9) ---------------------------------------------------------


def test_a_referral_in_flight_keeps_its_escalation_across_a_ruleset_change_and_restart(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    """Refer a call, rename the refer action and change its escalation, restart: the
    escalation carries on stage by stage exactly as snapshotted when the referral started."""
    engine = _open(orgs, tmp_path, clock, channels)
    call_id = _call(engine, HEATING)
    desk = engine.organisation("org-a")
    desk.next_step(call_id)
    desk.complete(call_id)
    engine.tick()
    assert sorted(_sent_to(channels)) == [("email", "rita@a.example"), ("sms", "07700 900001")]
    engine.close()

    option = orgs / "org-a" / "options" / "repairs.yaml"
    changed = option.read_text().replace("refer-emergency", "refer-urgent")
    changed = changed.replace(
        "- {rota_role: repairs-manager, channels: [sms], wait: 15m}\n      - {rota_role: duty",
        "- {rota_role: repairs-manager, channels: [sms], wait: 2h}\n      - {rota_role: duty",
    )
    assert changed != option.read_text()
    option.write_text(changed)

    assert all(ch.closed for ch in channels.values())  # closing the engine closed them
    channels.update({name: MemoryChannel() for name in CHANNELS})
    engine = _open(orgs, tmp_path, clock, channels)
    desk = engine.organisation("org-a")
    assert "refer-emergency" not in engine.organisations["org-a"].service_options["repairs"].actions
    clock.advance(timedelta(minutes=15))  # stage 0's wait (15m) ends: stage 1, the manager
    engine.tick()
    assert _sent_to(channels) == [("sms", "07700 900002")]
    clock.advance(timedelta(minutes=15))  # the snapshot's 15m, not the edited 2h
    engine.tick()
    assert sorted(_sent_to(channels)[1:]) == [("email", "dina@a.example"), ("sms", "07700 900003")]
    [referral] = desk.referrals(call_id)
    assert (referral.action_id, referral.stage, referral.alerts) == ("refer-emergency", 2, 3)
    assert [s[0] for s in referral.stages] == ["repairs-duty", "repairs-manager", "duty-director"]
    assert _kinds(engine, call_id).count(EventKind.REFERRAL_ESCALATED) == 2
    desk.acknowledge(call_id, by="dina")
    assert desk.referrals(call_id)[0].state == "acknowledged"
    engine.close()


def test_a_stale_timer_is_recorded_and_has_no_effect(
    engine: Engine, channels: dict[str, MemoryChannel], clock: ManualClock
) -> None:
    call_id = _call(engine, HEATING)
    desk = engine.organisation("org-a")
    desk.next_step(call_id)
    desk.complete(call_id)
    engine.tick()
    [referral] = desk.referrals(call_id)
    with engine.store.transaction() as conn:  # a firing left over from another run
        timers.set_timer(
            conn,
            organisation_id="org-a",
            call_id=call_id,
            kind=TimerKind.ESCALATION_WAIT,
            due_at=clock.now(),
            key="left-over",
            payload={"referral": referral.id, "run": "an-earlier-run", "stage": 0, "alert": 1},
        )
    before = len(_sent_to(channels))
    report = engine.tick()
    assert report.fired and not report.errors
    stale = [e for e in desk.events(call_id) if e.kind == EventKind.TIMER_STALE]
    assert len(stale) == 1 and "an-earlier-run" in stale[0].payload["why"]
    assert len(_sent_to(channels)) == before
    assert desk.referrals(call_id)[0] == referral


def test_a_call_in_progress_finishes_on_the_option_version_it_began_with(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    engine = _open(orgs, tmp_path, clock, channels)
    call_id = _call(engine, HEATING)
    began = engine.organisation("org-a").get(call_id).option_version
    engine.close()
    option = orgs / "org-a" / "options" / "repairs.yaml"
    option.write_text(
        option.read_text().replace(
            'then: refer-emergency}\n    - {when: \'repair == "leak" and not',
            'then: bins-info}\n    - {when: \'repair == "leak" and not',
            1,
        )
    )
    engine = _open(orgs, tmp_path, clock, channels)
    desk = engine.organisation("org-a")
    assert engine.organisations["org-a"].service_options["repairs"].version != began
    step = desk.next_step(call_id)
    assert (step.action_id, step.call.option_version) == ("refer-emergency", began)
    assert desk.complete(call_id).state == "referred"
    fresh = _call(engine, HEATING | {"caller_name": "Bo Day", "address": "1 Low Rd"})
    assert desk.next_step(fresh).action_id == "bins-info"  # new calls run the new version
    engine.close()


# -- spec defects -----------------------------------------------------------------------------


def test_a_failed_transfer_carries_out_its_fallback(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    """5.2.3.2: a transfer declares its fallback; when the host reports the transfer failed,
    the fallback (here a referral to the duty officer) is carried out at once."""
    call_id = _call(engine, {"caller_name": "Cy", "address": "3 Gas Row", "repair": "gas"})
    desk = engine.organisation("org-a")
    step = desk.next_step(call_id)
    assert (step.kind, step.fallback) == ("transfer", "refer-emergency")
    assert desk.complete(call_id).state == "transferred"
    view = desk.transfer_failed(call_id, reason="the line was engaged")
    assert (view.state, view.action_id) == ("referred", "refer-emergency")
    engine.tick()
    assert ("sms", "07700 900001") in _sent_to(channels)
    kinds = _kinds(engine, call_id)
    assert kinds.index(EventKind.TRANSFER_FAILED) < kinds.index(EventKind.ACTION_REFER)
    with pytest.raises(InvalidTransition):
        desk.transfer_failed(call_id)  # it is a referral now


def test_a_phone_referral_no_answer_moves_to_the_next_stage_at_once(
    engine: Engine, channels: dict[str, MemoryChannel], clock: ManualClock
) -> None:
    """5.2.3.3 / 6.4b: a referral by phone is a call the handler makes; the handler records
    the outcome. No answer (or voicemail) alerts the next stage at once."""
    call_id = _call(engine, {"caller_name": "Di", "address": "4 Wet Lane", "repair": "flood"})
    desk = engine.organisation("org-a")
    step = desk.next_step(call_id)
    assert step.phone and step.contact is not None and step.contact.number == "07700 900001"
    desk.complete(call_id)
    engine.tick()
    assert _sent_to(channels) == []  # nothing for a channel to deliver: the handler phones
    due = [e for e in desk.events(call_id) if e.kind == EventKind.REFERRAL_PHONE_DUE]
    assert due[0].payload["number"] == "07700 900001"
    clock.advance(timedelta(minutes=2))
    desk.phoned(call_id, outcome="no_answer", by="amy")
    engine.tick()
    assert _sent_to(channels) == [("sms", "07700 900002")]  # the manager, two minutes in
    [referral] = desk.referrals(call_id)
    assert referral.stage == 1 and referral.state == "alerting"


def test_a_phone_referral_answered_is_acknowledged_and_meets_the_deadline(
    engine: Engine, channels: dict[str, MemoryChannel], clock: ManualClock
) -> None:
    call_id = _call(engine, {"caller_name": "Di", "address": "4 Wet Lane", "repair": "flood"})
    desk = engine.organisation("org-a")
    desk.next_step(call_id)
    desk.complete(call_id)
    desk.close(call_id)
    clock.advance(timedelta(minutes=3))
    desk.phoned(call_id, outcome="answered", by="amy")
    clock.advance(timedelta(hours=1))
    engine.tick()
    [referral] = desk.referrals(call_id)
    assert (referral.state, referral.acknowledged_by) == ("acknowledged", "rita")
    assert _sent_to(channels) == []  # no escalation after the officer answered
    met = [e for e in desk.events(call_id) if e.kind == EventKind.REFERRAL_DEADLINE_MET]
    assert met[0].payload["pass_on_s"] == 180.0
    with pytest.raises(InvalidTransition):
        desk.phoned(call_id, outcome="answered", by="amy")


def test_the_pass_on_deadline_runs_from_the_end_of_the_call(
    engine: Engine, clock: ManualClock
) -> None:
    """6.4b: 10 minutes "from the conclusion of the call", not from when the handler pressed
    complete: a call completed, kept open 8 minutes, dispatched 4 minutes after it ended, met
    its limit."""
    call_id = _call(engine, HEATING)
    desk = engine.organisation("org-a")
    desk.next_step(call_id)
    start = clock.now()
    desk.complete(call_id)
    clock.advance(timedelta(minutes=8))
    desk.close(call_id)
    clock.advance(timedelta(minutes=4))
    engine.tick()  # the runner was down until now: the alert goes 12 minutes after complete
    clock.advance(timedelta(minutes=10))
    engine.tick()
    [referral] = desk.referrals(call_id)
    assert referral.call_ended_at == start + timedelta(minutes=8)
    assert referral.deadline_at == start + timedelta(minutes=18)
    kinds = _kinds(engine, call_id)
    assert EventKind.REFERRAL_DEADLINE_MET in kinds
    assert EventKind.REFERRAL_DEADLINE_MISSED not in kinds


def test_a_missed_deadline_records_its_reason(engine: Engine, clock: ManualClock) -> None:
    call_id = _call(engine, HEATING)
    desk = engine.organisation("org-a")
    desk.next_step(call_id)
    desk.complete(call_id)
    desk.close(call_id)
    with engine.store.transaction() as conn:  # the alerts never went (runner down)
        timers.cancel_timers(conn, call_id=call_id, kind=TimerKind.ESCALATION_WAIT, at=clock.now())
    clock.advance(timedelta(minutes=10))
    engine.runner.channels.clear()
    engine.tick()
    [referral] = desk.referrals(call_id)
    assert referral.late_reason is not None and referral.dispatched_at is None
    assert EventKind.REFERRAL_DEADLINE_MISSED in _kinds(engine, call_id)


def test_a_permanent_delivery_failure_escalates_at_once(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    """8.14: when every message of the current alert fails for good, the next stage is
    alerted in the same tick, not at the end of the acknowledgement wait."""
    channels["sms"].fail = DeliveryResult.permanent("invalid number")
    channels["email"].fail = DeliveryResult.permanent("mailbox unavailable")
    call_id = _call(engine, HEATING)
    desk = engine.organisation("org-a")
    desk.next_step(call_id)
    desk.complete(call_id)
    engine.tick()
    kinds = _kinds(engine, call_id)
    assert kinds.count(EventKind.MESSAGE_FAILED) >= 2
    [referral] = desk.referrals(call_id)
    # every stage alerted within the one tick, without waiting 15 minutes each; the final
    # holder is then re-alerted only on its wait, so a dead channel cannot spin the chain
    assert (referral.stage, referral.alerts) == (2, 3)
    assert kinds.count(EventKind.REFERRAL_ESCALATED) == 2


def test_one_failed_channel_of_an_alert_waits_for_the_acknowledgement(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    channels["sms"].fail = DeliveryResult.permanent("invalid number")
    call_id = _call(engine, HEATING)
    desk = engine.organisation("org-a")
    desk.next_step(call_id)
    desk.complete(call_id)
    engine.tick()
    [referral] = desk.referrals(call_id)
    assert referral.stage == 0  # the email reached the officer
    assert ("email", "rita@a.example") in _sent_to(channels)


def test_references_are_unique_across_organisations(engine: Engine) -> None:
    """5.2.2: a unique reference on the Call Management System, not only per organisation."""
    a = engine.offer(REPAIRS)
    b = engine.offer(ORG_B)
    assert a.organisation_id != b.organisation_id and a.reference != b.reference
    with pytest.raises(CallNotFound):  # and still looked up only in its own organisation
        engine.organisation("org-b").find(a.reference)
    assert engine.organisation("org-a").find(a.reference).id == a.id


def test_an_ivr_caller_who_makes_no_choice_is_routed_to_the_menus_no_choice(
    engine: Engine, clock: ManualClock
) -> None:
    """2.1.2h / 5.1.2: a caller who does not choose is handled under the menu's no_choice."""
    desk = engine.organisation("org-a")
    call = engine.offer(IVR)
    assert call.state == "ivr" and call.ivr_prompt is not None
    clock.advance(timedelta(seconds=31))
    engine.tick()
    routed = desk.get(call.id)
    assert (routed.state, routed.service_option) == ("offered", "repairs")
    assert EventKind.IVR_NO_CHOICE in _kinds(engine, call.id)


def test_an_ivr_choice_says_its_words_and_cancels_the_wait(
    engine: Engine, clock: ManualClock
) -> None:
    desk = engine.organisation("org-a")
    call = engine.offer(IVR)
    chosen = desk.choose(call.id, "1")
    assert chosen.ivr_prompt == "Connecting you to the repairs service."
    clock.advance(timedelta(minutes=1))
    assert engine.tick().fired == []  # the no-choice timer was cancelled


def test_check_out_is_by_the_same_staff_member_or_a_manager(
    engine: Engine, clock: ManualClock
) -> None:
    """5.2.3.6: another person cannot end a lone worker's watch; a manager may, recorded."""
    desk = engine.organisation("org-a")
    call = engine.offer(LONE)
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, {"caller_name": "Tess", "address": "7 Mill Lane"})
    desk.next_step(call.id)
    desk.complete(call.id)
    with pytest.raises(WrongStaffMember):
        desk.check_out(call.id, staff_id="Someone Else")
    assert desk.get(call.id).state == "lone_worker"  # nothing changed
    closed = desk.check_out(call.id, manager="Tess Team")
    assert closed.state == "closed"
    out = [e for e in desk.events(call.id) if e.kind == EventKind.LONE_WORKER_CHECKED_OUT]
    assert out[0].payload["by_manager"] is True
    clock.advance(timedelta(hours=3))
    engine.tick()
    assert EventKind.LONE_WORKER_ALERT not in _kinds(engine, call.id)


def test_a_refused_step_records_no_call(engine: Engine) -> None:
    with pytest.raises(CallNotFound):
        engine.organisation("org-a").answer(["not", "an", "id"], handler="amy")  # type: ignore[arg-type]
    with engine.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(calls)).scalar() == 0


def test_messages_carry_their_purpose_reference_and_case_fields(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    call_id = _call(engine, HEATING)
    desk = engine.organisation("org-a")
    desk.next_step(call_id)
    desk.complete(call_id)
    engine.tick()
    alert: OutboundMessage = next(
        m for m in channels["sms"].messages if m.purpose == "referral.alert"
    )
    caller = next(m for m in channels["sms"].messages if m.purpose == "caller.sms")
    ref = desk.get(call_id).reference
    assert alert.reference == ref == caller.reference
    assert alert.fields["caller_name"] == "Ann Lee" and alert.fields["reference"] == ref


def test_purging_a_calls_personal_data_leaves_the_audit_chain_verifying(
    engine: Engine, clock: ManualClock
) -> None:
    """7.14.3 / 7.14.7: the chain holds a digest of the answers, not the answers, so a retention
    purge of one call's personal data leaves `audit verify` passing."""
    from oohcore import audit
    from oohcore.retention import purge_personal_data

    call_id = _call(engine, HEATING)
    other = _call(engine, HEATING | {"caller_name": "Bo Day", "address": "1 Low Rd"})
    desk = engine.organisation("org-a")
    desk.next_step(call_id)
    desk.complete(call_id)
    desk.close(call_id)
    engine.tick()
    desk.acknowledge(call_id, by="Rob")  # a running referral keeps its details (7.14.3)
    captured = next(e for e in desk.events(call_id) if e.kind == EventKind.CALL_CAPTURED)
    assert "Ann Lee" not in captured.payload_json  # the chain never held the name
    assert captured.payload_with_personal_data()["answers"]["caller_name"] == "Ann Lee"
    with engine.store.transaction() as conn:
        purged = purge_personal_data(
            conn, organisation_id="org-a", call_id=call_id, at=clock.now(), by="dpo", reason="test"
        )
    assert purged >= 3  # offered (caller number), captured (answers), messages (recipients)
    assert audit.verify(engine.store).ok
    captured = next(e for e in desk.events(call_id) if e.kind == EventKind.CALL_CAPTURED)
    assert captured.personal is not None and captured.personal.status == "purged"
    still = next(e for e in desk.events(other) if e.kind == EventKind.CALL_CAPTURED)
    assert still.payload_with_personal_data()["answers"]["caller_name"] == "Bo Day"


def test_a_signposts_number_comes_from_the_living_directory(
    engine: Engine, clock: ManualClock
) -> None:
    """2.3.3 / DESIGN principle 10: the option names a contact by id; changing its number in
    the store needs no new sign-off (the option's version is unchanged), is recorded, and the
    next call gives the new number."""
    from oohcore import directory

    desk = engine.organisation("org-a")
    version = engine.organisations["org-a"].service_options["repairs"].version
    first = _call(engine, {"caller_name": "Ed", "address": "9 Key St", "repair": "locked_out"})
    step = desk.next_step(first)
    assert step.contact is not None and step.contact.number == "0800 000 000"
    assert step.say == "Call the locksmith line on 0800 000 000."
    with engine.store.transaction() as conn:
        directory.change(
            conn, "org-a", "locksmith", number="0800 111 222", by="duty manager", at=clock.now()
        )
    second = _call(engine, {"caller_name": "Fay", "address": "2 Door Rd", "repair": "locked_out"})
    step = desk.next_step(second)
    assert step.contact is not None and step.contact.number == "0800 111 222"
    assert step.call.option_version == version  # no new version: no new sign-off
    with engine.store.read() as conn:
        [change] = [c for c in directory.history(conn, "org-a", "locksmith") if c.revision > 1]
    assert change.changed_by == "duty manager"
