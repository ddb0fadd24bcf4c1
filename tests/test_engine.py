"""The call engine end to end through its public façade (Issue: the call engine).

Fixture organisations live in tests/fixtures/engine: org-a (IVR, repairs with every action kind,
noise with a 03:00 variant, lone worker, rota with a pre-dated cover, gazetteer) and org-b.
Times are Europe/London; 20 Nov 2026 is a Friday (GMT).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from engine_support import FIXTURES, HEATING, LONDON, REPAIRS
from oohcore import audit
from oohcore.channels import ChannelInfo, DeliveryResult, OutboundMessage
from oohcore.clock import ManualClock
from oohcore.engine import (
    CallNotFound,
    CallView,
    Engine,
    InvalidAnswers,
    InvalidChoice,
    InvalidTransition,
    MissingEssentialFields,
    OrganisationDesk,
    UnknownNumber,
    UnknownOrganisation,
)
from oohcore.rota import OnCallOfficer

IVR = "0100 000 0001"
NOISE = "0100 000 0003"
LONE = "0100 000 0004"


class Recorder:
    """A channel that records what it is given (the local JSON-lines channel is tested with a
    real file in test_timers_outbox / test_runner_crash)."""

    def __init__(self, name: str, log: list[OutboundMessage]) -> None:
        self.name = name
        self.info = ChannelInfo(carries=frozenset({name}), contact_field=None)
        self.sent: list[OutboundMessage] = []
        self.log = log  # every channel's messages, in the order they were sent

    def send(self, message: OutboundMessage) -> DeliveryResult:
        self.sent.append(message)
        self.log.append(message)
        return DeliveryResult.sent(f"{self.name}-{len(self.sent)}")

    def close(self) -> None:
        pass


@pytest.fixture
def channels() -> dict[str, Recorder]:
    log: list[OutboundMessage] = []
    return {name: Recorder(name, log) for name in ("sms", "email", "pager", "phone", "feed", "crm")}


@pytest.fixture
def engine(tmp_path: Path, clock: ManualClock, channels: dict[str, Recorder]) -> Iterator[Engine]:
    eng = Engine.open(
        FIXTURES, f"sqlite:///{tmp_path / 'ooh.sqlite'}", clock=clock, channels=channels
    )
    yield eng
    eng.close()


def _sent(channels: dict[str, Recorder]) -> list[OutboundMessage]:
    return list(next(iter(channels.values())).log)


def _repair_call(engine: Engine, answers: dict[str, Any], at: datetime | None = None) -> str:
    call = engine.offer(REPAIRS, caller_number="07700900123", at=at)
    desk = engine.organisation("org-a")
    desk.answer(call.id, handler="amy", at=at)
    desk.capture(call.id, answers, at=at)
    return call.id


def _referred(engine: Engine) -> tuple[OrganisationDesk, str]:
    """A heating call referred to the on-call officer (5.2.3.3): messages queued, timers set."""
    call_id = _repair_call(engine, HEATING)
    desk = engine.organisation("org-a")
    assert desk.next_step(call_id).kind == "refer"
    assert desk.complete(call_id).state == "referred"
    return desk, call_id


def _start_visit(engine: Engine) -> tuple[OrganisationDesk, CallView]:
    """A lone worker rings in before going on site (5.2.3.6); the visit is being watched."""
    desk = engine.organisation("org-a")
    call = engine.offer(LONE)
    desk.answer(call.id, handler="amy")
    desk.capture(call.id, {"caller_name": "Tess", "address": "7 Mill Lane"})
    # (the fixture's script asks no staff id: the worker is known by name)
    assert desk.next_step(call.id).kind == "lone_worker"
    assert desk.complete(call.id).state == "lone_worker"
    return desk, call


# -- routing and hours (7.1.2–7.1.5, 2.1.5, 5.4.3) ------------------------------------------------


def test_a_direct_number_routes_to_its_service_option(engine: Engine) -> None:
    call = engine.offer(REPAIRS, caller_number="07700900123")
    assert (call.organisation_id, call.service_option, call.state) == (
        "org-a",
        "repairs",
        "offered",
    )
    assert call.in_hours and call.tell_caller is None
    assert call.option_version is not None and call.option_version.startswith("sha256:")


def test_an_ivr_number_waits_for_a_choice_then_routes(engine: Engine) -> None:
    call = engine.offer("+44 100 000 0001")  # the same number written internationally
    assert call.state == "ivr" and call.service_option is None
    assert call.ivr_prompt == "For repairs press 1, for noise press 2."
    desk = engine.organisation("org-a")
    with pytest.raises(InvalidChoice, match="key '9'"):
        desk.choose(call.id, "9")
    assert desk.get(call.id).state == "ivr"
    chosen = desk.choose(call.id, "2")
    assert (chosen.state, chosen.service_option) == ("offered", "noise")


def test_an_unknown_number_is_refused(engine: Engine) -> None:
    with pytest.raises(UnknownNumber):
        engine.offer("0999 999 9999")


def test_outside_the_options_hours_the_caller_is_told_so(engine: Engine) -> None:
    midday = datetime(2026, 11, 18, 12, 0, tzinfo=LONDON)  # a Wednesday
    call = engine.offer(REPAIRS, at=midday)
    assert not call.in_hours
    assert call.tell_caller is not None and "daytime" in call.tell_caller


def test_noise_after_3am_runs_the_variant(engine: Engine) -> None:
    late = datetime(2026, 11, 21, 3, 30, tzinfo=LONDON)
    call = engine.offer(NOISE, at=late)
    assert call.variant == "no-patrol"
    assert call.tell_caller == "There is no noise patrol after 3am."
    desk = engine.organisation("org-a")
    desk.answer(call.id, handler="amy", at=late)
    desk.capture(call.id, {"caller_name": "Bo", "address": "7 Mill Lane"}, at=late)
    step = desk.next_step(call.id, at=late)
    assert (step.action_id, step.kind) == ("advise", "resolve")
    early = engine.offer(NOISE, at=datetime(2026, 11, 20, 23, 0, tzinfo=LONDON))
    assert early.variant is None


def test_waiting_calls_follow_the_option_priorities(engine: Engine, clock: ManualClock) -> None:
    noise = engine.offer(NOISE, at=clock.now())
    repairs = engine.offer(REPAIRS, at=clock.now() + timedelta(seconds=30))
    waiting = engine.organisation("org-a").waiting()
    assert [c.id for c in waiting] == [repairs.id, noise.id]  # repairs first under load (7.1.5)


# -- every action kind end to end (5.2.3.1–5.2.3.6) ------------------------------------------------


def test_refer_sends_to_the_on_call_officer_and_sets_timers(
    engine: Engine, channels: dict[str, Recorder], clock: ManualClock
) -> None:
    call_id = _repair_call(engine, HEATING)
    desk = engine.organisation("org-a")
    step = desk.next_step(call_id)
    assert (step.kind, step.action_id, step.rule) == ("refer", "refer-emergency", 1)
    assert step.contact is not None and step.contact.name == "Rita Duty"
    assert step.channels == ("sms", "email") and step.time_limit == timedelta(minutes=10)
    assert step.say is not None and step.call.reference in step.say
    assert desk.complete(call_id).state == "referred"
    engine.tick()
    sms = [m for m in channels["sms"].sent]
    assert {m.recipient for m in sms} == {
        "07700 900001",
        "+447700900123",
    }  # officer and caller (5.2.6)
    officer_sms = next(m for m in sms if m.recipient == "07700 900001")
    assert officer_sms.body.startswith("Ann Lee, 12a High St.: no_heating. Ref ")
    email = channels["email"].sent[0]
    assert email.recipient == "rita@a.example" and email.subject.startswith("Emergency repair ")
    closed = desk.close(call_id)
    assert closed.state == "closed"
    kinds = [e.kind for e in desk.events(call_id)]
    assert kinds[:6] == [
        "call.offered",
        "call.answered",
        "call.captured",
        "call.decided",
        "action.refer",
        "message.sent",
    ]


def test_unacknowledged_referral_escalates_stage_by_stage(
    engine: Engine, channels: dict[str, Recorder], clock: ManualClock
) -> None:
    desk, call_id = _referred(engine)
    engine.tick()
    before = len(_sent(channels))
    clock.advance(timedelta(minutes=15))
    engine.tick()
    stage1 = _sent(channels)[before:]
    assert [m.recipient for m in stage1] == ["07700 900002"]  # the repairs manager
    clock.advance(timedelta(minutes=15))
    engine.tick()
    stage2 = _sent(channels)[before + 1 :]
    assert {m.recipient for m in stage2} == {"07700 900003", "dina@a.example"}  # an officer ends it
    desk.acknowledge(call_id, by="dina")
    count = len(_sent(channels))
    clock.advance(timedelta(hours=2))
    engine.tick()
    assert len(_sent(channels)) == count  # acknowledged: no more alerts
    kinds = [e.kind for e in desk.events(call_id)]
    assert kinds.count("referral.escalated") == 2 and "referral.acknowledged" in kinds


def test_an_exhausted_escalation_keeps_alerting_the_final_officer(
    engine: Engine, channels: dict[str, Recorder], clock: ManualClock
) -> None:
    _referred(engine)
    for _ in range(4):
        clock.advance(timedelta(minutes=15))
        engine.tick()
    last = [m for m in channels["sms"].sent if m.subject.startswith("UNACKNOWLEDGED")]
    assert last and all(m.recipient == "07700 900003" for m in last)


def test_a_missed_referral_deadline_is_recorded(
    engine: Engine, channels: dict[str, Recorder], clock: ManualClock
) -> None:
    desk, call_id = _referred(engine)
    # no runner ran for 11 minutes: the messages went out late (11.7.3g exception)
    clock.advance(timedelta(minutes=11))
    engine.tick()
    assert "referral.deadline_missed" in [e.kind for e in desk.events(call_id)]


def test_the_referral_deadline_is_met_when_dispatched_in_time(
    engine: Engine, clock: ManualClock
) -> None:
    desk, call_id = _referred(engine)
    engine.tick()
    clock.advance(timedelta(minutes=11))
    engine.tick()
    assert "referral.deadline_missed" not in [e.kind for e in desk.events(call_id)]


def test_transfer(engine: Engine) -> None:
    call_id = _repair_call(engine, {**HEATING, "repair": "gas"})
    desk = engine.organisation("org-a")
    step = desk.next_step(call_id)
    assert step.kind == "transfer" and step.contact is not None
    assert (step.contact.name, step.contact.number) == (
        "National Gas Emergency Service",
        "0800 111 999",
    )
    assert desk.complete(call_id).state == "transferred"
    assert desk.close(call_id).state == "closed"


def test_signpost(engine: Engine) -> None:
    call_id = _repair_call(engine, {**HEATING, "repair": "locked_out"})
    desk = engine.organisation("org-a")
    step = desk.next_step(call_id)
    assert step.kind == "signpost" and step.contact is not None
    assert (step.contact.number, step.contact.opening_times) == ("0800 000 000", "24 hours")
    assert desk.complete(call_id).state == "signposted"


def test_resolve(engine: Engine) -> None:
    call_id = _repair_call(engine, {**HEATING, "repair": "bins"})
    desk = engine.organisation("org-a")
    step = desk.next_step(call_id)
    assert (step.kind, step.information) == ("resolve", "Bins are collected on Tuesdays.")
    assert desk.complete(call_id).state == "resolved"


def test_out_of_scope_forwards_to_the_daytime_service(
    engine: Engine, channels: dict[str, Recorder]
) -> None:
    call_id = _repair_call(engine, {**HEATING, "repair": "dripping_tap"})
    desk = engine.organisation("org-a")
    step = desk.next_step(call_id)
    assert (step.kind, step.rule) == ("out_of_scope", None)  # the default
    assert desk.complete(call_id).state == "out_of_scope"
    engine.tick()
    feed = channels["feed"].sent
    assert len(feed) == 1 and feed[0].recipient == "Repairs daytime team"
    assert feed[0].meta["category"] == "non-urgent-repair"


def test_lone_worker_checked_out_in_time_raises_no_alert(
    engine: Engine, channels: dict[str, Recorder], clock: ManualClock
) -> None:
    desk, call = _start_visit(engine)
    clock.advance(timedelta(minutes=50))
    assert desk.check_out(call.id, staff_id="Tess").state == "closed"
    clock.advance(timedelta(hours=2))
    engine.tick()
    assert "lone_worker.alert" not in [e.kind for e in desk.events(call.id)]
    assert _sent(channels) == []


def test_lone_worker_overdue_alerts_management(
    engine: Engine, channels: dict[str, Recorder], clock: ManualClock
) -> None:
    _start_visit(engine)
    clock.advance(timedelta(minutes=64))
    engine.tick()
    assert _sent(channels) == []  # visit 60m + grace 5m not yet over
    clock.advance(timedelta(minutes=2))
    engine.tick()
    assert [m.recipient for m in channels["sms"].sent] == ["07700 900005"]  # team manager (5.2.3.6)


# -- invalid steps change nothing ------------------------------------------------------------------


def _snapshot(engine: Engine, org: str, call_id: str) -> tuple[Any, ...]:
    desk = engine.organisation(org)
    view = desk.get(call_id)
    return (
        view.state,
        dict(view.answers),
        view.action_id,
        len(desk.events(call_id)),
        len(desk.messages(call_id)),
    )


def test_wrong_state_steps_are_refused_and_change_nothing(engine: Engine) -> None:
    desk = engine.organisation("org-a")
    call = engine.offer(REPAIRS)
    with pytest.raises(InvalidTransition, match="offered: cannot close"):
        desk.close(call.id)
    desk.answer(call.id, handler="amy")
    before = _snapshot(engine, "org-a", call.id)
    with pytest.raises(InvalidTransition, match="cannot answer"):
        desk.answer(call.id, handler="ben")
    with pytest.raises(InvalidTransition, match="cannot complete"):
        desk.complete(call.id)
    assert _snapshot(engine, "org-a", call.id) == before


def test_missing_essential_fields_block_the_decision(engine: Engine) -> None:
    desk = engine.organisation("org-a")
    call_id = _repair_call(engine, {"caller_name": "Ann", "repair": "no_heating"})
    before = _snapshot(engine, "org-a", call_id)
    with pytest.raises(MissingEssentialFields) as info:
        desk.next_step(call_id)
    assert info.value.fields == ["address", "outside_temp"]
    assert _snapshot(engine, "org-a", call_id) == before


def test_essential_questions_that_are_not_asked_are_not_required(engine: Engine) -> None:
    desk = engine.organisation("org-a")
    # outside_temp is essential only when asked: its ask_if needs repair == no_heating (5.3.3)
    call_id = _repair_call(
        engine, {"caller_name": "Ann", "address": "7 Mill Lane", "repair": "bins"}
    )
    assert desk.next_step(call_id).kind == "resolve"


def test_invalid_answers_are_listed_and_none_is_recorded(engine: Engine) -> None:
    desk = engine.organisation("org-a")
    call_id = _repair_call(engine, {"caller_name": "Ann"})
    before = _snapshot(engine, "org-a", call_id)
    with pytest.raises(InvalidAnswers) as info:
        desk.capture(
            call_id,
            {
                "repair": "broken",
                "outside_temp": 99,
                "postcode": "nonsense",
                "colour": "red",
                "address": "1 Road",
            },
        )
    fields = sorted(p.field for p in info.value.problems)
    assert fields == ["colour", "outside_temp", "postcode", "repair"]
    assert _snapshot(engine, "org-a", call_id) == before


def test_another_organisations_call_is_not_found_and_nothing_changes(engine: Engine) -> None:
    call = engine.offer(REPAIRS)
    other = engine.organisation("org-b")
    before = _snapshot(engine, "org-a", call.id)
    for attempt in (
        lambda: other.answer(call.id, handler="x"),
        lambda: other.get(call.id),
        lambda: other.capture(call.id, {"caller_name": "x"}),
        lambda: other.close(call.id),
        lambda: other.find(call.reference),
    ):
        with pytest.raises(CallNotFound):
            attempt()
    assert _snapshot(engine, "org-a", call.id) == before
    with pytest.raises(UnknownOrganisation):
        engine.organisation("org-z")


# -- references, duplicates, addresses (5.2.2, 5.2.7, 7.11) ----------------------------------------


def test_a_call_is_found_by_its_reference_and_a_typo_is_caught(engine: Engine) -> None:
    call = engine.offer(REPAIRS)
    desk = engine.organisation("org-a")
    spoken = call.reference.lower().replace("-", " ")
    assert desk.find(spoken).id == call.id
    body, check = call.reference[:-1], call.reference[-1]
    wrong = body + ("A" if check != "A" else "B")
    with pytest.raises(CallNotFound):
        desk.find(wrong)


def test_references_are_unique(engine: Engine) -> None:
    refs = {engine.offer(REPAIRS).reference for _ in range(50)}
    assert len(refs) == 50


def test_a_repeat_call_is_flagged_as_a_duplicate(engine: Engine, clock: ManualClock) -> None:
    desk = engine.organisation("org-a")
    leak = {**HEATING, "repair": "leak"}
    first = _repair_call(engine, leak)
    assert desk.next_step(first).action_id == "refer-emergency"
    clock.advance(timedelta(minutes=30))
    second = _repair_call(
        engine, {**leak, "caller_name": "Anne Leigh", "address": "12A HIGH STREET"}
    )
    step = desk.next_step(second)
    assert step.duplicate_of == first
    assert step.action_id == "already-reported"  # rules can use the built-in `duplicate`


def test_the_gazetteer_gives_the_uprn_and_flags_addresses_outside_the_area(engine: Engine) -> None:
    desk = engine.organisation("org-a")
    call_id = _repair_call(engine, HEATING)
    assert desk.get(call_id).answers["uprn"] == 100000000001
    assert desk.get(call_id).answers["outside_area"] is False
    desk.next_step(call_id)
    desk.complete(call_id)
    referral = [m for m in desk.messages(call_id) if ":alert:" in m.idempotency_key]
    assert referral and all(m.message.meta["uprn"] == 100000000001 for m in referral)  # 7.11
    other = _repair_call(engine, {**HEATING, "postcode": "SW1A 1AA"})
    assert desk.get(other).answers["outside_area"] is True


def test_the_rota_cover_applies_at_christmas(engine: Engine) -> None:
    christmas_eve = datetime(2026, 12, 24, 20, 0, tzinfo=LONDON)
    call_id = _repair_call(engine, HEATING, at=christmas_eve)
    step = engine.organisation("org-a").next_step(call_id, at=christmas_eve)
    assert step.contact is not None and step.contact.name == "Rob Relief"


# -- audit (Appendix 2: all transactions are auditable) -------------------------------------------


def test_the_hash_chain_verifies_and_detects_tampering(engine: Engine) -> None:
    desk, call_id = _referred(engine)
    engine.tick()
    desk.close(call_id)
    assert audit.verify(engine.store).ok
    with engine.store.transaction() as conn:
        conn.execute(
            text(
                "UPDATE events SET payload = replace(payload, 'amy', 'bob') WHERE kind = 'call.answered'"
            )
        )
    report = audit.verify(engine.store)
    assert not report.ok
    assert "org-a" in str(report)


def test_a_call_records_the_versions_it_ran_under(engine: Engine) -> None:
    call = engine.offer(REPAIRS)
    desk = engine.organisation("org-a")
    org = engine.organisations["org-a"]
    offered = desk.events(call.id)[0]
    assert offered.payload["option_version"] == org.service_options["repairs"].version
    assert offered.payload["organisation_version"] == org.version


def test_a_message_with_no_channel_fails_visibly_and_escalation_still_runs(
    tmp_path: Path, clock: ManualClock
) -> None:
    # a host that configured no email channel: the referral's email fails for good at once and
    # is recorded; the acknowledgement timer still escalates (5.3.2)
    sms = Recorder("sms", [])
    with Engine.open(
        FIXTURES, f"sqlite:///{tmp_path / 'x.sqlite'}", clock=clock, channels={"sms": sms}
    ) as eng:
        call_id = _repair_call(eng, HEATING)
        desk = eng.organisation("org-a")
        desk.next_step(call_id)
        desk.complete(call_id)
        report = eng.tick()
        assert len(report.failed) == 1 and len(report.sent) == 2  # email failed; two SMS sent
        failed = [e for e in desk.events(call_id) if e.kind == "message.failed"]
        assert len(failed) == 1 and failed[0].payload["channel"] == "email"
        assert "no channel named 'email'" in failed[0].payload["error"]
        clock.advance(timedelta(minutes=15))
        eng.tick()
        assert "referral.escalated" in [e.kind for e in desk.events(call_id)]


def test_a_lone_worker_alert_escalates_through_management_until_acknowledged(
    engine: Engine, channels: dict[str, Recorder], clock: ManualClock
) -> None:
    desk, call = _start_visit(engine)
    clock.advance(timedelta(minutes=66))
    engine.tick()
    assert [m.recipient for m in _sent(channels)] == ["07700 900005"]  # team manager
    clock.advance(timedelta(minutes=15))
    engine.tick()
    assert [m.recipient for m in _sent(channels)][1:] == ["07700 900003"]  # then the director
    desk.acknowledge(call.id, by="dina")
    clock.advance(timedelta(hours=1))
    engine.tick()
    assert len(_sent(channels)) == 2
    kinds = [e.kind for e in desk.events(call.id)]
    assert kinds.count("lone_worker.alert") == 1 and kinds.count("referral.escalated") == 1


class GapRota:
    """A rota with nobody on repairs duty tonight (5.3.2: the referral cannot be made)."""

    def on_call(self, organisation_id: str, role: str, at: datetime) -> OnCallOfficer | None:
        people = {
            "repairs-manager": OnCallOfficer("max", "Max Manager", phone="07700 900002"),
            "duty-director": OnCallOfficer("dina", "Dina Director", phone="07700 900003"),
        }
        return people.get(role) if organisation_id == "org-a" else None


def test_when_nobody_holds_the_role_the_first_held_stage_is_alerted(
    tmp_path: Path, clock: ManualClock, channels: dict[str, Recorder]
) -> None:
    url = f"sqlite:///{tmp_path / 'gap.sqlite'}"
    with Engine.open(FIXTURES, url, clock=clock, channels=channels, rota=GapRota()) as eng:
        call_id = _repair_call(eng, HEATING)
        desk = eng.organisation("org-a")
        step = desk.next_step(call_id)
        assert step.contact is not None
        assert (step.contact.name, step.contact.role) == ("Max Manager", "repairs-manager")
        desk.complete(call_id)
        eng.tick()
        assert {m.recipient for m in channels["sms"].sent} == {"07700 900002", "+447700900123"}
        clock.advance(timedelta(minutes=15))
        eng.tick()
        assert "07700 900003" in {m.recipient for m in channels["sms"].sent}


def test_only_referrals_and_lone_workers_can_be_acknowledged(engine: Engine) -> None:
    call_id = _repair_call(engine, {**HEATING, "repair": "bins"})
    desk = engine.organisation("org-a")
    desk.next_step(call_id)
    desk.complete(call_id)
    with pytest.raises(InvalidTransition, match="cannot acknowledge"):
        desk.acknowledge(call_id, by="someone")


def test_live_service_serves_only_signed_off_versions_option_by_option(tmp_path: Path) -> None:
    """5.3.1: a script is not operational until the organisation has signed it off. An unsigned
    option is not served; every other option is (one unsigned option does not stop the rest)."""
    import shutil

    from sqlalchemy import func, select

    from oohcore.calls import calls
    from oohcore.engine import NotSignedOff
    from oohcore.rulesets.loader import load_organisation

    for name in ("org-a", "org-b"):
        shutil.copytree(FIXTURES / name, tmp_path / "orgs" / name)
    orgs, org = tmp_path / "orgs", tmp_path / "orgs" / "org-b"
    url = f"sqlite:///{tmp_path / 'live.sqlite'}"
    version = load_organisation(org).service_options["repairs"].version
    option = org / "options" / "repairs.yaml"
    with Engine.open(orgs, url, require_sign_off=True) as live:
        assert any(u.startswith("org-b/repairs ") for u in live.unsigned)
        with pytest.raises(NotSignedOff, match="org-b/repairs"):
            live.offer("0200 000 0001")
        with live.store.read() as conn:  # the refusal recorded nothing
            assert conn.execute(select(func.count()).select_from(calls)).scalar() == 0
    option.write_text(
        option.read_text() + f"sign_off:\n  by: J. Smith\n  on: 2026-11-20\n  version: {version}\n"
    )
    with Engine.open(orgs, url, require_sign_off=True) as live:
        assert live.offer("0200 000 0001").service_option == "repairs"
        assert not any(u.startswith("org-b/") for u in live.unsigned)
    option.write_text(option.read_text().replace("name: Repairs", "name: Repairs (changed)"))
    with Engine.open(orgs, url, require_sign_off=True) as live, pytest.raises(NotSignedOff):
        live.offer("0200 000 0001")  # any later edit needs a new sign-off


def test_the_script_shows_the_questions_that_apply_and_what_is_still_missing(
    engine: Engine,
) -> None:
    desk = engine.organisation("org-a")
    call_id = _repair_call(engine, {"caller_name": "Ann"})
    script = desk.script(call_id)
    fields = [q.field for q in script.questions]
    assert "outside_temp" not in fields  # asked only when repair is no_heating (ask_if)
    assert script.unanswered_essential == ("address", "repair")
    desk.capture(call_id, {"repair": "no_heating"})
    script = desk.script(call_id)
    assert "outside_temp" in [q.field for q in script.questions]
    assert script.unanswered_essential == ("address", "outside_temp")
