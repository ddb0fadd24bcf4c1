"""Pager channels for oohcore (spec 5.2.3.3, 7.5, 7.6: referrals by pager message).

Two channels, each registered in the entry-point group ``oohcore.channels``:

* ``snpp`` (:class:`SnppChannel`): SNPP, RFC 1861 levels 1-2, on asyncio;
* ``pager-http`` (:class:`PagerHttpChannel`): a provider's JSON-over-HTTPS paging gateway.

Both compose a short ASCII text from the message's case data within the pager's length limit,
the reference always kept (:func:`page_text`, spec 5.2.5), keep a per-pager rate limit and the
keys already paged in a :class:`PageLedger`, and map every answer of the provider to sent /
retry / permanent. :mod:`oohcore_pager.testing` has the local peers their tests run against.
"""

from .config import PageRateLimit, PagerConfigError
from .http_channel import (
    MAX_RETRY_AFTER,
    PagerHttpChannel,
    PagerHttpConfig,
    ReceiptError,
    receipt_from_callback,
)
from .ledger import PageLedger
from .snpp import REPLY_OUTCOMES, ReplyOutcome
from .snpp_channel import SnppChannel, SnppConfig
from .text import page_text

__all__ = [
    "MAX_RETRY_AFTER",
    "REPLY_OUTCOMES",
    "PageLedger",
    "PageRateLimit",
    "PagerConfigError",
    "PagerHttpChannel",
    "PagerHttpConfig",
    "ReceiptError",
    "ReplyOutcome",
    "SnppChannel",
    "SnppConfig",
    "page_text",
    "receipt_from_callback",
]
