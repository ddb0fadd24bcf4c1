"""Auto-receipts for e-mails to on-call officers (spec 11.7.3i): the request in the e-mail, the
receipts that come back (read receipt RFC 8098, delivery report RFC 3464, automatic reply
RFC 3834, encrypted ones too) recorded as delivery receipts, and the summary with exceptions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from smtp_peers import OFFICER, T0, OpenSSL, Pki, Relay

from oohcore.channels import DeliveryStatus, ReceiptState
from oohcore.channels.testing import sample_message
from oohcore_smtp import SentForReceipt, auto_receipt_report

RECEIPTS = "ooh-receipts@example-borough.gov.uk"


def _mdn(
    message_id: str, date: str, disposition: str = "manual-action/MDN-sent-manually; displayed"
) -> bytes:
    return (
        f"From: {OFFICER}\r\nTo: {RECEIPTS}\r\nDate: {date}\r\nSubject: Read: Referral alert\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="b1"\r\n'
        "\r\n--b1\r\nContent-Type: text/plain\r\n\r\nThe message was displayed.\r\n"
        "--b1\r\nContent-Type: message/disposition-notification\r\n\r\n"
        "Reporting-UA: mail.example-borough.gov.uk; Outlook\r\n"
        f"Final-Recipient: rfc822;{OFFICER}\r\n"
        f"Original-Message-ID: {message_id}\r\n"
        f"Disposition: {disposition}\r\n"
        "\r\n--b1--\r\n"
    ).encode()


def _dsn(message_id: str, action: str, status: str) -> bytes:
    return (
        f"From: MAILER-DAEMON@example-borough.gov.uk\r\nTo: {RECEIPTS}\r\n"
        "Date: Thu, 15 Jan 2026 03:01:00 +0000\r\nSubject: Delivery Status Notification\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b2"\r\n'
        "\r\n--b2\r\nContent-Type: text/plain\r\n\r\nDelivery report.\r\n"
        "--b2\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example-borough.gov.uk\r\n\r\n"
        f"Final-Recipient: rfc822;{OFFICER}\r\nAction: {action}\r\nStatus: {status}\r\n"
        "\r\n--b2\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {message_id}\r\nSubject: Referral alert\r\n"
        "\r\n--b2--\r\n"
    ).encode()


def test_the_email_asks_for_a_receipt_at_the_configured_address(
    make_channel: Any, relay: Relay
) -> None:
    result = make_channel(request_receipts=True, receipts_to=RECEIPTS).send(
        sample_message(OFFICER, channel="email")
    )
    assert result.status is DeliveryStatus.SENT, result.error
    (got,) = relay.handler.received
    assert got.message["Disposition-Notification-To"] == RECEIPTS
    assert make_channel(request_receipts=True).info.receipts is True
    assert make_channel().info.receipts is False


def test_a_read_receipt_is_recorded_as_delivered(make_channel: Any, relay: Relay) -> None:
    channel = make_channel(request_receipts=True, receipts_to=RECEIPTS)
    message = sample_message(OFFICER, channel="email")
    sent = channel.send(message)
    receipt = channel.receipt(_mdn(sent.provider_ref, "Thu, 15 Jan 2026 03:04:00 +0000"))
    assert receipt is not None
    assert receipt.state is ReceiptState.DELIVERED
    assert receipt.idempotency_key == message.idempotency_key
    assert receipt.at == T0 + timedelta(minutes=4)
    failed = channel.receipt(
        _mdn(
            sent.provider_ref,
            "Thu, 15 Jan 2026 03:05:00 +0000",
            "automatic-action/MDN-sent-automatically; deleted/error",
        )
    )
    assert failed is not None and failed.state is ReceiptState.PERMANENT_FAILURE


def test_delivery_reports_and_automatic_replies(make_channel: Any) -> None:
    channel = make_channel(request_receipts=True)
    message = sample_message(OFFICER, channel="email")
    ref = channel.send(message).provider_ref
    delivered = channel.receipt(_dsn(ref, "delivered", "2.0.0"))
    assert delivered is not None and delivered.state is ReceiptState.DELIVERED
    assert delivered.idempotency_key == message.idempotency_key
    bounced = channel.receipt(_dsn(ref, "failed", "5.1.1"))
    assert bounced is not None and bounced.state is ReceiptState.PERMANENT_FAILURE
    away = (
        f"From: {OFFICER}\r\nTo: {RECEIPTS}\r\nAuto-Submitted: auto-replied\r\n"
        f"In-Reply-To: {ref}\r\nSubject: Out of office\r\n\r\nI am away.\r\n"
    ).encode()
    reply = channel.receipt(away)
    assert reply is not None and reply.state is ReceiptState.DELIVERED
    assert "automatic reply" in (reply.detail or "")
    unrelated = b"From: a@b.example\r\nSubject: hello\r\n\r\nnot a receipt\r\n"
    assert channel.receipt(unrelated) is None


def test_an_encrypted_read_receipt_is_decrypted_and_recorded(
    make_channel: Any, pki: Pki, openssl: OpenSSL
) -> None:
    channel = make_channel(request_receipts=True)
    message = sample_message(OFFICER, channel="email")
    ref = channel.send(message).provider_ref
    (openssl.folder / "mdn.eml").write_bytes(_mdn(ref, "Thu, 15 Jan 2026 03:02:00 +0000"))
    encrypted = openssl("cms", "-encrypt", "-aes256", "-in", "mdn.eml", pki.identity_cert)
    receipt = channel.receipt(encrypted)
    assert receipt is not None and receipt.idempotency_key == message.idempotency_key


def test_the_11_7_3i_summary_lists_late_missing_and_failed(make_channel: Any) -> None:
    channel = make_channel(request_receipts=True)
    messages = [sample_message(OFFICER, channel="email") for _ in range(4)]
    refs = [channel.send(m).provider_ref for m in messages]
    receipts = [
        channel.receipt(_mdn(refs[0], "Thu, 15 Jan 2026 03:10:00 +0000")),  # in time
        channel.receipt(_mdn(refs[1], "Thu, 15 Jan 2026 03:45:00 +0000")),  # 15 min late
        channel.receipt(_dsn(refs[2], "failed", "5.2.2")),  # mailbox full
    ]
    sent = [SentForReceipt(m.idempotency_key, OFFICER, T0) for m in messages]
    report = auto_receipt_report(
        sent, [r for r in receipts if r], within=timedelta(minutes=30), now=T0 + timedelta(hours=1)
    )
    assert (report.requested, report.in_time, report.late, report.failed, report.missing) == (
        4,
        1,
        1,
        1,
        1,
    )
    reasons = {e.idempotency_key: e.reason for e in report.exceptions}
    assert reasons[messages[1].idempotency_key] == "receipt 15 min late"
    assert reasons[messages[2].idempotency_key].startswith("delivery failed")
    assert reasons[messages[3].idempotency_key] == "no receipt within 30 min"
