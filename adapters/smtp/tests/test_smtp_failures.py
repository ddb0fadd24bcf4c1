"""Relay failures: connection refused and 4xx are retried, 5xx is not, no STARTTLS never sends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from smtp_peers import OFFICER, PASSWORD, Pki, Relay, free_port, relay_config, start_relay

from oohcore.channels import DeliveryStatus
from oohcore.channels.testing import sample_message
from oohcore.clock import ManualClock
from oohcore_smtp import SmtpChannel


def test_connection_refused_is_retried(relay: Relay, pki: Pki, clock: ManualClock) -> None:
    config = relay_config(relay, pki).model_copy(update={"port": free_port()})
    result = SmtpChannel(config, clock=clock).send(sample_message(OFFICER, channel="email"))
    assert result.status is DeliveryStatus.RETRY, result


def test_a_4xx_reply_is_retried_and_550_is_not(make_channel: Any, relay: Relay) -> None:
    channel = make_channel()
    relay.handler.rcpt_reply = "451 4.3.0 try again later"
    assert channel.send(sample_message(OFFICER, channel="email")).status is DeliveryStatus.RETRY
    relay.handler.rcpt_reply = "550 5.1.1 no such user"
    result = channel.send(sample_message(OFFICER, channel="email"))
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "550" in (result.error or "")
    assert relay.handler.received == []


def test_a_relay_without_starttls_gets_nothing(pki: Pki, clock: ManualClock) -> None:
    plain = start_relay(pki, starttls=False, auth=False)
    try:
        config = relay_config(plain, pki, username=None, password=None)
        result = SmtpChannel(config, clock=clock).send(sample_message(OFFICER, channel="email"))
        assert result.status is DeliveryStatus.PERMANENT_FAILURE
        assert "STARTTLS" in (result.error or "")
        assert plain.handler.received == []
    finally:
        plain.controller.stop()


def test_a_wrong_password_is_permanent_and_never_shown(make_channel: Any, relay: Relay) -> None:
    channel = make_channel(password=PASSWORD + "x", send_timeout=timedelta(seconds=10))
    result = channel.send(sample_message(OFFICER, channel="email"))
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert PASSWORD not in (result.error or "") and PASSWORD not in repr(channel)
