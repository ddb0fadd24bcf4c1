"""Acknowledgement at every point of an escalation (issue 8 item 6, 5.3.2): by API, by SMS
reply carrying the reference (``engine.receive``), by a one-time signed link; declining
("can't attend"); a restart mid-escalation.

org-a's repairs referral (tests/fixtures/engine): repairs-duty Rita 07700 900001 (15m), then
repairs-manager Max 07700 900002 (15m), then duty-director Dina 07700 900003 (15m), then Dina
re-alerted on the backoff (15m doubling to 1h). Times are Europe/London; 20 Nov 2026 is a
Friday (GMT)."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from engine_support import (
    CHANNELS,
    FIXTURES,
    alert_recipients,
    refer_heating_call,
)
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import Engine, InvalidTransition
from oohcore.engine.links import LinkRefused
from oohcore.vocabulary import EventKind

RITA, MAX, DINA = "07700 900001", "07700 900002", "07700 900003"
KEY = "a-test-key-of-more-than-16-characters"


@pytest.fixture
def orgs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "orgs")
    org = tmp_path / "orgs" / "org-a" / "organisation.yaml"
    org.write_text(org.read_text() + "ack_links: {key_env: OOH_TEST_LINK_KEY, valid_for: 1h}\n")
    monkeypatch.setenv("OOH_TEST_LINK_KEY", KEY)
    return tmp_path / "orgs"


def _open(
    orgs: Path, tmp_path: Path, clock: ManualClock, chans: dict[str, MemoryChannel]
) -> Engine:
    url = f"sqlite:///{tmp_path / 'ack.sqlite'}"
    return Engine.open(orgs, url, clock=clock, channels=chans)


@pytest.fixture
def engine(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> Iterator[Engine]:
    eng = _open(orgs, tmp_path, clock, channels)
    yield eng
    eng.close()


def _replies(channels: dict[str, MemoryChannel]) -> list[tuple[str, str]]:
    return [(m.recipient, m.body) for m in channels["sms"].messages if m.purpose == "reply"]


def _wait(engine: Engine, clock: ManualClock, minutes: int) -> None:
    clock.advance(timedelta(minutes=minutes))
    engine.tick()


def _state(engine: Engine, call_id: str) -> str:
    return engine.organisation("org-a").referrals(call_id)[-1].state


# -- acknowledgement at each point of the chain ---------------------------------------------------


@pytest.mark.parametrize(
    ("waits", "alerted", "by"),
    [
        (0, [RITA], RITA),  # stage 1: the rota role
        (1, [RITA, MAX], MAX),  # stage 2: escalation to the manager
        (2, [RITA, MAX, DINA], DINA),  # stage 3: the named last stage
        (3, [RITA, MAX, DINA, DINA], DINA),  # exhausted: the holder re-alerted
    ],
)
def test_an_sms_reply_acknowledges_at_each_point_and_escalation_stops(
    engine: Engine,
    clock: ManualClock,
    channels: dict[str, MemoryChannel],
    waits: int,
    alerted: list[str],
    by: str,
) -> None:
    call_id, ref = refer_heating_call(engine)
    for _ in range(waits):
        _wait(engine, clock, 16)
    assert alert_recipients(channels) == alerted
    assert engine.receive("org-a", "sms", by.replace(" ", ""), f"ack {ref}") == "ack"
    engine.tick()
    assert _state(engine, call_id) == "acknowledged"
    assert _replies(channels)[-1] == (by.replace(" ", ""), f"Thank you: {ref} is acknowledged.")
    for _ in range(4):
        _wait(engine, clock, 60)
    assert alert_recipients(channels) == alerted  # nothing more
    acks = [
        e for e in engine.organisation("org-a").events(call_id) if e.kind == "referral.acknowledged"
    ]
    assert [(e.payload["how"], e.payload["by"]) for e in acks] == [
        ("sms", {RITA: "rita", MAX: "max", DINA: "dina"}[by])
    ]


def test_the_exhausted_holder_is_re_alerted_on_the_backoff_each_recorded(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id, _ = refer_heating_call(engine)
    seen: list[int] = []
    for minute in range(1, 6 * 60 + 1):  # six hours, a tick a minute
        before = len(alert_recipients(channels))
        _wait(engine, clock, 1)
        if len(alert_recipients(channels)) > before:
            seen.append(minute)
    # stages at 0, 15, 30; Dina's stage waits 15m, then her re-alerts wait 15m, 30m, 1h, 1h...
    assert seen[:6] == [15, 30, 45, 60, 90, 150]
    assert all(b - a == 60 for a, b in itertools.pairwise(seen[5:]))
    assert alert_recipients(channels)[2:] == [DINA] * (len(seen) - 1)
    repeats = [
        e
        for e in engine.organisation("org-a").events(call_id)
        if e.kind == "referral.escalated" and e.payload["repeat"]
    ]
    assert len(repeats) == len(seen) - 2
    assert len(seen) == 9  # not every 15 minutes all night: 150, 210, 270, 330


def test_an_api_acknowledgement_at_the_second_stage(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id, _ = refer_heating_call(engine)
    _wait(engine, clock, 16)
    engine.organisation("org-a").acknowledge(call_id, by="max")
    _wait(engine, clock, 120)
    assert alert_recipients(channels) == [RITA, MAX]


# -- SMS replies that do not acknowledge ------------------------------------------------------------


def test_a_reply_from_someone_not_on_the_chain_is_recorded_and_escalation_goes_on(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id, ref = refer_heating_call(engine)
    assert engine.receive("org-a", "sms", "07700 999999", f"ACK {ref}") == "off_chain"
    engine.tick()
    assert _state(engine, call_id) == "alerting"
    assert _replies(channels) == []  # a stranger is not answered (engine/inbound.py)
    _wait(engine, clock, 16)
    assert alert_recipients(channels) == [RITA, MAX]
    received = [
        e for e in engine.organisation("org-a").events(call_id) if e.kind == "inbound.received"
    ]
    assert [e.payload["outcome"] for e in received] == ["off_chain"]


@pytest.mark.parametrize("text", ["ACK ZZZ-ZZZ-Z", "hello?", "", "x" * 5000, "ACK B4E-JJB-V"])
def test_an_unknown_reference_or_text_is_recorded_and_answered_politely(
    engine: Engine, channels: dict[str, MemoryChannel], text: str
) -> None:
    """Answered when the number is one the organisation is working with (an alerted officer:
    the neutral answer); recorded and not answered from a stranger (engine/inbound.py)."""
    refer_heating_call(engine)
    assert engine.receive("org-a", "sms", "07700 999999", text) == "unmatched"
    assert engine.receive("org-a", "sms", RITA, text) == "unmatched"
    engine.tick()
    [(to, body)] = _replies(channels)
    assert to == RITA and body.startswith("Sorry, we could not match")
    with engine.store.read() as conn:
        from oohcore.audit import read as audit_read

        kinds = [e.kind for e in audit_read.events_for_organisation(conn, "org-a")]
    assert kinds.count(EventKind.INBOUND_RECEIVED) == 2


# -- declining -----------------------------------------------------------------------------------


def test_declining_by_sms_moves_to_the_next_stage_at_once(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id, ref = refer_heating_call(engine)
    assert engine.receive("org-a", "sms", RITA, f"cant attend {ref}") == "decline"
    engine.tick()
    assert alert_recipients(channels) == [RITA, MAX]  # no wait
    kinds = [e.kind for e in engine.organisation("org-a").events(call_id)]
    assert EventKind.REFERRAL_DECLINED in kinds


def test_declining_by_api_moves_to_the_next_stage_at_once(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    call_id, _ = refer_heating_call(engine)
    desk = engine.organisation("org-a")
    desk.decline(call_id, by="rita")
    engine.tick()
    assert alert_recipients(channels) == [RITA, MAX]
    desk.decline(call_id, by="max")
    engine.tick()
    assert alert_recipients(channels) == [RITA, MAX, DINA]
    desk.acknowledge(call_id, by="dina")
    with pytest.raises(InvalidTransition):
        desk.decline(call_id, by="dina")


# -- signed links ----------------------------------------------------------------------------------


def test_a_signed_link_acknowledges_once(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id, _ = refer_heating_call(engine)
    desk = engine.organisation("org-a")
    token = desk.ack_link(call_id, officer="rita")
    engine.follow_link(token)
    assert _state(engine, call_id) == "acknowledged"
    with pytest.raises(LinkRefused, match="used before"):
        engine.follow_link(token)
    _wait(engine, clock, 60)
    assert alert_recipients(channels) == [RITA]


def test_an_expired_or_altered_link_is_refused_and_changes_nothing(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id, _ = refer_heating_call(engine)
    desk = engine.organisation("org-a")
    token = desk.ack_link(call_id, officer="rita")
    payload, mac = token.split(".")
    with pytest.raises(LinkRefused, match="signature"):
        engine.follow_link(f"{payload}.{mac[:-2]}AA")
    with pytest.raises(LinkRefused):
        engine.follow_link("not a token")
    clock.advance(timedelta(minutes=61))  # valid_for: 1h
    with pytest.raises(LinkRefused, match="expired"):
        engine.follow_link(token)
    assert _state(engine, call_id) == "alerting"


def test_a_decline_link_moves_on_and_a_link_for_someone_off_the_chain_does_not_stop_it(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    call_id, _ = refer_heating_call(engine)
    desk = engine.organisation("org-a")
    engine.follow_link(desk.ack_link(call_id, officer="stranger"))
    assert _state(engine, call_id) == "alerting"
    engine.follow_link(desk.ack_link(call_id, officer="rita", action="decline"))
    engine.tick()
    assert alert_recipients(channels) == [RITA, MAX]


# -- a restart mid-escalation ---------------------------------------------------------------------


def test_a_restart_mid_escalation_carries_on_and_an_sms_ack_still_matches(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    engine = _open(orgs, tmp_path, clock, channels)
    call_id, ref = refer_heating_call(engine)
    _wait(engine, clock, 16)
    engine.close()
    again = {name: MemoryChannel() for name in CHANNELS}
    clock.advance(timedelta(minutes=16))
    with _open(orgs, tmp_path, clock, again) as engine:
        engine.tick()
        assert alert_recipients(again) == [DINA]  # the third stage, from the stored timer
        assert engine.receive("org-a", "sms", DINA, ref) == "ack"
        _wait(engine, clock, 120)
        assert alert_recipients(again) == [DINA]
        assert _state(engine, call_id) == "acknowledged"
