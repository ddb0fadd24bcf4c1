"""The Notify channel against a local fake Notify server (JWT checked, Notify's error bodies)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest

from oohcore.channels import (
    Channel,
    ChannelError,
    DeliveryStatus,
    OutboundMessage,
    load_channels,
)
from oohcore.channels.sms import measure
from oohcore.channels.testing import ChannelContract, sample_message
from oohcore.vocabulary import MessagePurpose
from oohcore_notify import NotifyChannel, NotifyConfig, NotifyEmailChannel
from oohcore_notify.testing import FakeNotify

SECRET = "9f8e7d6c-2222-4b3a-8c9d-1e2f3a4b5c6d"  # the fake's (see conftest)
PHONE = "07700900123"


class TestNotifySmsContract(ChannelContract):
    recipient = PHONE
    secrets = (SECRET,)

    @pytest.fixture
    def channel(self, sms_channel: NotifyChannel) -> NotifyChannel:
        return sms_channel

    @pytest.fixture
    def peer(self, fake_notify: FakeNotify) -> FakeNotify:
        return fake_notify


class TestNotifyEmailContract(ChannelContract):
    recipient = "duty.officer@example.gov.uk"
    logical_channel = "email"
    secrets = (SECRET,)

    @pytest.fixture
    def channel(self, make_config: Callable[..., NotifyConfig]) -> Iterator[Channel]:
        channel = NotifyEmailChannel(make_config())
        yield channel
        channel.close()

    @pytest.fixture
    def peer(self, fake_notify: FakeNotify) -> FakeNotify:
        return fake_notify


def _message(**changes: Any) -> OutboundMessage:
    """The kit's referral alert, with case fields or message attributes changed."""
    base = sample_message(PHONE)
    fields = {name: changes.pop(name) for name in list(changes) if name in base.fields}
    return replace(base, fields={**base.fields, **fields}, **changes)


def test_both_channels_register_under_their_names() -> None:
    factories = load_channels()
    assert factories["notify"] is NotifyChannel
    assert factories["notify-email"] is NotifyEmailChannel


def test_the_channel_declares_notify_s_limits(sms_channel: NotifyChannel) -> None:
    info = sms_channel.info
    assert info.carries == frozenset({"sms"}) and info.contact_field == "phone"
    assert info.max_body == 918 and info.receipts
    assert info.rate_limit == 50.0  # 3,000 a minute
    assert info.config is NotifyConfig
    assert info.requires == ("notifications_python_client",)


def test_the_reference_is_the_idempotency_key_and_the_text_follows_5_2_5(
    sms_channel: NotifyChannel, fake_notify: FakeNotify
) -> None:
    message = _message(idempotency_key="referral:call-1:stage-0")
    result = sms_channel.send(message)
    assert result.status is DeliveryStatus.SENT
    [sent] = fake_notify.notifications
    assert result.provider_ref == sent.id
    assert sent.reference == "referral:call-1:stage-0"
    assert sent.template_id == fake_notify.sms_template_id
    assert sent.body.split("\n") == [
        "Ann Lee",
        "12 Heron Way, Example Town EX1 2AB",
        "07700 900123",
        "No heating, elderly resident, boiler showing fault E119",
        "Ref K7Q2M4",
    ]


def test_a_long_referral_is_shortened_to_the_budget_with_the_reference_intact(
    fake_notify: FakeNotify, make_config: Callable[..., NotifyConfig]
) -> None:
    details = "Water pouring through the ceiling of the flat below, electrics tripping, " * 5
    channel = NotifyChannel(make_config(max_fragments=2, sms_prefix="Example Borough"))
    result = channel.send(_message(details=details))
    assert result.status is DeliveryStatus.SENT
    [sent] = fake_notify.notifications
    assert sent.body.endswith("...\nRef K7Q2M4")
    assert sent.body.startswith("Ann Lee\n12 Heron Way")
    # as the phone receives it: the service name in front, two fragments at most
    assert measure(sent.body, prefix="Example Borough").fragments == 2


