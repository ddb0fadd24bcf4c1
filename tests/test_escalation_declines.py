"""Who may decline a referral, and how often (5.3.2, audit items 8-9): a decline counts once per
person per stage, only from someone alerted at the current stage or a holder of a manager
role, and is recorded with who; anyone else is refused and the escalation does not move.

org-a's repairs referral (tests/fixtures/engine): repairs-duty Rita 07700 900001, then
repairs-manager Max 07700 900002 (a manager role), then duty-director Dina 07700 900003;
team-manager Tess 07700 900005 holds a manager role off the chain. 20 Nov 2026 is a Friday."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from engine_support import FIXTURES, alert_recipients, refer_heating_call
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import DeclineRefused, Engine
from oohcore.engine.inbound import REPLY_LIMIT
from oohcore.vocabulary import EventKind

RITA, MAX, DINA = "07700900001", "07700900002", "07700900003"
KEY = "a-test-key-of-more-than-16-characters"


@pytest.fixture
def engine(
    tmp_path: Path,
    clock: ManualClock,
    channels: dict[str, MemoryChannel],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Engine]:
    shutil.copytree(FIXTURES, tmp_path / "orgs")
    org = tmp_path / "orgs" / "org-a" / "organisation.yaml"
    org.write_text(org.read_text() + "ack_links: {key_env: OOH_TEST_LINK_KEY, valid_for: 1h}\n")
    monkeypatch.setenv("OOH_TEST_LINK_KEY", KEY)
    url = f"sqlite:///{tmp_path / 'declines.sqlite'}"
    with Engine.open(tmp_path / "orgs", url, clock=clock, channels=channels) as eng:
        yield eng


def _alerted(channels: dict[str, MemoryChannel]) -> list[str]:
    """The referral alerts' recipients by their last ten digits (however a number is written)."""
    return ["0" + "".join(c for c in r if c.isdigit())[-10:] for r in alert_recipients(channels)]


def _declines(engine: Engine, call_id: str) -> list[tuple[str, int]]:
    return [
        (e.payload["by"], e.payload["stage"])
        for e in engine.organisation("org-a").events(call_id)
        if e.kind == EventKind.REFERRAL_DECLINED
    ]


def _stage(engine: Engine, call_id: str) -> int:
    return engine.organisation("org-a").referrals(call_id)[-1].stage


def test_one_officer_sending_no_eight_times_moves_the_referral_one_stage(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id, ref = refer_heating_call(engine)
    outcomes = []
    for _ in range(8):
        outcomes.append(engine.receive("org-a", "sms", RITA, f"NO {ref}"))
        clock.advance(timedelta(seconds=5))
    engine.tick()
    assert outcomes == ["decline"] + ["refused"] * 7
    assert _stage(engine, call_id) == 1
    assert _alerted(channels) == [RITA, MAX]  # Dina was never reached by Rita's texts
    assert _declines(engine, call_id) == [("rita", 0)]
    refused = [
        e.payload
        for e in engine.organisation("org-a").events(call_id)
        if e.kind == EventKind.INBOUND_RECEIVED and e.payload["outcome"] == "refused"
    ]
    assert len(refused) == 7 and all(p["officer"] == "rita" for p in refused)
    replies = [m.body for m in channels["sms"].messages if m.purpose == "reply"]
    # the decline is confirmed; the refusals are answered until the per-number limit on
    # answers is reached (a flood of texts costs the organisation nothing more)
    assert len(replies) == REPLY_LIMIT
    assert replies[0].startswith("Thank you: ") and "next on-call stage" in replies[0]
    # the refused ones get the neutral answer: no word of stages, nothing moved
    assert all("next on-call stage" not in body for body in replies[1:])


def test_a_decline_by_api_from_someone_not_alerted_is_refused_and_changes_nothing(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    call_id, _ = refer_heating_call(engine)
    desk = engine.organisation("org-a")
    before = desk.events(call_id)
    for by in ("anyone", "dina"):  # a stranger; an officer on the chain not alerted yet
        with pytest.raises(DeclineRefused, match="not alerted"):
            desk.decline(call_id, by=by)
    assert desk.events(call_id) == before
    desk.decline(call_id, by="rita")
    with pytest.raises(DeclineRefused, match="not alerted"):
        desk.decline(call_id, by="rita")  # Max is alerted now, not Rita
    engine.tick()
    assert _stage(engine, call_id) == 1
    assert _alerted(channels) == [RITA, MAX]
    assert _declines(engine, call_id) == [("rita", 0)]


def test_a_manager_may_decline_for_the_alerted_officer_once_a_stage(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    call_id, _ = refer_heating_call(engine)
    desk = engine.organisation("org-a")
    desk.decline(call_id, by="tess")  # team-manager: a manager role, not on this chain
    with pytest.raises(DeclineRefused, match="already declined"):
        desk.decline(call_id, by="tess")  # for an alerted officer once in the referral
    desk.decline(call_id, by="max")  # now alerted at stage 1 (and a manager)
    engine.tick()
    assert _alerted(channels) == [RITA, MAX, DINA]
    assert _declines(engine, call_id) == [("tess", 0), ("max", 1)]


def test_the_final_holder_declining_cannot_spin_the_chain(
    engine: Engine, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    call_id, ref = refer_heating_call(engine)
    for _ in range(2):
        clock.advance(timedelta(minutes=16))
        engine.tick()
    assert _alerted(channels) == [RITA, MAX, DINA]
    outcomes = [engine.receive("org-a", "sms", DINA, f"NO {ref}") for _ in range(5)]
    engine.tick()
    assert outcomes == ["decline"] + ["refused"] * 4
    # her decline passes the referral on to the last resort, not back to her
    assert _alerted(channels) == [RITA, MAX, DINA, "07700900099"]
    assert _declines(engine, call_id) == [("dina", 2)]


def test_a_decline_link_for_someone_not_alerted_does_not_move_the_referral(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    call_id, _ = refer_heating_call(engine)
    desk = engine.organisation("org-a")
    engine.follow_link(desk.ack_link(call_id, officer="dina", action="decline"))
    engine.tick()
    assert _stage(engine, call_id) == 0
    assert _alerted(channels) == [RITA]
    used = [e.payload for e in desk.events(call_id) if e.kind == EventKind.REFERRAL_LINK_USED]
    assert [u["outcome"] for u in used] == ["refused"]
