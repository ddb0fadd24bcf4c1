"""What GOV.UK Notify tells us later: delivery receipts and text messages sent back to us.

Notify POSTs JSON to the callback URLs a service sets up, with the bearer token chosen there
(check it with :func:`callback_is_authorised` before trusting the body):

* a **delivery receipt** for each message (``id``, ``reference``, ``status``, ``created_at``,
  ``sent_at``, ``completed_at``, ``notification_type`` …), retried by Notify if the callback
  fails; :func:`receipt_from_callback` turns it into an :class:`oohcore.channels.Receipt`
  (its ``idempotency_key`` is our reference, its ``provider_ref`` Notify's id). A status
  look-up (``GET /v2/notifications/{id}``) answers the same fields:
  :func:`receipt_from_status` (or :meth:`NotifyChannel.status`).
* a **received text message** (``id``, ``source_number``, ``destination_number``, ``message``,
  ``date_received``): :func:`inbound_from_callback` turns it into an :class:`InboundMessage`,
  which the engine matches to a referral to record an officer's acknowledgement by reply.

Pass ``authorization`` (the request's header) and ``token`` (the configured
``callback_token``) to have the bearer token checked before a byte of the body is read; the
body may be the raw bytes (at most :data:`~oohcore.channels.inbound.MAX_CALLBACK_BYTES`, nested
at most 16 deep) or the parsed object. A malformed, oversized or unauthorised body raises
:class:`NotifyCallbackError` (and nothing else), whose message names the field and never
repeats a phone number, an address or a message text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from oohcore.channels import ChannelError, Receipt, ReceiptState
from oohcore.channels.inbound import bearer_matches, instant, json_document

__all__ = [
    "InboundMessage",
    "NotifyCallbackError",
    "callback_is_authorised",
    "inbound_from_callback",
    "receipt_from_callback",
    "receipt_from_status",
]

# Notify's statuses (emails, texts and letters) and what they mean for delivery.
_STATES: dict[str, ReceiptState] = {
    "created": ReceiptState.PENDING,
    "sending": ReceiptState.PENDING,
    "pending": ReceiptState.PENDING,
    "accepted": ReceiptState.PENDING,
    # "sent": handed to an international network, which sends no receipt back
    "sent": ReceiptState.PENDING,
    "delivered": ReceiptState.DELIVERED,
    "received": ReceiptState.DELIVERED,
    # the phone was off or the inbox full for 72 hours: it may work later or elsewhere
    "temporary-failure": ReceiptState.TEMPORARY_FAILURE,
    # Notify's own fault: the message was not sent and may be sent again
    "technical-failure": ReceiptState.TEMPORARY_FAILURE,
    # no such number or address: sending again will not help
    "permanent-failure": ReceiptState.PERMANENT_FAILURE,
    "failed": ReceiptState.PERMANENT_FAILURE,
    "validation-failed": ReceiptState.PERMANENT_FAILURE,
    "virus-scan-failed": ReceiptState.PERMANENT_FAILURE,
}


class NotifyCallbackError(ChannelError):
    """A callback body or status answer from Notify is not what Notify sends."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A text message someone sent to the organisation's Notify number (e.g. an officer's
    acknowledgement of a referral)."""

    channel: str
    sender: str  # the sender's number as Notify gives it (e.g. "447700900123")
    recipient: str  # the organisation's Notify number it was sent to
    text: str
    received_at: datetime  # aware, UTC
    provider_id: str  # Notify's id of the received message: use it to ignore a repeat

    def __repr__(self) -> str:  # personal data stays out of logs
        return (
            f"InboundMessage(channel={self.channel!r}, provider_id={self.provider_id!r}, "
            f"received_at={self.received_at.isoformat()!r}, text=<{len(self.text)} characters>)"
        )


def callback_is_authorised(authorization: str | None, token: SecretStr | str) -> bool:
    """Whether an ``Authorization`` header is ``Bearer <token>`` (compared in constant time)."""
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    return bearer_matches(authorization, secret)


Body = Mapping[str, Any] | bytes | str


def _body(
    payload: Body, what: str, authorization: str | None, token: SecretStr | str | None
) -> Mapping[str, Any]:
    """The callback's JSON object, once the bearer token (when ``token`` is given) matches."""
    if token is not None and not callback_is_authorised(authorization, token):
        raise NotifyCallbackError(f"the Notify {what} does not carry the callback's bearer token")
    if isinstance(payload, bytes | bytearray | str):
        try:
            payload = json_document(payload)
        except ValueError as exc:
            raise NotifyCallbackError(f"the Notify {what}: {exc}") from None
    if not isinstance(payload, Mapping):
        raise NotifyCallbackError(f"a Notify {what} must be a JSON object")
    return payload


def receipt_from_callback(
    payload: Body,
    *,
    channel: str = "notify",
    authorization: str | None = None,
    token: SecretStr | str | None = None,
) -> Receipt:
    """The receipt in a Notify delivery-status callback body (see the module's docstring)."""
    return _receipt(
        _body(payload, "delivery callback", authorization, token), channel, "delivery callback"
    )


def receipt_from_status(notification: Mapping[str, Any], *, channel: str = "notify") -> Receipt:
    """The receipt in Notify's answer to ``GET /v2/notifications/{id}``."""
    return _receipt(notification, channel, "status answer")


def inbound_from_callback(
    payload: Body,
    *,
    channel: str = "notify",
    authorization: str | None = None,
    token: SecretStr | str | None = None,
) -> InboundMessage:
    """The text message in a Notify received-text-message callback body (see the module's
    docstring)."""
    what = "received text message callback"
    payload = _body(payload, what, authorization, token)
    return InboundMessage(
        channel=channel,
        sender=_text(payload, "source_number", what),
        recipient=_text(payload, "destination_number", what),
        text=_text(payload, "message", what, empty=True),
        received_at=_when(payload, "date_received", what),
        provider_id=_text(payload, "id", what),
    )


def _receipt(payload: Mapping[str, Any], channel: str, what: str) -> Receipt:
    if not isinstance(payload, Mapping):
        raise NotifyCallbackError(f"a Notify {what} must be a JSON object")
    status = _text(payload, "status", what)
    state = _STATES.get(status)
    if state is None:
        known = ", ".join(sorted(_STATES))
        raise NotifyCallbackError(
            f"the Notify {what} has status {status[:40]!r}, which is not one of Notify's ({known})"
        )
    stamp = next((f for f in ("completed_at", "sent_at", "created_at") if payload.get(f)), None)
    if stamp is None:
        raise NotifyCallbackError(
            f"the Notify {what} has none of completed_at, sent_at, created_at"
        )
    reference = payload.get("reference")
    return Receipt(
        channel=channel,
        state=state,
        at=_when(payload, stamp, what),
        provider_ref=_text(payload, "id", what),
        idempotency_key=reference if isinstance(reference, str) and reference else None,
        detail=status,
    )


def _text(payload: Mapping[str, Any], name: str, what: str, *, empty: bool = False) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or (not value and not empty):
        raise NotifyCallbackError(f"the Notify {what} has no {name} (a non-empty string)")
    return value


def _when(payload: Mapping[str, Any], name: str, what: str) -> datetime:
    value = _text(payload, name, what)
    try:
        # Notify writes UTC with a Z; a time without a zone is UTC too
        return instant(value, naive_is_utc=True)
    except ValueError:
        raise NotifyCallbackError(
            f"the Notify {what} has {name} {value[:40]!r}, not an ISO 8601 time "
            "such as '2026-12-02T03:04:05.000000Z'"
        ) from None
