"""Named escalation policies in organisation.yaml, reusable by any refer action (issue 8 item 5;
5.3.2, 6.4e, audit items 8-9): notify a rota stage (the next in turn or everyone), wait,
repeat, notify a manager or a directory contact; the last step names someone who holds the
call, or validation fails with its location; the backoff after the last step is the policy's.

A copy of tests/fixtures/engine whose org-a repairs referral uses the policy ``repairs-night``.
Times are Europe/London; 20 Nov 2026 is a Friday (GMT)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from engine_support import (
    CHANNELS,
    FIXTURES,
    HEATING,
    REPAIRS,
    alert_recipients,
    refer_heating_call,
)
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import Engine
from oohcore.errors import RulesetError
from oohcore.rota import OnCallAnswer, OnCallOfficer, OnCallStage
from oohcore.rulesets.loader import load_organisation

RITA, ROB, MAX, OOH = "07700 900001", "07700 900006", "07700 900002", "07700 900099"
POLICY = """
escalation_policies:
  repairs-night:
    description: Repairs at night, twice to the duty officer, then the manager, then the OOH manager
    steps:
      - {notify: repairs-duty, who: WHO, channels: [sms]}
      - {wait: 10m}
      - {repeat: 1}
      - {notify: repairs-manager, channels: [sms]}
      - {wait: 15m}
      - {contact: out-of-hours-manager, channels: [sms]}
      - {wait: 20m}
    realert: {first: 30m, factor: 2, max: 2h}
