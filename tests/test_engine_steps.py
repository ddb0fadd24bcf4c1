"""The steps of a call decided without a database (DESIGN principle 8: decide, then commit).

Every test here builds a call's context from the compiled fixture rulesets and a rota
function, runs the pure step functions of ``oohcore.engine.steps`` and checks the result they
return (new row, events, messages, timers, referral records). No store is opened."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine_support import FIXTURES
from oohcore.calls import ACTION_STATES
from oohcore.durable.timers import TimerRow
from oohcore.engine import InvalidTransition, MissingEssentialFields, steps
from oohcore.engine.actions import HANDLERS
from oohcore.engine.context import CallContext
from oohcore.engine.result import StepResult
from oohcore.engine.rows import CallRow, ReferralRow
from oohcore.rota import OnCallOfficer
from oohcore.rulesets.compiler import Organisation
from oohcore.rulesets.loader import load_organisations
from oohcore.vocabulary import EventKind, MessagePurpose, TimerKind

NOW = datetime(2026, 11, 20, 22, 0, tzinfo=ZoneInfo("Europe/London"))
OFFICERS = {
    "repairs-duty": OnCallOfficer("rita", "Rita Duty", phone="07700 900001", email="r@a.example"),
    "repairs-manager": OnCallOfficer("max", "Max Manager", phone="07700 900002"),
    "duty-director": OnCallOfficer("dina", "Dina Director", phone="07700 900003"),
}


@pytest.fixture(scope="module")
def org() -> Organisation:
    return next(o for o in load_organisations(FIXTURES) if o.id == "org-a")


def _on_call(role: str, at: datetime) -> OnCallOfficer | None:
    return OFFICERS.get(role)


def _ctx(org: Organisation, row: CallRow, now: datetime = NOW) -> CallContext:
    option = org.service_options.get(row.service_option or "")
    return CallContext(organisation=org, option=option, row=row, now=now, on_call=_on_call)


def _apply(result: StepResult) -> CallRow:
    """What commit would leave in the call's row (the step's own view of it)."""
    return result.call


def _referred(org: Organisation, answers: dict[str, Any]) -> StepResult:
    offered = steps.offer(
        org,
        call_id="c1",
        seq=1,
        number="01000000002",
        option=org.service_options["repairs"],
        ivr_menu=None,
        caller_number="07700900123",
        now=NOW,
    )
    row = _apply(offered)
    row = _apply(steps.answer(_ctx(org, row), "amy"))
    row = _apply(steps.capture(_ctx(org, row), answers, lambda a: {"uprn": 10001}))
    decided, _ = steps.decide(_ctx(org, row), None)
    row = _apply(decided)
    return steps.complete(_ctx(org, row))


HEATING = {
    "caller_name": "Ann",
    "address": "1 High St",
    "repair": "no_heating",
    "vulnerable": True,
    "outside_temp": 2,
}


def test_every_action_kind_has_one_handler_and_one_call_state() -> None:
    assert set(HANDLERS) == set(ACTION_STATES)


def test_offer_records_the_call_and_its_personal_data_apart(org: Organisation) -> None:
    result = steps.offer(
        org,
        call_id="c1",
        seq=7,
        number="01000000002",
        option=org.service_options["repairs"],
        ivr_menu=None,
        caller_number="07700900123",
        now=NOW,
    )
    assert result.base is None and result.call.state == "offered"
    [event] = result.events
    assert event.kind == EventKind.CALL_OFFERED
    assert "caller_number" not in event.payload and event.personal == {
        "caller_number": "07700900123"
    }


def test_referring_starts_a_referral_with_its_escalation_snapshotted(org: Organisation) -> None:
    result = _referred(org, HEATING)
    assert result.call.state == "referred"
    [write] = result.referrals
    referral = write.after
    assert write.before is None and referral.state == "alerting" and referral.alerts == 1
    snap = referral.snapshot
    assert [s["role"] for s in snap["stages"]] == [
        "repairs-duty",
        "repairs-manager",
        "duty-director",
    ]
    assert snap["option_version"] == org.service_options["repairs"].version
    alerts = [m for m in result.messages if m.purpose == MessagePurpose.REFERRAL_ALERT]
    assert {(m.channel, m.recipient) for m in alerts} == {
        ("sms", "07700 900001"),
        ("email", "r@a.example"),
    }
    assert all(m.meta["run"] == referral.run_id and m.meta["uprn"] == 10001 for m in alerts)
    kinds = {t.kind for t in result.timers}
    assert kinds == {TimerKind.ESCALATION_WAIT, TimerKind.REFERRAL_DEADLINE}
    assert all(referral.run_id in t.key for t in result.timers)
    [action] = [e for e in result.events if e.kind == EventKind.ACTION_REFER]
    assert action.payload["referral"] == referral.id and action.payload["officer"] == "rita"


def _fired(kind: str, referral: ReferralRow, **payload: Any) -> TimerRow:
    return TimerRow(
        id=1,
        organisation_id="org-a",
        call_id="c1",
        kind=kind,
        due_at=NOW,
        payload={"referral": referral.id, "run": referral.run_id, **payload},
        key="k",
        fired_at=NOW,
    )


def test_an_unacknowledged_wait_alerts_the_next_stage(org: Organisation) -> None:
    result = _referred(org, HEATING)
    referral = result.referrals[0].after
    later = NOW + timedelta(minutes=15)
    fired = steps.timer_fired(
        _ctx(org, result.call, later),
        replace(_fired(TimerKind.ESCALATION_WAIT, referral, alert=1), due_at=later),
        referral,
    )
    [write] = fired.referrals
    assert write.changes == {"state": "alerting", "stage": 1, "alerts": 2}
    assert [(m.channel, m.recipient) for m in fired.messages] == [("sms", "07700 900002")]
    assert fired.timers[0].due_at == later + timedelta(minutes=15)


def test_a_timer_of_another_run_is_stale_and_changes_nothing(org: Organisation) -> None:
    result = _referred(org, HEATING)
    referral = result.referrals[0].after
    timer = _fired(TimerKind.ESCALATION_WAIT, referral, alert=1)
    timer = replace(timer, payload={**timer.payload, "run": "other"})
    fired = steps.timer_fired(_ctx(org, result.call), timer, referral)
    assert [e.kind for e in fired.events] == [EventKind.TIMER_STALE]
    assert fired.messages == [] and fired.timers == [] and fired.referrals == []
    assert fired.changes == {}


def test_the_last_stage_is_re_alerted_until_someone_acknowledges(org: Organisation) -> None:
    result = _referred(org, HEATING)
    referral = replace(result.referrals[0].after, stage=2, alerts=3)
    fired = steps.timer_fired(
        _ctx(org, result.call), _fired(TimerKind.ESCALATION_WAIT, referral, alert=3), referral
    )
    assert fired.messages and all(m.subject.startswith("UNACKNOWLEDGED") for m in fired.messages)
    assert fired.referrals[0].changes["stage"] == 3


def test_acknowledging_stops_the_escalation(org: Organisation) -> None:
    result = _referred(org, HEATING)
    referral = result.referrals[0].after
    acked = steps.acknowledge(_ctx(org, result.call), referral, "rita")
    assert acked.cancel == [TimerKind.ESCALATION_WAIT]
    assert acked.referrals[0].after.state == "acknowledged"
    with pytest.raises(InvalidTransition):
        steps.acknowledge(_ctx(org, result.call), acked.referrals[0].after, "rita")


def test_the_decision_needs_the_essential_fields(org: Organisation) -> None:
    offered = steps.offer(
        org,
        call_id="c2",
        seq=2,
        number="01000000002",
        option=org.service_options["repairs"],
        ivr_menu=None,
        caller_number=None,
        now=NOW,
    )
    row = _apply(steps.answer(_ctx(org, _apply(offered)), "amy"))
    with pytest.raises(MissingEssentialFields):
        steps.decide(_ctx(org, row), None)


def test_the_deadline_waits_for_the_end_of_the_call_then_judges_the_pass_on(
    org: Organisation,
) -> None:
    """6.4b: the limit runs from the conclusion of the call."""
    result = _referred(org, HEATING)
    referral = result.referrals[0].after
    ended = NOW + timedelta(minutes=6)
    closed = _apply(steps.close(_ctx(org, result.call, ended)))
    timer = _fired(TimerKind.REFERRAL_DEADLINE, referral)
    first = steps.timer_fired(_ctx(org, closed, NOW + timedelta(minutes=10)), timer, referral)
    assert [t.due_at for t in first.timers] == [ended + timedelta(minutes=10)]  # waits on
    assert first.events == [] and first.referrals == []
    sent = ended + timedelta(minutes=9)
    late = steps.timer_fired(
        _ctx(org, closed, ended + timedelta(minutes=10)), timer, referral, sent
    )
    assert [e.kind for e in late.events] == [EventKind.REFERRAL_DEADLINE_MET]
    assert late.events[0].payload["pass_on_s"] == 540.0
    assert late.referrals[0].changes["call_ended_at"] == ended
    missed = steps.timer_fired(_ctx(org, closed, ended + timedelta(minutes=10)), timer, referral)
    assert [e.kind for e in missed.events] == [EventKind.REFERRAL_DEADLINE_MISSED]
    assert missed.referrals[0].changes["late_reason"]


def test_a_failed_alert_escalates_at_once_only_when_all_of_it_failed(org: Organisation) -> None:
    result = _referred(org, HEATING)
    referral = result.referrals[0].after
    sms = next(m for m in result.messages if m.channel == "sms" and m.meta.get("alert") == 1)
    waiting = steps.message_failed(_ctx(org, result.call), referral, sms, "k", "bad", True)
    assert waiting.messages == [] and waiting.referrals == []
    moved = steps.message_failed(_ctx(org, result.call), referral, sms, "k", "bad", False)
    assert moved.referrals[0].changes["stage"] == 1 and moved.messages
