"""The mechanics the two durable queues share: the outbox and the timers.

Both are tables of rows that wait for a moment (``due``), are taken by a runner, and end in a
finished state (sent or failed; fired or cancelled). What they have in common lives here once:

* **insert-if-absent keys**: a row is written once per idempotency key
  (:meth:`DurableQueue.insert`); writing it again returns the existing id;
* **due selection**: pending rows whose due column is at or before ``now``, oldest first, with
  ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (so two runners never wait for each other's rows),
  and, for a queue with leases, only rows whose lease has ended by the *real* time given
  (:meth:`DurableQueue.due`);
* **conditional transitions**: an ``UPDATE … WHERE id = :id AND <still pending>`` (optionally
  ``AND claim_token = :token``) whose row count says whether this caller won
  (:meth:`DurableQueue.transition`); every change of state goes through one;
* **error noting**: ``attempts`` counted and ``last_error`` kept on a pending row
  (:meth:`DurableQueue.note_error`).

Statements are built once per queue and run through :class:`~oohcore.store.statements.Prepared`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from oohcore.store.statements import Prepared, insert_if_absent

__all__ = ["DurableQueue", "Transition"]

_ERROR_LIMIT = 4000


class Transition(Prepared):
    """A conditional update of pending rows, built once (see :meth:`DurableQueue.transition`)."""

    __slots__ = ()

    def apply(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run it; the number of rows it changed (0: another runner or step got there first)."""
        return int(self.execute(conn, params).rowcount)


class DurableQueue:
    """Rows of ``table`` that wait for their due time, then finish once.

    ``key``: the unique idempotency-key column; ``due``: the column compared with ``now``;
    ``finished``: the columns of which one is set when a row is finished (a row is pending while
    all of them are NULL); ``lease``: the column holding the real time until which a runner has
    claimed the row (None for a queue without leases). The table has an ``id`` primary key and
    ``attempts`` / ``last_error`` columns.
    """

    def __init__(
        self,
        table: Table,
        *,
        key: str,
        due: str,
        finished: Sequence[str],
        lease: str | None = None,
        list_order: Sequence[str] = ("id",),
    ) -> None:
        self.table = table
        self._list_order = tuple(table.c[name] for name in list_order)
        self.key = key
        c = table.c
        self.pending: tuple[ColumnElement[bool], ...] = tuple(
            c[name].is_(None) for name in finished
        )
        self.lease_free: tuple[ColumnElement[bool], ...] = (
            (or_(c[lease].is_(None), c[lease] <= bindparam("lease_now")),) if lease else ()
        )
        columns = tuple(table.columns)
        order = (c[due], c.id)
        self.due_statement = Prepared(
            select(*columns)
            .where(*self.pending, c[due] <= bindparam("now"), *self.lease_free)
            .order_by(*order)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
        )
        self._next_due = Prepared(select(c[due]).where(*self.pending).order_by(*order).limit(1))
        self._by_key = Prepared(select(*columns).where(c[key] == bindparam("key")))
        self._by_id = Prepared(select(*columns).where(c.id == bindparam("row_id")))
        self._lists: dict[str, Prepared] = {}
        self._note_error = self.transition(
            {"attempts": c.attempts + 1, "last_error": bindparam("error")}
        )

    # -- writing and reading -----------------------------------------------------------------

    def insert(self, conn: Connection, values: Mapping[str, Any]) -> tuple[int, bool]:
        """Write a row unless its key exists: ``(id, created)``; a concurrent duplicate never
        raises (``INSERT … ON CONFLICT DO NOTHING``)."""
        return insert_if_absent(conn, self.table, self.key, values)

    def due(
        self, conn: Connection, now: datetime, limit: int, *, lease_now: datetime | None = None
    ) -> list[tuple[Any, ...]]:
        """Pending rows due at ``now`` (and, with leases, not claimed at ``lease_now``), oldest
        first, at most ``limit``; locked ``FOR UPDATE SKIP LOCKED`` on PostgreSQL."""
        params: dict[str, Any] = {"now": now, "limit": limit}
        if self.lease_free:
            params["lease_now"] = lease_now if lease_now is not None else now
        return self.due_statement.execute(conn, params).rows

    def next_due_at(self, conn: Connection) -> datetime | None:
        value: datetime | None = self._next_due.execute(conn).scalar()
        return value

    def by_key(self, conn: Connection, key: str) -> tuple[Any, ...] | None:
        return self._by_key.execute(conn, {"key": key}).first()

    def by_id(self, conn: Connection, row_id: int) -> tuple[Any, ...] | None:
        return self._by_id.execute(conn, {"row_id": row_id}).first()

    def where(self, conn: Connection, column: str, value: Any) -> list[tuple[Any, ...]]:
        """Every row (pending or finished) with ``column == value``, in ``list_order``."""
        stmt = self._lists.get(column)
        if stmt is None:
            where = self.table.c[column] == bindparam("value")
            stmt = Prepared(select(*self.table.columns).where(where).order_by(*self._list_order))
            self._lists[column] = stmt
        return stmt.execute(conn, {"value": value}).rows

    # -- changing state ------------------------------------------------------------------------

    def transition(
        self,
        values: Mapping[str, Any],
        *,
        by: Sequence[str] = ("id",),
        token: bool = False,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> Transition:
        """A conditional update of *pending* rows matched on the columns ``by`` (parameters
        ``b_<column>``), and on ``claim_token = :token`` when ``token``; ``values`` maps columns
        to bind parameters or SQL expressions."""
        c = self.table.c
        conditions = [c[name] == bindparam(f"b_{name}") for name in by]
        if token:
            conditions.append(c.claim_token == bindparam("token"))
        return Transition(
            update(self.table).where(*conditions, *self.pending, *where).values(**values)
        )

    def note_error(self, conn: Connection, row_id: int, error: str) -> bool:
        """Count a failed attempt on a pending row and keep its error (cut to 4,000 chars)."""
        params = {"b_id": row_id, "error": cut_error(error)}
        return self._note_error.apply(conn, params) == 1


def cut_error(error: str) -> str:
    """An error text as stored (at most 4,000 characters)."""
    return error[:_ERROR_LIMIT]