def test_fixed_template_text_counts_in_the_budget(fake_notify: FakeNotify) -> None:
    template_id = "5d9c3f0e-3333-4a2b-9c8d-7e6f5a4b3c2d"
    fake_notify.sms_templates[template_id] = "OOH referral. Reply ACK to accept.\n((body))"
    config = NotifyConfig(
        api_key=fake_notify.api_key,
        base_url=fake_notify.base_url,
        sms_template_id=template_id,
        sms_template="OOH referral. Reply ACK to accept.\n((body))",
        max_fragments=1,
    )
    channel = NotifyChannel(config)
    assert channel.send(_message(details="x " * 100)).status is DeliveryStatus.SENT
    [sent] = fake_notify.notifications
    assert sent.body.startswith("OOH referral. Reply ACK to accept.\nAnn Lee")
    assert measure(sent.body).fragments == 1 and sent.body.endswith("Ref K7Q2M4")


def test_a_caller_text_is_sent_as_written_and_one_over_918_is_refused_unsent(
    sms_channel: NotifyChannel, fake_notify: FakeNotify
) -> None:
    text = "Thank you for your call. An officer will visit within 4 hours. Ref K7Q2M4"
    ok = sms_channel.send(_message(purpose=MessagePurpose.CALLER_SMS, body=text))
    assert ok.status is DeliveryStatus.SENT
    assert fake_notify.notifications[0].body == text
    before = len(fake_notify.requests)
    too_long = sms_channel.send(
        _message(purpose=MessagePurpose.CALLER_SMS, body="a" * 919, idempotency_key="long")
    )
    assert too_long.status is DeliveryStatus.PERMANENT_FAILURE
    assert "919 characters" in (too_long.error or "")
    assert len(fake_notify.requests) == before  # not sent


def test_email_carries_subject_and_body(
    fake_notify: FakeNotify, make_config: Callable[..., NotifyConfig]
) -> None:
    channel = NotifyEmailChannel(make_config())
    message = sample_message("duty.officer@example.gov.uk", channel="email")
    assert channel.send(message).status is DeliveryStatus.SENT
    [sent] = fake_notify.notifications
    assert sent.type == "email" and sent.subject == "Housing repairs: K7Q2M4"
    assert sent.body == message.body and sent.reference == message.idempotency_key


def test_a_bad_number_is_permanent(sms_channel: NotifyChannel, fake_notify: FakeNotify) -> None:
    result = sms_channel.send(sample_message("01632 960000"))  # a landline
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert result.error == (
        "Notify refused the message (400 ValidationError: phone_number Not a UK mobile number)"
    )
    assert fake_notify.notifications == []


def test_every_request_carries_a_jwt_the_server_checks(fake_notify: FakeNotify) -> None:
    wrong = f"oohcore-test-{fake_notify.service_id}-00000000-0000-4000-8000-000000000000"
    channel = NotifyChannel(
        NotifyConfig(
            api_key=wrong,
            base_url=fake_notify.base_url,
            sms_template_id=fake_notify.sms_template_id,
        )
    )
    result = channel.send(sample_message(PHONE))
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "403 AuthError: Invalid token: signature" in (result.error or "")
    assert "check this organisation's Notify api_key" in (result.error or "")
    assert "00000000-0000-4000-8000-000000000000" not in (result.error or "")
    assert fake_notify.notifications == []


def test_a_5xx_is_retried_and_in_doubt_so_the_retry_looks_the_reference_up_first(
    sms_channel: NotifyChannel, fake_notify: FakeNotify
) -> None:
    fake_notify.fail_next(1, status=502)
    message = sample_message(PHONE)
    first = sms_channel.send(message)
    assert first.status is DeliveryStatus.RETRY and first.retry_after is None
    assert "502 Exception: Internal server error" in (first.error or "")
    second = sms_channel.send(message)
    assert second.status is DeliveryStatus.SENT and not second.duplicate
    assert fake_notify.requests[-2:] == [
        ("GET", "/v2/notifications"),
        ("POST", "/v2/notifications/sms"),
    ]


