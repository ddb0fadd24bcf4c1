"""Notify's delivery receipts (callbacks and status look-ups) and received text messages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from oohcore.channels import ReceiptState
from oohcore.channels.testing import sample_message
from oohcore_notify import (
    NotifyCallbackError,
    NotifyChannel,
    callback_is_authorised,
    inbound_from_callback,
    receipt_from_callback,
    receipt_from_status,
)
from oohcore_notify.testing import FakeNotify


@pytest.mark.parametrize(
    ("number", "state"),
    [
        ("07700900123", ReceiptState.DELIVERED),
        ("07700900002", ReceiptState.PERMANENT_FAILURE),  # Notify's simulated numbers
        ("07700900003", ReceiptState.TEMPORARY_FAILURE),
    ],
)
def test_a_delivery_callback_becomes_a_receipt_matched_by_reference(
    number: str, state: ReceiptState, sms_channel: NotifyChannel, fake_notify: FakeNotify
) -> None:
    message = sample_message(number)
    sent = sms_channel.send(message)
    body = fake_notify.callback_body(sent.provider_ref or "")
    receipt = receipt_from_callback(body)
    assert receipt.state is state
    assert receipt.provider_ref == sent.provider_ref
    assert receipt.idempotency_key == message.idempotency_key
    assert receipt.at.tzinfo is UTC and receipt.channel == "notify"
    # the same through a status look-up
    assert sms_channel.status(sent.provider_ref or "").state is state


def test_technical_failure_and_pending_states(fake_notify: FakeNotify) -> None:
    base = {"id": "abc", "reference": "k", "created_at": "2026-12-02T03:04:05.000000Z"}
    assert receipt_from_status({**base, "status": "technical-failure"}).state is (
        ReceiptState.TEMPORARY_FAILURE
    )
    pending = receipt_from_status({**base, "status": "sending"})
    assert pending.state is ReceiptState.PENDING
    assert pending.at == datetime(2026, 12, 2, 3, 4, 5, tzinfo=UTC)


def test_a_malformed_callback_is_named_without_repeating_personal_data() -> None:
    with pytest.raises(NotifyCallbackError, match="has no status"):
        receipt_from_callback({"id": "x", "to": "07700900123"})
    with pytest.raises(NotifyCallbackError, match="not one of Notify's") as unknown:
        receipt_from_callback({"id": "x", "to": "07700900123", "status": "lost"})
    assert "07700900123" not in str(unknown.value)
    with pytest.raises(NotifyCallbackError, match="not an ISO 8601 time"):
        receipt_from_callback({"id": "x", "status": "delivered", "completed_at": "yesterday"})
    with pytest.raises(NotifyCallbackError, match="JSON object"):
        receipt_from_callback(["not", "an", "object"])  # type: ignore[arg-type]


def test_the_callback_bearer_token_is_checked_in_constant_time() -> None:
    token = SecretStr("a-long-callback-token")
    assert callback_is_authorised("Bearer a-long-callback-token", token)
    assert not callback_is_authorised("Bearer a-long-callback-tokeX", token)
    assert not callback_is_authorised(None, token)
    assert not callback_is_authorised("a-long-callback-token", token)


def test_a_received_text_becomes_an_inbound_message_for_the_engine(
    fake_notify: FakeNotify,
) -> None:
    body = fake_notify.inbound_body("447700900123", "ACK K7Q2M4")
    inbound = inbound_from_callback(body)
    assert inbound.sender == "447700900123" and inbound.text == "ACK K7Q2M4"
    assert inbound.provider_id == body["id"] and inbound.received_at.tzinfo is UTC
    assert inbound.recipient == "07700900000"
    assert "K7Q2M4" not in repr(inbound) and "447700900123" not in repr(inbound)
    with pytest.raises(NotifyCallbackError, match="has no source_number"):
        inbound_from_callback({**body, "source_number": ""})
