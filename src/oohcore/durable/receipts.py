"""Delivery attempts and receipts: what was tried for each message, and what came back.

* Every attempt is kept in ``delivery_attempts`` (``record_attempt``, ``attempts_for``): when,
  the outcome, the error, the provider's id. The outbox row keeps the final state (``sent_at`` /
  ``failed_at``) and reason (``last_error``).
* Delivery receipts (``record_receipt(conn, receipt)``) are matched to their message by the
  idempotency key or the provider's id, kept in ``delivery_receipts`` (a provider's repeated
  callback is kept once), and the latest state is copied to the message. A failure receipt for
  a message not already failed calls ``on_receipt`` (the engine escalates: the officer did not
  get it). A receipt that matches no message is kept too, and is not an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    select,
)

from oohcore.channels import Receipt, ReceiptState
from oohcore.clock import as_utc
from oohcore.durable.outbox import _ID, OutboxRow, _queue, _row, outbox
from oohcore.store.columns import UTCDateTime
from oohcore.store.queue import cut_error
from oohcore.store.schema import metadata
from oohcore.store.statements import Prepared, insert_if_absent

__all__ = [
    "AttemptOutcome",
    "AttemptRow",
    "ReceiptCallback",
    "ReceiptRecord",
    "attempts_for",
    "delivery_attempts",
    "delivery_receipts",
    "receipts_for",
    "record_attempt",
    "record_receipt",
]

# One row per sending attempt (8.14: proof of what was tried, when, and what the provider said).
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("message_id", _ID, ForeignKey("outbox.id"), nullable=False),
    Column("attempt", Integer(), nullable=False),
    Column("at", UTCDateTime(), nullable=False),  # the logical time recorded
    Column("started_at", UTCDateTime(), nullable=True),  # real time the send began
    Column("outcome", String(16), nullable=False),  # AttemptOutcome
    Column("error", Text(), nullable=True),
    Column("provider_ref", String(255), nullable=True),
    Index(None, "message_id", "attempt"),
)

# Delivery reports that arrive after sending (a provider's callback, a status look-up).
delivery_receipts = Table(
    "delivery_receipts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    # a digest of what the receipt says: a provider's repeated callback is kept once
    Column("digest", String(64), nullable=False, unique=True),
    Column("message_id", _ID, ForeignKey("outbox.id"), nullable=True),  # None: matched nothing
    Column("channel", String(64), nullable=False),
    Column("state", String(32), nullable=False),
    Column("at", UTCDateTime(), nullable=False),  # the provider's time
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("provider_ref", String(255), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("detail", Text(), nullable=True),
    Index(None, "message_id"),
)


class AttemptOutcome(StrEnum):
    """What one sending attempt came to (the ``outcome`` of ``delivery_attempts``)."""

    SENT = "sent"
    DUPLICATE = "duplicate"  # sent: the channel recognised an earlier delivery of the key
    RETRY = "retry"  # a temporary failure (the channel said so, or ``send`` raised)
    PERMANENT = "permanent"  # the channel said it can never be delivered as it is
    NOT_RECORDED = "not_recorded"  # the channel sent it, but recording it (on_sent) failed


@dataclass(frozen=True, slots=True)
class AttemptRow:
    message_id: int
    attempt: int
    at: datetime
    started_at: datetime | None
    outcome: AttemptOutcome
    error: str | None
    provider_ref: str | None


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """What :func:`record_receipt` did with a receipt."""

    receipt: Receipt
    message: OutboxRow | None  # the message it matched (None: it matched none)
    recorded: bool  # False: the same receipt had been recorded before (nothing changed)
    undelivered: bool = False  # a failure receipt for a message not already failed


ReceiptCallback = Callable[[Connection, OutboxRow, Receipt, datetime], None]

_receipt_state = Prepared(
    outbox.update()
    .where(outbox.c.id == bindparam("b_id"))
    .values(receipt_state=bindparam("state"), receipt_at=bindparam("at"))
)
_by_ref = Prepared(
    select(*outbox.columns)
    .where(outbox.c.provider_ref == bindparam("ref"))
    .order_by(outbox.c.id.desc())
    .limit(10)
)
_attempt_columns = ("message_id", "attempt", "at", "started_at", "outcome", "error", "provider_ref")
_insert_attempt = Prepared(delivery_attempts.insert(), keys=_attempt_columns)
_attempts_for = Prepared(
    select(*(delivery_attempts.c[name] for name in _attempt_columns))
    .where(delivery_attempts.c.message_id == bindparam("message_id"))
    .order_by(delivery_attempts.c.id)
)
_receipt_columns = ("channel", "state", "at", "provider_ref", "idempotency_key", "detail")
_receipts_for = Prepared(
    select(*(delivery_receipts.c[name] for name in _receipt_columns))
    .where(delivery_receipts.c.message_id == bindparam("message_id"))
    .order_by(delivery_receipts.c.at, delivery_receipts.c.id)
)


def record_attempt(
    conn: Connection,
    row: OutboxRow,
    *,
    at: datetime,
    outcome: AttemptOutcome,
    error: str | None = None,
    provider_ref: str | None = None,
    started_at: datetime | None = None,
) -> None:
    """Keep one sending attempt of ``row`` (its number is ``row.attempts``)."""
    _insert_attempt.execute(
        conn,
        {
            "message_id": row.id,
            "attempt": row.attempts,
            "at": at,
            "started_at": started_at,
            "outcome": outcome.value,
            "error": cut_error(error) if error is not None else None,
            "provider_ref": provider_ref,
        },
    )


def attempts_for(conn: Connection, message_id: int) -> list[AttemptRow]:
    """Every sending attempt of a message, in order."""
    return [
        AttemptRow(int(r[0]), int(r[1]), r[2], r[3], AttemptOutcome(r[4]), r[5], r[6])
        for r in _attempts_for.execute(conn, {"message_id": message_id}).rows
    ]


_FAILURES = frozenset({ReceiptState.PERMANENT_FAILURE, ReceiptState.TEMPORARY_FAILURE})


def record_receipt(
    conn: Connection,
    receipt: Receipt,
    *,
    at: datetime,
    on_receipt: ReceiptCallback | None = None,
) -> ReceiptRecord:
    """Keep a delivery receipt and apply it to its message (see the module doc).

    The message is found by ``receipt.idempotency_key``, else by ``receipt.provider_ref`` (on the
    receipt's channel when several messages share the reference). ``at`` is when it is recorded.
    The same receipt recorded twice (a provider retrying its callback) changes nothing the second
    time. A failure receipt (permanent or temporary) for a message that is not already failed
    calls ``on_receipt(conn, message, receipt, at)`` in this transaction: the message was sent,
    or is being sent, but did not reach the person (8.14), so the caller escalates.
    """
    message = _match(conn, receipt)
    digest = hashlib.sha256(
        "\x00".join(
            (
                receipt.channel,
                receipt.state.value,
                as_utc(receipt.at).isoformat(),
                receipt.provider_ref or "",
                receipt.idempotency_key or "",
                receipt.detail or "",
            )
        ).encode()
    ).hexdigest()
    _, created = insert_if_absent(
        conn,
        delivery_receipts,
        "digest",
        {
            "digest": digest,
            "message_id": message.id if message else None,
            "channel": receipt.channel,
            "state": receipt.state.value,
            "at": receipt.at,
            "recorded_at": at,
            "provider_ref": receipt.provider_ref,
            "idempotency_key": receipt.idempotency_key,
            "detail": cut_error(receipt.detail) if receipt.detail else None,
        },
    )
    if not created or message is None:
        return ReceiptRecord(receipt, message, created)
    if message.receipt_at is None or as_utc(receipt.at) >= message.receipt_at:
        _receipt_state.execute(
            conn, {"b_id": message.id, "state": receipt.state.value, "at": receipt.at}
        )
        message = replace(message, receipt_state=receipt.state.value, receipt_at=as_utc(receipt.at))
    undelivered = receipt.state in _FAILURES and message.failed_at is None
    if undelivered and on_receipt is not None:
        on_receipt(conn, message, receipt, at)
    return ReceiptRecord(receipt, message, True, undelivered)


def _match(conn: Connection, receipt: Receipt) -> OutboxRow | None:
    if receipt.idempotency_key:
        found = _queue.by_key(conn, receipt.idempotency_key)
        if found is not None:
            return _row(found)
    if receipt.provider_ref:
        rows = [_row(r) for r in _by_ref.execute(conn, {"ref": receipt.provider_ref}).rows]
        same = [r for r in rows if r.channel == receipt.channel]
        found_rows = same or rows
        return found_rows[0] if found_rows else None
    return None


def receipts_for(conn: Connection, message_id: int) -> list[Receipt]:
    """Every receipt kept for a message, by the provider's time."""
    return [
        Receipt(
            channel=r[0],
            state=ReceiptState(r[1]),
            at=r[2],
            provider_ref=r[3],
            idempotency_key=r[4],
            detail=r[5],
        )
        for r in _receipts_for.execute(conn, {"message_id": message_id}).rows
    ]