"""
OFFICERS = {
    "rita": OnCallOfficer("rita", "Rita Duty", phone=RITA),
    "rob": OnCallOfficer("rob", "Rob Relief", phone=ROB),
    "max": OnCallOfficer("max", "Max Manager", phone=MAX),
}


class StagedRota:
    """Repairs duty has two officers on stage 1 (Rita in turn, then Rob); Max manages."""

    def on_call(self, organisation_id: str, role: str, at: datetime) -> OnCallOfficer | None:
        return self.who_is_on_call(organisation_id, role, at).officer

    def who_is_on_call(
        self,
        organisation_id: str,
        role: str,
        at: datetime,
        *,
        category: str | None = None,
        area: str | None = None,
    ) -> OnCallAnswer:
        people = {"repairs-duty": ("rita", "rob"), "repairs-manager": ("max",)}.get(role, ())
        stage = OnCallStage(1, tuple(OFFICERS[p] for p in people), "test rota")
        return OnCallAnswer(role, at, (stage,) if people else ())


def _orgs(tmp_path: Path, who: str = "in_turn", policy: str = POLICY) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "orgs")
    org = tmp_path / "orgs" / "org-a"
    path = org / "organisation.yaml"
    path.write_text(path.read_text() + policy.replace("WHO", who))
    option = org / "options" / "repairs.yaml"
    text = option.read_text()
    old = (
        "    rota_role: repairs-duty\n    channels: [sms, email]\n    time_limit: 10m\n"
        "    acknowledge_within: 15m\n"
    )
    assert old in text
    text = text.replace(old, "    policy: repairs-night\n    time_limit: 10m\n", 1)
    stages = (
        "    escalation:\n      - {rota_role: repairs-manager, channels: [sms], wait: 15m}\n"
        "      - {rota_role: duty-director, channels: [sms, email], wait: 15m}\n"
    )
    assert stages in text
    option.write_text(text.replace(stages, "", 1))
    return tmp_path / "orgs"


def _engine(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> Engine:
    url = f"sqlite:///{tmp_path / 'pol.sqlite'}"
    return Engine.open(orgs, url, clock=clock, channels=channels, rota=StagedRota())


@pytest.fixture
def engine(
    tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> Iterator[Engine]:
    with _engine(_orgs(tmp_path), tmp_path, clock, channels) as eng:
        yield eng


def _run(engine: Engine, clock: ManualClock, minutes: int) -> list[int]:
    """Tick each minute for ``minutes``; the minutes at which alerts went."""
    channels_seen: list[int] = []
    sms = engine.runner.channels["sms"]
    assert isinstance(sms, MemoryChannel)
    for minute in range(1, minutes + 1):
        before = len(sms.messages)
        clock.advance(timedelta(minutes=1))
        engine.tick()
        if any(m.purpose == "referral.alert" for m in sms.messages[before:]):
            channels_seen.append(minute)
    return channels_seen


def test_the_policy_runs_step_by_step_then_re_alerts_the_holder_on_its_backoff(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id, _ = refer_heating_call(engine)
    minutes = _run(engine, clock, 4 * 60)
    # Rita, Rita again (repeat), Max, the OOH manager; then 20m, 30m, 1h, 2h, 2h
    assert alert_recipients(channels)[:4] == [RITA, RITA, MAX, OOH]
    assert minutes[:7] == [10, 20, 35, 55, 85, 145]
    assert set(alert_recipients(channels)[4:]) == {OOH}
    view = engine.organisation("org-a").referrals(call_id)[-1]
    assert view.state == "alerting"


@pytest.mark.parametrize(
    ("minutes", "by", "alerted"), [(0, RITA, 1), (11, RITA, 2), (21, MAX, 3), (36, OOH, 4)]
)
def test_acknowledgement_at_each_step_of_the_policy_stops_it(
    engine: Engine,
    clock: ManualClock,
    channels: dict[str, MemoryChannel],
    minutes: int,
    by: str,
    alerted: int,
) -> None:
    call_id, ref = refer_heating_call(engine)
    _run(engine, clock, minutes)
    assert len(alert_recipients(channels)) == alerted
    assert engine.receive("org-a", "sms", by, f"ACK {ref}") == "ack"
    _run(engine, clock, 180)
    assert len(alert_recipients(channels)) == alerted
    assert engine.organisation("org-a").referrals(call_id)[-1].state == "acknowledged"


def test_notify_everyone_on_the_stage(
    tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    with _engine(_orgs(tmp_path, who="everyone"), tmp_path, clock, channels) as engine:
        _, ref = refer_heating_call(engine)
        assert sorted(alert_recipients(channels)) == [RITA, ROB]
        assert engine.receive("org-a", "sms", ROB, f"ACK {ref}") == "ack"  # either may take it


def test_the_next_step_names_the_policys_first_holder(engine: Engine) -> None:
    call = engine.offer(REPAIRS, caller_number="07700900123")
    desk = engine.organisation("org-a")
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, HEATING)
    step = desk.next_step(call.id)
    assert step.contact is not None and step.contact.name == "Rita Duty"
    assert step.untaken is False


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            POLICY.replace("{contact: out-of-hours-manager, channels: [sms]}", "{wait: 5m}"),
            None,  # ends at the manager role: valid
        ),
        (
            "\nescalation_policies:\n  repairs-night:\n    steps:\n      - {wait: 10m}\n",
            "notifies nobody",
        ),
        (
            POLICY.replace(
                "{contact: out-of-hours-manager, channels: [sms]}",
                "{notify: noise-officer, channels: [sms]}\n      - {notify: gone-role, channels: [sms]}",
            ),
            "unknown rota role 'gone-role'",
        ),
        (
            POLICY.replace("contact: out-of-hours-manager", "contact: nobody-at-all"),
            "unknown contact 'nobody-at-all'",
        ),
    ],
)
def test_a_policy_that_can_end_with_nobody_told_fails_with_its_location(
    tmp_path: Path, policy: str, message: str | None
) -> None:
    orgs = _orgs(tmp_path, policy=policy)
    if message is None:
        load_organisation(orgs / "org-a")
        return
    with pytest.raises(RulesetError, match=message) as bad:
        load_organisation(orgs / "org-a")
    assert "org-a/organisation.yaml:" in str(bad.value)


def test_an_option_naming_an_unknown_policy_fails_with_its_location(tmp_path: Path) -> None:
    orgs = _orgs(tmp_path)
    option = orgs / "org-a" / "options" / "repairs.yaml"
    option.write_text(option.read_text().replace("policy: repairs-night", "policy: repairs-dawn"))
    with pytest.raises(RulesetError, match="unknown escalation policy 'repairs-dawn'") as bad:
        load_organisation(orgs / "org-a")
    assert "options/repairs.yaml:" in str(bad.value)


def test_a_policy_ending_at_a_contractor_is_refused(tmp_path: Path) -> None:
    org = tmp_path / "orgs" / "org-a"
    orgs = _orgs(tmp_path)
    path = org / "organisation.yaml"
    path.write_text(
        path.read_text()
        .replace(
            "  - {id: team-manager, name: Team manager, kind: manager}",
            "  - {id: team-manager, name: Team manager, kind: manager}\n"
            "  - {id: plumber, name: Plumber, kind: contractor}",
        )
        .replace(
            "{contact: out-of-hours-manager, channels: [sms]}", "{notify: plumber, channels: [sms]}"
        )
    )
    with pytest.raises(RulesetError, match="must name someone who holds the call"):
        load_organisation(orgs / "org-a")


def test_a_policy_changed_mid_escalation_changes_nothing_for_a_referral_in_flight(
    tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    """The policy is frozen in the referral's snapshot (DESIGN principle 9): edit it and
    restart; the referral goes on as it started, and a new referral uses the new policy."""
    orgs = _orgs(tmp_path)
    engine = _engine(orgs, tmp_path, clock, channels)
    call_id, _ = refer_heating_call(engine)
    engine.close()
    path = orgs / "org-a" / "organisation.yaml"
    changed = path.read_text().replace("{wait: 10m}", "{wait: 2h}")
    changed = changed.replace("{repeat: 1}", "{notify: duty-director, channels: [sms]}")
    path.write_text(changed)
    assert alert_recipients(channels) == [RITA]
    again = {name: MemoryChannel() for name in CHANNELS}
    with _engine(orgs, tmp_path, clock, again) as engine:
        minutes = _run(engine, clock, 40)
        assert minutes == [10, 20, 35]  # the frozen policy: Rita again, Max, the OOH manager
        assert alert_recipients(again) == [RITA, MAX, OOH]
        new_call, _ = refer_heating_call(engine)
        assert alert_recipients(again)[3:] == [RITA]
        assert _run(engine, clock, 60) == [15, 45]  # the old referral's holder, on its backoff
        assert alert_recipients(again)[4:] == [
            OOH,
            OOH,
        ]  # the new one waits 2 hours (its new policy)
        assert engine.organisation("org-a").referrals(call_id)[-1].stage >= 3
        assert new_call != call_id
