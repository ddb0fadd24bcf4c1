"""Escalation to a named holder: a referral nobody can take (issue 7 defect 1), the last-resort
contact every organisation names (``last_resort`` in organisation.yaml), the re-alert backoff
after the last stage (audit item 9, 5.3.2) and declining a referral.

Fixture organisations: tests/fixtures/engine (org-a's last resort is its directory contact
``out-of-hours-manager``). Times are Europe/London; 20 Nov 2026 is a Friday (GMT)."""

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
from oohcore.errors import RulesetError
from oohcore.kpi.measures import escalation_failures
from oohcore.kpi.periods import Period
from oohcore.rota import OnCallOfficer
from oohcore.rulesets.loader import load_organisation
from oohcore.vocabulary import EventKind

LAST_RESORT_PHONE = "07700 900099"  # org-a's directory: out-of-hours-manager


class EmptyRota:
    """Nobody holds any role tonight: a referral nobody can take."""

    def on_call(self, organisation_id: str, role: str, at: datetime) -> OnCallOfficer | None:
        return None


class OneRota:
    """Only the first stage (repairs-duty) is held."""

    def on_call(self, organisation_id: str, role: str, at: datetime) -> OnCallOfficer | None:
        if role == "repairs-duty":
            return OnCallOfficer("rita", "Rita Duty", phone="07700 900001")
        return None


def _engine(
    tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel], rota: object
) -> Engine:
    url = f"sqlite:///{tmp_path / 'esc.sqlite'}"
    return Engine.open(FIXTURES, url, clock=clock, channels=channels, rota=rota)  # type: ignore[arg-type]


def _call(engine: Engine) -> str:
    call = engine.offer(REPAIRS, caller_number="07700900123")
    desk = engine.organisation(call.organisation_id)
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, HEATING)
    return call.id


def _sms(channels: dict[str, MemoryChannel], purpose: str) -> list[tuple[str, str]]:
    return [(m.recipient, m.body) for m in channels["sms"].messages if m.purpose == purpose]


