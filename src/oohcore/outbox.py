"""The transactional outbox: every message leaves through a row written with its cause.

A referral to the on-call officer (5.2.3.3, 7.5), an escalation, a back-office alert (7.6), the
XML feed (7.8) or the caller's follow-up SMS is never sent directly from the call's logic. It is
**enqueued** as a row of ``outbox`` in the same transaction as the state change and audit event
that cause it, and a :class:`~oohcore.runner.Runner` sends it afterwards through a channel
adapter. So a message exists if and only if its cause committed, and a crash loses none.

Delivery is **at least once**: a runner that crashes after a channel accepted a message but
before the row was marked sent sends it again. Every message carries a unique
``idempotency_key``, and channels and their receivers must use it as a dedupe key (see
:mod:`oohcore.channels`): at-least-once delivery plus an idempotent receiver gives one effect.

Contract
--------

* ``enqueue(conn, message, at=...)`` → ``(id, created)``; enqueuing the same
  ``idempotency_key`` again does nothing (``created`` is False) and returns the existing id.
* ``claim_due(conn, now, limit=, lease=)`` takes up to ``limit`` due messages for sending and
  counts an attempt on each: it moves their ``next_attempt_at`` to ``now + lease``, so another
  runner does not take them meanwhile and, if this runner dies, they become due again when the
  lease ends. On PostgreSQL the rows are read ``FOR UPDATE SKIP LOCKED``.
* After sending: ``mark_sent(conn, id, at=, provider_ref=)`` (conditional, ``False`` if the row
  was already finished) or ``record_failure(conn, row, at=, error=, policy=, permanent=)`` which
  schedules the next attempt with exponential backoff, or marks the message failed when it was
  permanent or ``policy.max_attempts`` attempts have been made. The retry state is durable in
  the row (``attempts``, ``next_attempt_at``, ``last_error``), so backoff survives restarts.
  When a message fails for good the caller records an event and starts its escalation (the
  runner's ``on_failed`` callback runs in the same transaction as the failure mark).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    select,
    update,
)

from oohcore.channels import OutboundMessage
from oohcore.clock import as_utc
from oohcore.db import metadata
from oohcore.errors import OohcoreError
from oohcore.store import JSONValueError, Prepared, UTCDateTime, insert_if_absent, to_json

__all__ = [
    "FailureOutcome",
    "OutboundMessage",
    "OutboxError",
    "OutboxRow",
    "RetryPolicy",
    "claim_due",
    "enqueue",
    "get_message",
    "mark_sent",
    "messages_for_call",
    "outbox",
    "record_failure",
]

_ID = BigInteger().with_variant(Integer(), "sqlite")

outbox = Table(
    "outbox",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("organisation_id", String(100), nullable=False),
    Column("call_id", String(100), nullable=True),
    Column("channel", String(64), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("subject", Text(), nullable=False),
    Column("body", Text(), nullable=False),
    # Channel-specific options as JSON (e.g. encryption required, protective marking, 7.7).
    Column("meta", Text(), nullable=False),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer(), nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("claim_token", String(32), nullable=True),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("failed_at", UTCDateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("provider_ref", String(255), nullable=True),
    # why it is sent (oohcore.vocabulary.MessagePurpose), the call's reference, the case data
    Column("purpose", String(32), nullable=False, server_default="other"),
    Column("reference", String(32), nullable=True),
    Column("fields", Text(), nullable=False, server_default="{}"),
    Index(None, "sent_at", "failed_at", "next_attempt_at"),
    Index(None, "call_id"),
)


class OutboxError(OohcoreError):
    """A message could not be enqueued or updated."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A message as stored, with its delivery state."""

    id: int
    message: OutboundMessage
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    failed_at: datetime | None
    last_error: str | None
    provider_ref: str | None
    claim_token: str | None

    @property
    def organisation_id(self) -> str:
        return self.message.organisation_id

    @property
    def call_id(self) -> str | None:
        return self.message.call_id

    @property
    def channel(self) -> str:
        return self.message.channel

    @property
    def idempotency_key(self) -> str:
        return self.message.idempotency_key

    @property
    def pending(self) -> bool:
        return self.sent_at is None and self.failed_at is None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with a cap, and the number of attempts before a message fails.

    Attempt *n* (1-based) that fails with a retryable error is retried after
    ``min(max_delay, first_delay * multiplier ** (n - 1))``. The defaults try 5 times within
    about 4 minutes (0, 15 s, 30 s, 60 s, 120 s), well inside the 10-minute referral limit
    (6.4 b), leaving the escalation timers time to act on a failure.
    """

    max_attempts: int = 5
    first_delay: timedelta = timedelta(seconds=15)
    multiplier: float = 2.0
    max_delay: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise OutboxError("RetryPolicy.max_attempts must be at least 1")
        if self.first_delay < timedelta(0) or self.max_delay < timedelta(0):
            raise OutboxError("RetryPolicy delays must not be negative")
        if self.multiplier < 1:
            raise OutboxError("RetryPolicy.multiplier must be at least 1")

    def delay_after(self, attempt: int) -> timedelta:
        """How long to wait after failed attempt number ``attempt`` (1-based)."""
        factor = self.multiplier ** max(0, attempt - 1)
        seconds = min(self.max_delay.total_seconds(), self.first_delay.total_seconds() * factor)
        return timedelta(seconds=seconds)


class FailureOutcome(Enum):
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"
    ALREADY_FINISHED = "already_finished"


_columns = (
    outbox.c.id,
    outbox.c.organisation_id,
    outbox.c.call_id,
    outbox.c.channel,
    outbox.c.recipient,
    outbox.c.subject,
    outbox.c.body,
    outbox.c.meta,
    outbox.c.idempotency_key,
    outbox.c.created_at,
    outbox.c.due_at,
    outbox.c.attempts,
    outbox.c.next_attempt_at,
    outbox.c.sent_at,
    outbox.c.failed_at,
    outbox.c.last_error,
    outbox.c.provider_ref,
    outbox.c.claim_token,
    outbox.c.purpose,
    outbox.c.reference,
    outbox.c.fields,
)
_pending = (outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None))

_due = Prepared(
    select(*_columns)
    .where(*_pending, outbox.c.next_attempt_at <= bindparam("now"))
    .order_by(outbox.c.next_attempt_at, outbox.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_claim = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("message_id"), *_pending)
    .values(
        attempts=outbox.c.attempts + 1,
        next_attempt_at=bindparam("lease_until"),
        claim_token=bindparam("token"),
    )
)
_mark_sent = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("message_id"), *_pending)
    .values(sent_at=bindparam("at"), provider_ref=bindparam("ref"), last_error=None)
)
_retry = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("message_id"), *_pending)
    .values(next_attempt_at=bindparam("next_at"), last_error=bindparam("error"))
)
_fail = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("message_id"), *_pending)
    .values(failed_at=bindparam("at"), last_error=bindparam("error"))
)
_for_call = Prepared(
    select(*_columns).where(outbox.c.call_id == bindparam("call_id")).order_by(outbox.c.id)
)
_by_key = Prepared(select(*_columns).where(outbox.c.idempotency_key == bindparam("key")))


def _row(r: Sequence[Any]) -> OutboxRow:
    return OutboxRow(
        id=int(r[0]),
        message=OutboundMessage(
            organisation_id=r[1],
            call_id=r[2],
            channel=r[3],
            recipient=r[4],
            subject=r[5],
            body=r[6],
            meta=json.loads(r[7]),
            idempotency_key=r[8],
            due_at=r[10],
            purpose=r[18],
            reference=r[19],
            fields=json.loads(r[20]),
        ),
        created_at=r[9],
        attempts=int(r[11]),
        next_attempt_at=r[12],
        sent_at=r[13],
        failed_at=r[14],
        last_error=r[15],
        provider_ref=r[16],
        claim_token=r[17],
    )


def enqueue(conn: Connection, message: OutboundMessage, *, at: datetime) -> tuple[int, bool]:
    """Write ``message`` to the outbox in ``conn``'s transaction.

    Returns ``(id, created)``; a message whose ``idempotency_key`` is already in the outbox is
    not written again (``created`` is False), whatever its state.
    """
    if not message.idempotency_key:
        raise OutboxError("an outbound message needs a non-empty idempotency_key")
    if not message.channel:
        raise OutboxError(f"message {message.idempotency_key!r} has no channel")
    if not message.recipient:
        raise OutboxError(f"message {message.idempotency_key!r} has no recipient")
    try:
        at = as_utc(at)
        due = as_utc(message.due_at) if message.due_at is not None else at
        meta_json = to_json(dict(message.meta))
        fields_json = to_json(dict(message.fields))
    except (ValueError, JSONValueError) as exc:
        raise OutboxError(f"message {message.idempotency_key!r}: {exc}") from exc
    return insert_if_absent(
        conn,
        outbox,
        "idempotency_key",
        {
            "organisation_id": message.organisation_id,
            "call_id": message.call_id,
            "channel": message.channel,
            "recipient": message.recipient,
            "subject": message.subject,
            "body": message.body,
            "meta": meta_json,
            "idempotency_key": message.idempotency_key,
            "created_at": at,
            "due_at": due,
            "attempts": 0,
            "next_attempt_at": due,
            "purpose": str(message.purpose),
            "reference": message.reference,
            "fields": fields_json,
        },
    )


def claim_due(
    conn: Connection, now: datetime, *, limit: int = 100, lease: timedelta = timedelta(minutes=2)
) -> list[OutboxRow]:
    """Claim up to ``limit`` due messages for one sending attempt each (see the module doc).

    The returned rows show the state *after* the claim (``attempts`` already counts this
    attempt). Run it in its own short transaction, send outside any transaction, then record
    each result in a transaction of its own.
    """
    rows = [_row(r) for r in _due.execute(conn, {"now": now, "limit": limit}).rows]
    if not rows:
        return []
    token = secrets.token_hex(16)
    lease_until = as_utc(now) + lease
    _claim.executemany(
        conn, [{"message_id": r.id, "lease_until": lease_until, "token": token} for r in rows]
    )
    return [
        OutboxRow(
            id=r.id,
            message=r.message,
            created_at=r.created_at,
            attempts=r.attempts + 1,
            next_attempt_at=lease_until,
            sent_at=None,
            failed_at=None,
            last_error=r.last_error,
            provider_ref=r.provider_ref,
            claim_token=token,
        )
        for r in rows
    ]


def mark_sent(
    conn: Connection, message_id: int, *, at: datetime, provider_ref: str | None = None
) -> bool:
    """Record that a message was delivered; ``False`` if it was already sent or failed."""
    result = _mark_sent.execute(conn, {"message_id": message_id, "at": at, "ref": provider_ref})
    return result.rowcount == 1


def record_failure(
    conn: Connection,
    row: OutboxRow,
    *,
    at: datetime,
    error: str,
    policy: RetryPolicy,
    permanent: bool = False,
) -> FailureOutcome:
    """Record a failed attempt on a claimed ``row``: schedule a retry, or fail the message."""
    error = error[:4000]
    if permanent or row.attempts >= policy.max_attempts:
        done = _fail.execute(conn, {"message_id": row.id, "at": at, "error": error}).rowcount
        return FailureOutcome.FAILED if done == 1 else FailureOutcome.ALREADY_FINISHED
    next_at = as_utc(at) + policy.delay_after(row.attempts)
    done = _retry.execute(conn, {"message_id": row.id, "next_at": next_at, "error": error}).rowcount
    return FailureOutcome.RETRY_SCHEDULED if done == 1 else FailureOutcome.ALREADY_FINISHED


def messages_for_call(conn: Connection, call_id: str) -> list[OutboxRow]:
    """All messages of a call, in the order they were enqueued."""
    return [_row(r) for r in _for_call.execute(conn, {"call_id": call_id}).rows]


def get_message(conn: Connection, idempotency_key: str) -> OutboxRow | None:
    """The message with this idempotency key, if any."""
    row = _by_key.execute(conn, {"key": idempotency_key}).first()
    return None if row is None else _row(row)
