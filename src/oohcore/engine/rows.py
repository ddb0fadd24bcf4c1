"""The stored forms of a call and of a referral, read and written in one place each.

:class:`CallRow` has one attribute per column of ``calls`` and :class:`ReferralRow` one per column
of ``referrals``; the conversions between the engine's values and their stored forms (answers
as JSON, ``in_hours`` as an integer, a snapshot as JSON) live in ``_TO_STORE`` / ``_FROM_STORE``
here and nowhere else. Statements are built once (:class:`~oohcore.store.statements.Prepared`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Table, and_, bindparam, insert, select, text, update

from oohcore.calls import WAITING_CONDITION, call_counters, calls
from oohcore.referrals import referrals
from oohcore.store.columns import to_json
from oohcore.store.statements import Prepared, insert_ignoring_conflict

__all__ = ["CallRow", "ReferralRow"]


@dataclass(frozen=True, slots=True)
class CallRow:
    """A call as stored (one attribute per column of ``calls``)."""

    id: str
    organisation_id: str
    seq: int
    reference: str
    access_number: str
    caller_number: str | None
    ivr_menu: str | None
    service_option: str | None
    option_version: str | None
    organisation_version: str
    state: str
    priority: int
    in_hours: bool
    variant: str | None
    handler: str | None
    answers: dict[str, Any]
    action_id: str | None
    action_kind: str | None
    rule: int | None
    duplicate_of: str | None
    received_at: datetime
    answered_at: datetime | None
    decided_at: datetime | None
    actioned_at: datetime | None
    closed_at: datetime | None
    abandoned_at: datetime | None
    version: int


@dataclass(frozen=True, slots=True)
class ReferralRow:
    """A referral or lone-worker watch as stored (one attribute per column of ``referrals``)."""

    id: str
    organisation_id: str
    call_id: str
    kind: str
    action_id: str
    option_version: str
    run_id: str
    state: str
    stage: int
    alerts: int
    snapshot: dict[str, Any]
    started_at: datetime
    call_ended_at: datetime | None
    deadline_at: datetime | None
    limit_seconds: int | None
    dispatched_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    finished_at: datetime | None
    late_reason: str | None
    version: int


_TO_STORE: dict[str, Callable[[Any], Any]] = {
    "answers": to_json,
    "in_hours": int,
    "snapshot": to_json,
}
_FROM_STORE: dict[str, Callable[[Any], Any]] = {
    "answers": json.loads,
    "in_hours": bool,
    "snapshot": json.loads,
}


def to_store(values: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of some of a row's values."""
    return {k: _TO_STORE[k](v) if k in _TO_STORE else v for k, v in values.items()}


R = TypeVar("R")


class _Rows(Generic[R]):
    """Reading, inserting and optimistically updating one table's rows as dataclass ``R``."""

    def __init__(self, table: Table, row_type: type[R]) -> None:
        self.table = table
        self.row_type = row_type
        self.names = tuple(f.name for f in fields(row_type))  # type: ignore[arg-type]
        self.columns = tuple(table.c[n] for n in self.names)
        self._insert = Prepared(insert(table), keys=list(self.names))
        self._updates: dict[tuple[str, ...], Prepared] = {}
        self._converters = [_FROM_STORE.get(n) for n in self.names]
        self._index = {n: i for i, n in enumerate(self.names)}
        self._values = attrgetter(*self.names)

    def evolve(self, row: R, changes: Mapping[str, Any]) -> R:
        """``row`` with ``changes`` (``dataclasses.replace`` without its per-call
        introspection: a call row changes at every step)."""
        values = list(self._values(row))
        index = self._index
        for name, value in changes.items():
            values[index[name]] = value
        return self.row_type(*values)

    def row(self, values: Sequence[Any]) -> R:
        converted = [
            conv(v) if conv is not None and v is not None else v
            for conv, v in zip(self._converters, values, strict=True)
        ]
        return self.row_type(*converted)

    def insert(self, conn: Connection, row: R) -> None:
        self._insert.execute(conn, to_store({n: getattr(row, n) for n in self.names}))

    def update(self, conn: Connection, old: R, changes: Mapping[str, Any]) -> bool:
        """Write ``changes`` (and the next version) if the stored row is still at ``old``'s
        version; False when someone else changed it meanwhile (nothing written)."""
        names = tuple(sorted(changes))
        stmt = self._updates.get(names)
        if stmt is None:
            t = self.table
            stmt = Prepared(
                update(t)
                .where(and_(t.c.id == bindparam("row_id"), t.c.version == bindparam("old")))
                .values(version=bindparam("new"), **{c: bindparam(f"v_{c}") for c in names})
            )
            self._updates[names] = stmt
        version: int = old.version  # type: ignore[attr-defined]
        params = {f"v_{k}": v for k, v in to_store(changes).items()}
        params.update(row_id=old.id, old=version, new=version + 1)  # type: ignore[attr-defined]
        return bool(stmt.execute(conn, params).rowcount == 1)


