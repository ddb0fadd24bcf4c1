"""A hostile pager-gateway delivery report: bounded, nested no deeper than a report is, the
bearer token checked first, and only ``ReceiptError`` for anything malformed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oohcore_pager import ReceiptError, receipt_from_callback

GOOD = {"id": "p-1", "status": "delivered", "at": "2026-01-10T02:01:00Z"}
DEEP: list[Any] = []
for _ in range(5000):
    DEEP = [DEEP]


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 100_000,
        "[" * 3000 + "]" * 3000,
        {**GOOD, "status": DEEP},
        {**GOOD, "id": DEEP},
        {**GOOD, "detail": DEEP, "id": {"x": 1}},
        {**GOOD, "at": "9999-12-31T23:59:59-14:00"},
        {**GOOD, "at": "2026-01-10T24:00:00Z"},
        {**GOOD, "at": "10000-01-01T00:00:00Z"},
        {**GOOD, "at": 12},
        b"\xff" * 10,
    ],
)
def test_a_malformed_report_raises_only_receipt_error(payload: object) -> None:
    with pytest.raises(ReceiptError):
        receipt_from_callback(payload)  # type: ignore[arg-type]


def test_the_bearer_token_is_checked_before_the_body_is_read() -> None:
    body = json.dumps(GOOD).encode()
    receipt = receipt_from_callback(body, authorization="Bearer t0ken-t0ken", token="t0ken-t0ken")
    assert receipt.provider_ref == "p-1"
    with pytest.raises(ReceiptError, match="bearer token"):
        receipt_from_callback(b"[" * 100_000, authorization="Bearer nope", token="t0ken-t0ken")
