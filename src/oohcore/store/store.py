"""The durable store: one SQLAlchemy engine, schema kept at head by Alembic, short transactions.

Everything durable in oohcore (the audit log, timers, the outbox, and the tables other modules
add) lives in one relational database reached through SQLAlchemy **Core** with portable SQL.
SQLite is the default (one file, no server); PostgreSQL is supported for several processes on
several machines.

Contract for the modules built on top (the call engine and friends)
-------------------------------------------------------------------

* ``Store.open(url, clock=...)`` creates the database if needed and upgrades the schema to the
  newest Alembic revision shipped inside the package (``oohcore/store/migrations``; it works from an
  installed wheel because the script location is found next to this file). Concurrent processes
  opening the same new database serialise their migrations (SQLite write lock, PostgreSQL advisory
  lock), so only one creates the tables.
* ``with store.transaction() as conn:`` is **the** unit of work: everything written through
  ``conn`` (a state change, the audit events it records, the outbox messages it causes, the timers
  it sets) commits together or not at all. An exception inside the block rolls everything back and
  propagates. Transactions do not nest: opening one inside another on the same store raises
  :class:`NestedTransactionError` (pass ``conn`` down instead).
  Inside the block, do not call ``conn.commit()``/``conn.rollback()`` yourself, and keep the
  block short: on SQLite it holds the database's write lock, so never wait for the network (a
  channel, a gazetteer service …) inside it.
* ``with store.read() as conn:`` is a read-only snapshot (on SQLite it does not take the write
  lock, so it never waits for writers in WAL mode).
* Time is not read here: ``store.clock`` is the injected :class:`~oohcore.clock.Clock` the host
  gave, for the layers above to use. Every timestamp column uses :class:`UTCDateTime`, which
  accepts only aware datetimes and returns aware UTC datetimes on every backend.
* Hot statements are wrapped in :class:`Prepared` (compiled once, executed on the driver on
  SQLite); ordinary ``conn.execute(core_statement)`` works too inside the same transaction, and
  both roll back together. Other modules may use :class:`Prepared` for their own hot paths.
  :func:`insert_if_absent` / :func:`insert_ignoring_conflict` are the portable "insert unless
  the unique key exists" used for idempotency keys.
* Errors: :class:`StoreError` and subclasses (:class:`StoreBusyError` when another process kept
  the database locked past the busy timeout, :class:`SchemaError`,
  :class:`NestedTransactionError`, :class:`NaiveDatetimeError`). A fault of the machine (the
  server unreachable or restarting, a full disk, an I/O error, a damaged file) raised anywhere
  in a ``transaction()`` or ``read()`` block, or by its commit, leaves the block as a
  :class:`StoreError` whose ``retry_safe`` says whether the same step may be tried again
  (:mod:`oohcore.store.faults`): this is the one place driver errors are translated. Errors of
  the statement and concurrent transactions' conflicts keep SQLAlchemy's classes
  (``sqlalchemy.exc.IntegrityError`` …, :func:`is_conflict`) for the layers above to map.
  On PostgreSQL a commit whose answer is lost is resolved by asking the server whether the
  transaction arrived (``txid_status``): if it did, the block ends normally; if it cannot be
  told (the server is still down), ``retry_safe`` is ``False``.

SQLite settings and their trade-offs
------------------------------------

* ``journal_mode=WAL``: readers never block the writer and the writer never blocks readers.
* ``foreign_keys=ON`` and a ``busy_timeout`` (default 10 s): a second process waiting for the
  write lock waits instead of failing.
* Every write transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock at the start,
  so two processes serialise cleanly instead of failing with "database is locked" when a reader
  tries to upgrade to a writer half-way through.
* ``synchronous``: ``"NORMAL"`` (default) or ``"FULL"``.

  - ``NORMAL`` in WAL mode does not fsync on every commit. A committed transaction survives a
    crash or ``SIGKILL`` of the *process* (the data is in the operating system's cache and the
    WAL), and the database can never be corrupted; but after a *power loss or operating-system
    crash* the last transactions committed before the failure may be rolled back (the
    database stays consistent: a transaction is lost whole, with its events, messages and
    timers, never in part). Measured on a small 2-core VM: about 5,000 transactions/s that
    each append one audit event.
  - ``FULL`` fsyncs the WAL on every commit: a committed transaction also survives power loss.
    Each commit then costs one fsync (0.1–5 ms depending on the disk); on the same VM about
    1,800 one-event transactions/s.

  Choose ``FULL`` when the store is the only record and the machine has no battery-backed disk
  cache or replicated storage; ``NORMAL`` is right for tests, the demo, benchmarks and hosts that
  already protect against power loss.
* ``wal_autocheckpoint``: the WAL is copied back into the database file (a checkpoint, with an
  fsync of both files) once it holds ``checkpoint_pages`` pages, 10,000 (40 MB) by default
  instead of SQLite's 1,000. A call lifecycle writes about 80 pages, so SQLite's default
  checkpointed every dozen calls; at 10,000 a checkpoint comes ten times less often and writes
  each busy page (the chain head, the newest index leaves) once for many commits. Nothing
  about durability changes (a commit is in the WAL either way); the WAL file stays up to
  that size on disk, and opening the store after a crash reads it back.
* One connection is kept open and reused for every transaction of a ``Store`` (a lock serialises
  threads), so a transaction costs a ``BEGIN IMMEDIATE`` and a ``COMMIT`` and nothing else.
  Statements are SQLAlchemy Core objects built once at import time, so their compiled SQL is
  cached; nothing is reflected at run time.

PostgreSQL
----------

Each transaction takes a pooled connection (READ COMMITTED). Writers that must serialise do it
explicitly (the audit chain head is locked ``FOR UPDATE``; timers and outbox rows are claimed
with conditional updates and ``FOR UPDATE SKIP LOCKED``). Keep one organisation per
transaction where you can: two transactions appending events for the same two organisations in
opposite orders can deadlock (PostgreSQL then aborts one with an error; retry it). A PostgreSQL
driver (e.g. ``psycopg``) is not a dependency of the core; install it in the host. The tests
marked PostgreSQL run when ``OOHCORE_TEST_POSTGRES_URL`` names a server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from oohcore.clock import Clock
from oohcore.errors import OohcoreError
from oohcore.store.faults import Fault, classify, describe
from oohcore.store.schema import alembic_config

__all__ = [
    "CONFLICT_SQLSTATES",
    "NestedTransactionError",
    "SchemaError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "is_conflict",
]


Synchronous = Literal["NORMAL", "FULL"]

# The statement that opens a SQLAlchemy-begun transaction on a SQLite connection of the
# engine (``BEGIN IMMEDIATE`` unless this key in ``Connection.info`` says otherwise, as
# ``audit.verify`` does for a read-only pass over ``store.engine``).
_BEGIN_KEY = "oohcore.sqlite_begin"
_PG_MIGRATION_LOCK = 0x00_0C_C0_2E  # any constant: the advisory lock id for schema upgrades


class StoreError(OohcoreError):
    """The store could not be opened or used.

    ``retry_safe`` says whether the same step may simply be tried again: ``True`` when nothing
    of it was committed and the fault may pass (the database was unreachable, restarting, out
    of disk space or locked), so a retry once it is back records the step once; ``False`` when
    a retry as it is would not help (the store is closed, its schema is wrong) or could record
    the step twice (the connection was lost after the commit was sent and whether it arrived
    cannot be told: read the call back before trying again). The message says which, for people.
    """

    def __init__(self, message: str, *, retry_safe: bool = False) -> None:
        super().__init__(message)
        self.retry_safe = retry_safe


class SchemaError(StoreError):
    """The database schema cannot be brought to the version this oohcore needs."""


class StoreBusyError(StoreError):
    """The database stayed locked by another writer for longer than the busy timeout."""

    def __init__(self, message: str, *, retry_safe: bool = True) -> None:
        super().__init__(message, retry_safe=retry_safe)


class NestedTransactionError(StoreError):
    """``store.transaction()`` was entered while a transaction of the same store was open."""


# PostgreSQL's SQLSTATEs for "another transaction got there first": a retry of the whole
# transaction can succeed (serialization failure, deadlock, lock not available, a unique key
# another transaction inserted meanwhile, e.g. two first calls of a day creating one counter).
CONFLICT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "23505"})


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` (a database error raised inside a transaction) means a concurrent
    transaction changed the same rows, so the whole transaction may be retried. SQLite
    serialises writers (``BEGIN IMMEDIATE``), so only PostgreSQL's errors qualify."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state in CONFLICT_SQLSTATES


class Store:
    """The database: an engine, the injected clock, and the one way to open a transaction."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        """Wrap an engine already configured by :meth:`open` (use :meth:`open`)."""
        self.engine = engine
        self.clock = clock
        self.dialect_name: str = engine.dialect.name
        self._is_sqlite = self.dialect_name == "sqlite"
        self._lock = threading.RLock()
        self._conn: Connection | None = engine.connect() if self._is_sqlite else None
        self._closed = False

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str = "sqlite:///oohcore.sqlite",
        *,
        clock: Clock,
        synchronous: Synchronous = "NORMAL",
        busy_timeout_ms: int = 10_000,
        checkpoint_pages: int = 10_000,
        migrate: bool = True,
        echo: bool = False,
    ) -> Store:
        """Open (creating if needed) the database at ``url`` and bring its schema to head.

        SQLite: the file and its directory are created if missing; ``sqlite://`` is an
        in-memory database for tests (one connection, not shared with ``store.engine``).
        PostgreSQL (``postgresql+psycopg://…``): the database must exist; its tables are created.
        ``synchronous``, ``busy_timeout_ms`` and ``checkpoint_pages`` apply to SQLite only (see
        the module documentation for the trade-offs); ``migrate=False`` skips the schema upgrade
        (for tools that manage migrations themselves).
        """
        if synchronous not in ("NORMAL", "FULL"):
            raise StoreError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        if isinstance(checkpoint_pages, bool) or not isinstance(checkpoint_pages, int):
            raise StoreError(f"checkpoint_pages must be a whole number, not {checkpoint_pages!r}")
        if checkpoint_pages < 1:
            raise StoreError(f"checkpoint_pages must be at least 1, not {checkpoint_pages}")
        try:
            parsed = make_url(url)
        except SQLAlchemyError as exc:  # pragma: no cover - message passthrough
            raise StoreError(f"{url!r} is not a database URL: {exc}") from exc
        is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
        if is_sqlite:
            database = parsed.database or ""
            memory = database in ("", ":memory:") or database.startswith("file::memory:")
            if not memory:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": busy_timeout_ms / 1000,
            }
            if memory:
                from sqlalchemy.pool import StaticPool

                kwargs["poolclass"] = StaticPool
            engine = create_engine(url, **kwargs)
            _configure_sqlite(
                engine,
                synchronous=synchronous,
                busy_timeout_ms=busy_timeout_ms,
                checkpoint_pages=checkpoint_pages,
                memory=memory,
            )
        else:
            engine = create_engine(url, pool_pre_ping=True, **kwargs)
        try:
            store = cls(engine, clock)
        except SQLAlchemyError as exc:
            engine.dispose()
            fault = _as_store_error(_safe_url(url), exc)
            raise (
                fault or StoreError(f"cannot open the database at {_safe_url(url)}: {exc}")
            ) from exc
        if migrate:
            try:
                store.upgrade()
            except BaseException:
                store.close()
                raise
        return store

    def upgrade(self) -> None:
        """Bring the schema to the newest revision shipped with this oohcore (idempotent)."""
        from alembic import command
        from alembic.util import CommandError

        with self.transaction() as conn:
            if not conn.in_transaction():
                conn.begin()  # so that Alembic sees a transaction it must not end
            if self.dialect_name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            try:
                command.upgrade(alembic_config(connection=conn), "heads")
            except CommandError as exc:
                raise SchemaError(
                    f"cannot bring the database at {_safe_url(str(self.engine.url))} to this "
                    f"oohcore's schema: {exc}. If the database was written by a newer oohcore, "
                    "upgrade oohcore; otherwise restore it from a backup."
                ) from exc

    # -- transactions ----------------------------------------------------------------------------

    def transaction(self) -> AbstractContextManager[Connection]:
        """One write transaction: commit when the block ends, roll back if it raises."""
        if self._conn is not None:
            return _SqliteTransaction(self, "BEGIN IMMEDIATE", rollback_only=False)
        return self._pooled(rollback_only=False)

    def read(self) -> AbstractContextManager[Connection]:
        """A read-only snapshot; anything written in it is rolled back."""
        if self._conn is not None:
            return _SqliteTransaction(self, "BEGIN", rollback_only=True)
        return self._pooled(rollback_only=True)

    @contextmanager
    def _pooled(self, *, rollback_only: bool) -> Iterator[Connection]:
        if self._closed:
            raise StoreError("the store is closed")
        try:
            conn = self.engine.connect()
        except Exception as exc:
            fault = self._fault(exc)
            if fault is None:
                raise
            raise fault from exc
        try:
            trans = conn.begin()
            try:
                yield conn
            except BaseException as exc:
                _quietly(trans.rollback)
                fault = self._fault(exc)
                if fault is not None and fault is not exc:
                    raise fault from exc
                raise
            if rollback_only:
                _quietly(trans.rollback)
                return
            xid: int | None = None
            try:
                # The transaction's id, to ask after a lost commit whether it arrived (below).
                xid = conn.exec_driver_sql("SELECT txid_current_if_assigned()").scalar()
                trans.commit()
            except Exception as exc:
                if classify(exc) is None:
                    raise
                in_doubt = False
                if xid is not None:  # the commit was sent: did it arrive?
                    committed = self._committed(int(xid))
                    if committed is True:
                        return  # it did: the step is recorded, once
                    in_doubt = committed is None
                fault = self._fault(exc, in_doubt=in_doubt)
                assert fault is not None
                raise fault from exc
        finally:
            _quietly(conn.close)

    def _committed(self, xid: int) -> bool | None:
        """Whether the transaction ``xid``, whose commit was sent but whose answer was lost,
        committed: asked of the server on a new connection (``txid_status``); None when that
        cannot be told (the server is still unreachable)."""
        try:
            with self.engine.connect() as conn:
                status = conn.execute(text("SELECT txid_status(:x)"), {"x": xid}).scalar()
        except Exception:
            return None
        if status == "committed":
            return True
        return False if status == "aborted" else None

    def _fault(self, error: BaseException, *, in_doubt: bool = False) -> StoreError | None:
        """The :class:`StoreError` a fault of the machine becomes (``error`` itself when it is
        one already); None for an error of the statement or a conflict, which keeps
        SQLAlchemy's class (:mod:`oohcore.store.faults`)."""
        return _as_store_error(_safe_url(str(self.engine.url)), error, in_doubt=in_doubt)

    # -- closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection and the engine's pool (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({_safe_url(str(self.engine.url))!r})"


# The driver connection of each SQLAlchemy connection inside a store transaction, so that
# prepared statements need not look it up through the pool's proxies for every statement.
_ACTIVE_DRIVER: dict[int, Any] = {}


class _SqliteTransaction:
    """A transaction on the store's one SQLite connection, begun and ended on the driver.

    SQLAlchemy's own transaction bookkeeping is skipped (it costs more than SQLite's BEGIN and
    COMMIT); if a statement executed through SQLAlchemy inside the block makes the connection
    "autobegin", the ``begin`` listener sees the driver already in a transaction and does
    nothing, and the block ends through SQLAlchemy so both agree.
    """

    __slots__ = ("_begin_sql", "_rollback_only", "_store")

    def __init__(self, store: Store, begin_sql: str, *, rollback_only: bool) -> None:
        self._store = store
        self._begin_sql = begin_sql
        self._rollback_only = rollback_only

    def __enter__(self) -> Connection:
        store = self._store
        store._lock.acquire()
        try:
            conn = store._conn
            if conn is None or store._closed:
                raise StoreError("the store is closed")
            raw = conn.connection.driver_connection
            if conn.in_transaction() or raw.in_transaction:  # type: ignore[union-attr]
                raise NestedTransactionError(
                    "a transaction of this store is already open in this thread; pass its "
                    "connection down instead of opening another one"
                )
            try:
                raw.execute(self._begin_sql)  # type: ignore[union-attr]
                _ACTIVE_DRIVER[id(conn)] = raw
            except conn.dialect.loaded_dbapi.Error as err:
                raise (
                    store._fault(err) or StoreError(f"cannot begin a transaction: {err}")
                ) from err
        except BaseException:
            store._lock.release()
            raise
        return conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        store = self._store
        try:
            conn = store._conn
            assert conn is not None
            raw: Any = _ACTIVE_DRIVER.pop(id(conn), None) or conn.connection.driver_connection
            if exc_type is None and not self._rollback_only:
                try:
                    if conn.in_transaction():
                        conn.commit()
                    else:
                        raw.commit()
                except BaseException as err:
                    # SQLite's commit is local: when it fails, nothing of it was written
                    # (a full disk, an I/O error), so a retry is safe.
                    _rollback_quietly(conn, raw)
                    fault = store._fault(err)
                    if fault is None:
                        raise
                    raise fault from err
            else:
                _rollback_quietly(conn, raw)
                fault = store._fault(exc) if exc is not None else None
                if fault is not None and fault is not exc:
                    raise fault from exc
        finally:
            store._lock.release()


def _as_store_error(
    where: str, error: BaseException, *, in_doubt: bool = False
) -> StoreError | None:
    if isinstance(error, StoreError):
        return error
    kind = classify(error)
    if kind is None:
        return None
    message = describe(kind, error, where, in_doubt=in_doubt)
    safe = kind is not Fault.DAMAGED and not in_doubt
    if kind is Fault.BUSY:
        return StoreBusyError(message, retry_safe=safe)
    return StoreError(message, retry_safe=safe)


def _quietly(end: Callable[[], None]) -> None:
    """Roll back or close a connection the server may have dropped: the error that brought
    us here is the one to report."""
    with suppress(Exception):
        end()


def _rollback_quietly(conn: Connection, raw: Any) -> None:
    try:
        if conn.in_transaction():
            conn.rollback()
        if raw.in_transaction:
            raw.rollback()
    except Exception:  # pragma: no cover - the connection is unusable; the original error wins
        conn.invalidate()


def _configure_sqlite(
    engine: Engine,
    *,
    synchronous: Synchronous,
    busy_timeout_ms: int,
    checkpoint_pages: int,
    memory: bool,
) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The sqlite3 module's own transaction handling is switched off; transactions are
        # opened explicitly in ``_on_begin`` so that writers use BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute(f"PRAGMA wal_autocheckpoint = {int(checkpoint_pages)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        info = conn.info
        statement = info.pop(_BEGIN_KEY) if _BEGIN_KEY in info else "BEGIN IMMEDIATE"
        raw: Any = conn.connection.driver_connection
        if not raw.in_transaction:  # a Store transaction has begun it already
            raw.execute(statement)


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:  # pragma: no cover
        return "<unparseable URL>"
