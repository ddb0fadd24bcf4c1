"""Reading what a provider sends back (delivery receipts, inbound texts, acknowledgements),
for the adapters' inbound parsers.

Whatever arrives at a callback URL may come from anyone. Each adapter's parser checks, in this
order: who sent it (a bearer token or a signature, before a byte of the body is read as data),
its size, then its content; and raises only its own documented exception (a
:class:`ValueError` from here is turned into it). These helpers do the parts they share:

* :func:`bearer_matches`: an ``Authorization: Bearer <token>`` header, compared in constant time;
* :func:`json_document`: JSON of at most ``max_bytes`` and ``max_depth`` levels of nesting
  (Python's parser would otherwise raise ``RecursionError`` on a few kilobytes of ``[``);
* :func:`instant`: an ISO 8601 time as an aware UTC datetime, refusing one that has no zone,
  that no calendar has (``24:00``, year 10000) or that falls outside what a datetime holds once
  moved to UTC (``9999-12-31T23:59:59-14:00``).
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Any

__all__ = ["MAX_CALLBACK_BYTES", "MAX_DEPTH", "bearer_matches", "instant", "json_document"]

MAX_CALLBACK_BYTES = 64 * 1024  # a receipt or an inbound text is a few hundred bytes
MAX_DEPTH = 16  # what a provider's callback nests (Notify's: 1 level)
_MAX_TIME = 64  # characters of an ISO 8601 time, generously


def bearer_matches(authorization: object, token: str) -> bool:
    """Whether ``authorization`` is ``Bearer <token>``, compared in constant time (non-ASCII
    header text is compared as UTF-8 bytes, never refused with a ``TypeError``)."""
    if not isinstance(authorization, str) or not authorization or not token:
        return False
    given = authorization.encode("utf-8", "replace")
    return hmac.compare_digest(given, f"Bearer {token}".encode("utf-8", "replace"))


def _depth(text: str, limit: int) -> bool:
    """Whether ``text`` nests arrays and objects at most ``limit`` deep (strings skipped)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return False
        elif char in "]}":
            depth -= 1
    return True


def json_document(
    data: bytes | bytearray | str,
    *,
    max_bytes: int = MAX_CALLBACK_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """``data`` parsed as JSON; ``ValueError`` saying why when it is larger than ``max_bytes``,
    nested deeper than ``max_depth``, not UTF-8 or not JSON."""
    size = len(data.encode("utf-8", "replace")) if isinstance(data, str) else len(data)
    if size > max_bytes:
        raise ValueError(f"{size:,} bytes is more than the {max_bytes:,} accepted")
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    if not _depth(text, max_depth):
        raise ValueError(f"nested more than {max_depth} levels deep")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not JSON ({str(exc)[:80]})") from None


def instant(value: object, *, naive_is_utc: bool = False) -> datetime:
    """``value``, an ISO 8601 time, as an aware UTC datetime; ``ValueError`` saying why not.
    A time without a zone is UTC with ``naive_is_utc`` (Notify writes some so), else refused."""
    if not isinstance(value, str) or not value or len(value) > _MAX_TIME:
        raise ValueError("expected an ISO 8601 time such as 2026-12-02T03:04:05Z")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 time such as 2026-12-02T03:04:05Z"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        if not naive_is_utc:
            raise ValueError(f"{value!r} has no time zone (write Z for UTC)")
        return when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value!r} is outside the years a time can have in UTC") from None