def test_a_429_is_retried_after_what_notify_asked(
    sms_channel: NotifyChannel, fake_notify: FakeNotify
) -> None:
    fake_notify.limit_next(1, retry_after=42)
    result = sms_channel.send(sample_message(PHONE))
    assert result.status is DeliveryStatus.RETRY
    assert result.retry_after is not None and result.retry_after.total_seconds() == 42
    assert "429 RateLimitError" in (result.error or "")
    fake_notify.limit_next(1, retry_after=None)
    assert sms_channel.send(sample_message(PHONE)).retry_after is None


def test_a_refused_connection_is_retried(
    sms_channel: NotifyChannel, fake_notify: FakeNotify
) -> None:
    fake_notify.refuse_connections()
    message = sample_message(PHONE)
    result = sms_channel.send(message)
    assert result.status is DeliveryStatus.RETRY
    assert result.error == "no answer from Notify while sending (ConnectionError)"
    fake_notify.accept_connections()
    assert sms_channel.send(message).status is DeliveryStatus.SENT
    assert fake_notify.received_keys() == [message.idempotency_key]


def test_a_timeout_after_notify_accepted_does_not_send_it_twice(
    fake_notify: FakeNotify, make_config: Callable[..., NotifyConfig]
) -> None:
    channel = NotifyChannel(make_config(timeout_seconds=0.3))
    message = sample_message(PHONE)
    fake_notify.stall_next(1)
    first = channel.send(message)
    fake_notify.release()
    assert first.status is DeliveryStatus.RETRY
    assert "ReadTimeout" in (first.error or "")
    assert fake_notify.received_keys() == [message.idempotency_key]  # Notify has it
    second = channel.send(message)
    assert second.status is DeliveryStatus.SENT and second.duplicate
    assert second.provider_ref == fake_notify.notifications[0].id
    assert fake_notify.received_keys() == [message.idempotency_key]  # still once
    assert [m for m, _ in fake_notify.requests].count("POST") == 1
    channel.close()


def test_a_lookup_that_fails_does_not_send_blind(
    fake_notify: FakeNotify, make_config: Callable[..., NotifyConfig]
) -> None:
    channel = NotifyChannel(make_config(timeout_seconds=0.3))
    message = sample_message(PHONE)
    fake_notify.stall_next(1)
    channel.send(message)
    fake_notify.release()
    fake_notify.fail_next(1)  # the look-up fails
    result = channel.send(message)
    assert result.status is DeliveryStatus.RETRY and "while looking up" in (result.error or "")
    assert len(fake_notify.notifications) == 1
    assert channel.send(message).duplicate
    channel.close()


@dataclass(frozen=True)
class _Retried(OutboundMessage):
    attempt: int = 2  # what the outbox would pass on a second attempt


def test_a_second_attempt_or_reconcile_always_looks_up_before_sending(
    fake_notify: FakeNotify, make_config: Callable[..., NotifyConfig]
) -> None:
    message = sample_message(PHONE)
    # another process sent it and crashed before the outbox recorded it
    other = NotifyChannel(make_config())
    assert other.send(message).status is DeliveryStatus.SENT
    fresh = NotifyChannel(make_config())
    retried = _Retried(**{f: getattr(message, f) for f in message.__dataclass_fields__})
    assert fresh.send(retried).duplicate
    always = NotifyChannel(make_config(reconcile="always"))
    assert always.send(message).duplicate
    assert fake_notify.received_keys() == [message.idempotency_key]
    # a first attempt of a new key with reconcile="always" costs one look-up, then sends
    assert always.send(sample_message(PHONE)).status is DeliveryStatus.SENT
    assert fake_notify.requests[-2][0] == "GET"


