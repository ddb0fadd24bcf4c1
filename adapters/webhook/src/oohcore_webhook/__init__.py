"""oohcore-webhook: JSON webhooks signed per the Standard Webhooks convention (spec 7.8, 7.9).

Registered as the ``webhook`` channel in the entry-point group ``oohcore.channels``. The sender
is :class:`WebhookChannel`; a host receiving our webhooks checks them with :func:`verify`
(signature, a 5-minute replay window, optionally a :class:`ReplayGuard` of ids seen)::

    from oohcore_webhook import ReplayGuard, verify

    guard = ReplayGuard()
    msg_id = verify(secret, request.headers, request.body, now=clock.now(), replay_guard=guard)
"""

from .channel import MAX_RETRY_AFTER, WebhookChannel, WebhookConfig, webhook_body
from .signing import (
    DEFAULT_TOLERANCE,
    ReplayedWebhookError,
    ReplayGuard,
    WebhookVerificationError,
    decode_secret,
    sign,
    verify,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "MAX_RETRY_AFTER",
    "ReplayGuard",
    "ReplayedWebhookError",
    "WebhookChannel",
    "WebhookConfig",
    "WebhookVerificationError",
    "decode_secret",
    "sign",
    "verify",
    "webhook_body",
]
