"""Signing and verifying webhooks per the Standard Webhooks convention (standardwebhooks.com).

Three headers go with every request:

* ``webhook-id``: the message's id, the same on every retry (we use the idempotency key), so a
  receiver can drop a repeat;
* ``webhook-timestamp``: the attempt's time in whole Unix seconds;
* ``webhook-signature``: ``v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``, with
  space-separated signatures allowed (several while a secret is rotated).

The secret is written ``whsec_<base64 of the key>`` (the prefix is optional). A receiver calls
:func:`verify` with the raw body, the headers and its clock: it checks the timestamp is within
the tolerance (5 minutes either way by default), compares the signature in constant time and,
with a :class:`ReplayGuard`, refuses an id it has already accepted inside the window.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta

__all__ = [
    "DEFAULT_TOLERANCE",
    "ReplayGuard",
    "ReplayedWebhookError",
    "WebhookVerificationError",
    "decode_secret",
    "sign",
    "verify",
]

DEFAULT_TOLERANCE = timedelta(minutes=5)
_PREFIX = "whsec_"


class WebhookVerificationError(ValueError):
    """The request is not signed by the secret, is outside the replay window, or is a replay.
    The message says which, never the secret or the signature."""


def decode_secret(secret: str) -> bytes:
    """The HMAC key in a ``whsec_<base64>`` secret (ValueError when it is not base64)."""
    text = secret.strip()
    if text.startswith(_PREFIX):
        text = text[len(_PREFIX) :]
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the secret must be 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("the secret is empty")
    return key


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value ``v1,<base64>`` for one request."""
    key = secret if isinstance(secret, bytes) else decode_secret(secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class ReplayedWebhookError(WebhookVerificationError):
    """The signature is good but the id was already accepted: a retry of a delivery the
    receiver has (answer 2xx, do not act on it again) or a replay (refuse it either way)."""


class ReplayGuard:
    """The webhook ids a receiver has accepted within the replay window (in memory)."""

    def __init__(self, window: timedelta = DEFAULT_TOLERANCE) -> None:
        self.window = window
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def admit(self, msg_id: str, now: datetime) -> bool:
        """True the first time ``msg_id`` is seen within the window (then remembered)."""
        with self._lock:
            horizon = now - 2 * self.window
            for old in [k for k, at in self._seen.items() if at < horizon]:
                del self._seen[old]
            if msg_id in self._seen:
                return False
            self._seen[msg_id] = now
            return True


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    replay_guard: ReplayGuard | None = None,
) -> str:
    """Check one received request; return its ``webhook-id``.

    Raises :class:`WebhookVerificationError` when a header is missing, the timestamp is not
    within ``tolerance`` of ``now`` (too old or too new), no ``v1`` signature matches, or (with
    ``replay_guard``) the id was already accepted (:class:`ReplayedWebhookError`).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id", "").strip()
    stamp = lower.get("webhook-timestamp", "").strip()
    signatures = lower.get("webhook-signature", "").strip()
    if not msg_id or not stamp or not signatures:
        raise WebhookVerificationError(
            "missing webhook-id, webhook-timestamp or webhook-signature header"
        )
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not whole Unix seconds") from None
    age = now.timestamp() - timestamp
    if age > tolerance.total_seconds():
        raise WebhookVerificationError(
            f"webhook-timestamp is {int(age)} s old, more than the {int(tolerance.total_seconds())} s allowed"
        )
    if -age > tolerance.total_seconds():
        raise WebhookVerificationError(
            f"webhook-timestamp is {int(-age)} s in the future, more than the "
            f"{int(tolerance.total_seconds())} s allowed"
        )
    expected = sign(secret, msg_id, timestamp, body).encode()
    if not any(
        candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected)
        for candidate in signatures.split()
    ):
        raise WebhookVerificationError("no webhook-signature matches the body and the secret")
    if replay_guard is not None and not replay_guard.admit(msg_id, now):
        raise ReplayedWebhookError(f"webhook-id {msg_id[:80]!r} was already received")
    return msg_id