CALLS = _Rows(calls, CallRow)
REFERRALS = _Rows(referrals, ReferralRow)

_SELECT_CALL = Prepared(
    select(*CALLS.columns).where(
        and_(calls.c.id == bindparam("call_id"), calls.c.organisation_id == bindparam("org"))
    )
)
_SELECT_BY_REFERENCE = Prepared(
    select(*CALLS.columns).where(
        and_(
            calls.c.reference == bindparam("reference"),
            calls.c.organisation_id == bindparam("org"),
        )
    )
)
# written as the partial index ix_calls_waiting's condition, so the index serves it
_SELECT_WAITING = Prepared(
    select(*CALLS.columns).where(
        and_(calls.c.organisation_id == bindparam("org"), text(WAITING_CONDITION))
    )
)
_SELECT_REFERRAL = Prepared(
    select(*REFERRALS.columns).where(
        and_(
            referrals.c.id == bindparam("referral_id"),
            referrals.c.organisation_id == bindparam("org"),
        )
    )
)
_SELECT_REFERRALS_OF_CALL = Prepared(
    select(*REFERRALS.columns)
    .where(
        and_(
            referrals.c.call_id == bindparam("call_id"),
            referrals.c.organisation_id == bindparam("org"),
        )
    )
    .order_by(referrals.c.started_at, referrals.c.id)
)

# One counter for the whole store: a reference is unique across every organisation (5.2.2).
GLOBAL_COUNTER = "*"
_NEXT_SEQ = Prepared(
    update(call_counters)
    .where(call_counters.c.organisation_id == bindparam("org"))
    .values(last_seq=call_counters.c.last_seq + 1)
    .returning(call_counters.c.last_seq)
)


def load_call(conn: Connection, organisation_id: str, call_id: str) -> CallRow | None:
    r = _SELECT_CALL.execute(conn, {"call_id": call_id, "org": organisation_id}).first()
    return None if r is None else CALLS.row(r)


def call_by_reference(conn: Connection, organisation_id: str, reference: str) -> CallRow | None:
    r = _SELECT_BY_REFERENCE.execute(conn, {"reference": reference, "org": organisation_id})
    first = r.first()
    return None if first is None else CALLS.row(first)


def waiting_calls(conn: Connection, organisation_id: str) -> list[CallRow]:
    return [CALLS.row(r) for r in _SELECT_WAITING.execute(conn, {"org": organisation_id}).rows]


def load_referral(conn: Connection, organisation_id: str, referral_id: str) -> ReferralRow | None:
    r = _SELECT_REFERRAL.execute(conn, {"referral_id": referral_id, "org": organisation_id})
    first = r.first()
    return None if first is None else REFERRALS.row(first)


def referrals_of_call(conn: Connection, organisation_id: str, call_id: str) -> list[ReferralRow]:
    rows = _SELECT_REFERRALS_OF_CALL.execute(conn, {"call_id": call_id, "org": organisation_id})
    return [REFERRALS.row(r) for r in rows.rows]


def next_seq(conn: Connection) -> int:
    """The next call number of the store (the counter row is created on first use)."""
    updated = _NEXT_SEQ.execute(conn, {"org": GLOBAL_COUNTER}).first()
    if updated is not None:
        return int(updated[0])
    first = {"organisation_id": GLOBAL_COUNTER, "last_seq": 1}
    if insert_ignoring_conflict(conn, call_counters, "organisation_id", first):
        return 1
    # another process created the counter meanwhile (desks started together on PostgreSQL):
    # its row is committed now, so the update finds it
    updated = _NEXT_SEQ.execute(conn, {"org": GLOBAL_COUNTER}).first()
    if updated is None:  # pragma: no cover - the row was deleted meanwhile
        raise RuntimeError("the call counter vanished while it was being created")
    return int(updated[0])
