"""Durable timers: every deadline of a call is a row in the store, never an in-memory callback.

The referral time limit (6.4 b: by default 10 minutes from the end of the call), each escalation
wait, a lone-worker check-in expiry or a complaint's target date is a row in ``timers``, written
in the same transaction as the state change that starts it. A crash or restart loses none:
whichever :class:`~oohcore.durable.runner.Runner` runs next fires what is due.

Contract
--------

* ``set_timer(conn, organisation_id=, call_id=, kind=, due_at=, key=, payload=)`` → timer id.
  ``key`` is a unique idempotency key chosen by the caller (e.g. ``f"{call_id}:ack:{run_id}:2"``):
  setting a timer with a key that already exists does nothing and returns the existing id, so
  a retried transaction or a replayed step cannot create a second deadline.
* ``cancel_timers(conn, call_id=, kind=None, at=)`` cancels the call's pending timers (of one
  kind, or all) and returns how many; a cancelled timer never fires.
* ``due_timers(conn, now, limit)`` lists pending timers with ``due_at <= now``, oldest first
  (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a timer another runner is firing is passed over).
* ``mark_fired(conn, timer_id, at)`` is the **only** way a timer fires: a conditional
  ``UPDATE … WHERE fired_at IS NULL AND cancelled_at IS NULL``. It returns ``False`` when the
  timer was already fired or cancelled (by another runner, or by a retry), and the caller then
  does nothing. Run it in the same transaction as the timer's effects, so that firing and
  effects commit together: a timer handled twice has one effect.

Pending timers are found through the index ``(fired_at, cancelled_at, due_at)``, so the cost of
looking for due timers does not grow with the number of timers that have already fired.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
)

from oohcore.clock import as_utc
from oohcore.errors import OohcoreError
from oohcore.store.columns import JSONValueError, UTCDateTime, to_json
from oohcore.store.queue import DurableQueue
from oohcore.store.schema import metadata

__all__ = [
    "TimerError",
    "TimerRow",
    "cancel_timers",
    "due_timers",
    "get_timer",
    "mark_fired",
    "next_due_at",
    "record_timer_error",
    "set_timer",
    "timers",
    "timers_for_call",
]

_ID = BigInteger().with_variant(Integer(), "sqlite")

timers = Table(
    "timers",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("organisation_id", String(100), nullable=False),
    Column("call_id", String(100), nullable=True),
    Column("kind", String(100), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("payload", Text(), nullable=False),
    Column("key", String(255), nullable=False, unique=True),
    Column("fired_at", UTCDateTime(), nullable=True),
    Column("cancelled_at", UTCDateTime(), nullable=True),
    # Observability when the runner's callback for this timer raised (the timer stays pending
    # and is tried again on the next tick).
    Column("attempts", Integer(), nullable=False, server_default="0"),
    Column("last_error", Text(), nullable=True),
    Index(None, "fired_at", "cancelled_at", "due_at"),
    Index(None, "call_id"),
)


class TimerError(OohcoreError):
    """A timer could not be set or changed."""


@dataclass(frozen=True, slots=True)
class TimerRow:
    id: int
    organisation_id: str
    call_id: str | None
    kind: str
    due_at: datetime
    key: str
    payload: Mapping[str, Any] = field(hash=False)
    fired_at: datetime | None = None
    cancelled_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None

    @property
    def pending(self) -> bool:
        return self.fired_at is None and self.cancelled_at is None


# The shared mechanics (oohcore.store.queue): insert-if-absent keys, due selection (SKIP LOCKED on
# PostgreSQL), conditional transitions, error noting. Timers have no lease: a timer fires in the
# transaction that commits its effects, and ``mark_fired`` is the conditional update that wins.
_queue = DurableQueue(
    timers,
    key="key",
    due="due_at",
    finished=("fired_at", "cancelled_at"),
    list_order=("due_at", "id"),
)
_mark_fired = _queue.transition({"fired_at": bindparam("at")})
_cancel_all = _queue.transition({"cancelled_at": bindparam("at")}, by=("call_id",))
_cancel_kind = _queue.transition({"cancelled_at": bindparam("at")}, by=("call_id", "kind"))


def _row(r: Sequence[Any]) -> TimerRow:
    # the columns in the table's order
    return TimerRow(
        id=int(r[0]),
        organisation_id=r[1],
        call_id=r[2],
        kind=r[3],
        due_at=r[4],
        payload=json.loads(r[5]),
        key=r[6],
        fired_at=r[7],
        cancelled_at=r[8],
        attempts=int(r[9]),
        last_error=r[10],
    )


def set_timer(
    conn: Connection,
    *,
    organisation_id: str,
    call_id: str | None,
    kind: str,
    due_at: datetime,
    key: str,
    payload: Mapping[str, Any] | None = None,
) -> int:
    """Set a durable timer (idempotent on ``key``) and return its id."""
    if not key:
        raise TimerError("a timer needs a non-empty idempotency key")
    if not kind:
        raise TimerError("a timer needs a kind")
    try:
        due_at = as_utc(due_at)
        payload_json = to_json(dict(payload or {}))
    except (ValueError, JSONValueError) as exc:
        raise TimerError(f"timer {key!r}: {exc}") from exc
    timer_id, _ = _queue.insert(
        conn,
        {
            "organisation_id": organisation_id,
            "call_id": call_id,
            "kind": kind,
            "due_at": due_at,
            "payload": payload_json,
            "key": key,
            "attempts": 0,
        },
    )
    return timer_id


def cancel_timers(conn: Connection, *, call_id: str, kind: str | None = None, at: datetime) -> int:
    """Cancel the pending timers of ``call_id`` (only those of ``kind`` if given)."""
    if kind is None:
        return _cancel_all.apply(conn, {"b_call_id": call_id, "at": at})
    return _cancel_kind.apply(conn, {"b_call_id": call_id, "b_kind": kind, "at": at})


def due_timers(conn: Connection, now: datetime, limit: int = 500) -> list[TimerRow]:
    """Pending timers due at or before ``now``, oldest first, at most ``limit``."""
    return [_row(r) for r in _queue.due(conn, now, limit)]


def next_due_at(conn: Connection) -> datetime | None:
    """When the earliest pending timer is due (``None`` if there is none)."""
    return _queue.next_due_at(conn)


def mark_fired(conn: Connection, timer_id: int, at: datetime) -> bool:
    """Fire a timer: ``True`` if this call fired it, ``False`` if it was fired or cancelled."""
    return _mark_fired.apply(conn, {"b_id": timer_id, "at": at}) == 1


def record_timer_error(conn: Connection, timer_id: int, error: str) -> None:
    """Note that handling a pending timer failed (it stays pending)."""
    _queue.note_error(conn, timer_id, error)


def timers_for_call(conn: Connection, call_id: str) -> list[TimerRow]:
    """All timers of a call (pending, fired and cancelled), by due time."""
    return [_row(r) for r in _queue.where(conn, "call_id", call_id)]


def get_timer(conn: Connection, key: str) -> TimerRow | None:
    """The timer with idempotency key ``key``, if any."""
    row = _queue.by_key(conn, key)
    return None if row is None else _row(row)
