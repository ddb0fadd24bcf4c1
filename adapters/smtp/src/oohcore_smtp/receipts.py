"""Auto-receipts for e-mails to on-call officers, and the exception report (spec 11.7.3i).

11.7.3i: where an organisation's service standards require auto-receipts for e-mails sent to
On-Call Duty Staff, the Service Provider monitors the responses and reports a summary and the
exceptions. With ``request_receipts`` on, each e-mail asks the officer's mail program for a read
receipt (``Disposition-Notification-To``, RFC 8098) and, where the relay offers DSN, asks the
relays for a delivery report (RFC 3461). What comes back is read here:

* :func:`receipt_from_email` turns one inbound e-mail (decrypting it first when it is S/MIME
  encrypted) into an :class:`oohcore.channels.Receipt` matched to our message by its
  idempotency key, or None when the e-mail is not a receipt for one of our messages: a
  disposition notification (RFC 8098, "displayed" = read), a delivery status notification
  (RFC 3464: delivered, delayed, failed) or an automatic reply (RFC 3834, e.g. out of office).
* :func:`auto_receipt_report` compares the e-mails that asked for a receipt with the receipts
  that came back and lists every exception: a receipt that came later than allowed, one that
  never came, a delivery that failed. A receipt's time is the time its sender wrote on it
  (its ``Date``), or the time it reached us when it has none.
"""

from __future__ import annotations

import email.policy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

from oohcore.channels import Receipt, ReceiptState
from oohcore.clock import as_utc

from .certificates import Identity
from .compose import key_from_message_id
from .smime import SmimeError, decrypt_message, is_encrypted

__all__ = [
    "AutoReceiptReport",
    "ReceiptException",
    "SentForReceipt",
    "auto_receipt_report",
    "receipt_from_email",
]

_POLICY = email.policy.default
MAX_RECEIPT_BYTES = 4 * 1024 * 1024  # a DSN or MDN quoting the headers (or all) of our e-mail


def receipt_from_email(
    raw: bytes,
    *,
    identity: Identity | None,
    received_at: datetime,
    channel: str = "email",
) -> Receipt | None:
    """The receipt that the inbound e-mail ``raw`` carries for one of our messages, or None.

    An encrypted e-mail is decrypted with ``identity`` first (a :class:`SmimeError` when we have
    none, or it is encrypted to someone else). ``received_at`` is when it reached us: the
    receipt's time when the e-mail has no usable ``Date``. An e-mail larger than
    :data:`MAX_RECEIPT_BYTES` is not read (None): a receipt is a few kilobytes.
    """
    if len(raw) > MAX_RECEIPT_BYTES:
        return None
    message = BytesParser(policy=_POLICY).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    if is_encrypted(message):
        if identity is None:
            raise SmimeError(
                "the receipt is encrypted and no identity (certificate and key) is configured "
                "to decrypt it: set identity_certificate and identity_key"
            )
        message = decrypt_message(raw, identity.key, identity.certificate)
    at = _date(message) or as_utc(received_at)
    content = _signed_content(message)
    if content.get_content_type() == "multipart/report":
        report_type = str(content.get_param("report-type", "")).lower()
        if report_type == "disposition-notification":
            return _from_mdn(content, at, channel)
        if report_type == "delivery-status":
            return _from_dsn(content, at, channel)
        return None
    auto = str(message.get("Auto-Submitted", "")).split(";")[0].strip().lower()
    if auto == "auto-replied":
        for message_id in _referenced_ids(message):
            key = key_from_message_id(message_id)
            if key is not None:
                return Receipt(
                    channel=channel,
                    state=ReceiptState.DELIVERED,
                    at=at,
                    provider_ref=message_id,
                    idempotency_key=key,
                    detail="automatic reply (RFC 3834): the mailbox has it; the officer may be away",
                )
    return None


@dataclass(frozen=True, slots=True)
class SentForReceipt:
    """An e-mail sent to an officer that asked for an auto-receipt."""

    idempotency_key: str
    recipient: str
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class ReceiptException:
    """One exception of 11.7.3i: a receipt not received in time, or a delivery that failed.

    ``received_at`` is None when no receipt came at all; ``reason`` says what happened in
    words for the report.
    """

    idempotency_key: str
    recipient: str
    sent_at: datetime
    due_by: datetime
    received_at: datetime | None
    reason: str


@dataclass(frozen=True, slots=True)
class AutoReceiptReport:
    """The summary and exception report of 11.7.3i over a set of e-mails."""

    requested: int
    in_time: int
    late: int
    missing: int
    failed: int
    pending: int  # not yet due, and no receipt so far
    exceptions: tuple[ReceiptException, ...]


