"""The signed webhook: the Standard Webhooks vector, the receiver's verify and replay window, and
the channel against a local receiver that verifies every request (spec 7.8, 7.9, 8.14)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from webhook_receiver import SECRET, WebhookReceiver

from oohcore.channels import Channel, DeliveryStatus
from oohcore.channels.testing import ChannelContract, sample_message
from oohcore.clock import ManualClock
from oohcore_webhook import (
    ReplayedWebhookError,
    ReplayGuard,
    WebhookChannel,
    WebhookConfig,
    WebhookVerificationError,
    sign,
    verify,
)

# the Standard Webhooks reference libraries' own test vector
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_NOW = datetime.fromtimestamp(VECTOR_TS, UTC)


def _headers(sig: str = VECTOR_SIG, ts: int = VECTOR_TS) -> dict[str, str]:
    return {"webhook-id": VECTOR_ID, "webhook-timestamp": str(ts), "webhook-signature": sig}


def test_sign_matches_the_conventions_vector_with_and_without_prefix() -> None:
    assert sign(SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG
    assert sign(SECRET.removeprefix("whsec_"), VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG


def test_verify_accepts_the_vector_and_headers_in_any_case() -> None:
    assert verify(SECRET, _headers(), VECTOR_BODY, now=VECTOR_NOW) == VECTOR_ID
    upper = {k.title(): v for k, v in _headers().items()}
    assert verify(SECRET, upper, VECTOR_BODY, now=VECTOR_NOW + timedelta(minutes=5)) == VECTOR_ID


@pytest.mark.parametrize(
    ("now", "words"),
    [
        (VECTOR_NOW + timedelta(minutes=5, seconds=1), "old"),
        (VECTOR_NOW - timedelta(minutes=5, seconds=1), "future"),
    ],
)
def test_outside_the_replay_window_is_refused(now: datetime, words: str) -> None:
    with pytest.raises(WebhookVerificationError, match=words):
        verify(SECRET, _headers(), VECTOR_BODY, now=now)


def test_a_tampered_body_a_wrong_secret_and_missing_headers_are_refused() -> None:
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(SECRET, _headers(), b'{"test": 2432232315}', now=VECTOR_NOW)
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(other, _headers(), VECTOR_BODY, now=VECTOR_NOW)
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(
            SECRET,
            _headers("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="),
            VECTOR_BODY,
            now=VECTOR_NOW,
        )
    headers = _headers()
    del headers["webhook-id"]
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(SECRET, headers, VECTOR_BODY, now=VECTOR_NOW)
    # an unsigned timestamp is not read: the signature is checked first
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(SECRET, _headers(ts="hello"), VECTOR_BODY, now=VECTOR_NOW)  # type: ignore[arg-type]


def test_one_good_signature_among_several_is_enough() -> None:
    sigs = " ".join(
        ["v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", "v2," + VECTOR_SIG[3:], VECTOR_SIG]
    )
    assert verify(SECRET, _headers(sigs), VECTOR_BODY, now=VECTOR_NOW) == VECTOR_ID
    only_v2 = "v2," + VECTOR_SIG[3:]
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, _headers(only_v2), VECTOR_BODY, now=VECTOR_NOW)


def test_the_replay_guard_refuses_an_id_already_accepted() -> None:
    guard = ReplayGuard()
    assert verify(SECRET, _headers(), VECTOR_BODY, now=VECTOR_NOW, replay_guard=guard)
    with pytest.raises(ReplayedWebhookError, match="already received"):
        verify(SECRET, _headers(), VECTOR_BODY, now=VECTOR_NOW, replay_guard=guard)


# -- the channel against the local receiver ---------------------------------------------------


class _ReceiverPeer:
    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver

    def received_keys(self) -> Sequence[str]:
        return [d.msg_id for d in self.receiver.deliveries]


def _channel(receiver: WebhookReceiver, clock: ManualClock, **kw: object) -> WebhookChannel:
    return WebhookChannel(url=receiver.url, secret=SECRET, clock=clock, **kw)


class TestWebhookContract(ChannelContract):
    recipient = "crm"
    logical_channel = "crm"
    secrets = (SECRET, SECRET.removeprefix("whsec_"))
    # the receiver drops a repeated webhook-id, as the convention asks

    @pytest.fixture
    def channel(self, receiver: WebhookReceiver, clock: ManualClock) -> Iterator[Channel]:
        ch = _channel(receiver, clock)
        yield ch
        ch.close()

    @pytest.fixture
    def peer(self, receiver: WebhookReceiver) -> _ReceiverPeer:
        return _ReceiverPeer(receiver)


def test_the_request_is_signed_as_the_convention_says(
    receiver: WebhookReceiver, clock: ManualClock
) -> None:
    ch = _channel(receiver, clock)
    message = sample_message("crm", channel="crm")
    assert ch.send(message).status is DeliveryStatus.SENT
    ch.close()
    (got,) = receiver.deliveries
    ts = got.headers["webhook-timestamp"]
    assert ts == str(int(clock.now().timestamp()))
    assert got.headers["webhook-id"] == message.idempotency_key
    # checked here with hmac directly, not with the module under test
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message.idempotency_key}.{ts}.".encode() + got.body, hashlib.sha256)
    assert got.headers["webhook-signature"] == "v1," + base64.b64encode(mac.digest()).decode()
    body = json.loads(got.body)
    assert body["type"] == "referral.alert" and body["timestamp"] == "2026-01-10T03:00:00Z"
    assert body["data"]["reference"] == "K7Q2M4"
    assert body["data"]["fields"]["uprn"] == 100023336956


def test_a_retry_after_a_lost_answer_is_dropped_by_the_receiver(
    receiver: WebhookReceiver, clock: ManualClock
) -> None:
    ch = _channel(receiver, clock)
    message = sample_message("crm", channel="crm")
    assert ch.send(message).status is DeliveryStatus.SENT
    clock.advance(timedelta(seconds=30))  # the outbox's retry: a new timestamp, the same id
    assert ch.send(message).status is DeliveryStatus.SENT
    ch.close()
    assert len(receiver.deliveries) == 1 and receiver.repeats == 1


def test_a_receiver_whose_clock_is_6_minutes_ahead_refuses_it(
    receiver: WebhookReceiver, clock: ManualClock
) -> None:
    ch = _channel(receiver, clock)
    message = sample_message("crm", channel="crm")
    receiver.now = lambda: clock.now() + timedelta(minutes=6)
    result = ch.send(message)
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE and "401" in (result.error or "")
    assert "old" in receiver.refusals[0] and receiver.deliveries == []


def test_a_receiver_with_another_secret_refuses_it(clock: ManualClock) -> None:
    other = "whsec_" + base64.b64encode(b"k" * 32).decode()
    with WebhookReceiver(other, clock.now) as receiver:
        ch = _channel(receiver, clock)
        result = ch.send(sample_message("crm", channel="crm"))
        ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "secret" in (result.error or "") and SECRET not in (result.error or "")


@pytest.mark.parametrize(
    ("status", "headers", "expected", "after"),
    [
        (410, {}, DeliveryStatus.PERMANENT_FAILURE, None),
        (400, {}, DeliveryStatus.PERMANENT_FAILURE, None),
        (429, {"Retry-After": "30"}, DeliveryStatus.RETRY, timedelta(seconds=30)),
        (
            503,
            {"Retry-After": "Sat, 10 Jan 2026 03:02:00 GMT"},
            DeliveryStatus.RETRY,
            timedelta(minutes=2),
        ),
        (500, {}, DeliveryStatus.RETRY, None),
        (301, {"Location": "https://elsewhere.example/"}, DeliveryStatus.PERMANENT_FAILURE, None),
    ],
)
def test_answers_map_to_sent_retry_permanent(
    receiver: WebhookReceiver,
    clock: ManualClock,
    status: int,
    headers: dict[str, str],
    expected: DeliveryStatus,
    after: timedelta | None,
) -> None:
    receiver.script.append((status, headers))
    ch = _channel(receiver, clock)
    result = ch.send(sample_message("crm", channel="crm"))
    ch.close()
    assert result.status is expected, result
    assert result.retry_after == after
    if status == 410:
        assert "retired" in (result.error or "")


def test_a_refused_connection_is_retried(receiver: WebhookReceiver, clock: ManualClock) -> None:
    receiver.stop()
    ch = _channel(receiver, clock)
    result = ch.send(sample_message("crm", channel="crm"))
    ch.close()
    assert result.status is DeliveryStatus.RETRY


def test_a_bad_secret_is_refused_without_showing_it() -> None:
    bad = "whsec_not*base64*at*all"
    with pytest.raises(ValidationError) as info:
        WebhookConfig(url="https://crm.example.gov.uk/hook", secret=bad)
    assert bad not in str(info.value) and "base64" in str(info.value)
    short = "whsec_" + base64.b64encode(b"short").decode()
    with pytest.raises(ValidationError, match="24 to 64 bytes"):
        WebhookConfig(url="https://crm.example.gov.uk/hook", secret=short)
    with pytest.raises(ValidationError, match="https"):
        WebhookConfig(url="http://crm.example.gov.uk/hook", secret=SECRET)


def test_oohcore_channels_lists_the_webhook_with_its_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from oohcore.cli import main

    assert main(["channels", "--json"]) == 0
    listed = {a["name"]: a for a in json.loads(capsys.readouterr().out)["adapters"]}
    entry = listed["webhook"]
    assert entry["factory"] == "oohcore_webhook.channel:WebhookChannel"
    assert entry["carries"] == ["crm", "feed"] and entry["receipts"] is False
    assert sorted(entry["config"]["required"]) == ["secret", "url"]
    assert entry["config"]["properties"]["secret"]["format"] == "password"
