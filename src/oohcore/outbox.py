"""The transactional outbox: every message leaves through a row written with its cause.

A referral to the on-call officer (5.2.3.3, 7.5), an escalation, a back-office alert (7.6), the
XML feed (7.8) or the caller's follow-up SMS is never sent directly from the call's logic. It is
**enqueued** as a row of ``outbox`` in the same transaction as the state change and audit event
that cause it, and a :class:`~oohcore.runner.Runner` sends it afterwards through a channel
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
* Every attempt is kept in ``delivery_attempts`` (``record_attempt``, ``attempts_for``): when,
  the outcome, the error, the provider's id. The row keeps the final state (``sent_at`` /
  ``failed_at``) and reason (``last_error``).
* Delivery receipts (``record_receipt(conn, receipt)``) are matched to their message by the
  idempotency key or the provider's id, kept in ``delivery_receipts`` (a provider's repeated
  callback is kept once), and the latest state is copied to the message. A failure receipt for
  a message not already failed calls ``on_receipt`` (the engine escalates: the officer did not
  get it). A receipt that matches no message is kept too, and is not an error.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
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
    text,
)

from oohcore.channels import OutboundMessage, Receipt, ReceiptState
from oohcore.clock import as_utc
from oohcore.errors import OohcoreError
from oohcore.store.columns import JSONValueError, UTCDateTime, to_json
from oohcore.store.queue import DurableQueue, cut_error
from oohcore.store.schema import metadata
from oohcore.store.statements import Prepared, insert_if_absent

__all__ = [
    "AttemptOutcome",
    "AttemptRow",
    "FailureOutcome",
    "OutboundMessage",
    "OutboxError",
    "OutboxRow",
    "ReceiptCallback",
    "ReceiptRecord",
    "RetryPolicy",
    "attempts_for",
    "claim_due",
    "delivery_attempts",
    "delivery_receipts",
    "enqueue",
    "get_message",
    "mark_sent",
    "messages_for_call",
    "outbox",
    "receipts_for",
    "record_attempt",
    "record_failure",
    "record_receipt",
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


def messages_for_call(conn: Connection, call_id: str) -> list[OutboxRow]:
    """All messages of a call, in the order they were enqueued."""
    return [_row(r) for r in _queue.where(conn, "call_id", call_id)]


def get_message(conn: Connection, idempotency_key: str) -> OutboxRow | None:
    """The message with this idempotency key, if any."""
    row = _queue.by_key(conn, idempotency_key)
    return None if row is None else _row(row)
