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
import string
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
    "webhook_id",
]

DEFAULT_TOLERANCE = timedelta(minutes=5)
_PREFIX = "whsec_"


class WebhookVerificationError(ValueError):
    """The request is not signed by the secret, is outside the replay window, or is a replay.
    The message says which, never the secret or the signature."""


def decode_secret(secret: str) -> bytes:
    """The HMAC key in a ``whsec_<base64>`` secret (ValueError when it is not base64). The
    base64 may leave out its ``=`` padding, as the Standard Webhooks libraries accept."""
    text = secret.strip()
    if text.startswith(_PREFIX):
        text = text[len(_PREFIX) :]
    text = text.rstrip("=")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the secret must be 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("the secret is empty")
    return key


_ID_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.:~+/=@")
MAX_ID = 255


def webhook_id(idempotency_key: str) -> str:
    """The ``webhook-id`` header for a message: its idempotency key when that is plain ASCII
    (letters, digits, ``-_.:~+/=@``, at most 255 characters), else ``msg_`` and a digest of
    it. An HTTP header carries ASCII only, and the id must be the same on every retry: the
    digest is (the body keeps the key as it is)."""
    if 0 < len(idempotency_key) <= MAX_ID and set(idempotency_key) <= _ID_CHARACTERS:
        return idempotency_key
    digest = hashlib.sha256(idempotency_key.encode("utf-8", "surrogatepass")).digest()
    return "msg_" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _signature(secret: str | bytes, signed: bytes) -> bytes:
    key = secret if isinstance(secret, bytes) else decode_secret(secret)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return b"v1," + base64.b64encode(digest)


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value ``v1,<base64>`` for one request (``msg_id`` is sent as
    UTF-8, as the Standard Webhooks libraries do)."""
    return _signature(secret, f"{msg_id}.{timestamp}.".encode() + body).decode("ascii")


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


MAX_HEADER = 1024  # characters of each of the three headers: a few signatures fit


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

    The signature is checked first, over the headers exactly as they arrived, before the
    timestamp is read as a number: nothing an unsigned request carries is parsed. Raises
    :class:`WebhookVerificationError` (and nothing else) when a header is missing, not text or
    longer than :data:`MAX_HEADER`, no ``v1`` signature matches, the timestamp is not whole
    Unix seconds within ``tolerance`` of ``now`` (too old or too new), or (with
    ``replay_guard``) the id was already accepted (:class:`ReplayedWebhookError`).
    """
    lower = {str(k).lower(): v for k, v in headers.items()}
    found = [
        lower.get(name, "") for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    ]
    if not all(isinstance(v, str) and v.strip() for v in found):
        raise WebhookVerificationError(
            "missing webhook-id, webhook-timestamp or webhook-signature header"
        )
    if any(len(v) > MAX_HEADER for v in found):
        raise WebhookVerificationError(f"a webhook header is longer than {MAX_HEADER} characters")
    msg_id, stamp, signatures = (v.strip() for v in found)
    expected = _signature(secret, f"{msg_id}.{stamp}.".encode("utf-8", "replace") + body)
    if not any(
        candidate.startswith("v1,")
        and hmac.compare_digest(candidate.encode("utf-8", "replace"), expected)
        for candidate in signatures.split()
    ):
        raise WebhookVerificationError("no webhook-signature matches the body and the secret")
    # signed by the secret's holder: now the timestamp is read (at most 12 digits: year 33658)
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise WebhookVerificationError("webhook-timestamp is not whole Unix seconds")
    age = now.timestamp() - int(stamp)
    limit = tolerance.total_seconds()
    if age > limit:
        raise WebhookVerificationError(
            f"webhook-timestamp is {int(age)} s old, more than the {int(limit)} s allowed"
        )
    if -age > limit:
        raise WebhookVerificationError(
            f"webhook-timestamp is {int(-age)} s in the future, more than the "
            f"{int(limit)} s allowed"
        )
    if replay_guard is not None and not replay_guard.admit(msg_id, now):
        raise ReplayedWebhookError(f"webhook-id {msg_id[:80]!r} was already received")
    return msg_id
