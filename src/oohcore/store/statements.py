"""Prepared statements: a Core statement compiled once, and the portable idempotent inserts.

:class:`Prepared` runs a statement straight on the SQLite driver inside the store's
transaction (an ordinary ``conn.execute`` elsewhere); :func:`insert_if_absent` and
:func:`insert_ignoring_conflict` are the portable "insert unless the unique key exists" used for
idempotency keys, :func:`insert_or_replace` the portable upsert.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Dialect,
    Table,
    bindparam,
    select,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ClauseElement

from oohcore.store.store import _ACTIVE_DRIVER, StoreError

__all__ = [
    "Prepared",
    "PreparedResult",
    "insert_if_absent",
    "insert_ignoring_conflict",
    "insert_or_replace",
]


class PreparedResult:
    """The outcome of :meth:`Prepared.execute`: converted rows, row count, new row id."""

    __slots__ = ("lastrowid", "rowcount", "rows")

    def __init__(
        self, rows: list[tuple[Any, ...]], rowcount: int, lastrowid: int | None = None
    ) -> None:
        self.rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


class _SqlitePlan:
    __slots__ = ("names", "procs", "result_procs", "returns_rows", "sql", "statics")

    def __init__(
        self,
        sql: str,
        names: list[str],
        statics: dict[str, Any],
        procs: list[tuple[int, Callable[[Any], Any]]],
        returns_rows: bool,
        result_procs: list[tuple[int, Callable[[Any], Any]]],
    ) -> None:
        self.sql = sql
        self.names = names
        self.statics = statics
        self.procs = procs
        self.returns_rows = returns_rows
        self.result_procs = result_procs


_MISSING = object()


class Prepared:
    """A Core statement compiled once, then executed with as little overhead as possible.

    On SQLite the statement is compiled by SQLAlchemy once (for the engine's dialect) and then
    run straight on the driver's connection, inside the SQLAlchemy transaction that ``conn``
    holds, with SQLAlchemy's own type conversions applied to parameters and results (so
    :class:`UTCDateTime` still round-trips aware UTC). That skips SQLAlchemy's per-execution
    machinery (cache-key generation, execution contexts, result objects, execution events), which
    costs more than SQLite itself for small statements. On any other database it is an ordinary
    ``conn.execute(statement, params)``.

    ``keys`` lists the parameter names of an ``insert(table)`` without ``.values()`` (the
    columns it writes); other statements take their parameters from their ``bindparam`` names.
    After a single-row ``insert(table)`` (no ``RETURNING``), ``result.lastrowid`` is the new
    primary key on every backend.
    Statements using ``expanding`` (``IN``) parameters are not supported.
    """

    __slots__ = ("_keys", "_plain_insert", "_sqlite", "statement")

    def __init__(self, statement: Executable, *, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self._keys = list(keys) if keys is not None else None
        self._sqlite: _SqlitePlan | None = None
        # An INSERT without RETURNING: its new primary key is reported as ``lastrowid``.
        self._plain_insert = isinstance(statement, Insert) and not len(statement.exported_columns)

    def execute(self, conn: Connection, params: Mapping[str, Any] | None = None) -> PreparedResult:
        params = params if params is not None else {}
        if conn.dialect.name != "sqlite":
            result = conn.execute(self.statement, dict(params))
            lastrowid = None
            if self._plain_insert:
                pk = result.inserted_primary_key
                lastrowid = pk[0] if pk and isinstance(pk[0], int) else None
            rows = [tuple(r) for r in result] if result.returns_rows else []
            return PreparedResult(rows, result.rowcount, lastrowid)
        plan = self._sqlite or self._plan_sqlite(conn.dialect)
        raw: Any = _ACTIVE_DRIVER.get(id(conn))
        if raw is None:
            raw = conn.connection.driver_connection
        if not raw.in_transaction and not conn.in_transaction():
            conn.begin()  # like SQLAlchemy's autobegin: the caller commits
        if plan.statics:
            merged = dict(plan.statics)
            merged.update(params)
            params = merged
        try:
            values = [params[name] for name in plan.names]
        except KeyError as exc:
            raise StoreError(f"parameter {exc} is missing for: {plan.sql}") from None
        for i, proc in plan.procs:
            value = values[i]
            if value is not None:
                values[i] = proc(value)
        try:
            cursor = raw.execute(plan.sql, values)
            try:
                if not plan.returns_rows:
                    return PreparedResult([], cursor.rowcount, cursor.lastrowid)
                rows = cursor.fetchall()
                if plan.result_procs:
                    converted = []
                    for row in rows:
                        items = list(row)
                        for i, proc in plan.result_procs:
                            value = items[i]
                            if value is not None:
                                items[i] = proc(value)
                        converted.append(tuple(items))
                    rows = converted
                return PreparedResult(rows, cursor.rowcount)
            finally:
                cursor.close()
        except conn.dialect.loaded_dbapi.Error as err:
            # The same exception classes as SQLAlchemy raises (IntegrityError, …).
            raise DBAPIError.instance(
                plan.sql, values, err, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
            ) from err

    def executemany(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        for p in params:
            self.execute(conn, p)

    def _plan_sqlite(self, dialect: Dialect) -> _SqlitePlan:
        compiled: Any = cast(ClauseElement, self.statement).compile(
            dialect=dialect, column_keys=self._keys
        )
        binds = compiled.binds
        names: list[str] = list(compiled.positiontup or ())
        statics: dict[str, Any] = {}
        procs: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(names):
            bind = binds[name]
            if bind.expanding:
                raise StoreError("Prepared does not support expanding (IN) parameters")
            if not bind.required:
                statics[name] = bind.effective_value
            proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                procs.append((i, proc))
        columns: Any = getattr(self.statement, "selected_columns", None)
        if columns is None:
            columns = getattr(self.statement, "exported_columns", None)
        returns_rows = columns is not None and len(columns) > 0
        result_procs: list[tuple[int, Callable[[Any], Any]]] = []
        for i, column in enumerate(columns if returns_rows else ()):
            proc = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if proc is not None:
                result_procs.append((i, proc))
        plan = _SqlitePlan(compiled.string, names, statics, procs, returns_rows, result_procs)
        self._sqlite = plan
        return plan


_insert_cache: dict[tuple[Any, ...], Prepared] = {}


def _dialect_insert(conn: Connection, table: Table) -> Any:
    """The dialect's own ``INSERT`` (with ``ON CONFLICT``) for SQLite or PostgreSQL."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    raise StoreError(f"the {dialect} database is not supported (SQLite or PostgreSQL)")


