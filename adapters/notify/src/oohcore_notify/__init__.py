"""GOV.UK Notify (SMS and email) channel for oohcore.

Registered in the entry-point group ``oohcore.channels`` as ``notify`` (:class:`NotifyChannel`,
SMS by default) and ``notify-email`` (:class:`NotifyEmailChannel`). Delivery receipts and
received text messages arrive through Notify's callbacks: see :mod:`oohcore_notify.callbacks`.
:mod:`oohcore_notify.testing` is a local fake Notify server for tests and benchmarks.
"""

from oohcore_notify.callbacks import (
    InboundMessage,
    NotifyCallbackError,
    callback_is_authorised,
    inbound_from_callback,
    receipt_from_callback,
    receipt_from_status,
)
from oohcore_notify.channel import NotifyChannel, NotifyEmailChannel
from oohcore_notify.config import NotifyConfig

__all__ = [
    "InboundMessage",
    "NotifyCallbackError",
    "NotifyChannel",
    "NotifyConfig",
    "NotifyEmailChannel",
    "callback_is_authorised",
    "inbound_from_callback",
    "receipt_from_callback",
    "receipt_from_status",
]
