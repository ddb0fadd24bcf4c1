"""The ``pager-http`` channel against a local HTTPS gateway (http.server, TLS by an OpenSSL CA)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from oohcore.channels import Channel, DeliveryStatus, ReceiptState
from oohcore.channels.testing import ChannelContract
from oohcore.clock import ManualClock
from oohcore_pager import (
    MAX_RETRY_AFTER,
    PagerConfigError,
    PagerHttpChannel,
    ReceiptError,
    receipt_from_callback,
)
from oohcore_pager.testing import GatewayTestServer, pager_message

TOKEN = "Bearer k-123"


def _channel(gateway: GatewayTestServer, certificates: Any, **kw: Any) -> PagerHttpChannel:
    kw.setdefault("auth_value", TOKEN)
    kw.setdefault("send_timeout", timedelta(seconds=5))
    return PagerHttpChannel(url=gateway.url, ca_file=certificates.ca, **kw)


class _GatewayPeer:
    def __init__(self, gateway: GatewayTestServer) -> None:
        self.gateway = gateway

    def received_keys(self) -> Sequence[str]:
        return [d.idempotency_key for d in self.gateway.deliveries]


class TestPagerHttpContract(ChannelContract):
    recipient = "07623123456"
    logical_channel = "pager"
    secrets = ("k-123",)

    @pytest.fixture
    def channel(self, gateway: GatewayTestServer, certificates: Any) -> Iterator[Channel]:
        ch = _channel(gateway, certificates)
        yield ch
        ch.close()

    @pytest.fixture
    def peer(self, gateway: GatewayTestServer) -> _GatewayPeer:
        return _GatewayPeer(gateway)


def test_the_request_has_the_documented_shape(
    gateway: GatewayTestServer, certificates: Any
) -> None:
    ch = _channel(gateway, certificates, send_subject=True)
    message = pager_message()
    result = ch.send(message)
    ch.close()
    assert result.status is DeliveryStatus.SENT and result.provider_ref == "pg-1"
    (delivery,) = gateway.deliveries
    assert delivery.body == {
        "pager_id": "07623123456",
        "text": delivery.text,
        "reference": "K7Q2M4",
        "idempotency_key": message.idempotency_key,
        "purpose": "referral.alert",
        "subject": "Housing repairs: K7Q2M4",
    }
    assert delivery.text.endswith("Ref K7Q2M4") and len(delivery.text) <= 240
    assert delivery.headers["Idempotency-Key"] == message.idempotency_key
    assert delivery.headers["Content-Type"] == "application/json"


def test_the_gateway_pages_a_key_once_even_for_a_restarted_channel(
    gateway: GatewayTestServer, certificates: Any
) -> None:
    message = pager_message()
    first = _channel(gateway, certificates)
    assert first.send(message).status is DeliveryStatus.SENT
    first.close()
    second = _channel(gateway, certificates)  # a fresh in-memory ledger: only the gateway knows
    again = second.send(message)
    second.close()
    assert again.status is DeliveryStatus.SENT and again.provider_ref == "pg-1"
    assert len(gateway.deliveries) == 1 and gateway.requests == 2


@pytest.mark.parametrize(
    ("status", "headers", "expected", "after"),
    [
        (429, {"Retry-After": "30"}, DeliveryStatus.RETRY, timedelta(seconds=30)),
        (503, {"Retry-After": "7200"}, DeliveryStatus.RETRY, MAX_RETRY_AFTER),
        (500, {}, DeliveryStatus.RETRY, None),
        (502, {}, DeliveryStatus.RETRY, None),
        (409, {}, DeliveryStatus.RETRY, None),
        (429, {"Retry-After": "soon"}, DeliveryStatus.RETRY, None),
        (400, {}, DeliveryStatus.PERMANENT_FAILURE, None),
        (404, {}, DeliveryStatus.PERMANENT_FAILURE, None),
        (413, {}, DeliveryStatus.PERMANENT_FAILURE, None),
        (422, {}, DeliveryStatus.PERMANENT_FAILURE, None),
        (301, {"Location": "https://elsewhere.example/p"}, DeliveryStatus.PERMANENT_FAILURE, None),
    ],
)
def test_every_answer_maps_to_sent_retry_or_permanent(
    gateway: GatewayTestServer,
    certificates: Any,
    status: int,
    headers: dict[str, str],
    expected: DeliveryStatus,
    after: timedelta | None,
) -> None:
    gateway.script.append((status, headers, {"error": "x", "message": "the gateway says no"}))
    ch = _channel(gateway, certificates)
    message = pager_message()
    result = ch.send(message)
    assert result.status is expected, result.error
    assert result.retry_after == after
    assert f"HTTP {status}" in (result.error or "")
    # a failure gives its rate-limit slot back and is not remembered as sent: it pages next time
    assert ch.send(message).status is DeliveryStatus.SENT
    ch.close()
    assert len(gateway.deliveries) == 1


def test_retry_after_as_an_http_date_is_read_against_the_clock(
    gateway: GatewayTestServer, certificates: Any
) -> None:
    now = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
    when = format_datetime(now + timedelta(seconds=90), usegmt=True)
    gateway.script.append((429, {"Retry-After": when}, {}))
    ch = _channel(gateway, certificates, clock=ManualClock(now))
    result = ch.send(pager_message())
    ch.close()
    assert result.status is DeliveryStatus.RETRY
    assert result.retry_after == timedelta(seconds=90)


def test_refused_credentials_are_permanent_and_the_key_never_shows(
    gateway: GatewayTestServer, certificates: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ch = _channel(gateway, certificates, auth_value="Bearer wrong-key-99")
    result = ch.send(pager_message())
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "HTTP 401" in (result.error or "") and "auth_value" in (result.error or "")
    shown = f"{result.error} {ch!r} {ch.config!r} {ch.config.model_dump_json()} {caplog.text}"
    assert "wrong-key-99" not in shown


def test_an_unknown_pager_is_permanent(gateway: GatewayTestServer, certificates: Any) -> None:
    gateway.valid_pagers = {"1"}
    ch = _channel(gateway, certificates)
    result = ch.send(pager_message())
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "no such pager" in (result.error or "")


def test_a_refused_connection_is_retried(free_port: int, certificates: Any) -> None:
    ch = PagerHttpChannel(url=f"https://127.0.0.1:{free_port}/v1/pages", ca_file=certificates.ca)
    result = ch.send(pager_message())
    ch.close()
    assert result.status is DeliveryStatus.RETRY and "cannot connect" in (result.error or "")


def test_a_hanging_gateway_is_given_up_within_send_timeout(
    gateway: GatewayTestServer, certificates: Any
) -> None:
    gateway.hang = True
    ch = _channel(gateway, certificates, send_timeout=timedelta(seconds=0.3))
    result = ch.send(pager_message())
    ch.close()
    assert result.status is DeliveryStatus.RETRY and "no answer" in (result.error or "")


def test_an_untrusted_certificate_is_permanent(gateway: GatewayTestServer) -> None:
    ch = PagerHttpChannel(url=gateway.url, auth_value=TOKEN)
    result = ch.send(pager_message())
    ch.close()
    assert result.status is DeliveryStatus.PERMANENT_FAILURE
    assert "ca_file" in (result.error or "")
    assert gateway.deliveries == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"url": "http://pager.example.net/p"}, "https"),
        ({"url": "https://user:pw@pager.example.net/p"}, "auth_value"),
        ({"url": "ftp://x/p"}, "url"),
        ({"url": "https://x/p", "auth_header": "Bad Header"}, "auth_header"),
        ({"url": "https://x/p", "max_length": 5}, "max_length"),
    ],
)
def test_a_configuration_mistake_names_the_field(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(PagerConfigError) as caught:
        PagerHttpChannel(fields)
    assert named in str(caught.value)
    assert "pw@" not in str(caught.value)


def test_a_delivery_report_becomes_a_receipt() -> None:
    body = json.dumps(
        {
            "id": "pg-1",
            "idempotency_key": "k1",
            "status": "delivered",
            "at": "2026-01-10T03:01:00Z",
            "detail": "read by pager",
        }
    )
    receipt = receipt_from_callback(body.encode())
    assert receipt.state is ReceiptState.DELIVERED and receipt.provider_ref == "pg-1"
    assert receipt.idempotency_key == "k1" and receipt.channel == "pager-http"
    assert receipt.at == datetime(2026, 1, 10, 3, 1, tzinfo=UTC)
    failed = receipt_from_callback(
        {"id": 7, "status": "rejected", "at": "2026-01-10T03:01:00+00:00"}
    )
    assert failed.state is ReceiptState.PERMANENT_FAILURE and failed.provider_ref == "7"


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (b"not json", "not JSON"),
        ({"id": "1", "status": "lost", "at": "2026-01-10T03:01:00Z"}, "'status'"),
        ({"id": "1", "status": "delivered", "at": "2026-01-10T03:01:00"}, "'at'"),
        ({"status": "delivered", "at": "2026-01-10T03:01:00Z"}, "'id'"),
    ],
)
def test_a_malformed_delivery_report_names_the_field(payload: Any, named: str) -> None:
    with pytest.raises(ReceiptError, match=named):
        receipt_from_callback(payload)
