"""The webhook against the official Standard Webhooks library (``standardwebhooks`` from the
package registry) both ways, and a hostile request: ``verify`` checks the signature before it
reads the timestamp, and raises only ``WebhookVerificationError``."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from webhook_receiver import SECRET, WebhookReceiver

from oohcore.channels import DeliveryStatus
from oohcore.channels.testing import sample_message
from oohcore.clock import ManualClock
from oohcore_webhook import WebhookChannel, WebhookConfig, WebhookVerificationError, sign, verify
from oohcore_webhook.signing import decode_secret

NOW = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
UNPADDED = "whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("=")  # 32 bytes: one '='


def test_a_secret_without_padding_is_read_as_the_official_library_reads_it() -> None:
    assert not UNPADDED.endswith("=")
    WebhookConfig(url="https://crm.example.gov.uk/hook", secret=UNPADDED)  # accepted
    assert decode_secret(UNPADDED) == b"k" * 32
    official = Webhook(UNPADDED)
    ours = sign(UNPADDED, "msg_1", int(NOW.timestamp()), b"{}")
    assert ours == official.sign("msg_1", NOW, b"{}")


@pytest.mark.parametrize("key", ["K7Q2M4:alert:1", "référence:ø:1", "a b\tc", "x" * 300])
def test_what_we_send_verifies_with_the_official_library(
    receiver: WebhookReceiver, clock: ManualClock, key: str
) -> None:
    """Any idempotency key (non-ASCII included) is sent with an ASCII webhook-id that the
    official library verifies, the same id on a retry."""
    channel = WebhookChannel(url=receiver.url, secret=SECRET, clock=clock)
    message = sample_message("crm", channel="crm", key=key)
    assert channel.send(message).status is DeliveryStatus.SENT
    assert channel.send(message).status is DeliveryStatus.SENT  # the receiver drops the repeat
    channel.close()
    (got,) = receiver.deliveries
    assert got.headers["webhook-id"].isascii() and got.json["data"]["idempotency_key"] == key
    stamp = datetime.fromtimestamp(int(got.headers["webhook-timestamp"]), UTC)
    expected = Webhook(SECRET).sign(got.headers["webhook-id"], stamp, got.body)
    assert got.headers["webhook-signature"] == expected


def test_what_the_official_library_signs_verifies_here() -> None:
    body = b'{"type":"crm.case.updated","data":{"id":"SR-1"}}'
    headers = {
        "webhook-id": "msg_2Lq9ZfKx",
        "webhook-timestamp": str(int(NOW.timestamp())),
        "webhook-signature": Webhook(UNPADDED).sign("msg_2Lq9ZfKx", NOW, body),
    }
    assert verify(UNPADDED, headers, body, now=NOW) == "msg_2Lq9ZfKx"


@pytest.mark.parametrize(
    "stamp", ["9" * 4000, "1" + "0" * 300, "-5", "1e9", "١٢٣", "12345678901234567890"]
)
def test_a_hostile_timestamp_is_refused_unsigned_or_signed(stamp: str) -> None:
    """Unsigned, refused for its signature before the timestamp is read; signed by someone
    holding the secret, refused as not a time in the window: never an OverflowError."""
    body = b"{}"
    unsigned = {"webhook-id": "m", "webhook-timestamp": stamp, "webhook-signature": "v1,AAAA"}
    with pytest.raises(WebhookVerificationError, match=r"no webhook-signature matches|longer"):
        verify(SECRET, unsigned, body, now=NOW)
    key = decode_secret(SECRET)
    import hashlib
    import hmac

    mac = hmac.new(key, f"m.{stamp}.".encode() + body, hashlib.sha256).digest()
    signed = {**unsigned, "webhook-signature": "v1," + base64.b64encode(mac).decode()}
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, signed, body, now=NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {"webhook-id": "m", "webhook-timestamp": "1", "webhook-signature": "v1,é"},
        {"webhook-id": "é\ud800", "webhook-timestamp": "1", "webhook-signature": "v1,A"},
        {"webhook-id": None, "webhook-timestamp": "1", "webhook-signature": "v1,A"},
        {"webhook-id": "m", "webhook-timestamp": "1", "webhook-signature": "v1," + "A" * 5000},
    ],
)
def test_odd_headers_are_refused_with_the_documented_error(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers, b"{}", now=NOW)
