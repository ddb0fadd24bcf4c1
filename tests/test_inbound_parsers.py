"""Every adapter's inbound parser, fed what a hostile peer sends, raises only an exception that
docs/integration.md's table lists (read from the doc, as the façade's misuse test does): never
an ``OverflowError``, a ``RecursionError`` or a bare ``ValueError``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from oohcore.clock import ManualClock
from oohcore_feed import FeedChannel
from oohcore_notify import inbound_from_callback, receipt_from_callback, receipt_from_status
from oohcore_pager import receipt_from_callback as pager_receipt
from oohcore_smtp.receipts import receipt_from_email
from oohcore_webhook import verify
from test_facade_inputs import documented_exceptions

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
LATE = "9999-12-31T23:59:59-14:00"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DEEP = b"[" * 50_000


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeedChannel]:
    channel = FeedChannel(
        directory=tmp_path_factory.mktemp("feed"), clock=ManualClock(NOW), fsync=False
    )
    yield channel
    channel.close()


def _ack(at: str, through: str = "0") -> bytes:
    return (
        f'<acknowledgement xmlns="urn:oohcore:feed-ack:1" organisation="o" through="{through}" '
        f'at="{at}"/>'
    ).encode()


def _headers(stamp: str, signature: str = "v1,AAAA") -> dict[str, str]:
    return {"webhook-id": "m", "webhook-timestamp": stamp, "webhook-signature": signature}


CASES: dict[str, Callable[[FeedChannel], Any]] = {
    "notify receipt late": lambda f: receipt_from_callback(
        {"id": "a", "status": "delivered", "completed_at": LATE}
    ),
    "notify status late": lambda f: receipt_from_status(
        {"id": "a", "status": "delivered", "created_at": LATE}
    ),
    "notify inbound late": lambda f: inbound_from_callback(
        {
            "id": "a",
            "source_number": "1",
            "destination_number": "2",
            "message": "",
            "date_received": LATE,
        }
    ),
    "notify deep body": lambda f: receipt_from_callback(DEEP),
    "notify wrong token": lambda f: inbound_from_callback(DEEP, authorization="x", token="t" * 20),
    "pager deep body": lambda f: pager_receipt(DEEP),
    "pager late": lambda f: pager_receipt({"id": "p", "status": "delivered", "at": LATE}),
    "pager nested id": lambda f: pager_receipt(
        {"id": [[[]]], "status": "delivered", "at": "2026-01-01T00:00:00Z"}
    ),
    "webhook 4000-digit timestamp": lambda f: verify(SECRET, _headers("9" * 4000), b"{}", now=NOW),
    "webhook non-ASCII signature": lambda f: verify(SECRET, _headers("1", "v1,é"), b"{}", now=NOW),
    "feed 24:00": lambda f: f.receipts(_ack("2026-12-02T24:00:00Z")),
    "feed year 10000": lambda f: f.receipts(_ack("10000-01-01T00:00:00Z")),
    "feed huge through": lambda f: f.receipts(_ack("2026-12-02T03:00:00Z", "9" * 5000)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_input_raises_a_documented_exception(feed: FeedChannel, case: str) -> None:
    with pytest.raises(Exception) as raised:
        CASES[case](feed)
    assert type(raised.value).__name__ in documented_exceptions(), (
        f"{case} raised {type(raised.value).__name__}: {raised.value}"
    )


def test_an_e_mail_receipt_with_a_date_no_utc_time_holds_is_read_at_its_arrival() -> None:
    raw = b"Date: Fri, 31 Dec 9999 23:59:59 -1400\r\nSubject: hi\r\n\r\nx"
    assert receipt_from_email(raw, identity=None, received_at=NOW) is None
    assert receipt_from_email(b"x" * (5 * 1024 * 1024), identity=None, received_at=NOW) is None


def test_the_table_names_each_parsers_exception() -> None:
    from oohcore_feed import UnsafeXMLError, XMLInputError
    from oohcore_notify import NotifyCallbackError
    from oohcore_pager import ReceiptError
    from oohcore_smtp import SmimeError
    from oohcore_webhook import ReplayedWebhookError, WebhookVerificationError

    named = documented_exceptions()
    for cls in (
        NotifyCallbackError,
        ReceiptError,
        WebhookVerificationError,
        XMLInputError,
        SmimeError,
    ):
        assert cls.__name__ in named
    assert issubclass(ReplayedWebhookError, WebhookVerificationError)
    assert issubclass(UnsafeXMLError, XMLInputError)
    assert (
        Path(__file__).name
        in (Path(__file__).parent.parent / "docs" / "integration.md").read_text()
    )