@pytest.fixture
def untaken(
    tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> Iterator[tuple[Engine, str]]:
    with _engine(tmp_path, clock, channels, EmptyRota()) as eng:
        yield eng, _call(eng)


def test_a_referral_nobody_can_take_is_a_distinct_outcome_before_completing(
    untaken: tuple[Engine, str],
) -> None:
    """Issue 7 defect 1: NextStep says nobody on the rota can take it, and names the last
    resort the handler's referral goes to instead (5.3.2)."""
    engine, call_id = untaken
    step = engine.organisation("org-a").next_step(call_id)
    assert step.untaken is True
    assert step.contact is not None
    assert (step.contact.name, step.contact.number) == (
        "Out-of-hours duty manager",
        LAST_RESORT_PHONE,
    )
    assert step.contact.role == "last_resort"


def test_the_last_resort_is_alerted_at_once_and_the_caller_is_told_the_truth(
    untaken: tuple[Engine, str], clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    engine, call_id = untaken
    desk = engine.organisation("org-a")
    desk.next_step(call_id)
    desk.complete(call_id)
    engine.tick()
    alerts = _sms(channels, "referral.alert")
    assert [r for r, _ in alerts] == [LAST_RESORT_PHONE]
    assert "nobody on the rota" in alerts[0][1].lower()
    (caller,) = _sms(channels, "caller.sms")
    assert caller[0] == "+447700900123"
    assert "engineer will call you back" not in caller[1]
    assert "could not reach" in caller[1]
    kinds = [e.kind for e in desk.events(call_id)]
    assert kinds.count(EventKind.REFERRAL_UNTAKEN) == 1  # reported: an event the KPIs count
    assert EventKind.REFERRAL_NO_OFFICER not in kinds
    with engine.store.read() as conn:
        failures = escalation_failures(conn, "org-a", Period.month(2026, 11), "Europe/London")
    assert [(f.kind, f.reference) for f in failures] == [
        ("referral.untaken", desk.get(call_id).reference)
    ]


def test_no_officer_does_not_repeat_for_ever_and_the_last_resort_is_re_alerted_on_backoff(
    untaken: tuple[Engine, str], clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    """All night with nobody on the rota: the last resort holds the call and is re-alerted on
    the backoff (each re-alert recorded), never every few minutes, never a no_officer loop."""
    engine, call_id = untaken
    desk = engine.organisation("org-a")
    desk.next_step(call_id)
    desk.complete(call_id)
    engine.tick()
    for _ in range(12 * 8):  # eight hours in 5-minute ticks
        clock.advance(timedelta(minutes=5))
        engine.tick()
    alerts = _sms(channels, "referral.alert")
    assert {r for r, _ in alerts} == {LAST_RESORT_PHONE}
    # backoff from 15 minutes doubling to at most an hour: 15m, 30m, 1h, 1h, ... in 8 hours
    assert 5 <= len(alerts) <= 10
    events = desk.events(call_id)
    kinds = [e.kind for e in events]
    assert EventKind.REFERRAL_NO_OFFICER not in kinds
    repeats = [e for e in events if e.kind == EventKind.REFERRAL_ESCALATED]
    assert len(repeats) == len(alerts) - 1
    assert all(e.payload["holder"] == "last_resort" for e in repeats)
    desk.acknowledge(call_id, by="ooh-manager")
    before = len(_sms(channels, "referral.alert"))
    clock.advance(timedelta(hours=3))
    engine.tick()
    assert len(_sms(channels, "referral.alert")) == before


def test_an_escalation_that_runs_out_of_holders_reaches_the_last_resort(
    tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    """Only stage 1 is held: after its wait the later stages have nobody, so the last resort
    is alerted (a named holder), not a no_officer event."""
    with _engine(tmp_path, clock, channels, OneRota()) as engine:
        call_id = _call(engine)
        desk = engine.organisation("org-a")
        assert desk.next_step(call_id).untaken is False
        desk.complete(call_id)
        engine.tick()
        clock.advance(timedelta(minutes=16))
        engine.tick()
        recipients = [r for r, _ in _sms(channels, "referral.alert")]
        assert recipients == ["07700 900001", LAST_RESORT_PHONE]
        kinds = [e.kind for e in desk.events(call_id)]
        assert EventKind.REFERRAL_NO_OFFICER not in kinds
        assert EventKind.REFERRAL_UNTAKEN not in kinds  # somebody was told first


def test_every_organisation_must_name_its_last_resort(tmp_path: Path) -> None:
    org = tmp_path / "org-a"
    shutil.copytree(FIXTURES / "org-a", org)
    path = org / "organisation.yaml"
    text = path.read_text()
    path.write_text(text.replace("last_resort: out-of-hours-manager", "last_resort: nobody-here"))
    with pytest.raises(RulesetError, match="last_resort") as bad:
        load_organisation(org)
    assert "organisation.yaml:" in str(bad.value)
    path.write_text(text.replace("last_resort: out-of-hours-manager\n", ""))
    with pytest.raises(RulesetError, match="last_resort"):
        load_organisation(org)


# -- nobody at all: the rota and the last resort (the provider's duty contact) ------------------

PROVIDER_PHONE = "07700 900111"
PROVIDER = OnCallOfficer(
    "provider-duty", "Provider duty manager", phone=PROVIDER_PHONE, email="duty@provider.example"
)


def _nobody_engine(
    tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel], **kwargs: object
) -> Engine:
    """org-a whose last resort is a rota role (team-manager), on a rota where nobody holds
    anything tonight: no person of the organisation can be reached."""
    shutil.copytree(FIXTURES, tmp_path / "orgs")
    path = tmp_path / "orgs" / "org-a" / "organisation.yaml"
    text = path.read_text()
    path.write_text(text.replace("last_resort: out-of-hours-manager", "last_resort: team-manager"))
    url = f"sqlite:///{tmp_path / 'nobody.sqlite'}"
    return Engine.open(
        tmp_path / "orgs",
        url,
        clock=clock,
        channels=channels,
        rota=EmptyRota(),
        **kwargs,  # type: ignore[arg-type]
    )


def test_when_nobody_can_be_reached_the_handler_is_told_and_the_provider_duty_is_alerted(
    tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    with _nobody_engine(tmp_path, clock, channels, provider_duty=PROVIDER) as engine:
        call_id = _call(engine)
        desk = engine.organisation("org-a")
        step = desk.next_step(call_id)
        assert step.untaken is True and step.nobody_reachable is True
        assert step.contact is not None
        assert (step.contact.name, step.contact.number, step.contact.role) == (
            "Provider duty manager",
            PROVIDER_PHONE,
            "provider_duty",
        )
        assert step.information is not None and "last resort" in step.information
        desk.complete(call_id)
        engine.tick()
        alerts = _sms(channels, "referral.alert")
        assert [r for r, _ in alerts] == [PROVIDER_PHONE]
        assert alerts[0][1].startswith("Ann Lee")  # 5.2.5: the case first
        assert "nobody can be reached" in alerts[0][1].lower()
        (caller,) = _sms(channels, "caller.sms")
        assert "engineer will call you back" not in caller[1]
        assert "Borough A's out-of-hours manager" not in caller[1]  # nobody of theirs was told
        assert "could not reach" in caller[1]
        events = desk.events(call_id)
        kinds = [e.kind for e in events]
        assert EventKind.REFERRAL_NO_OFFICER not in kinds
        [untaken] = [e for e in events if e.kind == EventKind.REFERRAL_UNTAKEN]
        assert untaken.payload["holder"] == "provider_duty"
        assert untaken.payload["officer"] == "provider-duty"
        clock.advance(timedelta(minutes=20))  # re-alerted on the backoff until acknowledged
        engine.tick()
        assert [r for r, _ in _sms(channels, "referral.alert")] == [PROVIDER_PHONE] * 2
        reference = desk.get(call_id).reference
        assert engine.receive("org-a", "sms", PROVIDER_PHONE, f"ACK {reference}") == "ack"
        assert desk.referrals(call_id)[-1].acknowledged_by == "provider-duty"


def test_with_no_provider_duty_either_nobody_is_alerted_and_nobody_is_told_otherwise(
    tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    with _nobody_engine(tmp_path, clock, channels) as engine:
        call_id = _call(engine)
        desk = engine.organisation("org-a")
        step = desk.next_step(call_id)
        assert step.untaken is True and step.nobody_reachable is True
        assert step.contact is not None and step.contact.number is None
        desk.complete(call_id)
        engine.tick()
        assert _sms(channels, "referral.alert") == []
        (caller,) = _sms(channels, "caller.sms")
        assert "engineer will call you back" not in caller[1]
        assert "alerted" not in caller[1]
        assert "not yet been able to reach anyone" in caller[1]
        assert EventKind.REFERRAL_NO_OFFICER in [e.kind for e in desk.events(call_id)]


def test_a_provider_duty_contact_without_a_number_or_email_is_refused_at_open(
    tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    from oohcore.engine import EngineError

    with pytest.raises(EngineError, match="provider_duty"):
        _nobody_engine(tmp_path, clock, channels, provider_duty=OnCallOfficer("x", "X"))
