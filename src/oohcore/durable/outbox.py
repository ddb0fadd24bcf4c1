"""The transactional outbox: every message leaves through a row written with its cause.

A referral to the on-call officer (5.2.3.3, 7.5), an escalation, a back-office alert (7.6), the
XML feed (7.8) or the caller's follow-up SMS is never sent directly from the call's logic. It is
**enqueued** as a row of ``outbox`` in the same transaction as the state change and audit event
that cause it, and a :class:`~oohcore.durable.runner.Runner` sends it afterwards through a channel
adapter. So a message exists if and only if its cause committed, and a crash loses none.

Delivery is **at least once**: a runner that crashes after a channel accepted a message but
before the row was marked sent sends it again. Every message carries a unique
``idempotency_key``, and channels and their receivers use it as a dedupe key where they can
(see :mod:`oohcore.channels` and ``docs/adapters.md``, which says per channel kind where a
message is delivered at most once per key and where it is not). While runners stay alive, a
message is sent once: leases hold (below).

Contract
--------

* ``enqueue(conn, message, at=...)`` → ``(id, created)``; enqueuing the same
  ``idempotency_key`` again does nothing (``created`` is False) and returns the existing id.
* ``claim_due(conn, now, limit=, lease=, real_now=, send_time=)`` takes due messages for one
  sending attempt each. *Due* is measured on the logical ``now`` (the time recorded, that a
  deterministic test drives); the **lease** on the *real* time ``real_now`` of the claim (the
  store's clock in a runner): each claimed row gets ``lease_until = real_now + lease`` and is
  invisible to other runners until then. With ``send_time`` (the time one send may take on the
  row's channel: ``ChannelInfo.send_timeout``), only as many rows are claimed as can be sent
  one after another within 90% of the lease, so every claimed row really has its slot. On
  PostgreSQL the rows are read ``FOR UPDATE SKIP LOCKED``.
* After sending: ``mark_sent(conn, id, at=, provider_ref=)`` (conditional, ``False`` if the row
  was already finished), or ``record_failure(conn, row, at=, error=, policy=, permanent=,
  retry_after=)``, which schedules the next attempt (exponential backoff with jitter, at least
  the provider's ``retry_after``) or fails the message: when it was permanent, when
  ``policy.max_attempts`` attempts have been made, or when the next attempt would fall after
  ``policy.max_elapsed`` from the moment the message was first due (8.14: a message that cannot
  be delivered is known at once, and the engine escalates). ``release(conn, row, ...)`` hands a
  claimed row back unsent (its attempt is not counted). The retry state is durable in the row,
  so backoff survives restarts.
* Every attempt and every delivery receipt is kept by :mod:`oohcore.durable.receipts`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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
    text,
)

from oohcore.channels import OutboundMessage
from oohcore.clock import as_utc
from oohcore.errors import OohcoreError
from oohcore.store.columns import JSONValueError, UTCDateTime, to_json
from oohcore.store.queue import DurableQueue, cut_error
from oohcore.store.schema import metadata

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
    "release",
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
    # when the next attempt is due, on the logical time of the schedule
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
    # until when (real time, the store's clock) a runner holds its claim on the message
    Column("lease_until", UTCDateTime(), nullable=True),
    # the latest delivery receipt (oohcore.channels.ReceiptState) and the provider's time of it
    Column("receipt_state", String(32), nullable=True),
    Column("receipt_at", UTCDateTime(), nullable=True),
    Index(None, "sent_at", "failed_at", "next_attempt_at"),
    Index(None, "call_id"),
    # only messages with a provider's reference (migration 0014): queuing one writes no page here
    Index(
        None,
        "provider_ref",
        sqlite_where=text("provider_ref IS NOT NULL"),
        postgresql_where=text("provider_ref IS NOT NULL"),
    ),
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
    lease_until: datetime | None = None
    receipt_state: str | None = None
    receipt_at: datetime | None = None

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

    @property
    def first_due_at(self) -> datetime:
        """When the message was first due (the start of its delivery time, 11.7.3g)."""
        return self.message.due_at or self.created_at


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, a cap on attempts and a cap on total time.

    Failed attempt *n* (1-based) is retried after ``base = min(max_delay, first_delay *
    multiplier ** (n - 1))`` less a jitter of up to ``jitter * base``, so that messages that
    failed together (a gateway outage) do not all come back at the same moment. The jitter is
    drawn from the message's idempotency key and the attempt number, so a schedule is
    reproducible. A provider's ``retry_after`` is a floor. A message fails for good after
    ``max_attempts`` attempts, or when the next attempt would fall later than ``max_elapsed``
    after the message was first due. The defaults try 5 times within about 4 minutes (0, 15 s,
    30 s, 60 s, 120 s, each up to a quarter sooner) and give up within the 10-minute referral
    limit (6.4 b), so the escalation starts while there is time to act (8.14).
    """

    max_attempts: int = 5
    first_delay: timedelta = timedelta(seconds=15)
    multiplier: float = 2.0
    max_delay: timedelta = timedelta(minutes=5)
    jitter: float = 0.25
    max_elapsed: timedelta | None = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise OutboxError("RetryPolicy.max_attempts must be at least 1")
        if self.first_delay < timedelta(0) or self.max_delay < timedelta(0):
            raise OutboxError("RetryPolicy delays must not be negative")
        if self.multiplier < 1:
            raise OutboxError("RetryPolicy.multiplier must be at least 1")
        if not 0 <= self.jitter < 1:
            raise OutboxError("RetryPolicy.jitter must be at least 0 and below 1")
        if self.max_elapsed is not None and self.max_elapsed <= timedelta(0):
            raise OutboxError("RetryPolicy.max_elapsed must be positive (or None: no cap)")

    def delay_after(self, attempt: int, key: str = "") -> timedelta:
        """How long to wait after failed attempt number ``attempt`` (1-based) of the message
        with idempotency key ``key``."""
        factor = self.multiplier ** max(0, attempt - 1)
        seconds = min(self.max_delay.total_seconds(), self.first_delay.total_seconds() * factor)
        if self.jitter:
            digest = hashlib.blake2b(f"{key}\x00{attempt}".encode(), digest_size=8).digest()
            share = int.from_bytes(digest, "big") / 2**64  # in [0, 1)
            seconds -= seconds * self.jitter * share
        return timedelta(seconds=seconds)