def auto_receipt_report(
    sent: Iterable[SentForReceipt],
    receipts: Iterable[Receipt],
    *,
    within: timedelta,
    now: datetime,
) -> AutoReceiptReport:
    """Compare the e-mails that asked for a receipt with the receipts that came back.

    An e-mail is *in time* when a delivered receipt is dated no later than ``within`` after it
    was sent; *late* when the first one is dated after that; *missing* when none has come and
    the time allowed has passed at ``now``; *failed* when a receipt says it cannot be delivered
    (before any delivered receipt); *pending* otherwise. Exceptions are in the order sent.
    """
    now = as_utc(now)
    by_key: dict[str, list[Receipt]] = {}
    for receipt in receipts:
        if receipt.idempotency_key is not None:
            by_key.setdefault(receipt.idempotency_key, []).append(receipt)
    counts = {"in_time": 0, "late": 0, "missing": 0, "failed": 0, "pending": 0}
    exceptions: list[ReceiptException] = []
    for item in sorted(sent, key=lambda s: (as_utc(s.sent_at), s.idempotency_key)):
        sent_at = as_utc(item.sent_at)
        due_by = sent_at + within
        got = sorted(by_key.get(item.idempotency_key, ()), key=lambda r: as_utc(r.at))
        delivered = next((r for r in got if r.state is ReceiptState.DELIVERED), None)
        failed = next((r for r in got if r.state is ReceiptState.PERMANENT_FAILURE), None)
        outcome: str
        reason = ""
        received: datetime | None = None
        if failed is not None and (delivered is None or as_utc(failed.at) < as_utc(delivered.at)):
            outcome, received = "failed", as_utc(failed.at)
            reason = "delivery failed" + (f": {failed.detail}" if failed.detail else "")
        elif delivered is not None:
            received = as_utc(delivered.at)
            if received <= due_by:
                outcome = "in_time"
            else:
                outcome = "late"
                reason = f"receipt {_minutes(received - due_by)} late"
        elif now > due_by:
            outcome = "missing"
            reason = f"no receipt within {_minutes(within)}"
        else:
            outcome = "pending"
        counts[outcome] += 1
        if reason:
            exceptions.append(
                ReceiptException(
                    item.idempotency_key, item.recipient, sent_at, due_by, received, reason
                )
            )
    return AutoReceiptReport(
        requested=sum(counts.values()),
        exceptions=tuple(exceptions),
        **counts,
    )


def _from_mdn(report: EmailMessage, at: datetime, channel: str) -> Receipt | None:
    for block in _blocks(report, "message/disposition-notification"):
        original = block.get("Original-Message-ID")
        key = key_from_message_id(str(original)) if original else None
        if key is None:
            continue
        disposition = str(block.get("Disposition", "")).strip()
        kind = disposition.rsplit(";", 1)[-1].strip().lower()
        kind, _, modifier = kind.partition("/")
        state = ReceiptState.PERMANENT_FAILURE if modifier == "error" else ReceiptState.DELIVERED
        return Receipt(
            channel=channel,
            state=state,
            at=at,
            provider_ref=str(original).strip(),
            idempotency_key=key,
            detail=f"disposition notification: {disposition or 'none given'}",
        )
    return None


_DSN_ACTIONS = {
    "delivered": ReceiptState.DELIVERED,
    "expanded": ReceiptState.DELIVERED,  # delivered to a list, which passed it on
    "relayed": ReceiptState.PENDING,  # passed to a system that gives no reports
    "delayed": ReceiptState.PENDING,
    "failed": ReceiptState.PERMANENT_FAILURE,
}


def _from_dsn(report: EmailMessage, at: datetime, channel: str) -> Receipt | None:
    blocks = _blocks(report, "message/delivery-status")
    if not blocks:
        return None
    envid = blocks[0].get("Original-Envelope-Id")
    key = _xtext_decode(str(envid).strip()) if envid else None
    message_id = _returned_message_id(report)
    if message_id is not None:
        key = key_from_message_id(message_id) or key
    if key is None:
        return None
    for block in blocks[1:]:
        action = str(block.get("Action", "")).strip().lower()
        if action in _DSN_ACTIONS:
            status = str(block.get("Status", "")).strip()
            diagnostic = str(block.get("Diagnostic-Code", "")).strip()
            detail = f"delivery status: {action} {status}".strip()
            if diagnostic:
                detail += f" ({diagnostic})"
            return Receipt(
                channel=channel,
                state=_DSN_ACTIONS[action],
                at=at,
                provider_ref=message_id,
                idempotency_key=key,
                detail=detail,
            )
    return None


def _blocks(report: EmailMessage, content_type: str) -> list[Message]:
    for part in report.iter_parts():
        if part.get_content_type() == content_type:
            payload = part.get_payload()
            if isinstance(payload, list):
                return [b for b in payload if isinstance(b, Message)]
    return []


def _returned_message_id(report: EmailMessage) -> str | None:
    """The Message-ID of the returned message (or its headers) in a report's third part."""
    for part in report.iter_parts():
        ctype = part.get_content_type()
        if ctype in {"message/rfc822", "message/global"}:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                value = payload[0].get("Message-ID")
                return str(value).strip() if value else None
        if ctype in {"text/rfc822-headers", "message/global-headers"}:
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                headers = BytesParser(policy=_POLICY).parsebytes(text, headersonly=True)
                value = headers.get("Message-ID")
                return str(value).strip() if value else None
    return None


def _referenced_ids(message: Message) -> Sequence[str]:
    ids: list[str] = []
    for name in ("In-Reply-To", "References"):
        value = message.get(name)
        if value:
            ids.extend(f"<{part.strip('<> ')}>" for part in str(value).split() if part.strip())
    return ids


def _signed_content(message: EmailMessage) -> EmailMessage:
    """The content of a ``multipart/signed`` message (its signature is not checked here)."""
    if message.get_content_type() == "multipart/signed":
        first = next(message.iter_parts(), None)
        if isinstance(first, EmailMessage):
            return first
    return message


def _date(message: Message) -> datetime | None:
    value = message.get("Date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(str(value))
        # a Date no UTC time holds (Fri, 31 Dec 9999 23:59:59 -1400) is no usable Date either
        return None if when.tzinfo is None else as_utc(when)
    except (TypeError, ValueError, OverflowError):
        return None


def _xtext_decode(value: str) -> str:
    out = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "+" and _is_hex(value[i + 1 : i + 3]):
            out.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            out.extend(value[i].encode("latin-1", "replace"))
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)


def _minutes(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
