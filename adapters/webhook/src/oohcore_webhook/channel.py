"""The ``webhook`` channel: a JSON POST to a host's endpoint, signed per Standard Webhooks.

For hosts and CRMs that take a webhook rather than Open311 (7.9), or a feed consumer that wants
each message pushed (7.8). The body is ``{"type": <purpose>, "timestamp": <ISO 8601>,
"data": {...}}`` (the Standard Webhooks payload shape), ``data`` holding the organisation, the
call, the reference, the subject and text and the case fields; the headers are those of
:mod:`oohcore_webhook.signing`, ``webhook-id`` being the idempotency key on every attempt so
that a receiver drops a repeat.

Answers: any ``2xx`` is sent; ``410 Gone`` (the receiver has retired the endpoint), a redirect
and every other ``4xx`` (``400`` a body it refuses, ``401``/``403`` a signature it refuses: a
secret out of step) are ``permanent``; ``408``, ``425``, ``429`` and every ``5xx`` are
``retry``, with ``Retry-After`` passed on (capped at :data:`MAX_RETRY_AFTER`); no connection or
a time-out is ``retry``.

Every send is over within ``send_timeout`` as a whole (not per read: a receiver answering one
byte a second is cut off at the deadline) and reads no answer body at all: the status and
headers say everything (:mod:`oohcore.channels.deadline`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ConfigDict, Field, SecretStr, field_validator

from oohcore.channels import (
    MAX_RETRY_AFTER,
    ChannelConfig,
    ChannelError,
    ChannelInfo,
    DeliveryResult,
    OutboundMessage,
    https_endpoint,
    retry_after,
    tls_verify,
)
from oohcore.channels.deadline import Answer, Deadline, DeadlineExceeded, exchange
from oohcore.clock import Clock, SystemClock

from .signing import decode_secret, sign, webhook_id

__all__ = ["MAX_RETRY_AFTER", "WebhookChannel", "WebhookConfig", "webhook_body"]

log = logging.getLogger("oohcore_webhook")

_RETRY_STATUSES = frozenset({408, 425, 429})


class WebhookConfig(ChannelConfig):
    """Where one organisation's webhooks go, and the secret they are signed with."""

    # a value that fails validation may be a secret: errors never repeat it
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: str = Field(description="the receiver's endpoint: https://... (http:// only to loopback)")
    secret: SecretStr = Field(description="whsec_<base64>: the receiver's signing secret")
    ca_file: Path | None = Field(default=None, description="CA bundle that signs the receiver")
    send_timeout: timedelta = Field(default=timedelta(seconds=15))

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return https_endpoint(value, key_goes_in="secret")

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        key = decode_secret(value.get_secret_value())  # ValueError names no value
        if not 24 <= len(key) <= 64:
            raise ValueError("the secret's key must be 24 to 64 bytes (Standard Webhooks)")
        return value

    @field_validator("send_timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(minutes=2):
            raise ValueError("must be more than 0 and at most 2 minutes (the runner's lease)")
        return value


def webhook_body(message: OutboundMessage, at: datetime) -> bytes:
    """The JSON body for ``message`` (compact, UTF-8, keys in order)."""
    payload = {
        "type": str(message.purpose),
        "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": {
            "idempotency_key": message.idempotency_key,
            "organisation_id": message.organisation_id,
            "call_id": message.call_id,
            "reference": message.reference,
            "recipient": message.recipient,
            "subject": message.subject,
            "body": message.body,
            "fields": dict(message.fields),
        },
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()


class WebhookChannel:
    """Signed JSON webhooks. ``WebhookChannel(WebhookConfig(...))``, a mapping, or keywords;
    ``clock`` gives the ``webhook-timestamp`` and reads ``Retry-After`` dates."""

    name = "webhook"
    info = ChannelInfo(
        carries=frozenset({"crm", "feed"}),
        contact_field=None,
        receipts=False,
        requires=("httpx",),
        config=WebhookConfig,
        send_timeout=timedelta(seconds=15),
    )

    def __init__(
        self,
        config: WebhookConfig | Mapping[str, Any] | None = None,
        /,
        *,
        clock: Clock | None = None,
        **settings: Any,
    ) -> None:
        if config is None:
            config = WebhookConfig(**settings)
        elif not isinstance(config, WebhookConfig):
            config = WebhookConfig(**{**dict(config), **settings})
        elif settings:
            config = config.model_copy(update=settings)
        self.config: WebhookConfig = config
        self.info = ChannelInfo(
            carries=frozenset({"crm", "feed"}),
            contact_field=None,
            receipts=False,
            requires=("httpx",),
            config=WebhookConfig,
            send_timeout=config.send_timeout,
        )
        self._clock = clock or SystemClock()
        self._key = decode_secret(config.secret.get_secret_value())
        parts = urlsplit(config.url)
        self._where = f"{parts.scheme}://{parts.netloc}{parts.path}"
        verify = tls_verify("webhook", config.ca_file, "the receiver")
        self._http = httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(config.send_timeout.total_seconds()),
            follow_redirects=False,
            headers={"User-Agent": "oohcore-webhook"},
            # a connection per send, so that the deadline's watchdog can always cut it
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"WebhookChannel(url={self._where!r})"

    def send(self, message: OutboundMessage) -> DeliveryResult:
        """POST ``message``, signed; never raises for the receiver's answer."""
        if self._closed:
            raise ChannelError("WebhookChannel: send after close")
        now = self._clock.now()
        timestamp = int(now.timestamp())
        body = webhook_body(message, now)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": webhook_id(message.idempotency_key),
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(
                self._key, webhook_id(message.idempotency_key), timestamp, body
            ),
        }
        deadline = Deadline(self.config.send_timeout.total_seconds())
        try:
            answer = exchange(
                self._http,
                "POST",
                self.config.url,
                deadline=deadline,
                cap=0,  # the status and headers are the whole answer; the body is not read
                content=body,
                headers=headers,
            )
        except (httpx.TimeoutException, DeadlineExceeded):
            result = DeliveryResult.retry(
                f"webhook {self._where}: no answer within "
                f"{self.config.send_timeout.total_seconds():g} s (it may have arrived; the "
                "same webhook-id lets the receiver drop the repeat)"
            )
        except httpx.HTTPError as exc:
            result = DeliveryResult.retry(
                f"webhook {self._where}: {type(exc).__name__} ({str(exc)[:200]})"
            )
        else:
            result = self._answer(answer, now)
        log.info(
            "webhook %s: %s%s",
            message.idempotency_key,
            result.status.value,
            f" ({result.error})" if result.error else "",
        )
        return result

    def _answer(self, response: Answer, now: datetime) -> DeliveryResult:
        status = response.status
        if 200 <= status < 300:
            return DeliveryResult.sent(response.headers.get("webhook-id") or None)
        error = f"webhook {self._where}: HTTP {status}"
        if status in _RETRY_STATUSES or status >= 500:
            return DeliveryResult.retry(
                error, after=retry_after(response.headers.get("retry-after"), now)
            )
        if status == 410:
            return DeliveryResult.permanent(
                f"{error}: the receiver has retired this endpoint; set url to its new one"
            )
        if status in (401, 403):
            return DeliveryResult.permanent(
                f"{error}: the receiver refused the signature; check that secret matches its own"
            )
        if 300 <= status < 400:
            return DeliveryResult.permanent(
                f"{error}: the receiver redirects; set url to the target"
            )
        return DeliveryResult.permanent(error)

    def close(self) -> None:
        """Close the HTTP connections; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._http.close()