class FailureOutcome(Enum):
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"
    ALREADY_FINISHED = "already_finished"


_queue = DurableQueue(
    outbox,
    key="idempotency_key",
    due="next_attempt_at",
    finished=("sent_at", "failed_at"),
    lease="lease_until",
)
_due = _queue.due_statement  # the due selection, as the store's tests inspect it
_claim = _queue.transition(
    {
        "attempts": outbox.c.attempts + 1,
        "lease_until": bindparam("lease_until"),
        "claim_token": bindparam("token"),
    },
    where=_queue.lease_free,
)
_release = _queue.transition(
    {"attempts": outbox.c.attempts - 1, "lease_until": bindparam("until"), "claim_token": None},
    token=True,
)
_mark_sent = _queue.transition(
    {"sent_at": bindparam("at"), "provider_ref": bindparam("ref"), "last_error": None}
)
_retry = _queue.transition(
    {
        "next_attempt_at": bindparam("next_at"),
        "last_error": bindparam("error"),
        "lease_until": None,
        "claim_token": None,
    },
    token=True,
)
_fail = _queue.transition(
    {"failed_at": bindparam("at"), "last_error": bindparam("error"), "lease_until": None},
    token=True,
)


def _row(r: Sequence[Any]) -> OutboxRow:
    # the columns in the table's order
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
        claim_token=r[13],
        sent_at=r[14],
        failed_at=r[15],
        last_error=r[16],
        provider_ref=r[17],
        lease_until=r[21],
        receipt_state=r[22],
        receipt_at=r[23],
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
    return _queue.insert(
        conn,
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


#: the share of a lease that a claim fills with send slots; the rest is for recording results
LEASE_FILL = 0.9


def claim_due(
    conn: Connection,
    now: datetime,
    *,
    limit: int = 100,
    lease: timedelta = timedelta(minutes=2),
    real_now: datetime | None = None,
    send_time: Callable[[str], timedelta] | None = None,
) -> list[OutboxRow]:
    """Claim due messages for one sending attempt each (see the module doc).

    ``now`` is the logical time (what is due); ``real_now`` the real time the lease is measured
    from (default ``now``); ``send_time(channel)`` the longest one send may take on a channel:
    the claim then stops where the sends would no longer fit in the lease (at least one row).
    The returned rows show the state *after* the claim (``attempts`` already counts this
    attempt). Run it in its own short transaction, send outside any transaction, then record
    each result in a transaction of its own.
    """
    real = as_utc(real_now if real_now is not None else now)
    rows = [_row(r) for r in _queue.due(conn, now, limit, lease_now=real)]
    if send_time is not None and rows:
        budget = lease * LEASE_FILL
        used = timedelta(0)
        for n, row in enumerate(rows):
            used += send_time(row.channel)
            if used > budget and n > 0:
                rows = rows[:n]
                break
    if not rows:
        return []
    token = secrets.token_hex(16)
    lease_until = real + lease
    claimed: list[OutboxRow] = []
    for r in rows:
        params = {"b_id": r.id, "lease_until": lease_until, "token": token, "lease_now": real}
        if _claim.apply(conn, params) == 1:
            claimed.append(
                replace(r, attempts=r.attempts + 1, lease_until=lease_until, claim_token=token)
            )
    return claimed


def release(conn: Connection, row: OutboxRow, *, until: datetime | None = None) -> bool:
    """Hand a claimed ``row`` back unsent: its attempt is not counted, and it may be claimed
    again from real time ``until`` (default at once). ``False`` if the claim was lost."""
    params = {"b_id": row.id, "token": row.claim_token, "until": until}
    return _release.apply(conn, params) == 1


def mark_sent(
    conn: Connection, message_id: int, *, at: datetime, provider_ref: str | None = None
) -> bool:
    """Record that a message was delivered; ``False`` if it was already sent or failed."""
    return _mark_sent.apply(conn, {"b_id": message_id, "at": at, "ref": provider_ref}) == 1


def record_failure(
    conn: Connection,
    row: OutboxRow,
    *,
    at: datetime,
    error: str,
    policy: RetryPolicy,
    permanent: bool = False,
    retry_after: timedelta | None = None,
) -> FailureOutcome:
    """Record a failed attempt on a claimed ``row``: schedule a retry, or fail the message (when
    ``permanent``, or past the policy's caps on attempts and total time). ``ALREADY_FINISHED``
    when the row was finished, or claimed by another runner, meanwhile."""
    at = as_utc(at)
    error = cut_error(error)
    next_at: datetime | None = None
    if permanent:
        reason = error
    elif row.attempts >= policy.max_attempts:
        reason = f"gave up after {row.attempts} attempt(s): {error}"
    else:
        delay = policy.delay_after(row.attempts, row.idempotency_key)
        if retry_after is not None and retry_after > delay:
            delay = retry_after  # the provider asked us to wait this long
        next_at = at + delay
        reason = error
        if policy.max_elapsed is not None and next_at > row.first_due_at + policy.max_elapsed:
            next_at = None
            reason = (
                f"gave up after {row.attempts} attempt(s): the next would be more than "
                f"{_span(policy.max_elapsed)} after the message was due: {error}"
            )
    params: dict[str, Any] = {"b_id": row.id, "token": row.claim_token, "error": cut_error(reason)}
    if next_at is None:
        done = _fail.apply(conn, {**params, "at": at})
        return FailureOutcome.FAILED if done == 1 else FailureOutcome.ALREADY_FINISHED
    done = _retry.apply(conn, {**params, "next_at": next_at})
    return FailureOutcome.RETRY_SCHEDULED if done == 1 else FailureOutcome.ALREADY_FINISHED


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def messages_for_call(conn: Connection, call_id: str) -> list[OutboxRow]:
    """All messages of a call, in the order they were enqueued."""
    return [_row(r) for r in _queue.where(conn, "call_id", call_id)]


def get_message(conn: Connection, idempotency_key: str) -> OutboxRow | None:
    """The message with this idempotency key, if any."""
    row = _queue.by_key(conn, idempotency_key)
    return None if row is None else _row(row)
