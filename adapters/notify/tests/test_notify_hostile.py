"""A hostile Notify callback: the bearer token is checked before the body is read, the body is
bounded, and every malformed one (an impossible time, deep nesting, not JSON) raises only
``NotifyCallbackError``."""

from __future__ import annotations

import json

import pytest

from oohcore_notify import NotifyCallbackError, inbound_from_callback, receipt_from_callback

TOKEN = "a-long-callback-token"
RECEIPT = {"id": "abc", "reference": "k", "status": "delivered"}
INBOUND = {
    "id": "in-1",
    "source_number": "447700900123",
    "destination_number": "07700900000",
    "message": "ACK K7Q2M4",
}
IMPOSSIBLE = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2026-12-02T24:00:00Z"]


@pytest.mark.parametrize("stamp", IMPOSSIBLE)
def test_an_impossible_time_is_a_callback_error(stamp: str) -> None:
    with pytest.raises(NotifyCallbackError, match="completed_at"):
        receipt_from_callback({**RECEIPT, "completed_at": stamp})
    with pytest.raises(NotifyCallbackError, match="date_received"):
        inbound_from_callback({**INBOUND, "date_received": stamp})


def test_the_bearer_token_is_checked_before_the_body_is_read() -> None:
    good = json.dumps({**RECEIPT, "completed_at": "2026-12-02T03:04:05Z"}).encode()
    assert receipt_from_callback(good, authorization=f"Bearer {TOKEN}", token=TOKEN).detail
    for header in (None, "Bearer wrong", "Bearer é\ud800"):
        with pytest.raises(NotifyCallbackError, match="bearer token"):
            receipt_from_callback(b"[" * 100_000, authorization=header, token=TOKEN)
        with pytest.raises(NotifyCallbackError, match="bearer token"):
            inbound_from_callback(good, authorization=header, token=TOKEN)


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b"[" * 5_000, b'{"a":' * 3000, b"\xff\xfe", b"not json", b" " * 70_000],
)
def test_a_raw_body_deep_large_or_not_json_is_a_callback_error(body: bytes) -> None:
    with pytest.raises(NotifyCallbackError):
        receipt_from_callback(body, authorization=f"Bearer {TOKEN}", token=TOKEN)
    with pytest.raises(NotifyCallbackError):
        inbound_from_callback(body)