def _insert_ignoring(
    conn: Connection, table: Table, key: str, columns: tuple[str, ...], *, returning_id: bool
) -> Prepared:
    """``INSERT … ON CONFLICT (key) DO NOTHING`` for SQLite and PostgreSQL, cached."""
    cache_key = ("ignore", table.name, key, conn.dialect.name, columns, returning_id)
    stmt = _insert_cache.get(cache_key)
    if stmt is None:
        ins = _dialect_insert(conn, table).on_conflict_do_nothing(index_elements=[table.c[key]])
        # On SQLite rowcount says whether a row was written and lastrowid is its id: no
        # RETURNING.
        if returning_id and conn.dialect.name == "postgresql":
            ins = ins.returning(table.c.id)
        stmt = Prepared(ins, keys=columns)
        _insert_cache[cache_key] = stmt
    return stmt


def insert_or_replace(
    conn: Connection, table: Table, key: Sequence[str], values: Mapping[str, Any]
) -> None:
    """Insert ``values``, or overwrite the other columns of the row with the same unique
    ``key`` columns: one statement (``INSERT … ON CONFLICT (key) DO UPDATE``, the same SQL on
    SQLite and PostgreSQL) where a delete and an insert would be two."""
    columns = tuple(values)
    cache_key = ("replace", table.name, tuple(key), conn.dialect.name, columns)
    stmt = _insert_cache.get(cache_key)
    if stmt is None:
        ins = _dialect_insert(conn, table)
        ins = ins.on_conflict_do_update(
            index_elements=[table.c[k] for k in key],
            set_={c: ins.excluded[c] for c in columns if c not in key},
        )
        stmt = Prepared(ins, keys=columns)
        _insert_cache[cache_key] = stmt
    stmt.execute(conn, values)


def insert_ignoring_conflict(
    conn: Connection, table: Table, key: str, values: Mapping[str, Any]
) -> bool:
    """Insert ``values`` unless a row with the same unique ``key`` exists; ``True`` if inserted.

    A concurrent duplicate never raises (and so never aborts a PostgreSQL transaction).
    """
    stmt = _insert_ignoring(conn, table, key, tuple(values), returning_id=False)
    return stmt.execute(conn, values).rowcount == 1


_lookup_cache: dict[tuple[str, str], Prepared] = {}


def insert_if_absent(
    conn: Connection, table: Table, key: str, values: Mapping[str, Any]
) -> tuple[int, bool]:
    """Insert ``values`` into ``table`` unless a row with the same unique ``key`` exists.

    Returns ``(id, inserted)`` where ``id`` is the ``id`` primary key of the new or existing row.
    Uses ``INSERT … ON CONFLICT DO NOTHING`` (``RETURNING id`` on PostgreSQL), so a concurrent
    duplicate never raises (and so never aborts a PostgreSQL transaction).
    """
    sqlite = conn.dialect.name == "sqlite"
    stmt = _insert_ignoring(conn, table, key, tuple(values), returning_id=not sqlite)
    result = stmt.execute(conn, values)
    if sqlite:
        if result.rowcount == 1 and result.lastrowid is not None:
            return result.lastrowid, True
    else:
        new_id = result.scalar()
        if new_id is not None:
            return int(new_id), True
    lookup = _lookup_cache.get((table.name, key))
    if lookup is None:
        lookup = Prepared(select(table.c.id).where(table.c[key] == bindparam("_key")))
        _lookup_cache[(table.name, key)] = lookup
    existing = lookup.execute(conn, {"_key": values[key]}).scalar()
    if existing is None:  # pragma: no cover - the conflicting row vanished meanwhile
        raise StoreError(f"{table.name}: no row inserted and none found for {key}={values[key]!r}")
    return int(existing), False
