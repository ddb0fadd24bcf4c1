"""What a stranger can do from outside (5.3.2): signed links that sign only what they can carry
back and refuse every malformed token with ``LinkRefused``; inbound texts answered only as
``oohcore.engine.inbound`` says (nothing to a stranger, one neutral answer whether or not a
reference exists, a per-number limit kept in the store).

org-a's repairs referral (tests/fixtures/engine): Rita 07700 900001 is alerted first."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_support import CHANNELS, FIXTURES, FRIDAY_EVENING, refer_heating_call
from oohcore.audit import model as audit_model
from oohcore.audit import read as audit_read
from oohcore.channels.local import MemoryChannel
from oohcore.clock import ManualClock
from oohcore.engine import Engine, InvalidArgument, links
from oohcore.engine.inbound import NEUTRAL_ANSWER, REPLY_LIMIT, REPLY_WINDOW
from oohcore.engine.links import MAX_TOKEN, LinkRefused

RITA, STRANGER = "07700 900001", "07700 999999"
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
    return Engine.open(orgs, f"sqlite:///{tmp_path / 'in.sqlite'}", clock=clock, channels=chans)


@pytest.fixture
def engine(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> Iterator[Engine]:
    eng = _open(orgs, tmp_path, clock, channels)
    yield eng
    eng.close()


def _events(engine: Engine) -> list[audit_model.EventRow]:
    with engine.store.read() as conn:
        return list(audit_read.events_for_organisation(conn, "org-a"))


def _answers(channels: dict[str, MemoryChannel], to: str | None = None) -> list[str]:
    return [
        m.body
        for m in channels["sms"].messages
        if m.purpose == "reply" and (to is None or m.recipient == to)
    ]


# -- signed links ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("officer", "action", "argument"),
    [
        (None, "ack", "officer"),
        (123, "ack", "officer"),
        ("ri\x00ta", "ack", "officer"),
        ("r" * 5000, "ack", "officer"),
        ("", "ack", "officer"),
        ("rita\n", "ack", "officer"),
        ("rita", "delete", "action"),
        ("rita", None, "action"),
    ],
)
def test_ack_link_signs_only_a_named_officer_and_a_known_action(
    engine: Engine, officer: object, action: object, argument: str
) -> None:
    call_id, _ = refer_heating_call(engine)
    before = len(_events(engine))
    with pytest.raises(InvalidArgument) as caught:
        engine.organisation("org-a").ack_link(call_id, officer=officer, action=action)  # type: ignore[arg-type]
    assert caught.value.argument == argument
    assert len(_events(engine)) == before


def test_a_non_ascii_or_nested_token_is_refused_as_a_link(engine: Engine) -> None:
    call_id, _ = refer_heating_call(engine)
    token = engine.organisation("org-a").ack_link(call_id, officer="rita")
    payload, mac = token.split(".")
    nested = base64.urlsafe_b64encode(b"[" * 1500).decode().rstrip("=")
    for bad in (f"{payload}.{mac[:-1]}é", f"{payload}é.{mac}", f"{nested}.{mac}", None, 42):
        with pytest.raises(LinkRefused):
            engine.follow_link(bad)  # type: ignore[arg-type]
    assert engine.organisation("org-a").referrals(call_id)[-1].state == "alerting"


def _token_like(fields: dict[str, object], mac: str) -> str:
    body = json.dumps(fields).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + mac


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


def _signed_elsewhere(mac: str) -> str:
    """A well-formed payload of org-a (signed with another key) followed by ``mac``."""
    token = links.LinkToken(
        "org-a", "r1", "u1", "rita", "ack", FRIDAY_EVENING + timedelta(hours=1), "n1"
    )
    return links.sign(b"another-key-of-16-characters", token).split(".")[0] + "." + mac


_TOKENS = st.one_of(
    st.builds(_signed_elsewhere, st.text(max_size=60)),
    st.text(max_size=MAX_TOKEN + 10),
    st.builds(lambda a, b: f"{a}.{b}", st.text(max_size=200), st.text(max_size=60)),
    st.builds(
        _token_like,
        st.fixed_dictionaries(
            {"o": st.just("org-a"), "r": _JSON, "u": _JSON, "b": _JSON, "a": _JSON, "e": _JSON},
            optional={"n": _JSON},
        ),
        st.text(max_size=50),
    ),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(token=_TOKENS)
def test_follow_link_refuses_any_text_with_link_refused_only(engine: Engine, token: str) -> None:
    """Whatever an opened URL carries, the answer is LinkRefused, nothing else, and nothing is
    recorded (no token made here carries a valid signature)."""
    with pytest.raises(LinkRefused):
        engine.follow_link(token)


# -- inbound texts -------------------------------------------------------------------------------


def test_a_stranger_is_recorded_and_not_answered_whether_or_not_the_reference_exists(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    call_id, ref = refer_heating_call(engine)
    assert engine.receive("org-a", "sms", STRANGER, f"ACK {ref}") == "off_chain"
    assert engine.receive("org-a", "sms", "07700 999998", "ACK B4E-JJB-V") == "unmatched"
    engine.tick()
    assert _answers(channels) == []
    received = [e for e in _events(engine) if e.kind == "inbound.received"]
    assert [e.payload["answered"] for e in received] == [False, False]
    assert engine.organisation("org-a").referrals(call_id)[-1].state == "alerting"


def test_an_alerted_officer_gets_one_neutral_answer_whatever_reference_they_quote(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    """Rita, alerted for an open referral, mistypes: the answer is the same for a reference
    that exists (another call's) and one that does not, and does not name either."""
    other = engine.offer("0100 000 0002", caller_number="07700900124")
    refer_heating_call(engine)
    assert engine.receive("org-a", "sms", RITA, f"ACK {other.reference}") == "not_open"
    assert engine.receive("org-a", "sms", RITA, "ACK B4E-JJB-V") == "unmatched"
    engine.tick()
    assert _answers(channels, RITA) == [NEUTRAL_ANSWER, NEUTRAL_ANSWER]
    assert other.reference not in NEUTRAL_ANSWER


def test_an_alerted_officer_gets_the_specific_answer_and_confirmations(
    engine: Engine, channels: dict[str, MemoryChannel]
) -> None:
    _, ref = refer_heating_call(engine)
    assert engine.receive("org-a", "sms", RITA, f"ACK {ref}") == "ack"
    assert engine.receive("org-a", "sms", RITA, f"ACK {ref}") == "not_open"
    engine.tick()
    assert _answers(channels, RITA) == [
        f"Thank you: {ref} is acknowledged.",
        f"Thank you. {ref} needs no reply now; your message is recorded.",
    ]


def test_answers_to_one_number_are_limited_in_the_store_across_a_restart(
    orgs: Path, tmp_path: Path, clock: ManualClock, channels: dict[str, MemoryChannel]
) -> None:
    engine = _open(orgs, tmp_path, clock, channels)
    _, ref = refer_heating_call(engine)
    for _ in range(REPLY_LIMIT):
        engine.receive("org-a", "sms", RITA, "hello?")
    engine.close()
    channels = {name: MemoryChannel() for name in CHANNELS}  # the first ones closed with it
    with _open(orgs, tmp_path, clock, channels) as engine:
        # written another way, the same number: still over its limit after the restart
        for sender in ("+44 7700 900001", "447700900001", RITA):
            assert engine.receive("org-a", "sms", sender, "what?") == "unmatched"
        engine.tick()
        assert _answers(channels) == [NEUTRAL_ANSWER] * REPLY_LIMIT
        received = [e for e in _events(engine) if e.kind == "inbound.received"]
        assert [e.payload["answered"] for e in received] == [True] * REPLY_LIMIT + [False] * 3
        clock.advance(REPLY_WINDOW)  # a new hour: answered again, up to the limit
        for _ in range(REPLY_LIMIT + 1):
            engine.receive("org-a", "sms", RITA, "hello?")
        engine.tick()
        assert len(_answers(channels, RITA)) == 2 * REPLY_LIMIT
        # an acknowledgement is confirmed even past the limit of its number
        assert engine.receive("org-a", "sms", RITA, f"ACK {ref}") == "ack"
        engine.tick()
        assert _answers(channels, RITA)[-1] == f"Thank you: {ref} is acknowledged."