def test_one_client_per_thread(make_config: Callable[..., NotifyConfig]) -> None:
    from notifications_python_client.notifications import NotificationsAPIClient

    made: list[Any] = []

    def factory(config: NotifyConfig) -> Any:
        client = NotificationsAPIClient(config.api_key.get_secret_value(), base_url=config.base_url)
        made.append(client)
        return client

    channel = NotifyChannel(make_config(), client_factory=factory)
    threads = [
        threading.Thread(target=channel.send, args=(sample_message(PHONE),)) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    channel.send(sample_message(PHONE))
    channel.send(sample_message(PHONE))
    assert len(made) == 4  # three threads and this one
    channel.close()
    with pytest.raises(ChannelError, match="closed"):
        channel.send(sample_message(PHONE))


def test_configuration_mistakes_are_named_and_the_key_never_shown(fake_notify: FakeNotify) -> None:
    with pytest.raises(ChannelError) as bad_key:
        NotifyChannel(
            {"api_key": "not-a-key-sekrit", "sms_template_id": fake_notify.sms_template_id}
        )
    assert "not a GOV.UK Notify API key" in str(bad_key.value)
    assert "sekrit" not in str(bad_key.value)
    with pytest.raises(ChannelError) as bad_url:
        NotifyChannel(
            {
                "api_key": fake_notify.api_key,
                "base_url": "https://api.notifications.service.gov.uk/v2",
                "sms_template_id": fake_notify.sms_template_id,
            }
        )
    assert "base_url: Value error, base_url must be a scheme and host only" in str(bad_url.value)
    assert SECRET not in str(bad_url.value)
    with pytest.raises(ChannelError, match="max_fragments"):
        NotifyChannel(
            {
                "api_key": fake_notify.api_key,
                "sms_template_id": fake_notify.sms_template_id,
                "max_fragments": 0,
            }
        )
    with pytest.raises(ChannelError, match="needs email_template_id"):
        NotifyEmailChannel(
            {"api_key": fake_notify.api_key, "sms_template_id": fake_notify.sms_template_id}
        )
    with pytest.raises(ChannelError, match="'sms' or 'email'"):
        NotifyChannel(
            {"api_key": fake_notify.api_key, "sms_template_id": fake_notify.sms_template_id},
            kind="fax",
        )  # type: ignore[arg-type]
    config = NotifyConfig(
        api_key=fake_notify.api_key,
        sms_template_id=fake_notify.sms_template_id,
        callback_token="a-long-callback-token",
    )
    shown = f"{config!r} {config!s} {config.model_dump()} {config.model_dump_json()}"
    assert SECRET not in shown and "a-long-callback-token" not in shown
    assert config.service_id == fake_notify.service_id


def test_no_secret_reaches_a_log_line_or_an_error(
    fake_notify: FakeNotify,
    make_config: Callable[..., NotifyConfig],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = NotifyChannel(make_config(timeout_seconds=0.3))
    fake_notify.fail_next(1)
    fake_notify.limit_next(1)
    results = [channel.send(sample_message(PHONE)) for _ in range(3)]
    fake_notify.refuse_connections()
    results.append(channel.send(sample_message(PHONE)))
    shown = caplog.text + " ".join(str(r) for r in results)
    assert "Notify" in shown  # something was said
    assert SECRET not in shown
    channel.close()


class _Answer:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def test_retry_after_as_an_http_date_is_measured_from_the_answer_s_date() -> None:
    from oohcore_notify.channel import _retry_after

    answer = _Answer(
        {"Retry-After": "Wed, 02 Dec 2026 03:01:30 GMT", "Date": "Wed, 02 Dec 2026 03:00:00 GMT"}
    )
    assert _retry_after(answer) == timedelta(seconds=90)
    assert _retry_after(_Answer({"Retry-After": "Wed, 02 Dec 2026 03:01:30 GMT"})) is None
    assert _retry_after(_Answer({"Retry-After": "soon"})) is None
    assert _retry_after(_Answer({})) is None
